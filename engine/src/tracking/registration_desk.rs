//! The registration desk, sans IO: registering the patient at the station
//! with a tracked pointer, step by step, as the operator's page and the
//! monitor's keys drive it. Poses and the time come in
//! ([`RegistrationDesk::observe`], [`RegistrationDesk::tick`]), steps come
//! in ([`RegistrationDesk::step`]), and what every page and the HUD show
//! comes out ([`RegistrationDesk::state`]); an accepted registration comes
//! out of the `accept` step for the station to write, use and record.
//!
//! The steps: pivot (when no tip is configured: the pointer pivots about its
//! tip for a few seconds and the tip is solved), take each fiducial in the
//! model file's order (the tip averaged over a still window, refused while
//! it moves or its pose is stale, or where another fiducial was taken),
//! review (FRE, each fiducial's residual and leave-one-out error, suspects,
//! the predicted TRE at the named target), redo one, optionally sweep the
//! pointer over the exposed surface and refine by trimmed ICP (RMS and the
//! change from the paired-point result shown), accept. Frames: tips in the
//! patient reference's frame, model fiducials and surface in the model's,
//! mm; times station-clock ns.

use glam::DVec3;
use nalgebra::Vector3;
use scopecast_calibration::registration::icp::{IcpMetric, IcpSettings, icp};
use scopecast_transport::protocol::{FiducialState, RegistrationState, RegistrationStep};

use super::pose_store::Pose;
use super::registration::{FiducialRegistration, LivePivot, StillWindow, TipTrace, register_fiducials, solve_pivot};
use super::registration_file::SurfaceRecord;

/// Most pivot poses kept (a minute at 120 Hz).
const MAX_PIVOT_POSES: usize = 7_200;
/// Most swept surface points kept.
pub const MAX_SWEPT_POINTS: usize = 20_000;
/// Swept points closer than this to the previous one are not kept, mm.
const SWEEP_SPACING_MM: f64 = 1.0;
/// Fewest swept points ICP refines with.
const MIN_SWEPT_POINTS: usize = 30;
/// Without a pointer pose for this long the pointer is "not tracked", ns.
const POINTER_STALE_NS: u64 = 200_000_000;

/// What the desk registers with.
#[derive(Debug, Clone, PartialEq)]
pub struct DeskPlan {
    /// The model's fiducials (model frame, mm), in the order they are touched.
    pub model_fiducials: Vec<DVec3>,
    /// The pointer's tip in its own frame (a pivot calibration), mm; `None`:
    /// pivot first.
    pub tip_in_pointer: Option<DVec3>,
    /// How long pivoting lasts, ns.
    pub pivot_ns: u64,
    /// A target (model frame, mm) for the predicted TRE, and its name.
    pub target: Option<DVec3>,
    /// The target's name.
    pub target_name: String,
    /// When the tip counts as still.
    pub still: StillWindow,
    /// A fiducial must be this far from every other one taken, mm.
    pub min_apart_mm: f64,
    /// The model's surface points (model frame, mm) for ICP; `None`: no
    /// surface refinement.
    pub surface: Option<Vec<DVec3>>,
}

/// Where the desk is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Waiting for a pivot (`until_ns: None`) or pivoting until then.
    Pivot { until_ns: Option<u64> },
    /// Taking fiducials.
    Collect,
    /// Sweeping the surface.
    Sweep,
    /// Every fiducial taken: errors shown, waiting for accept or redo.
    Review,
    /// The registration in use was accepted here.
    Accepted,
}

/// The registration the operator accepted: for the station to write, use
/// at once and record.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedRegistration {
    /// The model in the patient reference's frame (the surface refinement's
    /// when there is one).
    pub reference_from_model: Pose,
    /// The paired-point registration and its errors.
    pub fiducials: FiducialRegistration,
    /// The surface refinement, if it was used.
    pub surface: Option<SurfaceRecord>,
    /// The target's name.
    pub target_name: String,
}

/// A surface refinement shown before acceptance.
#[derive(Debug, Clone, PartialEq)]
struct Refinement {
    reference_from_model: Pose,
    record: SurfaceRecord,
}

