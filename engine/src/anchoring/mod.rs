//! Marks that stay on the anatomy (issue 19): a viewer's point is lifted
//! onto the registered model's surface at the capture time of the frame the
//! viewer was looking at, kept in the model's coordinates, and placed into
//! every later frame with that frame's pose, hidden (dashed or faded) where
//! tissue lies between it and the camera.
//!
//! - [`view`]: one output frame's geometry: pixel ↔ camera ray, for either
//!   output mode.
//! - [`viewed_frames`]: the recent composited frames (capture time, size,
//!   camera, each model's pose), written by the compositor stage, read when a
//!   viewer's point arrives.
//! - [`lift`]: a viewer's point → a point on a model's surface, or why it
//!   stays on the screen.
//! - [`place`]: a mark's point → where it lands in a frame and whether it is
//!   hidden.
//! - [`marks`]: every mark and its mode, for the `marks` notice.
//!
//! All of it is sans IO: frames, poses and time come in as values.

pub mod lift;
pub mod marks;
pub mod place;
pub mod view;
pub mod viewed_frames;

use glam::Mat4;

use crate::compositor::ModelPose;
use crate::scene::Scene;

/// A model's pose in one frame, as far as marks are concerned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ModelAt {
    /// camera_from_model (mm) at the frame's capture time: current.
    Current(Mat4),
    /// Where its last pose put it; tracking is stale (marks on it are drawn hidden).
    Stale(Mat4),
    /// Not placed in this frame (hidden while its tracking is stale).
    Unplaced,
}

impl ModelAt {
    /// The pose, current or stale.
    pub fn pose(&self) -> Option<Mat4> {
        match self {
            ModelAt::Current(m) | ModelAt::Stale(m) => Some(*m),
            ModelAt::Unplaced => None,
        }
    }
}

/// Each model of `scene` in a frame composited with `poses` (by model index;
/// missing entries: as the scene says).
pub fn models_at(scene: &Scene, poses: &[ModelPose]) -> Vec<ModelAt> {
    scene
        .models
        .iter()
        .enumerate()
        .map(|(i, model)| match poses.get(i).copied().unwrap_or(ModelPose::AsScene) {
            ModelPose::AsScene => ModelAt::Current(model.camera_from_model),
            ModelPose::Tracked(m) => ModelAt::Current(m),
            ModelPose::NotTracked(m) => ModelAt::Stale(m),
            ModelPose::Hidden => ModelAt::Unplaced,
        })
        .collect()
}
