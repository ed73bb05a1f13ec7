//! What the live station does with its viewers' accepted data-channel
//! commands: drawing and layer switches go to the telestration board,
//! `record` starts or stops the session recording (operator role, checked by
//! the room). Replay controls are refused here: they belong to `scopecast
//! replay`.

use std::sync::Arc;

use crossbeam_channel::{Sender, bounded};

use scopecast_transport::fanout::ViewerId;
use scopecast_transport::protocol::{Command, Notice, PROTOCOL_VERSION};
use scopecast_transport::room::CommandSink;

use crate::clock::SharedClock;
use crate::recorder::Recorder;
use crate::telestration::Telestration;

/// Record switches waiting for the switching thread; more are refused as busy.
const SWITCH_QUEUE: usize = 16;

/// The live station's [`CommandSink`].
pub struct StationCommands {
    telestration: Arc<Telestration>,
    recorder: Option<Arc<Recorder>>,
    /// To the thread that starts and stops the recorder, in order: a switch
    /// may wait (up to 1 s) for a writer busy with a slow disk, never on the
    /// data channel's task, which serves every viewer.
    switches: Option<Sender<bool>>,
    clock: SharedClock,
}

impl StationCommands {
    /// Drawing into `telestration`; recording through `recorder` (none when the station does not encode).
    pub fn new(telestration: Arc<Telestration>, recorder: Option<Arc<Recorder>>, clock: SharedClock) -> Self {
        let switches = recorder.as_ref().map(Arc::downgrade).and_then(|weak| {
            let (tx, rx) = bounded::<bool>(SWITCH_QUEUE);
            // A weak handle: the recorder still closes its session where the station lets it go.
            let spawned = std::thread::Builder::new().name("scopecast-record-switch".into()).spawn(move || {
                for on in rx {
                    let Some(recorder) = weak.upgrade() else { break };
                    if on {
                        recorder.start_session();
                    } else {
                        recorder.stop_session();
                    }
                }
            });
            match spawned {
                Ok(_) => Some(tx),
                Err(e) => {
                    tracing::error!(error = %e, "no thread for record switches: the viewer pages cannot switch recording");
                    None
                }
            }
        });
        Self { telestration, recorder, switches, clock }
    }

    fn recording_notice(&self) -> Option<Notice> {
        let recorder = self.recorder.as_ref()?;
        Some(Notice::Recording { v: PROTOCOL_VERSION, on: recorder.is_recording() })
    }
}

impl CommandSink for StationCommands {
    fn apply(&self, viewer: ViewerId, command: &Command) -> Result<Option<Notice>, String> {
        match command {
            Command::Record { on } => {
                let switches = self
                    .switches
                    .as_ref()
                    .ok_or_else(|| "this station is not encoding, so it cannot record".to_string())?;
                let on = *on;
                switches.try_send(on).map_err(|_| "the recorder is busy; try again in a second".to_string())?;
                tracing::info!(viewer = viewer.0, on, "recording switched from a viewer page");
                Ok(Some(Notice::Recording { v: PROTOCOL_VERSION, on }))
            }
            Command::Pause {} | Command::Play {} | Command::Seek { .. } | Command::Speed { .. } => {
                Err(format!("{} works on a replay (scopecast replay), not on the live station", command.name()))
            }
            _ => self.telestration.apply_at(viewer.0, command, self.clock.now_ns()).map(|()| None),
        }
    }

    fn left(&self, viewer: ViewerId) {
        self.telestration.left(viewer.0);
    }

    fn greeting(&self) -> Option<Notice> {
        self.recording_notice()
    }
}