/// The pointer as last seen.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pointer {
    NotTracked,
    Moving,
    Still(DVec3),
}

/// The desk.
#[derive(Debug, Clone)]
pub struct RegistrationDesk {
    plan: DeskPlan,
    phase: Phase,
    tip_in_pointer: Option<DVec3>,
    pivot: Option<LivePivot>,
    pivot_poses: Vec<Pose>,
    trace: TipTrace,
    /// Each fiducial's tip, reference frame.
    collected: Vec<Option<DVec3>>,
    /// The fiducial the next take fills, when redoing one.
    redo: Option<usize>,
    result: Option<FiducialRegistration>,
    swept: Vec<DVec3>,
    refined: Option<Refinement>,
    pointer: Pointer,
    message: String,
    accepted_by: Option<String>,
}

fn vector(p: DVec3) -> Vector3<f64> {
    Vector3::new(p.x, p.y, p.z)
}

impl RegistrationDesk {
    /// A desk for `plan`: pivoting first unless the tip is known.
    pub fn new(plan: DeskPlan) -> Self {
        let n = plan.model_fiducials.len();
        let mut desk = Self {
            phase: Phase::Collect,
            tip_in_pointer: plan.tip_in_pointer,
            pivot: None,
            pivot_poses: Vec::new(),
            trace: TipTrace::default(),
            collected: vec![None; n],
            redo: None,
            result: None,
            swept: Vec::new(),
            refined: None,
            pointer: Pointer::NotTracked,
            message: String::new(),
            accepted_by: None,
            plan,
        };
        desk.restart();
        desk
    }

    /// Starts again: nothing collected (a solved tip is kept).
    fn restart(&mut self) {
        self.collected = vec![None; self.plan.model_fiducials.len()];
        self.redo = None;
        self.result = None;
        self.swept.clear();
        self.refined = None;
        if self.tip_in_pointer.is_some() {
            self.phase = Phase::Collect;
            self.message = self.touch_next();
        } else {
            self.phase = Phase::Pivot { until_ns: None };
            self.message = "press Pivot, then pivot the pointer about its tip".into();
        }
    }

    /// The fiducial the next take fills.
    fn next_index(&self) -> Option<usize> {
        self.redo.or_else(|| self.collected.iter().position(Option::is_none))
    }

    fn touch_next(&self) -> String {
        match self.next_index() {
            Some(i) => format!("touch fiducial {} of {} and press Take", i + 1, self.collected.len()),
            None => "every fiducial is taken".into(),
        }
    }

    /// The pointer and the patient reference as tracked at `time_ns`
    /// (`tracker_from_pointer`, `tracker_from_reference`; `None` where not
    /// tracked then).
    pub fn observe(&mut self, time_ns: u64, pointer: Option<Pose>, reference: Option<Pose>) {
        let (Some(tracker_from_pointer), Some(tracker_from_reference)) = (pointer, reference) else {
            return;
        };
        let reference_from_pointer = tracker_from_reference.inverse().then_after(&tracker_from_pointer);
        if let Phase::Pivot { until_ns: Some(_) } = self.phase
            && self.pivot_poses.len() < MAX_PIVOT_POSES
        {
            self.pivot_poses.push(reference_from_pointer);
        }
        let Some(tip_in_pointer) = self.tip_in_pointer else { return };
        let tip = reference_from_pointer.matrix().transform_point3(tip_in_pointer);
        self.trace.push(time_ns, tip);
        if self.phase == Phase::Sweep
            && self.swept.len() < MAX_SWEPT_POINTS
            && self.swept.last().is_none_or(|last| last.distance(tip) >= SWEEP_SPACING_MM)
        {
            self.swept.push(tip);
        }
    }

