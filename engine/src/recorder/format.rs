//! The recording format, defined once: the session folder's `manifest.json`
//! ([`Manifest`]) and the records of its `timeline.bin` ([`TimelineRecord`],
//! a JSON object tagged by `kind`; the file's framing is in
//! [`super::timeline`]), including the recorded scene ([`SceneRecord`]).
//! The recorder writes these types and every reader (replay, `recordings
//! list|info|verify|export`, repair) reads them; nobody indexes JSON by
//! string keys.
//!
//! Version: [`FORMAT`] (`scopecast-recording/1`) in the manifest. Within a
//! version fields are only added, as optional ones; a timeline record of a
//! kind this build does not know reads as [`TimelineRecord::Other`] and is
//! skipped. Recordings written before these types existed have the same JSON
//! shape and read unchanged (the test `a_recording_written_before_the_types_reads`).

use glam::{Mat4, Vec2};
use scopecast_transport::access::AccessRecord;
use serde::{Deserialize, Serialize};

use crate::scene::{Annotation, AnnotationEntry, MarkPoint, MarkShape, OutputMode, Scene};

/// The manifest's format name and version.
pub const FORMAT: &str = "scopecast-recording/1";

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Being written, or cut off by a crash before it was finished.
    Recording,
    /// Stopped cleanly.
    Finished,
    /// Found unfinished at a station's start and repaired.
    Repaired,
    /// A state this build does not know (a newer station's).
    #[serde(other)]
    Unknown,
}

impl SessionState {
    /// The word the manifest uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Recording => "recording",
            SessionState::Finished => "finished",
            SessionState::Repaired => "repaired",
            SessionState::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The calibration and models a session was recorded with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SetupRecord {
    /// The calibration file's contents (its own JSON format, see
    /// `scopecast-calibration`), or `"synthetic"` / `"none"`, or null when
    /// the file could not be read.
    #[serde(default)]
    pub calibration: serde_json::Value,
    /// The models' file names.
    #[serde(default)]
    pub models: Vec<String>,
}

/// The encoder settings a session was recorded with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderRecord {
    /// The configured encoder kind (`Auto`, `X264`, ...).
    pub kind: String,
    /// Target bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// Keyframe interval, s.
    pub keyframe_interval_s: f64,
    /// Source width, px.
    pub width: u32,
    /// Source height, px.
    pub height: u32,
    /// Source frame rate, frames/s.
    pub fps: u32,
}

/// What repairing an unfinished session did (in the manifest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairRecord {
    /// Bytes cut from torn tails (segments and timeline).
    pub cut_bytes: u64,
    /// Segments removed because not even their header was whole.
    pub removed_segments: u32,
}

/// `manifest.json`: written when a session starts, rewritten (atomically)
/// when it finishes or is repaired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The folder's name: a UTC stamp and a random suffix (no patient data).
    #[serde(default)]
    pub session: String,
    /// Where the session is in its life.
    pub state: SessionState,
    /// When it started, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_wall_ms: Option<u64>,
    /// The station's name (from the config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub station: Option<String>,
    /// Calibration and models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<SetupRecord>,
    /// Encoder settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<EncoderRecord>,
    /// When it finished, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_wall_ms: Option<u64>,
    /// From start to finish, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Segments of what viewers saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<u32>,
    /// Segments of the clean video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_segments: Option<u32>,
    /// Frames not recorded (queue full, waiting for a keyframe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_frames: Option<u64>,
    /// Gaps in the recording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gaps: Option<u64>,
    /// When it was repaired, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repaired_wall_ms: Option<u64>,
    /// What the repair did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair: Option<RepairRecord>,
}

impl Manifest {
    /// A session that starts now.
    pub fn started(
        session: String,
        started_wall_ms: u64,
        station: String,
        setup: SetupRecord,
        encoder: EncoderRecord,
    ) -> Self {
        Self {
            format: FORMAT.to_string(),
            session,
            state: SessionState::Recording,
            started_wall_ms: Some(started_wall_ms),
            station: Some(station),
            setup: Some(setup),
            encoder: Some(encoder),
            ..Self::bare(String::new())
        }
    }

