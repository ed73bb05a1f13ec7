//! The demo station's memory over minutes: starts the real `scopecast demo`
//! binary (headless, synthetic endoscope → GPU compositor → H.264 → WHEP on a
//! free loopback port) with `--stop-after SCOPECAST_MEMORY_SECONDS` (default
//! 180 s, or a number given after `--`), samples its resident size (`VmRSS` in
//! /proc/PID/status) every 5 s, leaves out the first 30 s (allocators,
//! encoder and GPU driver warming up), and prints the renderer the station
//! reports, the samples, the resident size at the start and end of the
//! measured window and the least-squares slope in MB/min, then a verdict:
//! flat when |slope| < 5 MB/min. A station runs for hours: 5 MB/min is
//! 300 MB an hour, which no ward machine shrugs off; a leak of the size of
//! Mesa 22's lavapipe (about 420 kB per frame, `compositor_memory.rs`) shows
//! as hundreds of MB/min.
//!
//! Needs the release binary: `cargo build --release -p scopecast-engine`
//! (`SCOPECAST_BIN` to use another). Run with
//! `cargo bench -p scopecast-benches --bench demo_memory` (or
//! `SCOPECAST_MEMORY_SECONDS=600 cargo bench ... -- ` for a longer run).

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scopecast_benches::root;

/// Seconds between samples.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Seconds left out at the start.
const WARM_UP_S: f64 = 30.0;
/// Below this |slope|, MB/min, memory is called flat.
const FLAT_MB_PER_MIN: f64 = 5.0;

/// The release `scopecast` binary (`SCOPECAST_BIN` to use another).
fn scopecast() -> PathBuf {
    let path = std::env::var_os("SCOPECAST_BIN").map(PathBuf::from).unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
        target.join("release/scopecast")
    });
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --release -p scopecast-engine` (or set SCOPECAST_BIN)",
        path.display()
    );
    path
}

/// The demo's run time, s, from `SCOPECAST_MEMORY_SECONDS`, else the first number
/// among the arguments (cargo passes `--bench` before them), else 180.
fn duration_s() -> f64 {
    std::env::var("SCOPECAST_MEMORY_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .or_else(|| std::env::args().skip(1).find_map(|a| a.parse::<f64>().ok()))
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(180.0)
}

/// `VmRSS` of process `pid`, kB; `None` once it has gone.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Least-squares slope of `y` over `x`; NaN with fewer than two distinct x.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mean_x, mean_y) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxy: f64 = points.iter().map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
    let sxx: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    if sxx > 0.0 { sxy / sxx } else { f64::NAN }
}

/// Lines of the station worth passing through: the adapter it composites on
/// and what it says about a software renderer.
#[derive(Default)]
struct Said {
    adapter: Option<String>,
    notes: Vec<String>,
}

/// Reads `stream` to its end on a named thread, keeping what `Said` wants
/// (the pipe must be drained or the station blocks on its status line).
fn drain(name: &str, stream: impl Read + Send + 'static, said: Arc<Mutex<Said>>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                // tracing's line: `... compositing on the GPU adapter=NAME (Backend, Type)`.
                let adapter = line.contains("compositing on the GPU").then(|| line.split("adapter=").nth(1)).flatten();
                let note = line.contains("software GPU") || line.contains("software renderer");
                // A poisoned lock only loses this bench's notes.
                if let Ok(mut said) = said.lock() {
                    if let Some(adapter) = adapter {
                        said.adapter = Some(adapter.trim().to_string());
                    } else if note {
                        said.notes.push(line.trim().to_string());
                    }
                }
            }
        })
        .expect("the drain thread starts")
}

fn start(seconds: f64) -> Child {
    let mut command = Command::new(scopecast());
    command
        .args(["demo", "--headless", "--listen", "127.0.0.1:0", "--stop-after", &format!("{seconds}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if std::env::var_os("RUST_LOG").is_none() {
        // The adapter is logged at info.
        command.env("RUST_LOG", "info");
    }
    command.spawn().expect("scopecast demo starts")
}

fn main() {
    let total_s = duration_s();
    println!(
        "demo memory: `scopecast demo --headless` for {total_s:.0} s, VmRSS every {} s, first {WARM_UP_S:.0} s left out",
        SAMPLE_EVERY.as_secs()
    );
    let mut child = start(total_s);
    let pid = child.id();
    let said = Arc::new(Mutex::new(Said::default()));
    let out = drain("demo-stdout", child.stdout.take().expect("piped stdout"), said.clone());
    let err = drain("demo-stderr", child.stderr.take().expect("piped stderr"), said.clone());
    let started = Instant::now();
    let mut samples: Vec<(f64, f64)> = Vec::new();
    let mut next = started + SAMPLE_EVERY;
    loop {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += SAMPLE_EVERY;
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        let Some(kb) = rss_kb(pid) else { break };
        let t_s = started.elapsed().as_secs_f64();
        if t_s >= WARM_UP_S {
            samples.push((t_s / 60.0, kb as f64 / 1024.0));
        }
    }
    let status = child.wait().expect("the demo exits");
    let _ = (out.join(), err.join());
    let said = said.lock().map(|s| (s.adapter.clone(), s.notes.clone())).unwrap_or_default();
    if let Some(adapter) = &said.0 {
        println!("  renderer: {adapter}");
    }
    for note in &said.1 {
        println!("  station: {note}");
    }
    if !status.success() {
        println!("  the demo exited with {status} after {:.0} s", started.elapsed().as_secs_f64());
    }
    println!("  samples: {} (after the warm-up)", samples.len());
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        println!("  verdict: no figures (the demo stopped before the warm-up ended)");
        return;
    };
    println!(
        "  RSS start {:.1} MB at {:.0} s, end {:.1} MB at {:.0} s",
        first.1,
        first.0 * 60.0,
        last.1,
        last.0 * 60.0
    );
    let per_min = slope(&samples);
    println!("  slope {per_min:+.2} MB/min (least squares over {} samples)", samples.len());
    if per_min.is_nan() {
        println!("  verdict: no slope (fewer than two samples)");
    } else if per_min.abs() < FLAT_MB_PER_MIN {
        println!("  verdict: flat (|slope| < {FLAT_MB_PER_MIN} MB/min)");
    } else {
        println!(
            "  verdict: {} (|slope| >= {FLAT_MB_PER_MIN} MB/min)",
            if per_min > 0.0 { "GROWS" } else { "shrinks" }
        );
    }
}
