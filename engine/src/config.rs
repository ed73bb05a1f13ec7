//! The station's configuration: one TOML file, every field with a default,
//! CLI flags applied on top, and range checks whose errors name the file and
//! the field (and, for TOML errors, the line).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::source::SourceSpec;

/// Why a configuration could not be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped fields.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file (or `<inline>`).
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What is wrong, including the field name where TOML knows it.
        message: String,
    },
    /// A value is out of its allowed range.
    #[error("{path}: field `{field}` = {value} is invalid: {reason}")]
    Invalid {
        /// The file (or `<command line>`).
        path: PathBuf,
        /// Dotted field name, e.g. `source.fps`.
        field: &'static str,
        /// The offending value.
        value: String,
        /// What is allowed.
        reason: String,
    },
}

/// Pixel format requested from GStreamer sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatRequest {
    /// Whatever the source produces of I420, NV12 or RGBA, without conversion.
    Auto,
    /// Always RGBA.
    Rgba,
    /// Always I420.
    I420,
    /// Always NV12.
    Nv12,
}

impl fmt::Display for FormatRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FormatRequest::Auto => "auto",
            FormatRequest::Rgba => "rgba",
            FormatRequest::I420 => "i420",
            FormatRequest::Nv12 => "nv12",
        })
    }
}

/// Lens model of the synthetic endoscope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyntheticLens {
    /// Pinhole + Brown–Conrady; `distortion` holds k1, k2, p1, p2, k3.
    BrownConrady,
    /// Kannala–Brandt fisheye; `distortion` holds k1, k2, k3, k4.
    KannalaBrandt,
}

/// `[source.synthetic]`: the built-in simulated endoscope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Lens model.
    pub lens: SyntheticLens,
    /// Focal length as a fraction of the image width (fx = fy = this · width).
    pub focal_per_width: f64,
    /// Distortion coefficients in OpenCV order for the chosen lens.
    pub distortion: Vec<f64>,
    /// Draw the moving instrument.
    pub instrument: bool,
    /// Tracked mode: the scope moves over a phantom, and a simulated tracker
    /// publishes its poses over OpenIGTLink (absent: the tissue picture).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracked: Option<TrackedPhantomConfig>,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            lens: SyntheticLens::BrownConrady,
            focal_per_width: 0.55,
            distortion: vec![-0.32, 0.12, 0.001, -0.0005, -0.02],
            instrument: true,
            tracked: None,
        }
    }
}

/// `[source.synthetic.tracked]`: the tracked phantom and its simulated tracker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackedPhantomConfig {
    /// The phantom file (`scopecast-phantom/1` JSON).
    pub phantom: PathBuf,
    /// The hand–eye file the simulation places the camera on the scope with
    /// (the same file the model's pose chain reads).
    pub camera_from_scope: PathBuf,
    /// The phantom in the tracker's frame, 4×4 row-major, mm.
    pub tracker_from_phantom: Vec<f64>,
    /// Speed of the scope along its circle, mm/s.
    pub speed_mm_s: f64,
    /// Radius of the circle, mm.
    pub path_radius_mm: f64,
    /// The scope's distance from the phantom's surface, mm.
    pub distance_mm: f64,
    /// `circle` (constant speed) or `wiggle` (for `scopecast calibrate delay`).
    pub path: crate::source::phantom::PathShape,
    /// The picture shows the phantom this long before its capture stamp, ms
    /// (a camera's uncompensated delay, for temporal calibration).
    pub video_delay_ms: f64,
    /// `ADDR:PORT` the simulated tracker listens on (a `[[tracking.trackers]]` connects).
    pub listen: String,
    /// Tracker samples per second.
    pub rate_hz: f64,
    /// Delay from a sample's time to its sending, ms.
    pub latency_ms: f64,
    /// Up to this much more delay per sample, ms.
    pub jitter_ms: f64,
    /// Position noise (standard deviation per axis), mm.
    pub noise_mm: f64,
    /// Rotation noise (standard deviation), degrees.
    pub noise_deg: f64,
    /// Probability that a sample is lost.
    pub dropout: f64,
    /// A simulated pointer (`PointerToTracker`) rests on each fiducial in
    /// turn, from the start: what registration at the station collects.
    pub pointer: bool,
    /// The pointer's tip in its own frame (a pivot calibration's result), mm.
    pub pointer_tip_mm: [f64; 3],
    /// Time the pointer rests on each fiducial, ms.
    pub pointer_dwell_ms: f64,
    /// Time it takes from one fiducial to the next, ms.
    pub pointer_travel_ms: f64,
    /// First the pointer pivots about its tip on the first fiducial this long, ms (0: no pivoting).
    pub pointer_pivot_ms: f64,
}

impl Default for TrackedPhantomConfig {
    fn default() -> Self {
        Self {
            phantom: PathBuf::new(),
            camera_from_scope: PathBuf::new(),
            tracker_from_phantom: vec![
                1.0, 0.0, 0.0, 40.0, 0.0, -1.0, 0.0, -20.0, 0.0, 0.0, -1.0, 900.0, 0.0, 0.0, 0.0, 1.0,
            ],
            speed_mm_s: 50.0,
            path_radius_mm: 15.0,
            distance_mm: 90.0,
            path: crate::source::phantom::PathShape::Circle,
            video_delay_ms: 0.0,
            listen: "127.0.0.1:18944".into(),
            rate_hz: 60.0,
            latency_ms: 20.0,
            jitter_ms: 2.0,
            noise_mm: 0.0,
            noise_deg: 0.0,
            dropout: 0.0,
            pointer: false,
            pointer_tip_mm: [0.0, 0.0, 150.0],
            pointer_dwell_ms: 800.0,
            pointer_travel_ms: 400.0,
            pointer_pivot_ms: 0.0,
        }
    }
}

