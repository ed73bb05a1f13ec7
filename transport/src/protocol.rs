//! The data-channel protocol between the station and its viewers (version
//! [`PROTOCOL_VERSION`]): telestration (strokes, arrows, a laser pointer,
//! undo and clear), layer toggles and presence. Every message is one JSON
//! object with a `type` tag and the protocol version `v`, in one data-channel
//! message (UTF-8 text).
//!
//! Points are normalised image coordinates of the station's output frame:
//! (0, 0) is its top-left corner, (1, 1) its bottom-right, whatever size the
//! viewer shows it at. Colours are `#rrggbb`. Widths are pixels of the output
//! frame.
//!
//! Versions: 1 is the first; 2 adds marks on the anatomy: `pen_down`,
//! `arrow` and `laser` may say `"anchor": "anatomy"` (the default is
//! `"screen"`, version 1's behaviour), and those and `pen_move` carry
//! `frame_ms`, the capture time (Unix ms, as the frame's timecode strip
//! shows it) of the frame the viewer was looking at when drawing; the
//! station answers with the `marks` notice (each mark's mode). The station
//! accepts both versions; a version 1 message with version 2 fields is
//! refused. Notices carry the station's version; pages ignore types they do
//! not know.
//!
//! The parser is the trust boundary: it bounds the message size before
//! parsing, refuses unknown fields and versions, checks every number, and
//! says what is wrong in an [`ProtocolError`] that goes back to the sender
//! alone. Which role may send what is [`Command::needs`]; how often is
//! [`RateLimiter`], which takes the time as an input.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::auth::Role;

/// The protocol version this station speaks.
pub const PROTOCOL_VERSION: u32 = 2;
/// The oldest version it still accepts from a page.
pub const OLDEST_PROTOCOL_VERSION: u32 = 1;
/// Largest `frame_ms` accepted (2^53: what a page's JavaScript number holds exactly).
pub const MAX_FRAME_MS: u64 = 1 << 53;
/// Largest message accepted, bytes (before parsing).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;
/// Most points in one `pen_move`.
pub const MAX_POINTS_PER_MESSAGE: usize = 128;
/// Longest presence name, characters.
pub const MAX_NAME_CHARS: usize = 32;
/// Widest stroke, px of the output frame.
pub const MAX_WIDTH_PX: f32 = 64.0;
/// How far outside the image a point may lie (a stroke leaving the frame), in
/// image widths/heights.
const MARGIN: f32 = 0.25;

/// A point in normalised image coordinates.
pub type Point = [f32; 2];

/// Layers a viewer may switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// All 3D anatomy models.
    Anatomy,
    /// All 2D annotations.
    Annotations,
    /// One anatomy model, by its name in the station's config.
    Model(String),
}

/// Where a viewer's mark is to stay (protocol version 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// On the screen: it stays where it was drawn while the scope moves.
    #[default]
    Screen,
    /// On the anatomy: each point is lifted onto the registered model's
    /// surface and follows it (points where no surface is stay on the screen).
    Anatomy,
}

impl Anchor {
    fn is_screen(&self) -> bool {
        *self == Anchor::Screen
    }
}

