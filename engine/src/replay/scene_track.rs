//! The recorded scene over time, from the timeline's `scene` records (see
//! `recorder::format::SceneRecord`), put back into a live scene when a replay draws
//! the overlays afresh.
//!
//! What a trainer does during the replay stays on top of what was recorded:
//! - annotations recorded are re-inserted under the author
//!   `recorded:<author>` with id 0 (nobody edits them; their live ids would
//!   collide with the trainer's); the trainer's own (any other author) are kept;
//! - a recorded layer switch or model visibility is applied when the
//!   recording changed it; in between, the trainer's switches stand;
//! - model poses, colours and opacities always follow the recording (the
//!   registration is what it was); a tracked model's pose in each frame is
//!   the one that frame was composited with (the `poses` records, see
//!   `tracking::recorded_poses`), so marks on the anatomy are re-projected
//!   as they were. Models are matched by name:
//!   their meshes come from the replay's config, as on the station, and a
//!   mark's point on a model is moved to that model's place in the replay's
//!   scene (a point on a model the replay lacks is left out).
//!
//! Times: a recorded annotation's `time_ns` and `expires_ns` are on the
//! recording station's clock. Each frame of the replay moves them by the
//! frame's `shift` (replay capture time − recorded capture time), so the
//! compositor fades them exactly as it did live.

use glam::Mat4;

use crate::recorder::format::TimelineRecord;
use crate::scene::{Annotation, AnnotationEntry, MarkPoint, MarkShape, OutputMode, Scene};

/// The author prefix of recorded annotations in a replay's scene.
pub const RECORDED_AUTHOR_PREFIX: &str = "recorded:";

/// A model as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedModel {
    /// Its name in the config.
    pub name: String,
    /// Shown.
    pub visible: bool,
    /// 0 to 1.
    pub opacity: f32,
    /// Linear RGB.
    pub colour: [f32; 3],
    /// Model (mm) to camera (mm).
    pub camera_from_model: Mat4,
}

/// One `scene` record, ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedScene {
    /// Capture time of the first frame that showed it, recording clock, ns.
    pub t_ns: u64,
    /// Layer switches: anatomy, annotations.
    pub layers: (bool, bool),
    /// Undistorted output.
    pub undistorted: bool,
    /// The models.
    pub models: Vec<RecordedModel>,
    /// The annotations, times on the recording clock, authors prefixed
    /// with [`RECORDED_AUTHOR_PREFIX`] and ids 0 (nobody edits them).
    pub annotations: Vec<AnnotationEntry>,
}

/// One `scene` record's payload; `None` when the record is another kind.
pub fn recorded_scene(record: &TimelineRecord) -> Option<RecordedScene> {
    let TimelineRecord::Scene { t_ns, scene, .. } = record else { return None };
    Some(RecordedScene {
        t_ns: *t_ns,
        layers: (scene.layers.anatomy, scene.layers.annotations),
        undistorted: scene.undistorted,
        models: scene
            .models
            .iter()
            .map(|m| RecordedModel {
                name: m.name.clone(),
                visible: m.visible,
                opacity: m.opacity,
                colour: m.colour,
                camera_from_model: m.camera_from_model(),
            })
            .collect(),
        // Nobody edits a recorded annotation (and its live id could collide with the trainer's).
        annotations: scene
            .annotations
            .iter()
            .map(|a| AnnotationEntry { id: 0, ..a.entry(RECORDED_AUTHOR_PREFIX) })
            .collect(),
    })
}

/// The scene records of a timeline, in order.
pub fn scene_track(records: &[TimelineRecord]) -> Vec<RecordedScene> {
    records.iter().filter_map(recorded_scene).collect()
}

/// The record in force at recorded capture time `t_ns` (the last one at or
/// before it), by index.
pub fn in_force(track: &[RecordedScene], t_ns: u64) -> Option<usize> {
    track.partition_point(|s| s.t_ns <= t_ns).checked_sub(1)
}

fn shifted(t_ns: u64, shift_ns: i128) -> u64 {
    (i128::from(t_ns) + shift_ns).clamp(0, i128::from(u64::MAX)) as u64
}

