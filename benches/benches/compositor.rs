//! Cost of the GPU compositor per frame, split by pass, at 720p and 1080p,
//! with a 100 000-triangle model, on whatever adapter `GpuContext` picks
//! (lavapipe on a machine without a GPU), next to a CPU reference of the same
//! pixel work (remap + alpha blend + I420) on this machine's cores.
//!
//! Run with `cargo bench -p scopecast-benches --bench compositor`
//! (`SCOPECAST_BENCH_HEIGHTS=720` for 720p only).
//! Per-pass figures submit and wait for each pass on its own (the live path
//! submits a frame at once), so "pipelined" is the figure that matters for
//! throughput. "moving": the model's pose changes every frame (a tracked
//! organ), so the overlay is drawn every frame; "static": the scene stays, and
//! the compositor reuses the overlay it drew (only the video changes).
//! "separate": compose, annotations, strip and I420 as their own passes (a
//! GPU's plan); "fused": one compute pass for them (a software adapter's).

use std::sync::Arc;
use std::time::{Duration, Instant};

use glam::{Mat4, Vec2, Vec3};
use scopecast_benches::{Timings, ms};
use scopecast_engine::clock::{FakeClock, NS_PER_S};
use scopecast_engine::compositor::gpu::{AdapterPreference, GpuContext};
use scopecast_engine::compositor::remap;
use scopecast_engine::compositor::{Compositor, CompositorSettings, PassPlan};
use scopecast_engine::config::SyntheticConfig;
use scopecast_engine::frame::Frame;
use scopecast_engine::scene::anatomy::ellipsoid;
use scopecast_engine::scene::{Annotation, AnnotationEntry, Calibration, Model, ModelStyle, OutputMode, Scene};
use scopecast_engine::source::FrameSource;
use scopecast_engine::source::synthetic::{SyntheticEndoscope, synthetic_camera};

const ITERATIONS: usize = 40;

fn scene(width: u32, height: u32, mode: OutputMode) -> Scene {
    let camera = synthetic_camera(width, height, &SyntheticConfig::default());
    // 160 rings × 313 segments × 2 = 100 160 triangles.
    let organ = ellipsoid(Vec3::new(40.0, 18.0, 30.0), 160, 313, |t, p| 0.05 * (5.0 * p).sin() * (3.0 * t).sin());
    assert!(organ.triangle_count() >= 100_000);
    Scene {
        calibration: Some(Calibration { camera, width, height }),
        output_mode: mode,
        models: vec![Model {
            name: "organ-100k".into(),
            mesh: Arc::new(organ),
            camera_from_model: Mat4::from_translation(Vec3::new(0.0, 0.0, 90.0)) * Mat4::from_rotation_x(-0.9),
            colour: [0.8, 0.3, 0.25],
            opacity: 0.7,
            visible: true,
            style: ModelStyle::Solid,
        }],
        annotations: vec![AnnotationEntry {
            author: "bench".into(),
            time_ns: 0,
            id: 0,
            expires_ns: None,
            annotation: Annotation::Stroke {
                points: (0..200)
                    .map(|i| Vec2::new(0.2 + 0.003 * i as f32, 0.6 + 0.1 * (i as f32 * 0.1).sin()))
                    .collect(),
                colour: [1.0, 1.0, 0.0, 1.0],
                width_px: 4.0,
            },
        }],
        ..Default::default()
    }
}

fn frame(width: u32, height: u32) -> Frame {
    let clock = Arc::new(FakeClock::new(0, 1_764_158_400_000));
    let mut source = SyntheticEndoscope::new(width, height, 30, &SyntheticConfig::default(), clock);
    source.start().expect("synthetic starts");
    source.next_frame(NS_PER_S).ok().flatten().expect("a frame")
}

