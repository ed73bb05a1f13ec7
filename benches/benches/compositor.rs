//! Cost of the GPU compositor per frame, split by pass, at 720p and 1080p,
//! with a 100 000-triangle model, on whatever adapter `GpuContext` picks
//! (lavapipe on a machine without a GPU), for each pass plan.
//!
//! Run with `cargo bench -p scopecast-benches --bench compositor`
//! (`SCOPECAST_BENCH_HEIGHTS=720` for 720p only, `SCOPECAST_BENCH_PLANS=fused,cpu`
//! for some plans).
//! Per-pass figures submit and wait for each pass on its own (the live path
//! submits a frame at once), so "pipelined" is the figure that matters for
//! throughput. "moving": the model's pose changes every frame (a tracked
//! organ), so the overlay is drawn every frame; "static": the scene stays, and
//! the compositor reuses the overlay it drew (only the video changes).
//! "separate": compose, annotations, strip and I420 as their own passes (a
//! GPU's plan); "fused": one compute pass for them; "cpu": the overlay and
//! annotations drawn by wgpu into one layer when they change, the per-frame
//! work (remap, blend, strip, I420) on one CPU core (`compositor::cpu_frame`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use glam::{Mat4, Vec2, Vec3};
use scopecast_benches::ms;
use scopecast_engine::clock::{FakeClock, NS_PER_S};
use scopecast_engine::compositor::gpu::{AdapterPreference, GpuContext};
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
        if compositor.cpu() {
            "cpu"
        } else if compositor.fused() {
            "fused"
        } else {
            "separate"
        }
    );
    for (name, samples) in &per_pass {
        let (p50, p99) = stats(samples);
        println!("{label:<40} {name:<12} p50 {:>8} ms  p99 {:>8} ms", ms(p50), ms(p99));
    }
    let (p50, p99) = stats(&totals);
    println!("{label:<40} {:<12} p50 {:>8} ms  p99 {:>8} ms", "sum of passes", ms(p50), ms(p99));
    println!("{label:<40} {:<12} {:>8} ms per frame (throughput)", "pipelined", ms(pipelined));
}

/// The plans measured: all, or those `SCOPECAST_BENCH_PLANS` names (`separate,fused,cpu`).
fn plans() -> Vec<PassPlan> {
    let named = std::env::var("SCOPECAST_BENCH_PLANS").unwrap_or_else(|_| "separate,fused,cpu".into());
    [("separate", PassPlan::Separate), ("fused", PassPlan::Fused), ("cpu", PassPlan::Cpu)]
        .into_iter()
        .filter(|(name, _)| named.split(',').any(|n| n.trim() == *name))
        .map(|(_, plan)| plan)
        .collect()
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
        // Separate passes (a GPU's plan), the fused pass and the CPU plan (a software adapter's).
        for passes in plans() {
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
    }
}