    /// A manifest that names only its session (when the written one is unreadable).
    pub fn bare(session: String) -> Self {
        Self {
            format: FORMAT.to_string(),
            session,
            state: SessionState::Recording,
            started_wall_ms: None,
            station: None,
            setup: None,
            encoder: None,
            finished_wall_ms: None,
            duration_ms: None,
            segments: None,
            clean_segments: None,
            dropped_frames: None,
            gaps: None,
            repaired_wall_ms: None,
            repair: None,
        }
    }

    /// The file's text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Why `manifest.json` is not a manifest of ours.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, or not the shape of a manifest.
    #[error("manifest.json: {0}")]
    Unreadable(String),
    /// Another format (or another version of ours).
    #[error("format {found}, not {FORMAT}")]
    Foreign {
        /// The `format` it names (or `null`).
        found: String,
    },
}

impl Manifest {
    /// Parses `manifest.json`'s bytes, checking the format first (so a
    /// foreign file is named as such, not as malformed).
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Unreadable(e.to_string()))?;
        if value.get("format").and_then(serde_json::Value::as_str) != Some(FORMAT) {
            let found = value.get("format").map_or_else(|| "null".to_string(), ToString::to_string);
            return Err(ManifestError::Foreign { found });
        }
        serde_json::from_value(value).map_err(|e| ManifestError::Unreadable(e.to_string()))
    }
}

/// One record of the timeline, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimelineRecord {
    /// The session started.
    Start {
        /// Unix ms.
        wall_ms: u64,
        /// Station clock, ns.
        t_ns: u64,
    },
    /// A segment of what viewers saw starts.
    Segment(SegmentRecord),
    /// A segment of the clean video starts.
    CleanSegment(SegmentRecord),
    /// The scene changed; from the frame captured at `t_ns` on.
    Scene {
        /// Capture time of the first frame that showed it, station clock, ns.
        t_ns: u64,
        /// That frame's capture wall time, Unix ms.
        wall_ms: u64,
        /// The scene store's version.
        version: u64,
        /// The scene.
        scene: SceneRecord,
    },
    /// Frames are missing from here.
    Gap {
        /// Capture time of the frame that found the gap, ns.
        t_ns: u64,
        /// Why (`queue full`, an I/O error kind).
        reason: String,
    },
    /// Someone joined, left or acted (the access log's record).
    Access(AccessRecord),
    /// Tracked models lost or regained their poses (the tracking watchdog).
    Tracking {
        /// Capture time of the frame where it changed, station clock, ns.
        t_ns: u64,
        /// That frame's capture wall time, Unix ms.
        wall_ms: u64,
        /// Every tracked model has a current pose again.
        tracked: bool,
        /// Which models are not tracked and why, in words (empty when tracked).
        reason: String,
    },
    /// A registration was accepted at the station (or was in use when the
    /// session started): from here the overlay uses it.
    Registration {
        /// Station clock, ns.
        t_ns: u64,
        /// Unix ms.
        wall_ms: u64,
        /// The registration as its file has it (no patient data; boxed: the largest record).
        file: Box<crate::tracking::registration_file::RegistrationFile>,
    },
    /// Tracked models' poses, frame by frame, as the compositor drew them
    /// (a batch of up to [`POSES_PER_RECORD_NS`] of frames): a re-composited
    /// replay places the models, and the marks on them, where they were.
    Poses {
        /// The frames, oldest first.
        frames: Vec<FramePosesRecord>,
    },
    /// The session stopped.
    Stop {
        /// Unix ms.
        wall_ms: u64,
        /// Station clock, ns.
        t_ns: u64,
    },
    /// A record of a kind this build does not know (skipped).
    #[serde(other)]
    Other,
}