/// `[source]`: what the station captures and how it copes with failures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// `synthetic`, `test:`, `v4l2:///dev/videoN`, `file:///path`, `rtsp://…`, `tcp://host:port`.
    pub uri: String,
    /// Restart a file at its end instead of ending the stream.
    #[serde(rename = "loop")]
    pub loop_file: bool,
    /// Frame width of the synthetic and test sources and of NO SIGNAL frames, px.
    pub width: u32,
    /// Frame height, px.
    pub height: u32,
    /// Frame rate of the synthetic and test sources and of NO SIGNAL frames.
    pub fps: u32,
    /// Pixel format requested from GStreamer sources.
    pub format: FormatRequest,
    /// Without a frame for this long, NO SIGNAL frames replace the picture, ms.
    pub no_signal_after_ms: u64,
    /// Without a frame for this long, the source is restarted, ms.
    pub restart_after_ms: u64,
    /// First retry delay after a failure, ms; doubles per failed retry.
    pub retry_initial_ms: u64,
    /// Longest retry delay, ms.
    pub retry_max_ms: u64,
    /// The synthetic endoscope.
    pub synthetic: SyntheticConfig,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            uri: "synthetic".into(),
            loop_file: true,
            width: 1280,
            height: 720,
            fps: 60,
            format: FormatRequest::Auto,
            no_signal_after_ms: 500,
            restart_after_ms: 2000,
            retry_initial_ms: 250,
            retry_max_ms: 5000,
            synthetic: SyntheticConfig::default(),
        }
    }
}

/// `[display]`: the station's own monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DisplayConfig {
    /// Open the monitor window (needs the compositor and a display server).
    pub enabled: bool,
    /// Start fullscreen.
    pub fullscreen: bool,
    /// Which monitor for fullscreen (0 = the first).
    pub monitor: usize,
}

/// `[recording]`: session recordings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingConfig {
    /// Record from the start (otherwise: the R key, the operator's page, or
    /// `--record`). `record = true` is accepted for it.
    #[serde(alias = "record")]
    pub enabled: bool,
    /// Where session folders go.
    pub folder: String,
    /// Length of each MP4 segment, s (each starts at a keyframe).
    pub segment_s: f64,
    /// Also keep the endoscope's video before the overlay (one more encode),
    /// so a replay can draw the overlays afresh.
    pub record_clean: bool,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self { enabled: false, folder: "recordings".into(), segment_s: 4.0, record_clean: false }
    }
}

/// `[access]`: named links and the access log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// The station's state folder (the links' secret, revoked links, the
    /// access log); empty (`None`): [`default_state_dir`].
    #[serde(with = "empty_path_is_none")]
    pub state_dir: Option<PathBuf>,
    /// The access log file; empty (`None`): `access.log` in the state folder.
    #[serde(with = "empty_path_is_none")]
    pub log: Option<PathBuf>,
    /// The log is rotated at this size, MiB.
    pub log_max_mib: u64,
    /// Rotated files kept (`access.log.1` is the newest).
    pub log_keep: u32,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self { state_dir: None, log: None, log_max_mib: 16, log_keep: 8 }
    }
}

impl AccessConfig {
    /// The state folder: `state_dir`, else [`default_state_dir`].
    pub fn state_dir(&self) -> std::path::PathBuf {
        self.state_dir.clone().unwrap_or_else(default_state_dir)
    }

    /// The access log's path.
    pub fn log_path(&self) -> std::path::PathBuf {
        self.log.clone().unwrap_or_else(|| self.state_dir().join("access.log"))
    }
}

/// `$SCOPECAST_STATE_DIR`, else `$XDG_STATE_HOME/scopecast`, else
/// `~/.local/state/scopecast` (XDG Base Directory spec), else `./scopecast-state`.
pub fn default_state_dir() -> std::path::PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    var("SCOPECAST_STATE_DIR")
        .or_else(|| var("XDG_STATE_HOME").map(|d| d.join("scopecast")))
        .or_else(|| var("HOME").map(|d| d.join(".local/state/scopecast")))
        .unwrap_or_else(|| "scopecast-state".into())
}

/// `[whip]`: publishing the stream to a WHIP endpoint (an SFU) as well.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WhipConfig {
    /// The endpoint, `http://host:port/path`; empty (`None`): no publishing.
    #[serde(with = "empty_is_none")]
    pub url: Option<String>,
    /// Its bearer token; empty (`None`): none.
    #[serde(with = "empty_is_none")]
    pub token: Option<String>,
}

/// `[telestration]`: remote experts' drawings on the video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelestrationConfig {
    /// Seconds a finished stroke or arrow stays before it has faded out (the
    /// last second of it fading); pinned ones stay until cleared.
    pub fade_after_s: f64,
    /// How the parts of a mark on the anatomy behind tissue are drawn.
    pub hidden_marks: crate::compositor::annotations::HiddenMarks,
}

impl Default for TelestrationConfig {
    fn default() -> Self {
        Self { fade_after_s: 15.0, hidden_marks: Default::default() }
    }
}

/// `[status]`: the one-line live status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusConfig {
    /// How often the status line refreshes, ms.
    pub interval_ms: u64,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self { interval_ms: 1000 }
    }
}

/// `[threads]`: the frame path's standing with the scheduler
/// ([`crate::thread_priority`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThreadsConfig {
    /// The nice value of the capture, compositor, encoder and sending
    /// threads and GStreamer's streaming threads (-20..=0; 0 leaves them alone).
    pub frame_path_nice: i32,
}

impl Default for ThreadsConfig {
    fn default() -> Self {
        Self { frame_path_nice: crate::thread_priority::DISPLAY_CRITICAL_NICE }
    }
}

/// One link of a model's tracked pose (`[[compositor.models.pose]]`): the
/// transform a tracker sends under `tracked` (PLUS `XToY` or `a_from_b`),
/// or the matrix in `file` (the JSON `scopecast calibrate hand-eye` and
/// `scopecast register` write: its `…_from_…` 4×4, row-major, mm).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoseLinkConfig {
    /// A tracker's transform name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracked: Option<String>,
    /// A file's transform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// Use the inverse.
    pub inverse: bool,
}

/// `[tracking]`: tracker poses over OpenIGTLink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackingConfig {
    /// A pose older than this at a frame's capture time is stale, ms.
    pub stale_after_ms: u64,
    /// The camera's delay minus the tracker's, ms: poses are taken at each
    /// frame's capture time minus this.
    pub video_minus_tracker_latency_ms: f64,
    /// A model whose pose is stale: hidden, or drawn as not tracked.
    pub when_stale: WhenStale,
    /// Which pose a frame gets: `capture_time` (interpolated at the frame's
    /// capture time) or `newest` (as received; for comparison only).
    pub time_alignment: crate::tracking::pose_store::Alignment,
    /// The trackers.
    pub trackers: Vec<TrackerConfig>,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        Self {
            stale_after_ms: 200,
            video_minus_tracker_latency_ms: 0.0,
            when_stale: WhenStale::Hide,
            time_alignment: crate::tracking::pose_store::Alignment::CaptureTime,
            trackers: Vec::new(),
        }
    }
}

