//! The GPU compositor on a software adapter (lavapipe in CI): overlay
//! accuracy against the calibration crate's projection, the timecode strip
//! after RGBA and after I420, golden images per pass, and bad input.
//! A missing GPU adapter is a failure with the package to install.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use glam::{Mat4, Vec2, Vec3};
use scopecast_calibration::{BrownConrady, CameraModel, LensModel, PinholeIntrinsics};
use scopecast_engine::clock::{FakeClock, NS_PER_S};
use scopecast_engine::compositor::gpu::{AdapterPreference, GpuContext};
use scopecast_engine::compositor::projection::camera_for_frame;
use scopecast_engine::compositor::{Compositor, CompositorError, CompositorSettings, PassPlan};
use scopecast_engine::config::SyntheticConfig;
use scopecast_engine::frame::{Frame, FrameBytes, FrameContent, FrameStamp, PixelFormat};
use scopecast_engine::scene::anatomy::{demo_models, ellipsoid};
use scopecast_engine::scene::{Annotation, AnnotationEntry, Calibration, Model, ModelStyle, OutputMode, Scene};
use scopecast_engine::source::FrameSource;
use scopecast_engine::source::synthetic::{SyntheticEndoscope, synthetic_camera};
use scopecast_engine::timecode;

const SETTLE: Duration = Duration::from_secs(60);

fn gpu() -> GpuContext {
    GpuContext::new(AdapterPreference::Software)
        .unwrap_or_else(|e| panic!("{e} (the README's test command installs mesa-vulkan-drivers)"))
}

fn blank_frame(width: u32, height: u32, wall_ms: u64, grey: u8) -> Frame {
    let (planes, len) = PixelFormat::Rgba8.packed_layout(width, height);
    let mut bytes = vec![grey; len];
    for alpha in bytes.iter_mut().skip(3).step_by(4) {
        *alpha = 255;
    }
    let bytes: Arc<dyn FrameBytes> = Arc::new(bytes);
    let stamp = FrameStamp { sequence: 1, capture_time_ns: 0, capture_wall_ms: wall_ms };
    Frame::new(PixelFormat::Rgba8, width, height, planes, bytes, stamp, FrameContent::Live).expect("valid frame")
}

/// A strongly distorted wide lens whose corners are still invertible
/// (r_d(r) = r(1 − 0.28 r² + 0.08 r⁴) is monotonic): ~200 px of barrel at the corners.
fn strong_lens() -> CameraModel {
    CameraModel {
        intrinsics: PinholeIntrinsics { fx: 896.0, fy: 898.0, cx: 641.2, cy: 358.7 },
        lens: LensModel::BrownConrady(BrownConrady { k1: -0.28, k2: 0.08, p1: 0.0007, p2: -0.0004, k3: 0.0 }),
    }
}

/// Intensity-weighted centroid (edge coordinates) of the pixels brighter
/// than the background in a window around `around`.
fn centroid(rgba: &[u8], width: u32, height: u32, around: [f64; 2], radius: i64) -> Option<[f64; 2]> {
    let (mut sum, mut sx, mut sy) = (0.0, 0.0, 0.0);
    for y in (around[1] as i64 - radius)..=(around[1] as i64 + radius) {
        for x in (around[0] as i64 - radius)..=(around[0] as i64 + radius) {
            if x < 0 || y < 0 || x >= i64::from(width) || y >= i64::from(height) {
                continue;
            }
            let at = (y as usize * width as usize + x as usize) * 4;
            let level = f64::from(rgba[at]) + f64::from(rgba[at + 1]) + f64::from(rgba[at + 2]);
            if level > 6.0 {
                sum += level;
                sx += level * (x as f64 + 0.5);
                sy += level * (y as f64 + 0.5);
            }
        }
    }
    (sum > 0.0).then(|| [sx / sum, sy / sum])
}