/// How much of the frames' poses one `poses` record holds, ns of capture
/// time (what a video fragment holds: both are synced as often).
pub const POSES_PER_RECORD_NS: u64 = 500_000_000;

/// One frame's tracked poses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FramePosesRecord {
    /// The frame's capture time, station clock, ns.
    pub t_ns: u64,
    /// Its capture wall time, Unix ms.
    pub wall_ms: u64,
    /// Each tracked model.
    pub models: Vec<ModelPoseRecord>,
}

/// How a tracked model was drawn in one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPoseRecord {
    /// Its name.
    pub name: String,
    /// Tracked at the frame's capture time (`false`: drawn where its last pose put it, or hidden).
    pub tracked: bool,
    /// camera_from_model, column-major, mm; `None`: not drawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera_from_model: Option<[f32; 16]>,
}

/// Where a segment starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    /// Its number (`segment-000042.mp4` is 42).
    pub index: u64,
    /// Capture time of its first frame, station clock, ns.
    pub t_ns: u64,
    /// That frame's capture wall time, Unix ms.
    pub wall_ms: u64,
    /// Picture width, px (0: not recorded).
    #[serde(default)]
    pub width: u32,
    /// Picture height, px (0: not recorded).
    #[serde(default)]
    pub height: u32,
}

impl TimelineRecord {
    /// The record in a timeline payload; [`TimelineRecord::Other`] for a
    /// JSON object this build cannot read (never trusted half-way).
    pub fn from_json(value: serde_json::Value) -> Self {
        serde_json::from_value(value).unwrap_or(TimelineRecord::Other)
    }

    /// The payload.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Layer switches as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayersRecord {
    /// The 3D anatomy overlay.
    pub anatomy: bool,
    /// The 2D annotations.
    pub annotations: bool,
}

/// A model as recorded (its mesh comes from the replay's config, by name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// Its name in the config.
    pub name: String,
    /// Shown.
    pub visible: bool,
    /// 0 to 1.
    pub opacity: f32,
    /// Linear RGB.
    pub colour: [f32; 3],
    /// Model (mm) to camera (mm), column major.
    pub camera_from_model: [f32; 16],
}

/// An annotation's drawing as recorded: `{"stroke": {…}}`, `{"arrow": {…}}`
/// or `{"label": {…}}`. Points are normalized output-image coordinates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShapeRecord {
    /// A freehand stroke.
    Stroke {
        /// Points along it.
        points: Vec<[f32; 2]>,
        /// Straight RGBA.
        colour: [f32; 4],
        /// Width, output px.
        width_px: f32,
    },
    /// An arrow.
    Arrow {
        /// Tail.
        from: [f32; 2],
        /// Head.
        to: [f32; 2],
        /// Straight RGBA.
        colour: [f32; 4],
        /// Width, output px.
        width_px: f32,
    },
    /// A mark on the anatomy (`Annotation::Anchored`): `shape` is `stroke`
    /// or `arrow`; a replay re-projects it with each frame's pose.
    Anchored {
        /// `stroke` or `arrow`.
        shape: MarkShapeRecord,
        /// Its points: on a model of this record's `models` (by index) or on the screen.
        points: Vec<MarkPointRecord>,
        /// Straight RGBA.
        colour: [f32; 4],
        /// Width, output px.
        width_px: f32,
    },
    /// A text label.
    Label {
        /// Top-left corner.
        at: [f32; 2],
        /// The text.
        text: String,
        /// Straight RGBA.
        colour: [f32; 4],
        /// Text height, output px.
        size_px: f32,
    },
}

/// An anchored mark's shape as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkShapeRecord {
    /// Through its points.
    Stroke,
    /// From the first point to the second.
    Arrow,
}

