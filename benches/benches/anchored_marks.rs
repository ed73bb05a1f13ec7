//! A mark on the anatomy while the scope moves (issue 19): how far a viewer's
//! mark, drawn on a painted dot of the tracked phantom, lands from that dot
//! in every later frame, and what placing marks costs per frame.
//!
//! The rig is the station's: the synthetic endoscope's tracked phantom (the
//! demo's phantom, lens and hand–eye file), its simulated tracker over a real
//! OpenIGTLink socket (60 Hz, 20 ms + ≤ 2 ms), the station's tracker
//! connection, pose store and chain, `FramePoses` (the pose at each frame's
//! capture time), the frames viewers draw on (`ViewedFrames`, noted per
//! composited frame as the compositor stage does), the telestration board
//! (which lifts the viewer's point in the frame it names) and the GPU
//! compositor (lavapipe here). The hidden phantom surface
//! (`demos/tracked-scope/phantom/surface.obj`) is the registered model.
//!
//! The viewer: in the first frame measured, it finds the dot nearest the
//! picture's centre (the dark centroid in that frame composited without
//! annotations) and puts a pinned 10 px dot there, `anchor = anatomy`,
//! naming that frame's capture time, as the page does. Then, for every frame
//! of the next `SCOPECAST_BENCH_SECONDS` (10) s with the scope circling at
//! 50 mm/s: the error is the mark's (magenta) centroid in the composited
//! frame against the dot's dark centroid in the same frame composited
//! without annotations. Frames are handed to the compositor 40 ms after
//! capture (a camera and capture card's delay).
//!
//! Run with `cargo bench -p scopecast-benches --bench anchored_marks`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use glam::{DVec3, Vec3};
use scopecast_benches::phantom_rig::{Phantom, TrackedRig, centroid, dark, magenta, project};
use scopecast_benches::quantile;
use scopecast_engine::anchoring::models_at;
use scopecast_engine::anchoring::place::Placer;
use scopecast_engine::anchoring::view::FrameView;
use scopecast_engine::anchoring::viewed_frames::{ViewedFrame, ViewedFrames};
use scopecast_engine::clock::{SharedClock, SystemClock};
use scopecast_engine::compositor::annotations::{HiddenMarks, MarkDrawing, instances};
use scopecast_engine::compositor::gpu::{AdapterPreference, GpuContext};
use scopecast_engine::compositor::{Compositor, CompositorSettings};
use scopecast_engine::config::{SyntheticConfig, WhenStale};
use scopecast_engine::frame::Frame;
use scopecast_engine::metrics::MetricsRegistry;
use scopecast_engine::scene::mesh::load_mesh;
use scopecast_engine::scene::{
    Annotation, AnnotationEntry, Calibration, MAX_ANCHORED_POINTS, MarkPoint, MarkShape, Model, ModelStyle, OutputMode,
    Scene, SceneStore,
};
use scopecast_engine::source::FrameSource;
use scopecast_engine::source::phantom::{PathShape, ScopePath};
use scopecast_engine::source::synthetic::{SyntheticEndoscope, synthetic_camera};
use scopecast_engine::stage_status::StageStatus;
use scopecast_engine::telestration::Telestration;
use scopecast_engine::tracking::frame_poses::FramePoses;
use scopecast_engine::tracking::pose_store::Freshness;
use scopecast_transport::fanout::ViewerId;
use scopecast_transport::protocol::{Anchor, Command};

/// From a frame's capture to the compositor, ms.
const VIDEO_DELAY_MS: u64 = 40;
/// Frames composited before the viewer draws (tables and targets built).
const SETTLE_FRAMES: usize = 5;
/// The mark's width, px.
const MARK_WIDTH_PX: f32 = 10.0;
/// How far from the dot the mark is looked for, px.
const MARK_SEARCH_PX: f64 = 120.0;
/// The scope's speed along its circle, mm/s (the issue's).
const SPEED_MM_S: f64 = 50.0;

