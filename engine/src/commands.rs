//! What the live station does with its viewers' accepted data-channel
//! commands: drawing and layer switches go to the telestration board,
//! `record` starts or stops the session recording (operator role, checked by
//! the room), `registration` steps go to the registration desk (operator
//! role). Replay controls are refused here: they belong to `scopecast
//! replay`.

use std::sync::Arc;

use scopecast_transport::access::Who;
use scopecast_transport::auth::Role;
use scopecast_transport::fanout::ViewerId;
use scopecast_transport::protocol::{Command, Notice, PROTOCOL_VERSION};
use scopecast_transport::refused::CommandRefused;
use scopecast_transport::room::CommandSink;

use crate::clock::SharedClock;
use crate::recorder::Recorder;
use crate::station::registration_desk::StationDesk;
use crate::telestration::Telestration;

/// The live station's [`CommandSink`].
pub struct StationCommands {
    telestration: Arc<Telestration>,
    /// Started and stopped without blocking (the recorder's own control
    /// queue): the data channel's task serves every viewer.
    recorder: Option<Arc<Recorder>>,
    clock: SharedClock,
    /// The registration desk (operator role, checked by the room).
    registration: Option<Arc<StationDesk>>,
}

impl StationCommands {
    /// Drawing into `telestration`; recording through `recorder` (none when the station does not encode).
    pub fn new(telestration: Arc<Telestration>, recorder: Option<Arc<Recorder>>, clock: SharedClock) -> Self {
        Self { telestration, recorder, clock, registration: None }
    }

    /// Registration steps go to `desk`.
    pub fn with_registration(mut self, desk: Option<Arc<StationDesk>>) -> Self {
        self.registration = desk;
        self
    }

    fn recording_notice(&self) -> Option<Notice> {
        let recorder = self.recorder.as_ref()?;
        Some(Notice::Recording { v: PROTOCOL_VERSION, on: recorder.is_recording() })
    }
}

impl CommandSink for StationCommands {
    fn apply(&self, viewer: ViewerId, who: &Who, command: &Command) -> Result<Option<Notice>, CommandRefused> {
        match command {
            Command::Registration { step, fiducial } => {
                let desk = self.registration.as_ref().ok_or(CommandRefused::NoRegistrationDesk)?;
                let name = who.name.as_deref().unwrap_or(&who.credential);
                let role = match who.role {
                    Role::Viewer => "viewer",
                    Role::Annotator => "annotator",
                    Role::Operator => "operator",
                };
                let by = format!("{name} ({role})");
                desk.step(*step, *fiducial, &by).map_err(|reason| CommandRefused::Registration { reason })?;
                // Every page hears the desk's new state as an announcement.
                Ok(None)
            }
            Command::Record { on } => {
                let recorder = self.recorder.as_ref().ok_or(CommandRefused::NotEncoding)?;
                let on = *on;
                let switched = if on { recorder.start_session() } else { recorder.stop_session() };
                switched.map_err(|busy| CommandRefused::RecorderBusy { reason: busy.to_string() })?;
                tracing::info!(viewer = viewer.0, on, "recording switched from a viewer page");
                Ok(Some(Notice::Recording { v: PROTOCOL_VERSION, on }))
            }
            Command::Pause {} | Command::Play {} | Command::Seek { .. } | Command::Speed { .. } => {
                Err(CommandRefused::ReplayOnly { command: command.name() })
            }
            _ => self.telestration.apply_at(viewer, command, self.clock.now_ns()).map(|()| None),
        }
    }

    fn left(&self, viewer: ViewerId) {
        self.telestration.left(viewer);
    }

    fn greeting(&self) -> Option<Notice> {
        self.recording_notice()
    }
}