/// `[registration]`: registering the patient at the station with a tracked
/// pointer (the operator's page and the monitor's keys). Off unless
/// `fiducials` and `output` are set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationConfig {
    /// JSON with `"fiducials_mm": [[x, y, z], ...]`: the model's fiducials
    /// (model frame, mm) in the order they are touched (a phantom file has them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fiducials: Option<PathBuf>,
    /// The registration file written when the operator accepts; a model's
    /// `pose` chain that names it (`{ file = "..." }`) uses each accepted
    /// registration at once (and is "not registered" until there is one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<PathBuf>,
    /// The pointer's transform as the tracker names it.
    pub pointer: String,
    /// The patient reference's transform as the tracker names it.
    pub reference: String,
    /// The pointer's tip in its own frame (a pivot calibration), mm; without
    /// it the operator pivots first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tip_mm: Option<[f64; 3]>,
    /// Pivoting lasts this long, s (1..=60).
    pub pivot_seconds: f64,
    /// A target in the model's frame for the predicted TRE, mm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_mm: Option<[f64; 3]>,
    /// The target's name on the page and the HUD.
    pub target_name: String,
    /// The model's surface (OBJ, STL or glTF, model frame, mm) for refining
    /// by ICP on swept points; none: no surface refinement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub surface: Option<PathBuf>,
}

impl RegistrationConfig {
    /// The registration file the desk writes, when registration at the station is on.
    pub fn registered_file(&self) -> Option<&Path> {
        self.fiducials.as_ref().and(self.output.as_deref())
    }
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            fiducials: None,
            output: None,
            pointer: "PointerToTracker".into(),
            reference: "ReferenceToTracker".into(),
            tip_mm: None,
            pivot_seconds: 5.0,
            target_mm: None,
            target_name: "target".into(),
            surface: None,
        }
    }
}

/// `[tracking] when_stale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenStale {
    /// Not drawn.
    #[default]
    Hide,
    /// Drawn grey, as a wireframe, where the last pose put it.
    NotTracked,
}

/// `[[tracking.trackers]]`: one OpenIGTLink peer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    /// Its name in logs and metrics.
    pub name: String,
    /// `ADDR:PORT` of PLUS Server or Slicer to connect to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<String>,
    /// `ADDR:PORT` to listen on for a tracker that pushes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// The tracker's own delay, ms (poses are timed at arrival minus it).
    pub latency_ms: f64,
    /// Time poses by the tracker's timestamps (clocks in sync) instead.
    pub tracker_timestamps: bool,
    /// Smoothing of each transform's poses.
    pub smoothing: SmoothingConfig,
}

/// `[[tracking.trackers]] smoothing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmoothingConfig {
    /// Poses as received.
    #[default]
    Off,
    /// First-order low-pass at 7.5 Hz (SlicerIGT's).
    LowPass,
    /// The 1€ filter (1 Hz at rest, β 0.05 per mm/s).
    OneEuro,
}

/// How a configured model is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StyleConfig {
    /// Shaded surface.
    Solid,
    /// Edges only.
    Wireframe,
    /// Outline at grazing angles.
    Silhouette,
}

/// Output mode of the compositor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputModeConfig {
    /// Lens distortion removed.
    Undistorted,
    /// The video as captured, the overlay bent to match.
    Distorted,
}

/// `[[compositor.models]]`: an anatomy model from a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// OBJ, STL, GLB or glTF file.
    pub path: PathBuf,
    /// Model (file units, mm) to camera frame, 4×4 row-major (when `pose` is empty).
    pub camera_from_model: Vec<f32>,
    /// A tracked pose instead: links from the camera's frame to the model's,
    /// each a tracker's transform or a file's, any of them inverted.
    pub pose: Vec<PoseLinkConfig>,
    /// Linear RGB in 0..=1.
    pub colour: [f32; 3],
    /// 0..=1.
    pub opacity: f32,
    /// Drawing style.
    pub style: StyleConfig,
    /// Drawn from the start. A hidden model (a surface only to hold marks
    /// on the anatomy, say) still holds marks and hides those behind it, and
    /// its layer switch shows it.
    pub visible: bool,
}

impl ModelConfig {
    /// The model's name in the scene, layers and tracking: its file's stem.
    pub fn name(&self) -> String {
        self.path.file_stem().map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned())
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            camera_from_model: vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 80.0, 0.0, 0.0, 0.0, 1.0],
            pose: Vec::new(),
            colour: [0.9, 0.8, 0.2],
            opacity: 0.8,
            style: StyleConfig::Solid,
            visible: true,
        }
    }
}

/// `[compositor]`: the GPU compositor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompositorConfig {
    /// Composite at all (off: frames pass through untouched).
    pub enabled: bool,
    /// Undistorted or distorted output.
    pub output_mode: OutputModeConfig,
    /// Stamp the timecode strip.
    pub timecode: bool,
    /// Samples per pixel of the anatomy overlay: 4 (anti-aliased) or 1.
    pub msaa: u32,
    /// Separate passes, one fused pass, or the per-frame work on the CPU
    /// (`auto`: the CPU on a software adapter, separate passes on a GPU).
    pub passes: crate::compositor::PassPlan,
    /// `synthetic` (the synthetic endoscope's lens), `none`, or the path of a
    /// calibration file (OpenCV FileStorage YAML or JSON).
    pub calibration: CalibrationSource,
    /// Show the built-in demo anatomy.
    pub demo_anatomy: bool,
    /// Models from files.
    pub models: Vec<ModelConfig>,
}

impl Default for CompositorConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            output_mode: OutputModeConfig::Undistorted,
            timecode: true,
            msaa: 4,
            passes: crate::compositor::PassPlan::Auto,
            calibration: CalibrationSource::Synthetic,
            demo_anatomy: true,
            models: Vec::new(),
        }
    }
}

/// `[compositor] calibration`: the lens the overlay is drawn for. In TOML a
/// string: `"synthetic"`, `"none"`, or a file's path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum CalibrationSource {
    /// The synthetic endoscope's lens (the test source's).
    Synthetic,
    /// No calibration: the video as captured, no anatomy overlay.
    None,
    /// A calibration file (OpenCV FileStorage YAML or JSON).
    File(PathBuf),
}

impl From<String> for CalibrationSource {
    fn from(text: String) -> Self {
        match text.as_str() {
            "synthetic" => Self::Synthetic,
            "none" => Self::None,
            _ => Self::File(text.into()),
        }
    }
}

