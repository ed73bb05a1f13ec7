//! Registration at the station, sans IO: a tracked pointer's tip is
//! collected on each patient-side fiducial (averaged over a still window,
//! refused while the tool moves), paired in order with the model's
//! fiducials, and registered (paired points, `scopecast_calibration`): FRE,
//! each fiducial's residual and leave-one-out error (a fiducial registered
//! from all the others: a wrong pairing stands out there, while its
//! residual is spread over its neighbours), and the predicted TRE at a
//! target. Frames: the tip in the reference marker's frame
//! (`reference_from_model` is the result), mm; times station-clock ns.

use std::collections::VecDeque;

use glam::DVec3;
use nalgebra::Vector3;
use scopecast_calibration::registration::points::register_points;
use thiserror::Error;

use super::pose_store::Pose;

/// The most tip samples kept (several seconds at a tracker's rate).
const MAX_SAMPLES: usize = 1024;

/// When a tip counts as still.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StillWindow {
    /// How long it must be still, ns.
    pub window_ns: u64,
    /// The farthest a sample may be from the window's mean, mm.
    pub max_spread_mm: f64,
    /// Fewest samples in the window.
    pub min_samples: usize,
}

impl Default for StillWindow {
    fn default() -> Self {
        Self { window_ns: 400_000_000, max_spread_mm: 0.5, min_samples: 8 }
    }
}

/// Why no point was taken.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CollectRefused {
    /// Too few tip samples in the window (pose stale or missing).
    #[error("only {samples} pointer poses in the last {window_ms} ms: is the pointer in view?")]
    TooFew {
        /// Samples in the window.
        samples: usize,
        /// The window, ms.
        window_ms: u64,
    },
    /// The tip moved during the window.
    #[error("the pointer moves ({spread_mm:.2} mm within the window): hold it still on the fiducial")]
    Moving {
        /// The largest distance from the mean, mm.
        spread_mm: f64,
    },
}

/// The pointer tip's recent positions.
#[derive(Debug, Default, Clone)]
pub struct TipTrace {
    samples: VecDeque<(u64, DVec3)>,
}

impl TipTrace {
    /// Adds the tip at `time_ns` (in order; older or equal times are ignored).
    pub fn push(&mut self, time_ns: u64, tip: DVec3) {
        if self.samples.back().is_some_and(|(t, _)| *t >= time_ns) || !tip.is_finite() {
            return;
        }
        self.samples.push_back((time_ns, tip));
        while self.samples.len() > MAX_SAMPLES {
            self.samples.pop_front();
        }
    }

    /// The newest sample's time.
    pub fn newest_ns(&self) -> Option<u64> {
        self.samples.back().map(|(t, _)| *t)
    }

    /// The tip averaged over the `still.window_ns` before `now_ns`, if it
    /// was still then.
    pub fn still_tip(&self, now_ns: u64, still: StillWindow) -> Result<DVec3, CollectRefused> {
        let from = now_ns.saturating_sub(still.window_ns);
        let window: Vec<DVec3> = self.samples.iter().filter(|(t, _)| *t >= from && *t <= now_ns).map(|s| s.1).collect();
        if window.len() < still.min_samples {
            return Err(CollectRefused::TooFew { samples: window.len(), window_ms: still.window_ns / 1_000_000 });
        }
        let mean = window.iter().sum::<DVec3>() / window.len() as f64;
        let spread_mm = window.iter().map(|p| p.distance(mean)).fold(0.0, f64::max);
        if spread_mm > still.max_spread_mm {
            return Err(CollectRefused::Moving { spread_mm });
        }
        Ok(mean)
    }
}

/// A live pivot calibration's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LivePivot {
    /// The tip in the pointer's frame, mm.
    pub tip_in_pointer: DVec3,
    /// RMS distance of the tip positions from the pivot point, mm.
    pub rms_mm: f64,
    /// Poses used.
    pub poses: usize,
    /// The largest angle between any pose and the first, degrees.
    pub spread_deg: f64,
}

