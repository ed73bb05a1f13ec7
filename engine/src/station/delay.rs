//! Temporal calibration at the station (`scopecast calibrate delay`): runs
//! the configured source and trackers on the calling thread for a few
//! seconds while the scope is wiggled over a still scene, and finds the
//! camera-minus-tracker delay (`crate::tracking::temporal`) from a tracked
//! model's pose chain.

use std::sync::Arc;
use std::time::Duration;

use glam::DVec3;
use thiserror::Error;

use super::StationError;
use super::setup::{HelperThreads, make_source, start_trackers, supervisor_settings};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::frame::Frame;
use crate::metrics::MetricsRegistry;
use crate::scene::setup::scene_from_config;
use crate::slot::latest_slot;
use crate::source::supervisor::Supervisor;
use crate::tracking::chain::{Chain, ChainAt, Link};
use crate::tracking::pose_store::{Alignment, Freshness, PoseStore};
use crate::tracking::setup::{chain_of, tracker_settings};
use crate::tracking::temporal::{DelayEstimate, Gray, TemporalError, estimate_delay, image_shift, velocities};
use crate::tracking::tracker_link::SharedPoses;

/// The largest delay searched, either way, ns.
pub const MAX_DELAY_NS: u64 = 300_000_000;

/// What the measurement found.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayMeasurement {
    /// The delay.
    pub estimate: DelayEstimate,
    /// Frame-to-frame image motions measured.
    pub frames: usize,
    /// Tracker poses of the chain used.
    pub poses: usize,
    /// The model whose chain was used.
    pub model: String,
}

/// Why the delay could not be measured.
#[derive(Debug, Error)]
pub enum DelayError {
    /// The station's parts could not start.
    #[error(transparent)]
    Station(#[from] StationError),
    /// No model with a tracked pose (or not the one named).
    #[error("{0}")]
    NoChain(String),
    /// The calibration (camera model) is off: the predicted motion needs it.
    #[error("the compositor has no camera model (compositor.calibration = \"none\"); the delay needs one")]
    NoCamera,
    /// The motions did not give a delay.
    #[error(transparent)]
    Temporal(#[from] TemporalError),
}

fn pick_chain(config: &Config, model: Option<&str>) -> Result<(String, Chain), DelayError> {
    for m in &config.compositor.models {
        let name = m.name();
        if model.is_some_and(|wanted| wanted != name) {
            continue;
        }
        let chain = chain_of(m, None).map_err(|e| DelayError::Station(StationError::Tracking(e)))?;
        if let Some(chain) = chain.filter(|c| c.links.iter().any(|l| matches!(l, Link::Tracked { .. }))) {
            return Ok((name, chain));
        }
    }
    Err(DelayError::NoChain(match model {
        Some(name) => format!("no model named {name:?} with a tracked pose in [[compositor.models]]"),
        None => "no model in [[compositor.models]] has a tracked pose (pose = [{ tracked = ... }])".into(),
    }))
}

/// Runs `config`'s source and trackers for `seconds` and measures the delay
/// with `model`'s chain (the first tracked model when `None`).
pub fn measure_delay(
    config: &Config,
    clock: SharedClock,
    seconds: f64,
    model: Option<&str>,
) -> Result<DelayMeasurement, DelayError> {
    let (model, chain) = pick_chain(config, model)?;
    let Some(first_link) = chain.links.iter().find_map(|l| match l {
        Link::Tracked { name, .. } => Some(name.clone()),
        Link::Fixed(_) => None,
    }) else {
        return Err(DelayError::NoChain(format!("{model} has no tracked link")));
    };
    let (scene, _) = scene_from_config(config);
    let calibration = scene.calibration.ok_or(DelayError::NoCamera)?;
    let mut helpers = HelperThreads::default();
    let (producer, consumer) = latest_slot::<Frame>("delay");
    let source = make_source(config, &clock, &helpers.shutdown, &mut helpers.threads)?;
    let mut supervisor =
        Supervisor::new(source, supervisor_settings(config), clock.clone(), producer, &MetricsRegistry::new());
    let poses: SharedPoses = Arc::new(arc_swap::ArcSwap::from_pointee(PoseStore::new()));
    start_trackers(tracker_settings(&config.tracking), &poses, &clock, &helpers.shutdown, &mut helpers.threads)?;
    // Every pose is wanted, however old: the series is matched afterwards.
    let freshness = Freshness { stale_after_ns: u64::MAX };
    let mut image: Vec<(u64, [f64; 2])> = Vec::new();
    let mut predicted: Vec<(u64, [f64; 2])> = Vec::new();
    let mut previous: Option<(u64, Gray)> = None;
    let mut spot_in_model: Option<DVec3> = None;
    let mut last_pose_ns = 0;
    let deadline = clock.now_ns() + (seconds.max(0.5) * 1e9) as u64;
    while clock.now_ns() < deadline {
        supervisor.step();
        let store = poses.load();
        let times: Vec<u64> = store.samples(&first_link).map(|s| s.time_ns).filter(|t| *t > last_pose_ns).collect();
        for t in times {
            let ChainAt::Tracked(camera_from_model) = chain.at(&store, t, freshness, Alignment::CaptureTime) else {
                continue;
            };
            last_pose_ns = t;
            let m = camera_from_model.matrix();
            // The spot the picture's centre sees: on the optical axis, at the model's depth.
            let spot = *spot_in_model.get_or_insert_with(|| {
                let depth = m.w_axis.z;
                m.inverse().transform_point3(DVec3::new(0.0, 0.0, if depth > 1.0 { depth } else { 100.0 }))
            });
            let p = m.transform_point3(spot);
            if p.z > 0.0 {
                predicted.push((t, calibration.camera.pixel_from_normalized(p.x / p.z, p.y / p.z)));
            }
        }
        let Ok(frame) = consumer.take(Duration::ZERO) else { continue };
        if frame.is_no_signal() {
            previous = None;
            continue;
        }
        let gray = Gray::of_frame(&frame);
        if let Some((before_ns, before)) = &previous
            && let Some(shift) = image_shift(before, &gray)
            && frame.capture_time_ns > *before_ns
        {
            // In the calibration's pixels, as the predictions are.
            let scale = f64::from(frame.width()) / f64::from(calibration.width.max(1));
            let dt_s = (frame.capture_time_ns - before_ns) as f64 / 1e9;
            image.push((
                before_ns + (frame.capture_time_ns - before_ns) / 2,
                [shift[0] / scale / dt_s, shift[1] / scale / dt_s],
            ));
        }
        previous = Some((frame.capture_time_ns, gray));
    }
    let frames = image.len();
    let estimate = estimate_delay(&image, &velocities(&predicted), MAX_DELAY_NS)?;
    Ok(DelayMeasurement { estimate, frames, poses: predicted.len(), model })
}
