//! The endurance soak (`benches/src/soak.rs`): the real station at 720p30
//! with recording on, fed by a GStreamer TCP sender that drops out for 10 s
//! every 3 minutes, while webrtc-rs viewers join every 4 s and leave by
//! DELETE or vanish, an annotator draws a stroke every 2 s, a viewer sends
//! garbage and a headless Chromium watches throughout. Prints the samples
//! (RSS, descriptors, threads, encoded fps), their slopes after a 2-minute
//! warm-up, each kind of viewer's longest freeze, the station's exit and the
//! recording's verification. Goal: RSS and descriptors flat (≤ 1 MB/min),
//! no panic, no freeze over 1 s the network did not cause, the recording whole.
//!
//! Needs the release binary (`cargo build --release -p scopecast-engine`;
//! `SCOPECAST_BIN` for another) and the test packages. Run with
//! `cargo bench -p scopecast-benches --bench soak` (30 minutes;
//! `SCOPECAST_SOAK_MINUTES=N`, `SCOPECAST_SOAK_SIZE=WxH` to change).

use std::path::PathBuf;
use std::time::Duration;

use scopecast_benches::root;
use scopecast_benches::soak::{SoakSettings, run};

fn main() {
    let binary = std::env::var_os("SCOPECAST_BIN").map(PathBuf::from).unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
        target.join("release/scopecast")
    });
    assert!(binary.exists(), "{} is missing: cargo build --release -p scopecast-engine", binary.display());
    let minutes: f64 = std::env::var("SCOPECAST_SOAK_MINUTES").ok().and_then(|m| m.parse().ok()).unwrap_or(30.0);
    let (width, height) = std::env::var("SCOPECAST_SOAK_SIZE")
        .ok()
        .and_then(|s| s.split_once('x').and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?))))
        .unwrap_or((1280, 720));
    let settings = SoakSettings {
        binary,
        duration: Duration::from_secs_f64(minutes * 60.0),
        warm_up: Duration::from_secs_f64((minutes * 60.0 / 10.0).clamp(30.0, 120.0)),
        width,
        height,
        fps: 30,
        join_every: Duration::from_secs(4),
        dropout_every: Duration::from_secs(180),
        dropout_for: Duration::from_secs(10),
        sample_every: Duration::from_secs(10),
        chromium: true,
    };
    println!("soak: {minutes} min at {width}x{height}@30, recording on");
    let report = run(&settings);
    print!("{}", report.table());
}
