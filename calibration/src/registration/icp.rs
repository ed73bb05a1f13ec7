//! Surface registration by the iterative closest point algorithm (Besl &
//! McKay 1992), point-to-point (closed form per iteration, Umeyama) or
//! point-to-plane (Chen & Medioni 1992, linearised small-angle least
//! squares), with a k-d tree for correspondences, trimming of the worst
//! pairs (outliers, partial overlap), an initial pose and a bounded number
//! of iterations.

use nalgebra::{Isometry3, Matrix6, Point3, Translation3, UnitQuaternion, Vector3, Vector6};

use super::kdtree::KdTree;
use super::points::register_points;
use super::{RegistrationError, finite_points};

/// The error metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcpMetric {
    /// Distance between matched points.
    PointToPoint,
    /// Distance along the fixed surface's normal.
    PointToPlane,
}

/// ICP settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IcpSettings {
    /// Metric.
    pub metric: IcpMetric,
    /// Most iterations.
    pub max_iterations: usize,
    /// Stop when the RMS changes by less than this, mm.
    pub tolerance_mm: f64,
    /// Fraction of the closest pairs kept each iteration (0.5..=1).
    pub keep_fraction: f64,
}

impl Default for IcpSettings {
    fn default() -> Self {
        Self { metric: IcpMetric::PointToPlane, max_iterations: 60, tolerance_mm: 1e-6, keep_fraction: 0.9 }
    }
}

/// The result of ICP.
#[derive(Debug, Clone, PartialEq)]
pub struct IcpResult {
    /// The moving cloud's pose in the fixed frame.
    pub fixed_from_moving: Isometry3<f64>,
    /// RMS distance of the kept pairs at the end (point-to-point distance), mm.
    pub rms_mm: f64,
    /// RMS over all moving points to their nearest fixed point, mm.
    pub rms_all_mm: f64,
    /// Iterations run.
    pub iterations: usize,
    /// Whether the tolerance was reached before the iteration limit.
    pub converged: bool,
}

/// Unit normals of a point cloud by PCA of each point's `k` neighbours.
pub fn estimate_normals(tree: &KdTree, k: usize) -> Vec<Vector3<f64>> {
    (0..tree.len())
        .map(|i| {
            let neighbours = tree.k_nearest(tree.point(i), k.max(3));
            let c = neighbours.iter().map(|(j, _)| tree.point(*j)).sum::<Vector3<f64>>() / neighbours.len() as f64;
            let mut cov = nalgebra::Matrix3::zeros();
            for (j, _) in &neighbours {
                let d = tree.point(*j) - c;
                cov += d * d.transpose();
            }
            let eigen = cov.symmetric_eigen();
            let (smallest, _) =
                eigen.eigenvalues.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).unwrap_or((0, &0.0));
            eigen.eigenvectors.column(smallest).into_owned()
        })
        .collect()
}

