//! Camera models: pinhole intrinsics with Brown–Conrady or Kannala–Brandt
//! lens distortion, in OpenCV's conventions and coefficient order.
//!
//! Frames: a point `p_in_camera` is in millimetres (or any unit) in the camera
//! frame, +Z looking forward, +X right, +Y down. Normalized image coordinates
//! are `(X/Z, Y/Z)`; pixel coordinates follow OpenCV (see the crate docs).

use thiserror::Error;

/// Errors of camera-model evaluation.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CameraError {
    /// The point is on or behind the camera plane (Z <= 0) and has no image.
    #[error("point at z = {z_mm} is not in front of the camera")]
    BehindCamera {
        /// Depth of the point.
        z_mm: f64,
    },
    /// The iterative inversion of the distortion did not reach the tolerance.
    #[error("undistortion did not converge within {iterations} iterations (residual {residual})")]
    NoConvergence {
        /// Iterations spent.
        iterations: u32,
        /// Remaining residual in normalized units.
        residual: f64,
    },
    /// A parameter is not finite or out of its domain.
    #[error("invalid camera parameter {name} = {value}")]
    InvalidParameter {
        /// Name of the parameter (`fx`, `k1`, ...).
        name: &'static str,
        /// Its value.
        value: f64,
    },
}

/// Pinhole intrinsics in pixels (OpenCV's camera matrix without skew).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PinholeIntrinsics {
    /// Focal length along x, px.
    pub fx: f64,
    /// Focal length along y, px.
    pub fy: f64,
    /// Principal point x, px (OpenCV convention: pixel centres at integers).
    pub cx: f64,
    /// Principal point y, px.
    pub cy: f64,
}

/// Brown–Conrady radial + tangential distortion (OpenCV order k1, k2, p1, p2, k3).
///
/// `x_d = x·(1 + k1 r² + k2 r⁴ + k3 r⁶) + 2 p1 x y + p2 (r² + 2x²)`,
/// `y_d = y·(1 + k1 r² + k2 r⁴ + k3 r⁶) + p1 (r² + 2y²) + 2 p2 x y`
/// (Brown 1966; OpenCV `calib3d` documentation).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BrownConrady {
    /// Radial r² coefficient.
    pub k1: f64,
    /// Radial r⁴ coefficient.
    pub k2: f64,
    /// Tangential coefficient p1.
    pub p1: f64,
    /// Tangential coefficient p2.
    pub p2: f64,
    /// Radial r⁶ coefficient.
    pub k3: f64,
}

/// Kannala–Brandt equidistant fisheye distortion (OpenCV `fisheye` k1..k4).
///
/// With `θ = atan(r)`: `θ_d = θ (1 + k1 θ² + k2 θ⁴ + k3 θ⁶ + k4 θ⁸)` and
/// `(x_d, y_d) = (θ_d / r)·(x, y)` (Kannala & Brandt 2006; OpenCV `fisheye`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct KannalaBrandt {
    /// θ³ coefficient.
    pub k1: f64,
    /// θ⁵ coefficient.
    pub k2: f64,
    /// θ⁷ coefficient.
    pub k3: f64,
    /// θ⁹ coefficient.
    pub k4: f64,
}

/// A lens distortion model acting on normalized image coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LensModel {
    /// Pinhole + Brown–Conrady.
    BrownConrady(BrownConrady),
    /// Kannala–Brandt fisheye.
    KannalaBrandt(KannalaBrandt),
}

/// Upper bound of Newton iterations when inverting a distortion.
pub const UNDISTORT_MAX_ITERATIONS: u32 = 50;
/// Residual, in normalized units, at which an inversion counts as converged
/// (1e-10 is about 1e-7 px at a 1000 px focal length).
pub const UNDISTORT_TOLERANCE: f64 = 1e-10;

