//! The overlay's projection, derived from the calibrated intrinsics, so a 3D
//! point lands where `scopecast_calibration` projects it.
//!
//! Conventions: calibration pixel coordinates follow OpenCV (pixel centres at
//! integers); render targets use "edge" coordinates where the top-left corner
//! of the image is (0, 0) and pixel centres sit at integer + 0.5, which is what
//! the rasteriser's `@builtin(position)` reports. So `edge = opencv + 0.5`.
//!
//! An overlay target may cover a different part of the ideal image plane than
//! the output (the distorted mode needs the ideal image beyond the frame's
//! edges). [`OverlayViewport`] maps ideal edge coordinates `e` to target edge
//! coordinates `t = scale · (e − origin)`.

use glam::{DMat4, DVec4, Mat4};
use scopecast_calibration::{CameraModel, PinholeIntrinsics};

/// Nearest depth drawn, mm.
pub const NEAR_MM: f64 = 1.0;
/// Farthest depth drawn, mm.
pub const FAR_MM: f64 = 2000.0;

/// Where an overlay target sits on the ideal (undistorted) image plane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverlayViewport {
    /// Ideal edge coordinate of the target's top-left corner, px.
    pub origin_edge_px: [f64; 2],
    /// Target pixels per ideal pixel.
    pub scale: f64,
    /// Target size, px.
    pub size: (u32, u32),
}

impl OverlayViewport {
    /// The target that coincides with a `width`×`height` output.
    pub fn identity(width: u32, height: u32) -> Self {
        Self { origin_edge_px: [0.0, 0.0], scale: 1.0, size: (width, height) }
    }

    /// Normalized target coordinates (0..1) of an ideal OpenCV pixel position.
    pub fn uv_of_ideal_pixel(&self, u: [f64; 2]) -> [f64; 2] {
        let (w, h) = (f64::from(self.size.0), f64::from(self.size.1));
        [self.scale * (u[0] + 0.5 - self.origin_edge_px[0]) / w, self.scale * (u[1] + 0.5 - self.origin_edge_px[1]) / h]
    }
}

/// The camera model with intrinsics rescaled from the calibration image size
/// to the frame size (for a frame scaled, not cropped, from the calibrated one).
pub fn camera_for_frame(camera: &CameraModel, calibrated: (u32, u32), frame: (u32, u32)) -> CameraModel {
    let sx = f64::from(frame.0) / f64::from(calibrated.0.max(1));
    let sy = f64::from(frame.1) / f64::from(calibrated.1.max(1));
    let PinholeIntrinsics { fx, fy, cx, cy } = camera.intrinsics;
    CameraModel {
        intrinsics: PinholeIntrinsics {
            fx: fx * sx,
            fy: fy * sy,
            cx: (cx + 0.5) * sx - 0.5,
            cy: (cy + 0.5) * sy - 0.5,
        },
        lens: camera.lens,
    }
}

/// `clip_from_camera` for a target described by `viewport` (wgpu clip space:
/// x, y in −1..1 with +y up, depth 0 at [`NEAR_MM`] and 1 at [`FAR_MM`]).
///
/// With `fx' = s·fx` and `cx' = s·(cx + 0.5 − origin_x)`, the target edge
/// coordinate of `p_in_camera` is `fx'·x/z + cx'` and NDC x is `2·t/W − 1`
/// (and `1 − 2·t/H` for y, which points down in the image).
pub fn clip_from_camera(intrinsics: &PinholeIntrinsics, viewport: &OverlayViewport) -> Mat4 {
    let (w, h) = (f64::from(viewport.size.0), f64::from(viewport.size.1));
    let s = viewport.scale;
    let fx = s * intrinsics.fx;
    let fy = s * intrinsics.fy;
    let cx = s * (intrinsics.cx + 0.5 - viewport.origin_edge_px[0]);
    let cy = s * (intrinsics.cy + 0.5 - viewport.origin_edge_px[1]);
    let depth_scale = FAR_MM / (FAR_MM - NEAR_MM);
    // Columns of the matrix whose rows are given in the doc comment above.
    DMat4::from_cols(
        DVec4::new(2.0 * fx / w, 0.0, 0.0, 0.0),
        DVec4::new(0.0, -2.0 * fy / h, 0.0, 0.0),
        DVec4::new(2.0 * cx / w - 1.0, 1.0 - 2.0 * cy / h, depth_scale, 1.0),
        DVec4::new(0.0, 0.0, -NEAR_MM * depth_scale, 0.0),
    )
    .as_mat4()
}

#[cfg(test)]
mod tests {
    use super::*;
    use glam::Vec4;
    use scopecast_calibration::{BrownConrady, LensModel};

    fn camera() -> CameraModel {
        CameraModel {
            intrinsics: PinholeIntrinsics { fx: 900.0, fy: 905.0, cx: 641.3, cy: 357.8 },
            lens: LensModel::BrownConrady(BrownConrady::default()),
        }
    }

    /// Target edge coordinates of a point, via the matrix and the viewport transform.
    fn target_px(m: &Mat4, viewport: &OverlayViewport, p: [f64; 3]) -> [f64; 2] {
        let clip = *m * Vec4::new(p[0] as f32, p[1] as f32, p[2] as f32, 1.0);
        let ndc = [f64::from(clip.x / clip.w), f64::from(clip.y / clip.w)];
        [(ndc[0] + 1.0) / 2.0 * f64::from(viewport.size.0), (1.0 - ndc[1]) / 2.0 * f64::from(viewport.size.1)]
    }

    #[test]
    fn the_matrix_agrees_with_the_calibration_projection() {
        let cam = camera();
        let viewports = [
            OverlayViewport::identity(1280, 720),
            OverlayViewport { origin_edge_px: [-200.5, -90.25], scale: 0.75, size: (1260, 680) },
        ];
        for viewport in viewports {
            let m = clip_from_camera(&cam.intrinsics, &viewport);
            for p in [[0.0, 0.0, 100.0], [-30.0, 20.0, 60.0], [45.0, -25.0, 80.0]] {
                let u = cam.project(p).expect("in front");
                let expected = [
                    viewport.scale * (u[0] + 0.5 - viewport.origin_edge_px[0]),
                    viewport.scale * (u[1] + 0.5 - viewport.origin_edge_px[1]),
                ];
                let got = target_px(&m, &viewport, p);
                let err = (got[0] - expected[0]).hypot(got[1] - expected[1]);
                assert!(err < 1e-3, "{p:?}: {got:?} vs {expected:?}");
                let uv = viewport.uv_of_ideal_pixel(u);
                assert!((uv[0] * f64::from(viewport.size.0) - expected[0]).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn depth_spans_near_to_far() {
        let m = clip_from_camera(&camera().intrinsics, &OverlayViewport::identity(640, 480));
        let near = m * Vec4::new(0.0, 0.0, NEAR_MM as f32, 1.0);
        let far = m * Vec4::new(0.0, 0.0, FAR_MM as f32, 1.0);
        assert!((near.z / near.w).abs() < 1e-6);
        assert!((far.z / far.w - 1.0).abs() < 1e-6);
    }

    #[test]
    fn intrinsics_scale_with_the_frame() {
        let scaled = camera_for_frame(&camera(), (1280, 720), (1920, 1080));
        // The image centre in edge coordinates scales exactly.
        assert!(((scaled.intrinsics.cx + 0.5) - (641.3 + 0.5) * 1.5).abs() < 1e-9);
        assert!((scaled.intrinsics.fx - 1350.0).abs() < 1e-9);
    }
}