impl From<CalibrationSource> for String {
    fn from(source: CalibrationSource) -> Self {
        source.to_string()
    }
}

impl fmt::Display for CalibrationSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Synthetic => f.write_str("synthetic"),
            Self::None => f.write_str("none"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Text fields where the TOML's empty string (the way the default config
/// shows a field that is off) is `None`, and `None` is written back as "".
mod empty_is_none {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(value.as_deref().unwrap_or(""))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok((!text.is_empty()).then_some(text))
    }
}

/// Paths where the TOML's empty string is `None` (as [`empty_is_none`]).
mod empty_path_is_none {
    use std::path::PathBuf;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<PathBuf>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.as_ref().map(|p| p.to_string_lossy()).unwrap_or_default())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<PathBuf>, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok((!text.is_empty()).then(|| PathBuf::from(text)))
    }
}

/// `[encoder]`: H.264 for the viewers and the recorder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncoderConfig {
    /// Encode at all.
    pub enabled: bool,
    /// `auto` (x264 where GStreamer has it, otherwise `embedded`), `x264` or
    /// `openh264` (both through GStreamer), or `embedded` (OpenH264 built in).
    /// A GStreamer encoder that is missing falls back to `embedded`.
    pub kind: crate::encoder::EncoderKind,
    /// Target bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// An IDR at least this often, s.
    pub keyframe_interval_s: f64,
    /// Also encode a reduced layer (half the width and height) for viewers
    /// whose bandwidth estimate does not fit the full one.
    pub reduced_layer: bool,
    /// The reduced layer's bitrate, kbit/s.
    pub reduced_bitrate_kbps: u32,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            kind: crate::encoder::EncoderKind::Auto,
            bitrate_kbps: 6000,
            keyframe_interval_s: 1.0,
            reduced_layer: true,
            reduced_bitrate_kbps: 300,
        }
    }
}

/// `[[http.tokens]]`: a bearer token and what it may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The secret (at least 16 characters).
    pub token: String,
    /// `viewer`, `annotator` or `operator`.
    pub role: scopecast_transport::auth::Role,
}

/// `[http]`: the station's HTTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// `ADDR:PORT` to serve the viewer page, WHEP, `/metrics` and `/healthz` on; empty (`None`): no server.
    #[serde(with = "empty_is_none")]
    pub listen: Option<String>,
    /// Bearer tokens; without any, a viewer and an operator token are generated at start.
    pub tokens: Vec<TokenConfig>,
    /// WHEP sessions at once; more get `503` with `Retry-After`.
    pub max_viewers: usize,
    /// The RTP playout-delay extension sent to viewers that offer it: min 0
    /// and this max, ms (Chrome's low-latency renderer engages with min 0 and
    /// max > 0: no smoothing delay; it lets `lrint(max × 60 / 1000)` decoded
    /// frames, less those still before the decoder, wait for composition
    /// before it drops to the newest: WebRTC's
    /// `VideoReceiveStream2::UpdatePlayoutDelays`); 0: not sent.
    pub playout_delay_max_ms: u32,
    /// STUN/TURN servers the station gathers with and announces in `Link` headers.
    pub ice_servers: Vec<scopecast_transport::ice::IceServer>,
    /// PEM certificate chain for HTTPS (off loopback); empty (`None`): a self-signed one is generated.
    #[serde(with = "empty_path_is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    #[serde(with = "empty_path_is_none")]
    pub tls_key: Option<PathBuf>,
    /// Who may read `/metrics`: `auto` (a valid bearer token off loopback,
    /// anyone on loopback), `token` (always a token) or `open` (anyone).
    pub metrics_auth: MetricsAuth,
}

/// `[http] metrics_auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAuth {
    /// A token off loopback; open on loopback (a local Prometheus).
    #[default]
    Auto,
    /// Always a token (any role).
    Token,
    /// Never a token.
    Open,
}

impl MetricsAuth {
    /// Whether `/metrics` served on `addr` needs a bearer token.
    pub fn needs_token(self, addr: std::net::SocketAddr) -> bool {
        match self {
            Self::Auto => !addr.ip().is_loopback(),
            Self::Token => true,
            Self::Open => false,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: None,
            tokens: Vec::new(),
            max_viewers: 32,
            playout_delay_max_ms: 40,
            ice_servers: Vec::new(),
            tls_cert: None,
            tls_key: None,
            metrics_auth: MetricsAuth::Auto,
        }
    }
}

/// The whole station configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The video source.
    pub source: SourceConfig,
    /// The GPU compositor.
    pub compositor: CompositorConfig,
    /// The H.264 encoder.
    pub encoder: EncoderConfig,
    /// The HTTP server.
    pub http: HttpConfig,
    /// The station's own monitor.
    pub display: DisplayConfig,
    /// Viewers' drawings.
    pub telestration: TelestrationConfig,
    /// Publishing to an SFU.
    pub whip: WhipConfig,
    /// Session recordings.
    pub recording: RecordingConfig,
    /// Named links and the access log.
    pub access: AccessConfig,
    /// The status line.
    pub status: StatusConfig,
    /// The frame path's thread priority.
    pub threads: ThreadsConfig,
    /// Tracker poses.
    pub tracking: TrackingConfig,
    /// Registration at the station.
    pub registration: RegistrationConfig,
}

/// The default configuration with a comment on every field; `scopecast config
/// default` prints it, and a test checks that it parses to `Config::default()`.
pub const DEFAULT_CONFIG_TOML: &str = r#"# scopecast station configuration. Every field is optional: a missing field
# takes the value shown here. Command-line flags override this file.

[source]
# What to capture:
#   "synthetic"                 built-in simulated endoscope (no camera, no GStreamer)
#   "test:" or "test:ball"      GStreamer videotestsrc, with an optional pattern name
#   "v4l2:///dev/video0"        a V4L2 capture device (USB or SDI/HDMI capture card)
#   "file:///path/video.mp4"    a video file (any container GStreamer can decode)
#   "rtsp://host:554/stream"    an RTSP camera or endoscopy tower
#   "tcp://host:port"           an MPEG-TS stream from a tcpserversink
uri = "synthetic"
# Start a file source again at its end instead of showing NO SIGNAL.
loop = true
# Frame size (px) of the synthetic and test sources, and of NO SIGNAL frames
# until a source reports its own size. 16..=7680 × 16..=4320.
width = 1280
height = 720
# Frames per second of the synthetic and test sources and of NO SIGNAL frames. 1..=240.
fps = 60
# Pixel format asked of GStreamer sources: "auto" (I420, NV12 or RGBA as the
# source has it, no conversion), "rgba", "i420" or "nv12".
format = "auto"
# Without a frame for this long, NO SIGNAL frames replace the picture (ms, 50..=60000).
no_signal_after_ms = 500
# Without a frame for this long, the source is stopped and started again
# (ms, at least no_signal_after_ms).
restart_after_ms = 2000
# After a failure the source is retried after retry_initial_ms, doubling on each
# failed retry up to retry_max_ms (ms, 10..=600000).
retry_initial_ms = 250
retry_max_ms = 5000

