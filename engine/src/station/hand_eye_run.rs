//! Hand–eye calibration at the station (`scopecast calibrate hand-eye-live`):
//! the configured source and trackers run on the calling thread while the
//! scope is moved over a chessboard; each frame where the board is found
//! gives the board's pose in the camera (its corners through the station's
//! camera model), paired with the scope marker's pose at the frame's
//! capture time (minus the configured camera-versus-tracker delay); views
//! far enough apart are kept and solve `camera_from_scope`
//! (`crate::tracking::hand_eye_views`), with its residuals.

use std::sync::Arc;
use std::time::Duration;

use scopecast_calibration::detect::GrayImage;
use scopecast_calibration::detect::chessboard::find_chessboard;
use thiserror::Error;

use super::StationError;
use super::setup::{HelperThreads, make_source, start_trackers, supervisor_settings};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::frame::{Frame, PixelFormat};
use crate::metrics::MetricsRegistry;
use crate::scene::setup::scene_from_config;
use crate::slot::latest_slot;
use crate::source::supervisor::Supervisor;
use crate::tracking::chain::canonical_name;
use crate::tracking::hand_eye_views::{HandEyeResult, HandEyeViews, board_pose};
use crate::tracking::pose_store::{Freshness, PoseAt, PoseStore};
use crate::tracking::setup::tracker_settings;
use crate::tracking::tracker_link::SharedPoses;

/// What to collect.
#[derive(Debug, Clone, PartialEq)]
pub struct HandEyePlan {
    /// Inner corners per row and per column of the board.
    pub cols: usize,
    /// Inner corners per column.
    pub rows: usize,
    /// Square side, mm.
    pub square_mm: f64,
    /// The scope marker's transform as the tracker names it (`ScopeToTracker`).
    pub scope: String,
    /// Views to keep.
    pub views: usize,
    /// A view is kept when the scope turned at least this much from every kept one, degrees.
    pub min_turn_deg: f64,
    /// A board whose corners reproject worse than this is not used, px.
    pub max_board_rms_px: f64,
    /// Give up after this long.
    pub timeout: Duration,
}

/// What was collected and solved.
#[derive(Debug, Clone, PartialEq)]
pub struct HandEyeRun {
    /// The solution and its residuals.
    pub result: HandEyeResult,
    /// Each kept view's corner reprojection RMS, px.
    pub board_rms_px: Vec<f64>,
    /// Frames looked at.
    pub frames: usize,
    /// Frames where the board was found.
    pub boards: usize,
}

/// Why the run failed.
#[derive(Debug, Error)]
pub enum HandEyeRunError {
    /// The station's parts could not start.
    #[error(transparent)]
    Station(#[from] StationError),
    /// The station has no camera model to see the board through.
    #[error("no camera calibration: set [compositor] calibration (a file, or \"synthetic\")")]
    NoCamera,
    /// Not enough views in time.
    #[error(
        "{kept} of {wanted} views in {waited_s} s ({boards} boards found in {frames} frames): move the scope over the whole board, turning it between views"
    )]
    Timeout {
        /// Kept.
        kept: usize,
        /// Wanted.
        wanted: usize,
        /// Waited, s.
        waited_s: u64,
        /// Boards found.
        boards: usize,
        /// Frames seen.
        frames: usize,
    },
    /// The views did not solve.
    #[error("hand–eye: {0}")]
    Solve(String),
}

/// The frame's luminance, 0..=255 (RGBA: the mean of R, G, B; planar YUV: Y).
fn gray(frame: &Frame) -> Option<GrayImage> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let plane = frame.planes()[0];
    let bytes = frame.bytes();
    let mut data = Vec::with_capacity(w * h);
    for y in 0..h {
        let line = plane.offset + y * plane.stride;
        for x in 0..w {
            let value = match frame.format() {
                PixelFormat::Rgba8 => {
                    let p = bytes.get(line + x * 4..line + x * 4 + 3)?;
                    (f32::from(p[0]) + f32::from(p[1]) + f32::from(p[2])) / 3.0
                }
                _ => f32::from(*bytes.get(line + x)?),
            };
            data.push(value);
        }
    }
    GrayImage::new(w, h, data)
}

