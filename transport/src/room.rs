//! The viewers' room, sans IO: who is in the session (presence), and each
//! viewer's data-channel messages checked (size, version, fields, role,
//! rate) before the accepted ones go to the station's [`CommandSink`].
//! Bytes, the viewer and the time go in; notices with their recipients come
//! out ([`Outgoing`]). No channel, no task, no clock: the async shell
//! ([`crate::room_channels`]) owns the channels, reads the station's clock
//! and delivers what the room says.
//!
//! A refused message is answered to its sender alone (at most
//! [`ERROR_REPLIES_PER_SECOND`] replies a second, so a flood of garbage does
//! not become a flood back); nobody else notices.

use std::collections::HashMap;
use std::sync::Arc;

use crate::access::{AccessEvent, AccessSink, Action, Who};
use crate::auth::Caller;
use crate::fanout::ViewerId;
use crate::protocol::{Command, Notice, PROTOCOL_VERSION, Participant, ProtocolError, RateLimiter, parse_command};
use crate::refused::CommandRefused;

/// The data channel the viewer page opens.
pub const CHANNEL_LABEL: &str = "scopecast";
/// Most error replies per viewer and second.
pub const ERROR_REPLIES_PER_SECOND: u32 = 10;

/// Where accepted commands go: the station's scene (telestration, layers,
/// recording) or a replay's player.
pub trait CommandSink: Send + Sync {
    /// Carries out `command` from `viewer` (`who` in the access log's
    /// terms: the link's name and the role, never the token); an `Err` is sent back to it
    /// (code `refused`), an `Ok(Some(notice))` goes to everyone (a changed
    /// state all pages show).
    fn apply(&self, viewer: ViewerId, who: &Who, command: &Command) -> Result<Option<Notice>, CommandRefused>;
    /// The viewer left: its open strokes end.
    fn left(&self, viewer: ViewerId);
    /// What a viewer hears right after its welcome (the recording or playback state).
    fn greeting(&self) -> Option<Notice> {
        None
    }
}

/// Who a notice goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    /// One viewer.
    One(ViewerId),
    /// Every viewer whose channel is open.
    Everyone,
}

/// A notice the shell is to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Its recipients.
    pub to: To,
    /// What it says.
    pub notice: Notice,
}

impl Outgoing {
    fn one(viewer: ViewerId, notice: Notice) -> Self {
        Self { to: To::One(viewer), notice }
    }

    fn everyone(notice: Notice) -> Self {
        Self { to: To::Everyone, notice }
    }
}

/// Counts error replies in one-second windows.
#[derive(Debug)]
struct ReplyBudget {
    window_start_ns: u64,
    sent: u32,
}

impl ReplyBudget {
    fn take(&mut self, now_ns: u64) -> bool {
        if now_ns.saturating_sub(self.window_start_ns) >= 1_000_000_000 {
            self.window_start_ns = now_ns;
            self.sent = 0;
        }
        self.sent += 1;
        self.sent <= ERROR_REPLIES_PER_SECOND
    }
}

struct Member {
    participant: Participant,
    /// Who, for the access log (the link's name, never the page's `hello`).
    who: Who,
    limiter: RateLimiter,
    replies: ReplyBudget,
}

/// Everyone in the session, their limits, and where their commands go.
pub struct Room {
    members: HashMap<ViewerId, Member>,
    sink: Option<Arc<dyn CommandSink>>,
    access: Option<Arc<dyn AccessSink>>,
}

impl Room {
    /// A room whose accepted commands go to `sink` (none: drawing is refused).
    pub fn new(sink: Option<Arc<dyn CommandSink>>) -> Self {
        Self { members: HashMap::new(), sink, access: None }
    }

    /// Tells `access` what each participant does.
    pub fn set_access(&mut self, access: Arc<dyn AccessSink>) {
        self.access = Some(access);
    }