[source.synthetic]
# Lens of the simulated endoscope: "brown_conrady" (distortion = k1, k2, p1, p2, k3)
# or "kannala_brandt" (distortion = k1, k2, k3, k4), OpenCV's order and conventions.
lens = "brown_conrady"
# Focal length as a fraction of the image width (fx = fy = focal_per_width × width), 0.1..=5.
focal_per_width = 0.55
distortion = [-0.32, 0.12, 0.001, -0.0005, -0.02]
# Draw the moving instrument.
instrument = true
# Tracked mode (none by default): the scope moves over a phantom with painted
# fiducial dots, and a built-in simulated tracker publishes its poses over
# OpenIGTLink (PLUS names ScopeToTracker and PhantomToTracker), see
# demos/tracked-scope:
# [source.synthetic.tracked]
# phantom = "demos/tracked-scope/phantom/phantom.json"
# camera_from_scope = "demos/tracked-scope/phantom/camera_from_scope.json"
# speed_mm_s = 50.0          # the scope's speed along a circle of path_radius_mm
# path_radius_mm = 15.0
# distance_mm = 90.0         # from the phantom's surface
# path = "circle"            # or "wiggle" (for `scopecast calibrate delay`), "survey" (for `calibrate hand-eye-live`)
# video_delay_ms = 0.0       # the picture is this much older than its stamp
# listen = "127.0.0.1:18944" # the simulated tracker's port
# rate_hz = 60.0
# latency_ms = 20.0          # a sample is sent this long after its time, plus
# jitter_ms = 2.0            # up to this much more
# noise_mm = 0.0             # position noise (standard deviation per axis)
# noise_deg = 0.0            # rotation noise (standard deviation)
# dropout = 0.0              # probability that a sample is lost
# pointer = false            # a simulated pointer (PointerToTracker) rests on each fiducial in turn
# pointer_tip_mm = [0.0, 0.0, 150.0]
# pointer_dwell_ms = 800.0
# pointer_travel_ms = 400.0
# pointer_pivot_ms = 0.0     # first it pivots about its tip this long (for --pivot-seconds)

[compositor]
# Composite every frame on the GPU: undistortion, the anatomy overlay, annotations,
# the timecode strip and the conversion to I420. Needs a GPU or Mesa's lavapipe.
enabled = true
# "undistorted" (lens distortion removed) or "distorted" (the video as captured,
# the overlay bent by the same lens model so it stays on the anatomy).
output_mode = "undistorted"
# Stamp the machine-readable timecode strip into the bottom-left corner.
timecode = true
# Samples per pixel of the anatomy overlay: 4 (anti-aliased edges) or 1 (cheaper
# on software rendering).
msaa = 4
# "auto" (with a software GPU such as lavapipe the CPU does the per-frame work:
# remap, overlay and annotation layer, strip, I420, and lavapipe draws the layer
# only when it changes; with a monitor, one fused pass; a GPU runs separate
# passes), "separate", "fused" or "cpu".
passes = "auto"
# Camera model for undistortion and the overlay: "synthetic" (the lens of the
# synthetic endoscope, as configured above), "none" (video only), or the path of
# a calibration file from `scopecast calibrate intrinsics` or OpenCV (YAML/JSON).
calibration = "synthetic"
# Show the built-in demo anatomy (liver, vessel tree, tumour).
demo_anatomy = true
# Anatomy models from files (OBJ, STL, GLB/glTF), none by default. Add one with:
#   [[compositor.models]]
#   path = "/data/case/liver.stl"
#   camera_from_model = [1,0,0,0, 0,1,0,0, 0,0,1,80, 0,0,0,1]  # 4x4 row-major, mm
#   colour = [0.9, 0.8, 0.2]
#   opacity = 0.8
#   style = "solid"                                           # solid | wireframe | silhouette
#   visible = true             # false: not drawn until its layer is switched on (marks still stick to it)
# or, instead of camera_from_model, a tracked pose: links from the camera to
# the model, each a tracker's transform or a file's, any of them inverted:
#   pose = [{ file = "handeye.json", inverse = true }, { tracked = "MarkerToTracker", inverse = true },
#           { tracked = "ReferenceToTracker" }, { file = "registration.json" }]
models = []

[encoder]
# Encode the composited frames to H.264 once for every viewer.
enabled = true
# "auto" (x264 where GStreamer has x264enc and h264parse, otherwise the
# embedded encoder; the status line says which and why), "x264" (GStreamer
# x264enc, ultrafast + zerolatency: about 2 ms per 720p frame here),
# "openh264" (GStreamer openh264enc, low complexity) or "embedded" (OpenH264
# built into scopecast: no system codec needed, slower). A GStreamer encoder
# that is missing falls back to the embedded one rather than stop the stream.
# All: constrained baseline, no B-frames, one frame in, one access unit out.
kind = "auto"
# Target bitrate, kbit/s (100..=100000).
bitrate_kbps = 6000
# A keyframe (IDR with SPS/PPS) at least this often, s (0.1..=10): short GOPs
# let a viewer that joins or loses packets see a picture again quickly.
keyframe_interval_s = 1.0
# A second, reduced layer (half width and height, one more encode of each
# frame) for viewers on poor networks: each viewer's bandwidth estimate (GCC
# over its TWCC feedback) moves it between the layers at keyframes.
reduced_layer = true
# The reduced layer's bitrate, kbit/s (50..=100000, below bitrate_kbps).
reduced_bitrate_kbps = 300

