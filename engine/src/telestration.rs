//! Telestration: the viewers' accepted data-channel commands (strokes,
//! arrows, the laser pointer, undo, clear, layer toggles) written into the
//! scene, so the compositor draws them into the video that every viewer, the
//! station's monitor and the recording see.
//!
//! Decisions take the time as an input (`now_ns`, pipeline clock); only the
//! station's command sink (`commands.rs`) and the sweeper thread read the clock. Finished
//! strokes expire `fade_after` after the pen went up (fading out over the
//! last [`FADE_OUT_NS`]) unless pinned; the sweeper removes expired entries
//! four times a second, so the scene stays bounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use std::sync::OnceLock;

use glam::Vec2;
use scopecast_transport::fanout::ViewerId;
use scopecast_transport::protocol::{Anchor, Command, Layer, MarkState, Notice, PROTOCOL_VERSION, Point, parse_colour};
use scopecast_transport::refused::CommandRefused;
use scopecast_transport::room_channels::{Announcer, Topic};

use crate::anchoring::lift::{OffSurface, lift};
use crate::anchoring::marks::mark_states;
use crate::anchoring::viewed_frames::{FrameLookupError, ViewedFrame, ViewedFrames};
use crate::clock::SharedClock;
use crate::scene::{
    Annotation, AnnotationEntry, EditError, FADE_OUT_NS, MAX_STROKE_POINTS, MarkPoint, MarkShape, Scene, SceneError,
    SceneStore,
};
use crate::shutdown::Shutdown;

/// How long the laser pointer stays after its last move, ns.
pub const LASER_NS: u64 = 1_500_000_000;
/// The laser dot: width (px) and colour (straight RGBA).
const LASER_WIDTH_PX: f32 = 14.0;
const LASER_COLOUR: [f32; 4] = [1.0, 0.1, 0.1, 0.9];
/// How often expired annotations are removed.
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// A stroke still being drawn.
#[derive(Debug, Clone, Copy)]
struct OpenStroke {
    entry_id: u64,
    pinned: bool,
    /// Its points go onto the anatomy.
    anchor: Anchor,
}

/// The frame a viewer drew on, or why it is not known.
type DrawnOn = Result<Arc<ViewedFrame>, FrameLookupError>;

/// The viewers' drawings on the scene.
pub struct Telestration {
    scene: Arc<SceneStore>,
    clock: SharedClock,
    fade_after_ns: u64,
    next_id: AtomicU64,
    /// Open strokes by (viewer, the viewer's stroke id).
    open: Mutex<HashMap<(ViewerId, u32), OpenStroke>>,
    /// The frames viewers draw on (set where the station composites: marks
    /// on the anatomy need them).
    viewed: OnceLock<Arc<ViewedFrames>>,
    /// Where every page hears the marks and their modes.
    announcer: OnceLock<Announcer>,
    /// Why points of anatomy marks stayed on the screen, by annotation id
    /// (kept while the mark is in the scene).
    reasons: Mutex<HashMap<u64, String>>,
    /// The marks last announced.
    announced: Mutex<Vec<MarkState>>,
}

fn author(viewer: ViewerId) -> String {
    format!("viewer-{}", viewer.0)
}

fn laser_author(viewer: ViewerId) -> String {
    format!("viewer-{}/laser", viewer.0)
}

fn vec2(p: Point) -> Vec2 {
    Vec2::new(p[0], p[1])
}

fn scene_refusal(e: SceneError) -> CommandRefused {
    let reason = match e {
        SceneError::TooManyAnnotations { .. } | SceneError::TooManyAnchoredPoints { .. } => {
            format!("{e}: clear some first")
        }
        other => other.to_string(),
    };
    CommandRefused::Scene { reason }
}

fn colour_of(colour: &str) -> Result<[f32; 4], CommandRefused> {
    parse_colour(colour).map_err(|_| CommandRefused::BadColour { colour: colour.to_string() })
}