    /// Time passes: a pivot ends when its time is up; the pointer's state
    /// is brought up to `now_ns`.
    pub fn tick(&mut self, now_ns: u64) {
        if let Phase::Pivot { until_ns: Some(until) } = self.phase
            && now_ns >= until
        {
            match solve_pivot(&self.pivot_poses) {
                Ok(pivot) => {
                    self.tip_in_pointer = Some(pivot.tip_in_pointer);
                    self.pivot = Some(pivot);
                    self.phase = Phase::Collect;
                    self.message = format!(
                        "pivot: RMS {:.2} mm over {} poses turning {:.0} degrees; {}",
                        pivot.rms_mm,
                        pivot.poses,
                        pivot.spread_deg,
                        self.touch_next()
                    );
                }
                Err(why) => {
                    self.phase = Phase::Pivot { until_ns: None };
                    self.message = format!("{why}; press Pivot to try again");
                }
            }
            self.pivot_poses.clear();
        }
        let fresh = self.trace.newest_ns().is_some_and(|t| now_ns.saturating_sub(t) <= POINTER_STALE_NS);
        self.pointer = match (fresh, self.trace.still_tip(now_ns, self.plan.still)) {
            (false, _) => Pointer::NotTracked,
            (true, Ok(tip)) => Pointer::Still(tip),
            (true, Err(_)) => Pointer::Moving,
        };
    }

    /// Carries out `step` at `now_ns` (`fiducial`: 1-based, for redo); an
    /// `Err` says in words why not. `Ok(Some(..))` when a registration was
    /// accepted.
    pub fn step(
        &mut self,
        step: RegistrationStep,
        fiducial: Option<u32>,
        now_ns: u64,
    ) -> Result<Option<AcceptedRegistration>, String> {
        let refused = |why: String| Err(why);
        match step {
            RegistrationStep::Restart => {
                self.restart();
                Ok(None)
            }
            RegistrationStep::Pivot => {
                if self.collected.iter().any(Option::is_some) {
                    return refused("fiducials were taken with the present tip: press Restart before pivoting".into());
                }
                self.pivot_poses.clear();
                self.phase = Phase::Pivot { until_ns: Some(now_ns.saturating_add(self.plan.pivot_ns)) };
                self.message = format!(
                    "pivoting: turn the pointer about its tip (30 degrees or more) for {:.0} s",
                    self.plan.pivot_ns as f64 / 1e9
                );
                Ok(None)
            }
            RegistrationStep::Take => self.take(now_ns).map(|()| None),
            RegistrationStep::Redo => {
                let n = self.collected.len();
                let Some(index) = fiducial.map(|f| f as usize).filter(|f| (1..=n).contains(f)).map(|f| f - 1) else {
                    return refused(format!("redo names a fiducial from 1 to {n}"));
                };
                if !matches!(self.phase, Phase::Collect | Phase::Review | Phase::Accepted) {
                    return refused("finish pivoting or sweeping first".into());
                }
                self.redo = Some(index);
                self.phase = Phase::Collect;
                self.refined = None;
                self.message = self.touch_next();
                Ok(None)
            }
            RegistrationStep::Sweep => self.sweep().map(|()| None),
            RegistrationStep::Accept => {
                let (Phase::Review, Some(fiducials)) = (self.phase, self.result.clone()) else {
                    return refused("nothing to accept yet: take every fiducial first".into());
                };
                let (reference_from_model, surface) = match &self.refined {
                    Some(refined) => (refined.reference_from_model, Some(refined.record.clone())),
                    None => (fiducials.reference_from_model, None),
                };
                self.phase = Phase::Accepted;
                self.message = "accepted: the overlay uses this registration".into();
                Ok(Some(AcceptedRegistration {
                    reference_from_model,
                    fiducials,
                    surface,
                    target_name: self.plan.target_name.clone(),
                }))
            }
        }
    }

    /// The accepted registration could not be used (its file could not be
    /// written): back to review, saying why.
    pub fn accept_failed(&mut self, why: String) {
        if self.phase == Phase::Accepted {
            self.phase = Phase::Review;
        }
        self.message = why;
    }

    /// A pivot is under way (its poses are being gathered).
    pub fn is_pivoting(&self) -> bool {
        matches!(self.phase, Phase::Pivot { until_ns: Some(_) })
    }

    /// The live pivot calibration, when the tip was solved here.
    pub fn pivot(&self) -> Option<LivePivot> {
        self.pivot
    }

    /// The tips taken so far, in fiducial order (reference frame, mm).
    pub fn collected(&self) -> Vec<DVec3> {
        self.collected.iter().flatten().copied().collect()
    }

