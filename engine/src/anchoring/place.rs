//! Placing a mark's points into a frame: a point on a model goes through
//! that model's pose in the frame and the frame's projection; it is hidden
//! where any model's surface lies between the camera and it (more than
//! [`SURFACE_TOLERANCE_MM`] in front of it), or where its model's tracking is
//! stale (drawn where the last pose put it, as the overlay is). A point on
//! the screen stays where it is.

use glam::{DVec3, Vec2};

use super::ModelAt;
use super::view::FrameView;
use crate::compositor::projection::NEAR_MM;
use crate::scene::{MarkPoint, Model};

/// A surface closer to the camera than the point by less than this does not
/// hide it (the point lies on a surface itself), mm; grows by 0.2 % of the
/// distance for far points (f32 mesh coordinates).
pub const SURFACE_TOLERANCE_MM: f64 = 0.5;

/// Where a mark's point lands in a frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placed {
    /// Normalised output coordinates.
    pub at: Vec2,
    /// Behind tissue, or on a model whose tracking is stale: drawn as hidden.
    pub hidden: bool,
}

/// Places marks into one frame.
#[derive(Debug, Clone, Copy)]
pub struct Placer<'a> {
    view: Option<FrameView>,
    models: &'a [Model],
    poses: &'a [ModelAt],
}

impl<'a> Placer<'a> {
    /// For a frame with geometry `view` (`None`: uncalibrated, only screen
    /// points land) whose models (`models`, the scene's) are at `poses`.
    pub const fn new(view: Option<FrameView>, models: &'a [Model], poses: &'a [ModelAt]) -> Self {
        Self { view, models, poses }
    }

    /// Where `point` lands; `None` when it cannot be placed in this frame
    /// (its model is not placed, it is behind the camera, or no camera).
    pub fn place(&self, point: &MarkPoint) -> Option<Placed> {
        match *point {
            MarkPoint::Screen(at) => Some(Placed { at, hidden: false }),
            MarkPoint::OnModel { model, at_mm } => {
                let at_model = *self.poses.get(usize::from(model))?;
                let camera_from_model = at_model.pose()?.as_dmat4();
                let p = camera_from_model.transform_point3(at_mm.as_dvec3());
                let at = self.view.as_ref()?.point_of(p)?;
                let stale = matches!(at_model, ModelAt::Stale(_));
                Some(Placed { at, hidden: stale || self.occluded(p) })
            }
        }
    }

    /// Whether a model's surface lies between the camera and `p` (camera frame, mm).
    fn occluded(&self, p: DVec3) -> bool {
        let distance = p.length();
        let tolerance = SURFACE_TOLERANCE_MM.max(0.002 * distance);
        if distance <= NEAR_MM + tolerance {
            return false;
        }
        // The segment camera → p as origin + t·(p − origin), t in (near, far).
        let (t_near, t_far) = ((NEAR_MM / distance) as f32, (1.0 - tolerance / distance) as f32);
        self.models.iter().zip(self.poses).any(|(model, pose)| {
            let Some(camera_from_model) = pose.pose() else { return false };
            let model_from_camera = camera_from_model.as_dmat4().inverse();
            let origin = model_from_camera.transform_point3(DVec3::ZERO);
            let target = model_from_camera.transform_point3(p);
            model.mesh.surface().any_hit(origin.as_vec3(), (target - origin).as_vec3(), t_near, t_far)
        })
    }
}

#[cfg(test)]
mod tests {
    use glam::{Mat4, Vec3};

    use super::*;
    use crate::anchoring::lift::tests::model;
    use crate::anchoring::view::tests::scene;
    use crate::scene::OutputMode;

    #[test]
    fn a_point_follows_its_model_and_hides_behind_another() {
        let surface = Mat4::from_translation(Vec3::new(0.0, 0.0, 100.0));
        let models = vec![model("surface", surface)];
        let view = FrameView::of(&scene(OutputMode::Distorted), (1280, 720));
        let point = MarkPoint::OnModel { model: 0, at_mm: Vec3::new(10.0, -5.0, 0.0) };
        let poses = [ModelAt::Current(surface)];
        let here = Placer::new(view, &models, &poses).place(&point).expect("placed");
        assert!(!here.hidden, "on the surface itself: not hidden");
        let expected = view.expect("calibrated").point_of(DVec3::new(10.0, -5.0, 100.0)).expect("in front");
        assert!((here.at - expected).length() < 1e-6);
        // The model moved 20 mm: the point moves with it.
        let moved = Mat4::from_translation(Vec3::new(20.0, 0.0, 100.0));
        let poses = [ModelAt::Current(moved)];
        let there = Placer::new(view, &models, &poses).place(&point).expect("placed");
        let expected = view.expect("calibrated").point_of(DVec3::new(30.0, -5.0, 100.0)).expect("in front");
        assert!((there.at - expected).length() < 1e-6);
        // A second plane 40 mm in front of it hides it; stale tracking marks it hidden too.
        let mut with_cover = models.clone();
        with_cover.push(model("cover", Mat4::from_translation(Vec3::new(0.0, 0.0, 60.0))));
        let poses = [ModelAt::Current(surface), ModelAt::Current(with_cover[1].camera_from_model)];
        assert!(Placer::new(view, &with_cover, &poses).place(&point).expect("placed").hidden);
        let poses = [ModelAt::Stale(surface)];
        assert!(Placer::new(view, &models, &poses).place(&point).expect("placed").hidden);
        // Not placed at all: the model is hidden, or there is no camera.
        assert_eq!(Placer::new(view, &models, &[ModelAt::Unplaced]).place(&point), None);
        assert_eq!(Placer::new(None, &models, &[ModelAt::Current(surface)]).place(&point), None);
        let screen = MarkPoint::Screen(Vec2::new(0.25, 0.75));
        assert_eq!(
            Placer::new(None, &models, &[]).place(&screen),
            Some(Placed { at: Vec2::new(0.25, 0.75), hidden: false })
        );
    }
}