impl Telestration {
    /// Drawings on `scene` that fade `fade_after` after they were finished;
    /// expired ones go when [`Telestration::sweep_until`] runs (the station
    /// gives it a thread of its own, stopped by its [`Shutdown`]).
    pub fn new(scene: Arc<SceneStore>, clock: SharedClock, fade_after: Duration) -> Arc<Self> {
        Arc::new(Self {
            scene,
            clock,
            fade_after_ns: u64::try_from(fade_after.as_nanos()).unwrap_or(u64::MAX).max(FADE_OUT_NS),
            next_id: AtomicU64::new(1),
            open: Mutex::new(HashMap::new()),
            viewed: OnceLock::new(),
            announcer: OnceLock::new(),
            reasons: Mutex::new(HashMap::new()),
            announced: Mutex::new(Vec::new()),
        })
    }

    /// Marks on the anatomy are lifted in the frames of `viewed` (noted by
    /// the compositor stage); without it they stay on the screen and say so.
    pub fn set_viewed_frames(&self, viewed: Arc<ViewedFrames>) {
        let _ = self.viewed.set(viewed);
    }

    /// Every page hears the marks and where each stays through `announcer`.
    pub fn set_announcer(&self, announcer: Announcer) {
        let _ = self.announcer.set(announcer);
        self.announce(true);
    }

    /// Announces the marks when they changed (`counts`: also when only
    /// their numbers of points did; the sweeper does so four times a
    /// second, so a stroke being drawn is not announced per message).
    fn announce(&self, counts: bool) {
        let Some(announcer) = self.announcer.get() else { return };
        let scene = self.scene.load();
        let marks = {
            let mut reasons = self.reasons.lock().unwrap_or_else(PoisonError::into_inner);
            reasons.retain(|id, _| scene.scene.annotations.iter().any(|e| e.id == *id));
            mark_states(&scene.scene, &reasons)
        };
        let mut announced = self.announced.lock().unwrap_or_else(PoisonError::into_inner);
        let modes = |m: &[MarkState]| -> Vec<(u64, Anchor, bool, String)> {
            m.iter().map(|s| (s.id, s.anchor, s.on_screen > 0, s.message.clone())).collect()
        };
        let changed = if counts { *announced != marks } else { modes(&announced) != modes(&marks) };
        if !changed {
            return;
        }
        *announced = marks.clone();
        drop(announced);
        announcer.send_modify(|all| all.set(Topic::Marks, Notice::Marks { v: PROTOCOL_VERSION, marks }));
    }

    /// The frame a viewer drew on (`frame_ms`; the newest when not said).
    fn drawn_on(&self, frame_ms: Option<u64>) -> Option<DrawnOn> {
        Some(self.viewed.get()?.find(frame_ms))
    }

    /// Where the viewer's point `at` stays: on a model's surface in the frame
    /// drawn on, or on the screen (with the reason).
    fn mark_point(&self, at: Point, drawn_on: Option<&DrawnOn>, scene: &Scene) -> (MarkPoint, Option<String>) {
        let screen = MarkPoint::Screen(vec2(at));
        let frame = match drawn_on {
            None => return (screen, Some("this station does not composite: marks stay on the screen".into())),
            Some(Err(e)) => return (screen, Some(OffSurface::from(*e).to_string())),
            Some(Ok(frame)) => frame,
        };
        match lift(vec2(at), frame, &scene.models) {
            Ok(on) => (MarkPoint::OnModel { model: on.model, at_mm: on.at_mm }, None),
            Err(why) => (screen, Some(why.to_string())),
        }
    }

    /// The points `at` as marks (anatomy) with the last reason one stayed on the screen.
    fn mark_points(&self, points: &[Point], frame_ms: Option<u64>) -> (Vec<MarkPoint>, Option<String>) {
        let drawn_on = self.drawn_on(frame_ms);
        let scene = self.scene.load();
        let mut reason = None;
        let marks = points
            .iter()
            .map(|p| {
                let (point, why) = self.mark_point(*p, drawn_on.as_ref(), &scene.scene);
                reason = why.or(reason.take());
                point
            })
            .collect();
        (marks, reason)
    }