    /// Who accepted the registration in use, for the pages.
    pub fn set_accepted_by(&mut self, who: String) {
        self.accepted_by = Some(who);
    }

    fn take(&mut self, now_ns: u64) -> Result<(), String> {
        if self.tip_in_pointer.is_none() {
            return Err("the pointer's tip is not known: press Pivot first".into());
        }
        if !matches!(self.phase, Phase::Collect) {
            return Err(match self.phase {
                Phase::Sweep => "sweeping: press Sweep to end it first".into(),
                _ => "every fiducial is taken: accept, redo one or restart".into(),
            });
        }
        let Some(index) = self.next_index() else {
            return Err("every fiducial is taken: accept, redo one or restart".into());
        };
        let tip = self.trace.still_tip(now_ns, self.plan.still).map_err(|refused| refused.to_string())?;
        // A fiducial the last registration suspects may be where this one belongs (two swapped).
        let suspects = self.result.as_ref().map(|r| r.suspects.clone()).unwrap_or_default();
        let too_close = self.collected.iter().enumerate().find(|(j, p)| {
            *j != index && !suspects.contains(j) && p.is_some_and(|p| p.distance(tip) < self.plan.min_apart_mm)
        });
        if let Some((j, _)) = too_close {
            return Err(format!("the tip rests where fiducial {} was taken: move it to fiducial {}", j + 1, index + 1));
        }
        self.collected[index] = Some(tip);
        self.redo = None;
        self.refined = None;
        if self.collected.iter().all(Option::is_some) {
            self.register();
        } else {
            self.message = format!("fiducial {} taken; {}", index + 1, self.touch_next());
        }
        Ok(())
    }

    /// Registers the collected tips: review.
    fn register(&mut self) {
        let tips: Vec<DVec3> = self.collected.iter().flatten().copied().collect();
        match register_fiducials(&self.plan.model_fiducials, &tips, self.plan.target) {
            Ok(result) => {
                self.message = match result.suspects.as_slice() {
                    [] => "every fiducial taken: check FRE and TRE, then accept".into(),
                    suspects => format!(
                        "fiducial {} far from where the others put it: redo {}",
                        suspects.iter().map(|s| (s + 1).to_string()).collect::<Vec<_>>().join(" and "),
                        if suspects.len() == 1 { "it" } else { "them" }
                    ),
                };
                self.result = Some(result);
                self.phase = Phase::Review;
            }
            Err(e) => {
                self.message = format!("the registration failed ({e}): restart");
                self.result = None;
                self.phase = Phase::Review;
            }
        }
    }

    fn sweep(&mut self) -> Result<(), String> {
        let Some(surface) = &self.plan.surface else {
            return Err("no surface to refine on: set [registration] surface in the config".into());
        };
        match self.phase {
            Phase::Review if self.result.is_some() => {
                self.swept.clear();
                self.refined = None;
                self.phase = Phase::Sweep;
                self.message = "sweeping: stroke the pointer over the exposed surface, then press Sweep".into();
                Ok(())
            }
            Phase::Sweep => {
                self.phase = Phase::Review;
                let Some(paired) = self.result.as_ref().map(|r| r.reference_from_model) else {
                    return Err("no paired-point registration to refine".into());
                };
                if self.swept.len() < MIN_SWEPT_POINTS {
                    self.message = format!(
                        "only {} surface points swept (at least {MIN_SWEPT_POINTS}, {SWEEP_SPACING_MM} mm apart): sweep again",
                        self.swept.len()
                    );
                    return Ok(());
                }
                let moving: Vec<Vector3<f64>> = self.swept.iter().map(|p| vector(*p)).collect();
                let fixed: Vec<Vector3<f64>> = surface.iter().map(|p| vector(*p)).collect();
                let settings = IcpSettings {
                    metric: IcpMetric::PointToPlane,
                    max_iterations: 60,
                    tolerance_mm: 1e-6,
                    keep_fraction: 0.8,
                };
                match icp(&moving, &fixed, paired.inverse().to_isometry(), settings) {
                    Ok(found) => {
                        let reference_from_model = Pose::from_isometry(&found.fixed_from_moving).inverse();
                        let probe = self.plan.target.unwrap_or(DVec3::ZERO);
                        let change_mm = reference_from_model
                            .matrix()
                            .transform_point3(probe)
                            .distance(paired.matrix().transform_point3(probe));
                        let record = SurfaceRecord { points: moving.len(), rms_mm: found.rms_mm, change_mm };
                        self.message = format!(
                            "surface: RMS {:.2} mm over {} points, the {} moved {:.2} mm: accept, or sweep again",
                            record.rms_mm,
                            record.points,
                            if self.plan.target.is_some() { self.plan.target_name.as_str() } else { "model" },
                            record.change_mm
                        );
                        self.refined = Some(Refinement { reference_from_model, record });
                    }
                    Err(e) => {
                        self.message = format!("surface refinement failed ({e}): sweep again or accept without it")
                    }
                }
                Ok(())
            }
            _ => Err("take every fiducial before sweeping the surface".into()),
        }
    }

