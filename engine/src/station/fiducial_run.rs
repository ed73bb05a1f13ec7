//! Fiducial registration from the command line (`scopecast register
//! collect`): the configured trackers (and the synthetic scope's simulated
//! tracker, when configured) run on helper threads; each time the pointer's
//! tip rests still somewhere new, it is taken as the next fiducial, in the
//! model file's order; when every fiducial is taken, the registration and
//! its errors are returned (`crate::tracking::registration`).

use std::sync::Arc;
use std::time::Duration;

use glam::DVec3;
use thiserror::Error;

use super::StationError;
use super::setup::{HelperThreads, make_source, start_trackers};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::tracking::chain::canonical_name;
use crate::tracking::pose_store::{Freshness, PoseAt, PoseStore};
use crate::tracking::registration::{
    FiducialRegistration, FiducialRegistrationError, LivePivot, StillWindow, TipTrace, register_fiducials, solve_pivot,
};
use crate::tracking::setup::tracker_settings;
use crate::tracking::tracker_link::SharedPoses;

/// What to collect and with what.
#[derive(Debug, Clone, PartialEq)]
pub struct FiducialPlan {
    /// The model's fiducials (model frame, mm), in the order they are touched.
    pub model_fiducials: Vec<DVec3>,
    /// The pointer's transform as the tracker names it (`PointerToTracker`).
    pub pointer: String,
    /// The reference marker's (`PhantomToTracker`, a patient reference).
    pub reference: String,
    /// The tip in the pointer's frame (pivot calibration), mm.
    pub tip_in_pointer: DVec3,
    /// A target for the predicted TRE (model frame), mm.
    pub target: Option<DVec3>,
    /// When the tip counts as still.
    pub still: StillWindow,
    /// A new fiducial must be this far from the previous one, mm.
    pub min_apart_mm: f64,
    /// Give up after this long.
    pub timeout: Duration,
    /// Pivot first for this long: the tip is solved from the pointer's poses
    /// (`tip_in_pointer` is then ignored).
    pub pivot: Option<Duration>,
}

/// What was collected and registered.
#[derive(Debug, Clone, PartialEq)]
pub struct FiducialRun {
    /// The live pivot calibration, when asked for.
    pub pivot: Option<LivePivot>,
    /// The tips taken, reference frame, mm.
    pub collected: Vec<DVec3>,
    /// The registration.
    pub registration: FiducialRegistration,
}

