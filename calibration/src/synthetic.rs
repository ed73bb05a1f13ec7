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

use crate::detect::GrayImage;

/// How a rendered board image is degraded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenderQuality {
    /// Gaussian blur σ, px (0: none).
    pub blur_px: f64,
    /// Gaussian noise σ, intensity levels.
    pub noise: f64,
    /// Brightness falls from 1 at one image corner to `1 − lighting_falloff` at the opposite one.
    pub lighting_falloff: f64,
}

/// Renders a planar target at `camera_from_target` (rotation vector,
/// translation) through `camera` with 4×4 supersampling, then degrades it.
/// `target(x, y)` gives the intensity at target-plane point (x, y) (mm), or
/// `None` off the target (a grey background).
fn render_target(
    camera: &CameraModel,
    size: (u32, u32),
    (rotation, translation): ([f64; 3], [f64; 3]),
    quality: RenderQuality,
    seed: u64,
    target: &dyn Fn(f64, f64) -> Option<f32>,
) -> GrayImage {
    const BACKGROUND: f32 = 90.0;
    let r = Rotation3::from_scaled_axis(Vector3::new(rotation[0], rotation[1], rotation[2]));
    let t = Vector3::new(translation[0], translation[1], translation[2]);
    let (w, h) = (size.0 as usize, size.1 as usize);
    let target_from_camera = r.inverse();
    let origin = target_from_camera * (-t);
    let shade = |x: f64, y: f64| -> f32 {
        let Ok([nx, ny]) = camera.unproject([x, y]) else { return BACKGROUND };
        // The ray (nx, ny, 1)·s from the camera, intersected with the target's z = 0 plane.
        let direction = target_from_camera * Vector3::new(nx, ny, 1.0);
        if direction.z.abs() < 1e-12 {
            return BACKGROUND;
        }
        let s = -origin.z / direction.z;
        if s <= 0.0 {
            return BACKGROUND;
        }
        let p = origin + direction * s;
        target(p.x, p.y).unwrap_or(BACKGROUND)
    };
    let mut data = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut sum = 0.0;
            for sy in 0..4 {
                for sx in 0..4 {
                    sum += shade(x as f64 - 0.375 + sx as f64 * 0.25, y as f64 - 0.375 + sy as f64 * 0.25);
                }
            }
            data[y * w + x] = sum / 16.0;
        }
    }
    if quality.blur_px > 0.0 {
        data = gaussian_blur(&data, w, h, quality.blur_px);
    }
    let mut rng = SeededRng::new(seed);
    let diagonal = ((w * w + h * h) as f64).sqrt();
    for y in 0..h {
        for x in 0..w {
            let light = 1.0 - quality.lighting_falloff * ((x * x + y * y) as f64).sqrt() / diagonal;
            let v = f64::from(data[y * w + x]) * light + rng.gaussian(quality.noise);
            data[y * w + x] = v.clamp(0.0, 255.0) as f32;
        }
    }
    GrayImage { width: w, height: h, data }
}

fn project_all(camera: &CameraModel, pose: ([f64; 3], [f64; 3]), points: &[[f64; 3]]) -> Vec<[f64; 2]> {
    let r = Rotation3::from_scaled_axis(Vector3::new(pose.0[0], pose.0[1], pose.0[2]));
    let t = Vector3::new(pose.1[0], pose.1[1], pose.1[2]);
    points
        .iter()
        .filter_map(|p| {
            let q = r * Vector3::new(p[0], p[1], p[2]) + t;
            camera.project([q.x, q.y, q.z]).ok()
        })
        .collect()
}

/// Renders a `cols × rows` inner-corner chessboard (squares of `square`, a
/// white margin of one square) at `camera_from_board`; returns the image and
/// the true inner-corner positions (row by row).
pub fn render_board(
    camera: &CameraModel,
    size: (u32, u32),
    (cols, rows, square): (usize, usize, f64),
    pose: ([f64; 3], [f64; 3]),
    quality: RenderQuality,
    seed: u64,
) -> (GrayImage, Vec<[f64; 2]>) {
    let board = move |x: f64, y: f64| -> Option<f32> {
        // (cols + 1) × (rows + 1) squares whose inner corners start at the origin.
        let (u, v) = (x / square + 1.0, y / square + 1.0);
        if u < -1.0 || v < -1.0 || u > cols as f64 + 2.0 || v > rows as f64 + 2.0 {
            return None;
        }
        if u < 0.0 || v < 0.0 || u > cols as f64 + 1.0 || v > rows as f64 + 1.0 {
            return Some(235.0);
        }
        Some(if (u.floor() as i64 + v.floor() as i64) % 2 == 0 { 20.0 } else { 235.0 })
    };
    let image = render_target(camera, size, pose, quality, seed, &board);
    let corners: Vec<[f64; 3]> =
        (0..rows).flat_map(|r| (0..cols).map(move |c| [c as f64 * square, r as f64 * square, 0.0])).collect();
    (image, project_all(camera, pose, &corners))
}

/// Object points of OpenCV's asymmetric circle grid: `((2j + i mod 2)·s, i·s, 0)`.
pub fn asymmetric_grid_points(cols: usize, rows: usize, spacing: f64) -> Vec<[f64; 3]> {
    (0..rows)
        .flat_map(|i| (0..cols).map(move |j| [(2 * j + i % 2) as f64 * spacing, i as f64 * spacing, 0.0]))
        .collect()
}

/// Renders an asymmetric circle grid (dark discs of radius `0.3 · spacing` on
/// white, margin of one spacing); returns the image and the true centres' projections.
pub fn render_circles(
    camera: &CameraModel,
    size: (u32, u32),
    (cols, rows, spacing): (usize, usize, f64),
    pose: ([f64; 3], [f64; 3]),
    quality: RenderQuality,
    seed: u64,
) -> (GrayImage, Vec<[f64; 2]>) {
    let centres = asymmetric_grid_points(cols, rows, spacing);
    let (width, height) = ((2 * cols) as f64 * spacing, rows as f64 * spacing);
    let radius = 0.3 * spacing;
    let inside = centres.clone();
    let board = move |x: f64, y: f64| -> Option<f32> {
        if x < -spacing * 1.5 || y < -spacing * 1.5 || x > width + spacing || y > height + spacing {
            return None;
        }
        let near = inside.iter().any(|c| (x - c[0]).hypot(y - c[1]) < radius);
        Some(if near { 20.0 } else { 235.0 })
    };
    let image = render_target(camera, size, pose, quality, seed, &board);
    (image, project_all(camera, pose, &centres))
}

/// Separable Gaussian blur with σ `sigma` px, border clamped.
fn gaussian_blur(data: &[f32], w: usize, h: usize, sigma: f64) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius).map(|k| (-(k * k) as f64 / (2.0 * sigma * sigma)).exp() as f32).collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let mut horizontal = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0.0;
            for (k, weight) in kernel.iter().enumerate() {
                let xx = (x as isize + k as isize - radius).clamp(0, w as isize - 1) as usize;
                s += data[y * w + xx] * weight;
            }
            horizontal[y * w + x] = s;
        }
    }
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0.0;
            for (k, weight) in kernel.iter().enumerate() {
                let yy = (y as isize + k as isize - radius).clamp(0, h as isize - 1) as usize;
                s += horizontal[yy * w + x] * weight;
            }
            out[y * w + x] = s;
        }
    }
    out
}
