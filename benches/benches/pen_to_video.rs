//! Pen-to-video latency: from a stroke point sent by one headless Chromium
//! viewer (an annotator) over the data channel to the first frame decoded
//! and presented by a second viewer that shows it.
//!
//! The station runs in this process (synthetic endoscope → GPU compositor on
//! whatever adapter wgpu finds → default H.264 encoder → WHEP); both viewer
//! pages run in one Chromium (engine/tests/viewer/draw.mjs), so both
//! timestamps come from one clock: t0 when the annotator's page sends
//! `pen_down`/`pen_move`/`pen_up` for a 16 px green stroke at a fresh spot,
//! t1 when the watcher's `requestVideoFrameCallback` finds that spot green in
//! the presented frame. Each stroke is undone before the next.
//!
//! Needs Chromium and playwright-core (the README's test command installs
//! them). Run with `cargo bench -p scopecast-benches --bench pen_to_video`;
//! `SCOPECAST_PEN_TRIALS` sets the strokes per case (default 40).

use std::process::{Command, Stdio};

use scopecast_benches::{ServedStation, node_modules, quantile, root};
use scopecast_engine::config::Config;
use scopecast_transport::auth::{Role, Token};

const ANNOTATOR: &str = "pen-to-video-annotator-token";
const WATCHER: &str = "pen-to-video-watcher-token";

fn main() {
    let trials: u32 = std::env::var("SCOPECAST_PEN_TRIALS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    println!("pen-to-video, annotator and watcher pages in one headless Chromium, {trials} strokes per case");
    for (width, height, fps) in [(1280u32, 720u32, 30u32), (1280, 720, 60)] {
        let mut config = Config::default();
        config.source.width = width;
        config.source.height = height;
        config.source.fps = fps;
        let tokens = vec![Token::new(ANNOTATOR, Role::Annotator), Token::new(WATCHER, Role::Viewer)];
        let served = ServedStation::start_with_tokens(&config, tokens, 4);
        let origin = format!("http://{}", served.server.local_addr);
        let output = Command::new("node")
            .arg(root().join("engine/tests/viewer/draw.mjs"))
            .args([&origin, ANNOTATOR, WATCHER, &trials.to_string(), "60000"])
            .env("SCOPECAST_NODE_MODULES", node_modules())
            .stderr(Stdio::null())
            .output()
            .expect("node runs");
        let gpu = served.station.gpu.clone().unwrap_or_else(|| "no GPU".into());
        served.stop();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
            .unwrap_or_else(|e| panic!("draw.mjs output unreadable ({e}): {stdout}"));
        let mut latencies: Vec<f64> = report["latencies_ms"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
            .unwrap_or_default();
        latencies.sort_by(f64::total_cmp);
        println!(
            "{height}p{fps} ({gpu}): {} strokes seen, {} missed; pen-to-video p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            latencies.len(),
            report["misses"],
            quantile(&latencies, 0.5),
            quantile(&latencies, 0.99),
            quantile(&latencies, 1.0),
        );
    }
}
