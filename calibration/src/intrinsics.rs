//! Intrinsic camera calibration from views of a planar target: Zhang's
//! closed-form initialisation from plane homographies (Z. Zhang, "A flexible
//! new technique for camera calibration", IEEE TPAMI 22(11), 2000), then
//! Levenberg–Marquardt over intrinsics, distortion and every view's pose,
//! minimising the reprojection error in pixels, as OpenCV's `calibrateCamera`
//! does. Reports the RMS reprojection error, per-view errors and the standard
//! deviations of the parameters (`calibrateCameraExtended`).
//!
//! Pixel coordinates follow OpenCV (centre of the top-left pixel at (0, 0)).

use nalgebra::{DMatrix, DVector, Matrix3, Rotation3, SVD, Vector3};
use thiserror::Error;

use crate::camera::{BrownConrady, CameraModel, KannalaBrandt, LensModel, PinholeIntrinsics};

/// Largest number of Levenberg–Marquardt iterations.
pub const MAX_ITERATIONS: usize = 200;

/// One view of the target: object points (z = 0 plane) and their images.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// Target points in target units (mm), z = 0.
    pub object: Vec<[f64; 3]>,
    /// Measured image points, px.
    pub image: Vec<[f64; 2]>,
}

/// The lens model to estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// Pinhole + Brown–Conrady (k1, k2, p1, p2, k3).
    BrownConrady,
    /// Kannala–Brandt fisheye (k1..k4).
    KannalaBrandt,
}

/// What to hold fixed, as OpenCV's `CALIB_*` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CalibrationFlags {
    /// `CALIB_FIX_K3`: k3 stays 0 (Brown–Conrady only).
    pub fix_k3: bool,
    /// `CALIB_FIX_PRINCIPAL_POINT`: cx, cy stay at the image centre.
    pub fix_principal_point: bool,
    /// `CALIB_FIX_ASPECT_RATIO`: fx / fy stays at its initial ratio (1).
    pub fix_aspect_ratio: bool,
    /// `CALIB_ZERO_TANGENT_DIST`: p1 = p2 = 0 (Brown–Conrady only).
    pub zero_tangent: bool,
}

/// Why a calibration could not be computed.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CalibrationError {
    /// Not enough views.
    #[error("{views} views given; intrinsic calibration needs at least 3 views of the target")]
    TooFewViews {
        /// Views given.
        views: usize,
    },
    /// A view has too few points or mismatched lists.
    #[error("view {view}: {reason}")]
    BadView {
        /// View index.
        view: usize,
        /// What is wrong.
        reason: String,
    },
    /// The target is not planar.
    #[error("view {view}: object point {point} has z = {z}; the target must be planar (z = 0)")]
    NotPlanar {
        /// View index.
        view: usize,
        /// Point index.
        point: usize,
        /// Its z.
        z: f64,
    },
    /// The views do not constrain the intrinsics (e.g. all parallel to the image).
    #[error("the views are degenerate: {reason}")]
    Degenerate {
        /// Why.
        reason: String,
    },
}

/// Standard deviations of the estimated parameters (0 for fixed ones).
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterStd {
    /// σ of fx, fy, cx, cy, px.
    pub intrinsics: [f64; 4],
    /// σ of the distortion coefficients in the model's order.
    pub distortion: Vec<f64>,
}

/// A target pose: `camera_from_target` as a rotation vector and a translation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetPose {
    /// Rodrigues rotation vector, rad.
    pub rotation: [f64; 3],
    /// Translation, target units.
    pub translation: [f64; 3],
}

/// The result of an intrinsic calibration.
#[derive(Debug, Clone, PartialEq)]
pub struct IntrinsicCalibration {
    /// The estimated camera.
    pub camera: CameraModel,
    /// Image size, px.
    pub image_size: (u32, u32),
    /// RMS reprojection error over all points, px: `sqrt(Σ‖e‖² / N)` as OpenCV reports it.
    pub rms_px: f64,
    /// RMS reprojection error of each view, px.
    pub per_view_rms_px: Vec<f64>,
    /// Standard deviations of the parameters.
    pub std_dev: ParameterStd,
    /// Each view's target pose.
    pub poses: Vec<TargetPose>,
    /// Levenberg–Marquardt iterations spent.
    pub iterations: usize,
}

