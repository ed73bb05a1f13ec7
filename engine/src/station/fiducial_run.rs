//! Fiducial registration from the command line (`scopecast register
//! collect`): the configured trackers (and the synthetic scope's simulated
//! tracker, when configured) run on helper threads and feed a registration
//! desk, the one the operator's page drives; each time the pointer's tip
//! rests still somewhere new, it is taken as the next fiducial, in the model
//! file's order; when every fiducial is taken, the registration and its
//! errors are returned.

use std::sync::Arc;
use std::time::Duration;

use glam::DVec3;
use thiserror::Error;

use super::StationError;
use super::registration_desk::feed;
use super::setup::{HelperThreads, make_source, start_trackers};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::tracking::chain::canonical_name;
use crate::tracking::pose_store::PoseStore;
use crate::tracking::registration::{FiducialRegistration, FiducialRegistrationError, LivePivot, StillWindow};
use crate::tracking::registration_desk::{DeskPlan, RegistrationDesk};
use crate::tracking::setup::tracker_settings;
use crate::tracking::tracker_link::SharedPoses;
use scopecast_transport::protocol::RegistrationStep;

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

/// Collects `plan`'s fiducials with `config`'s trackers on a registration
/// desk (`crate::tracking::registration_desk`, as the operator's page does),
/// pressing "take" itself whenever the tip rests still somewhere new; `said`
/// hears each step in words (for the command line).
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
    let mut desk = RegistrationDesk::new(DeskPlan {
        model_fiducials: plan.model_fiducials.clone(),
        tip_in_pointer: if plan.pivot.is_some() { None } else { Some(plan.tip_in_pointer) },
        pivot_ns: plan.pivot.map_or(0, |p| p.as_nanos() as u64),
        target: plan.target,
        target_name: "target".into(),
        still: plan.still,
        min_apart_mm: plan.min_apart_mm,
        surface: None,
    });
    if let Some(pivoting) = plan.pivot {
        said(format!("pivot the pointer about its tip for {} s", pivoting.as_secs_f64()));
        desk.step(RegistrationStep::Pivot, None, clock.now_ns()).map_err(FiducialRunError::Pivot)?;
    }
    let wanted = plan.model_fiducials.len();
    let started = clock.now_ns();
    let mut seen_ns = 0;
    let mut said_phase = String::new();
    let mut why = String::from("no pointer pose yet");
    loop {
        std::thread::sleep(Duration::from_millis(5));
        let now = clock.now_ns();
        seen_ns = feed(&mut desk, &poses.load(), &pointer, &reference, seen_ns);
        desk.tick(now);
        let state = desk.state();
        if state.phase == "pivot" && !desk.is_pivoting() {
            // The pivot ended without a tip: its words say why.
            return Err(FiducialRunError::Pivot(state.message));
        }
        if state.phase != said_phase && state.phase == "collect" {
            if let Some(pivot) = desk.pivot() {
                let t = pivot.tip_in_pointer;
                said(format!(
                    "pivot: tip at ({:.2}, {:.2}, {:.2}) mm in the pointer's frame, RMS {:.3} mm over {} poses turning {:.0} degrees",
                    t.x, t.y, t.z, pivot.rms_mm, pivot.poses, pivot.spread_deg
                ));
            }
            said(format!("touch fiducial 1 of {wanted} with the pointer and hold it still"));
        }
        said_phase = state.phase.clone();
        if state.phase == "review" {
            break;
        }
        if now.saturating_sub(started) > plan.timeout.as_nanos() as u64 {
            return Err(FiducialRunError::Timeout {
                taken: state.fiducials.iter().filter(|f| f.taken).count(),
                wanted,
                waited_s: plan.timeout.as_secs(),
                why,
                pointer: plan.pointer.clone(),
            });
        }
        if state.phase != "collect" {
            continue;
        }
        if state.pointer != "still" {
            why = format!("the pointer is {}", state.pointer);
            continue;
        }
        match desk.step(RegistrationStep::Take, None, now) {
            Ok(_) => {
                let taken = desk.collected();
                if let Some(point) = taken.last() {
                    said(format!(
                        "fiducial {} of {wanted} taken at ({:.2}, {:.2}, {:.2}) mm",
                        taken.len(),
                        point.x,
                        point.y,
                        point.z
                    ));
                }
                if taken.len() < wanted {
                    said(format!("touch fiducial {} of {wanted}", taken.len() + 1));
                }
            }
            Err(refused) => why = refused,
        }
    }
    let collected = desk.collected();
    let pivot = desk.pivot();
    let accepted = desk
        .step(RegistrationStep::Accept, None, clock.now_ns())
        .map_err(|e| FiducialRunError::Registration(FiducialRegistrationError::Solve(e)))?
        .ok_or_else(|| FiducialRunError::Registration(FiducialRegistrationError::Solve(desk.state().message)))?;
    Ok(FiducialRun { pivot, collected, registration: accepted.fiducials })
}