    fn note_reason(&self, id: u64, reason: Option<String>) {
        if let Some(reason) = reason {
            self.reasons.lock().unwrap_or_else(PoisonError::into_inner).insert(id, reason);
        }
    }

    /// Removes expired drawings every [`SWEEP_INTERVAL`] until `shutdown`
    /// (seen within [`crate::shutdown::POLL_INTERVAL`]).
    /// First it builds the models' ray-cast hierarchies, so the first mark
    /// on the anatomy does not wait for them.
    pub fn sweep_until(&self, shutdown: &Shutdown) {
        for model in &self.scene.load().scene.models {
            model.mesh.surface();
        }
        let mut next = Instant::now() + SWEEP_INTERVAL;
        while !shutdown.is_triggered() {
            std::thread::sleep(crate::shutdown::POLL_INTERVAL.min(next.saturating_duration_since(Instant::now())));
            if Instant::now() >= next {
                self.sweep(self.clock.now_ns());
                next += SWEEP_INTERVAL;
            }
        }
    }

    fn update(&self, change: impl Fn(&mut Scene) -> Result<(), CommandRefused>) -> Result<(), CommandRefused> {
        self.scene.edit(change).map(|_| ()).map_err(|e| match e {
            EditError::Refused(reason) => reason,
            EditError::Invalid(invalid) => scene_refusal(invalid),
        })
    }

    fn open_strokes(&self) -> std::sync::MutexGuard<'_, HashMap<(ViewerId, u32), OpenStroke>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Carries out `command` from `viewer` at `now_ns`; the error says why not.
    pub fn apply_at(&self, viewer: ViewerId, command: &Command, now_ns: u64) -> Result<(), CommandRefused> {
        let done = self.carry_out(viewer, command, now_ns);
        if done.is_ok() && matches!(command, Command::UndoMine {} | Command::ClearMine {} | Command::ClearAll {}) {
            self.announce(false);
        }
        done
    }