/// Puts `recorded` into `scene` for a frame whose replay capture time is
/// its recorded one + `shift_ns`. `switches`: the record is new since the
/// last frame, so its layer switches and model visibility apply.
pub fn apply(scene: &mut Scene, recorded: &RecordedScene, switches: bool, shift_ns: i128) {
    if switches {
        (scene.layers.anatomy, scene.layers.annotations) = recorded.layers;
        scene.output_mode = if recorded.undistorted { OutputMode::Undistorted } else { OutputMode::Distorted };
    }
    for model in &mut scene.models {
        if let Some(was) = recorded.models.iter().find(|m| m.name == model.name) {
            model.camera_from_model = was.camera_from_model;
            model.colour = was.colour;
            model.opacity = was.opacity;
            if switches {
                model.visible = was.visible;
            }
        }
    }
    scene.annotations.retain(|e| !e.author.starts_with(RECORDED_AUTHOR_PREFIX));
    // A mark's point names a model by its place in the recorded scene: here, by its place in this one.
    let here: Vec<Option<u16>> = recorded
        .models
        .iter()
        .map(|m| scene.models.iter().position(|s| s.name == m.name).and_then(|i| u16::try_from(i).ok()))
        .collect();
    let recorded_annotations = recorded.annotations.iter().filter_map(|e| {
        let annotation = match &e.annotation {
            Annotation::Anchored { shape, points, colour, width_px } => {
                let points: Vec<MarkPoint> = points
                    .iter()
                    .filter_map(|p| match *p {
                        MarkPoint::OnModel { model, at_mm } => {
                            let model = here.get(usize::from(model)).copied().flatten()?;
                            Some(MarkPoint::OnModel { model, at_mm })
                        }
                        screen => Some(screen),
                    })
                    .collect();
                let whole = match shape {
                    MarkShape::Stroke => !points.is_empty(),
                    MarkShape::Arrow => points.len() == 2,
                };
                if !whole {
                    return None;
                }
                Annotation::Anchored { shape: *shape, points, colour: *colour, width_px: *width_px }
            }
            other => other.clone(),
        };
        Some(AnnotationEntry {
            time_ns: shifted(e.time_ns, shift_ns),
            expires_ns: e.expires_ns.map(|t| shifted(t, shift_ns)),
            annotation,
            ..e.clone()
        })
    });
    // Recorded ones first: what the trainer draws lies on top.
    let trainers = std::mem::take(&mut scene.annotations);
    scene.annotations = recorded_annotations.chain(trainers).collect();
}

#[cfg(test)]
mod tests {
    use glam::Vec2;

    use super::*;
    use crate::recorder::format::SceneRecord;
    use crate::scene::Annotation;

    fn entry(author: &str, time_ns: u64, expires_ns: Option<u64>) -> AnnotationEntry {
        AnnotationEntry {
            author: author.into(),
            time_ns,
            annotation: Annotation::Arrow {
                from: Vec2::new(0.1, 0.2),
                to: Vec2::new(0.5, 0.5),
                colour: [1.0, 0.0, 0.0, 1.0],
                width_px: 6.0,
            },
            id: 3,
            expires_ns,
        }
    }

    #[test]
    fn a_recorded_scene_comes_back_with_its_times_moved_and_the_trainers_drawings_kept() {
        let mut live = Scene::default();
        live.layers.anatomy = false;
        live.annotations.push(entry("viewer 1", 1_000, Some(9_000)));
        live.annotations.push(AnnotationEntry {
            annotation: Annotation::Label {
                at: Vec2::new(0.3, 0.3),
                text: "portal vein".into(),
                colour: [0.0, 1.0, 0.0, 1.0],
                size_px: 12.0,
            },
            ..entry("viewer 2", 2_000, None)
        });
        let record = TimelineRecord::Scene { t_ns: 500, wall_ms: 0, version: 1, scene: SceneRecord::from(&live) };
        // Through the file's JSON, as a replay reads it.
        let record = TimelineRecord::from_json(serde_json::from_str(&record.to_json()).expect("JSON"));
        let recorded = recorded_scene(&record).expect("a scene record");
        assert_eq!(recorded.t_ns, 500);
        assert_eq!(recorded.layers, (false, true));
        assert_eq!(recorded.annotations.len(), 2);
        assert_eq!(recorded.annotations[1].author, "recorded:viewer 2");

        let mut replay = Scene::default();
        replay.annotations.push(entry("viewer 7", 77, None));
        apply(&mut replay, &recorded, true, 10_000);
        assert!(!replay.layers.anatomy, "the recorded switch applies when the record is new");
        let authors: Vec<&str> = replay.annotations.iter().map(|e| e.author.as_str()).collect();
        assert_eq!(authors, ["recorded:viewer 1", "recorded:viewer 2", "viewer 7"]);
        assert_eq!((replay.annotations[0].time_ns, replay.annotations[0].expires_ns), (11_000, Some(19_000)));

        replay.layers.anatomy = true;
        apply(&mut replay, &recorded, false, 20_000);
        assert!(replay.layers.anatomy, "the trainer's switch stands until the recording changes it");
        assert_eq!(replay.annotations.len(), 3, "recorded ones replaced, not doubled");
        assert_eq!(replay.annotations[0].time_ns, 21_000);
    }

    #[test]
    fn damaged_records_are_skipped_and_the_record_in_force_is_found() {
        let damaged =
            TimelineRecord::from_json(serde_json::json!({ "kind": "scene", "t_ns": 1, "scene": { "layers": 5 } }));
        assert_eq!(recorded_scene(&damaged), None);
        assert_eq!(recorded_scene(&TimelineRecord::Gap { t_ns: 1, reason: "queue full".into() }), None);
        let at = |t_ns| RecordedScene {
            t_ns,
            layers: (true, true),
            undistorted: true,
            models: Vec::new(),
            annotations: Vec::new(),
        };
        let track = vec![at(100), at(200), at(300)];
        assert_eq!(in_force(&track, 50), None);
        assert_eq!(in_force(&track, 200), Some(1));
        assert_eq!(in_force(&track, 250), Some(1));
        assert_eq!(in_force(&track, 9_999), Some(2));
    }
}