impl BrownConrady {
    /// Distorts normalized coordinates; returns the point and the 2×2 Jacobian
    /// `∂(x_d, y_d)/∂(x, y)` in row-major order.
    pub fn distort_with_jacobian(&self, x: f64, y: f64) -> ((f64, f64), [f64; 4]) {
        let Self { k1, k2, p1, p2, k3 } = *self;
        let r2 = x * x + y * y;
        let radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3));
        let xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x);
        let yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y;
        // d(radial)/d(r²), then chain through r² = x² + y².
        let dradial_dr2 = k1 + r2 * (2.0 * k2 + 3.0 * k3 * r2);
        let dradial_dx = dradial_dr2 * 2.0 * x;
        let dradial_dy = dradial_dr2 * 2.0 * y;
        let jac = [
            radial + x * dradial_dx + 2.0 * p1 * y + 6.0 * p2 * x,
            x * dradial_dy + 2.0 * p1 * x + 2.0 * p2 * y,
            y * dradial_dx + 2.0 * p1 * x + 2.0 * p2 * y,
            radial + y * dradial_dy + 6.0 * p1 * y + 2.0 * p2 * x,
        ];
        ((xd, yd), jac)
    }
}

impl KannalaBrandt {
    /// `θ_d(θ)` and its derivative `dθ_d/dθ`.
    fn theta_d(&self, theta: f64) -> (f64, f64) {
        let Self { k1, k2, k3, k4 } = *self;
        let t2 = theta * theta;
        let poly = 1.0 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)));
        let dpoly = 1.0 + t2 * (3.0 * k1 + t2 * (5.0 * k2 + t2 * (7.0 * k3 + t2 * 9.0 * k4)));
        (theta * poly, dpoly)
    }
}

impl LensModel {
    /// No distortion: Brown–Conrady with every coefficient zero.
    pub const NONE: LensModel = LensModel::BrownConrady(BrownConrady { k1: 0.0, k2: 0.0, p1: 0.0, p2: 0.0, k3: 0.0 });

    /// Maps ideal normalized coordinates to distorted normalized coordinates.
    pub fn distort(&self, x: f64, y: f64) -> (f64, f64) {
        match self {
            LensModel::BrownConrady(bc) => bc.distort_with_jacobian(x, y).0,
            LensModel::KannalaBrandt(kb) => {
                let r = (x * x + y * y).sqrt();
                if r < 1e-12 {
                    return (x, y);
                }
                let (theta_d, _) = kb.theta_d(r.atan());
                let scale = theta_d / r;
                (x * scale, y * scale)
            }
        }
    }

    /// The 2×2 Jacobian `∂(x_d, y_d)/∂(x, y)` of [`LensModel::distort`], row-major.
    ///
    /// Kannala–Brandt: with r = |(x, y)|, θ = atan r and s = θ_d(θ)/r, the
    /// distorted point is s·(x, y), so `J = s·I + (x, y)ᵀ·∇s` with
    /// `ds/dr = (θ_d'(θ)/(1 + r²) − s) / r`.
    pub fn distort_jacobian(&self, x: f64, y: f64) -> [f64; 4] {
        match self {
            LensModel::BrownConrady(bc) => bc.distort_with_jacobian(x, y).1,
            LensModel::KannalaBrandt(kb) => {
                let r = (x * x + y * y).sqrt();
                if r < 1e-9 {
                    return [1.0, 0.0, 0.0, 1.0];
                }
                let (theta_d, dtheta_d) = kb.theta_d(r.atan());
                let s = theta_d / r;
                let ds_dr = (dtheta_d / (1.0 + r * r) - s) / r;
                let (ds_dx, ds_dy) = (ds_dr * x / r, ds_dr * y / r);
                [s + x * ds_dx, x * ds_dy, y * ds_dx, s + y * ds_dy]
            }
        }
    }