struct Case {
    errors_px: Vec<f64>,
    frames: usize,
    missed: usize,
    seconds: f64,
}

fn composite(
    compositor: &mut Compositor,
    frame: &Frame,
    scene: &Scene,
    poses: &[scopecast_engine::compositor::ModelPose],
) -> Vec<u8> {
    compositor.keep_rgba_of_next_frame();
    compositor.render_posed(frame, scene, poses).expect("composites");
    compositor.read_rgba().expect("readback")
}

fn run_case(
    phantom: &Phantom,
    ctx: &GpuContext,
    (size, mode): ((u32, u32), OutputMode),
    anchor: Anchor,
    seconds: f64,
) -> Case {
    let (width, height) = size;
    let clock: SharedClock = Arc::new(SystemClock::new());
    let path = ScopePath { speed_mm_s: SPEED_MM_S, radius_mm: 15.0, distance_mm: 90.0, shape: PathShape::Circle };
    let rig = TrackedRig::start(phantom, path, &clock);
    let config = SyntheticConfig { instrument: false, ..Default::default() };
    let camera = synthetic_camera(width, height, &config);
    let mut source = SyntheticEndoscope::new(width, height, 1000, &config, clock.clone()).with_phantom(
        phantom.picture.clone(),
        path,
        0,
    );
    source.start().expect("the synthetic source starts");
    let surface = load_mesh(&scopecast_benches::root().join("demos/tracked-scope/phantom/surface.obj"))
        .expect("the phantom's surface");
    let scene = Scene {
        calibration: Some(Calibration { camera, width, height }),
        output_mode: mode,
        models: vec![Model {
            name: "surface".into(),
            mesh: Arc::new(surface),
            camera_from_model: glam::Mat4::IDENTITY,
            colour: [0.8; 3],
            opacity: 0.3,
            visible: false,
            style: ModelStyle::Wireframe,
        }],
        ..Default::default()
    };
    let store = Arc::new(SceneStore::new(scene).expect("valid scene"));
    let board = Telestration::new(store.clone(), clock.clone(), Duration::from_secs(15));
    let viewed = ViewedFrames::new();
    board.set_viewed_frames(viewed.clone());
    let mut frame_poses = FramePoses::new(
        rig.poses.clone(),
        vec![("surface".into(), phantom.chain())],
        Freshness { stale_after_ns: 200_000_000 },
        0.0,
        WhenStale::Hide,
        Arc::new(StageStatus::new(0)),
        &MetricsRegistry::new(),
    );
    let mut compositor =
        Compositor::new(ctx.clone(), CompositorSettings { timecode: false, msaa_samples: 1, ..Default::default() });
    let circle_px = 0.53 * f64::from(height);
    let centre = [(f64::from(width) - 1.0) / 2.0, (f64::from(height) - 1.0) / 2.0];
    let dot_px = camera.intrinsics.fx * phantom.file.dot_radius_mm / path.distance_mm;
    let mut case = Case { errors_px: Vec::new(), frames: 0, missed: 0, seconds: 0.0 };
    let mut marked: Option<(usize, u64)> = None;
    let mut drawn_at_ns = 0;
    for i in 0.. {
        let frame: Frame = loop {
            if let Some(frame) = source.next_frame(50_000_000).expect("a frame") {
                break frame;
            }
        };
        let capture_ns = frame.capture_time_ns;
        clock.sleep_until_ns(capture_ns + VIDEO_DELAY_MS * 1_000_000);
        let current = store.load();
        let poses = frame_poses.for_frame(&current.scene, capture_ns, frame.capture_wall_ms);
        viewed.note(ViewedFrame {
            capture_wall_ms: frame.capture_wall_ms,
            capture_time_ns: capture_ns,
            view: FrameView::of(&current.scene, size),
            models: models_at(&current.scene, &poses),
        });
        let mut bare = (*current.scene).clone();
        bare.layers.annotations = false;
        let video = composite(&mut compositor, &frame, &bare, &poses);
        if i < SETTLE_FRAMES {
            continue;
        }
        let truth = path.camera_from_phantom(capture_ns);
        let Some((fiducial, _)) = marked else {
            // The viewer draws on the dot nearest the centre, in this frame.
            let nearest = phantom
                .file
                .fiducials_mm
                .iter()
                .enumerate()
                .filter_map(|(k, f)| project(&camera, &truth, *f).map(|p| (k, p)))
                .min_by(|a, b| {
                    let d = |p: [f64; 2]| (p[0] - centre[0]).hypot(p[1] - centre[1]);
                    d(a.1).total_cmp(&d(b.1))
                })
                .expect("a dot in view");
            let seen = centroid(&video, width, height, nearest.1, dot_px * 1.6, dark).expect("the dot is seen");
            let at = [((seen[0] + 0.5) / f64::from(width)) as f32, ((seen[1] + 0.5) / f64::from(height)) as f32];
            let down = Command::PenDown {
                stroke: 1,
                at,
                colour: "#ff00ff".into(),
                width: MARK_WIDTH_PX,
                pinned: true,
                anchor,
                frame_ms: Some(frame.capture_wall_ms),
            };
            board.apply_at(ViewerId(1), &down, clock.now_ns()).expect("the mark is drawn");
            board.apply_at(ViewerId(1), &Command::PenUp { stroke: 1 }, clock.now_ns()).expect("pen up");
            let lifted = store.load().scene.annotations[0].annotation.clone();
            let on_surface = matches!(&lifted, Annotation::Anchored { points, .. } if matches!(points[0], MarkPoint::OnModel { .. }));
            assert_eq!(on_surface, anchor == Anchor::Anatomy, "where the mark stays: {lifted:?}");
            marked = Some((nearest.0, capture_ns));
            drawn_at_ns = capture_ns;
            continue;
        };
        if capture_ns.saturating_sub(drawn_at_ns) as f64 > seconds * 1e9 {
            break;
        }
        case.frames += 1;
        let with_marks = composite(&mut compositor, &frame, &store.load().scene, &poses);
        let Some(expected) = project(&camera, &truth, phantom.file.fiducials_mm[fiducial]) else { continue };
        let expected = match mode {
            OutputMode::Distorted => expected,
            OutputMode::Undistorted => {
                let q = truth.matrix().transform_point3(DVec3::from_array(phantom.file.fiducials_mm[fiducial]));
                camera.pixel_from_normalized(q.x / q.z, q.y / q.z)
            }
        };
        if (expected[0] - centre[0]).hypot(expected[1] - centre[1]) + 3.0 * dot_px > circle_px {
            continue;
        }
        let (Some(dot), Some(mark)) = (
            centroid(&video, width, height, expected, dot_px * 1.6, dark),
            // Wide enough to find a mark that stayed on the screen while the dot moved on.
            centroid(&with_marks, width, height, expected, MARK_SEARCH_PX, magenta),
        ) else {
            case.missed += 1;
            continue;
        };
        case.errors_px.push((mark[0] - dot[0]).hypot(mark[1] - dot[1]));
    }
    case.seconds = seconds;
    rig.stop();
    case
}

