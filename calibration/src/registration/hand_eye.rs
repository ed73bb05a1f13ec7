//! Hand–eye calibration: the pose of the endoscope camera on the tracked
//! marker, `marker_from_camera` (X), from simultaneous marker poses in the
//! tracker and camera poses relative to a fixed calibration target.
//!
//! For poses i and j, `A = marker_j_from_marker_i = tracker_from_marker_jᵀ ·
//! tracker_from_marker_i` and `B = camera_j_from_camera_i = camera_from_target_j ·
//! camera_from_target_iᵀ` satisfy `A X = X B`. The rotation comes from Park &
//! Martin's closed form ("Robot sensor calibration: solving AX = XB on the
//! Euclidean group", IEEE TRA 10(5), 1994): with αᵢ = log R_Aᵢ and βᵢ = log R_Bᵢ,
//! `M = Σ βᵢ αᵢᵀ` and `R_X = (MᵀM)^(−1/2) Mᵀ`; the translation from the stacked
//! `(R_A − I) t_X = R_X t_B − t_A`. A Levenberg–Marquardt refinement over the six
//! pose parameters then minimises rotation (rad) and translation (mm, scaled)
//! residuals of `A X ≈ X B`.

use nalgebra::{DMatrix, DVector, Isometry3, Matrix3, Rotation3, SVD, Translation3, UnitQuaternion, Vector3};

use super::RegistrationError;

/// Most refinement iterations.
pub const MAX_ITERATIONS: usize = 100;

/// The result of a hand–eye calibration.
#[derive(Debug, Clone, PartialEq)]
pub struct HandEyeCalibration {
    /// The camera's pose on the marker.
    pub marker_from_camera: Isometry3<f64>,
    /// RMS rotation residual of `A X` vs `X B` over all motions, degrees.
    pub rotation_rms_deg: f64,
    /// RMS translation residual, mm.
    pub translation_rms_mm: f64,
    /// Motions used.
    pub motions: usize,
}

fn motions(
    tracker_from_marker: &[Isometry3<f64>],
    camera_from_target: &[Isometry3<f64>],
) -> Vec<(Isometry3<f64>, Isometry3<f64>)> {
    let n = tracker_from_marker.len();
    let mut out = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            let a = tracker_from_marker[j].inverse() * tracker_from_marker[i];
            let b = camera_from_target[j] * camera_from_target[i].inverse();
            out.push((a, b));
        }
    }
    out
}

fn residuals(x: &Isometry3<f64>, pairs: &[(Isometry3<f64>, Isometry3<f64>)]) -> (f64, f64) {
    let (mut rot, mut trans) = (0.0, 0.0);
    for (a, b) in pairs {
        let lhs = a * x;
        let rhs = x * b;
        rot += lhs.rotation.angle_to(&rhs.rotation).powi(2);
        trans += (lhs.translation.vector - rhs.translation.vector).norm_squared();
    }
    let n = pairs.len().max(1) as f64;
    ((rot / n).sqrt().to_degrees(), (trans / n).sqrt())
}