/// A message from a viewer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Who is watching: the name shown to the others.
    Hello {
        /// Display name (no patient data: a role or initials).
        name: String,
    },
    /// A stroke starts at `at`.
    PenDown {
        /// The sender's own id for this stroke.
        stroke: u32,
        /// First point.
        at: Point,
        /// `#rrggbb`.
        colour: String,
        /// px of the output frame.
        width: f32,
        /// Kept until cleared instead of fading.
        #[serde(default)]
        pinned: bool,
        /// On the screen or on the anatomy (version 2).
        #[serde(default, skip_serializing_if = "Anchor::is_screen")]
        anchor: Anchor,
        /// The capture time of the frame the viewer drew on, Unix ms (version 2).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        frame_ms: Option<u64>,
    },
    /// More points of an open stroke.
    PenMove {
        /// The stroke's id from `pen_down`.
        stroke: u32,
        /// The points, in drawing order.
        points: Vec<Point>,
        /// The capture time of the frame the viewer drew them on, Unix ms (version 2).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        frame_ms: Option<u64>,
    },
    /// The stroke ends (it starts to fade unless pinned).
    PenUp {
        /// The stroke's id.
        stroke: u32,
    },
    /// An arrow pointing at `to`.
    Arrow {
        /// Tail.
        from: Point,
        /// Head.
        to: Point,
        /// `#rrggbb`.
        colour: String,
        /// px.
        width: f32,
        /// Kept until cleared.
        #[serde(default)]
        pinned: bool,
        /// On the screen or on the anatomy (version 2).
        #[serde(default, skip_serializing_if = "Anchor::is_screen")]
        anchor: Anchor,
        /// The capture time of the frame the viewer put the head on, Unix ms (version 2).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        frame_ms: Option<u64>,
        /// The capture time of the frame the viewer put the tail on, Unix ms
        /// (version 2; `frame_ms` when not said).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tail_frame_ms: Option<u64>,
    },
    /// The laser pointer is at `at` (shown briefly, never kept).
    Laser {
        /// Where.
        at: Point,
        /// On the screen or on the anatomy (version 2).
        #[serde(default, skip_serializing_if = "Anchor::is_screen")]
        anchor: Anchor,
        /// The capture time of the frame the viewer pointed on, Unix ms (version 2).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        frame_ms: Option<u64>,
    },
    /// Remove the sender's newest annotation.
    UndoMine {},
    /// Remove all of the sender's annotations.
    ClearMine {},
    /// Remove everyone's annotations (operator).
    ClearAll {},
    /// Show or hide a layer.
    Layer {
        /// Which.
        layer: Layer,
        /// Shown or hidden.
        visible: bool,
    },
    /// Start (`on`) or stop recording the session (operator, live station).
    Record {
        /// Recording wanted.
        on: bool,
    },
    /// Replay: hold the picture (the trainer, with an operator token).
    Pause {},
    /// Replay: go on playing from where it was held.
    Play {},
    /// Replay: go to `to_ms` of the recording's timeline (lands on the
    /// keyframe at or before it).
    Seek {
        /// Target, ms from the recording's first frame.
        to_ms: u64,
    },
    /// Replay: play at `factor` × the recorded pace.
    Speed {
        /// [`MIN_SPEED`] to [`MAX_SPEED`].
        factor: f32,
    },
    /// A step of registration at the station (operator, live station).
    Registration {
        /// Which.
        step: RegistrationStep,
        /// The fiducial to redo (1-based; `redo` only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fiducial: Option<u32>,
    },
}

/// A registration step from the operator's page or the monitor's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationStep {
    /// Solve the pointer's tip: pivot it about its tip for a few seconds.
    Pivot,
    /// Take the next fiducial where the pointer's tip rests now.
    Take,
    /// Take fiducial `fiducial` again at the next `take`.
    Redo,
    /// Refine by ICP on points swept over the surface: starts sweeping, or
    /// ends the sweep and refines.
    Sweep,
    /// Use the registration shown (written, used at once, recorded).
    Accept,
    /// Throw away what was collected and start again.
    Restart,
}

/// Most fiducials a registration takes.
pub const MAX_FIDUCIALS: u32 = 64;

/// One fiducial on the registration desk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiducialState {
    /// Taken (the tip rested on it).
    pub taken: bool,
    /// Its residual after registration, mm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residual_mm: Option<f64>,
    /// Its distance from where the other fiducials' registration puts it, mm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave_one_out_mm: Option<f64>,
    /// Probably touched in the wrong order or at the wrong spot: redo it.
    #[serde(default)]
    pub suspect: bool,
}

/// The registration desk as every page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistrationState {
    /// `pivot`, `collect`, `sweep`, `review` or `accepted`.
    pub phase: String,
    /// The fiducials, in the model file's order.
    pub fiducials: Vec<FiducialState>,
    /// The fiducial the next `take` fills (1-based), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u32>,
    /// The pointer: `still`, `moving` or `not tracked`.
    pub pointer: String,
    /// Where the tip rests (reference frame, mm), when still.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tip_mm: Option<[f64; 3]>,
    /// The pivot calibration's RMS, mm, when pivoted live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pivot_rms_mm: Option<f64>,
    /// Fiducial registration error, mm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fre_mm: Option<f64>,
    /// Predicted target registration error at the target, mm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tre_mm: Option<f64>,
    /// The target's name (e.g. "tumour centroid").
    pub target: String,
    /// Surface points swept so far.
    #[serde(default)]
    pub surface_points: u32,
    /// The surface refinement's RMS distance to the model's surface, mm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surface_rms_mm: Option<f64>,
    /// How far the refinement moved the target from the paired-point result, mm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surface_change_mm: Option<f64>,
    /// What to do next, or why the last step was refused, in words.
    pub message: String,
    /// Who accepted the registration in use and when (Unix ms), if one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_by: Option<String>,
}

/// Most marks a `marks` notice lists (the newest).
pub const MAX_MARKS_LISTED: usize = 64;