/// An anchored mark's point as recorded: `{"screen": [x, y]}` (normalized
/// output coordinates) or `{"on_model": {"model": i, "at_mm": [x, y, z]}}`
/// (model coordinates, mm).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkPointRecord {
    /// On the screen.
    Screen([f32; 2]),
    /// On a model's surface.
    OnModel {
        /// The model's index in the record's `models`.
        model: u16,
        /// Model coordinates, mm.
        at_mm: [f32; 3],
    },
}

impl From<&MarkPoint> for MarkPointRecord {
    fn from(point: &MarkPoint) -> Self {
        match point {
            MarkPoint::Screen(at) => MarkPointRecord::Screen(at.to_array()),
            MarkPoint::OnModel { model, at_mm } => MarkPointRecord::OnModel { model: *model, at_mm: at_mm.to_array() },
        }
    }
}

impl From<&MarkPointRecord> for MarkPoint {
    fn from(point: &MarkPointRecord) -> Self {
        match point {
            MarkPointRecord::Screen(at) => MarkPoint::Screen(Vec2::from_array(*at)),
            MarkPointRecord::OnModel { model, at_mm } => {
                MarkPoint::OnModel { model: *model, at_mm: glam::Vec3::from_array(*at_mm) }
            }
        }
    }
}

/// An annotation as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnotationRecord {
    /// Who drew it.
    pub author: String,
    /// When, station clock, ns.
    pub time_ns: u64,
    /// Its id for its author's edits.
    pub id: u64,
    /// When it has faded out, station clock, ns (`None`: pinned).
    #[serde(default)]
    pub expires_ns: Option<u64>,
    /// The drawing.
    pub shape: ShapeRecord,
}

/// The scene as a `scene` record holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneRecord {
    /// Layer switches.
    pub layers: LayersRecord,
    /// Undistorted output.
    pub undistorted: bool,
    /// The models.
    pub models: Vec<ModelRecord>,
    /// The annotations, oldest first.
    pub annotations: Vec<AnnotationRecord>,
}

impl From<&Annotation> for ShapeRecord {
    fn from(annotation: &Annotation) -> Self {
        match annotation {
            Annotation::Stroke { points, colour, width_px } => ShapeRecord::Stroke {
                points: points.iter().map(Vec2::to_array).collect(),
                colour: *colour,
                width_px: *width_px,
            },
            Annotation::Arrow { from, to, colour, width_px } => {
                ShapeRecord::Arrow { from: from.to_array(), to: to.to_array(), colour: *colour, width_px: *width_px }
            }
            Annotation::Anchored { shape, points, colour, width_px } => ShapeRecord::Anchored {
                shape: match shape {
                    MarkShape::Stroke => MarkShapeRecord::Stroke,
                    MarkShape::Arrow => MarkShapeRecord::Arrow,
                },
                points: points.iter().map(MarkPointRecord::from).collect(),
                colour: *colour,
                width_px: *width_px,
            },
            Annotation::Label { at, text, colour, size_px } => {
                ShapeRecord::Label { at: at.to_array(), text: text.clone(), colour: *colour, size_px: *size_px }
            }
        }
    }
}

impl From<&ShapeRecord> for Annotation {
    fn from(shape: &ShapeRecord) -> Self {
        match shape {
            ShapeRecord::Stroke { points, colour, width_px } => Annotation::Stroke {
                points: points.iter().copied().map(Vec2::from_array).collect(),
                colour: *colour,
                width_px: *width_px,
            },
            ShapeRecord::Arrow { from, to, colour, width_px } => Annotation::Arrow {
                from: Vec2::from_array(*from),
                to: Vec2::from_array(*to),
                colour: *colour,
                width_px: *width_px,
            },
            ShapeRecord::Anchored { shape, points, colour, width_px } => Annotation::Anchored {
                shape: match shape {
                    MarkShapeRecord::Stroke => MarkShape::Stroke,
                    MarkShapeRecord::Arrow => MarkShape::Arrow,
                },
                points: points.iter().map(MarkPoint::from).collect(),
                colour: *colour,
                width_px: *width_px,
            },
            ShapeRecord::Label { at, text, colour, size_px } => {
                Annotation::Label { at: Vec2::from_array(*at), text: text.clone(), colour: *colour, size_px: *size_px }
            }
        }
    }
}