/// Why the run failed.
#[derive(Debug, Error)]
pub enum FiducialRunError {
    /// The station's parts could not start.
    #[error(transparent)]
    Station(#[from] StationError),
    /// Not every fiducial was touched in time.
    #[error("{taken} of {wanted} fiducials taken in {waited_s} s ({why}); is the pointer ({pointer}) tracked?")]
    Timeout {
        /// Taken.
        taken: usize,
        /// Wanted.
        wanted: usize,
        /// Waited, s.
        waited_s: u64,
        /// The last refusal.
        why: String,
        /// The pointer's name.
        pointer: String,
    },
    /// The registration failed.
    #[error(transparent)]
    Registration(#[from] FiducialRegistrationError),
    /// The pivot calibration failed.
    #[error("pivot calibration: {0}")]
    Pivot(String),
}

/// Collects `plan`'s fiducials with `config`'s trackers; `said` hears each
/// step in words (for the command line).
pub fn collect_fiducials(
    config: &Config,
    clock: SharedClock,
    plan: &FiducialPlan,
    mut said: impl FnMut(String),
) -> Result<FiducialRun, FiducialRunError> {
    let mut helpers = HelperThreads::default();
    // Only for a simulated tracker the synthetic scope may bring; no frame is taken.
    let _source = make_source(config, &clock, &helpers.shutdown, &mut helpers.threads)?;
    let poses: SharedPoses = Arc::new(arc_swap::ArcSwap::from_pointee(PoseStore::new()));
    start_trackers(tracker_settings(&config.tracking), &poses, &clock, &helpers.shutdown, &mut helpers.threads)?;
    let (pointer, reference) = (canonical_name(&plan.pointer), canonical_name(&plan.reference));
    let fresh = Freshness { stale_after_ns: 100_000_000 };
    let mut tip_in_pointer = plan.tip_in_pointer;
    let mut pivot = None;
    if let Some(pivoting) = plan.pivot {
        said(format!("pivot the pointer about its tip for {} s", pivoting.as_secs_f64()));
        let until = clock.now_ns() + pivoting.as_nanos() as u64;
        let mut seen = 0;
        let mut poses_while_pivoting = Vec::new();
        while clock.now_ns() < until {
            let store = poses.load();
            let fresh_samples: Vec<_> =
                store.samples(&pointer).filter(|s| s.time_ns > seen && s.valid).copied().collect();
            for sample in fresh_samples {
                seen = sample.time_ns;
                poses_while_pivoting.push(sample.pose);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let solved = solve_pivot(&poses_while_pivoting).map_err(FiducialRunError::Pivot)?;
        said(format!(
            "pivot: tip at ({:.2}, {:.2}, {:.2}) mm in the pointer's frame, RMS {:.3} mm over {} poses turning {:.0} degrees",
            solved.tip_in_pointer.x,
            solved.tip_in_pointer.y,
            solved.tip_in_pointer.z,
            solved.rms_mm,
            solved.poses,
            solved.spread_deg
        ));
        tip_in_pointer = solved.tip_in_pointer;
        pivot = Some(solved);
    }
    let mut trace = TipTrace::default();
    let mut collected: Vec<DVec3> = Vec::new();
    // After a fiducial is taken, the tip must leave it before the next one counts.
    let mut left_last = true;
    let mut why = String::from("no pointer pose yet");
    let started = clock.now_ns();
    let wanted = plan.model_fiducials.len();
    said(format!("touch fiducial 1 of {wanted} with the pointer and hold it still"));
    while collected.len() < wanted {
        let now = clock.now_ns();
        if now.saturating_sub(started) > plan.timeout.as_nanos() as u64 {
            return Err(FiducialRunError::Timeout {
                taken: collected.len(),
                wanted,
                waited_s: plan.timeout.as_secs(),
                why,
                pointer: plan.pointer.clone(),
            });
        }
        let store = poses.load();
        let newest = store.samples(&pointer).last().map(|s| s.time_ns);
        if let Some(t) = newest.filter(|t| trace.newest_ns().is_none_or(|seen| *t > seen)) {
            match (store.at(&pointer, t, fresh), store.at(&reference, t, fresh)) {
                (PoseAt::Tracked(tracker_from_pointer), PoseAt::Tracked(tracker_from_reference)) => {
                    let tip = tracker_from_reference
                        .inverse()
                        .then_after(&tracker_from_pointer)
                        .matrix()
                        .transform_point3(tip_in_pointer);
                    trace.push(t, tip);
                    if let Some(last) = collected.last() {
                        left_last |= tip.distance(*last) > plan.min_apart_mm;
                    }
                    match trace.still_tip(t, plan.still) {
                        Ok(point) if left_last => {
                            collected.push(point);
                            left_last = false;
                            said(format!(
                                "fiducial {} of {wanted} taken at ({:.2}, {:.2}, {:.2}) mm",
                                collected.len(),
                                point.x,
                                point.y,
                                point.z
                            ));
                            if collected.len() < wanted {
                                said(format!("touch fiducial {} of {wanted}", collected.len() + 1));
                            }
                        }
                        Ok(_) => why = "the pointer still rests on the last fiducial".into(),
                        Err(refused) => why = refused.to_string(),
                    }
                }
                (pointer_at, reference_at) => {
                    why = format!("pointer {pointer_at:?}, reference {reference_at:?}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let registration = register_fiducials(&plan.model_fiducials, &collected, plan.target)?;
    Ok(FiducialRun { pivot, collected, registration })
}