/// CPU time to place and shape `marks` anchored strokes of `points` points
/// each on the phantom's surface in one frame (µs, p50 / p99).
fn placing_cost(marks: usize, points: usize) -> (f64, f64) {
    let surface = load_mesh(&scopecast_benches::root().join("demos/tracked-scope/phantom/surface.obj"))
        .expect("the phantom's surface");
    let camera = synthetic_camera(1280, 720, &SyntheticConfig::default());
    let pose = glam::Mat4::from_translation(Vec3::new(0.0, 0.0, 90.0));
    let scene = Scene {
        calibration: Some(Calibration { camera, width: 1280, height: 720 }),
        output_mode: OutputMode::Distorted,
        models: vec![Model {
            name: "surface".into(),
            mesh: Arc::new(surface),
            camera_from_model: pose,
            colour: [0.8; 3],
            opacity: 0.3,
            visible: false,
            style: ModelStyle::Wireframe,
        }],
        ..Default::default()
    };
    let entries: Vec<AnnotationEntry> = (0..marks)
        .map(|m| AnnotationEntry {
            author: "viewer-1".into(),
            time_ns: 0,
            id: m as u64 + 1,
            expires_ns: None,
            annotation: Annotation::Anchored {
                shape: MarkShape::Stroke,
                points: (0..points)
                    .map(|k| MarkPoint::OnModel {
                        model: 0,
                        at_mm: Vec3::new(
                            -40.0 + 80.0 * k as f32 / points as f32,
                            -30.0 + 60.0 * m as f32 / marks as f32,
                            0.0,
                        ),
                    })
                    .collect(),
                colour: [1.0, 0.0, 1.0, 1.0],
                width_px: 6.0,
            },
        })
        .collect();
    let at = models_at(&scene, &[]);
    let drawing = MarkDrawing {
        placer: Placer::new(FrameView::of(&scene, (1280, 720)), &scene.models, &at),
        hidden: HiddenMarks::Dashed,
    };
    let mut times: Vec<f64> = (0..60)
        .map(|_| {
            let start = Instant::now();
            let shapes = instances(&entries, 1280, 720, 0, &drawing);
            assert!(!shapes.is_empty());
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (quantile(&times, 0.5), quantile(&times, 0.99))
}

fn main() {
    let seconds: f64 = std::env::var("SCOPECAST_BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10.0);
    let phantom = Phantom::demo();
    let ctx = GpuContext::new(AdapterPreference::HighPerformance).expect("a GPU adapter (lavapipe here)");
    println!("adapter: {}", ctx.describe());
    println!(
        "a 10 px mark put on the dot nearest the centre, then {seconds} s of the scope circling; video delay {VIDEO_DELAY_MS} ms"
    );
    println!(
        "{:<10} {:<12} {:<8} {:>9} {:>8} {:>8} {:>8} {:>7} {:>7}",
        "size", "mode", "anchor", "speed", "p50 px", "p99 px", "max px", "frames", "missed"
    );
    let cases = [
        ((1280, 720), OutputMode::Distorted, Anchor::Anatomy),
        ((1280, 720), OutputMode::Undistorted, Anchor::Anatomy),
        ((1920, 1080), OutputMode::Distorted, Anchor::Anatomy),
        // What a mark on the screen (version 1's only kind) does meanwhile.
        ((1280, 720), OutputMode::Distorted, Anchor::Screen),
    ];
    for (size, mode, anchor) in cases {
        let mut case = run_case(&phantom, &ctx, (size, mode), anchor, seconds);
        case.errors_px.sort_by(f64::total_cmp);
        println!(
            "{:<10} {:<12} {:<8} {:>4} mm/s {:>8.3} {:>8.3} {:>8.3} {:>7} {:>7}   ({} s, {} dots measured)",
            format!("{}x{}", size.0, size.1),
            format!("{mode:?}"),
            format!("{anchor:?}").to_lowercase(),
            SPEED_MM_S,
            quantile(&case.errors_px, 0.5),
            quantile(&case.errors_px, 0.99),
            case.errors_px.last().copied().unwrap_or(f64::NAN),
            case.frames,
            case.missed,
            case.seconds,
            case.errors_px.len(),
        );
    }
    for (marks, points) in [(1, 50), (20, 100), (40, 200)] {
        let (p50, p99) = placing_cost(marks, points);
        println!(
            "placing {marks} marks of {points} points on the surface (the scene holds at most {MAX_ANCHORED_POINTS}): p50 {p50:.0} µs, p99 {p99:.0} µs per frame"
        );
    }
}
