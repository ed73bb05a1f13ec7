//! Accuracy of the tracked overlay while the scope moves, and pose-to-pixel
//! latency: the synthetic endoscope's tracked phantom (the demo's phantom
//! file, lens and hand–eye file), its simulated tracker over a real
//! OpenIGTLink socket (60 Hz, 20 ms latency, up to 2 ms jitter, no noise), the
//! station's tracker connection, pose store and chain, and the GPU compositor
//! (lavapipe here) in the distorted output mode (the demo's;
//! `SCOPECAST_BENCH_MODE=undistorted` for the other).
//!
//! Per frame: the frame is captured (the phantom rendered at its capture
//! time), handed to the compositor `VIDEO_DELAY_MS` later (a camera and
//! capture card's delay), composited with the poses the station picks for it,
//! and read back. Error per fiducial: the centroid of the overlay's green disc
//! (the dot's size) in the composited frame against the centroid of the black dot in the same
//! frame composited without the overlay, for every dot fully inside the
//! image circle. "aligned":
//! the pose at the frame's capture time (`time_alignment = "capture_time"`);
//! "newest": the newest pose received (`"newest"`). The floor line is the
//! dot detector against the dots' true projections (what the measurement
//! itself costs).
//!
//! Pose-to-pixel latency: the station's own `scopecast_pose_to_pixel_seconds`
//! (a pose's arrival to the end of the readback of the first frame composited
//! with it: the sample after the frame's time when interpolating, the newest
//! otherwise), p50 / p99 per case. Here a frame waits `VIDEO_DELAY_MS` after
//! its capture, then is composited and read back on lavapipe.
//!
//! Run with `cargo bench -p scopecast-benches --bench tracked_overlay`
//! (`SCOPECAST_BENCH_FRAMES` frames per case, 40 by default).

use std::path::Path;
use std::sync::Arc;

use glam::DVec3;
use scopecast_benches::phantom_rig::{
    JITTER_MS, Phantom, TRACKER_LATENCY_MS, TrackedRig, centroid, dark, green, project,
};
use scopecast_benches::quantile;
use scopecast_engine::clock::{SharedClock, SystemClock};
use scopecast_engine::compositor::gpu::{AdapterPreference, GpuContext};
use scopecast_engine::compositor::{Compositor, CompositorSettings, ModelPose};
use scopecast_engine::config::{SyntheticConfig, WhenStale};
use scopecast_engine::frame::Frame;
use scopecast_engine::metrics::MetricsRegistry;
use scopecast_engine::scene::mesh::{Mesh, parse_obj};
use scopecast_engine::scene::{Calibration, Model, ModelStyle, OutputMode, Scene};
use scopecast_engine::source::FrameSource;
use scopecast_engine::source::phantom::{PathShape, PhantomFile, ScopePath};
use scopecast_engine::source::synthetic::{SyntheticEndoscope, synthetic_camera};
use scopecast_engine::stage_status::StageStatus;
use scopecast_engine::tracking::frame_poses::FramePoses;
use scopecast_engine::tracking::pose_store::{Alignment, Freshness};

/// From a frame's capture to the compositor, ms (camera and capture card).
const VIDEO_DELAY_MS: u64 = 40;
/// Frames composited before measuring (the compositor builds its tables and targets).
const SETTLE_FRAMES: usize = 5;

struct Setup {
    phantom: Phantom,
    discs: Arc<Mesh>,
}

/// The overlay's fiducials: a disc of each dot's radius on the surface
/// (64-gons). Equal shapes under the same lens and perspective: their
/// centroids' bias cancels (a ring's would not: barrel distortion pulls a
/// wider shape's centroid further towards the centre).
fn discs(file: &PhantomFile) -> Mesh {
    let mut obj = String::new();
    let mut first = 1;
    for f in &file.fiducials_mm {
        obj.push_str(&format!("v {} {} 0\n", f[0], f[1]));
        for k in 0..64 {
            let a = std::f64::consts::TAU * f64::from(k) / 64.0;
            let (x, y) = (f[0] + file.dot_radius_mm * a.cos(), f[1] + file.dot_radius_mm * a.sin());
            obj.push_str(&format!("v {x} {y} 0\n"));
        }
        for k in 0..64 {
            obj.push_str(&format!("f {first} {} {}\n", first + 1 + k, first + 1 + (k + 1) % 64));
        }
        first += 65;
    }
    parse_obj(obj.as_bytes(), Path::new("discs.obj")).expect("the fiducial discs")
}