#[test]
fn fiducials_land_within_half_a_pixel_of_the_calibration_projection() {
    let ctx = gpu();
    let calibrated = strong_lens();
    let mut report = Vec::new();
    for (width, height) in [(1280u32, 720u32), (1920, 1080)] {
        // The calibration is for 1280×720; 1080p frames use the scaled intrinsics.
        let camera = camera_for_frame(&calibrated, (1280, 720), (width, height));
        for mode in [OutputMode::Undistorted, OutputMode::Distorted] {
            // Target pixels on a grid reaching 40 px from every edge and corner.
            let (w, h) = (f64::from(width), f64::from(height));
            let mut targets = Vec::new();
            for fy in [0.0, 0.25, 0.5, 0.75, 1.0] {
                for fx in [0.0, 0.2, 0.4, 0.6, 0.8, 1.0] {
                    targets.push([40.0 + fx * (w - 80.0), 40.0 + fy * (h - 80.0)]);
                }
            }
            let unit_sphere = Arc::new(ellipsoid(Vec3::ONE, 24, 48, |_, _| 0.0));
            let mut models = Vec::new();
            let mut expected = Vec::new();
            for (i, t) in targets.iter().enumerate() {
                let depth_mm = 60.0 + 10.0 * (i % 5) as f64;
                // The ray through the target pixel, in the mode's image.
                let [x, y] = match mode {
                    OutputMode::Distorted => camera.unproject(*t).expect("inside the lens's valid range"),
                    OutputMode::Undistorted => {
                        let k = camera.intrinsics;
                        [(t[0] - k.cx) / k.fx, (t[1] - k.cy) / k.fy]
                    }
                };
                let p = [x * depth_mm, y * depth_mm, depth_mm];
                let projected = match mode {
                    OutputMode::Distorted => camera.project(p).expect("in front"),
                    OutputMode::Undistorted => camera.pixel_from_normalized(x, y),
                };
                expected.push([projected[0] + 0.5, projected[1] + 0.5]);
                // A disc about 4 px in radius.
                let radius_mm = 4.0 * depth_mm / camera.intrinsics.fx;
                models.push(Model {
                    name: format!("fiducial-{i}"),
                    mesh: unit_sphere.clone(),
                    camera_from_model: Mat4::from_translation(Vec3::new(p[0] as f32, p[1] as f32, p[2] as f32))
                        * Mat4::from_scale(Vec3::splat(radius_mm as f32)),
                    colour: [1.0, 1.0, 1.0],
                    opacity: 1.0,
                    visible: true,
                    style: ModelStyle::Solid,
                });
            }
            let scene = Scene {
                calibration: Some(Calibration { camera: calibrated, width: 1280, height: 720 }),
                output_mode: mode,
                models,
                ..Default::default()
            };
            // Whichever passes run: separate (GPUs), fused or the CPU plan (software adapters).
            for passes in [PassPlan::Separate, PassPlan::Fused, PassPlan::Cpu] {
                let settings = CompositorSettings { timecode: false, passes, ..Default::default() };
                let mut compositor = Compositor::new(ctx.clone(), settings);
                let frame = blank_frame(width, height, 0, 0);
                compositor.render_settled(&frame, &scene, SETTLE).expect("renders");
                // One more frame: the CPU plan takes a still layer's frames (the table's arrival moved it).
                compositor.keep_rgba_of_next_frame();
                compositor.render(&frame, &scene).expect("renders");
                assert_eq!(compositor.last_frame_on_cpu(), passes == PassPlan::Cpu);
                let rgba = compositor.read_rgba().expect("readback");
                let errors: Vec<f64> = expected
                    .iter()
                    .map(|e| {
                        let c =
                            centroid(&rgba, width, height, *e, 12).unwrap_or_else(|| panic!("no fiducial near {e:?}"));
                        (c[0] - e[0]).hypot(c[1] - e[1])
                    })
                    .collect();
                let max = errors.iter().copied().fold(0.0, f64::max);
                let mean = errors.iter().sum::<f64>() / errors.len() as f64;
                report.push(format!(
                    "{width}x{height} {mode:?} {passes:?}: max {max:.3} px, mean {mean:.3} px over {} fiducials",
                    errors.len()
                ));
                assert!(max <= 0.5, "{width}x{height} {mode:?} {passes:?}: errors {errors:?}");
            }
        }
    }
    println!("fiducial accuracy:\n{}", report.join("\n"));
}