/// Registers `moving` points onto the `fixed` surface points, starting from `initial`.
pub fn icp(
    moving: &[Vector3<f64>],
    fixed: &[Vector3<f64>],
    initial: Isometry3<f64>,
    settings: IcpSettings,
) -> Result<IcpResult, RegistrationError> {
    if moving.len() < 6 {
        return Err(RegistrationError::TooFew { what: "moving points", given: moving.len(), needed: 6 });
    }
    if fixed.len() < 6 {
        return Err(RegistrationError::TooFew { what: "fixed points", given: fixed.len(), needed: 6 });
    }
    finite_points(moving, "moving")?;
    finite_points(fixed, "fixed")?;
    if !(0.5..=1.0).contains(&settings.keep_fraction) || settings.max_iterations == 0 {
        return Err(RegistrationError::Invalid {
            reason: "keep_fraction must be 0.5..=1 and max_iterations > 0".into(),
        });
    }
    let tree = KdTree::new(fixed);
    let normals = match settings.metric {
        IcpMetric::PointToPlane => estimate_normals(&tree, 10),
        IcpMetric::PointToPoint => Vec::new(),
    };
    let mut pose = initial;
    let mut previous_rms = f64::INFINITY;
    let mut iterations = 0;
    let mut converged = false;
    let mut rms = f64::INFINITY;
    while iterations < settings.max_iterations {
        iterations += 1;
        let mut pairs: Vec<(Vector3<f64>, usize, f64)> = moving
            .iter()
            .filter_map(|p| {
                let q = (pose * Point3::from(*p)).coords;
                tree.nearest(&q).map(|(i, d2)| (q, i, d2))
            })
            .collect();
        pairs.sort_by(|a, b| a.2.total_cmp(&b.2));
        pairs.truncate(((pairs.len() as f64 * settings.keep_fraction).ceil() as usize).max(6));
        rms = (pairs.iter().map(|x| x.2).sum::<f64>() / pairs.len() as f64).sqrt();
        if (previous_rms - rms).abs() < settings.tolerance_mm {
            converged = true;
            break;
        }
        previous_rms = rms;
        let step = match settings.metric {
            IcpMetric::PointToPoint => {
                let src: Vec<_> = pairs.iter().map(|x| x.0).collect();
                let dst: Vec<_> = pairs.iter().map(|x| *tree.point(x.1)).collect();
                register_points(&src, &dst, false)?.fixed_from_moving
            }
            IcpMetric::PointToPlane => {
                let mut a = Matrix6::<f64>::zeros();
                let mut b = Vector6::<f64>::zeros();
                for (p, i, _) in &pairs {
                    let (q, n) = (tree.point(*i), normals[*i]);
                    let row = Vector6::new(p.cross(&n)[0], p.cross(&n)[1], p.cross(&n)[2], n[0], n[1], n[2]);
                    a += row * row.transpose();
                    b += row * (q - p).dot(&n);
                }
                let x = a.cholesky().map(|c| c.solve(&b)).ok_or_else(|| RegistrationError::Degenerate {
                    reason: "the surface does not constrain all six degrees of freedom (flat or symmetric); try point-to-point".into(),
                })?;
                Isometry3::from_parts(
                    Translation3::new(x[3], x[4], x[5]),
                    UnitQuaternion::from_scaled_axis(Vector3::new(x[0], x[1], x[2])),
                )
            }
        };
        pose = step * pose;
    }
    let rms_all_mm =
        (moving.iter().filter_map(|p| tree.nearest(&(pose * Point3::from(*p)).coords).map(|(_, d2)| d2)).sum::<f64>()
            / moving.len() as f64)
            .sqrt();
    Ok(IcpResult { fixed_from_moving: pose, rms_mm: rms, rms_all_mm, iterations, converged })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bumpy organ-like surface sampled on a 0.5 mm grid (a dense model surface).
    fn surface() -> Vec<Vector3<f64>> {
        let mut points = Vec::new();
        for i in 0..180 {
            for j in 0..180 {
                let (x, y) = (i as f64 * 0.5 - 45.0, j as f64 * 0.5 - 45.0);
                points.push(Vector3::new(x, y, 6.0 * (x / 7.0).sin() * (y / 9.0).cos() + 0.01 * x * y + 0.002 * x * x));
            }
        }
        points
    }

    #[test]
    fn both_metrics_recover_a_pose_despite_noise_and_outliers() {
        let fixed = surface();
        let truth = Isometry3::from_parts(
            Translation3::new(3.0, -2.0, 1.5),
            UnitQuaternion::from_euler_angles(0.06, -0.04, 0.1),
        );
        let inverse = truth.inverse();
        let mut state = 3u64;
        let mut noise = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.2
        };
        // A patch of the surface seen intra-operatively, in its own frame, with noise and 5 % outliers.
        let mut moving: Vec<Vector3<f64>> = fixed
            .iter()
            .enumerate()
            // Every 7th sample of a central patch: a sparse intra-operative scan.
            .filter(|(k, p)| k % 7 == 0 && p.x.abs() < 25.0 && p.y.abs() < 25.0)
            .map(|(_, p)| p)
            .map(|p| (inverse * Point3::from(*p)).coords + Vector3::new(noise(), noise(), noise()))
            .collect();
        let outliers = moving.len() / 20;
        for k in 0..outliers {
            moving[k * 19] += Vector3::new(0.0, 0.0, 30.0);
        }
        // Point-to-point slides slowly along smooth surfaces (Besl & McKay's known weakness);
        // point-to-plane converges tightly in a few iterations.
        for (metric, max_deg, max_mm) in [(IcpMetric::PointToPoint, 2.0, 0.3), (IcpMetric::PointToPlane, 0.1, 0.05)] {
            let settings = IcpSettings { metric, max_iterations: 200, ..Default::default() };
            let result = icp(&moving, &fixed, Isometry3::identity(), settings).expect("registers");
            let rot_err = result.fixed_from_moving.rotation.angle_to(&truth.rotation).to_degrees();
            let trans_err = (result.fixed_from_moving.translation.vector - truth.translation.vector).norm();
            println!(
                "{metric:?}: {rot_err:.4} deg, {trans_err:.4} mm, inlier RMS {:.4} mm, {} iterations",
                result.rms_mm, result.iterations
            );
            assert!(
                rot_err < max_deg && trans_err < max_mm,
                "{metric:?}: {rot_err} deg, {trans_err} mm after {} iterations",
                result.iterations
            );
            assert!(result.rms_mm < 0.3, "{metric:?}: inlier RMS {}", result.rms_mm);
        }
    }

    #[test]
    fn bad_input_is_refused() {
        let few = vec![Vector3::zeros(); 3];
        assert!(matches!(
            icp(&few, &surface(), Isometry3::identity(), IcpSettings::default()),
            Err(RegistrationError::TooFew { .. })
        ));
        let flat: Vec<Vector3<f64>> = (0..100).map(|i| Vector3::new((i % 10) as f64, (i / 10) as f64, 0.0)).collect();
        let err = icp(&flat, &flat, Isometry3::identity(), IcpSettings::default());
        assert!(matches!(err, Err(RegistrationError::Degenerate { .. }) | Ok(_)), "{err:?}");
        let settings = IcpSettings { keep_fraction: 0.1, ..Default::default() };
        assert!(icp(&flat, &flat, Isometry3::identity(), settings).is_err());
    }
}
