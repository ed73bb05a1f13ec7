//! Remap tables, built on the CPU once per calibration, frame size and output
//! mode, and sampled per pixel by the compose shader.
//!
//! - Undistorted output: for each output pixel (an ideal pinhole pixel) the
//!   video texture coordinate where the lens put it: `K · distort(K⁻¹ · x)`.
//! - Distorted output: for each output pixel (as captured) the coordinate in
//!   the overlay target of its ideal position `K · undistort(K⁻¹ · x)`, so the
//!   overlay is bent by the same lens as the video.
//!
//! Entries are normalized texture coordinates; `OUTSIDE` marks pixels with no
//! source (beyond the lens model's valid range).

use scopecast_calibration::CameraModel;

use super::projection::OverlayViewport;

/// Marks a pixel without a source.
pub const OUTSIDE: [f32; 2] = [-1.0, -1.0];
/// Largest overlay target side as a multiple of the frame's side. The ideal
/// image of a wide lens can be several times the frame; beyond 1.5× it is
/// rendered at reduced scale, which costs no accuracy where barrel distortion
/// compresses the periphery (one output pixel covers several ideal pixels
/// there) and keeps the multisampled target's fill cost near the frame's.
pub const MAX_OVERLAY_FACTOR: f64 = 1.5;

/// A table of normalized texture coordinates, one per output pixel, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct RemapTable {
    /// Width, px.
    pub width: u32,
    /// Height, px.
    pub height: u32,
    /// One `[u, v]` per pixel.
    pub uv: Vec<[f32; 2]>,
}

/// Table for the undistorted output mode: output pixel → video UV.
pub fn undistort_video(camera: &CameraModel, width: u32, height: u32) -> RemapTable {
    let k = camera.intrinsics;
    let (w, h) = (f64::from(width), f64::from(height));
    let mut uv = Vec::with_capacity(width as usize * height as usize);
    for y in 0..height {
        for x in 0..width {
            let (xd, yd) = camera.lens.distort((f64::from(x) - k.cx) / k.fx, (f64::from(y) - k.cy) / k.fy);
            let [px, py] = camera.pixel_from_normalized(xd, yd);
            let entry = [(px + 0.5) / w, (py + 0.5) / h];
            uv.push(if entry.iter().all(|c| c.is_finite()) { [entry[0] as f32, entry[1] as f32] } else { OUTSIDE });
        }
    }
    RemapTable { width, height, uv }
}

/// Table for the distorted output mode: output pixel → overlay UV, with the
/// overlay target that covers every ideal position the frame needs.
pub fn distort_overlay(camera: &CameraModel, width: u32, height: u32) -> (RemapTable, OverlayViewport) {
    let ideal: Vec<Option<[f64; 2]>> = (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .map(|(x, y)| {
            camera.unproject([f64::from(x), f64::from(y)]).ok().map(|[nx, ny]| camera.pixel_from_normalized(nx, ny))
        })
        .collect();
    // Bounds of the ideal positions in edge coordinates, with a 2 px margin for filtering.
    let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
    for u in ideal.iter().flatten() {
        for i in 0..2 {
            lo[i] = lo[i].min(u[i] + 0.5);
            hi[i] = hi[i].max(u[i] + 0.5);
        }
    }
    if lo[0] > hi[0] {
        (lo, hi) = ([0.0, 0.0], [f64::from(width), f64::from(height)]);
    }
    let origin = [lo[0].floor() - 2.0, lo[1].floor() - 2.0];
    let extent = [hi[0].ceil() + 2.0 - origin[0], hi[1].ceil() + 2.0 - origin[1]];
    let scale = (MAX_OVERLAY_FACTOR * f64::from(width) / extent[0])
        .min(MAX_OVERLAY_FACTOR * f64::from(height) / extent[1])
        .min(1.0);
    let size = ((extent[0] * scale).ceil() as u32, (extent[1] * scale).ceil() as u32);
    let viewport = OverlayViewport { origin_edge_px: origin, scale, size };
    let uv = ideal
        .iter()
        .map(|u| match u {
            Some(u) => {
                let [a, b] = viewport.uv_of_ideal_pixel(*u);
                [a as f32, b as f32]
            }
            None => OUTSIDE,
        })
        .collect();
    (RemapTable { width, height, uv }, viewport)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scopecast_calibration::{BrownConrady, LensModel, PinholeIntrinsics};

    fn camera(k1: f64) -> CameraModel {
        CameraModel {
            intrinsics: PinholeIntrinsics { fx: 500.0, fy: 500.0, cx: 159.5, cy: 119.5 },
            lens: LensModel::BrownConrady(BrownConrady { k1, ..Default::default() }),
        }
    }

    #[test]
    fn without_distortion_both_tables_are_the_identity() {
        let cam = camera(0.0);
        let table = undistort_video(&cam, 320, 240);
        let (overlay, viewport) = distort_overlay(&cam, 320, 240);
        for (x, y) in [(0u32, 0u32), (100, 50), (319, 239)] {
            let i = (y * 320 + x) as usize;
            let expected = [(x as f32 + 0.5) / 320.0, (y as f32 + 0.5) / 240.0];
            assert!((table.uv[i][0] - expected[0]).abs() < 1e-6 && (table.uv[i][1] - expected[1]).abs() < 1e-6);
            let o = overlay.uv[i];
            let px = [o[0] as f64 * viewport.size.0 as f64, o[1] as f64 * viewport.size.1 as f64];
            let back = [
                px[0] / viewport.scale + viewport.origin_edge_px[0],
                px[1] / viewport.scale + viewport.origin_edge_px[1],
            ];
            assert!((back[0] - (x as f64 + 0.5)).abs() < 1e-3 && (back[1] - (y as f64 + 0.5)).abs() < 1e-3, "{back:?}");
        }
    }

    #[test]
    fn barrel_distortion_maps_the_corner_inwards_and_the_ideal_plane_outwards() {
        let cam = camera(-0.25);
        let table = undistort_video(&cam, 320, 240);
        // Undistorted corner pixel comes from closer to the centre of the video.
        assert!(table.uv[0][0] > 0.5 / 320.0 && table.uv[0][1] > 0.5 / 240.0, "{:?}", table.uv[0]);
        let (_, viewport) = distort_overlay(&cam, 320, 240);
        assert!(viewport.origin_edge_px[0] < -2.0, "the ideal image reaches beyond the frame: {viewport:?}");
    }
}