/// One mark as the `marks` notice tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkState {
    /// The station's number for it.
    pub id: u64,
    /// Who drew it: their session id (as in `presence`), or 0 for the station.
    pub by: u64,
    /// `stroke`, `arrow` or `laser`.
    pub shape: String,
    /// Where it was asked to stay.
    pub anchor: Anchor,
    /// Its points that stick to the anatomy.
    pub on_anatomy: u32,
    /// Its points that stay on the screen.
    pub on_screen: u32,
    /// The model its anatomy points are on (the first one's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Why points of an anatomy mark stay on the screen, in words (empty when none do).
    pub message: String,
}

/// Slowest replay speed, × recorded pace.
pub const MIN_SPEED: f32 = 0.25;
/// Fastest replay speed, × recorded pace.
pub const MAX_SPEED: f32 = 4.0;
/// Furthest seek target accepted, ms (one week: longer than any session).
pub const MAX_SEEK_MS: u64 = 7 * 24 * 3_600_000;

/// How often a kind of message may come, per viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateClass {
    /// Pen and laser movement: many small messages.
    Pointer,
    /// Whole shapes.
    Shape,
    /// Undo, clear, layers, hello.
    Control,
}

impl Command {
    /// The least role that may send it.
    pub fn needs(&self) -> Role {
        match self {
            Command::Hello { .. } => Role::Viewer,
            Command::ClearAll {}
            | Command::Record { .. }
            | Command::Pause {}
            | Command::Play {}
            | Command::Seek { .. }
            | Command::Speed { .. }
            | Command::Registration { .. } => Role::Operator,
            _ => Role::Annotator,
        }
    }

    /// Its rate class.
    pub fn rate_class(&self) -> RateClass {
        match self {
            Command::PenDown { .. } | Command::PenMove { .. } | Command::PenUp { .. } | Command::Laser { .. } => {
                RateClass::Pointer
            }
            Command::Arrow { .. } => RateClass::Shape,
            _ => RateClass::Control,
        }
    }

    /// Uses a field that version 1 does not have.
    fn needs_version_2(&self) -> bool {
        match self {
            Command::Arrow { anchor, frame_ms, tail_frame_ms, .. } => {
                !anchor.is_screen() || frame_ms.is_some() || tail_frame_ms.is_some()
            }
            Command::PenDown { anchor, frame_ms, .. } | Command::Laser { anchor, frame_ms, .. } => {
                !anchor.is_screen() || frame_ms.is_some()
            }
            Command::PenMove { frame_ms, .. } => frame_ms.is_some(),
            _ => false,
        }
    }

    /// The capture time of the frame the viewer drew on, when it said.
    pub fn frame_ms(&self) -> Option<u64> {
        match self {
            Command::PenDown { frame_ms, .. }
            | Command::PenMove { frame_ms, .. }
            | Command::Arrow { frame_ms, .. }
            | Command::Laser { frame_ms, .. } => *frame_ms,
            _ => None,
        }
    }

    /// The message name as on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Hello { .. } => "hello",
            Command::PenDown { .. } => "pen_down",
            Command::PenMove { .. } => "pen_move",
            Command::PenUp { .. } => "pen_up",
            Command::Arrow { .. } => "arrow",
            Command::Laser { .. } => "laser",
            Command::UndoMine {} => "undo_mine",
            Command::ClearMine {} => "clear_mine",
            Command::ClearAll {} => "clear_all",
            Command::Layer { .. } => "layer",
            Command::Record { .. } => "record",
            Command::Pause {} => "pause",
            Command::Play {} => "play",
            Command::Registration { .. } => "registration",
            Command::Seek { .. } => "seek",
            Command::Speed { .. } => "speed",
        }
    }
}

/// Why a message was refused; sent back to its sender as an `error` message.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum ProtocolError {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {bytes} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")]
    TooLarge {
        /// Its size.
        bytes: usize,
    },
    /// Not a JSON object of a known type with the right fields.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A version this station does not speak.
    #[error(
        "protocol version {got} is not supported (this station speaks {OLDEST_PROTOCOL_VERSION} to {PROTOCOL_VERSION})"
    )]
    Version {
        /// What was sent (0 when missing).
        got: u64,
    },
    /// A value out of its range.
    #[error("{field}: {reason}")]
    OutOfRange {
        /// Which field.
        field: &'static str,
        /// What is allowed.
        reason: &'static str,
    },
    /// The sender's role does not allow it.
    #[error("{command} needs the {needed:?} role; this viewer is {role:?}")]
    Forbidden {
        /// The message type.
        command: &'static str,
        /// Needed role.
        needed: Role,
        /// The sender's role.
        role: Role,
    },
    /// Too many messages of this kind.
    #[error("too many {class:?} messages: at most {per_second} per second")]
    RateLimited {
        /// The class.
        class: RateClass,
        /// Sustained rate allowed.
        per_second: u32,
    },
    /// The station refused it (for example: a stroke that was never started).
    #[error(transparent)]
    Refused(#[from] crate::refused::CommandRefused),
}

