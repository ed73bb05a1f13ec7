//! Pivot calibration of a tracked tool: the tool is rotated about its tip
//! held in a divot, so for every pose `tracker_from_tool_i`,
//! `R_i · tip_in_tool + t_i = pivot_in_tracker`. Stacking `[R_i  −I] · [tip;
//! pivot] = −t_i` gives a linear least-squares problem (solved by SVD); the
//! RMS of the per-pose tip positions around the pivot reports its quality.

use nalgebra::{DMatrix, DVector, Isometry3, Vector3};

use super::RegistrationError;

/// The result of a pivot calibration.
#[derive(Debug, Clone, PartialEq)]
pub struct PivotCalibration {
    /// The tip in the tool's frame, mm.
    pub tip_in_tool: Vector3<f64>,
    /// The pivot point in the tracker's frame, mm.
    pub pivot_in_tracker: Vector3<f64>,
    /// RMS distance of the computed tip positions from the pivot, mm.
    pub rms_mm: f64,
    /// Largest such distance, mm.
    pub max_mm: f64,
}

/// Solves the pivot calibration from at least 4 poses spanning two rotation axes.
pub fn pivot_calibration(tracker_from_tool: &[Isometry3<f64>]) -> Result<PivotCalibration, RegistrationError> {
    let n = tracker_from_tool.len();
    if n < 4 {
        return Err(RegistrationError::TooFew { what: "tool poses", given: n, needed: 4 });
    }
    let mut a = DMatrix::<f64>::zeros(3 * n, 6);
    let mut b = DVector::<f64>::zeros(3 * n);
    for (i, pose) in tracker_from_tool.iter().enumerate() {
        let r = pose.rotation.to_rotation_matrix();
        for row in 0..3 {
            for col in 0..3 {
                a[(3 * i + row, col)] = r[(row, col)];
            }
            a[(3 * i + row, 3 + row)] = -1.0;
            b[3 * i + row] = -pose.translation.vector[row];
        }
    }
    let svd = a.clone().svd(true, true);
    let s_max = svd.singular_values.max();
    let s_min = svd.singular_values.min();
    // With rotations about a single axis, the tip's position along that axis is undetermined.
    if s_min < 1e-6 * s_max.max(1e-300) || s_min < 1e-3 {
        return Err(RegistrationError::Degenerate {
            reason: "the poses do not rotate about two different axes (or repeat), so the tip is not determined".into(),
        });
    }
    let x = svd
        .solve(&b, 1e-12)
        .map_err(|e| RegistrationError::Degenerate { reason: format!("least squares failed: {e}") })?;
    let tip_in_tool = Vector3::new(x[0], x[1], x[2]);
    let pivot_in_tracker = Vector3::new(x[3], x[4], x[5]);
    let distances: Vec<f64> = tracker_from_tool
        .iter()
        .map(|pose| (pose * nalgebra::Point3::from(tip_in_tool) - nalgebra::Point3::from(pivot_in_tracker)).norm())
        .collect();
    let rms_mm = (distances.iter().map(|d| d * d).sum::<f64>() / n as f64).sqrt();
    let max_mm = distances.iter().copied().fold(0.0, f64::max);
    Ok(PivotCalibration { tip_in_tool, pivot_in_tracker, rms_mm, max_mm })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{Translation3, UnitQuaternion};

    fn poses(tip: Vector3<f64>, pivot: Vector3<f64>, angles: &[(f64, f64, f64)]) -> Vec<Isometry3<f64>> {
        angles
            .iter()
            .map(|&(r, p, y)| {
                let rotation = UnitQuaternion::from_euler_angles(r, p, y);
                // t = pivot − R · tip, so the tip sits on the pivot.
                Isometry3::from_parts(Translation3::from(pivot - rotation * tip), rotation)
            })
            .collect()
    }

    #[test]
    fn recovers_tip_and_pivot() {
        let tip = Vector3::new(1.5, -2.0, 152.0);
        let pivot = Vector3::new(-30.0, 45.0, 900.0);
        let angles = [
            (0.0, 0.0, 0.0),
            (0.3, 0.0, 0.1),
            (-0.3, 0.1, 0.0),
            (0.0, 0.35, -0.2),
            (0.1, -0.3, 0.4),
            (0.25, 0.25, 0.9),
        ];
        let result = pivot_calibration(&poses(tip, pivot, &angles)).expect("solves");
        assert!((result.tip_in_tool - tip).norm() < 1e-6, "{:?}", result.tip_in_tool);
        assert!((result.pivot_in_tracker - pivot).norm() < 1e-6);
        assert!(result.rms_mm < 1e-6);
    }

    #[test]
    fn rotation_about_one_axis_is_refused() {
        let tip = Vector3::new(0.0, 0.0, 100.0);
        let single_axis: Vec<(f64, f64, f64)> = (0..6).map(|i| (0.0, 0.0, i as f64 * 0.3)).collect();
        let err = pivot_calibration(&poses(tip, Vector3::zeros(), &single_axis)).expect_err("one axis");
        assert!(err.to_string().contains("two different axes"), "{err}");
        let repeated = vec![(0.1, 0.2, 0.3); 6];
        assert!(pivot_calibration(&poses(tip, Vector3::zeros(), &repeated)).is_err());
        assert!(matches!(pivot_calibration(&[]), Err(RegistrationError::TooFew { .. })));
    }
}