[http]
# ADDR:PORT of the station's HTTP server (the viewer page at /, WHEP at /whep,
# /metrics in Prometheus text format, /healthz); empty for none. Port 0 picks a
# free port (printed at start).
listen = ""
# Bearer tokens for WHEP, each with a role ("viewer", "annotator", "operator"):
#   [[http.tokens]]
#   token = "a-long-random-secret"
#   role = "viewer"
# Without any, a viewer and an operator token are generated at start and printed.
tokens = []
# WHEP sessions at once (1..=256); one more gets 503 with Retry-After.
max_viewers = 32
# Tell browsers to play each frame at once: the RTP playout-delay extension
# (min 0, max this many ms, 10 ms steps, 0..=40950), sent to viewers whose
# offer has it (Chrome: without it ~40 ms of smoothing on a LAN). Chrome lets
# max × 60 / 1000 decoded frames wait for the screen before it drops to the
# newest: 40 is 2 (100 was 6, and frames sat one to three refreshes late
# for seconds). 20 is 1: the lowest latency, but Chrome then drops a frame
# whenever two wait (measured at 720p60: p50 15 ms, 50 of 60 fps shown;
# at 40: p50 22-33 ms, 58-60 fps shown). 0: off.
playout_delay_max_ms = 40
# STUN/TURN servers: the station gathers candidates with them and announces
# them to WHEP players in Link headers (rel="ice-server"):
#   [[http.ice_servers]]
#   urls = ["turn:turn.hospital.example:3478?transport=udp"]
#   username = "scopecast"
#   credential = "secret"
ice_servers = []
# Off loopback the server speaks HTTPS only. PEM certificate chain and key;
# both empty: a self-signed certificate is generated at start and its SHA-256
# fingerprint printed (viewers confirm it once in the browser).
tls_cert = ""
tls_key = ""
# Who may read /metrics: "auto" (a valid bearer token of any role off
# loopback, anyone on loopback), "token" (always a token) or "open".
metrics_auth = "auto"

[display]
# The AR view on the station's own monitor (a window; keys: ? lists them).
# Without a display server the station runs headless and says so once.
enabled = false
fullscreen = false
# Which monitor for fullscreen (0 = the first the display server lists).
monitor = 0

[recording]
# Record the session from the start (else start and stop with R on the
# monitor, the record button of an operator's viewer page, or --record;
# `record = true` means the same). Each session is a folder under `folder` named by its
# UTC start time: fragmented MP4 segments of what viewers saw, a checksummed
# timeline of the overlay and annotations, and a manifest.
enabled = false
folder = "recordings"
# Seconds per MP4 segment (1..=60), each starting at a keyframe.
segment_s = 4.0
# Also keep the clean endoscope video (the frame before the overlay; one
# more H.264 encode on the CPU) as clean-NNNNNN.mp4, so `scopecast replay`
# can draw the overlays afresh: layers switched and new annotations drawn
# by a trainer, the recording itself never altered.
record_clean = false

[access]
# The station's state folder: the secret that signs named links (`scopecast
# link`), the revoked links, and the access log. Empty: $SCOPECAST_STATE_DIR,
# else $XDG_STATE_HOME/scopecast, else ~/.local/state/scopecast.
state_dir = ""
# The access log: JSON lines of who joined and left (a link's name and role,
# never a token), from which address, when, and what they did (drew, switched
# layers, recorded, steered a replay); also kept in a recording's timeline.
# Empty: access.log in the state folder.
log = ""
# Rotate the log at this size, MiB (1..=1024), keeping this many old files
# (1..=100; access.log.1 is the newest).
log_max_mib = 16
log_keep = 8

[whip]
# Also publish the stream (full layer) to this WHIP endpoint (RFC 9725), for
# example an SFU's, "http://host:port/path"; empty: do not. On failure it
# retries after 1 s, doubling up to 30 s.
url = ""
# The endpoint's bearer token; empty: none.
token = ""

[telestration]
# Seconds a viewer's finished stroke or arrow stays on the video (fading out
# over the last second; 1..=3600). Pinned ones stay until cleared.
fade_after_s = 15.0
# Marks a viewer puts on the anatomy follow the registered models; where
# tissue lies between the camera and a mark (or tracking is stale), that part
# is drawn "dashed" or "faded".
hidden_marks = "dashed"

[status]
# How often the one-line status refreshes (ms, 100..=60000).
interval_ms = 1000

[threads]
# The nice value (-20..=0) of the frame path's threads: capture, compositor,
# encoder, sending, and GStreamer's streaming threads. -8 is what a browser
# gives its own display threads: a browser or other work on this machine
# then does not hold the picture back. Raising needs root, CAP_SYS_NICE or
# RLIMIT_NICE (limits.conf "<user> - nice -8"); without it the station says
# so once and runs at normal priority. 0 leaves the threads alone.
frame_path_nice = -8

[tracking]
# A tracked model's pose older than this (ms, 10..=5000) at a frame's
# capture time is stale: the model is not drawn as if it were right.
stale_after_ms = 200
# The camera's delay minus the tracker's (ms, -1000..=1000): poses are taken
# at each frame's capture time minus this.
video_minus_tracker_latency_ms = 0.0
# A model on a stale pose: "hide" it, or draw it "not_tracked" (grey wireframe).
when_stale = "hide"
# Which pose a frame gets: "capture_time" (interpolated at the frame's capture
# time: the overlay stays on the anatomy while the scope moves) or "newest" (as
# received; only to compare, it lags by the tracker's delay).
time_alignment = "capture_time"
# Trackers, OpenIGTLink (PLUS Server, 3D Slicer, a tracker); none by default:
# [[tracking.trackers]]
# name = "plus"
# connect = "127.0.0.1:18944"   # or listen = "0.0.0.0:18944" for a tracker that pushes
# latency_ms = 0.0
# tracker_timestamps = false
# smoothing = "off"             # or "low_pass" (7.5 Hz) or "one_euro"
trackers = []

[registration]
# Registering the patient at the station with a tracked pointer, from the
# operator's page or the monitor's keys; off unless fiducials and output are set:
# fiducials = "model-fiducials.json"   # {"fiducials_mm": [[x, y, z], ...]}, model frame, touch order
# output = "registration.json"         # written on accept; a model's pose chain naming it
#                                      # ({ file = "registration.json" }) uses it at once
# tip_mm = [0.0, 0.0, 150.0]           # the pointer's pivot-calibrated tip; without it, pivot first
# target_mm = [6.0, -4.0, 9.0]         # model frame: where the predicted TRE is shown
# surface = "model-surface.obj"        # model frame: refine by ICP on swept points
pointer = "PointerToTracker"
reference = "ReferenceToTracker"
# Pivoting lasts this long (s, 1..=60).
pivot_seconds = 5.0
target_name = "target"
"#;