/// Solves the tip from the pointer's poses while it pivots (in any one
/// frame: the tracker's, or better the patient reference's); refused in words
/// when it turned less than 20 degrees.
pub fn solve_pivot(poses: &[Pose]) -> Result<LivePivot, String> {
    let first = poses.first().ok_or_else(|| String::from("no pointer pose while pivoting"))?;
    let spread_deg = poses.iter().map(|p| p.rotation.angle_between(first.rotation).to_degrees()).fold(0.0, f64::max);
    if spread_deg < 20.0 {
        return Err(format!(
            "the pointer turned only {spread_deg:.1} degrees about its tip: pivot it wider (30 degrees or more)"
        ));
    }
    let isometries: Vec<_> = poses.iter().map(Pose::to_isometry).collect();
    let result =
        scopecast_calibration::registration::pivot::pivot_calibration(&isometries).map_err(|e| e.to_string())?;
    let t = result.tip_in_tool;
    Ok(LivePivot { tip_in_pointer: DVec3::new(t.x, t.y, t.z), rms_mm: result.rms_mm, poses: poses.len(), spread_deg })
}

/// A registration to show before it is accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct FiducialRegistration {
    /// The model in the reference marker's frame.
    pub reference_from_model: Pose,
    /// Fiducial registration error (RMS of the residuals), mm.
    pub fre_mm: f64,
    /// Each fiducial's residual, mm.
    pub residuals_mm: Vec<f64>,
    /// Each fiducial's leave-one-out error: its distance from where the
    /// others' registration puts it, mm.
    pub leave_one_out_mm: Vec<f64>,
    /// Fiducials probably touched in the wrong order or at the wrong spot
    /// (redo them): with a good fit, those whose leave-one-out error is over
    /// 3 mm and 3× the median; with an FRE over [`GOOD_FRE_MM`], the one or
    /// two whose removal leaves a good fit.
    pub suspects: Vec<usize>,
    /// Predicted target registration error at the target, mm (Fitzpatrick).
    pub tre_mm: Option<f64>,
}

/// Why the registration could not be made.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum FiducialRegistrationError {
    /// The calibration crate's reason.
    #[error("{0}")]
    Solve(String),
}

fn vector(p: DVec3) -> Vector3<f64> {
    Vector3::new(p.x, p.y, p.z)
}

/// An FRE above this, mm, is not a fit of one anatomy's fiducials: some
/// were touched in the wrong order or at the wrong spot.
pub const GOOD_FRE_MM: f64 = 1.0;

/// The one or two fiducials (in index order) whose removal leaves a fit with
/// an FRE under [`GOOD_FRE_MM`] (the best such fit), keeping at least 4.
fn best_exclusion(moving: &[Vector3<f64>], fixed: &[Vector3<f64>]) -> Option<Vec<usize>> {
    let n = moving.len();
    let fre_without = |out: &[usize]| {
        let keep = |v: &[Vector3<f64>]| {
            v.iter().enumerate().filter(|(j, _)| !out.contains(j)).map(|(_, p)| *p).collect::<Vec<_>>()
        };
        register_points(&keep(moving), &keep(fixed), false).map(|r| r.fre_mm).unwrap_or(f64::INFINITY)
    };
    for size in 1..=2usize {
        if n < size + 4 {
            break;
        }
        let sets: Vec<Vec<usize>> = if size == 1 {
            (0..n).map(|i| vec![i]).collect()
        } else {
            (0..n).flat_map(|i| (i + 1..n).map(move |j| vec![i, j])).collect()
        };
        let best = sets.into_iter().map(|set| (fre_without(&set), set)).min_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((fre, set)) = best
            && fre <= GOOD_FRE_MM
        {
            return Some(set);
        }
    }
    None
}

