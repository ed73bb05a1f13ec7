//! The scene: everything the compositor draws over the video, as one
//! versioned value. Writers (the operator, tracker poses, viewers'
//! annotations) replace it whole through [`SceneStore`]; the compositor loads
//! the current `Arc<Scene>` once per frame without locking (arc-swap), so no
//! writer can ever block the frame loop.

pub mod anatomy;
pub mod mesh;
pub mod setup;
pub mod surface;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use glam::{Mat4, Vec2, Vec3};
use scopecast_calibration::CameraModel;
use thiserror::Error;

pub use mesh::{Mesh, MeshError};

/// How a model is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelStyle {
    /// Shaded surface (headlight Lambert).
    Solid,
    /// Edges only.
    Wireframe,
    /// Opaque at grazing angles only: the outline of the organ.
    Silhouette,
}

/// One anatomy model placed in the camera frame.
#[derive(Debug, Clone)]
pub struct Model {
    /// Stable name (`liver`, `vessels`, ...), used for layer toggles.
    pub name: String,
    /// The geometry, shared between scene versions.
    pub mesh: Arc<Mesh>,
    /// Model units (mm) to camera frame (mm): the registration result.
    pub camera_from_model: Mat4,
    /// Linear RGB in [0, 1].
    pub colour: [f32; 3],
    /// 0 (invisible) to 1 (opaque).
    pub opacity: f32,
    /// Drawn at all.
    pub visible: bool,
    /// Surface, wireframe or silhouette.
    pub style: ModelStyle,
}

/// A 2D annotation in normalized output-image coordinates: (0, 0) is the
/// top-left corner of the frame, (1, 1) the bottom-right.
#[derive(Debug, Clone, PartialEq)]
pub enum Annotation {
    /// A freehand stroke.
    Stroke {
        /// Points along the stroke.
        points: Vec<Vec2>,
        /// Straight RGBA in [0, 1].
        colour: [f32; 4],
        /// Line width, px of the output frame.
        width_px: f32,
    },
    /// An arrow pointing at `to`.
    Arrow {
        /// Tail.
        from: Vec2,
        /// Head.
        to: Vec2,
        /// Straight RGBA.
        colour: [f32; 4],
        /// Line width, px.
        width_px: f32,
    },
    /// A mark a viewer put on the anatomy: its points stick to a model's
    /// surface (re-projected into every frame with that frame's pose), or,
    /// where no surface was under them, stay on the screen.
    Anchored {
        /// Drawn as a stroke through the points, or an arrow from the first to the second.
        shape: MarkShape,
        /// The points, in drawing order (an arrow: tail, head).
        points: Vec<MarkPoint>,
        /// Straight RGBA.
        colour: [f32; 4],
        /// Line width, px of the output frame.
        width_px: f32,
    },
    /// A short text label with its top-left corner at `at`.
    Label {
        /// Top-left corner.
        at: Vec2,
        /// The text (at most [`MAX_LABEL_CHARS`] characters).
        text: String,
        /// Straight RGBA.
        colour: [f32; 4],
        /// Height of a capital letter, px.
        size_px: f32,
    },
}

/// What an [`Annotation::Anchored`] is drawn as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkShape {
    /// A stroke through the points (one point: a dot, as the laser pointer).
    Stroke,
    /// An arrow from the first point to the second.
    Arrow,
}

/// Where one point of an anchored mark lies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MarkPoint {
    /// On the screen, normalised output coordinates: it stays there while
    /// the scope moves (no surface was under it, or tracking was stale).
    Screen(Vec2),
    /// On the surface of `scene.models[model]`, in the model's coordinates, mm.
    OnModel {
        /// The model's index in [`Scene::models`].
        model: u16,
        /// The point, model coordinates, mm.
        at_mm: Vec3,
    },
}

/// Farthest a point on a model may lie from the model's origin, mm (a
/// metre and more is not anatomy).
pub const MAX_MARK_MM: f32 = 100_000.0;

/// One annotation with who made it and when.
#[derive(Debug, Clone, PartialEq)]
pub struct AnnotationEntry {
    /// Author (viewer name or `operator`).
    pub author: String,
    /// When it was made, ns on the pipeline clock.
    pub time_ns: u64,
    /// The drawing.
    pub annotation: Annotation,
    /// Identifies it for its author's later edits (appending points, undo); 0 when nobody edits it.
    pub id: u64,
    /// When it has faded out, ns on the pipeline clock (it fades over the
    /// [`FADE_OUT_NS`] before); `None`: kept until cleared (pinned).
    pub expires_ns: Option<u64>,
}

/// How long an expiring annotation takes to fade out, ns.
pub const FADE_OUT_NS: u64 = 1_000_000_000;