/// A pose sent by pyigtl (an independent OpenIGTLink peer, as PLUS Server
/// would send it) through the station's tracker connection, pose store and
/// chain moves a fiducial to where the camera model projects it: within
/// 0.5 px on lavapipe. Then the tracker stops and the fiducial is hidden.
#[test]
fn a_pose_from_pyigtl_puts_the_model_where_the_camera_model_projects_it() {
    use scopecast_engine::clock::{SharedClock, SystemClock};
    use scopecast_engine::compositor::ModelPose;
    use scopecast_engine::config::WhenStale;
    use scopecast_engine::metrics::MetricsRegistry;
    use scopecast_engine::shutdown::Shutdown;
    use scopecast_engine::stage_status::StageStatus;
    use scopecast_engine::tracking::chain::{Chain, Link};
    use scopecast_engine::tracking::frame_poses::FramePoses;
    use scopecast_engine::tracking::pose_store::{Freshness, PoseStore};
    use scopecast_engine::tracking::tracker_link::{PoseTime, SharedPoses, TrackerLink, TrackerRole, TrackerSettings};

    let ctx = gpu();
    let (width, height) = (1280u32, 720u32);
    let camera = strong_lens();
    let p_mm = [-18.0f64, 9.5, 75.0];
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let python = std::env::var("SCOPECAST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tracker/pyigtl_tracker.py");
    let mut tracker = std::process::Command::new(&python)
        .args([script, "pose", &port.to_string()])
        .args(p_mm.map(|v| v.to_string()))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} ({e}): the README's test command installs pyigtl"));
    let clock: SharedClock = Arc::new(SystemClock::new());
    let poses: SharedPoses = Arc::new(arc_swap::ArcSwap::from_pointee(PoseStore::new()));
    let shutdown = Shutdown::new();
    let settings = TrackerSettings {
        name: "pyigtl".into(),
        role: TrackerRole::Client(format!("127.0.0.1:{port}")),
        time: PoseTime::Arrival { latency_ns: 0 },
        smoothing: scopecast_engine::tracking::smoothing::Smoothing::Off,
    };
    let link = TrackerLink::start(settings, poses.clone(), clock.clone(), shutdown.clone()).expect("tracker thread");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while link.stats.poses.load(std::sync::atomic::Ordering::Relaxed) < 3 {
        assert!(std::time::Instant::now() < deadline, "no pose from pyigtl");
        std::thread::sleep(Duration::from_millis(20));
    }
    let radius_mm = 4.0 * p_mm[2] / camera.intrinsics.fx;
    let scene = Scene {
        calibration: Some(Calibration { camera, width, height }),
        output_mode: OutputMode::Undistorted,
        models: vec![Model {
            name: "fiducial".into(),
            mesh: Arc::new(ellipsoid(Vec3::splat(radius_mm as f32), 24, 48, |_, _| 0.0)),
            camera_from_model: Mat4::IDENTITY,
            colour: [1.0, 1.0, 1.0],
            opacity: 1.0,
            visible: true,
            style: ModelStyle::Solid,
        }],
        ..Default::default()
    };
    let chain = Chain { links: vec![Link::Tracked { name: "camera_from_fiducial".into(), inverted: false }] };
    let stages = Arc::new(StageStatus::new(0));
    let mut frame_poses = FramePoses::new(
        poses,
        vec![("fiducial".into(), chain)],
        Freshness { stale_after_ns: 200_000_000 },
        0.0,
        WhenStale::Hide,
        stages.clone(),
        &MetricsRegistry::new(),
    );
    let model_poses = frame_poses.for_frame(&scene, clock.now_ns(), 0);
    assert!(matches!(model_poses[0], ModelPose::Tracked(_)), "{model_poses:?}");
    let mut compositor = Compositor::new(ctx, CompositorSettings { timecode: false, ..Default::default() });
    let frame = blank_frame(width, height, 0, 0);
    compositor.render_settled(&frame, &scene, SETTLE).expect("settles");
    compositor.keep_rgba_of_next_frame();
    compositor.render_posed(&frame, &scene, &model_poses).expect("renders");
    let rgba = compositor.read_rgba().expect("readback");
    let projected = camera.pixel_from_normalized(p_mm[0] / p_mm[2], p_mm[1] / p_mm[2]);
    let expected = [projected[0] + 0.5, projected[1] + 0.5];
    let found = centroid(&rgba, width, height, expected, 12).expect("the fiducial is drawn near its projection");
    let error = (found[0] - expected[0]).hypot(found[1] - expected[1]);
    println!("tracked fiducial: expected {expected:?}, drawn at {found:?}, error {error:.3} px");
    assert!(error <= 0.5, "error {error} px");

    // The tracker goes away: 300 ms later the fiducial is hidden and the reason said.
    let _ = tracker.kill();
    let _ = tracker.wait();
    std::thread::sleep(Duration::from_millis(400));
    let model_poses = frame_poses.for_frame(&scene, clock.now_ns(), 0);
    assert_eq!(model_poses[0], ModelPose::Hidden);
    compositor.keep_rgba_of_next_frame();
    compositor.render_posed(&frame, &scene, &model_poses).expect("renders");
    let rgba = compositor.read_rgba().expect("readback");
    assert!(centroid(&rgba, width, height, expected, 12).is_none(), "a stale fiducial is not drawn");
    assert!(stages.failures().iter().any(|(_, text)| text.contains("camera_from_fiducial")), "{:?}", stages.failures());
    shutdown.trigger();
}