    /// `caller`'s session `viewer` started at `now_ns`; presence shows them
    /// by their link's name until their page says another.
    pub fn join(&mut self, viewer: ViewerId, caller: &Caller, now_ns: u64) {
        let name = caller.name.as_deref().map_or_else(|| format!("viewer {}", viewer.0), str::to_string);
        let participant = Participant { id: viewer.0, name, role: caller.role };
        let member = Member {
            participant,
            who: Who::from(caller),
            limiter: RateLimiter::new(now_ns),
            replies: ReplyBudget { window_start_ns: now_ns, sent: 0 },
        };
        self.members.insert(viewer, member);
    }

    /// Whether `viewer` is in the room.
    pub fn has(&self, viewer: ViewerId) -> bool {
        self.members.contains_key(&viewer)
    }

    /// `viewer`'s session ended: its open strokes end and everyone hears
    /// the new presence (nothing when it was not in the room).
    pub fn leave(&mut self, viewer: ViewerId) -> Vec<Outgoing> {
        if self.members.remove(&viewer).is_none() {
            return Vec::new();
        }
        if let Some(sink) = &self.sink {
            sink.left(viewer);
        }
        vec![self.presence()]
    }

    /// `viewer`'s channel opened: its welcome (and the sink's greeting),
    /// then everyone's presence.
    pub fn opened(&mut self, viewer: ViewerId) -> Vec<Outgoing> {
        let Some(member) = self.members.get(&viewer) else { return Vec::new() };
        let role = member.participant.role;
        let mut out = vec![Outgoing::one(viewer, Notice::Welcome { v: PROTOCOL_VERSION, id: viewer.0, role })];
        if let Some(greeting) = self.sink.as_ref().and_then(|s| s.greeting()) {
            out.push(Outgoing::one(viewer, greeting));
        }
        out.push(self.presence());
        out
    }

    /// One message from `viewer` at `now_ns` (station clock): what to say to whom.
    pub fn message(&mut self, viewer: ViewerId, bytes: &[u8], now_ns: u64) -> Vec<Outgoing> {
        match self.handle(viewer, bytes, now_ns) {
            Ok(out) => out,
            Err(refusal) => {
                tracing::debug!(viewer = viewer.0, error = %refusal, "data-channel message refused");
                let answered = self.members.get_mut(&viewer).is_some_and(|member| member.replies.take(now_ns));
                if answered { vec![Outgoing::one(viewer, Notice::error(&refusal))] } else { Vec::new() }
            }
        }
    }

    fn handle(&mut self, viewer: ViewerId, bytes: &[u8], now_ns: u64) -> Result<Vec<Outgoing>, ProtocolError> {
        let Some(member) = self.members.get_mut(&viewer) else { return Ok(Vec::new()) };
        let command = parse_command(bytes)?;
        let (needed, role) = (command.needs(), member.participant.role);
        if role < needed {
            return Err(ProtocolError::Forbidden { command: command.name(), needed, role });
        }
        member.limiter.admit(command.rate_class(), now_ns)?;
        if let Command::Hello { name } = &command {
            // A named link's holder keeps the name the operator gave them.
            if member.who.name.is_none() {
                member.participant.name = name.trim().to_string();
            }
            return Ok(vec![self.presence()]);
        }
        let who = member.who.clone();
        let sink = self.sink.as_ref().ok_or(ProtocolError::Refused(CommandRefused::NoDrawing))?;
        let notice = sink.apply(viewer, &who, &command).map_err(ProtocolError::Refused)?;
        if let (Some(access), Some(action)) = (&self.access, Action::of(&command)) {
            access.record(AccessEvent::Acted { session: viewer.0, who, action });
        }
        Ok(notice.into_iter().map(Outgoing::everyone).collect())
    }

    /// Everyone, by id.
    pub fn participants(&self) -> Vec<Participant> {
        let mut all: Vec<Participant> = self.members.values().map(|m| m.participant.clone()).collect();
        all.sort_by_key(|p| p.id);
        all
    }

