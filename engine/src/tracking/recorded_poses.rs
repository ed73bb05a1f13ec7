//! Tracked poses as a session recorded them (its `poses` records), for a
//! replay that composites afresh: each replayed frame, known by its recorded
//! capture wall time (what its timecode strip shows), gets exactly the
//! poses its frame was composited with live: tracked, drawn "not tracked"
//! where the last pose put it, or hidden. Marks on the anatomy follow them.

use crate::compositor::ModelPose;
use crate::recorder::format::{FramePosesRecord, TimelineRecord};
use crate::scene::Scene;

/// How far from a frame the poses of another may stand in for its own, ms
/// (its own record was lost with a dropped frame).
pub const REACH_MS: u64 = 200;

/// The recorded frames' poses, by capture wall time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordedPoses {
    frames: Vec<FramePosesRecord>,
}

impl RecordedPoses {
    /// The `poses` records of a timeline.
    pub fn from_timeline(records: &[TimelineRecord]) -> Self {
        let mut frames: Vec<FramePosesRecord> = records
            .iter()
            .filter_map(|r| match r {
                TimelineRecord::Poses { frames } => Some(frames.iter().cloned()),
                _ => None,
            })
            .flatten()
            .collect();
        frames.sort_by_key(|f| f.wall_ms);
        Self { frames }
    }

    /// Frames with recorded poses.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// No poses were recorded (no model was tracked).
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The poses of `scene`'s models for the frame captured at
    /// `capture_wall_ms` (Unix ms, as recorded; the nearest recorded frame
    /// within [`REACH_MS`]): as recorded for the models the recording
    /// tracked, as the scene says for the others.
    pub fn for_frame(&self, scene: &Scene, capture_wall_ms: u64) -> Vec<ModelPose> {
        // The nearest recorded frame: a replayed frame's capture time is rebuilt from
        // its segment's start and the MP4 decode time, and may be a millisecond off.
        let after = self.frames.partition_point(|f| f.wall_ms < capture_wall_ms);
        let frame = [after.checked_sub(1), Some(after)]
            .into_iter()
            .flatten()
            .filter_map(|i| self.frames.get(i))
            .min_by_key(|f| f.wall_ms.abs_diff(capture_wall_ms))
            .filter(|f| f.wall_ms.abs_diff(capture_wall_ms) <= REACH_MS);
        scene
            .models
            .iter()
            .map(|model| {
                let Some(frame) = frame else {
                    // Before the first recorded pose or in a long gap: a model the recording tracked is hidden.
                    let tracked = self.frames.iter().any(|f| f.models.iter().any(|m| m.name == model.name));
                    return if tracked { ModelPose::Hidden } else { ModelPose::AsScene };
                };
                match frame.models.iter().find(|m| m.name == model.name) {
                    None => ModelPose::AsScene,
                    Some(m) => match m.camera_from_model.map(|c| glam::Mat4::from_cols_array(&c)) {
                        Some(pose) if pose.is_finite() && m.tracked => ModelPose::Tracked(pose),
                        Some(pose) if pose.is_finite() => ModelPose::NotTracked(pose),
                        _ => ModelPose::Hidden,
                    },
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use glam::{Mat4, Vec3};

    use super::*;
    use crate::recorder::format::ModelPoseRecord;
    use crate::scene::{Mesh, Model, ModelStyle};

    fn model(name: &str) -> Model {
        Model {
            name: name.into(),
            mesh: Arc::new(
                Mesh::new(vec![[0.0; 3], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], None, vec![0, 1, 2]).expect("triangle"),
            ),
            camera_from_model: Mat4::IDENTITY,
            colour: [1.0; 3],
            opacity: 1.0,
            visible: true,
            style: ModelStyle::Solid,
        }
    }

    fn frame(wall_ms: u64, surface: Option<(bool, f32)>) -> FramePosesRecord {
        FramePosesRecord {
            t_ns: wall_ms * 1_000_000,
            wall_ms,
            models: vec![ModelPoseRecord {
                name: "surface".into(),
                tracked: surface.is_some_and(|(t, _)| t),
                camera_from_model: surface
                    .map(|(_, x)| Mat4::from_translation(Vec3::new(x, 0.0, 90.0)).to_cols_array()),
            }],
        }
    }

    #[test]
    fn each_replayed_frame_gets_the_poses_it_was_composited_with() {
        let records = vec![
            TimelineRecord::Poses { frames: vec![frame(1_000, Some((true, 1.0))), frame(1_033, Some((true, 2.0)))] },
            TimelineRecord::Gap { t_ns: 0, reason: "queue full".into() },
            TimelineRecord::Poses { frames: vec![frame(1_066, Some((false, 2.0))), frame(1_100, None)] },
        ];
        let poses = RecordedPoses::from_timeline(&records);
        assert_eq!(poses.len(), 4);
        let scene = Scene { models: vec![model("liver"), model("surface")], ..Default::default() };
        let at = |x: f32| Mat4::from_translation(Vec3::new(x, 0.0, 90.0));
        assert_eq!(poses.for_frame(&scene, 1_033), vec![ModelPose::AsScene, ModelPose::Tracked(at(2.0))]);
        // A replayed frame's time rebuilt a millisecond off, or a frame whose record was lost: the nearest.
        assert_eq!(poses.for_frame(&scene, 1_032)[1], ModelPose::Tracked(at(2.0)));
        assert_eq!(poses.for_frame(&scene, 1_034)[1], ModelPose::Tracked(at(2.0)));
        assert_eq!(poses.for_frame(&scene, 1_045), vec![ModelPose::AsScene, ModelPose::Tracked(at(2.0))]);
        assert_eq!(poses.for_frame(&scene, 1_066)[1], ModelPose::NotTracked(at(2.0)));
        assert_eq!(poses.for_frame(&scene, 1_100)[1], ModelPose::Hidden);
        assert_eq!(poses.for_frame(&scene, 700)[1], ModelPose::Hidden, "before tracking began");
        assert_eq!(poses.for_frame(&scene, 5_000)[1], ModelPose::Hidden, "long after the last pose");
        assert_eq!(poses.for_frame(&scene, 1_100 + REACH_MS)[1], ModelPose::Hidden);
        assert_eq!(poses.for_frame(&scene, 1_000 - REACH_MS)[1], ModelPose::Tracked(at(1.0)));
        assert!(RecordedPoses::from_timeline(&[]).for_frame(&scene, 1_000).iter().all(|p| *p == ModelPose::AsScene));
    }
}