    /// Inverts [`LensModel::distort`] by Newton's method with at most
    /// [`UNDISTORT_MAX_ITERATIONS`] steps and [`UNDISTORT_TOLERANCE`].
    pub fn undistort(&self, xd: f64, yd: f64) -> Result<(f64, f64), CameraError> {
        match self {
            LensModel::BrownConrady(bc) => {
                let (mut x, mut y) = (xd, yd);
                let mut residual = f64::INFINITY;
                for _ in 0..UNDISTORT_MAX_ITERATIONS {
                    let ((fx, fy), j) = bc.distort_with_jacobian(x, y);
                    let (ex, ey) = (fx - xd, fy - yd);
                    residual = ex.hypot(ey);
                    if residual < UNDISTORT_TOLERANCE {
                        return Ok((x, y));
                    }
                    let det = j[0] * j[3] - j[1] * j[2];
                    if det.abs() < 1e-12 || !det.is_finite() {
                        break;
                    }
                    x -= (j[3] * ex - j[1] * ey) / det;
                    y -= (-j[2] * ex + j[0] * ey) / det;
                }
                Err(CameraError::NoConvergence { iterations: UNDISTORT_MAX_ITERATIONS, residual })
            }
            LensModel::KannalaBrandt(kb) => {
                let theta_d = (xd * xd + yd * yd).sqrt();
                if theta_d < 1e-12 {
                    return Ok((xd, yd));
                }
                let mut theta = theta_d;
                let mut residual = f64::INFINITY;
                for _ in 0..UNDISTORT_MAX_ITERATIONS {
                    let (value, derivative) = kb.theta_d(theta);
                    residual = (value - theta_d).abs();
                    if residual < UNDISTORT_TOLERANCE {
                        if !(0.0..std::f64::consts::FRAC_PI_2).contains(&theta) {
                            break;
                        }
                        let scale = theta.tan() / theta_d;
                        return Ok((xd * scale, yd * scale));
                    }
                    if derivative.abs() < 1e-12 {
                        break;
                    }
                    theta -= (value - theta_d) / derivative;
                }
                Err(CameraError::NoConvergence { iterations: UNDISTORT_MAX_ITERATIONS, residual })
            }
        }
    }

    /// Checks that every coefficient is finite.
    pub fn validate(&self) -> Result<(), CameraError> {
        let coefficients: [(&'static str, f64); 5] = match *self {
            LensModel::BrownConrady(BrownConrady { k1, k2, p1, p2, k3 }) => {
                [("k1", k1), ("k2", k2), ("p1", p1), ("p2", p2), ("k3", k3)]
            }
            LensModel::KannalaBrandt(KannalaBrandt { k1, k2, k3, k4 }) => {
                [("k1", k1), ("k2", k2), ("k3", k3), ("k4", k4), ("k4", k4)]
            }
        };
        match coefficients.iter().find(|(_, v)| !v.is_finite()) {
            Some(&(name, value)) => Err(CameraError::InvalidParameter { name, value }),
            None => Ok(()),
        }
    }
}

/// A calibrated camera: intrinsics and lens model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CameraModel {
    /// Pinhole intrinsics, px.
    pub intrinsics: PinholeIntrinsics,
    /// Lens distortion.
    pub lens: LensModel,
}