    fn carry_out(&self, viewer: ViewerId, command: &Command, now_ns: u64) -> Result<(), CommandRefused> {
        match command {
            Command::Hello { .. } => Ok(()),
            Command::Record { .. }
            | Command::Pause {}
            | Command::Play {}
            | Command::Seek { .. }
            | Command::Speed { .. }
            | Command::Registration { .. } => Err(CommandRefused::NotDrawing { command: command.name() }),
            Command::PenDown { stroke, at, colour, width, pinned, anchor, frame_ms } => {
                let colour = colour_of(colour)?;
                let entry_id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let annotation = match anchor {
                    Anchor::Screen => Annotation::Stroke { points: vec![vec2(*at)], colour, width_px: *width },
                    Anchor::Anatomy => {
                        let (points, reason) = self.mark_points(&[*at], *frame_ms);
                        self.note_reason(entry_id, reason);
                        Annotation::Anchored { shape: MarkShape::Stroke, points, colour, width_px: *width }
                    }
                };
                let entry = AnnotationEntry {
                    author: author(viewer),
                    time_ns: now_ns,
                    annotation,
                    id: entry_id,
                    expires_ns: None,
                };
                self.update(|s| {
                    s.annotations.push(entry.clone());
                    Ok(())
                })?;
                self.announce(false);
                let open = OpenStroke { entry_id, pinned: *pinned, anchor: *anchor };
                if let Some(previous) = self.open_strokes().insert((viewer, *stroke), open) {
                    // The same id again without pen_up: the old stroke is finished as it is.
                    self.finish(previous, now_ns);
                }
                Ok(())
            }
            Command::PenMove { stroke, points, frame_ms } => {
                let open = self.open_strokes().get(&(viewer, *stroke)).copied();
                let open = open.ok_or(CommandRefused::NoOpenStroke { stroke: *stroke })?;
                let marks = (open.anchor == Anchor::Anatomy).then(|| self.mark_points(points, *frame_ms));
                let grown = self.update(|s| {
                    let entry = s.annotations.iter_mut().find(|e| e.id == open.entry_id).map(|e| &mut e.annotation);
                    let drawn = match entry {
                        Some(Annotation::Stroke { points: drawn, .. }) => drawn.len(),
                        Some(Annotation::Anchored { points: drawn, .. }) => drawn.len(),
                        _ => return Err(CommandRefused::StrokeCleared { stroke: *stroke }),
                    };
                    if drawn + points.len() > MAX_STROKE_POINTS {
                        return Err(CommandRefused::StrokeTooLong { max: MAX_STROKE_POINTS });
                    }
                    match (entry, &marks) {
                        (Some(Annotation::Anchored { points: drawn, .. }), Some((lifted, _))) => {
                            drawn.extend_from_slice(lifted)
                        }
                        (Some(Annotation::Stroke { points: drawn, .. }), _) => {
                            drawn.extend(points.iter().copied().map(vec2))
                        }
                        _ => return Err(CommandRefused::StrokeCleared { stroke: *stroke }),
                    }
                    Ok(())
                });
                if grown.is_ok()
                    && let Some((_, reason)) = marks
                {
                    let changed = reason.is_some();
                    self.note_reason(open.entry_id, reason);
                    if changed {
                        self.announce(false);
                    }
                }
                grown
            }
            Command::PenUp { stroke } => {
                let open = self.open_strokes().remove(&(viewer, *stroke));
                let open = open.ok_or(CommandRefused::NoStrokeToLift { stroke: *stroke })?;
                self.finish(open, now_ns);
                Ok(())
            }
            Command::Arrow { from, to, colour, width, pinned, anchor, frame_ms, tail_frame_ms } => {
                let colour = colour_of(colour)?;
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let annotation = match anchor {
                    Anchor::Screen => Annotation::Arrow { from: vec2(*from), to: vec2(*to), colour, width_px: *width },
                    Anchor::Anatomy => {
                        // Each end in the frame it was put on.
                        let (tail, tail_reason) = self.mark_points(&[*from], tail_frame_ms.or(*frame_ms));
                        let (head, head_reason) = self.mark_points(&[*to], *frame_ms);
                        self.note_reason(id, head_reason.or(tail_reason));
                        let points = [tail, head].concat();
                        Annotation::Anchored { shape: MarkShape::Arrow, points, colour, width_px: *width }
                    }
                };
                let entry = AnnotationEntry {
                    author: author(viewer),
                    time_ns: now_ns,
                    annotation,
                    id,
                    expires_ns: (!pinned).then(|| now_ns.saturating_add(self.fade_after_ns)),
                };
                self.update(|s| {
                    s.annotations.push(entry.clone());
                    Ok(())
                })?;
                self.announce(false);
                Ok(())
            }
            Command::Laser { at, anchor, frame_ms } => {
                let laser = laser_author(viewer);
                // A screen laser is replaced at every move and never edited: id 0.
                let id = if *anchor == Anchor::Anatomy { self.next_id.fetch_add(1, Ordering::Relaxed) } else { 0 };
                let annotation = match anchor {
                    Anchor::Screen => {
                        Annotation::Stroke { points: vec![vec2(*at)], colour: LASER_COLOUR, width_px: LASER_WIDTH_PX }
                    }
                    Anchor::Anatomy => {
                        let (points, reason) = self.mark_points(&[*at], *frame_ms);
                        self.note_reason(id, reason);
                        let (colour, width_px) = (LASER_COLOUR, LASER_WIDTH_PX);
                        Annotation::Anchored { shape: MarkShape::Stroke, points, colour, width_px }
                    }
                };
                let dot = AnnotationEntry {
                    author: laser.clone(),
                    time_ns: now_ns,
                    annotation,
                    id,
                    expires_ns: Some(now_ns.saturating_add(LASER_NS)),
                };
                self.update(|s| {
                    s.annotations.retain(|e| e.author != laser);
                    s.annotations.push(dot.clone());
                    Ok(())
                })
            }
            Command::UndoMine {} => {
                let mine = author(viewer);
                self.update(|s| {
                    let newest = s.annotations.iter().rposition(|e| e.author == mine);
                    let newest = newest.ok_or(CommandRefused::NothingToUndo)?;
                    s.annotations.remove(newest);
                    Ok(())
                })
            }
            Command::ClearMine {} => {
                let (mine, laser) = (author(viewer), laser_author(viewer));
                self.open_strokes().retain(|(v, _), _| *v != viewer);
                self.update(|s| {
                    s.annotations.retain(|e| e.author != mine && e.author != laser);
                    Ok(())
                })
            }
            Command::ClearAll {} => {
                self.open_strokes().clear();
                self.update(|s| {
                    s.annotations.clear();
                    Ok(())
                })
            }
            Command::Layer { layer, visible } => self.update(|s| {
                match layer {
                    Layer::Anatomy => s.layers.anatomy = *visible,
                    Layer::Annotations => s.layers.annotations = *visible,
                    Layer::Model(name) => {
                        let model = s.models.iter_mut().find(|m| &m.name == name);
                        model.ok_or_else(|| CommandRefused::NoSuchModel { name: name.clone() })?.visible = *visible;
                    }
                }
                Ok(())
            }),
        }
    }

