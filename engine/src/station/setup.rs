//! What a station is built from, read off its [`Config`]: the frame source,
//! the source supervisor's health policy, the recording's setup record, and
//! the named threads every stage runs on.

use std::sync::Arc;
use std::thread::JoinHandle;

use super::StationError;
use crate::clock::SharedClock;
use crate::config::{CalibrationSource, Config, TrackedPhantomConfig};
use crate::shutdown::Shutdown;
use crate::source::gst::GstSource;
use crate::source::health::HealthPolicy;
use crate::source::phantom::{PhantomFile, PhantomPicture, ScopePath};
use crate::source::supervisor::SupervisorSettings;
use crate::source::synthetic::SyntheticEndoscope;
use crate::source::{FrameSource, SourceSpec};
use crate::tracking::simulated::{PointerTour, SimulatedTracker, SimulatedTrackerSettings, SimulatedTruth};
use crate::tracking::tracker_link::{SharedPoses, TrackerLink, TrackerSettings};

/// What a recording's manifest says about the setup: the calibration (its
/// contents, not its path) and the models' names.
pub(super) fn session_info(config: &Config) -> crate::recorder::SessionInfo {
    let calibration = match &config.compositor.calibration {
        source @ (CalibrationSource::Synthetic | CalibrationSource::None) => serde_json::json!(source.to_string()),
        CalibrationSource::File(path) => scopecast_calibration::file::CalibrationFile::load(path)
            .ok()
            .and_then(|c| serde_json::from_str::<serde_json::Value>(&c.to_json()).ok())
            .unwrap_or(serde_json::Value::Null),
    };
    let models: Vec<String> = config
        .compositor
        .models
        .iter()
        .filter_map(|m| m.path.file_name().map(|n| n.to_string_lossy().to_string()))
        .collect();
    crate::recorder::SessionInfo {
        station: "scopecast capture station".into(),
        setup: crate::recorder::format::SetupRecord { calibration, models },
        encoder: crate::recorder::format::EncoderRecord {
            kind: format!("{:?}", config.encoder.kind),
            bitrate_kbps: config.encoder.bitrate_kbps,
            keyframe_interval_s: config.encoder.keyframe_interval_s,
            width: config.source.width,
            height: config.source.height,
            fps: config.source.fps,
        },
    }
}

pub(super) fn make_source(
    config: &Config,
    clock: &SharedClock,
    shutdown: &Shutdown,
    threads: &mut Vec<JoinHandle<()>>,
) -> Result<Box<dyn FrameSource>, StationError> {
    let s = &config.source;
    Ok(match SourceSpec::parse(&s.uri)? {
        SourceSpec::Synthetic => {
            let scope = SyntheticEndoscope::new(s.width, s.height, s.fps, &s.synthetic, clock.clone());
            match &s.synthetic.tracked {
                None => Box::new(scope),
                Some(tracked) => {
                    let (picture, path) = tracked_phantom(tracked, clock, shutdown, threads)?;
                    let delay_ns = (tracked.video_delay_ms.max(0.0) * 1e6) as u64;
                    Box::new(scope.with_phantom(picture, path, delay_ns))
                }
            }
        }
        spec => Box::new(GstSource::new(spec, s.loop_file, s.format, (s.width, s.height, s.fps), clock.clone())),
    })
}

