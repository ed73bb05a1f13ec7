//! Paired-point rigid registration (Arun, Huang & Blostein 1987; Umeyama
//! 1991): the least-squares rotation from the SVD of the cross-covariance,
//! optional uniform scale (off by default), the fiducial registration error
//! (FRE), and the target registration error predicted at any point by
//! Fitzpatrick, West & Maurer, "Predicting error in rigid-body point-based
//! registration", IEEE TMI 17(5), 1998:
//!
//! `TRE²(r) ≈ FLE²/N · (1 + 1/3 · Σₖ dₖ² / fₖ²)`, with dₖ the distance of r
//! from the k-th principal axis of the fiducial configuration and fₖ the RMS
//! distance of the fiducials from it; FLE² is estimated as FRE² · N / (N − 2).

use nalgebra::{Isometry3, Matrix3, Rotation3, Translation3, UnitQuaternion, Vector3};

use super::{RegistrationError, finite_points};

/// The result of a paired-point registration.
#[derive(Debug, Clone, PartialEq)]
pub struct PointRegistration {
    /// Rigid part: fixed = scale · R · moving + t.
    pub fixed_from_moving: Isometry3<f64>,
    /// Uniform scale (1 unless scaling was asked for).
    pub scale: f64,
    /// Distance of each registered moving point from its fixed partner, mm.
    pub residuals_mm: Vec<f64>,
    /// RMS of the residuals, mm.
    pub fre_mm: f64,
    /// Fiducial localisation error estimated from the FRE, mm.
    pub fle_mm: f64,
    /// Principal axes of the fiducials (in the fixed frame), as columns.
    axes: Matrix3<f64>,
    /// RMS distance of the fiducials from each axis, mm.
    axis_rms_mm: Vector3<f64>,
    /// Fiducial centroid in the fixed frame.
    centroid: Vector3<f64>,
    count: usize,
}

fn centroid(points: &[Vector3<f64>]) -> Vector3<f64> {
    points.iter().sum::<Vector3<f64>>() / points.len() as f64
}

/// Registers `moving` onto `fixed` (pairs in the same order).
pub fn register_points(
    moving: &[Vector3<f64>],
    fixed: &[Vector3<f64>],
    with_scale: bool,
) -> Result<PointRegistration, RegistrationError> {
    if moving.len() != fixed.len() {
        return Err(RegistrationError::Mismatch {
            left: "moving",
            left_len: moving.len(),
            right: "fixed",
            right_len: fixed.len(),
        });
    }
    if moving.len() < 3 {
        return Err(RegistrationError::TooFew { what: "point pairs", given: moving.len(), needed: 3 });
    }
    finite_points(moving, "moving")?;
    finite_points(fixed, "fixed")?;
    let (cm, cf) = (centroid(moving), centroid(fixed));
    let spread = |points: &[Vector3<f64>], c: &Vector3<f64>| {
        let mut cov = Matrix3::zeros();
        for p in points {
            let d = p - c;
            cov += d * d.transpose();
        }
        cov
    };
    // Three or more points that span a plane: the second singular value of the spread is not ~0.
    for (points, c, name) in [(moving, &cm, "moving"), (fixed, &cf, "fixed")] {
        let s = spread(points, c).symmetric_eigenvalues();
        let mut s: Vec<f64> = s.iter().copied().collect();
        s.sort_by(|a, b| b.total_cmp(a));
        if s[0] < 1e-18 {
            return Err(RegistrationError::Degenerate { reason: format!("the {name} points coincide") });
        }
        if s[1] < 1e-9 * s[0] {
            return Err(RegistrationError::Degenerate { reason: format!("the {name} points are collinear") });
        }
    }
    let mut h = Matrix3::zeros();
    for (m, f) in moving.iter().zip(fixed) {
        h += (m - cm) * (f - cf).transpose();
    }
    let svd = h.svd(true, true);
    let (u, v_t) = match (svd.u, svd.v_t) {
        (Some(u), Some(v_t)) => (u, v_t),
        _ => return Err(RegistrationError::Degenerate { reason: "no SVD of the cross-covariance".into() }),
    };
    // Umeyama's sign correction keeps a proper rotation.
    let d = if (v_t.transpose() * u.transpose()).determinant() < 0.0 { -1.0 } else { 1.0 };
    let correction = Matrix3::from_diagonal(&Vector3::new(1.0, 1.0, d));
    let r = v_t.transpose() * correction * u.transpose();
    let scale = if with_scale {
        let var_m: f64 = moving.iter().map(|m| (m - cm).norm_squared()).sum();
        let sv = svd.singular_values;
        (sv[0] + sv[1] + d * sv[2]) / var_m
    } else {
        1.0
    };
    let t = cf - scale * r * cm;
    let rotation = UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix(&r));
    let fixed_from_moving = Isometry3::from_parts(Translation3::from(t), rotation);
    let residuals_mm: Vec<f64> =
        moving.iter().zip(fixed).map(|(m, f)| (scale * (rotation * m) + t - f).norm()).collect();
    let n = moving.len() as f64;
    let fre_mm = (residuals_mm.iter().map(|r| r * r).sum::<f64>() / n).sqrt();
    let fle_mm = if moving.len() > 2 { fre_mm * (n / (n - 2.0)).sqrt() } else { f64::NAN };
    // Principal axes of the fiducial configuration (fixed frame).
    let eigen = spread(fixed, &cf).symmetric_eigen();
    let axes = eigen.eigenvectors;
    let mut axis_rms_mm = Vector3::zeros();
    for k in 0..3 {
        let axis = axes.column(k);
        let sum: f64 = fixed
            .iter()
            .map(|p| {
                let d = p - cf;
                (d - axis * axis.dot(&d)).norm_squared()
            })
            .sum();
        axis_rms_mm[k] = (sum / n).sqrt();
    }
    Ok(PointRegistration {
        fixed_from_moving,
        scale,
        residuals_mm,
        fre_mm,
        fle_mm,
        axes,
        axis_rms_mm,
        centroid: cf,
        count: moving.len(),
    })
}