impl CameraModel {
    /// Checks that focal lengths are positive and every value finite.
    pub fn validate(&self) -> Result<(), CameraError> {
        let PinholeIntrinsics { fx, fy, cx, cy } = self.intrinsics;
        for (name, value) in [("fx", fx), ("fy", fy)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(CameraError::InvalidParameter { name, value });
            }
        }
        for (name, value) in [("cx", cx), ("cy", cy)] {
            if !value.is_finite() {
                return Err(CameraError::InvalidParameter { name, value });
            }
        }
        self.lens.validate()
    }

    /// Projects a point in the camera frame to distorted pixel coordinates.
    pub fn project(&self, p_in_camera: [f64; 3]) -> Result<[f64; 2], CameraError> {
        let [x, y, z] = p_in_camera;
        if z <= 0.0 || !z.is_finite() {
            return Err(CameraError::BehindCamera { z_mm: z });
        }
        let (xd, yd) = self.lens.distort(x / z, y / z);
        Ok(self.pixel_from_normalized(xd, yd))
    }

    /// Maps distorted pixel coordinates to ideal normalized coordinates
    /// (the ray `(x, y, 1)` in the camera frame).
    pub fn unproject(&self, pixel: [f64; 2]) -> Result<[f64; 2], CameraError> {
        let PinholeIntrinsics { fx, fy, cx, cy } = self.intrinsics;
        let (x, y) = self.lens.undistort((pixel[0] - cx) / fx, (pixel[1] - cy) / fy)?;
        Ok([x, y])
    }

    /// Applies the camera matrix to normalized coordinates.
    pub fn pixel_from_normalized(&self, x: f64, y: f64) -> [f64; 2] {
        let PinholeIntrinsics { fx, fy, cx, cy } = self.intrinsics;
        [fx * x + cx, fy * y + cy]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endoscope_bc() -> CameraModel {
        CameraModel {
            intrinsics: PinholeIntrinsics { fx: 1000.0, fy: 1002.0, cx: 639.5, cy: 359.5 },
            lens: LensModel::BrownConrady(BrownConrady { k1: -0.32, k2: 0.12, p1: 0.001, p2: -0.0005, k3: -0.02 }),
        }
    }

    fn fisheye_kb() -> CameraModel {
        CameraModel {
            intrinsics: PinholeIntrinsics { fx: 500.0, fy: 500.0, cx: 639.5, cy: 359.5 },
            lens: LensModel::KannalaBrandt(KannalaBrandt { k1: -0.01, k2: 0.005, k3: -0.001, k4: 0.0002 }),
        }
    }

    #[test]
    fn unproject_inverts_project_over_the_image() {
        for camera in [endoscope_bc(), fisheye_kb()] {
            for row in (0..720).step_by(40) {
                for col in (0..1280).step_by(40) {
                    let pixel = [col as f64, row as f64];
                    let [x, y] = camera.unproject(pixel).expect("inside the image converges");
                    let back = camera.project([x * 30.0, y * 30.0, 30.0]).expect("in front");
                    let error_px = (back[0] - pixel[0]).hypot(back[1] - pixel[1]);
                    assert!(error_px < 1e-6, "{camera:?} at {pixel:?}: {error_px} px");
                }
            }
        }
    }

    #[test]
    fn every_lens_jacobian_matches_finite_differences() {
        let h = 1e-6;
        for lens in [endoscope_bc().lens, fisheye_kb().lens] {
            for &(x, y) in &[(0.1, -0.2), (-0.5, 0.3), (0.7, 0.6), (1.2, -0.9)] {
                let j = lens.distort_jacobian(x, y);
                let (px, mx) = (lens.distort(x + h, y), lens.distort(x - h, y));
                let (py, my) = (lens.distort(x, y + h), lens.distort(x, y - h));
                let numeric = [
                    (px.0 - mx.0) / (2.0 * h),
                    (py.0 - my.0) / (2.0 * h),
                    (px.1 - mx.1) / (2.0 * h),
                    (py.1 - my.1) / (2.0 * h),
                ];
                for (a, n) in j.iter().zip(numeric) {
                    assert!((a - n).abs() < 1e-6, "{lens:?} at ({x}, {y}): analytic {a} vs numeric {n}");
                }
            }
        }
    }

    #[test]
    fn barrel_distortion_pulls_points_towards_the_centre() {
        let camera = endoscope_bc();
        let (xd, yd) = camera.lens.distort(0.6, 0.4);
        assert!(xd.hypot(yd) < 0.6f64.hypot(0.4));
    }

    #[test]
    fn points_behind_the_camera_have_no_image() {
        assert_eq!(endoscope_bc().project([1.0, 1.0, -1.0]), Err(CameraError::BehindCamera { z_mm: -1.0 }));
    }

    #[test]
    fn invalid_parameters_are_named() {
        let mut camera = endoscope_bc();
        camera.intrinsics.fx = 0.0;
        assert_eq!(camera.validate(), Err(CameraError::InvalidParameter { name: "fx", value: 0.0 }));
        let mut camera = endoscope_bc();
        camera.lens = LensModel::BrownConrady(BrownConrady { k2: f64::NAN, ..Default::default() });
        assert!(matches!(camera.validate(), Err(CameraError::InvalidParameter { name: "k2", .. })));
    }
}