impl From<&Scene> for SceneRecord {
    fn from(scene: &Scene) -> Self {
        SceneRecord {
            layers: LayersRecord { anatomy: scene.layers.anatomy, annotations: scene.layers.annotations },
            undistorted: scene.output_mode == OutputMode::Undistorted,
            models: scene
                .models
                .iter()
                .map(|m| ModelRecord {
                    name: m.name.clone(),
                    visible: m.visible,
                    opacity: m.opacity,
                    colour: m.colour,
                    camera_from_model: m.camera_from_model.to_cols_array(),
                })
                .collect(),
            annotations: scene
                .annotations
                .iter()
                .map(|e| AnnotationRecord {
                    author: e.author.clone(),
                    time_ns: e.time_ns,
                    id: e.id,
                    expires_ns: e.expires_ns,
                    shape: ShapeRecord::from(&e.annotation),
                })
                .collect(),
        }
    }
}

impl AnnotationRecord {
    /// The annotation, its author prefixed with `author_prefix`.
    pub fn entry(&self, author_prefix: &str) -> AnnotationEntry {
        AnnotationEntry {
            author: format!("{author_prefix}{}", self.author),
            time_ns: self.time_ns,
            annotation: Annotation::from(&self.shape),
            id: self.id,
            expires_ns: self.expires_ns,
        }
    }
}

impl ModelRecord {
    /// Its pose as a matrix.
    pub fn camera_from_model(&self) -> Mat4 {
        Mat4::from_cols_array(&self.camera_from_model)
    }
}

#[cfg(test)]
mod tests {
    use scopecast_transport::access::{ACCESS_LOG_VERSION, AccessEvent, LeaveReason, Who};
    use scopecast_transport::auth::Role;

    use super::*;

    fn scene_record() -> SceneRecord {
        SceneRecord {
            layers: LayersRecord { anatomy: true, annotations: false },
            undistorted: true,
            models: vec![ModelRecord {
                name: "liver".into(),
                visible: true,
                opacity: 0.6,
                colour: [0.8, 0.3, 0.2],
                camera_from_model: Mat4::from_translation(glam::Vec3::new(1.0, 2.0, 150.0)).to_cols_array(),
            }],
            annotations: vec![
                AnnotationRecord {
                    author: "Dr A".into(),
                    time_ns: 5,
                    id: 2,
                    expires_ns: Some(9),
                    shape: ShapeRecord::Stroke {
                        points: vec![[0.1, 0.2], [0.3, 0.4]],
                        colour: [1.0, 0.0, 0.0, 1.0],
                        width_px: 4.0,
                    },
                },
                AnnotationRecord {
                    author: "operator".into(),
                    time_ns: 6,
                    id: 0,
                    expires_ns: None,
                    shape: ShapeRecord::Label { at: [0.5, 0.5], text: "bleed".into(), colour: [1.0; 4], size_px: 20.0 },
                },
                AnnotationRecord {
                    author: "viewer-3".into(),
                    time_ns: 7,
                    id: 4,
                    expires_ns: None,
                    shape: ShapeRecord::Anchored {
                        shape: MarkShapeRecord::Arrow,
                        points: vec![
                            MarkPointRecord::OnModel { model: 0, at_mm: [1.5, -2.0, 0.25] },
                            MarkPointRecord::Screen([0.4, 0.6]),
                        ],
                        colour: [1.0, 0.0, 1.0, 1.0],
                        width_px: 8.0,
                    },
                },
            ],
        }
    }