struct Case {
    errors_px: Vec<f64>,
    floor_px: Vec<f64>,
    missed: usize,
    /// p50 and p99 of `scopecast_pose_to_pixel_seconds` over the case, ms.
    pose_to_pixel_ms: [f64; 2],
}

fn run_case(
    setup: &Setup,
    ctx: &GpuContext,
    (size, mode): ((u32, u32), OutputMode),
    speed_mm_s: f64,
    alignment: Alignment,
    frames: usize,
) -> Case {
    let (width, height) = size;
    let clock: SharedClock = Arc::new(SystemClock::new());
    let path = ScopePath { speed_mm_s, radius_mm: 15.0, distance_mm: 90.0, shape: PathShape::Circle };
    let rig = TrackedRig::start(&setup.phantom, path, &clock);
    let config = SyntheticConfig { instrument: false, ..Default::default() };
    let camera = synthetic_camera(width, height, &config);
    let mut source = SyntheticEndoscope::new(width, height, 1000, &config, clock.clone()).with_phantom(
        setup.phantom.picture.clone(),
        path,
        0,
    );
    source.start().expect("the synthetic source starts");
    let scene = Scene {
        calibration: Some(Calibration { camera, width, height }),
        output_mode: mode,
        models: vec![Model {
            name: "fiducials".into(),
            mesh: setup.discs.clone(),
            camera_from_model: glam::Mat4::IDENTITY,
            colour: [0.1, 1.0, 0.2],
            opacity: 1.0,
            visible: true,
            style: ModelStyle::Solid,
        }],
        ..Default::default()
    };
    let mut frame_poses = FramePoses::new(
        rig.poses.clone(),
        vec![("fiducials".into(), setup.phantom.chain())],
        Freshness { stale_after_ns: 200_000_000 },
        0.0,
        WhenStale::Hide,
        Arc::new(StageStatus::new(0)),
        &MetricsRegistry::new(),
    )
    .with_alignment(alignment);
    let msaa_samples = std::env::var("SCOPECAST_BENCH_MSAA").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let mut compositor =
        Compositor::new(ctx.clone(), CompositorSettings { timecode: false, msaa_samples, ..Default::default() });
    let f = camera.intrinsics.fx;
    let ring_px = f * setup.phantom.file.ring_radius_mm / path.distance_mm;
    let circle_px = 0.53 * f64::from(height);
    let centre = [(f64::from(width) - 1.0) / 2.0, (f64::from(height) - 1.0) / 2.0];
    let mut case = Case { errors_px: Vec::new(), floor_px: Vec::new(), missed: 0, pose_to_pixel_ms: [f64::NAN; 2] };
    let mut pose_to_pixel_before = frame_poses.pose_to_pixel().snapshot();
    for i in 0..frames + SETTLE_FRAMES {
        let frame: Frame = loop {
            if let Some(frame) = source.next_frame(50_000_000).expect("a frame") {
                break frame;
            }
        };
        let capture_ns = frame.capture_time_ns;
        clock.sleep_until_ns(capture_ns + VIDEO_DELAY_MS * 1_000_000);
        let model_poses = frame_poses.for_frame(&scene, capture_ns, frame.capture_wall_ms);
        compositor.keep_rgba_of_next_frame();
        compositor.render_posed(&frame, &scene, &model_poses).expect("composites");
        let rgba = compositor.read_rgba().expect("readback");
        frame_poses.composited(capture_ns, clock.now_ns());
        if i < SETTLE_FRAMES {
            // The compositor's first frames build its tables.
            pose_to_pixel_before = frame_poses.pose_to_pixel().snapshot();
            continue;
        }
        // The same frame without the overlay: where the dots are in the output's video.
        compositor.keep_rgba_of_next_frame();
        compositor.render_posed(&frame, &scene, &[ModelPose::Hidden]).expect("composites");
        let video = compositor.read_rgba().expect("readback");
        if !matches!(model_poses[0], ModelPose::Tracked(_)) {
            eprintln!("frame {i}: the fiducials are not tracked: {:?}", model_poses[0]);
            case.missed += 1;
            continue;
        }
        let truth_pose = path.camera_from_phantom(capture_ns);
        for fiducial in &setup.phantom.file.fiducials_mm {
            let Some(expected) = project(&camera, &truth_pose, *fiducial) else { continue };
            // Where the dot is in the output: as captured, or with the lens' distortion removed.
            let (expected, truth) = match mode {
                OutputMode::Distorted => (expected, expected),
                OutputMode::Undistorted => {
                    let q = truth_pose.matrix().transform_point3(DVec3::from_array(*fiducial));
                    let ideal = camera.pixel_from_normalized(q.x / q.z, q.y / q.z);
                    (ideal, ideal)
                }
            };
            let off_centre = (expected[0] - centre[0]).hypot(expected[1] - centre[1]);
            let inside = off_centre + 1.5 * ring_px < circle_px
                && expected[1] > 1.5 * ring_px
                && expected[1] < f64::from(height) - 1.5 * ring_px;
            if !inside {
                continue;
            }
            let window = ring_px * 0.8;
            let Some(dot) = centroid(&video, width, height, expected, window, dark) else { continue };
            let Some(ring) = centroid(&rgba, width, height, expected, ring_px * 1.2, green) else {
                eprintln!("frame {i}: no fiducial drawn near the dot at {expected:?}");
                case.missed += 1;
                continue;
            };
            case.errors_px.push((ring[0] - dot[0]).hypot(ring[1] - dot[1]));
            if std::env::var_os("SCOPECAST_BENCH_DEBUG").is_some() {
                eprintln!(
                    "offset {:.3} {:.3} at {:.1} {:.1}",
                    ring[0] - dot[0],
                    ring[1] - dot[1],
                    dot[0] - centre[0],
                    dot[1] - centre[1]
                );
            }
            case.floor_px.push((dot[0] - truth[0]).hypot(dot[1] - truth[1]));
        }
    }
    let pose_to_pixel = frame_poses.pose_to_pixel().snapshot().since(&pose_to_pixel_before);
    case.pose_to_pixel_ms = [0.5, 0.99].map(|q| pose_to_pixel.quantile_ns(q).unwrap_or(f64::NAN) / 1e6);
    rig.stop();
    case
}

