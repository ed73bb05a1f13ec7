//! Lifting a viewer's point onto the anatomy: the camera ray through the
//! point, in the frame the viewer drew on, meets the models' surfaces (each
//! at its pose in that frame); the nearest hit, in that model's coordinates,
//! is where the mark stays. Where no surface is hit, or the frame's models
//! were not tracked, the point stays on the screen and the reason is said.

use glam::{Vec2, Vec3};
use thiserror::Error;

use super::ModelAt;
use super::viewed_frames::{FrameLookupError, ViewedFrame};
use crate::compositor::projection::{FAR_MM, NEAR_MM};
use crate::scene::Model;

/// Why a point stays on the screen.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OffSurface {
    /// The station has no calibrated camera, so no ray can be cast.
    #[error("the station has no calibrated camera")]
    NoCamera,
    /// The frame drawn on is not known.
    #[error(transparent)]
    Frame(#[from] FrameLookupError),
    /// The lens model cannot be inverted there (far outside its image).
    #[error("the point is outside the lens' image")]
    OutsideLens,
    /// The models were not tracked in the frame drawn on.
    #[error("not tracked in the frame drawn on: {models}")]
    NotTracked {
        /// Their names.
        models: String,
    },
    /// The ray meets no model.
    #[error("no model surface under the point")]
    NoSurface,
}

/// A point on a model's surface.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OnSurface {
    /// The model's index in the scene.
    pub model: u16,
    /// The point, model coordinates, mm.
    pub at_mm: Vec3,
    /// Its depth in the frame drawn on, mm.
    pub depth_mm: f32,
}

/// Lifts the normalised output point `at` of `frame` onto the nearest
/// surface of `models` (the scene's, by the same index as `frame.models`).
pub fn lift(at: Vec2, frame: &ViewedFrame, models: &[Model]) -> Result<OnSurface, OffSurface> {
    let view = frame.view.as_ref().ok_or(OffSurface::NoCamera)?;
    let ray = view.ray_through(at).ok_or(OffSurface::OutsideLens)?;
    let mut best: Option<OnSurface> = None;
    let mut stale = Vec::new();
    for (index, (model, pose)) in models.iter().zip(&frame.models).enumerate().take(usize::from(u16::MAX)) {
        let camera_from_model = match pose {
            ModelAt::Current(m) => m.as_dmat4(),
            ModelAt::Stale(_) | ModelAt::Unplaced => {
                stale.push(model.name.as_str());
                continue;
            }
        };
        let model_from_camera = camera_from_model.inverse();
        let origin = model_from_camera.transform_point3(glam::DVec3::ZERO).as_vec3();
        let direction = model_from_camera.transform_vector3(ray).as_vec3();
        // The ray's z is 1 in the camera frame, so t is the depth in mm (a
        // rigid pose keeps the parameter).
        let nearest = best.map_or(FAR_MM as f32, |b| b.depth_mm);
        if let Some(hit) = model.mesh.surface().first_hit(origin, direction, NEAR_MM as f32, nearest) {
            best = Some(OnSurface { model: index as u16, at_mm: origin + hit.t * direction, depth_mm: hit.t });
        }
    }
    match best {
        Some(on) => Ok(on),
        None if !stale.is_empty() => Err(OffSurface::NotTracked { models: stale.join(", ") }),
        None => Err(OffSurface::NoSurface),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use glam::{DVec3, Mat4};

    use super::*;
    use crate::anchoring::view::FrameView;
    use crate::scene::{Mesh, ModelStyle, OutputMode, Scene};

    /// A 200 mm square at z = 0 of its own frame, as two triangles.
    pub(crate) fn plane() -> Arc<Mesh> {
        let positions = vec![[-100.0, -100.0, 0.0], [100.0, -100.0, 0.0], [100.0, 100.0, 0.0], [-100.0, 100.0, 0.0]];
        Arc::new(Mesh::new(positions, None, vec![0, 1, 2, 0, 2, 3]).expect("a square"))
    }

    pub(crate) fn model(name: &str, camera_from_model: Mat4) -> Model {
        Model {
            name: name.into(),
            mesh: plane(),
            camera_from_model,
            colour: [1.0; 3],
            opacity: 0.0,
            visible: true,
            style: ModelStyle::Solid,
        }
    }

    fn scene_with(models: Vec<Model>) -> Scene {
        Scene { models, ..crate::anchoring::view::tests::scene(OutputMode::Distorted) }
    }

    fn frame(scene: &Scene, models: Vec<ModelAt>) -> ViewedFrame {
        ViewedFrame { capture_wall_ms: 1, capture_time_ns: 1, view: FrameView::of(scene, (1280, 720)), models }
    }

    #[test]
    fn a_point_lands_on_the_nearest_surface_in_its_coordinates() {
        // Two planes facing the camera, 90 mm and 120 mm away, the near one turned and shifted.
        let near = Mat4::from_translation(Vec3::new(5.0, -3.0, 90.0)) * Mat4::from_rotation_z(0.3);
        let far = Mat4::from_translation(Vec3::new(0.0, 0.0, 120.0));
        let scene = scene_with(vec![model("far", far), model("near", near)]);
        let viewed = frame(&scene, vec![ModelAt::Current(far), ModelAt::Current(near)]);
        let view = viewed.view.expect("calibrated");
        let truth_camera = DVec3::new(-12.0, 8.0, 90.0);
        let at = view.point_of(truth_camera).expect("in front");
        let on = lift(at, &viewed, &scene.models).expect("on the near plane");
        assert_eq!(on.model, 1);
        let back = near.as_dmat4().transform_point3(on.at_mm.as_dvec3());
        assert!((back - truth_camera).length() < 0.01, "{back} vs {truth_camera}");
        assert!(on.at_mm.z.abs() < 1e-3, "on the plane: {}", on.at_mm);
        // The near plane not tracked in that frame: the far one is hit.
        let stale = frame(&scene, vec![ModelAt::Current(far), ModelAt::Stale(near)]);
        assert_eq!(lift(at, &stale, &scene.models).expect("far").model, 0);
    }

    #[test]
    fn points_off_every_surface_say_why() {
        let side = Mat4::from_translation(Vec3::new(400.0, 0.0, 90.0));
        let scene = scene_with(vec![model("liver", side)]);
        let at = Vec2::new(0.5, 0.5);
        let frame_hit_nothing = frame(&scene, vec![ModelAt::Current(side)]);
        assert_eq!(lift(at, &frame_hit_nothing, &scene.models), Err(OffSurface::NoSurface));
        let untracked = frame(&scene, vec![ModelAt::Unplaced]);
        assert_eq!(lift(at, &untracked, &scene.models), Err(OffSurface::NotTracked { models: "liver".into() }));
        let behind = Mat4::from_translation(Vec3::new(0.0, 0.0, -50.0));
        let frame_behind = frame(&scene, vec![ModelAt::Current(behind)]);
        assert_eq!(lift(at, &frame_behind, &scene.models), Err(OffSurface::NoSurface), "behind the camera");
        let uncalibrated = ViewedFrame { view: None, ..frame_hit_nothing };
        assert_eq!(lift(at, &uncalibrated, &scene.models), Err(OffSurface::NoCamera));
        assert!(OffSurface::NotTracked { models: "liver".into() }.to_string().contains("liver"));
    }
}