#[test]
fn the_timecode_strip_decodes_to_the_capture_time_in_rgba_and_in_i420() {
    let ctx = gpu();
    for (width, height) in [(1280u32, 720u32), (640, 360)] {
        let mut compositor = Compositor::new(ctx.clone(), CompositorSettings::default());
        for wall_ms in [1_764_158_400_123u64, 0xF_FFFF_FFFF, 0x8_0000_0001] {
            // A mid-grey picture with an overlay-free scene; the strip must still be exact.
            let frame = blank_frame(width, height, wall_ms, 128);
            let mut scene = Scene::default();
            scene.annotations.push(AnnotationEntry {
                author: "t".into(),
                time_ns: 0,
                id: 0,
                expires_ns: None,
                annotation: Annotation::Stroke {
                    points: vec![Vec2::new(0.0, 0.99), Vec2::new(0.5, 0.99)],
                    colour: [1.0, 0.0, 0.0, 1.0],
                    width_px: 30.0,
                },
            });
            compositor.keep_rgba_of_next_frame();
            compositor.render(&frame, &scene).expect("renders");
            let rgba = compositor.read_rgba().expect("readback");
            let expected = wall_ms & ((1 << 36) - 1);
            assert_eq!(timecode::decode_rgba(&rgba, width as usize * 4, width, height), Ok(expected));
            // Cells are exact: no blending at their edges.
            let cell = timecode::cell_size_px(height) as usize;
            let row = height as usize - 1;
            for x in 0..cell * 40 {
                let p = &rgba[(row * width as usize + x) * 4..][..3];
                assert!(p == [0, 0, 0] || p == [255, 255, 255], "strip pixel {x} is {p:?}");
            }
            let i420 = compositor.drain_i420();
            let last = i420.last().expect("an I420 frame");
            assert_eq!(last.capture_wall_ms, wall_ms);
            let y_plane = &last.bytes()[last.planes()[0].offset..];
            assert_eq!(timecode::decode_luma(y_plane, last.planes()[0].stride, width, height), Ok(expected));
        }
    }
}

