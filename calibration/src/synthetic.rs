//! Seeded synthetic calibration data: views of a chessboard seen by a known
//! camera from varied poses, with Gaussian image noise. For tests and
//! benchmarks, where the truth must be known and runs must repeat.

use nalgebra::{Rotation3, Vector3};

use crate::camera::CameraModel;
use crate::intrinsics::View;

/// xorshift64* with Box–Muller: reproducible noise without a dependency.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Gaussian with standard deviation `sigma`.
    pub fn gaussian(&mut self, sigma: f64) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        sigma * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Up to `count` views of a `cols`×`rows` inner-corner board with `square`
/// spacing, entirely inside the `size` image, with image noise `noise_px`.
pub fn board_views(
    camera: &CameraModel,
    size: (u32, u32),
    (cols, rows, square): (usize, usize, f64),
    count: usize,
    noise_px: f64,
    seed: u64,
) -> Vec<View> {
    let object: Vec<[f64; 3]> =
        (0..rows).flat_map(|r| (0..cols).map(move |c| [c as f64 * square, r as f64 * square, 0.0])).collect();
    let (width_mm, height_mm) = ((cols - 1) as f64 * square, (rows - 1) as f64 * square);
    // Distance at which the board fills about half the image width.
    let distance = camera.intrinsics.fx * width_mm * 2.0 / f64::from(size.0);
    let mut rng = SeededRng::new(seed);
    let mut views = Vec::new();
    for _ in 0..count * 20 {
        if views.len() == count {
            break;
        }
        let mut angle = |max: f64| (rng.uniform() * 2.0 - 1.0) * max;
        let r = Rotation3::from_euler_angles(angle(0.6), angle(0.6), angle(0.5));
        let t = Vector3::new(
            angle(0.25 * distance) - width_mm / 2.0,
            angle(0.15 * distance) - height_mm / 2.0,
            distance * (1.0 + angle(0.3)),
        );
        let mut image = Vec::with_capacity(object.len());
        for p in &object {
            let q = r * Vector3::new(p[0], p[1], p[2]) + t;
            match camera.project([q[0], q[1], q[2]]) {
                Ok(px) if px[0] >= 0.0 && px[1] >= 0.0 && px[0] < f64::from(size.0) && px[1] < f64::from(size.1) => {
                    image.push([px[0] + rng.gaussian(noise_px), px[1] + rng.gaussian(noise_px)]);
                }
                _ => break,
            }
        }
        if image.len() == object.len() {
            views.push(View { object: object.clone(), image });
        }
    }
    views
}