/// Solves `A X = X B` from paired poses (at least 3 poses with two distinct rotation axes).
pub fn hand_eye_calibration(
    tracker_from_marker: &[Isometry3<f64>],
    camera_from_target: &[Isometry3<f64>],
) -> Result<HandEyeCalibration, RegistrationError> {
    if tracker_from_marker.len() != camera_from_target.len() {
        return Err(RegistrationError::Mismatch {
            left: "tracker_from_marker",
            left_len: tracker_from_marker.len(),
            right: "camera_from_target",
            right_len: camera_from_target.len(),
        });
    }
    if tracker_from_marker.len() < 3 {
        return Err(RegistrationError::TooFew { what: "poses", given: tracker_from_marker.len(), needed: 3 });
    }
    let pairs = motions(tracker_from_marker, camera_from_target);
    // Park–Martin rotation.
    let mut m = Matrix3::zeros();
    let mut alphas = Vec::new();
    for (a, b) in &pairs {
        let alpha = a.rotation.scaled_axis();
        let beta = b.rotation.scaled_axis();
        m += beta * alpha.transpose();
        alphas.push(alpha);
    }
    // Motions whose rotation axes are all parallel (or rotations ~0) leave X's rotation undetermined.
    let mut spread = Matrix3::zeros();
    for a in &alphas {
        spread += a * a.transpose();
    }
    let mut eig: Vec<f64> = spread.symmetric_eigenvalues().iter().copied().collect();
    eig.sort_by(|a, b| b.total_cmp(a));
    if eig[0] < 1e-6 || eig[1] < 1e-6 * eig[0].max(1e-300) + 1e-8 {
        return Err(RegistrationError::Degenerate {
            reason:
                "the motions rotate about a single axis (or not at all), so the camera's rotation is not determined"
                    .into(),
        });
    }
    let mtm = m.transpose() * m;
    let eigen = mtm.symmetric_eigen();
    if eigen.eigenvalues.iter().any(|v| *v <= 1e-12) {
        return Err(RegistrationError::Degenerate { reason: "the rotations do not determine X".into() });
    }
    let inv_sqrt = eigen.eigenvectors
        * Matrix3::from_diagonal(&eigen.eigenvalues.map(|v| 1.0 / v.sqrt()))
        * eigen.eigenvectors.transpose();
    let r_x = Rotation3::from_matrix(&(inv_sqrt * m.transpose()));
    // Translation by linear least squares.
    let mut lhs = DMatrix::<f64>::zeros(3 * pairs.len(), 3);
    let mut rhs = DVector::<f64>::zeros(3 * pairs.len());
    for (k, (a, b)) in pairs.iter().enumerate() {
        let ra = a.rotation.to_rotation_matrix().into_inner() - Matrix3::identity();
        let v = r_x * b.translation.vector - a.translation.vector;
        for row in 0..3 {
            for col in 0..3 {
                lhs[(3 * k + row, col)] = ra[(row, col)];
            }
            rhs[3 * k + row] = v[row];
        }
    }
    let t_x = SVD::new(lhs, true, true)
        .solve(&rhs, 1e-12)
        .map_err(|e| RegistrationError::Degenerate { reason: format!("translation least squares failed: {e}") })?;
    let initial =
        Isometry3::from_parts(Translation3::new(t_x[0], t_x[1], t_x[2]), UnitQuaternion::from_rotation_matrix(&r_x));
    let refined = refine(initial, &pairs);
    let (rotation_rms_deg, translation_rms_mm) = residuals(&refined, &pairs);
    Ok(HandEyeCalibration { marker_from_camera: refined, rotation_rms_deg, translation_rms_mm, motions: pairs.len() })
}

