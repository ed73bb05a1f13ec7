//! What the access log records: who joined and left the station's stream,
//! from where and when, and what they did (drew, switched layers, recorded,
//! steered a replay). Names are the link's name and role, never a token; no
//! patient data (the station has none to give). The engine writes these as
//! JSON lines ([`AccessRecord`], format [`ACCESS_LOG_VERSION`]) and into the
//! recording's timeline.

use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Role};
use crate::protocol::{Command, Layer};

/// The access log's line format version.
pub const ACCESS_LOG_VERSION: u32 = 1;

/// Who: the credential's kind and id (`config:0`, `link:<16 hex>`), the
/// link's name (config tokens have none) and the role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Who {
    /// `config:N` or `link:ID`.
    pub credential: String,
    /// The link's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What they may do.
    pub role: Role,
}

impl From<&Caller> for Who {
    fn from(caller: &Caller) -> Self {
        Self {
            credential: caller.credential.to_string(),
            name: caller.name.as_deref().map(str::to_string),
            role: caller.role,
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// The viewer sent `DELETE` (or an operator did for them).
    Deleted,
    /// The connection closed or failed (a tab closed, a network gone).
    Closed,
    /// ICE never completed within the connect deadline.
    NeverConnected,
    /// Their link was revoked.
    Revoked,
    /// Their link expired.
    Expired,
}

/// Something a participant did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Started a stroke.
    Drew,
    /// Drew an arrow.
    Arrow,
    /// Took back their newest annotation.
    Undid,
    /// Cleared their annotations (`all`: everyone's).
    Cleared {
        /// Everyone's.
        all: bool,
    },
    /// Showed or hid a layer.
    Layer {
        /// Which.
        layer: Layer,
        /// Shown.
        visible: bool,
    },
    /// Started (`on`) or stopped recording.
    Recording {
        /// Started.
        on: bool,
    },
    /// Held a replay.
    Paused,
    /// Went on playing a replay.
    Played,
    /// Moved a replay to `to_ms`.
    Seeked {
        /// Where, ms from the recording's first frame.
        to_ms: u64,
    },
    /// Changed a replay's speed.
    Speed {
        /// The factor.
        factor: f32,
    },
    /// A registration step at the station (accepting one is the step that
    /// changes what everyone sees).
    Registration {
        /// Which.
        step: crate::protocol::RegistrationStep,
    },
}

impl Action {
    /// What an accepted command is worth logging as; `None` for the ones
    /// that come many times a second or change nothing (pen moves, laser,
    /// hello).
    pub fn of(command: &Command) -> Option<Self> {
        Some(match command {
            Command::PenDown { .. } => Action::Drew,
            Command::Arrow { .. } => Action::Arrow,
            Command::UndoMine {} => Action::Undid,
            Command::ClearMine {} => Action::Cleared { all: false },
            Command::ClearAll {} => Action::Cleared { all: true },
            Command::Layer { layer, visible } => Action::Layer { layer: layer.clone(), visible: *visible },
            Command::Record { on } => Action::Recording { on: *on },
            Command::Pause {} => Action::Paused,
            Command::Play {} => Action::Played,
            Command::Seek { to_ms } => Action::Seeked { to_ms: *to_ms },
            Command::Speed { factor } => Action::Speed { factor: *factor },
            Command::Registration { step, .. } => Action::Registration { step: *step },
            Command::Hello { .. } | Command::PenMove { .. } | Command::PenUp { .. } | Command::Laser { .. } => {
                return None;
            }
        })
    }
}

/// One event of the access log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AccessEvent {
    /// A session was set up (offer answered).
    Joined {
        /// The session's number on this station (not its resource name).
        session: u64,
        /// Who.
        who: Who,
        /// The peer's IP address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
    /// A session ended.
    Left {
        /// The session's number.
        session: u64,
        /// Who.
        who: Who,
        /// Why.
        reason: LeaveReason,
    },
    /// A participant did something.
    Acted {
        /// The session's number.
        session: u64,
        /// Who.
        who: Who,
        /// What.
        #[serde(flatten)]
        action: Action,
    },
    /// A request to join was refused.
    Refused {
        /// The HTTP status answered.
        status: u16,
        /// Why, in words (never the token).
        reason: String,
        /// Who, when the credential was valid.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        who: Option<Who>,
        /// The peer's IP address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
}

/// One line of the access log: the event and when it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// [`ACCESS_LOG_VERSION`].
    pub v: u32,
    /// Wall-clock time, Unix ms.
    pub t_unix_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: AccessEvent,
}

impl AccessRecord {
    /// The line (without the newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a line; `None` for one that is not a record of this version.
    pub fn parse(line: &str) -> Option<Self> {
        serde_json::from_str::<Self>(line).ok().filter(|r| r.v == ACCESS_LOG_VERSION)
    }
}

/// Where access events go (the engine's access log). Must not block: called
/// from the signalling and data-channel tasks.
pub trait AccessSink: Send + Sync {
    /// Records `event`, stamped with the current wall-clock time.
    fn record(&self, event: AccessEvent);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Caller;

    #[test]
    fn records_round_trip_as_json_lines_and_name_no_token() {
        let mut caller = Caller::config(1, Role::Annotator);
        caller.name = Some("Dr A".into());
        let events = vec![
            AccessEvent::Joined { session: 3, who: Who::from(&caller), address: Some("10.0.0.7".into()) },
            AccessEvent::Acted { session: 3, who: Who::from(&caller), action: Action::Drew },
            AccessEvent::Acted {
                session: 3,
                who: Who::from(&caller),
                action: Action::Layer { layer: Layer::Anatomy, visible: false },
            },
            AccessEvent::Acted { session: 3, who: Who::from(&caller), action: Action::Seeked { to_ms: 1500 } },
            AccessEvent::Left { session: 3, who: Who::from(&caller), reason: LeaveReason::Revoked },
            AccessEvent::Refused { status: 429, reason: "too many setups".into(), who: None, address: None },
        ];
        for event in events {
            let record = AccessRecord { v: ACCESS_LOG_VERSION, t_unix_ms: 1_700_000_000_000, event };
            let line = record.to_line();
            assert!(!line.contains('\n'));
            assert_eq!(AccessRecord::parse(&line), Some(record), "{line}");
        }
        let line = AccessRecord {
            v: 1,
            t_unix_ms: 5,
            event: AccessEvent::Acted { session: 1, who: Who::from(&caller), action: Action::Drew },
        }
        .to_line();
        assert_eq!(
            line,
            r#"{"v":1,"t_unix_ms":5,"event":"acted","session":1,"who":{"credential":"config:1","name":"Dr A","role":"annotator"},"action":"drew"}"#
        );
        assert_eq!(AccessRecord::parse(&line.replace(r#""v":1"#, r#""v":2"#)), None);
    }

    #[test]
    fn only_actions_worth_an_auditors_time_are_logged() {
        assert_eq!(Action::of(&Command::Record { on: true }), Some(Action::Recording { on: true }));
        assert_eq!(Action::of(&Command::PenUp { stroke: 1 }), None);
        assert_eq!(Action::of(&Command::Laser { at: [0.5, 0.5], anchor: Default::default(), frame_ms: None }), None);
    }
}