    /// Viewer `viewer` left: its open strokes end (and start to fade).
    pub fn left(&self, viewer: ViewerId) {
        let now_ns = self.clock.now_ns();
        let open: Vec<OpenStroke> = {
            let mut strokes = self.open_strokes();
            let mine: Vec<(ViewerId, u32)> = strokes.keys().filter(|(v, _)| *v == viewer).copied().collect();
            mine.iter().filter_map(|k| strokes.remove(k)).collect()
        };
        for stroke in open {
            self.finish(stroke, now_ns);
        }
    }

    /// A finished stroke starts its time to fade (unless pinned).
    fn finish(&self, open: OpenStroke, now_ns: u64) {
        if open.pinned {
            return;
        }
        let expires = now_ns.saturating_add(self.fade_after_ns);
        let _ = self.update(|s| {
            if let Some(entry) = s.annotations.iter_mut().find(|e| e.id == open.entry_id) {
                entry.expires_ns = Some(expires);
            }
            Ok(())
        });
    }

    /// Removes the annotations that have expired by `now_ns`; the scene is
    /// only replaced when something expired.
    /// Then announces the marks if they changed in any way (a stroke being
    /// drawn is announced here, four times a second, rather than per message).
    pub fn sweep(&self, now_ns: u64) {
        let expired = |e: &AnnotationEntry| e.expires_ns.is_some_and(|t| t <= now_ns);
        if self.scene.load().scene.annotations.iter().any(expired) {
            let _ = self.update(|s| {
                s.annotations.retain(|e| !expired(e));
                Ok(())
            });
        }
        self.announce(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn board(fade_after_s: u64) -> (Arc<SceneStore>, Arc<Telestration>) {
        let scene = Arc::new(SceneStore::new(Scene::default()).expect("empty scene"));
        let clock: SharedClock = Arc::new(SystemClock::new());
        let board = Telestration::new(scene.clone(), clock, Duration::from_secs(fade_after_s));
        (scene, board)
    }

    fn pen_down(stroke: u32, pinned: bool) -> Command {
        Command::PenDown {
            stroke,
            at: [0.1, 0.2],
            colour: "#00ff00".into(),
            width: 4.0,
            pinned,
            anchor: Anchor::Screen,
            frame_ms: None,
        }
    }

    #[test]
    fn a_stroke_grows_while_drawn_then_fades_unless_pinned() {
        let (scene, board) = board(10);
        board.apply_at(ViewerId(1), &pen_down(5, false), 1_000).expect("pen down");
        board
            .apply_at(
                ViewerId(1),
                &Command::PenMove { stroke: 5, points: vec![[0.3, 0.4], [0.5, 0.6]], frame_ms: None },
                2_000,
            )
            .expect("move");
        let drawn = scene.load().scene.annotations.clone();
        assert_eq!(drawn.len(), 1);
        assert!(matches!(&drawn[0].annotation, Annotation::Stroke { points, .. } if points.len() == 3));
        assert_eq!(drawn[0].expires_ns, None, "an open stroke does not fade");
        board.apply_at(ViewerId(1), &Command::PenUp { stroke: 5 }, 3_000).expect("pen up");
        assert_eq!(scene.load().scene.annotations[0].expires_ns, Some(3_000 + 10_000_000_000));
        board.apply_at(ViewerId(1), &pen_down(6, true), 4_000).expect("pinned");
        board.apply_at(ViewerId(1), &Command::PenUp { stroke: 6 }, 5_000).expect("pen up");
        board.sweep(3_000 + 10_000_000_000);
        let left = scene.load().scene.annotations.clone();
        assert_eq!(left.len(), 1, "the faded stroke is gone, the pinned one stays");
        assert_eq!(left[0].expires_ns, None);
    }

    #[test]
    fn viewers_undo_and_clear_only_their_own() {
        let (scene, board) = board(10);
        for viewer in [1, 2] {
            board.apply_at(ViewerId(viewer), &pen_down(1, false), 0).expect("down");
            board.apply_at(ViewerId(viewer), &Command::PenUp { stroke: 1 }, 0).expect("up");
        }
        board
            .apply_at(ViewerId(2), &Command::Laser { at: [0.5, 0.5], anchor: Anchor::Screen, frame_ms: None }, 0)
            .expect("laser");
        board.apply_at(ViewerId(1), &Command::UndoMine {}, 0).expect("undo");
        let authors: Vec<String> = scene.load().scene.annotations.iter().map(|e| e.author.clone()).collect();
        assert_eq!(authors, ["viewer-2", "viewer-2/laser"]);
        assert_eq!(board.apply_at(ViewerId(1), &Command::UndoMine {}, 0), Err(CommandRefused::NothingToUndo));
        board.apply_at(ViewerId(2), &Command::ClearMine {}, 0).expect("clear mine");
        assert!(scene.load().scene.annotations.is_empty());
    }

    #[test]
    fn bad_edits_are_refused_and_leave_the_scene_alone() {
        let (scene, board) = board(10);
        let err =
            board.apply_at(ViewerId(1), &Command::PenMove { stroke: 9, points: vec![[0.1, 0.1]], frame_ms: None }, 0);
        assert_eq!(err, Err(CommandRefused::NoOpenStroke { stroke: 9 }));
        board.apply_at(ViewerId(1), &pen_down(1, false), 0).expect("down");
        let long = Command::PenMove { stroke: 1, points: vec![[0.2, 0.2]; 128], frame_ms: None };
        let refused = (0..40).map(|_| board.apply_at(ViewerId(1), &long, 0)).find(Result::is_err);
        assert_eq!(refused, Some(Err(CommandRefused::StrokeTooLong { max: 4096 })));
        let layer = Command::Layer { layer: Layer::Model("spleen".into()), visible: false };
        assert_eq!(board.apply_at(ViewerId(1), &layer, 0), Err(CommandRefused::NoSuchModel { name: "spleen".into() }));
        board.apply_at(ViewerId(1), &Command::Layer { layer: Layer::Anatomy, visible: false }, 0).expect("layer");
        assert!(!scene.load().scene.layers.anatomy);
        // The viewer leaves mid-stroke: the stroke is finished and fades.
        board.left(ViewerId(1));
        assert!(scene.load().scene.annotations[0].expires_ns.is_some());
    }

    #[test]
    fn a_mark_on_the_anatomy_is_lifted_in_the_frame_drawn_on_and_says_where_it_stays() {
        use crate::anchoring::ModelAt;
        use crate::anchoring::view::FrameView;
        use glam::{DVec3, Mat4, Vec3};
        let plane = Mat4::from_translation(Vec3::new(0.0, 0.0, 100.0));
        let moved = Mat4::from_translation(Vec3::new(30.0, 0.0, 100.0));
        let scene = Scene {
            models: vec![crate::anchoring::lift::tests::model("surface", plane)],
            ..crate::anchoring::view::tests::scene(crate::scene::OutputMode::Distorted)
        };
        let view = FrameView::of(&scene, (1280, 720));
        let store = Arc::new(SceneStore::new(scene).expect("valid"));
        let anatomy = Telestration::new(store.clone(), Arc::new(SystemClock::new()), Duration::from_secs(10));
        let frames = ViewedFrames::new();
        anatomy.set_viewed_frames(frames.clone());
        let (announcer, heard) = scopecast_transport::room_channels::announcements();
        anatomy.set_announcer(announcer);
        // The viewer looked at frame 1000 (plane here); the station has composited frame 1033 since (plane moved).
        frames.note(ViewedFrame {
            capture_wall_ms: 1_000,
            capture_time_ns: 1,
            view,
            models: vec![ModelAt::Current(plane)],
        });
        frames.note(ViewedFrame {
            capture_wall_ms: 1_033,
            capture_time_ns: 2,
            view,
            models: vec![ModelAt::Current(moved)],
        });
        let at = view.expect("calibrated").point_of(DVec3::new(10.0, 5.0, 100.0)).expect("in front");
        let down = Command::PenDown {
            stroke: 1,
            at: at.to_array(),
            colour: "#ff00ff".into(),
            width: 8.0,
            pinned: true,
            anchor: Anchor::Anatomy,
            frame_ms: Some(1_000),
        };
        anatomy.apply_at(ViewerId(3), &down, 0).expect("down");
        // A point drawn on a frame the station no longer knows stays on the screen.
        let later = Command::PenMove { stroke: 1, points: vec![[0.5, 0.5]], frame_ms: Some(7) };
        anatomy.apply_at(ViewerId(3), &later, 0).expect("move");
        let annotations = store.load().scene.annotations.clone();
        let Annotation::Anchored { points, .. } = &annotations[0].annotation else { panic!("{annotations:?}") };
        match points[0] {
            MarkPoint::OnModel { model: 0, at_mm } => {
                assert!((at_mm - Vec3::new(10.0, 5.0, 0.0)).length() < 0.01, "lifted with frame 1000's pose: {at_mm}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(points[1], MarkPoint::Screen(Vec2::new(0.5, 0.5)));
        anatomy.sweep(0);
        let marks = match heard.borrow().get(Topic::Marks) {
            Some(Notice::Marks { marks, .. }) => marks.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!((marks[0].by, marks[0].anchor, marks[0].on_anatomy, marks[0].on_screen), (3, Anchor::Anatomy, 1, 1));
        assert!(marks[0].message.contains("not among the last"), "{}", marks[0].message);
        // A station that does not composite: the mark stays on the screen and says so.
        let (bare_scene, bare) = self::board(10);
        bare.apply_at(ViewerId(1), &down, 0).expect("down");
        let kept = bare_scene.load().scene.annotations[0].annotation.clone();
        assert!(matches!(kept, Annotation::Anchored { points, .. } if points == [MarkPoint::Screen(at)]));
        assert!(bare.reasons.lock().expect("reasons").values().any(|r| r.contains("does not composite")));
    }
}