#[test]
fn i420_uses_bt709_limited_range() {
    let ctx = gpu();
    let mut compositor = Compositor::new(ctx, CompositorSettings { timecode: false, ..Default::default() });
    // Pure colours: BT.709 limited-range codes (Y, Cb, Cr) from ITU-R BT.709-6.
    for (rgb, yuv) in
        [([255u8, 255, 255], [235u8, 128, 128]), ([0, 0, 0], [16, 128, 128]), ([255, 0, 0], [63, 102, 240])]
    {
        let (planes, len) = PixelFormat::Rgba8.packed_layout(64, 32);
        let bytes: Vec<u8> = [rgb[0], rgb[1], rgb[2], 255].iter().copied().cycle().take(len).collect();
        let stamp = FrameStamp { sequence: 0, capture_time_ns: 0, capture_wall_ms: 0 };
        let frame =
            Frame::new(PixelFormat::Rgba8, 64, 32, planes, Arc::new(bytes), stamp, FrameContent::Live).expect("frame");
        compositor.render(&frame, &Scene::default()).expect("renders");
        let out = compositor.drain_i420();
        let f = out.last().expect("I420 frame");
        let got = [f.row(0, 5).expect("y")[5], f.row(1, 2).expect("u")[2], f.row(2, 2).expect("v")[2]];
        for (g, e) in got.iter().zip(yuv) {
            assert!((i32::from(*g) - i32::from(e)).abs() <= 1, "{rgb:?}: got {got:?}, expected {yuv:?}");
        }
    }
}

fn synthetic(width: u32, height: u32) -> (Frame, CameraModel) {
    let clock = Arc::new(FakeClock::new(0, 1_764_158_400_000));
    let config = SyntheticConfig::default();
    let mut source = SyntheticEndoscope::new(width, height, 30, &config, clock);
    source.start().expect("starts");
    let frame = source.next_frame(NS_PER_S).expect("renders").expect("frame");
    (frame, synthetic_camera(width, height, &config))
}

/// Compares with a golden PNG: mean absolute difference ≤ 0.5 and 99th
/// percentile ≤ 8 (of 255) per channel. Lavapipe renders the same image on
/// every run of one machine; the tolerance absorbs rasterisation and
/// filtering differences of other LLVM/Mesa versions (a sub-pixel shift of
/// an anti-aliased edge changes a few per cent of edge pixels by up to ~30).
/// `SCOPECAST_BLESS=1` rewrites the goldens.
fn assert_golden(name: &str, rgba: &[u8], width: u32, height: u32) {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "goldens", name].iter().collect();
    if std::env::var_os("SCOPECAST_BLESS").is_some() {
        image::save_buffer(&path, rgba, width, height, image::ExtendedColorType::Rgba8).expect("write golden");
        return;
    }
    let golden = image::open(&path)
        .unwrap_or_else(|e| panic!("golden {} missing ({e}); run with SCOPECAST_BLESS=1", path.display()));
    let golden = golden.to_rgba8();
    assert_eq!(golden.dimensions(), (width, height), "golden {name} size");
    let mut diffs: Vec<u8> = golden.as_raw().iter().zip(rgba).map(|(a, b)| a.abs_diff(*b)).collect();
    let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
    diffs.sort_unstable();
    let p99 = diffs[diffs.len() * 99 / 100];
    println!("golden {name}: mean {mean:.4}, p99 {p99}");
    if mean > 0.5 || p99 > 8 {
        let actual = path.with_extension("actual.png");
        let _ = image::save_buffer(&actual, rgba, width, height, image::ExtendedColorType::Rgba8);
        panic!("{name}: mean abs diff {mean:.3} (≤ 0.5), p99 {p99} (≤ 8); actual image at {}", actual.display());
    }
}