/// Registers `model` fiducials (model frame) onto the `collected` tips
/// (reference frame), pairs in order, with the predicted TRE at `target`
/// (model frame).
pub fn register_fiducials(
    model: &[DVec3],
    collected: &[DVec3],
    target: Option<DVec3>,
) -> Result<FiducialRegistration, FiducialRegistrationError> {
    let moving: Vec<Vector3<f64>> = model.iter().map(|p| vector(*p)).collect();
    let fixed: Vec<Vector3<f64>> = collected.iter().map(|p| vector(*p)).collect();
    let result =
        register_points(&moving, &fixed, false).map_err(|e| FiducialRegistrationError::Solve(e.to_string()))?;
    let mut leave_one_out_mm = Vec::with_capacity(model.len());
    for i in 0..model.len() {
        let others =
            |v: &[Vector3<f64>]| v.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, p)| *p).collect::<Vec<_>>();
        let error = match register_points(&others(&moving), &others(&fixed), false) {
            Ok(without) => (without.apply(&moving[i]) - fixed[i]).norm(),
            Err(_) => f64::NAN,
        };
        leave_one_out_mm.push(error);
    }
    let mut sorted: Vec<f64> = leave_one_out_mm.iter().copied().filter(|e| e.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    let one_out: Vec<usize> =
        leave_one_out_mm.iter().enumerate().filter(|(_, e)| **e > 3.0 && **e > 3.0 * median).map(|(i, _)| i).collect();
    // A gross error (two fiducials swapped) spoils every leave-one-out fit:
    // then the fewest fiducials whose removal leaves a good fit are the suspects.
    let suspects =
        if result.fre_mm > GOOD_FRE_MM { best_exclusion(&moving, &fixed).unwrap_or(one_out) } else { one_out };
    let tre_mm = target.map(|t| result.predicted_tre_mm(&result.apply(&vector(t)), result.fle_mm));
    let reference_from_model = Pose::from_isometry(&result.fixed_from_moving);
    Ok(FiducialRegistration {
        reference_from_model,
        fre_mm: result.fre_mm,
        residuals_mm: result.residuals_mm,
        leave_one_out_mm,
        suspects,
        tre_mm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fiducials() -> Vec<DVec3> {
        [(-22.0, -16.0), (0.0, -20.0), (21.0, -15.0), (-20.0, 3.0), (2.0, 0.0), (22.0, 4.0), (-19.0, 21.0)]
            .iter()
            .map(|(x, y)| DVec3::new(*x, *y, 0.0))
            .collect()
    }

    #[test]
    fn a_still_tip_is_averaged_and_a_moving_one_refused() {
        let mut trace = TipTrace::default();
        for i in 0..60u64 {
            let wobble = if i % 2 == 0 { 0.05 } else { -0.05 };
            trace.push(i * 16_666_667, DVec3::new(10.0 + wobble, 5.0, 0.0));
        }
        let now = 59 * 16_666_667;
        let tip = trace.still_tip(now, StillWindow::default()).expect("still");
        assert!(tip.distance(DVec3::new(10.0, 5.0, 0.0)) < 0.01);
        for i in 60..90u64 {
            trace.push(i * 16_666_667, DVec3::new(10.0 + (i - 59) as f64 * 0.8, 5.0, 0.0));
        }
        assert!(matches!(trace.still_tip(89 * 16_666_667, StillWindow::default()), Err(CollectRefused::Moving { .. })));
        assert!(matches!(
            trace.still_tip(200 * 16_666_667, StillWindow::default()),
            Err(CollectRefused::TooFew { samples: 0, .. })
        ));
    }

    #[test]
    fn the_registration_is_found_and_a_swapped_pair_stands_out() {
        let truth = Pose {
            rotation: glam::DQuat::from_euler(glam::EulerRot::XYZ, 0.3, -0.2, 1.1),
            translation: DVec3::new(5.0, -40.0, 12.0),
        };
        let model = fiducials();
        let collected: Vec<DVec3> = model.iter().map(|p| truth.matrix().transform_point3(*p)).collect();
        let found = register_fiducials(&model, &collected, Some(DVec3::new(6.0, -4.0, 9.0))).expect("solves");
        assert!(found.fre_mm < 1e-9 && found.suspects.is_empty(), "{found:?}");
        assert!(found.reference_from_model.matrix().abs_diff_eq(truth.matrix(), 1e-9));
        let mut swapped = collected.clone();
        swapped.swap(1, 4);
        let found = register_fiducials(&model, &swapped, None).expect("solves");
        assert!(found.suspects.contains(&1) && found.suspects.contains(&4), "{found:?}");
        assert!(register_fiducials(&model[..2], &collected[..2], None).is_err());
    }
}