/// Maps a byte offset in `text` to a 1-based (line, column).
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn range_check<T: PartialOrd + fmt::Display + Copy>(
    path: &Path,
    field: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    // `contains` is false for NaN, so a NaN setting is refused too.
    if !(min..=max).contains(&value) {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            value: value.to_string(),
            reason: format!("must be between {min} and {max}"),
        });
    }
    Ok(())
}

impl Config {
    /// Parses TOML text; `path` names the origin in errors. Does not validate ranges.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |span| line_column(text, span.start));
            ConfigError::Parse { path: path.to_path_buf(), line, column, message: e.message().trim().to_string() }
        })
    }

    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let config = Self::from_toml_str(&text, path)?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks every range; `path` names the origin in errors.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let s = &self.source;
        SourceSpec::parse(&s.uri).map_err(|e| ConfigError::Invalid {
            path: path.into(),
            field: "source.uri",
            value: format!("{:?}", s.uri),
            reason: e.to_string(),
        })?;
        range_check(path, "source.width", s.width, 16, 7680)?;
        range_check(path, "source.height", s.height, 16, 4320)?;
        range_check(path, "source.fps", s.fps, 1, 240)?;
        range_check(path, "source.no_signal_after_ms", s.no_signal_after_ms, 50, 60_000)?;
        range_check(path, "source.restart_after_ms", s.restart_after_ms, s.no_signal_after_ms, 600_000)?;
        range_check(path, "source.retry_initial_ms", s.retry_initial_ms, 10, 600_000)?;
        range_check(path, "source.retry_max_ms", s.retry_max_ms, s.retry_initial_ms, 600_000)?;
        let syn = &s.synthetic;
        range_check(path, "source.synthetic.focal_per_width", syn.focal_per_width, 0.1, 5.0)?;
        let expected = match syn.lens {
            SyntheticLens::BrownConrady => 5,
            SyntheticLens::KannalaBrandt => 4,
        };
        if syn.distortion.len() != expected || syn.distortion.iter().any(|k| !k.is_finite() || k.abs() > 10.0) {
            return Err(ConfigError::Invalid {
                path: path.into(),
                field: "source.synthetic.distortion",
                value: format!("{:?}", syn.distortion),
                reason: format!("the {:?} lens needs {expected} finite coefficients within ±10", syn.lens),
            });
        }
        let r = &self.registration;
        if r.fiducials.is_some() != r.output.is_some() {
            return Err(ConfigError::Invalid {
                path: path.into(),
                field: "registration.output",
                value: format!("{:?}", r.output),
                reason: "registration needs both fiducials and output (or neither)".into(),
            });
        }
        range_check(path, "registration.pivot_seconds", r.pivot_seconds, 1.0, 60.0)?;
        for (field, point) in [("registration.tip_mm", r.tip_mm), ("registration.target_mm", r.target_mm)] {
            if let Some(p) = point
                && p.iter().any(|c| !c.is_finite() || c.abs() > 10_000.0)
            {
                return Err(ConfigError::Invalid {
                    path: path.into(),
                    field,
                    value: format!("{p:?}"),
                    reason: "three finite numbers within ±10 m, mm".into(),
                });
            }
        }
        let c = &self.compositor;
        if c.msaa != 1 && c.msaa != 4 {
            return Err(ConfigError::Invalid {
                path: path.into(),
                field: "compositor.msaa",
                value: c.msaa.to_string(),
                reason: "must be 1 or 4".into(),
            });
        }
        if let CalibrationSource::File(file) = &c.calibration
            && let Err(e) = scopecast_calibration::file::CalibrationFile::load(file)
        {
            return Err(ConfigError::Invalid {
                path: path.into(),
                field: "compositor.calibration",
                value: format!("{:?}", c.calibration.to_string()),
                reason: format!("must be \"synthetic\", \"none\" or a calibration file: {e}"),
            });
        }
        for model in &c.models {
            let bad = |reason: &str| ConfigError::Invalid {
                path: path.into(),
                field: "compositor.models",
                value: model.path.display().to_string(),
                reason: reason.into(),
            };
            if model.path.as_os_str().is_empty() {
                return Err(bad("every model needs a path"));
            }
            if model.camera_from_model.len() != 16 || model.camera_from_model.iter().any(|v| !v.is_finite()) {
                return Err(bad("camera_from_model needs 16 finite numbers (4x4, row-major)"));
            }
            if model.colour.iter().chain([&model.opacity]).any(|v| !(0.0..=1.0).contains(v)) {
                return Err(bad("colour and opacity must be within 0..=1"));
            }
            for link in &model.pose {
                match (&link.tracked, &link.file) {
                    (Some(name), None) if !name.is_empty() => {}
                    // The registration desk's output: "not registered" until one is accepted.
                    (None, Some(file)) if self.registration.registered_file() == Some(file.as_path()) => {}
                    (None, Some(file)) => {
                        crate::tracking::setup::load_transform_file(file).map_err(|e| bad(&e.to_string()))?;
                    }
                    _ => return Err(bad("each pose link needs either tracked = \"NAME\" or file = \"PATH\"")),
                }
            }
        }
        if let Some(listen) = &self.http.listen
            && listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(ConfigError::Invalid {
                path: path.into(),
                field: "http.listen",
                value: format!("{listen:?}"),
                reason: "must be ADDR:PORT, e.g. 127.0.0.1:8080".into(),
            });
        }
        if let Some(short) = self.http.tokens.iter().find(|t| t.token.len() < 16) {
            return Err(ConfigError::Invalid {
                path: path.into(),
                field: "http.tokens",
                value: format!("a {:?} token of {} characters", short.role, short.token.len()),
                reason: "tokens must have at least 16 characters".into(),
            });
        }
        range_check(path, "http.max_viewers", self.http.max_viewers, 1, 256)?;
        range_check(path, "http.playout_delay_max_ms", self.http.playout_delay_max_ms, 0, 40_950)?;
        for server in &self.http.ice_servers {
            server.validate().map_err(|e| ConfigError::Invalid {
                path: path.into(),
                field: "http.ice_servers",
                value: format!("{:?}", server.urls),
                reason: e.to_string(),
            })?;
        }
        if self.http.tls_cert.is_none() != self.http.tls_key.is_none() {
            return Err(ConfigError::Invalid {
                path: path.into(),
                field: "http.tls_key",
                value: format!("cert {:?}, key {:?}", self.http.tls_cert, self.http.tls_key),
                reason: "give both tls_cert and tls_key, or neither".into(),
            });
        }
        range_check(path, "encoder.bitrate_kbps", self.encoder.bitrate_kbps, 100, 100_000)?;
        range_check(
            path,
            "encoder.reduced_bitrate_kbps",
            self.encoder.reduced_bitrate_kbps,
            50,
            self.encoder.bitrate_kbps,
        )?;
        range_check(path, "encoder.keyframe_interval_s", self.encoder.keyframe_interval_s, 0.1, 10.0)?;
        range_check(path, "status.interval_ms", self.status.interval_ms, 100, 60_000)?;
        range_check(path, "threads.frame_path_nice", self.threads.frame_path_nice, -20, 0)?;
        range_check(path, "telestration.fade_after_s", self.telestration.fade_after_s, 1.0, 3600.0)?;
        range_check(path, "recording.segment_s", self.recording.segment_s, 1.0, 60.0)?;
        range_check(path, "access.log_max_mib", self.access.log_max_mib, 1, 1024)?;
        range_check(path, "access.log_keep", self.access.log_keep, 1, 100)?;
        range_check(path, "tracking.stale_after_ms", self.tracking.stale_after_ms, 10, 5000)?;
        range_check(
            path,
            "tracking.video_minus_tracker_latency_ms",
            self.tracking.video_minus_tracker_latency_ms,
            -1000.0,
            1000.0,
        )?;
        for tracker in &self.tracking.trackers {
            let bad = |reason: &str| ConfigError::Invalid {
                path: path.into(),
                field: "tracking.trackers",
                value: format!("{:?}", tracker.name),
                reason: reason.into(),
            };
            let address = match (&tracker.connect, &tracker.listen) {
                (Some(a), None) | (None, Some(a)) => a,
                _ => return Err(bad("give either connect = \"ADDR:PORT\" or listen = \"ADDR:PORT\"")),
            };
            if address.parse::<std::net::SocketAddr>().is_err() {
                return Err(bad(&format!("{address:?} is not ADDR:PORT")));
            }
            if !(0.0..=1000.0).contains(&tracker.latency_ms) {
                return Err(bad("latency_ms must be within 0..=1000"));
            }
        }
        if let Some(url) = &self.whip.url
            && !url.starts_with("http://")
        {
            return Err(ConfigError::Invalid {
                path: path.into(),
                field: "whip.url",
                value: format!("{url:?}"),
                reason: "an http:// endpoint (https:// is not supported yet)".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let path = Path::new("station.toml");
        let config = Config::from_toml_str(text, path)?;
        config.validate(path)?;
        Ok(config)
    }

    #[test]
    fn strings_that_stand_for_choices_read_as_types_and_write_back_as_strings() {
        let config = parse(
            "[compositor]\ncalibration = \"none\"\n[http]\nlisten = \"\"\ntls_cert = \"\"\n[whip]\nurl = \"http://sfu:8080/whip\"\ntoken = \"\"\n[access]\nlog = \"/var/log/scopecast/access.log\"\n",
        )
        .expect("valid");
        assert_eq!(config.compositor.calibration, CalibrationSource::None);
        assert_eq!((config.http.listen.as_deref(), config.http.tls_cert.as_deref()), (None, None), "empty is off");
        assert_eq!(config.whip.url.as_deref(), Some("http://sfu:8080/whip"));
        assert_eq!(config.whip.token, None);
        assert_eq!(config.access.log_path(), PathBuf::from("/var/log/scopecast/access.log"));
        assert_eq!(CalibrationSource::from("cam.yaml".to_string()), CalibrationSource::File("cam.yaml".into()));
        let written = toml::to_string(&config).expect("serialises");
        assert!(written.contains("calibration = \"none\"") && written.contains("listen = \"\""), "{written}");
        assert_eq!(parse(&written).expect("reads back"), config);
    }

    #[test]
    fn the_commented_default_is_the_default() {
        assert_eq!(parse(DEFAULT_CONFIG_TOML).expect("default parses"), Config::default());
        assert_eq!(parse("").expect("empty parses"), Config::default());
    }

    #[test]
    fn unknown_fields_name_the_field_and_line() {
        let err = parse("[source]\nfps = 30\nfsp = 30\n").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ConfigError::Parse { line: 3, .. }), "{err:?}");
        assert!(text.starts_with("station.toml:3:"), "{text}");
        assert!(text.contains("fsp"), "{text}");
    }

    #[test]
    fn invalid_toml_names_the_line() {
        let err = parse("[source]\nuri = \"synthetic\n").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { line: 2, .. }), "{err:?}");
    }

    #[test]
    fn wrong_types_name_the_field() {
        let err = parse("[source]\nfps = \"sixty\"\n").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { line: 2, .. }), "{err:?}");
    }

    #[test]
    fn out_of_range_values_name_the_field() {
        let err = parse("[source]\nfps = 0\n").unwrap_err();
        assert_eq!(err.to_string(), "station.toml: field `source.fps` = 0 is invalid: must be between 1 and 240");
        let err = parse("[source]\nno_signal_after_ms = 900\nrestart_after_ms = 800\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { field: "source.restart_after_ms", .. }), "{err:?}");
        let err = parse("[source.synthetic]\ndistortion = [0.1]\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { field: "source.synthetic.distortion", .. }), "{err:?}");
        let err = parse("[source]\nuri = \"ftp://x\"\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { field: "source.uri", .. }), "{err:?}");
    }

    #[test]
    fn record_true_starts_recording() {
        assert!(parse("[recording]\nrecord = true\n").expect("valid").recording.enabled);
        assert!(parse("[recording]\nenabled = true\n").expect("valid").recording.enabled);
    }

    #[test]
    fn models_are_checked() {
        let err = parse("[[compositor.models]]\npath = \"a.stl\"\ncamera_from_model = [1, 2]\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { field: "compositor.models", .. }), "{err:?}");
        let ok = parse("[[compositor.models]]\npath = \"a.stl\"\nstyle = \"wireframe\"\n").expect("valid");
        assert_eq!(ok.compositor.models[0].style, StyleConfig::Wireframe);
        let err = parse("[compositor]\ncalibration = \"/nonexistent/cam.yaml\"\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { field: "compositor.calibration", .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/cam.yaml"), "{err}");
    }

    #[test]
    fn a_missing_file_names_the_file() {
        let err = Config::load(Path::new("/nonexistent/station.toml")).unwrap_err();
        assert!(err.to_string().starts_with("cannot read config file /nonexistent/station.toml"), "{err}");
    }
}