impl PointRegistration {
    /// Maps a moving-frame point into the fixed frame.
    pub fn apply(&self, p_in_moving: &Vector3<f64>) -> Vector3<f64> {
        self.scale * (self.fixed_from_moving.rotation * p_in_moving) + self.fixed_from_moving.translation.vector
    }

    /// Fitzpatrick's predicted RMS TRE at `target_in_fixed` for a fiducial
    /// localisation error of `fle_mm` (use [`PointRegistration::fle_mm`] when unknown).
    pub fn predicted_tre_mm(&self, target_in_fixed: &Vector3<f64>, fle_mm: f64) -> f64 {
        let d = target_in_fixed - self.centroid;
        let mut sum = 0.0;
        for k in 0..3 {
            let axis = self.axes.column(k);
            let dk2 = (d - axis * axis.dot(&d)).norm_squared();
            let fk2 = self.axis_rms_mm[k].powi(2).max(1e-12);
            sum += dk2 / fk2;
        }
        (fle_mm * fle_mm / self.count as f64 * (1.0 + sum / 3.0)).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transform() -> Isometry3<f64> {
        Isometry3::from_parts(Translation3::new(12.0, -40.0, 250.0), UnitQuaternion::from_euler_angles(0.3, -0.5, 1.1))
    }

    fn fiducials() -> Vec<Vector3<f64>> {
        vec![
            Vector3::new(0.0, 0.0, 0.0),
            Vector3::new(80.0, 5.0, 3.0),
            Vector3::new(10.0, 70.0, -4.0),
            Vector3::new(60.0, 60.0, 30.0),
            Vector3::new(-20.0, 30.0, 15.0),
        ]
    }

    #[test]
    fn exact_pairs_give_the_transform_and_zero_fre() {
        let t = transform();
        let moving = fiducials();
        let fixed: Vec<_> = moving.iter().map(|p| t * nalgebra::Point3::from(*p)).map(|p| p.coords).collect();
        let reg = register_points(&moving, &fixed, false).expect("registers");
        assert!(reg.fre_mm < 1e-9, "{}", reg.fre_mm);
        assert!((reg.fixed_from_moving.rotation.angle_to(&t.rotation)).abs() < 1e-12);
        assert!((reg.fixed_from_moving.translation.vector - t.translation.vector).norm() < 1e-9);
        // With scale: a scaled copy is recovered with its scale.
        let scaled: Vec<_> = fixed.iter().map(|p| p * 1.7).collect();
        let reg = register_points(&moving, &scaled, true).expect("registers");
        assert!((reg.scale - 1.7).abs() < 1e-9);
    }

    #[test]
    fn predicted_tre_matches_a_monte_carlo_simulation() {
        // Fitzpatrick's formula against simulated isotropic FLE of 0.5 mm (RMS over 3D).
        let t = transform();
        let moving = fiducials();
        let fixed: Vec<_> = moving.iter().map(|p| (t * nalgebra::Point3::from(*p)).coords).collect();
        let target_in_moving = Vector3::new(40.0, 40.0, 80.0);
        let target_in_fixed = (t * nalgebra::Point3::from(target_in_moving)).coords;
        let fle = 0.5;
        let sigma = fle / 3f64.sqrt();
        let mut state = 42u64;
        let mut gauss = || {
            let mut u = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 11) as f64 / (1u64 << 53) as f64
            };
            let (a, b) = (u().max(1e-300), u());
            (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
        };
        let trials = 4000;
        let mut sum = 0.0;
        let exact = register_points(&moving, &fixed, false).expect("registers");
        for _ in 0..trials {
            let noisy: Vec<_> = fixed.iter().map(|p| p + Vector3::new(gauss(), gauss(), gauss()) * sigma).collect();
            let reg = register_points(&moving, &noisy, false).expect("registers");
            sum += (reg.apply(&target_in_moving) - target_in_fixed).norm_squared();
        }
        let simulated = (sum / trials as f64).sqrt();
        let predicted = exact.predicted_tre_mm(&target_in_fixed, fle);
        assert!((predicted / simulated - 1.0).abs() < 0.1, "predicted {predicted} vs simulated {simulated}");
    }

    #[test]
    fn degenerate_configurations_are_refused() {
        let line: Vec<_> = (0..5).map(|i| Vector3::new(i as f64, 0.0, 0.0)).collect();
        let err = register_points(&line, &line, false).expect_err("collinear");
        assert!(err.to_string().contains("collinear"), "{err}");
        let same = vec![Vector3::new(1.0, 2.0, 3.0); 4];
        assert!(register_points(&same, &same, false).expect_err("coincident").to_string().contains("coincide"));
        assert!(matches!(register_points(&line[..2], &line[..2], false), Err(RegistrationError::TooFew { .. })));
        assert!(matches!(register_points(&line, &line[..4], false), Err(RegistrationError::Mismatch { .. })));
        let mut nan = fiducials();
        nan[2].x = f64::NAN;
        assert!(matches!(register_points(&nan, &fiducials(), false), Err(RegistrationError::Invalid { .. })));
    }
}