/// The goldens' arrow: yellow, 3 px, from the top right towards the centre.
fn yellow_arrow() -> AnnotationEntry {
    AnnotationEntry {
        author: "dr-b".into(),
        time_ns: 0,
        id: 0,
        expires_ns: None,
        annotation: Annotation::Arrow {
            from: Vec2::new(0.8, 0.15),
            to: Vec2::new(0.6, 0.4),
            colour: [1.0, 1.0, 0.0, 1.0],
            width_px: 3.0,
        },
    }
}

#[test]
fn golden_images_of_each_pass() {
    let ctx = gpu();
    let (width, height) = (640, 360);
    let (frame, camera) = synthetic(width, height);
    let calibration = Some(Calibration { camera, width, height });
    let arrow = yellow_arrow();
    let label = AnnotationEntry {
        author: "dr-b".into(),
        time_ns: 0,
        id: 0,
        expires_ns: None,
        annotation: Annotation::Label {
            at: Vec2::new(0.62, 0.08),
            text: "Margin 5 mm".into(),
            colour: [1.0; 4],
            size_px: 14.0,
        },
    };
    let stroke = AnnotationEntry {
        author: "dr-c".into(),
        time_ns: 0,
        id: 0,
        expires_ns: None,
        annotation: Annotation::Stroke {
            points: (0..40).map(|i| Vec2::new(0.3 + 0.01 * i as f32, 0.7 + 0.05 * (i as f32 * 0.3).sin())).collect(),
            colour: [0.0, 1.0, 1.0, 0.8],
            width_px: 5.0,
        },
    };
    let cases: Vec<(&str, Scene)> = vec![
        ("compose_undistorted.png", Scene { calibration, output_mode: OutputMode::Undistorted, ..Default::default() }),
        (
            "overlay_distorted.png",
            Scene { calibration, output_mode: OutputMode::Distorted, models: demo_models(), ..Default::default() },
        ),
        (
            "overlay_wireframe_undistorted.png",
            Scene {
                calibration,
                output_mode: OutputMode::Undistorted,
                models: demo_models()
                    .into_iter()
                    .map(|mut m| {
                        m.style = ModelStyle::Wireframe;
                        m
                    })
                    .collect(),
                ..Default::default()
            },
        ),
        ("annotations.png", Scene { annotations: vec![arrow, label, stroke], ..Default::default() }),
    ];
    for (name, scene) in cases {
        // The same golden for the separate passes (GPUs) and the fused one
        // (software adapters), and the same I420 for the encoder from both.
        let mut i420 = Vec::new();
        for passes in [PassPlan::Separate, PassPlan::Fused, PassPlan::Cpu] {
            let mut compositor = Compositor::new(ctx.clone(), CompositorSettings { passes, ..Default::default() });
            assert_eq!(compositor.fused(), passes == PassPlan::Fused);
            assert_eq!(compositor.cpu(), passes == PassPlan::Cpu);
            compositor.render_settled(&frame, &scene, SETTLE).expect("renders");
            // Settling fills the readback ring (a full ring skips a frame's readback): empty it,
            // then one more frame whose I420 is surely read.
            compositor.drain_i420();
            compositor.keep_rgba_of_next_frame();
            compositor.render(&frame, &scene).expect("renders");
            // Marks on screen move the layer: the CPU plan hands such frames to the fused pass
            // (`the_cpu_plan_follows_marks…` checks the frame marks appear on).
            let still = scene.annotations.is_empty();
            assert_eq!(compositor.last_frame_on_cpu(), passes == PassPlan::Cpu && still, "{name} {passes:?}");
            let rgba = compositor.read_rgba().expect("readback");
            assert_golden(name, &rgba, width, height);
            let planes = compositor.drain_i420().pop().expect("an I420 frame");
            i420.push(planes);
        }
        for (plan, other) in [("fused", &i420[1]), ("cpu", &i420[2])] {
            let separate = &i420[0];
            let (mut max, mut sum, mut count) = (0u8, 0u64, 0u64);
            for plane in 0..3 {
                let rows = if plane == 0 { height } else { height / 2 };
                for row in 0..rows as usize {
                    let (a, b) = (separate.row(plane, row).expect("row"), other.row(plane, row).expect("row"));
                    for (x, y) in a.iter().zip(b) {
                        max = max.max(x.abs_diff(*y));
                        sum += u64::from(x.abs_diff(*y));
                        count += 1;
                    }
                }
            }
            let mean = sum as f64 / count as f64;
            println!("{name}: I420 {plan} vs separate: mean {mean:.4}, max {max} codes");
            // The fused pass and the CPU plan store the layer in 8 bits before blending it: ≤ 2
            // codes there; the CPU plan's bilinear weights are 1/256 px and its conversion fixed point.
            assert!(max <= 2 && mean <= 0.05, "{name}: {plan} I420 differs from the separate passes' by up to {max}");
        }
    }
}