impl ProtocolError {
    /// A short machine-readable code for the viewer page.
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::TooLarge { .. } => "too_large",
            ProtocolError::Malformed(_) => "malformed",
            ProtocolError::Version { .. } => "version",
            ProtocolError::OutOfRange { .. } => "out_of_range",
            ProtocolError::Forbidden { .. } => "forbidden",
            ProtocolError::RateLimited { .. } => "rate_limited",
            ProtocolError::Refused(_) => "refused",
        }
    }
}

fn check_point(field: &'static str, p: &Point) -> Result<(), ProtocolError> {
    let ok = |v: f32| v.is_finite() && (-MARGIN..=1.0 + MARGIN).contains(&v);
    if ok(p[0]) && ok(p[1]) {
        Ok(())
    } else {
        Err(ProtocolError::OutOfRange { field, reason: "points are finite and within -0.25..=1.25 of the image" })
    }
}

fn check_width(width: f32) -> Result<(), ProtocolError> {
    if width.is_finite() && (0.5..=MAX_WIDTH_PX).contains(&width) {
        Ok(())
    } else {
        Err(ProtocolError::OutOfRange { field: "width", reason: "0.5 to 64 px" })
    }
}

/// `#rrggbb` as linear-ish straight RGBA in [0, 1] (alpha 1).
pub fn parse_colour(colour: &str) -> Result<[f32; 4], ProtocolError> {
    let bad = ProtocolError::OutOfRange { field: "colour", reason: "#rrggbb" };
    let hex = colour.strip_prefix('#').filter(|h| h.len() == 6 && h.is_ascii()).ok_or(bad.clone())?;
    let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map(|v| f32::from(v) / 255.0);
    match (channel(0), channel(2), channel(4)) {
        (Ok(r), Ok(g), Ok(b)) => Ok([r, g, b, 1.0]),
        _ => Err(bad),
    }
}

fn check(command: &Command) -> Result<(), ProtocolError> {
    let tail = match command {
        Command::Arrow { tail_frame_ms, .. } => *tail_frame_ms,
        _ => None,
    };
    if command.frame_ms().into_iter().chain(tail).any(|ms| ms > MAX_FRAME_MS) {
        return Err(ProtocolError::OutOfRange { field: "frame_ms", reason: "Unix ms below 2^53" });
    }
    match command {
        Command::Hello { name } => {
            let printable = name.chars().all(|c| !c.is_control());
            if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS || !printable {
                return Err(ProtocolError::OutOfRange { field: "name", reason: "1 to 32 printable characters" });
            }
        }
        Command::PenDown { at, colour, width, .. } => {
            check_point("at", at)?;
            parse_colour(colour)?;
            check_width(*width)?;
        }
        Command::PenMove { points, .. } => {
            if points.is_empty() || points.len() > MAX_POINTS_PER_MESSAGE {
                return Err(ProtocolError::OutOfRange { field: "points", reason: "1 to 128 points per message" });
            }
            points.iter().try_for_each(|p| check_point("points", p))?;
        }
        Command::Arrow { from, to, colour, width, .. } => {
            check_point("from", from)?;
            check_point("to", to)?;
            parse_colour(colour)?;
            check_width(*width)?;
        }
        Command::Laser { at, .. } => check_point("at", at)?,
        Command::Layer { layer: Layer::Model(name), .. } if name.is_empty() || name.len() > 64 => {
            return Err(ProtocolError::OutOfRange { field: "layer", reason: "a model name of 1 to 64 bytes" });
        }
        Command::Registration { step: RegistrationStep::Redo, fiducial } => match fiducial {
            Some(n) if (1..=MAX_FIDUCIALS).contains(n) => {}
            _ => return Err(ProtocolError::OutOfRange { field: "fiducial", reason: "redo names a fiducial, 1 to 64" }),
        },
        Command::Registration { fiducial: Some(_), .. } => {
            return Err(ProtocolError::OutOfRange { field: "fiducial", reason: "only redo names a fiducial" });
        }
        Command::Seek { to_ms } if *to_ms > MAX_SEEK_MS => {
            return Err(ProtocolError::OutOfRange { field: "to_ms", reason: "at most one week" });
        }
        Command::Speed { factor } if !(factor.is_finite() && (MIN_SPEED..=MAX_SPEED).contains(factor)) => {
            return Err(ProtocolError::OutOfRange { field: "factor", reason: "0.25 to 4" });
        }
        Command::PenUp { .. }
        | Command::Record { .. }
        | Command::Pause {}
        | Command::Play {}
        | Command::Seek { .. }
        | Command::Speed { .. }
        | Command::UndoMine {}
        | Command::ClearMine {}
        | Command::ClearAll {}
        | Command::Layer { .. }
        | Command::Registration { .. } => {}
    }
    Ok(())
}