fn stats(samples: &[Duration]) -> (Duration, Duration) {
    let mut s = samples.to_vec();
    s.sort_unstable();
    let q = |q: f64| s[((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
    (q(0.5), q(0.99))
}

fn gpu_bench(
    ctx: &GpuContext,
    (width, height): (u32, u32),
    mode: OutputMode,
    msaa_samples: u32,
    i420_input: bool,
    moving: bool,
    passes: PassPlan,
) {
    let still = scene(width, height, mode);
    let mut nudged = still.clone();
    for model in &mut nudged.models {
        model.camera_from_model = Mat4::from_translation(Vec3::new(0.5, 0.0, 0.0)) * model.camera_from_model;
    }
    let scenes = if moving { [still.clone(), nudged] } else { [still.clone(), still] };
    let scene = &scenes[0];
    let frame =
        if i420_input { scopecast_engine::snapshot::i420_from(&frame(width, height)) } else { frame(width, height) };
    let settings = CompositorSettings { msaa_samples, passes, ..Default::default() };
    let mut compositor = Compositor::new(ctx.clone(), settings);
    compositor.render_settled(&frame, scene, Duration::from_secs(120)).expect("renders");
    compositor.drain_i420();
    let mut per_pass: Vec<(&'static str, Vec<Duration>)> = Vec::new();
    let mut totals = Vec::new();
    for i in 0..ITERATIONS {
        let timings = compositor.render_timed(&frame, &scenes[i % 2]).expect("renders");
        compositor.drain_i420();
        let mut total = Duration::ZERO;
        for (name, d) in timings.passes {
            total += d;
            match per_pass.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(d),
                None => per_pass.push((name, vec![d])),
            }
        }
        totals.push(total);
    }
    // Pipelined: submit every frame at once, collect readbacks without waiting,
    // at most two frames on the GPU (as the live stage does).
    let start = Instant::now();
    let mut delivered = 0;
    while delivered < ITERATIONS {
        if compositor.in_flight() < 2 {
            compositor.render(&frame, &scenes[delivered % 2]).expect("renders");
        }
        delivered += compositor.poll_i420().len();
    }
    let pipelined = start.elapsed() / ITERATIONS as u32;
    let label = format!(
        "{height}p {mode:?} x{msaa_samples}{} {} {}",
        if i420_input { " I420in" } else { "" },
        if moving { "moving" } else { "static" },
        if compositor.fused() { "fused" } else { "separate" }
    );
    for (name, samples) in &per_pass {
        let (p50, p99) = stats(samples);
        println!("{label:<40} {name:<12} p50 {:>8} ms  p99 {:>8} ms", ms(p50), ms(p99));
    }
    let (p50, p99) = stats(&totals);
    println!("{label:<40} {:<12} p50 {:>8} ms  p99 {:>8} ms", "sum of passes", ms(p50), ms(p99));
    println!("{label:<40} {:<12} {:>8} ms per frame (throughput)", "pipelined", ms(pipelined));
}

/// The same pixel work on the CPU: bilinear remap of RGBA video, alpha blend
/// of a premultiplied overlay, BT.709 limited-range I420; rows split over all cores.
fn cpu_reference(width: u32, height: u32) {
    let (w, h) = (width as usize, height as usize);
    let camera = synthetic_camera(width, height, &SyntheticConfig::default());
    let table = remap::undistort_video(&camera, width, height);
    let video = frame(width, height);
    let src = video.bytes();
    let overlay: Vec<u8> =
        (0..w * h).flat_map(|i| if i % 7 == 0 { [100u8, 40, 30, 160] } else { [0, 0, 0, 0] }).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = vec![0u8; w * h * 4];
    let mut i420 = vec![0u8; w * h * 3 / 2];
    let timings = Timings::measure(3, ITERATIONS, || {
        let rows_per = h.div_ceil(threads);
        std::thread::scope(|scope| {
            for (chunk_index, chunk) in out.chunks_mut(rows_per * w * 4).enumerate() {
                let (table, overlay) = (&table, &overlay);
                scope.spawn(move || {
                    for (r, row) in chunk.chunks_exact_mut(w * 4).enumerate() {
                        let y = chunk_index * rows_per + r;
                        for x in 0..w {
                            let [u, v] = table.uv[y * w + x];
                            let (fx, fy) = (u * w as f32 - 0.5, v * h as f32 - 0.5);
                            let mut rgb = [0f32; 3];
                            if fx >= 0.0 && fy >= 0.0 && (fx as usize) + 1 < w && (fy as usize) + 1 < h {
                                let (x0, y0) = (fx as usize, fy as usize);
                                let (ax, ay) = (fx - x0 as f32, fy - y0 as f32);
                                for (dy, wy) in [(0, 1.0 - ay), (1, ay)] {
                                    for (dx, wx) in [(0, 1.0 - ax), (1, ax)] {
                                        let p = ((y0 + dy) * w + x0 + dx) * 4;
                                        for c in 0..3 {
                                            rgb[c] += f32::from(src[p + c]) * wx * wy;
                                        }
                                    }
                                }
                            }
                            let o = &overlay[(y * w + x) * 4..][..4];
                            let a = f32::from(o[3]) / 255.0;
                            for c in 0..3 {
                                row[x * 4 + c] = (f32::from(o[c]) + rgb[c] * (1.0 - a)) as u8;
                            }
                            row[x * 4 + 3] = 255;
                        }
                    }
                });
            }
        });
        let (luma, chroma) = i420.split_at_mut(w * h);
        let (u_plane, v_plane) = chroma.split_at_mut(w * h / 4);
        for y in 0..h {
            for x in 0..w {
                let p = &out[(y * w + x) * 4..][..3];
                let l = 0.2126 * f32::from(p[0]) + 0.7152 * f32::from(p[1]) + 0.0722 * f32::from(p[2]);
                luma[y * w + x] = (16.0 + 219.0 * l / 255.0) as u8;
                if y % 2 == 0 && x % 2 == 0 {
                    let (r, b) = (f32::from(p[0]), f32::from(p[2]));
                    u_plane[y / 2 * w / 2 + x / 2] = (128.0 + 224.0 * (b - l) / 255.0 / 1.8556) as u8;
                    v_plane[y / 2 * w / 2 + x / 2] = (128.0 + 224.0 * (r - l) / 255.0 / 1.5748) as u8;
                }
            }
        }
    });
    println!(
        "{:<28} {:<12} p50 {:>8} ms  p99 {:>8} ms  ({threads} threads; remap+blend parallel, I420 on one)",
        format!("{height}p cpu"),
        "reference",
        ms(timings.quantile(0.5)),
        ms(timings.quantile(0.99))
    );
}

fn main() {
    let ctx = match GpuContext::new(AdapterPreference::HighPerformance) {
        Ok(ctx) => ctx,
        Err(e) => panic!("{e}"),
    };
    println!(
        "compositor per frame on {} ({ITERATIONS} frames per case, 100 160-triangle model + 200-point stroke):",
        ctx.describe()
    );
    // `SCOPECAST_BENCH_HEIGHTS=720` runs one size only.
    let heights = std::env::var("SCOPECAST_BENCH_HEIGHTS").unwrap_or_else(|_| "720,1080".into());
    for size in [(1280, 720), (1920, 1080)].into_iter().filter(|s| heights.split(',').any(|h| h == s.1.to_string())) {
        // Separate passes (a GPU's plan) and the fused pass (a software adapter's).
        for passes in [PassPlan::Separate, PassPlan::Fused] {
            for mode in [OutputMode::Undistorted, OutputMode::Distorted] {
                for msaa in [4, 1] {
                    gpu_bench(&ctx, size, mode, msaa, false, true, passes);
                }
            }
            // Cameras and decoders deliver I420: the same work with a third of the upload.
            for msaa in [4, 1] {
                gpu_bench(&ctx, size, OutputMode::Undistorted, msaa, true, true, passes);
            }
            // The scene as the demo station shows it: still anatomy over live video.
            gpu_bench(&ctx, size, OutputMode::Undistorted, 4, false, false, passes);
        }
        cpu_reference(size.0, size.1);
    }
}