impl AnnotationEntry {
    /// Opacity factor in [0, 1] at `now_ns`: 1 until [`FADE_OUT_NS`] before
    /// it expires, then linearly down to 0.
    pub fn fade(&self, now_ns: u64) -> f32 {
        match self.expires_ns {
            None => 1.0,
            Some(expires) => (expires.saturating_sub(now_ns) as f64 / FADE_OUT_NS as f64).min(1.0) as f32,
        }
    }
}

/// Layer switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers {
    /// The 3D anatomy overlay.
    pub anatomy: bool,
    /// The 2D annotations.
    pub annotations: bool,
}

impl Default for Layers {
    fn default() -> Self {
        Self { anatomy: true, annotations: true }
    }
}

/// How the video is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputMode {
    /// Lens distortion removed; the overlay drawn with the pinhole projection.
    #[default]
    Undistorted,
    /// The video as captured; the overlay distorted with the same lens model.
    Distorted,
}

/// The calibrated camera and the image size its intrinsics refer to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Intrinsics and lens.
    pub camera: CameraModel,
    /// Width, px, of the images it was calibrated on.
    pub width: u32,
    /// Height, px.
    pub height: u32,
}

/// Everything drawn over one frame.
#[derive(Debug, Clone, Default)]
pub struct Scene {
    /// The camera; without one, no overlay is drawn and the video is shown as is.
    pub calibration: Option<Calibration>,
    /// Undistorted or distorted output.
    pub output_mode: OutputMode,
    /// Anatomy models.
    pub models: Vec<Model>,
    /// Layer switches.
    pub layers: Layers,
    /// Annotations, oldest first.
    pub annotations: Vec<AnnotationEntry>,
}

/// Longest label.
pub const MAX_LABEL_CHARS: usize = 64;
/// Most points in one stroke.
pub const MAX_STROKE_POINTS: usize = 4096;
/// Most annotations in a scene.
pub const MAX_ANNOTATIONS: usize = 1024;
/// Most points of marks on the anatomy in a scene: each is placed and
/// depth-tested by ray cast in every frame (about 0.7 µs each here), so this
/// bounds that work at a few ms a frame whatever viewers send.
pub const MAX_ANCHORED_POINTS: usize = 8192;