/// Levenberg–Marquardt on (rotation vector, translation) with numeric
/// derivatives; residuals are the rotation difference (rad · 100 mm, so a
/// milliradian weighs like 0.1 mm) and the translation difference (mm).
fn refine(initial: Isometry3<f64>, pairs: &[(Isometry3<f64>, Isometry3<f64>)]) -> Isometry3<f64> {
    let to_pose = |p: &[f64]| {
        Isometry3::from_parts(
            Translation3::new(p[3], p[4], p[5]),
            UnitQuaternion::from_scaled_axis(Vector3::new(p[0], p[1], p[2])),
        )
    };
    let residual = |p: &[f64]| -> DVector<f64> {
        let x = to_pose(p);
        let mut r = Vec::with_capacity(pairs.len() * 6);
        for (a, b) in pairs {
            let (lhs, rhs) = (a * x, x * b);
            let dr = (lhs.rotation.inverse() * rhs.rotation).scaled_axis() * 100.0;
            let dt = lhs.translation.vector - rhs.translation.vector;
            r.extend_from_slice(&[dr[0], dr[1], dr[2], dt[0], dt[1], dt[2]]);
        }
        DVector::from_vec(r)
    };
    let axis = initial.rotation.scaled_axis();
    let t = initial.translation.vector;
    let mut p = [axis[0], axis[1], axis[2], t[0], t[1], t[2]];
    let mut r = residual(&p);
    let mut cost = r.norm_squared();
    let mut lambda = 1e-3;
    for _ in 0..MAX_ITERATIONS {
        let mut j = DMatrix::<f64>::zeros(r.len(), 6);
        for c in 0..6 {
            let h = 1e-7 * p[c].abs().max(1.0);
            let (mut plus, mut minus) = (p, p);
            plus[c] += h;
            minus[c] -= h;
            let d = (residual(&plus) - residual(&minus)) / (2.0 * h);
            j.set_column(c, &d);
        }
        let jtj = j.transpose() * &j;
        let g = j.transpose() * &r;
        let mut improved = false;
        for _ in 0..10 {
            let mut a = jtj.clone();
            for d in 0..6 {
                a[(d, d)] += lambda * jtj[(d, d)].max(1e-12);
            }
            let Some(delta) = a.cholesky().map(|c| c.solve(&(-&g))) else {
                lambda *= 10.0;
                continue;
            };
            let trial: [f64; 6] = std::array::from_fn(|k| p[k] + delta[k]);
            let rt = residual(&trial);
            if rt.norm_squared() < cost {
                let gain = cost - rt.norm_squared();
                p = trial;
                r = rt;
                cost = r.norm_squared();
                lambda = (lambda / 10.0).max(1e-12);
                improved = gain > 1e-18 * cost.max(1e-300);
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    to_pose(&p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth() -> Isometry3<f64> {
        Isometry3::from_parts(Translation3::new(15.0, -8.0, 120.0), UnitQuaternion::from_euler_angles(0.2, -0.1, 1.3))
    }

    /// Poses of a marker moved around a fixed target, and what the camera on it sees.
    fn poses(x: &Isometry3<f64>, noise: f64) -> (Vec<Isometry3<f64>>, Vec<Isometry3<f64>>) {
        let tracker_from_target = Isometry3::from_parts(
            Translation3::new(100.0, 50.0, 1200.0),
            UnitQuaternion::from_euler_angles(0.1, 0.2, 0.3),
        );
        let mut markers = Vec::new();
        let mut cameras = Vec::new();
        for i in 0..8 {
            let f = i as f64;
            let marker = Isometry3::from_parts(
                Translation3::new(80.0 * (f * 0.7).sin(), 60.0 * (f * 1.3).cos(), 900.0 + 30.0 * f),
                UnitQuaternion::from_euler_angles(0.4 * (f * 0.9).sin(), 0.35 * (f * 1.7).cos(), 0.5 * (f * 0.4).sin()),
            );
            // camera_from_target = (tracker_from_marker · marker_from_camera)⁻¹ · tracker_from_target
            let mut camera = (marker * x).inverse() * tracker_from_target;
            camera.translation.vector += Vector3::new((f * 3.1).sin(), (f * 5.3).cos(), (f * 7.7).sin()) * noise;
            markers.push(marker);
            cameras.push(camera);
        }
        (markers, cameras)
    }

    #[test]
    fn recovers_the_camera_on_the_marker() {
        let x = truth();
        let (markers, cameras) = poses(&x, 0.0);
        let result = hand_eye_calibration(&markers, &cameras).expect("solves");
        assert!(result.marker_from_camera.rotation.angle_to(&x.rotation) < 1e-9);
        assert!((result.marker_from_camera.translation.vector - x.translation.vector).norm() < 1e-6);
        assert!(result.rotation_rms_deg < 1e-6 && result.translation_rms_mm < 1e-6);
        let (markers, cameras) = poses(&x, 0.3);
        let noisy = hand_eye_calibration(&markers, &cameras).expect("solves");
        assert!((noisy.marker_from_camera.translation.vector - x.translation.vector).norm() < 2.0);
        assert!(noisy.translation_rms_mm > 0.0);
    }

    #[test]
    fn parallel_rotation_axes_are_refused() {
        let x = truth();
        let markers: Vec<_> = (0..5)
            .map(|i| {
                Isometry3::from_parts(
                    Translation3::new(i as f64, 0.0, 0.0),
                    UnitQuaternion::from_euler_angles(0.0, 0.0, 0.3 * i as f64),
                )
            })
            .collect();
        let target = Isometry3::identity();
        let cameras: Vec<_> = markers.iter().map(|m| (m * x).inverse() * target).collect();
        let err = hand_eye_calibration(&markers, &cameras).expect_err("single axis");
        assert!(err.to_string().contains("single axis"), "{err}");
        assert!(matches!(hand_eye_calibration(&markers[..2], &cameras[..2]), Err(RegistrationError::TooFew { .. })));
    }
}