fn distortion_len(kind: ModelKind) -> usize {
    match kind {
        ModelKind::BrownConrady => 5,
        ModelKind::KannalaBrandt => 4,
    }
}

/// The camera described by the first `4 + distortion_len` parameters.
fn camera_from(kind: ModelKind, p: &[f64]) -> CameraModel {
    let intrinsics = PinholeIntrinsics { fx: p[0], fy: p[1], cx: p[2], cy: p[3] };
    let lens = match kind {
        ModelKind::BrownConrady => {
            LensModel::BrownConrady(BrownConrady { k1: p[4], k2: p[5], p1: p[6], p2: p[7], k3: p[8] })
        }
        ModelKind::KannalaBrandt => LensModel::KannalaBrandt(KannalaBrandt { k1: p[4], k2: p[5], k3: p[6], k4: p[7] }),
    };
    CameraModel { intrinsics, lens }
}

fn check_input(views: &[View]) -> Result<(), CalibrationError> {
    if views.len() < 3 {
        return Err(CalibrationError::TooFewViews { views: views.len() });
    }
    for (index, view) in views.iter().enumerate() {
        if view.object.len() != view.image.len() {
            return Err(CalibrationError::BadView {
                view: index,
                reason: format!("{} object points but {} image points", view.object.len(), view.image.len()),
            });
        }
        if view.object.len() < 6 {
            return Err(CalibrationError::BadView {
                view: index,
                reason: format!("{} points; at least 6 needed", view.object.len()),
            });
        }
        let finite = view.object.iter().flatten().chain(view.image.iter().flatten()).all(|v| v.is_finite());
        if !finite {
            return Err(CalibrationError::BadView { view: index, reason: "a coordinate is not finite".into() });
        }
        if let Some((point, p)) = view.object.iter().enumerate().find(|(_, p)| p[2].abs() > 1e-9) {
            return Err(CalibrationError::NotPlanar { view: index, point, z: p[2] });
        }
    }
    Ok(())
}

/// Homography mapping target (X, Y) to image (u, v), by the normalised DLT
/// (Hartley & Zisserman, Multiple View Geometry, alg. 4.2).
pub fn homography(object: &[[f64; 3]], image: &[[f64; 2]]) -> Option<Matrix3<f64>> {
    let normaliser = |points: &mut dyn Iterator<Item = [f64; 2]>| -> Matrix3<f64> {
        let pts: Vec<[f64; 2]> = points.collect();
        let n = pts.len() as f64;
        let (mx, my) = (pts.iter().map(|p| p[0]).sum::<f64>() / n, pts.iter().map(|p| p[1]).sum::<f64>() / n);
        let spread = pts.iter().map(|p| ((p[0] - mx).powi(2) + (p[1] - my).powi(2)).sqrt()).sum::<f64>() / n;
        let s = if spread > 1e-12 { std::f64::consts::SQRT_2 / spread } else { 1.0 };
        Matrix3::new(s, 0.0, -s * mx, 0.0, s, -s * my, 0.0, 0.0, 1.0)
    };
    let t_obj = normaliser(&mut object.iter().map(|p| [p[0], p[1]]));
    let t_img = normaliser(&mut image.iter().copied());
    let mut a = DMatrix::<f64>::zeros(2 * object.len(), 9);
    for (i, (o, m)) in object.iter().zip(image).enumerate() {
        let x = t_obj * Vector3::new(o[0], o[1], 1.0);
        let u = t_img * Vector3::new(m[0], m[1], 1.0);
        let (x, y, u, v) = (x[0], x[1], u[0], u[1]);
        let rows = [[-x, -y, -1.0, 0.0, 0.0, 0.0, u * x, u * y, u], [0.0, 0.0, 0.0, -x, -y, -1.0, v * x, v * y, v]];
        for (r, row) in rows.iter().enumerate() {
            for (c, value) in row.iter().enumerate() {
                a[(2 * i + r, c)] = *value;
            }
        }
    }
    let svd = SVD::new(a.transpose() * &a, false, true);
    let v_t = svd.v_t?;
    let (min_index, _) = svd.singular_values.iter().enumerate().min_by(|x, y| x.1.total_cmp(y.1))?;
    let h = v_t.row(min_index);
    let hn = Matrix3::new(h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]);
    let h = t_img.try_inverse()? * hn * t_obj;
    (h[(2, 2)].abs() > 1e-15).then(|| h / h[(2, 2)])
}