    /// What the pages and the HUD show.
    pub fn state(&self) -> RegistrationState {
        let result = self.result.as_ref();
        let fiducials = self
            .collected
            .iter()
            .enumerate()
            .map(|(i, tip)| FiducialState {
                taken: tip.is_some(),
                residual_mm: result.and_then(|r| r.residuals_mm.get(i).copied()),
                leave_one_out_mm: result.and_then(|r| r.leave_one_out_mm.get(i).copied()).filter(|e| e.is_finite()),
                suspect: result.is_some_and(|r| r.suspects.contains(&i)),
            })
            .collect();
        let (pointer, tip_mm) = match self.pointer {
            Pointer::NotTracked => ("not tracked", None),
            Pointer::Moving => ("moving", None),
            Pointer::Still(tip) => ("still", Some(tip.to_array())),
        };
        let phase = match self.phase {
            Phase::Pivot { .. } => "pivot",
            Phase::Collect => "collect",
            Phase::Sweep => "sweep",
            Phase::Review => "review",
            Phase::Accepted => "accepted",
        };
        RegistrationState {
            phase: phase.into(),
            fiducials,
            next: if self.phase == Phase::Collect { self.next_index().map(|i| i as u32 + 1) } else { None },
            pointer: pointer.into(),
            tip_mm,
            pivot_rms_mm: self.pivot.map(|p| p.rms_mm),
            fre_mm: result.map(|r| r.fre_mm),
            tre_mm: result.and_then(|r| r.tre_mm),
            target: self.plan.target_name.clone(),
            surface_points: self.swept.len() as u32,
            surface_rms_mm: self.refined.as_ref().map(|r| r.record.rms_mm),
            surface_change_mm: self.refined.as_ref().map(|r| r.record.change_mm),
            message: self.message.clone(),
            accepted_by: self.accepted_by.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use glam::DQuat;

    use super::*;

    const MS: u64 = 1_000_000;

    fn fiducials() -> Vec<DVec3> {
        [
            (-22.0, -16.0, 1.0),
            (0.0, -20.0, 3.0),
            (21.0, -15.0, 0.0),
            (-20.0, 3.0, 2.0),
            (2.0, 0.0, 5.0),
            (22.0, 4.0, 1.0),
        ]
        .iter()
        .map(|(x, y, z)| DVec3::new(*x, *y, *z))
        .collect()
    }

    fn plan(tip: Option<DVec3>) -> DeskPlan {
        DeskPlan {
            model_fiducials: fiducials(),
            tip_in_pointer: tip,
            pivot_ns: 2_000 * MS,
            target: Some(DVec3::new(5.0, -4.0, 9.0)),
            target_name: "tumour centroid".into(),
            still: StillWindow::default(),
            min_apart_mm: 5.0,
            surface: None,
        }
    }

    /// The reference marker in the tracker, and the model in the reference.
    fn truth() -> (Pose, Pose) {
        let tracker_from_reference =
            Pose { rotation: DQuat::from_rotation_x(0.4), translation: DVec3::new(100.0, -30.0, 900.0) };
        let reference_from_model = Pose {
            rotation: DQuat::from_euler(glam::EulerRot::XYZ, 0.1, -0.3, 0.8),
            translation: DVec3::new(4.0, 10.0, -6.0),
        };
        (tracker_from_reference, reference_from_model)
    }

    const TIP: DVec3 = DVec3::new(0.0, 0.0, 150.0);

    /// The pointer's pose with its tip at `tip_in_tracker`, tilted by `tilt` radians.
    fn pointer_at(tip_in_tracker: DVec3, tilt: f64, turn: f64) -> Pose {
        let rotation = DQuat::from_rotation_z(turn) * DQuat::from_rotation_x(tilt);
        Pose { rotation, translation: tip_in_tracker - rotation * TIP }
    }

    /// Holds the pointer still on `tip` (reference frame) for 500 ms from `t_ns`.
    fn hold(desk: &mut RegistrationDesk, t_ns: &mut u64, tip_in_reference: DVec3) {
        let (tracker_from_reference, _) = truth();
        let tip = tracker_from_reference.matrix().transform_point3(tip_in_reference);
        for _ in 0..30 {
            *t_ns += 17 * MS;
            desk.observe(*t_ns, Some(pointer_at(tip, 0.2, 0.0)), Some(tracker_from_reference));
            desk.tick(*t_ns);
        }
    }

    #[test]
    fn pivot_then_fiducials_then_review_and_accept() {
        let (tracker_from_reference, reference_from_model) = truth();
        let mut desk = RegistrationDesk::new(plan(None));
        assert_eq!(desk.state().phase, "pivot");
        assert!(desk.step(RegistrationStep::Take, None, 0).unwrap_err().contains("Pivot first"));
        desk.step(RegistrationStep::Pivot, None, 0).expect("pivots");
        let pivot_point = tracker_from_reference.matrix().transform_point3(DVec3::new(0.0, 0.0, 0.0));
        let mut t = 0;
        while t < 2_100 * MS {
            t += 10 * MS;
            let phase = t as f64 / 1e9 * 3.0;
            desk.observe(t, Some(pointer_at(pivot_point, 0.5 * phase.sin(), phase)), Some(tracker_from_reference));
            desk.tick(t);
        }
        let state = desk.state();
        assert_eq!(state.phase, "collect", "{}", state.message);
        assert!(state.pivot_rms_mm.expect("pivoted") < 1e-6, "{state:?}");
        let dots: Vec<DVec3> = fiducials().iter().map(|p| reference_from_model.matrix().transform_point3(*p)).collect();
        // Moving: refused in words.
        desk.observe(t + MS, Some(pointer_at(pivot_point + DVec3::X * 30.0, 0.2, 0.0)), Some(tracker_from_reference));
        assert!(desk.step(RegistrationStep::Take, None, t + MS).is_err());
        for (i, dot) in dots.iter().enumerate() {
            hold(&mut desk, &mut t, *dot);
            assert_eq!(desk.state().pointer, "still");
            if i == 1 {
                // Back on the first dot: refused, it was taken there.
                hold(&mut desk, &mut t, dots[0]);
                let why = desk.step(RegistrationStep::Take, None, t).unwrap_err();
                assert!(why.contains("where fiducial 1 was taken"), "{why}");
                hold(&mut desk, &mut t, *dot);
            }
            desk.step(RegistrationStep::Take, None, t).expect("taken");
        }
        let state = desk.state();
        assert_eq!(state.phase, "review", "{}", state.message);
        assert!(state.fre_mm.expect("fre") < 1e-6 && state.tre_mm.expect("tre") < 1e-6, "{state:?}");
        assert!(state.fiducials.iter().all(|f| f.taken && !f.suspect));
        let accepted = desk.step(RegistrationStep::Accept, None, t).expect("accepts").expect("a registration");
        assert!(accepted.reference_from_model.matrix().abs_diff_eq(reference_from_model.matrix(), 1e-6));
        assert_eq!(desk.state().phase, "accepted");
    }

    #[test]
    fn a_wrong_fiducial_is_named_and_redone() {
        let (_, reference_from_model) = truth();
        let mut desk = RegistrationDesk::new(plan(Some(TIP)));
        let dots: Vec<DVec3> = fiducials().iter().map(|p| reference_from_model.matrix().transform_point3(*p)).collect();
        let mut t = 0;
        for (i, dot) in dots.iter().enumerate() {
            // Fiducial 3 is touched 12 mm off its dot.
            let at = if i == 2 { *dot + DVec3::new(12.0, 0.0, 0.0) } else { *dot };
            hold(&mut desk, &mut t, at);
            desk.step(RegistrationStep::Take, None, t).expect("taken");
        }
        let state = desk.state();
        assert!(state.fiducials[2].suspect, "{state:?}");
        assert!(state.message.contains("fiducial 3"), "{}", state.message);
        assert!(desk.step(RegistrationStep::Redo, Some(9), t).is_err());
        desk.step(RegistrationStep::Redo, Some(3), t).expect("redo");
        assert_eq!(desk.state().next, Some(3));
        hold(&mut desk, &mut t, dots[2]);
        desk.step(RegistrationStep::Take, None, t).expect("taken again");
        let state = desk.state();
        assert_eq!(state.phase, "review");
        assert!(state.fre_mm.expect("fre") < 1e-6 && !state.fiducials[2].suspect, "{state:?}");
    }

    #[test]
    fn a_sweep_refines_an_offset_registration_on_the_surface() {
        let (tracker_from_reference, reference_from_model) = truth();
        // A surface with a bump and a ridge (an organ's shape) in the model's frame, 1 mm grid.
        let height = |x: f64, y: f64| {
            10.0 * (-((x - 5.0).powi(2) + y * y) / 200.0).exp() + 4.0 * (-((x + 15.0).powi(2)) / 60.0).exp() + 0.1 * y
        };
        let surface: Vec<DVec3> = (-40..=40)
            .flat_map(|i| (-30..=30).map(move |j| (f64::from(i), f64::from(j))))
            .map(|(x, y)| DVec3::new(x, y, height(x, y)))
            .collect();
        let mut with_surface = plan(Some(TIP));
        with_surface.surface = Some(surface);
        let mut desk = RegistrationDesk::new(with_surface);
        let dots: Vec<DVec3> = fiducials().iter().map(|p| reference_from_model.matrix().transform_point3(*p)).collect();
        let mut t = 0;
        // Every fiducial 0.8 mm off the same way: a biased paired-point result.
        for dot in &dots {
            hold(&mut desk, &mut t, *dot + DVec3::new(0.8, 0.0, 0.0));
            desk.step(RegistrationStep::Take, None, t).expect("taken");
        }
        assert!(desk.step(RegistrationStep::Accept, None, t).is_ok_and(|a| a.is_some()));
        desk.step(RegistrationStep::Redo, Some(1), t).expect("redo");
        hold(&mut desk, &mut t, dots[0] + DVec3::new(0.8, 0.0, 0.0));
        desk.step(RegistrationStep::Take, None, t).expect("taken");
        desk.step(RegistrationStep::Sweep, None, t).expect("sweeps");
        for k in 0..400 {
            let (x, y) = (-30.0 + (k % 20) as f64 * 3.0, -20.0 + (k / 20) as f64 * 2.0);
            let on_surface = reference_from_model.matrix().transform_point3(DVec3::new(x, y, height(x, y)));
            let tip = tracker_from_reference.matrix().transform_point3(on_surface);
            t += 17 * MS;
            desk.observe(t, Some(pointer_at(tip, 0.3, 0.1)), Some(tracker_from_reference));
        }
        desk.step(RegistrationStep::Sweep, None, t).expect("refines");
        let state = desk.state();
        // Point-to-point RMS to the nearest vertex of a 1 mm grid: its own floor is about 0.1 mm.
        assert!(state.surface_rms_mm.expect("refined") < 0.25, "{state:?}");
        assert!(state.surface_change_mm.expect("change") > 0.5, "{state:?}");
        let accepted = desk.step(RegistrationStep::Accept, None, t).expect("accepts").expect("a registration");
        let target = DVec3::new(5.0, -4.0, 9.0);
        let error = accepted
            .reference_from_model
            .matrix()
            .transform_point3(target)
            .distance(reference_from_model.matrix().transform_point3(target));
        assert!(error < 0.2, "the refined target is {error} mm off (0.8 mm before)");
        assert!(accepted.surface.is_some());
    }
}
