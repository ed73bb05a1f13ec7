//! One output frame's geometry for marks: which camera ray a point of the
//! picture shows, and where a point in the camera frame lands in the
//! picture, in the output mode the compositor draws (distorted: the lens
//! model as calibrated; undistorted: the ideal pinhole).
//!
//! Coordinates: a mark's point is normalised output coordinates (0..1, edge
//! convention: (0, 0) the top-left corner of the picture); the calibration
//! works in OpenCV pixels (centres at integers), so `pixel = n · size − 0.5`
//! (see `compositor::projection`). The camera frame is OpenCV's: x right,
//! y down, z forward, mm.

use glam::{DVec3, Vec2};
use scopecast_calibration::CameraModel;

use crate::compositor::projection::camera_for_frame;
use crate::scene::{OutputMode, Scene};

/// The geometry of one output frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameView {
    /// Output size, px.
    pub size: (u32, u32),
    /// The camera with its intrinsics scaled to the output size.
    pub camera: CameraModel,
    /// As captured (lens kept) or undistorted.
    pub mode: OutputMode,
}

impl FrameView {
    /// The view of a `size` frame of `scene`; `None` without a calibrated camera.
    pub fn of(scene: &Scene, size: (u32, u32)) -> Option<Self> {
        let calibration = scene.calibration?;
        let camera = camera_for_frame(&calibration.camera, (calibration.width, calibration.height), size);
        Some(Self { size, camera, mode: scene.output_mode })
    }

    /// The camera-frame ray `(x, y, 1)` through the normalised output point
    /// `at`; `None` where the lens model cannot be inverted (far outside its
    /// image circle).
    pub fn ray_through(&self, at: Vec2) -> Option<DVec3> {
        let pixel = [f64::from(at.x) * f64::from(self.size.0) - 0.5, f64::from(at.y) * f64::from(self.size.1) - 0.5];
        let [x, y] = match self.mode {
            OutputMode::Distorted => self.camera.unproject(pixel).ok()?,
            OutputMode::Undistorted => {
                let k = self.camera.intrinsics;
                [(pixel[0] - k.cx) / k.fx, (pixel[1] - k.cy) / k.fy]
            }
        };
        (x.is_finite() && y.is_finite()).then(|| DVec3::new(x, y, 1.0))
    }

    /// Where the camera-frame point `p_mm` lands, normalised output
    /// coordinates; `None` behind the camera.
    pub fn point_of(&self, p_mm: DVec3) -> Option<Vec2> {
        if p_mm.z <= 1e-6 || !p_mm.is_finite() {
            return None;
        }
        let pixel = match self.mode {
            OutputMode::Distorted => self.camera.project(p_mm.to_array()).ok()?,
            OutputMode::Undistorted => self.camera.pixel_from_normalized(p_mm.x / p_mm.z, p_mm.y / p_mm.z),
        };
        let at = Vec2::new(
            ((pixel[0] + 0.5) / f64::from(self.size.0)) as f32,
            ((pixel[1] + 0.5) / f64::from(self.size.1)) as f32,
        );
        at.is_finite().then_some(at)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::scene::Calibration;
    use scopecast_calibration::{BrownConrady, LensModel, PinholeIntrinsics};

    pub(crate) fn scene(mode: OutputMode) -> Scene {
        let camera = CameraModel {
            intrinsics: PinholeIntrinsics { fx: 700.0, fy: 702.0, cx: 639.5, cy: 359.5 },
            lens: LensModel::BrownConrady(BrownConrady { k1: -0.3, k2: 0.1, p1: 0.001, p2: -0.0005, k3: -0.02 }),
        };
        Scene {
            calibration: Some(Calibration { camera, width: 1280, height: 720 }),
            output_mode: mode,
            ..Default::default()
        }
    }

    #[test]
    fn a_point_and_its_ray_agree_in_both_modes() {
        for mode in [OutputMode::Distorted, OutputMode::Undistorted] {
            for size in [(1280, 720), (1920, 1080)] {
                let view = FrameView::of(&scene(mode), size).expect("calibrated");
                for p in [DVec3::new(0.0, 0.0, 90.0), DVec3::new(-25.0, 14.0, 80.0), DVec3::new(30.0, -20.0, 100.0)] {
                    let at = view.point_of(p).expect("in front");
                    let ray = view.ray_through(at).expect("inside the lens' circle");
                    let back = ray * p.z;
                    assert!((back - p).length() < 1e-3, "{mode:?} {size:?}: {back} vs {p}");
                }
                assert_eq!(view.point_of(DVec3::new(0.0, 0.0, -5.0)), None);
            }
        }
        // The optical centre (OpenCV cx, cy) is the output's (cx + 0.5) / width.
        let view = FrameView::of(&scene(OutputMode::Undistorted), (1280, 720)).expect("calibrated");
        assert_eq!(view.point_of(DVec3::new(0.0, 0.0, 50.0)), Some(Vec2::new(0.5, 0.5)));
        assert!(FrameView::of(&Scene::default(), (1280, 720)).is_none(), "no camera, no marks on the anatomy");
    }
}