/// Why a scene update was refused.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SceneError {
    /// The camera model is unusable.
    #[error("calibration: {0}")]
    Calibration(#[from] scopecast_calibration::CameraError),
    /// A model's pose has NaN or infinite entries.
    #[error("model {name}: pose is not finite")]
    PoseNotFinite {
        /// Model name.
        name: String,
    },
    /// A model's colour or opacity is outside [0, 1].
    #[error("model {name}: colour and opacity must be within 0..=1")]
    ColourOutOfRange {
        /// Model name.
        name: String,
    },
    /// An annotation is malformed.
    #[error("annotation {index}: {reason}")]
    BadAnnotation {
        /// Position in the list.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Too many annotations.
    #[error("{count} annotations exceed the limit of {MAX_ANNOTATIONS}")]
    TooManyAnnotations {
        /// How many were given.
        count: usize,
    },
    /// Too many points of marks on the anatomy.
    #[error("{count} points on the anatomy exceed the limit of {MAX_ANCHORED_POINTS}")]
    TooManyAnchoredPoints {
        /// How many were given.
        count: usize,
    },
}

fn finite_point(p: Vec2) -> bool {
    // Slightly outside the frame is allowed (a stroke leaving the image); far away is not.
    p.is_finite() && p.x.abs() <= 4.0 && p.y.abs() <= 4.0
}

/// Checks one annotation of a scene with `models` models.
fn check_annotation(index: usize, a: &Annotation, models: usize) -> Result<(), SceneError> {
    let bad = |reason| Err(SceneError::BadAnnotation { index, reason });
    let colour_ok = |c: &[f32; 4]| c.iter().all(|v| (0.0..=1.0).contains(v));
    match a {
        Annotation::Stroke { points, colour, width_px } => {
            if points.is_empty() || points.len() > MAX_STROKE_POINTS {
                return bad("a stroke needs 1 to 4096 points");
            }
            if !points.iter().all(|p| finite_point(*p)) {
                return bad("stroke point not finite or far outside the frame");
            }
            if !colour_ok(colour) || !(0.5..=100.0).contains(width_px) {
                return bad("colour outside 0..=1 or width outside 0.5..=100 px");
            }
        }
        Annotation::Arrow { from, to, colour, width_px } => {
            if !finite_point(*from) || !finite_point(*to) {
                return bad("arrow end not finite or far outside the frame");
            }
            if !colour_ok(colour) || !(0.5..=100.0).contains(width_px) {
                return bad("colour outside 0..=1 or width outside 0.5..=100 px");
            }
        }
        Annotation::Anchored { shape, points, colour, width_px } => {
            let count_ok = match shape {
                MarkShape::Stroke => (1..=MAX_STROKE_POINTS).contains(&points.len()),
                MarkShape::Arrow => points.len() == 2,
            };
            if !count_ok {
                return bad("an anchored stroke needs 1 to 4096 points, an arrow 2");
            }
            let point_ok = |p: &MarkPoint| match p {
                MarkPoint::Screen(at) => finite_point(*at),
                MarkPoint::OnModel { model, at_mm } => {
                    usize::from(*model) < models && at_mm.is_finite() && at_mm.abs().max_element() <= MAX_MARK_MM
                }
            };
            if !points.iter().all(point_ok) {
                return bad("mark point not finite, far outside the frame, or on a model the scene lacks");
            }
            if !colour_ok(colour) || !(0.5..=100.0).contains(width_px) {
                return bad("colour outside 0..=1 or width outside 0.5..=100 px");
            }
        }
        Annotation::Label { at, text, colour, size_px } => {
            if !finite_point(*at) || text.chars().count() > MAX_LABEL_CHARS {
                return bad("label position not finite or text longer than 64 characters");
            }
            if !colour_ok(colour) || !(4.0..=200.0).contains(size_px) {
                return bad("colour outside 0..=1 or size outside 4..=200 px");
            }
        }
    }
    Ok(())
}

impl Scene {
    /// Checks every value a writer may get wrong.
    pub fn validate(&self) -> Result<(), SceneError> {
        if let Some(c) = &self.calibration {
            c.camera.validate()?;
        }
        for model in &self.models {
            if !model.camera_from_model.is_finite() {
                return Err(SceneError::PoseNotFinite { name: model.name.clone() });
            }
            let in_range = |v: f32| (0.0..=1.0).contains(&v);
            if !model.colour.iter().all(|c| in_range(*c)) || !in_range(model.opacity) {
                return Err(SceneError::ColourOutOfRange { name: model.name.clone() });
            }
        }
        if self.annotations.len() > MAX_ANNOTATIONS {
            return Err(SceneError::TooManyAnnotations { count: self.annotations.len() });
        }
        for (index, entry) in self.annotations.iter().enumerate() {
            check_annotation(index, &entry.annotation, self.models.len())?;
        }
        let anchored: usize = self
            .annotations
            .iter()
            .map(|e| match &e.annotation {
                Annotation::Anchored { points, .. } => points.len(),
                _ => 0,
            })
            .sum();
        if anchored > MAX_ANCHORED_POINTS {
            return Err(SceneError::TooManyAnchoredPoints { count: anchored });
        }
        Ok(())
    }
}

/// A scene and its version number.
#[derive(Debug, Clone)]
pub struct VersionedScene {
    /// Increases with every accepted update.
    pub version: u64,
    /// The scene.
    pub scene: Arc<Scene>,
}

/// The shared, versioned scene.
#[derive(Debug)]
pub struct SceneStore {
    current: ArcSwap<VersionedScene>,
    version: AtomicU64,
}

impl SceneStore {
    /// A store holding `scene` as version 0 (validated).
    pub fn new(scene: Scene) -> Result<Self, SceneError> {
        scene.validate()?;
        Ok(Self {
            current: ArcSwap::from_pointee(VersionedScene { version: 0, scene: Arc::new(scene) }),
            version: AtomicU64::new(0),
        })
    }

    /// The current scene: a lock-free pointer load, for the frame loop.
    pub fn load(&self) -> Arc<VersionedScene> {
        self.current.load_full()
    }

    /// Replaces the scene with `f(current)` if the result validates; returns
    /// the new version. Concurrent writers are serialised by retrying.
    pub fn update(&self, f: impl Fn(&Scene) -> Scene) -> Result<u64, SceneError> {
        self.edit(|s| {
            *s = f(s);
            Ok::<(), std::convert::Infallible>(())
        })
        .map_err(|e| match e {
            EditError::Invalid(invalid) => invalid,
            EditError::Refused(never) => match never {},
        })
    }

    /// Like [`SceneStore::update`], for edits that can refuse: `change` edits
    /// a copy of the current scene; an `Err` from it (`EditError::Refused`)
    /// or from validation leaves the scene and its version as they were.
    pub fn edit<E>(&self, change: impl Fn(&mut Scene) -> Result<(), E>) -> Result<u64, EditError<E>> {
        let mut outcome = Ok(0);
        self.current.rcu(|current| {
            let mut next = (*current.scene).clone();
            if let Err(e) = change(&mut next) {
                outcome = Err(EditError::Refused(e));
                return current.clone();
            }
            match next.validate() {
                Ok(()) => {
                    let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
                    outcome = Ok(version);
                    Arc::new(VersionedScene { version, scene: Arc::new(next) })
                }
                Err(e) => {
                    outcome = Err(EditError::Invalid(e));
                    current.clone()
                }
            }
        });
        outcome
    }
}

/// Why [`SceneStore::edit`] left the scene alone.
#[derive(Debug, Clone, PartialEq)]
pub enum EditError<E> {
    /// The edit itself refused.
    Refused(E),
    /// The edited scene would be invalid.
    Invalid(SceneError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stroke(points: Vec<Vec2>) -> AnnotationEntry {
        AnnotationEntry {
            author: "dr-a".into(),
            time_ns: 1,
            id: 0,
            expires_ns: None,
            annotation: Annotation::Stroke { points, colour: [1.0, 1.0, 0.0, 1.0], width_px: 4.0 },
        }
    }

    #[test]
    fn updates_replace_the_scene_and_bump_the_version() {
        let store = SceneStore::new(Scene::default()).expect("empty scene is valid");
        let before = store.load();
        let version = store
            .update(|s| {
                let mut next = s.clone();
                next.annotations.push(stroke(vec![Vec2::new(0.1, 0.1), Vec2::new(0.5, 0.5)]));
                next
            })
            .expect("valid update");
        assert_eq!(version, 1);
        assert_eq!(store.load().scene.annotations.len(), 1);
        assert!(before.scene.annotations.is_empty(), "a reader's scene never changes under it");
    }

    #[test]
    fn bad_updates_are_refused_and_the_scene_is_kept() {
        let store = SceneStore::new(Scene::default()).expect("valid");
        let err = store
            .update(|s| {
                let mut next = s.clone();
                next.annotations.push(stroke(vec![Vec2::new(f32::NAN, 0.0)]));
                next
            })
            .expect_err("NaN refused");
        assert!(matches!(err, SceneError::BadAnnotation { index: 0, .. }), "{err}");
        let mesh = Arc::new(Mesh::new(vec![[0.0; 3]; 3], None, vec![0, 1, 2]).expect("triangle"));
        let err = store
            .update(|s| {
                let mut next = s.clone();
                next.models.push(Model {
                    name: "liver".into(),
                    mesh: mesh.clone(),
                    camera_from_model: Mat4::from_cols_array(&[f32::INFINITY; 16]),
                    colour: [1.0; 3],
                    opacity: 1.0,
                    visible: true,
                    style: ModelStyle::Solid,
                });
                next
            })
            .expect_err("infinite pose refused");
        assert_eq!(err, SceneError::PoseNotFinite { name: "liver".into() });
        assert_eq!(store.load().version, 0);
        assert!(store.load().scene.models.is_empty());
    }

    #[test]
    fn marks_on_the_anatomy_name_a_model_the_scene_has_and_their_points_are_bounded() {
        let mesh = Arc::new(
            Mesh::new(vec![[0.0; 3], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], None, vec![0, 1, 2]).expect("triangle"),
        );
        let model = Model {
            name: "surface".into(),
            mesh,
            camera_from_model: Mat4::IDENTITY,
            colour: [1.0; 3],
            opacity: 1.0,
            visible: false,
            style: ModelStyle::Solid,
        };
        let mark = |model: u16, points: usize| AnnotationEntry {
            author: "viewer-1".into(),
            time_ns: 0,
            id: 1,
            expires_ns: None,
            annotation: Annotation::Anchored {
                shape: MarkShape::Stroke,
                points: vec![MarkPoint::OnModel { model, at_mm: Vec3::new(1.0, 2.0, 0.0) }; points],
                colour: [1.0; 4],
                width_px: 4.0,
            },
        };
        let mut scene = Scene { models: vec![model], ..Default::default() };
        scene.annotations = vec![mark(0, MAX_STROKE_POINTS), mark(0, MAX_STROKE_POINTS)];
        scene.validate().expect("two full strokes on the anatomy");
        scene.annotations.push(mark(0, 1));
        assert_eq!(scene.validate(), Err(SceneError::TooManyAnchoredPoints { count: MAX_ANCHORED_POINTS + 1 }));
        scene.annotations = vec![mark(1, 3)];
        assert!(matches!(scene.validate(), Err(SceneError::BadAnnotation { index: 0, .. })), "model 1 does not exist");
    }

    #[test]
    fn many_writers_never_lose_an_update() {
        let store = Arc::new(SceneStore::new(Scene::default()).expect("valid"));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let store = store.clone();
                std::thread::Builder::new()
                    .name(format!("scene-writer-{w}"))
                    .spawn(move || {
                        for _ in 0..100 {
                            store
                                .update(|s| {
                                    let mut next = s.clone();
                                    next.annotations.push(stroke(vec![Vec2::new(0.2, 0.2)]));
                                    next
                                })
                                .expect("valid");
                        }
                    })
                    .expect("spawn")
            })
            .collect();
        for w in writers {
            w.join().expect("writer");
        }
        assert_eq!(store.load().scene.annotations.len(), 400);
    }
}