/// Collects `plan`'s views with `config`'s source and trackers and solves;
/// `said` hears each kept view in words.
pub fn collect_hand_eye(
    config: &Config,
    clock: SharedClock,
    plan: &HandEyePlan,
    mut said: impl FnMut(String),
) -> Result<HandEyeRun, HandEyeRunError> {
    let (scene, _) = scene_from_config(config);
    let calibration = scene.calibration.ok_or(HandEyeRunError::NoCamera)?;
    let mut helpers = HelperThreads::default();
    let (producer, consumer) = latest_slot::<Frame>("hand-eye");
    let source = make_source(config, &clock, &helpers.shutdown, &mut helpers.threads)?;
    let mut supervisor =
        Supervisor::new(source, supervisor_settings(config), clock.clone(), producer, &MetricsRegistry::new());
    let poses: SharedPoses = Arc::new(arc_swap::ArcSwap::from_pointee(PoseStore::new()));
    start_trackers(tracker_settings(&config.tracking), &poses, &clock, &helpers.shutdown, &mut helpers.threads)?;
    let scope = canonical_name(&plan.scope);
    let freshness = Freshness { stale_after_ns: config.tracking.stale_after_ms.saturating_mul(1_000_000) };
    let delay_ns = (config.tracking.video_minus_tracker_latency_ms * 1e6) as i64;
    let board_mm: Vec<[f64; 3]> = (0..plan.rows)
        .flat_map(|r| (0..plan.cols).map(move |c| [c as f64 * plan.square_mm, r as f64 * plan.square_mm, 0.0]))
        .collect();
    let mut views = HandEyeViews::default();
    let mut board_rms_px = Vec::new();
    let (mut frames, mut boards) = (0, 0);
    let started = clock.now_ns();
    let deadline = started + plan.timeout.as_nanos() as u64;
    said(format!(
        "move the scope over the {} x {} chessboard, turning it: {} views wanted",
        plan.cols, plan.rows, plan.views
    ));
    while views.len() < plan.views {
        if clock.now_ns() > deadline {
            return Err(HandEyeRunError::Timeout {
                kept: views.len(),
                wanted: plan.views,
                waited_s: plan.timeout.as_secs(),
                boards,
                frames,
            });
        }
        supervisor.step();
        let Ok(frame) = consumer.take(Duration::ZERO) else { continue };
        if frame.is_no_signal() {
            continue;
        }
        frames += 1;
        let Some(image) = gray(&frame) else { continue };
        let Ok(mut corners) = find_chessboard(&image, plan.cols, plan.rows) else { continue };
        // In the calibration's pixels.
        let scale = f64::from(calibration.width.max(1)) / f64::from(frame.width().max(1));
        for c in &mut corners {
            *c = [c[0] * scale, c[1] * scale];
        }
        let Some(mut found) = board_pose(&calibration.camera, &corners, &board_mm) else { continue };
        // The detector may start from either end of the board: keep its x axis
        // pointing the way the first view's did (the reversed order is the
        // board turned half a turn about its normal).
        let x_axis = |p: &crate::tracking::pose_store::Pose| p.rotation * glam::DVec3::X;
        if let Some(first) = views.first_board()
            && x_axis(&found.camera_from_board).dot(x_axis(&first)) < 0.0
        {
            corners.reverse();
            let Some(turned) = board_pose(&calibration.camera, &corners, &board_mm) else { continue };
            found = turned;
        }
        if found.rms_px > plan.max_board_rms_px {
            continue;
        }
        boards += 1;
        let at = frame.capture_time_ns.saturating_add_signed(-delay_ns);
        let PoseAt::Tracked(tracker_from_scope) = poses.load().at(&scope, at, freshness) else { continue };
        if views.offer(tracker_from_scope, found.camera_from_board, plan.min_turn_deg) {
            board_rms_px.push(found.rms_px);
            said(format!(
                "view {} of {}: board {:.0} mm away, corners reproject to {:.2} px",
                views.len(),
                plan.views,
                found.camera_from_board.translation.length(),
                found.rms_px
            ));
        }
    }
    let result = views.solve().map_err(HandEyeRunError::Solve)?;
    Ok(HandEyeRun { result, board_rms_px, frames, boards })
}