/// The tracked mode's phantom and path, and its simulated tracker started
/// (publishing on `tracked.listen` until `shutdown`).
fn tracked_phantom(
    tracked: &TrackedPhantomConfig,
    clock: &SharedClock,
    shutdown: &Shutdown,
    threads: &mut Vec<JoinHandle<()>>,
) -> Result<(Arc<PhantomPicture>, ScopePath), StationError> {
    let file = PhantomFile::load(&tracked.phantom)?;
    let camera_from_scope = crate::tracking::setup::load_transform_file(&tracked.camera_from_scope)?;
    let tracker_from_phantom =
        crate::tracking::setup::pose_of_rows(&tracked.tracker_from_phantom).ok_or_else(|| {
            StationError::SimulatedTracker {
                reason: format!(
                    "tracker_from_phantom {:?} is not a rigid 4x4 matrix (16 numbers, rows first, mm)",
                    tracked.tracker_from_phantom
                ),
            }
        })?;
    let path = ScopePath {
        speed_mm_s: tracked.speed_mm_s,
        radius_mm: tracked.path_radius_mm,
        distance_mm: tracked.distance_mm,
        shape: tracked.path,
    };
    let settings = SimulatedTrackerSettings {
        listen: tracked.listen.clone(),
        rate_hz: tracked.rate_hz,
        latency_ms: tracked.latency_ms,
        jitter_ms: tracked.jitter_ms,
        noise_mm: tracked.noise_mm,
        noise_deg: tracked.noise_deg,
        dropout: tracked.dropout,
        seed: 1,
    };
    let pointer = tracked.pointer.then(|| PointerTour {
        stops_in_phantom: file.fiducials_mm.iter().map(|f| glam::DVec3::from_array(*f)).collect(),
        tip_in_pointer: glam::DVec3::from_array(tracked.pointer_tip_mm),
        dwell_ns: (tracked.pointer_dwell_ms.max(1.0) * 1e6) as u64,
        travel_ns: (tracked.pointer_travel_ms.max(1.0) * 1e6) as u64,
        start_ns: clock.now_ns(),
        pivot_ns: (tracked.pointer_pivot_ms.max(0.0) * 1e6) as u64,
    });
    let truth = SimulatedTruth { path, camera_from_scope, tracker_from_phantom, pointer };
    let tracker = SimulatedTracker::start(settings, truth, clock.clone(), shutdown.clone())
        .map_err(|e| StationError::SimulatedTracker { reason: format!("cannot listen on {}: {e}", tracked.listen) })?;
    threads.push(tracker.into_thread());
    Ok((Arc::new(PhantomPicture::new(file)), path))
}

/// Threads a one-shot run's source brings (the tracked phantom's simulated
/// tracker) and the trackers it connects, stopped and joined when the run
/// returns, whichever way.
#[derive(Default)]
pub(super) struct HelperThreads {
    pub(super) shutdown: Shutdown,
    pub(super) threads: Vec<JoinHandle<()>>,
}

impl Drop for HelperThreads {
    fn drop(&mut self) {
        self.shutdown.trigger();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Connects each of `trackers` on its own thread, writing into `poses`
/// until `shutdown`; the threads join `threads`.
pub(super) fn start_trackers(
    trackers: Vec<TrackerSettings>,
    poses: &SharedPoses,
    clock: &SharedClock,
    shutdown: &Shutdown,
    threads: &mut Vec<JoinHandle<()>>,
) -> Result<(), StationError> {
    for settings in trackers {
        let link = TrackerLink::start(settings, poses.clone(), clock.clone(), shutdown.clone())
            .map_err(|source| StationError::Spawn { name: "scopecast-tracker", source })?;
        threads.push(link.into_thread());
    }
    Ok(())
}

pub(super) fn spawn(name: &'static str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, StationError> {
    std::thread::Builder::new().name(name.into()).spawn(body).map_err(|source| StationError::Spawn { name, source })
}

/// [`spawn`] for a thread every frame passes through (capture, compositor,
/// encoder, sending): it first takes the frame path's priority
/// ([`crate::thread_priority::enter_frame_path`]).
pub(super) fn spawn_frame_path(
    name: &'static str,
    body: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, StationError> {
    spawn(name, move || {
        crate::thread_priority::enter_frame_path();
        body()
    })
}

pub(super) fn supervisor_settings(config: &Config) -> SupervisorSettings {
    let s = &config.source;
    let ms = |v: u64| v * 1_000_000;
    SupervisorSettings {
        policy: HealthPolicy {
            no_signal_after_ns: ms(s.no_signal_after_ms),
            restart_after_ns: ms(s.restart_after_ms),
            retry_initial_ns: ms(s.retry_initial_ms),
            retry_max_ns: ms(s.retry_max_ms),
        },
        fps: s.fps,
        size: (s.width, s.height),
    }
}
