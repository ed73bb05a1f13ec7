//! One-shot capture on the calling thread, without starting a station:
//! the first live frame of the configured source (`scopecast calibrate
//! capture`), or a composited snapshot (`scopecast snapshot`).

use std::time::Duration;

use super::StationError;
use super::setup::{HelperThreads, make_source, supervisor_settings};
use crate::clock::SharedClock;
use crate::compositor::gpu::{AdapterPreference, GpuContext};
use crate::compositor::{Compositor, CompositorSettings};
use crate::config::Config;
use crate::frame::Frame;
use crate::metrics::MetricsRegistry;
use crate::scene::setup::scene_from_config;
use crate::slot::latest_slot;
use crate::source::supervisor::Supervisor;

/// Runs the configured source on the calling thread until it delivers a live
/// frame, or `timeout_ms` passes.
pub fn capture_one(config: &Config, clock: SharedClock, timeout_ms: u64) -> Result<Frame, StationError> {
    let (producer, consumer) = latest_slot::<Frame>("capture_one");
    let mut helpers = HelperThreads::default();
    let source = make_source(config, &clock, &helpers.shutdown, &mut helpers.threads)?;
    let mut supervisor =
        Supervisor::new(source, supervisor_settings(config), clock.clone(), producer, &MetricsRegistry::new());
    let status = supervisor.status();
    let deadline = clock.now_ns() + timeout_ms * 1_000_000;
    while clock.now_ns() < deadline {
        supervisor.step();
        if let Ok(frame) = consumer.take(Duration::ZERO)
            && !frame.is_no_signal()
        {
            return Ok(frame);
        }
    }
    let reason = status.lock().map(|s| s.no_signal.clone().unwrap_or_default()).unwrap_or_default();
    Err(StationError::NoFrame { source_uri: config.source.uri.clone(), waited_ms: timeout_ms, reason })
}

/// A composited picture: packed RGB, 3 bytes a pixel.
#[derive(Debug, Clone)]
pub struct Picture {
    /// Width, px.
    pub width: u32,
    /// Height, px.
    pub height: u32,
    /// Pixels, row-major RGB.
    pub rgb: Vec<u8>,
    /// The frame's sequence number.
    pub sequence: u64,
    /// The frame's capture time, Unix ms (what the timecode strip carries).
    pub capture_wall_ms: u64,
}

/// Runs the source and the compositor of `config` on the calling thread for
/// `frames` live frames and returns the last one as composited (with the
/// timecode strip), or as captured when compositing is off.
pub fn snapshot(config: &Config, clock: SharedClock, frames: u32, timeout_ms: u64) -> Result<Picture, StationError> {
    let (producer, consumer) = latest_slot::<Frame>("snapshot");
    let mut helpers = HelperThreads::default();
    let source = make_source(config, &clock, &helpers.shutdown, &mut helpers.threads)?;
    let mut supervisor =
        Supervisor::new(source, supervisor_settings(config), clock.clone(), producer, &MetricsRegistry::new());
    let status = supervisor.status();
    let (scene, problems) = scene_from_config(config);
    for problem in &problems {
        tracing::error!("{problem}");
    }
    let mut compositor = if config.compositor.enabled {
        let ctx = GpuContext::new(AdapterPreference::HighPerformance)?;
        let settings = CompositorSettings {
            timecode: config.compositor.timecode,
            msaa_samples: config.compositor.msaa,
            hidden_marks: config.telestration.hidden_marks,
            passes: config.compositor.passes,
        };
        Some(Compositor::new(ctx, settings))
    } else {
        None
    };
    let deadline = clock.now_ns() + timeout_ms * 1_000_000;
    let mut live = 0;
    let mut last = None;
    while clock.now_ns() < deadline && live < frames.max(1) {
        supervisor.step();
        if let Ok(frame) = consumer.take(Duration::ZERO)
            && !frame.is_no_signal()
        {
            if let Some(c) = compositor.as_mut() {
                // Keep the GPU busy like the live stage does, without piling up.
                c.render(&frame, &scene).map_err(|e| StationError::Compositor(e.to_string()))?;
                c.poll_i420();
            }
            live += 1;
            last = Some(frame);
        }
    }
    let Some(frame) = last else {
        let reason = status.lock().map(|s| s.no_signal.clone().unwrap_or_default()).unwrap_or_default();
        return Err(StationError::NoFrame { source_uri: config.source.uri.clone(), waited_ms: timeout_ms, reason });
    };
    let rgba = match compositor.as_mut() {
        Some(c) => {
            c.render_settled(&frame, &scene, Duration::from_millis(timeout_ms))
                .map_err(|e| StationError::Compositor(e.to_string()))?;
            c.drain_i420();
            c.read_rgba().ok_or_else(|| StationError::Compositor("the GPU readback failed".into()))?
        }
        None => crate::snapshot::to_rgba(&frame),
    };
    let rgb = rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    Ok(Picture {
        width: frame.width(),
        height: frame.height(),
        rgb,
        sequence: frame.sequence,
        capture_wall_ms: frame.capture_wall_ms,
    })
}
