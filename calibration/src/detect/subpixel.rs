//! Sub-pixel corner refinement as OpenCV's `cornerSubPix`: at the true
//! corner q, every image gradient g_p in the window is orthogonal to
//! (p − q), so q solves `Σ g gᵀ · q = Σ g gᵀ · p` (Förstner & Gülch 1987).
//! Iterated until the shift is below `epsilon_px` or `max_iterations`.

use nalgebra::{Matrix2, Vector2};

use super::GrayImage;

/// Refines `corner` with a window of half-size `half_window` px.
pub fn refine_corner(
    image: &GrayImage,
    corner: [f64; 2],
    half_window: usize,
    max_iterations: usize,
    epsilon_px: f64,
) -> [f64; 2] {
    let mut q = Vector2::new(corner[0], corner[1]);
    let hw = half_window as isize;
    for _ in 0..max_iterations {
        let mut a = Matrix2::<f64>::zeros();
        let mut b = Vector2::<f64>::zeros();
        for dy in -hw..=hw {
            for dx in -hw..=hw {
                let (px, py) = (q.x + dx as f64, q.y + dy as f64);
                // Central differences on the bilinear image; a Gaussian weight favours the centre.
                let gx = f64::from(image.sample(px + 1.0, py) - image.sample(px - 1.0, py)) / 2.0;
                let gy = f64::from(image.sample(px, py + 1.0) - image.sample(px, py - 1.0)) / 2.0;
                let r2 = (dx * dx + dy * dy) as f64 / (hw * hw).max(1) as f64;
                let w = (-r2).exp();
                let g = Vector2::new(gx, gy);
                let ggt = g * g.transpose() * w;
                a += ggt;
                b += ggt * Vector2::new(px, py);
            }
        }
        let Some(next) = a.try_inverse().map(|inv| inv * b) else { break };
        let shift = (next - q).norm();
        // A step outside the window means the window holds no corner: keep the estimate.
        if !next.iter().all(|v| v.is_finite()) || shift > half_window as f64 {
            break;
        }
        q = next;
        if shift < epsilon_px {
            break;
        }
    }
    [q.x, q.y]
}