fn main() {
    let frames: usize = std::env::var("SCOPECAST_BENCH_FRAMES").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let phantom = Phantom::demo();
    let discs = Arc::new(discs(&phantom.file));
    let setup = Setup { phantom, discs };
    let ctx = GpuContext::new(AdapterPreference::HighPerformance).expect("a GPU adapter (lavapipe here)");
    println!("adapter: {}", ctx.describe());
    println!(
        "tracker 60 Hz, latency {TRACKER_LATENCY_MS} ms + up to {JITTER_MS} ms jitter, no noise; video delay {VIDEO_DELAY_MS} ms; {frames} frames per case"
    );
    let mode = match std::env::var("SCOPECAST_BENCH_MODE").as_deref() {
        Ok("undistorted") => OutputMode::Undistorted,
        _ => OutputMode::Distorted,
    };
    println!("output mode {mode:?} (SCOPECAST_BENCH_MODE=undistorted|distorted)");
    println!(
        "{:<10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>17}",
        "size", "speed", "pose", "p50 px", "p99 px", "max px", "dots", "missed", "pose-to-pixel ms"
    );
    let mut floor = Vec::new();
    for size in [(1280u32, 720u32), (1920, 1080)] {
        for speed in [20.0, 50.0, 100.0] {
            for alignment in [Alignment::CaptureTime, Alignment::Newest] {
                let mut case = run_case(&setup, &ctx, (size, mode), speed, alignment, frames);
                case.errors_px.sort_by(f64::total_cmp);
                let name = match alignment {
                    Alignment::CaptureTime => "aligned",
                    Alignment::Newest => "newest",
                };
                println!(
                    "{:<10} {:>5} mm/s {:>8} {:>8.3} {:>8.3} {:>8.3} {:>7} {:>7} {:>7.1} / {:>6.1}",
                    format!("{}x{}", size.0, size.1),
                    speed,
                    name,
                    quantile(&case.errors_px, 0.5),
                    quantile(&case.errors_px, 0.99),
                    case.errors_px.last().copied().unwrap_or(f64::NAN),
                    case.errors_px.len(),
                    case.missed,
                    case.pose_to_pixel_ms[0],
                    case.pose_to_pixel_ms[1],
                );
                floor.extend(case.floor_px);
            }
        }
    }
    floor.sort_by(f64::total_cmp);
    println!(
        "floor (dot detector vs the dots' true projections): p50 {:.3} px, p99 {:.3} px over {} dots",
        quantile(&floor, 0.5),
        quantile(&floor, 0.99),
        floor.len()
    );
}