/// Parses and checks one message from a viewer. Never panics, whatever the bytes.
pub fn parse_command(bytes: &[u8]) -> Result<Command, ProtocolError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::TooLarge { bytes: bytes.len() });
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    let object = value.as_object_mut().ok_or_else(|| ProtocolError::Malformed("not a JSON object".into()))?;
    let version = object.remove("v").and_then(|v| v.as_u64()).unwrap_or(0);
    if !(u64::from(OLDEST_PROTOCOL_VERSION)..=u64::from(PROTOCOL_VERSION)).contains(&version) {
        return Err(ProtocolError::Version { got: version });
    }
    let command: Command = serde_json::from_value(value).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    if version < 2 && command.needs_version_2() {
        return Err(ProtocolError::Malformed("anchor and frame_ms need protocol version 2".into()));
    }
    check(&command)?;
    Ok(command)
}

/// One participant as presence shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    /// The session's number on this station (never its WHEP resource name).
    pub id: u64,
    /// Their display name.
    pub name: String,
    /// Their role.
    pub role: Role,
}

/// A message from the station.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notice {
    /// First message on a channel: who you are and what you may do.
    Welcome {
        /// Protocol version.
        v: u32,
        /// Your session id.
        id: u64,
        /// Your role.
        role: Role,
    },
    /// Everyone watching, on every join, leave or rename.
    Presence {
        /// Protocol version.
        v: u32,
        /// The participants, by id.
        viewers: Vec<Participant>,
    },
    /// A message of yours was refused.
    Error {
        /// Protocol version.
        v: u32,
        /// Machine-readable code ([`ProtocolError::code`]).
        code: String,
        /// What was wrong, in words.
        message: String,
    },
    /// Whether the station is recording: on joining and on every change.
    Recording {
        /// Protocol version.
        v: u32,
        /// A session is being recorded.
        on: bool,
    },
    /// Whether every tracked model is drawn at a current tracker pose: on
    /// joining and on every change, to everyone (a stale pose is never shown
    /// as if it were right, and every page says so).
    Tracking {
        /// Protocol version.
        v: u32,
        /// Every tracked model has a current pose.
        tracked: bool,
        /// Which models are not tracked and why, in words (empty when tracked).
        message: String,
    },
    /// Where a replay is: on joining and on every change, to everyone (the
    /// trainees' pages follow the trainer's).
    Playback {
        /// Protocol version.
        v: u32,
        /// Held by the trainer.
        paused: bool,
        /// Played past the last frame.
        ended: bool,
        /// The position, ms of the recording's timeline.
        position_ms: u64,
        /// The recording's length, ms.
        duration_ms: u64,
        /// × recorded pace.
        speed: f32,
        /// The overlays are drawn afresh: layers switch and drawing works
        /// (otherwise the composited stream plays as recorded).
        drawing: bool,
    },
    /// The marks drawn now and where each stays (on the anatomy or on the
    /// screen, and why a point stayed on the screen): on joining and on
    /// every change, to everyone. The newest [`MAX_MARKS_LISTED`].
    Marks {
        /// Protocol version.
        v: u32,
        /// Oldest first.
        marks: Vec<MarkState>,
    },
    /// The registration desk: on joining and on every change, to everyone
    /// (the operator's page collects; the others see the errors).
    Registration {
        /// Protocol version.
        v: u32,
        /// The desk (boxed: by far the largest notice).
        state: Box<RegistrationState>,
    },
}

impl Notice {
    /// The refusal of a message.
    pub fn error(e: &ProtocolError) -> Self {
        Notice::Error { v: PROTOCOL_VERSION, code: e.code().into(), message: e.to_string() }
    }

    /// As JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// A token bucket per [`RateClass`]: `burst` messages at once, `per_second`
/// sustained. Time comes in as ns on any monotonic clock.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    buckets: [(f64, u64); 3],
}

/// (sustained per second, burst) per class.
const fn limits(class: RateClass) -> (u32, u32) {
    match class {
        // A pen at 120 Hz (a fast tablet), with room for a burst after a stall.
        RateClass::Pointer => (120, 240),
        RateClass::Shape => (10, 20),
        RateClass::Control => (5, 10),
    }
}