    fn presence(&self) -> Outgoing {
        Outgoing::everyone(Notice::Presence { v: PROTOCOL_VERSION, viewers: self.participants() })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::auth::{CredentialId, Role};

    fn caller(role: Role, name: Option<&str>) -> Caller {
        Caller { credential: CredentialId::Config(0), role, name: name.map(Arc::from), expires_unix_s: None }
    }

    /// A sink that keeps what it was given.
    #[derive(Default)]
    struct Kept(Mutex<Vec<(ViewerId, &'static str)>>);

    impl CommandSink for Kept {
        fn apply(&self, viewer: ViewerId, _who: &Who, command: &Command) -> Result<Option<Notice>, CommandRefused> {
            self.0.lock().expect("kept").push((viewer, command.name()));
            match command {
                Command::Record { on } => Ok(Some(Notice::Recording { v: PROTOCOL_VERSION, on: *on })),
                Command::PenUp { stroke } => Err(CommandRefused::NoStrokeToLift { stroke: *stroke }),
                _ => Ok(None),
            }
        }
        fn left(&self, viewer: ViewerId) {
            self.0.lock().expect("kept").push((viewer, "left"));
        }
    }

    #[test]
    fn error_replies_are_bounded_per_second() {
        let mut budget = ReplyBudget { window_start_ns: 0, sent: 0 };
        let sent = (0..100).filter(|_| budget.take(500_000_000)).count();
        assert_eq!(sent, ERROR_REPLIES_PER_SECOND as usize);
        assert!(budget.take(1_000_000_000), "a new second, a new budget");
    }

    #[test]
    fn a_welcome_goes_to_one_presence_and_state_changes_to_everyone() {
        let sink = Arc::new(Kept::default());
        let mut room = Room::new(Some(sink.clone()));
        let (a, b) = (ViewerId(1), ViewerId(2));
        room.join(a, &caller(Role::Operator, Some("Dr A")), 0);
        room.join(b, &caller(Role::Viewer, None), 0);
        let opened = room.opened(b);
        assert_eq!(opened[0], Outgoing::one(b, Notice::Welcome { v: PROTOCOL_VERSION, id: 2, role: Role::Viewer }));
        assert_eq!(opened.last().map(|o| o.to), Some(To::Everyone));
        // A viewer names itself; a named link's holder keeps the operator's name.
        room.message(b, br#"{"v":1,"type":"hello","name":" Nurse B "}"#, 1);
        room.message(a, br#"{"v":1,"type":"hello","name":"someone else"}"#, 1);
        let names: Vec<String> = room.participants().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["Dr A", "Nurse B"]);
        // The operator records: everyone hears it; a refusal goes back to its sender alone.
        let record = room.message(a, br#"{"v":1,"type":"record","on":true}"#, 2);
        assert_eq!(record, [Outgoing::everyone(Notice::Recording { v: PROTOCOL_VERSION, on: true })]);
        let refused = room.message(a, br#"{"v":1,"type":"pen_up","stroke":1}"#, 3);
        assert!(matches!(refused.as_slice(), [Outgoing { to: To::One(ViewerId(1)), notice: Notice::Error { .. } }]));
        // A viewer may not record: refused before the sink hears of it.
        let forbidden = room.message(b, br#"{"v":1,"type":"record","on":false}"#, 4);
        assert_eq!(forbidden.len(), 1);
        assert_eq!(forbidden[0].to, To::One(b));
        assert_eq!(*sink.0.lock().expect("kept"), [(a, "record"), (a, "pen_up")]);
        // Leaving ends its strokes and tells everyone; twice is nothing.
        assert_eq!(room.leave(b).len(), 1);
        assert!(room.leave(b).is_empty());
        assert_eq!(sink.0.lock().expect("kept").last(), Some(&(b, "left")));
        assert!(
            room.message(b, br#"{"v":1,"type":"hello","name":"ghost"}"#, 5).is_empty(),
            "a viewer who left has no say"
        );
    }

    #[test]
    fn garbage_gets_at_most_ten_replies_a_second() {
        let mut room = Room::new(None);
        room.join(ViewerId(7), &caller(Role::Annotator, None), 0);
        let replies: usize = (0..100).map(|i| room.message(ViewerId(7), b"\xff not json", 1_000 + i).len()).sum();
        assert_eq!(replies, ERROR_REPLIES_PER_SECOND as usize);
        assert_eq!(room.message(ViewerId(7), b"{", 1_000_001_000).len(), 1, "the next second answers again");
    }
}