    #[test]
    fn every_record_and_the_manifest_round_trip() {
        let records = [
            TimelineRecord::Start { wall_ms: 1, t_ns: 2 },
            TimelineRecord::Segment(SegmentRecord { index: 1, t_ns: 3, wall_ms: 4, width: 1280, height: 720 }),
            TimelineRecord::CleanSegment(SegmentRecord { index: 1, t_ns: 3, wall_ms: 4, width: 1280, height: 720 }),
            TimelineRecord::Scene { t_ns: 5, wall_ms: 6, version: 7, scene: scene_record() },
            TimelineRecord::Gap { t_ns: 8, reason: "queue full".into() },
            TimelineRecord::Tracking {
                t_ns: 9,
                wall_ms: 10,
                tracked: false,
                reason: "liver: tracker_from_scope is 350 ms old".into(),
            },
            TimelineRecord::Access(AccessRecord {
                v: ACCESS_LOG_VERSION,
                t_unix_ms: 9,
                event: AccessEvent::Left {
                    session: 3,
                    who: Who { credential: "link:0123abcd".into(), name: Some("Dr A".into()), role: Role::Viewer },
                    reason: LeaveReason::Deleted,
                },
            }),
            TimelineRecord::Registration {
                t_ns: 10,
                wall_ms: 11,
                file: Box::new(crate::tracking::registration_file::RegistrationFile {
                    format: crate::tracking::registration_file::FORMAT.into(),
                    reference_from_model: [
                        [1.0, 0.0, 0.0, 4.5],
                        [0.0, 1.0, 0.0, -2.0],
                        [0.0, 0.0, 1.0, 80.25],
                        [0.0, 0.0, 0.0, 1.0],
                    ],
                    fre_mm: 0.4,
                    residuals_mm: vec![0.3, 0.5, 0.4],
                    leave_one_out_mm: vec![0.6, 0.9, 0.7],
                    predicted_tre_mm: Some(0.3),
                    target: Some("target".into()),
                    fiducials: 3,
                    surface: None,
                    accepted_by: "Dr A (operator)".into(),
                    accepted_wall_ms: 11,
                }),
            },
            TimelineRecord::Poses {
                frames: vec![FramePosesRecord {
                    t_ns: 12,
                    wall_ms: 13,
                    models: vec![
                        ModelPoseRecord {
                            name: "surface".into(),
                            tracked: true,
                            camera_from_model: Some(
                                Mat4::from_translation(glam::Vec3::new(1.0, 2.0, 90.0)).to_cols_array(),
                            ),
                        },
                        ModelPoseRecord { name: "target".into(), tracked: false, camera_from_model: None },
                    ],
                }],
            },
            TimelineRecord::Stop { wall_ms: 10, t_ns: 11 },
        ];
        for record in records {
            let json = record.to_json();
            let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
            assert!(value["kind"].is_string(), "{json}");
            assert_eq!(TimelineRecord::from_json(value), record, "{json}");
        }
        let mut manifest = Manifest::started(
            "20261203T100000Z-abcdef".into(),
            1_764_756_000_000,
            "station".into(),
            SetupRecord { calibration: serde_json::json!("synthetic"), models: vec!["liver.obj".into()] },
            EncoderRecord {
                kind: "Auto".into(),
                bitrate_kbps: 4000,
                keyframe_interval_s: 2.0,
                width: 1280,
                height: 720,
                fps: 30,
            },
        );
        assert_eq!(Manifest::parse(manifest.to_json().as_bytes()), Ok(manifest.clone()));
        manifest.state = SessionState::Repaired;
        manifest.repair = Some(RepairRecord { cut_bytes: 12, removed_segments: 1 });
        assert_eq!(Manifest::parse(manifest.to_json().as_bytes()), Ok(manifest));
    }