/// The CPU plan draws marks on the frame they appear on (its layer drawn
/// afresh), hands frames whose layer keeps moving to the fused pass, and
/// comes back once the layer is still, with the marks gone from its layer.
#[test]
fn the_cpu_plan_follows_marks_and_hands_a_moving_layer_to_the_fused_pass() {
    let ctx = gpu();
    let (width, height) = (640, 360);
    let (frame, _) = synthetic(width, height);
    let arrow = yellow_arrow();
    let plain = Scene::default();
    let marked = Scene { annotations: vec![arrow], ..Default::default() };
    let settings = CompositorSettings { passes: PassPlan::Cpu, ..Default::default() };
    let mut compositor = Compositor::new(ctx.clone(), settings);
    let mut reference = Compositor::new(ctx, CompositorSettings { passes: PassPlan::Separate, ..Default::default() });
    let mut expected = |scene: &Scene| {
        reference.keep_rgba_of_next_frame();
        reference.render(&frame, scene).expect("renders");
        reference.read_rgba().expect("readback")
    };
    let (plain_rgba, marked_rgba) = (expected(&plain), expected(&marked));
    let mut step = |scene: &Scene| {
        compositor.keep_rgba_of_next_frame();
        compositor.render(&frame, scene).expect("renders");
        let rgba = compositor.read_rgba().expect("readback");
        compositor.drain_i420();
        (compositor.last_frame_on_cpu(), rgba)
    };
    let near = |a: &[u8], b: &[u8]| a.iter().zip(b).all(|(x, y)| x.abs_diff(*y) <= 1);
    // The first frame's layer is new, so the next one is fused too; still from the third on (CPU).
    assert!(!step(&plain).0, "a new layer moves: the fused pass");
    assert!(!step(&plain).0, "the layer changed on the frame before: the fused pass");
    let (on_cpu, rgba) = step(&plain);
    assert!(on_cpu && near(&rgba, &plain_rgba), "a still layer: the CPU, the same picture");
    // Marks appear: drawn on the CPU that very frame, then fused while they are on screen.
    let (on_cpu, rgba) = step(&marked);
    assert!(on_cpu && near(&rgba, &marked_rgba), "the marks are on the first frame that has them");
    let (on_cpu, rgba) = step(&marked);
    assert!(!on_cpu && near(&rgba, &marked_rgba), "marks on screen: the fused pass");
    // Marks gone: fused until the layer is still again, then the CPU without them.
    let mut frames = 0;
    loop {
        let (on_cpu, rgba) = step(&plain);
        assert!(near(&rgba, &plain_rgba), "frame {frames} after the marks went still shows them");
        frames += 1;
        if on_cpu {
            break;
        }
        assert!(frames < 4, "the CPU plan never came back");
    }
}