fn index(class: RateClass) -> usize {
    match class {
        RateClass::Pointer => 0,
        RateClass::Shape => 1,
        RateClass::Control => 2,
    }
}

impl RateLimiter {
    /// Full buckets at `now_ns`.
    pub fn new(now_ns: u64) -> Self {
        let full = |c| (f64::from(limits(c).1), now_ns);
        Self { buckets: [full(RateClass::Pointer), full(RateClass::Shape), full(RateClass::Control)] }
    }

    /// Takes one message of `class` at `now_ns`, or says it is over the limit.
    pub fn admit(&mut self, class: RateClass, now_ns: u64) -> Result<(), ProtocolError> {
        let (per_second, burst) = limits(class);
        let (tokens, last) = &mut self.buckets[index(class)];
        let elapsed_s = now_ns.saturating_sub(*last) as f64 / 1e9;
        *tokens = (*tokens + elapsed_s * f64::from(per_second)).min(f64::from(burst));
        *last = now_ns.max(*last);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(ProtocolError::RateLimited { class, per_second })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strokes_parse_with_their_version_and_checked_values() {
        let pen =
            parse_command(br##"{"v":1,"type":"pen_down","stroke":7,"at":[0.5,0.25],"colour":"#00ff80","width":6}"##)
                .expect("valid pen_down");
        assert_eq!(
            pen,
            Command::PenDown {
                stroke: 7,
                at: [0.5, 0.25],
                colour: "#00ff80".into(),
                width: 6.0,
                pinned: false,
                anchor: Anchor::Screen,
                frame_ms: None
            }
        );
        assert_eq!(pen.needs(), Role::Annotator);
        assert_eq!(parse_colour("#00ff80"), Ok([0.0, 1.0, 128.0 / 255.0, 1.0]));
        let layer =
            parse_command(br#"{"v":1,"type":"layer","layer":{"model":"liver"},"visible":false}"#).expect("model layer");
        assert_eq!(layer, Command::Layer { layer: Layer::Model("liver".into()), visible: false });
        assert_eq!(parse_command(br#"{"v":1,"type":"clear_all"}"#).map(|c| c.needs()), Ok(Role::Operator));
    }

    #[test]
    fn bad_messages_say_what_is_wrong() {
        let err = |bytes: &[u8]| parse_command(bytes).expect_err("refused");
        assert_eq!(err(br#"{"type":"undo_mine"}"#), ProtocolError::Version { got: 0 });
        assert_eq!(err(br#"{"v":3,"type":"undo_mine"}"#), ProtocolError::Version { got: 3 });
        assert!(matches!(err(b"[1,2]"), ProtocolError::Malformed(_)));
        assert!(matches!(err(b"\xff\xfe"), ProtocolError::Malformed(_)));
        assert!(matches!(err(br#"{"v":1,"type":"format_disk"}"#), ProtocolError::Malformed(_)));
        assert!(matches!(err(br#"{"v":1,"type":"undo_mine","extra":1}"#), ProtocolError::Malformed(_)));
        let far = br##"{"v":1,"type":"laser","at":[3.0,0.5]}"##;
        assert!(matches!(err(far), ProtocolError::OutOfRange { field: "at", .. }));
        let colour = br##"{"v":1,"type":"arrow","from":[0,0],"to":[1,1],"colour":"red","width":4}"##;
        assert!(matches!(err(colour), ProtocolError::OutOfRange { field: "colour", .. }));
        let wide = br##"{"v":1,"type":"arrow","from":[0,0],"to":[1,1],"colour":"#ffffff","width":1e9}"##;
        assert!(matches!(err(wide), ProtocolError::OutOfRange { field: "width", .. }));
        let many = format!(r#"{{"v":1,"type":"pen_move","stroke":1,"points":[{}]}}"#, vec!["[0.1,0.1]"; 129].join(","));
        assert!(matches!(err(many.as_bytes()), ProtocolError::OutOfRange { field: "points", .. }));
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert_eq!(err(&big), ProtocolError::TooLarge { bytes: MAX_MESSAGE_BYTES + 1 });
        let name = br#"{"v":1,"type":"hello","name":"a\u0000b"}"#;
        assert!(matches!(err(name), ProtocolError::OutOfRange { field: "name", .. }));
        assert_eq!(ProtocolError::Version { got: 2 }.code(), "version");
    }

    #[test]
    fn version_2_marks_say_where_they_stay_and_version_1_pages_keep_working() {
        let ok = |bytes: &[u8]| parse_command(bytes).expect("valid");
        // A version 1 page's messages, unchanged.
        let v1 = ok(br##"{"v":1,"type":"arrow","from":[0.1,0.1],"to":[0.5,0.5],"colour":"#ffffff","width":4}"##);
        assert!(matches!(v1, Command::Arrow { anchor: Anchor::Screen, frame_ms: None, .. }));
        assert_eq!(ok(br#"{"v":1,"type":"laser","at":[0.5,0.5]}"#).frame_ms(), None);
        // Version 2: on the anatomy, with the frame the viewer drew on.
        let pen = ok(
            br##"{"v":2,"type":"pen_down","stroke":1,"at":[0.5,0.5],"colour":"#ff00ff","width":8,"anchor":"anatomy","frame_ms":1796000000123}"##,
        );
        assert!(matches!(pen, Command::PenDown { anchor: Anchor::Anatomy, frame_ms: Some(1_796_000_000_123), .. }));
        let moved = ok(br#"{"v":2,"type":"pen_move","stroke":1,"points":[[0.5,0.6]],"frame_ms":1796000000140}"#);
        assert_eq!(moved.frame_ms(), Some(1_796_000_000_140));
        assert_eq!(ok(br#"{"v":2,"type":"undo_mine"}"#), Command::UndoMine {});
        // What a page sends reads back the same (the page's own encoder is JSON.stringify).
        let text = serde_json::to_string(&pen).expect("serialises");
        assert!(text.contains(r#""anchor":"anatomy""#) && text.contains(r#""frame_ms":1796000000123"#), "{text}");
        let screen = serde_json::to_string(&v1).expect("serialises");
        assert!(!screen.contains("anchor") && !screen.contains("frame_ms"), "version 1 fields only: {screen}");
        let err = |bytes: &[u8]| parse_command(bytes).expect_err("refused");
        // Version 2 fields in a version 1 message, a bad anchor, a frame time no page can hold.
        assert!(
            matches!(err(br#"{"v":1,"type":"laser","at":[0.5,0.5],"anchor":"anatomy"}"#), ProtocolError::Malformed(m) if m.contains("version 2"))
        );
        assert!(matches!(
            err(br#"{"v":1,"type":"pen_move","stroke":1,"points":[[0.5,0.6]],"frame_ms":5}"#),
            ProtocolError::Malformed(_)
        ));
        assert!(matches!(
            err(br#"{"v":2,"type":"laser","at":[0.5,0.5],"anchor":"liver"}"#),
            ProtocolError::Malformed(_)
        ));
        assert!(matches!(
            err(br#"{"v":2,"type":"laser","at":[0.5,0.5],"frame_ms":18014398509481984}"#),
            ProtocolError::OutOfRange { field: "frame_ms", .. }
        ));
        assert!(matches!(err(br#"{"v":2,"type":"laser","at":[0.5,0.5],"frame_ms":-1}"#), ProtocolError::Malformed(_)));
        let marks = Notice::Marks {
            v: PROTOCOL_VERSION,
            marks: vec![MarkState {
                id: 4,
                by: 2,
                shape: "stroke".into(),
                anchor: Anchor::Anatomy,
                on_anatomy: 30,
                on_screen: 2,
                model: Some("surface".into()),
                message: "2 points: no model surface under them".into(),
            }],
        };
        let back: Notice = serde_json::from_str(&marks.to_json()).expect("reads back");
        assert_eq!(back, marks);
        assert!(marks.to_json().starts_with(r#"{"type":"marks","v":2,"#), "{}", marks.to_json());
    }

    #[test]
    fn registration_steps_are_for_operators_and_only_redo_names_a_fiducial() {
        let ok = |bytes: &[u8]| parse_command(bytes).expect("valid");
        let take = ok(br#"{"v":1,"type":"registration","step":"take"}"#);
        assert_eq!(take, Command::Registration { step: RegistrationStep::Take, fiducial: None });
        assert_eq!(take.needs(), Role::Operator);
        assert_eq!(
            ok(br#"{"v":1,"type":"registration","step":"redo","fiducial":3}"#),
            Command::Registration { step: RegistrationStep::Redo, fiducial: Some(3) }
        );
        let err = |bytes: &[u8]| parse_command(bytes).expect_err("refused");
        for bad in [
            &br#"{"v":1,"type":"registration","step":"redo"}"#[..],
            br#"{"v":1,"type":"registration","step":"redo","fiducial":0}"#,
            br#"{"v":1,"type":"registration","step":"redo","fiducial":65}"#,
            br#"{"v":1,"type":"registration","step":"take","fiducial":2}"#,
        ] {
            assert!(
                matches!(err(bad), ProtocolError::OutOfRange { field: "fiducial", .. }),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(err(br#"{"v":1,"type":"registration","step":"erase"}"#), ProtocolError::Malformed(_)));
        let state = RegistrationState {
            phase: "review".into(),
            fiducials: vec![FiducialState {
                taken: true,
                residual_mm: Some(0.4),
                leave_one_out_mm: Some(0.6),
                suspect: false,
            }],
            next: None,
            pointer: "still".into(),
            tip_mm: Some([1.0, 2.0, 3.0]),
            pivot_rms_mm: None,
            fre_mm: Some(0.4),
            tre_mm: Some(0.3),
            target: "tumour centroid".into(),
            surface_points: 0,
            surface_rms_mm: None,
            surface_change_mm: None,
            message: "check FRE and TRE, then accept".into(),
            accepted_by: None,
        };
        let notice = Notice::Registration { v: 1, state: Box::new(state) };
        let back: Notice = serde_json::from_str(&notice.to_json()).expect("reads back");
        assert_eq!(back, notice);
    }

    #[test]
    fn recording_and_replay_control_is_for_operators_with_checked_values() {
        let ok = |bytes: &[u8]| parse_command(bytes).expect("valid");
        assert_eq!(ok(br#"{"v":1,"type":"record","on":true}"#), Command::Record { on: true });
        assert_eq!(ok(br#"{"v":1,"type":"seek","to_ms":61000}"#), Command::Seek { to_ms: 61_000 });
        assert_eq!(ok(br#"{"v":1,"type":"speed","factor":0.25}"#), Command::Speed { factor: 0.25 });
        for command in
            [&br#"{"v":1,"type":"pause"}"#[..], br#"{"v":1,"type":"play"}"#, br#"{"v":1,"type":"record","on":false}"#]
        {
            assert_eq!(ok(command).needs(), Role::Operator, "{}", String::from_utf8_lossy(command));
        }
        let err = |bytes: &[u8]| parse_command(bytes).expect_err("refused");
        assert!(matches!(
            err(br#"{"v":1,"type":"speed","factor":8}"#),
            ProtocolError::OutOfRange { field: "factor", .. }
        ));
        assert!(matches!(err(br#"{"v":1,"type":"speed","factor":0.1}"#), ProtocolError::OutOfRange { .. }));
        assert!(matches!(err(br#"{"v":1,"type":"seek","to_ms":-5}"#), ProtocolError::Malformed(_)));
        assert!(matches!(err(br#"{"v":1,"type":"seek","to_ms":1e30}"#), ProtocolError::Malformed(_)));
        assert!(matches!(err(br#"{"v":1,"type":"seek","to_ms":999999999999}"#), ProtocolError::OutOfRange { .. }));
        let state = Notice::Playback {
            v: 1,
            paused: true,
            ended: false,
            position_ms: 1500,
            duration_ms: 20000,
            speed: 2.0,
            drawing: false,
        };
        assert_eq!(
            state.to_json(),
            r#"{"type":"playback","v":1,"paused":true,"ended":false,"position_ms":1500,"duration_ms":20000,"speed":2.0,"drawing":false}"#
        );
    }

    #[test]
    fn rate_limits_allow_a_burst_then_the_sustained_rate() {
        let mut limiter = RateLimiter::new(0);
        for _ in 0..10 {
            limiter.admit(RateClass::Control, 0).expect("within the burst");
        }
        assert!(matches!(limiter.admit(RateClass::Control, 0), Err(ProtocolError::RateLimited { .. })));
        // Other classes have their own buckets.
        limiter.admit(RateClass::Pointer, 0).expect("pointer bucket is separate");
        // 5 per second: one more after 200 ms, not after 100 ms.
        assert!(limiter.admit(RateClass::Control, 100_000_000).is_err());
        limiter.admit(RateClass::Control, 200_000_000).expect("refilled");
    }

    #[test]
    fn notices_serialise_with_type_and_version() {
        let text = Notice::error(&ProtocolError::Refused(crate::refused::CommandRefused::NoStrokeToLift { stroke: 3 }))
            .to_json();
        assert_eq!(text, r#"{"type":"error","v":2,"code":"refused","message":"no open stroke 3"}"#);
        let presence =
            Notice::Presence { v: 1, viewers: vec![Participant { id: 2, name: "Dr A".into(), role: Role::Annotator }] };
        assert_eq!(
            presence.to_json(),
            r#"{"type":"presence","v":1,"viewers":[{"id":2,"name":"Dr A","role":"annotator"}]}"#
        );
        let tracking =
            Notice::Tracking { v: 1, tracked: false, message: "liver: no tracker_from_scope received".into() };
        assert_eq!(
            tracking.to_json(),
            r#"{"type":"tracking","v":1,"tracked":false,"message":"liver: no tracker_from_scope received"}"#
        );
    }
}
