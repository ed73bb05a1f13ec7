//! Capture → present latency on the station's own monitor (the local path):
//! from each frame's capture time to the moment `present` returns, p50/p99,
//! at 720p30/60 and 1080p30/60, with the synthetic endoscope, the compositor on the
//! adapter wgpu picks (lavapipe without a GPU) and the default encoder
//! running beside it. Uses $DISPLAY, or starts an Xvfb of its own.
//!
//! Run with `cargo bench -p scopecast-benches --bench display`. With
//! `-- --headless` it opens no window and prints the local path up to the
//! moment the composited frame is ready to be shown (capture → compositor
//! done): for machines whose GPU has no display server to present to (the
//! lent NVIDIA H100, whose Vulkan driver cannot present to an Xvfb).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use scopecast_engine::clock::{SharedClock, SystemClock};
use scopecast_engine::config::Config;
use scopecast_engine::shutdown::Shutdown;
use scopecast_engine::station::Station;

/// (p50, p99) ms of a stage from the station's Prometheus text.
fn stage(metrics: &str, stage: &str) -> (String, String) {
    let find = |q: &str| {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("scopecast_stage_latency_seconds{{stage=\"{stage}\",quantile=\"{q}\"}} "))
            })
            .and_then(|v| v.parse::<f64>().ok())
            .map_or("-".to_string(), |s| format!("{:.1}", s * 1e3))
    };
    (find("0.5"), find("0.99"))
}

fn metric(metrics: &str, name: &str) -> String {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or("-".to_string(), |v| format!("{v:.1}"))
}

/// One case in this process (a winit event loop can be made once per process).
fn run_case(width: u32, height: u32, fps: u32, window: bool) {
    let mut config = Config::default();
    config.source.width = width;
    config.source.height = height;
    config.source.fps = fps;
    config.display.enabled = window;
    // Machines without GStreamer's encoders (the lent GPU) use the built-in one.
    if std::env::var("SCOPECAST_BENCH_ENCODER").is_ok_and(|v| v == "embedded") {
        config.encoder.kind = scopecast_engine::encoder::EncoderKind::Embedded;
    }
    let clock: SharedClock = Arc::new(SystemClock::new());
    let station = Station::start(&config, clock.clone(), Shutdown::new()).expect("the station starts");
    assert_eq!(station.display, window, "the monitor window is open only when asked for");
    std::thread::sleep(Duration::from_secs(10));
    let metrics = station.render_metrics(clock.now_ns());
    station.stop(Duration::from_secs(3));
    let (p50, p99) = stage(&metrics, "display");
    let (c50, c99) = stage(&metrics, "compositor");
    if !window {
        println!(
            "{height}p{fps} (no window): capture → compositor done p50 {c50} / p99 {c99} ms; stream {} fps",
            metric(&metrics, "scopecast_stage_fps{stage=\"encoder\"}"),
        );
        return;
    }
    println!(
        "{height}p{fps}: capture → present p50 {p50} ms, p99 {p99} ms; capture → compositor done p50 {c50} / p99 {c99} ms; \
         monitor {} fps, stream {} fps",
        metric(&metrics, "scopecast_stage_fps{stage=\"display\"}"),
        metric(&metrics, "scopecast_stage_fps{stage=\"encoder\"}"),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--case") {
        let n = |i: usize| args.get(at + i).and_then(|v| v.parse().ok()).unwrap_or(0);
        run_case(n(1), n(2), n(3), !args.iter().any(|a| a == "--headless"));
        return;
    }
    const CASES: [(u32, u32, u32); 4] = [(1280, 720, 30), (1280, 720, 60), (1920, 1080, 30), (1920, 1080, 60)];
    if args.iter().any(|a| a == "--headless") {
        println!("capture → compositor done, no window, 10 s per case:");
        for (width, height, fps) in CASES {
            let _ = Command::new(std::env::current_exe().expect("exe"))
                .args(["--case", &width.to_string(), &height.to_string(), &fps.to_string(), "--headless"])
                .env_remove("DISPLAY")
                .status();
        }
        return;
    }
    let mut xvfb = None;
    let display = match std::env::var("DISPLAY") {
        Ok(display) => display,
        Err(_) => {
            let display = format!(":{}", 500 + std::process::id() % 400);
            let child = Command::new("Xvfb")
                .args([&display, "-screen", "0", "1920x1200x24", "-nolisten", "tcp"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb (apt-get install xvfb), or run with DISPLAY set");
            std::thread::sleep(Duration::from_secs(1));
            xvfb = Some(child);
            display
        }
    };
    println!("capture → present on the station monitor (DISPLAY {display}), 10 s per case:");
    for (width, height, fps) in CASES {
        let _ = Command::new(std::env::current_exe().expect("exe"))
            .args(["--case", &width.to_string(), &height.to_string(), &fps.to_string()])
            .env("DISPLAY", &display)
            .status();
    }
    if let Some(mut child) = xvfb {
        let _ = child.kill();
        let _ = child.wait();
    }
}