#[test]
fn yuv_inputs_compose_like_rgba() {
    let ctx = gpu();
    let mut compositor = Compositor::new(ctx, CompositorSettings { timecode: false, ..Default::default() });
    // A flat BT.709 colour given as I420 and as NV12 composes to the same RGB.
    let (w, h) = (64u32, 32u32);
    let mut outputs = Vec::new();
    for format in [PixelFormat::I420, PixelFormat::Nv12] {
        let (planes, len) = format.packed_layout(w, h);
        let mut bytes = vec![0u8; len];
        let y_len = (w * h) as usize;
        bytes[..y_len].fill(63);
        match format {
            PixelFormat::I420 => {
                let c = y_len / 4;
                bytes[y_len..y_len + c].fill(102);
                bytes[y_len + c..].fill(240);
            }
            _ => {
                for pair in bytes[y_len..].chunks_exact_mut(2) {
                    pair.copy_from_slice(&[102, 240]);
                }
            }
        }
        let stamp = FrameStamp { sequence: 0, capture_time_ns: 0, capture_wall_ms: 0 };
        let frame = Frame::new(format, w, h, planes, Arc::new(bytes), stamp, FrameContent::Live).expect("frame");
        compositor.keep_rgba_of_next_frame();
        compositor.render(&frame, &Scene::default()).expect("renders");
        outputs.push(compositor.read_rgba().expect("readback"));
    }
    assert_eq!(outputs[0], outputs[1]);
    let p = &outputs[0][(16 * w as usize + 30) * 4..][..3];
    assert!(p[0] >= 250 && p[1] <= 6 && p[2] <= 6, "BT.709 (63, 102, 240) is red, got {p:?}");
}

#[test]
fn oversized_frames_are_refused_with_an_error() {
    let ctx = gpu();
    let max = ctx.device.limits().max_texture_dimension_2d;
    let mut compositor = Compositor::new(ctx, CompositorSettings::default());
    let frame = blank_frame(max + 8, 16, 0, 0);
    assert_eq!(
        compositor.render(&frame, &Scene::default()),
        Err(CompositorError::FrameTooLarge { width: max + 8, height: 16, max_side: max })
    );
}

#[test]
fn the_cached_overlay_follows_every_change_of_pose_colour_and_style() {
    let ctx = gpu();
    let (width, height) = (320, 180);
    let (frame, camera) = synthetic(width, height);
    let calibration = Some(Calibration { camera, width, height });
    let base = Scene { calibration, output_mode: OutputMode::Undistorted, models: demo_models(), ..Default::default() };
    let moved = {
        let mut scene = base.clone();
        scene.models[0].camera_from_model =
            Mat4::from_translation(Vec3::new(8.0, 0.0, 0.0)) * scene.models[0].camera_from_model;
        scene
    };
    let recoloured = {
        let mut scene = base.clone();
        scene.models[0].colour = [0.1, 0.9, 0.1];
        scene
    };
    let wireframe = {
        let mut scene = base.clone();
        scene.models[0].style = ModelStyle::Wireframe;
        scene
    };
    // One compositor for every scene, as in the station: each result must equal a fresh compositor's
    // (the CPU plan keeps its layer between frames: it must follow too).
    for passes in [PassPlan::Separate, PassPlan::Fused, PassPlan::Cpu] {
        let settings = CompositorSettings { timecode: false, passes, ..Default::default() };
        let mut shared = Compositor::new(ctx.clone(), settings);
        let mut images = Vec::new();
        for scene in [&base, &moved, &base, &recoloured, &wireframe, &base] {
            shared.render_settled(&frame, scene, SETTLE).expect("renders");
            let cached = shared.read_rgba().expect("readback");
            let mut fresh = Compositor::new(ctx.clone(), settings);
            fresh.render_settled(&frame, scene, SETTLE).expect("renders");
            assert_eq!(cached, fresh.read_rgba().expect("readback"), "{passes:?}: the overlay is stale");
            images.push(cached);
        }
        assert_ne!(images[0], images[1], "{passes:?}: moving a model changes the picture");
        assert_ne!(images[0], images[3], "{passes:?}: recolouring changes the picture");
        assert_ne!(images[0], images[4], "{passes:?}: wireframe changes the picture");
        assert_eq!(images[0], images[2]);
    }
}