/// Zhang's closed form for K (zero skew) from homographies; `None` when the
/// views do not determine it.
fn zhang_intrinsics(homographies: &[Matrix3<f64>]) -> Option<[f64; 4]> {
    let v = |h: &Matrix3<f64>, i: usize, j: usize| -> [f64; 6] {
        let (hi, hj) = (h.column(i), h.column(j));
        [
            hi[0] * hj[0],
            hi[0] * hj[1] + hi[1] * hj[0],
            hi[1] * hj[1],
            hi[2] * hj[0] + hi[0] * hj[2],
            hi[2] * hj[1] + hi[1] * hj[2],
            hi[2] * hj[2],
        ]
    };
    let mut rows: Vec<[f64; 6]> = Vec::new();
    for h in homographies {
        let v11 = v(h, 0, 0);
        let v22 = v(h, 1, 1);
        rows.push(v(h, 0, 1));
        rows.push(std::array::from_fn(|k| v11[k] - v22[k]));
    }
    // Zero skew: B12 = 0, weighted to hold.
    rows.push([0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    let mut m = DMatrix::<f64>::zeros(rows.len(), 6);
    for (r, row) in rows.iter().enumerate() {
        // Scale each row to unit length so no view dominates by its homography's scale.
        let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
        for c in 0..6 {
            m[(r, c)] = row[c] / norm;
        }
    }
    let svd = SVD::new(m.transpose() * &m, false, true);
    let v_t = svd.v_t?;
    let (min_index, _) = svd.singular_values.iter().enumerate().min_by(|x, y| x.1.total_cmp(y.1))?;
    let b: Vec<f64> = v_t.row(min_index).iter().copied().collect();
    let (b11, b12, b22, b13, b23, b33) = (b[0], b[1], b[2], b[3], b[4], b[5]);
    let denom = b11 * b22 - b12 * b12;
    let v0 = (b12 * b13 - b11 * b23) / denom;
    let lambda = b33 - (b13 * b13 + v0 * (b12 * b13 - b11 * b23)) / b11;
    let alpha = (lambda / b11).sqrt();
    let beta = (lambda * b11 / denom).sqrt();
    let gamma = -b12 * alpha * alpha * beta / lambda;
    let u0 = gamma * v0 / beta - b13 * alpha * alpha / lambda;
    let k = [alpha, beta, u0, v0];
    k.iter().all(|x| x.is_finite()).then_some(k).filter(|k| k[0] > 0.0 && k[1] > 0.0)
}

/// The pose of a plane from its homography and K (Zhang, section 3.1),
/// with R made orthonormal by SVD.
fn pose_from_homography(h: &Matrix3<f64>, k: &Matrix3<f64>) -> Option<TargetPose> {
    let k_inv = k.try_inverse()?;
    let (h1, h2, h3) = (h.column(0), h.column(1), h.column(2));
    let lambda = 1.0 / (k_inv * h1).norm();
    let mut r1 = (k_inv * h1) * lambda;
    let mut r2 = (k_inv * h2) * lambda;
    let mut t = (k_inv * h3) * lambda;
    if t[2] < 0.0 {
        // The target is in front of the camera: flip the solution's sign.
        r1 = -r1;
        r2 = -r2;
        t = -t;
    }
    let r3 = r1.cross(&r2);
    let q = Matrix3::from_columns(&[r1, r2, r3]);
    let svd = q.svd(true, true);
    let mut r = svd.u? * svd.v_t?;
    if r.determinant() < 0.0 {
        r = -r;
    }
    let rotation = Rotation3::from_matrix_unchecked(r).scaled_axis();
    Some(TargetPose { rotation: [rotation[0], rotation[1], rotation[2]], translation: [t[0], t[1], t[2]] })
}

/// Projects a target point seen at `pose` through `camera`.
fn project(camera: &CameraModel, pose: &[f64], p: &[f64; 3]) -> Option<[f64; 2]> {
    let r = Rotation3::from_scaled_axis(Vector3::new(pose[0], pose[1], pose[2]));
    project_with(camera, &r, pose, p)
}

/// Projects with the pose's rotation already built (it is the same for every point of a view).
fn project_with(camera: &CameraModel, r: &Rotation3<f64>, pose: &[f64], p: &[f64; 3]) -> Option<[f64; 2]> {
    let q = r * Vector3::new(p[0], p[1], p[2]) + Vector3::new(pose[3], pose[4], pose[5]);
    camera.project([q[0], q[1], q[2]]).ok()
}

/// Calibrates a camera from `views` of a planar target seen in images of `image_size`.
pub fn calibrate(
    views: &[View],
    image_size: (u32, u32),
    kind: ModelKind,
    flags: CalibrationFlags,
) -> Result<IntrinsicCalibration, CalibrationError> {
    check_input(views)?;
    let homographies: Vec<Matrix3<f64>> = views
        .iter()
        .enumerate()
        .map(|(i, v)| {
            homography(&v.object, &v.image).ok_or_else(|| CalibrationError::BadView {
                view: i,
                reason: "no homography: the points are collinear or repeated".into(),
            })
        })
        .collect::<Result<_, _>>()?;
    let centre = ((f64::from(image_size.0) - 1.0) / 2.0, (f64::from(image_size.1) - 1.0) / 2.0);
    let [mut fx, mut fy, mut cx, mut cy] = zhang_intrinsics(&homographies)
        .ok_or_else(|| CalibrationError::Degenerate { reason: "Zhang's closed form has no real solution".into() })?;
    if flags.fix_principal_point
        || !(0.0..f64::from(image_size.0)).contains(&cx)
        || !(0.0..f64::from(image_size.1)).contains(&cy)
    {
        (cx, cy) = centre;
    }
    if flags.fix_aspect_ratio {
        let f = (fx + fy) / 2.0;
        (fx, fy) = (f, f);
    }
    let k = Matrix3::new(fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0);
    let poses: Vec<TargetPose> = homographies
        .iter()
        .enumerate()
        .map(|(i, h)| {
            pose_from_homography(h, &k)
                .ok_or_else(|| CalibrationError::BadView { view: i, reason: "no pose from its homography".into() })
        })
        .collect::<Result<_, _>>()?;

    let nd = distortion_len(kind);
    let n_intr = 4 + nd;
    let mut params = vec![0.0; n_intr + 6 * views.len()];
    params[..4].copy_from_slice(&[fx, fy, cx, cy]);
    for (i, pose) in poses.iter().enumerate() {
        params[n_intr + 6 * i..n_intr + 6 * i + 3].copy_from_slice(&pose.rotation);
        params[n_intr + 6 * i + 3..n_intr + 6 * i + 6].copy_from_slice(&pose.translation);
    }
    // Which parameters move.
    let mut free = vec![true; params.len()];
    if flags.fix_principal_point {
        free[2] = false;
        free[3] = false;
    }
    if kind == ModelKind::BrownConrady {
        if flags.zero_tangent {
            free[6] = false;
            free[7] = false;
        }
        if flags.fix_k3 {
            free[8] = false;
        }
    }
    let aspect = if flags.fix_aspect_ratio { Some(fx / fy) } else { None };
    if aspect.is_some() {
        // fy follows fx.
        free[1] = false;
    }
    let solver = Problem { views, kind, n_intr, aspect };
    let (params, iterations, jtj) = solver.levenberg_marquardt(params, &free)?;

    let camera = camera_from(kind, &solver.with_aspect(&params));
    let mut per_view = Vec::new();
    let (mut total_sq, mut total_n) = (0.0, 0usize);
    for (i, view) in views.iter().enumerate() {
        let pose = &params[n_intr + 6 * i..n_intr + 6 * i + 6];
        let mut sq = 0.0;
        for (o, m) in view.object.iter().zip(&view.image) {
            let p = project(&camera, pose, o).unwrap_or([f64::MAX, f64::MAX]);
            sq += (p[0] - m[0]).powi(2) + (p[1] - m[1]).powi(2);
        }
        per_view.push((sq / view.object.len() as f64).sqrt());
        total_sq += sq;
        total_n += view.object.len();
    }
    let rms_px = (total_sq / total_n as f64).sqrt();
    // σ² = RSS / (2N − P) and cov = σ² (JᵀJ)⁻¹, as calibrateCameraExtended.
    let free_count = free.iter().filter(|f| **f).count();
    let dof = (2 * total_n).saturating_sub(free_count).max(1) as f64;
    let sigma2 = total_sq / dof;
    let covariance = jtj.clone().try_inverse().unwrap_or_else(|| DMatrix::zeros(jtj.nrows(), jtj.ncols()));
    let free_index: Vec<usize> = (0..params.len()).filter(|&i| free[i]).collect();
    let std_of = |param: usize| -> f64 {
        free_index.iter().position(|&i| i == param).map_or(0.0, |j| (sigma2 * covariance[(j, j)]).max(0.0).sqrt())
    };
    let std_dev = ParameterStd {
        intrinsics: [
            std_of(0),
            if aspect.is_some() { std_of(0) / aspect.unwrap_or(1.0) } else { std_of(1) },
            std_of(2),
            std_of(3),
        ],
        distortion: (4..n_intr).map(std_of).collect(),
    };
    let poses = (0..views.len())
        .map(|i| {
            let p = &params[n_intr + 6 * i..];
            TargetPose { rotation: [p[0], p[1], p[2]], translation: [p[3], p[4], p[5]] }
        })
        .collect();
    Ok(IntrinsicCalibration { camera, image_size, rms_px, per_view_rms_px: per_view, std_dev, poses, iterations })
}

/// The least-squares problem: residuals are reprojection errors in px.
struct Problem<'a> {
    views: &'a [View],
    kind: ModelKind,
    n_intr: usize,
    /// With a fixed aspect ratio, fy = fx / aspect.
    aspect: Option<f64>,
}

impl Problem<'_> {
    fn with_aspect(&self, params: &[f64]) -> Vec<f64> {
        let mut p = params.to_vec();
        if let Some(a) = self.aspect {
            p[1] = p[0] / a;
        }
        p
    }

    /// Residuals of one view (2 per point), or `None` if a point falls behind the camera.
    fn view_residuals(&self, params: &[f64], view: usize, out: &mut Vec<f64>) -> Option<()> {
        let p = self.with_aspect(params);
        let camera = camera_from(self.kind, &p);
        let pose = &params[self.n_intr + 6 * view..self.n_intr + 6 * view + 6];
        let r = Rotation3::from_scaled_axis(Vector3::new(pose[0], pose[1], pose[2]));
        for (o, m) in self.views[view].object.iter().zip(&self.views[view].image) {
            let q = project_with(&camera, &r, pose, o)?;
            out.push(q[0] - m[0]);
            out.push(q[1] - m[1]);
        }
        Some(())
    }

    fn residuals(&self, params: &[f64]) -> Option<Vec<f64>> {
        let mut out = Vec::new();
        for v in 0..self.views.len() {
            self.view_residuals(params, v, &mut out)?;
        }
        Some(out)
    }

    /// The normal equations `JᵀJ` and `Jᵀr` over the free parameters, with J by
    /// central differences. J is block-sparse (a view's residuals depend on the
    /// intrinsics and on that view's pose only), so each view's block is built
    /// and folded in on its own, as OpenCV does; the dense J is never formed.
    fn normal_equations(&self, params: &[f64], free: &[bool], r: &[f64]) -> Option<(DMatrix<f64>, DVector<f64>)> {
        let mut column_of = vec![None; params.len()];
        let mut free_count = 0;
        for (i, f) in free.iter().enumerate() {
            if *f {
                column_of[i] = Some(free_count);
                free_count += 1;
            }
        }
        let mut jtj = DMatrix::<f64>::zeros(free_count, free_count);
        let mut g = DVector::<f64>::zeros(free_count);
        let mut row_start = 0;
        let (mut plus, mut minus) = (params.to_vec(), params.to_vec());
        let (mut rp, mut rm) = (Vec::new(), Vec::new());
        for view in 0..self.views.len() {
            let rows = 2 * self.views[view].object.len();
            let pose_params = self.n_intr + 6 * view..self.n_intr + 6 * view + 6;
            let columns: Vec<(usize, usize)> =
                (0..self.n_intr).chain(pose_params).filter_map(|p| column_of[p].map(|c| (p, c))).collect();
            let mut block = DMatrix::<f64>::zeros(rows, columns.len());
            for (k, &(param, _)) in columns.iter().enumerate() {
                let h = 1e-6 * params[param].abs().max(1e-2);
                plus[param] = params[param] + h;
                minus[param] = params[param] - h;
                rp.clear();
                rm.clear();
                self.view_residuals(&plus, view, &mut rp)?;
                self.view_residuals(&minus, view, &mut rm)?;
                plus[param] = params[param];
                minus[param] = params[param];
                for (row, (a, b)) in rp.iter().zip(&rm).enumerate() {
                    block[(row, k)] = (a - b) / (2.0 * h);
                }
            }
            let block_jtj = block.transpose() * &block;
            let residual = DVector::from_column_slice(&r[row_start..row_start + rows]);
            let block_g = block.transpose() * residual;
            for (a, &(_, ca)) in columns.iter().enumerate() {
                g[ca] += block_g[a];
                for (b, &(_, cb)) in columns.iter().enumerate() {
                    jtj[(ca, cb)] += block_jtj[(a, b)];
                }
            }
            row_start += rows;
        }
        Some((jtj, g))
    }

    /// Levenberg–Marquardt (Marquardt's diagonal scaling) with at most
    /// [`MAX_ITERATIONS`] iterations; returns the parameters, the iterations
    /// and JᵀJ at the solution (for the covariance).
    fn levenberg_marquardt(
        &self,
        mut params: Vec<f64>,
        free: &[bool],
    ) -> Result<(Vec<f64>, usize, DMatrix<f64>), CalibrationError> {
        let degenerate = |reason: &str| CalibrationError::Degenerate { reason: reason.into() };
        let mut r =
            self.residuals(&params).ok_or_else(|| degenerate("a target point is behind the camera at the start"))?;
        let mut cost: f64 = r.iter().map(|x| x * x).sum();
        let mut lambda = 1e-3;
        let free_index: Vec<usize> = (0..params.len()).filter(|&i| free[i]).collect();
        let mut iterations = 0;
        let mut jtj = DMatrix::zeros(free_index.len(), free_index.len());
        while iterations < MAX_ITERATIONS {
            iterations += 1;
            let (normal, g) = self
                .normal_equations(&params, free, &r)
                .ok_or_else(|| degenerate("a target point went behind the camera"))?;
            jtj = normal;
            let mut improved = false;
            for _ in 0..20 {
                let mut a = jtj.clone();
                for d in 0..a.nrows() {
                    a[(d, d)] += lambda * jtj[(d, d)].max(1e-12);
                }
                let Some(delta) = a.cholesky().map(|c| c.solve(&(-&g))) else {
                    lambda *= 10.0;
                    continue;
                };
                let mut trial = params.clone();
                for (k, &i) in free_index.iter().enumerate() {
                    trial[i] += delta[k];
                }
                match self.residuals(&trial) {
                    Some(rt) => {
                        let trial_cost: f64 = rt.iter().map(|x| x * x).sum();
                        if trial_cost < cost {
                            let relative = (cost - trial_cost) / cost.max(1e-300);
                            params = trial;
                            r = rt;
                            cost = trial_cost;
                            lambda = (lambda / 10.0).max(1e-12);
                            improved = true;
                            if relative < 1e-14 || delta.norm() < 1e-12 {
                                return Ok((params, iterations, jtj));
                            }
                            break;
                        }
                        lambda *= 10.0;
                    }
                    None => lambda *= 10.0,
                }
            }
            if !improved {
                break;
            }
        }
        Ok((params, iterations, jtj))
    }
}