    #[test]
    fn a_recording_written_before_the_types_reads() {
        // Records and a manifest as the recorder wrote them with `json!` (commit b66ba9b).
        let scene = serde_json::json!({
            "kind": "scene", "t_ns": 5, "wall_ms": 6, "version": 7,
            "scene": {
                "layers": { "anatomy": true, "annotations": false },
                "undistorted": false,
                "models": [{ "name": "liver", "visible": true, "opacity": 0.6000000238418579,
                             "colour": [0.8, 0.3, 0.2], "camera_from_model": [1.0,0.0,0.0,0.0, 0.0,1.0,0.0,0.0, 0.0,0.0,1.0,0.0, 0.0,0.0,150.0,1.0] }],
                "annotations": [{ "author": "Dr A", "time_ns": 5, "id": 2, "expires_ns": null,
                                  "shape": { "arrow": { "from": [0.1, 0.2], "to": [0.5, 0.5], "colour": [1.0, 0.0, 0.0, 1.0], "width_px": 6.0 } } }],
            },
        });
        let TimelineRecord::Scene { scene, version: 7, .. } = TimelineRecord::from_json(scene) else {
            panic!("a scene record")
        };
        assert_eq!(scene.models[0].camera_from_model().w_axis.z, 150.0);
        let entry = scene.annotations[0].entry("recorded:");
        assert_eq!((entry.author.as_str(), entry.expires_ns), ("recorded:Dr A", None));
        assert!(matches!(entry.annotation, Annotation::Arrow { width_px: 6.0, .. }));
        let segment =
            serde_json::json!({ "kind": "segment", "index": 3, "t_ns": 1, "wall_ms": 2, "width": 640, "height": 360 });
        assert!(matches!(TimelineRecord::from_json(segment), TimelineRecord::Segment(SegmentRecord { index: 3, .. })));
        let access = serde_json::json!({ "kind": "access", "v": 1, "t_unix_ms": 9, "event": "joined", "session": 4,
                                         "who": { "credential": "config:1", "name": "Dr B", "role": "annotator" }, "address": "10.0.0.2" });
        assert!(matches!(TimelineRecord::from_json(access), TimelineRecord::Access(AccessRecord { t_unix_ms: 9, .. })));
        let manifest = br#"{ "format": "scopecast-recording/1", "session": "s", "state": "finished", "started_wall_ms": 1,
            "station": "scopecast capture station", "setup": { "calibration": "synthetic", "models": [] },
            "encoder": { "kind": "Auto", "bitrate_kbps": 4000, "keyframe_interval_s": 2.0, "width": 1280, "height": 720, "fps": 30 },
            "finished_wall_ms": 5, "duration_ms": 4, "segments": 2, "clean_segments": 0, "dropped_frames": 0, "gaps": 0 }"#;
        let manifest = Manifest::parse(manifest).expect("an old manifest");
        assert_eq!(
            (manifest.state, manifest.segments, manifest.duration_ms),
            (SessionState::Finished, Some(2), Some(4))
        );
    }

    #[test]
    fn unknown_kinds_and_broken_records_are_skipped_and_foreign_manifests_named() {
        assert_eq!(TimelineRecord::from_json(serde_json::json!({ "kind": "pose", "t_ns": 1 })), TimelineRecord::Other);
        assert_eq!(
            TimelineRecord::from_json(serde_json::json!({ "kind": "gap", "t_ns": "soon" })),
            TimelineRecord::Other
        );
        assert_eq!(TimelineRecord::from_json(serde_json::json!([1, 2])), TimelineRecord::Other);
        assert_eq!(
            Manifest::parse(br#"{ "format": "other/2", "session": "s", "state": "finished" }"#),
            Err(ManifestError::Foreign { found: "\"other/2\"".into() })
        );
        assert!(matches!(Manifest::parse(b"{ not json"), Err(ManifestError::Unreadable(_))));
        let newer = br#"{ "format": "scopecast-recording/1", "session": "s", "state": "archived", "future_field": 1 }"#;
        assert_eq!(Manifest::parse(newer).map(|m| m.state), Ok(SessionState::Unknown));
    }
}
