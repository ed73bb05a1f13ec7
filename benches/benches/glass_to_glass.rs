//! Glass-to-glass latency, scopecast beside aiortc, in one run.
//!
//! For 720p30 and 720p60 it starts the station in this process (synthetic
//! endoscope → GPU compositor on whatever adapter wgpu finds → default H.264
//! encoder → WHEP), opens the viewer page in headless Chromium
//! (playwright-core driving /usr/bin/chromium), and reads the timecode strip
//! of every presented frame with `requestVideoFrameCallback`: latency =
//! the page's wall clock in the frame's callback − the capture time in the
//! strip (one machine, one clock). The page reads the strip's rows from the
//! decoded frame's luma plane (WebCodecs), not through a canvas, which would
//! convert every whole frame to RGB on the page's thread (4–5 ms a 720p frame
//! here) and so cost the measured browser frames. Then it does the same
//! against a WHEP server built on aiortc (benches/aiortc/whep_server.py)
//! sending frames of the same size and rate with the same strip, played by
//! the same page.
//!
//! It prints, for both, the frames Chromium presented (its own count,
//! `presentedFrames`) and their rate, the callbacks a second the page saw
//! ("seen": one callback stands for several frames when the page's thread is
//! late), p50/p95/p99 latency, the ratio, and the station's per-stage
//! latencies (capture → end of each stage, from 3 s after the player is
//! launched: about Chromium's start and the 2 s the page's figures leave
//! out), which say where scopecast's time goes. A third row runs scopecast without the
//! compositor (the strip stamped on the CPU before encoding): the transport
//! path alone, the like of what aiortc does.
//!
//! Beside glass-to-glass it prints Chromium's own per-frame figures from
//! `getStats()` (frames decoded a second: what reached it, beside the frames
//! it presented; jitter buffer delay, decode time, processing delay: first
//! packet received → decoded, assembly) and the receiver's reading of the
//! end-to-end delay from the capture time the stream carries (the
//! abs-capture-time header extension where negotiated, else RTCP sender
//! reports), which needs no pixels, and the latency at the time Chromium
//! expected each frame to be visible (`expectedDisplayTime`; the callback
//! comes up to a frame later).
//!
//! Needs what the README's test command installs (Chromium, Node's
//! playwright-core in target/node, aiortc in target/pyenv). Run with
//! `cargo bench -p scopecast-benches --bench glass_to_glass`; set
//! `SCOPECAST_G2G_SECONDS` to change the 12 s measured per case, and
//! `SCOPECAST_G2G_PLAYOUT_DELAY_MS` for the playout-delay max (0: not sent),
//! `SCOPECAST_G2G_FPS` for the rates measured (default `30,60`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use scopecast_benches::{ServedStation, node_modules, quantile, root};
use scopecast_engine::config::Config;
use scopecast_engine::metrics::HistogramSnapshot;

const TOKEN: &str = "glass-to-glass-harness-token";

fn python() -> String {
    std::env::var("SCOPECAST_PYTHON").unwrap_or_else(|_| root().join("target/pyenv/bin/python").display().to_string())
}

/// Figures of one player run.
struct Run {
    /// Frames Chromium handed to its compositor over the window
    /// (`requestVideoFrameCallback`'s `presentedFrames`).
    frames: u64,
    /// `frames` a second: what reached the screen.
    fps: f64,
    /// The page's callbacks a second (one callback can stand for several
    /// frames when the page's thread is late): the frames measured.
    seen_fps: f64,
    /// Capture → the page's callback for the frame, sorted.
    latencies_ms: Vec<f64>,
    /// Capture → when Chromium expects the frame to be visible
    /// (`expectedDisplayTime`), sorted.
    display_ms: Vec<f64>,
    /// The receiver's own reading (capture time from the stream, not pixels), sorted.
    receiver_ms: Vec<f64>,
    /// Whether the answer had abs-capture-time.
    abs_capture_time: bool,
    /// Chromium's means per frame over the measured window, ms.
    inbound: Option<InboundMeans>,
}

/// Chromium's `getStats()` inbound-rtp figures per frame, ms.
struct InboundMeans {
    jitter_buffer: f64,
    decode: f64,
    processing: f64,
    assembly: f64,
    /// Frames decoded a second over the window (what reached the browser and
    /// was decoded, beside the frames it presented).
    decoded_fps: f64,
}

/// Means per frame between the first cumulative sample at or after `from_ms`
/// (page wall clock) and the last.
fn inbound_means(samples: &[serde_json::Value], from_ms: f64) -> Option<InboundMeans> {
    let at = |s: &serde_json::Value, key: &str| s[key].as_f64().unwrap_or(0.0);
    let first = samples.iter().find(|s| at(s, "at_ms") >= from_ms)?;
    let last = samples.last()?;
    let per = |total: &str, count: &str| {
        let n = at(last, count) - at(first, count);
        if n > 0.0 { (at(last, total) - at(first, total)) * 1e3 / n } else { f64::NAN }
    };
    Some(InboundMeans {
        jitter_buffer: per("jitter_buffer_delay_s", "jitter_buffer_emitted"),
        decode: per("total_decode_time_s", "frames_decoded"),
        processing: per("total_processing_delay_s", "frames_decoded"),
        assembly: per("total_assembly_time_s", "frames_assembled"),
        decoded_fps: {
            let span_ms = at(last, "at_ms") - at(first, "at_ms");
            if span_ms > 0.0 {
                (at(last, "frames_decoded") - at(first, "frames_decoded")) * 1e3 / span_ms
            } else {
                f64::NAN
            }
        },
    })
}

/// Plays `url` in headless Chromium for about `seconds`; the first 2 s (join, first keyframe) are not counted.
fn play(url: &str, fps: u32, seconds: u32) -> Run {
    let frames = fps * seconds;
    let output = Command::new("node")
        .arg(root().join("engine/tests/viewer/play.mjs"))
        .args([url, &frames.to_string(), &((seconds + 15) * 1000).to_string()])
        .env("SCOPECAST_NODE_MODULES", node_modules())
        .stderr(Stdio::null())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stats: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("player output unreadable ({e}): {stdout}"));
    let all: Vec<f64> =
        stats["latencies"].as_array().map(|a| a.iter().filter_map(|v| v.as_f64()).collect()).unwrap_or_default();
    let seen = stats["frames"].as_u64().unwrap_or(0);
    // The page keeps the newest 600; drop what falls in the first 2 s.
    let skip = (2 * fps as usize).saturating_sub(seen as usize - all.len().min(seen as usize));
    let sorted_tail = |values: Vec<f64>| {
        let mut kept: Vec<f64> = values.into_iter().skip(skip).collect();
        kept.sort_by(f64::total_cmp);
        kept
    };
    let latencies_ms = sorted_tail(all);
    let display_ms = sorted_tail(
        stats["display_latencies"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
            .unwrap_or_default(),
    );
    let span_ms = stats["last_frame_ms"].as_f64().unwrap_or(0.0) - stats["first_frame_ms"].as_f64().unwrap_or(0.0);
    let per_second = |count: u64| if span_ms > 0.0 { count as f64 * 1e3 / span_ms } else { 0.0 };
    let seen_fps = per_second(seen.saturating_sub(1));
    let presented = (stats["last_presented_frames"].as_u64().unwrap_or(0))
        .saturating_sub(stats["first_presented_frames"].as_u64().unwrap_or(0));
    let fps = per_second(presented);
    let receiver: Vec<f64> = stats["receiver_latencies"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    let mut receiver_ms: Vec<f64> = receiver.into_iter().skip(skip).collect();
    receiver_ms.sort_by(f64::total_cmp);
    // Samples are stamped with Date.now(); the window starts 2 s after the first of them.
    let samples = stats["inbound"].as_array().cloned().unwrap_or_default();
    let window_from_ms = samples.first().and_then(|s| s["at_ms"].as_f64()).unwrap_or(0.0) + 2e3;
    let inbound = inbound_means(&samples, window_from_ms);
    let abs_capture_time = stats["abs_capture_time"].as_bool().unwrap_or(false);
    Run { frames: presented, fps, seen_fps, latencies_ms, display_ms, receiver_ms, abs_capture_time, inbound }
}

/// The station's stages, in the order a frame passes them.
const STAGES: [&str; 4] = ["source", "compositor", "encoder", "sink"];

/// Seconds after the player starts before the stages' window opens: about
/// Chromium's start and the page's first 2 s, which the glass-to-glass
/// figures leave out too (joining, the first keyframe, the encoder opening).
const STAGE_WINDOW_AFTER_S: u64 = 3;

/// (stage, p50 ms, p99 ms) of each stage that passed frames between
/// `early` (snapshots taken when the window opened) and now.
fn stage_latencies(
    registry: &scopecast_engine::metrics::MetricsRegistry,
    early: &[(&'static str, HistogramSnapshot)],
) -> Vec<(String, f64, f64)> {
    early
        .iter()
        .filter_map(|(stage, before)| {
            let window = registry.stage_latency(stage).snapshot().since(before);
            let ms = |q: f64| window.quantile_ns(q).map(|ns| ns / 1e6);
            Some((stage.to_string(), ms(0.5)?, ms(0.99)?))
        })
        .collect()
}

/// The player's run and each stage's (name, p50 ms, p99 ms) over the same window.
fn run_scopecast(fps: u32, seconds: u32, compositor: bool) -> (Run, Vec<(String, f64, f64)>) {
    let mut config = Config::default();
    config.compositor.enabled = compositor;
    config.source.width = 1280;
    config.source.height = 720;
    config.source.fps = fps;
    // `SCOPECAST_G2G_PLAYOUT_DELAY_MS=0`: without the playout-delay extension (the "before").
    if let Some(max_ms) = std::env::var("SCOPECAST_G2G_PLAYOUT_DELAY_MS").ok().and_then(|v| v.parse().ok()) {
        config.http.playout_delay_max_ms = max_ms;
    }
    let served = ServedStation::start(&config, TOKEN, 4);
    std::thread::sleep(Duration::from_secs(1));
    let registry = served.station.registry.clone();
    let window_opens = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(STAGE_WINDOW_AFTER_S));
        STAGES.map(|stage| (stage, registry.stage_latency(stage).snapshot()))
    });
    let run = play(&format!("http://{}/#token={TOKEN}", served.server.local_addr), fps, seconds);
    let early = window_opens.join().expect("the snapshot thread");
    let stages = stage_latencies(&served.station.registry, &early);
    served.stop();
    (run, stages)
}

fn run_aiortc(fps: u32, seconds: u32) -> Run {
    let mut server = Command::new(python())
        .arg(root().join("benches/aiortc/whep_server.py"))
        .arg(root().join("transport/web/viewer.html"))
        .args(["1280", "720", &fps.to_string()])
        .current_dir(root().join("benches/aiortc"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python runs (the README's test command installs aiortc into target/pyenv)");
    let stdout = server.stdout.take().expect("stdout");
    let url = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("viewer: ").map(str::to_string))
        .expect("the aiortc server prints its URL (is aiortc installed?)");
    let run = play(&url, fps, seconds);
    let _ = server.kill();
    let _ = server.wait();
    run
}

fn row(name: &str, run: &Run) -> String {
    format!(
        "{name:<15} {:>6} {:>7.1} {:>6.1} {:>8.1} {:>8.1} {:>8.1}",
        run.frames,
        run.fps,
        run.seen_fps,
        quantile(&run.latencies_ms, 0.5),
        quantile(&run.latencies_ms, 0.95),
        quantile(&run.latencies_ms, 0.99)
    )
}

fn chromium_row(name: &str, run: &Run) -> String {
    let inbound = run.inbound.as_ref().map_or_else(
        || "no getStats samples".to_string(),
        |m| {
            format!(
                "decoded {:>4.1} fps  jitter buffer {:>5.1}  decode {:>4.1}  processing {:>5.1}  assembly {:>4.1}",
                m.decoded_fps, m.jitter_buffer, m.decode, m.processing, m.assembly
            )
        },
    );
    let receiver = if run.receiver_ms.is_empty() {
        "receiver: no capture time".to_string()
    } else {
        format!(
            "receiver p50 {:.1} p99 {:.1} ({})",
            quantile(&run.receiver_ms, 0.5),
            quantile(&run.receiver_ms, 0.99),
            if run.abs_capture_time { "abs-capture-time" } else { "RTCP sender reports" }
        )
    };
    let display = format!(
        "at expected display p50 {:.1} p99 {:.1}",
        quantile(&run.display_ms, 0.5),
        quantile(&run.display_ms, 0.99)
    );
    format!("  {name:<14} {inbound}  {receiver}  {display}")
}

fn main() {
    let seconds: u32 = std::env::var("SCOPECAST_G2G_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
    println!("glass-to-glass, 1280x720, headless Chromium, {seconds} s per case (first 2 s not counted)");
    let rates: Vec<u32> = std::env::var("SCOPECAST_G2G_FPS")
        .ok()
        .map(|v| v.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .filter(|r: &Vec<u32>| !r.is_empty())
        .unwrap_or_else(|| vec![30, 60]);
    for fps in rates {
        let (ours, stages) = run_scopecast(fps, seconds, true);
        let (bare, bare_stages) = run_scopecast(fps, seconds, false);
        let reference = run_aiortc(fps, seconds);
        println!("\n720p{fps}          frames     fps   seen  p50 ms   p95 ms   p99 ms");
        println!("{}", row("scopecast", &ours));
        println!("{}", row("  no compositor", &bare));
        println!("{}", row("aiortc", &reference));
        println!(
            "ratio      p50 {:.2}x  p99 {:.2}x (scopecast / aiortc)",
            quantile(&ours.latencies_ms, 0.5) / quantile(&reference.latencies_ms, 0.5),
            quantile(&ours.latencies_ms, 0.99) / quantile(&reference.latencies_ms, 0.99)
        );
        println!(
            "Chromium's own figures (getStats per frame over the window, ms; receiver = its capture-time reading):"
        );
        for (name, run) in [("scopecast", &ours), ("no compositor", &bare), ("aiortc", &reference)] {
            println!("{}", chromium_row(name, run));
        }
        for (name, figures) in [("scopecast", &stages), ("no compositor", &bare_stages)] {
            let stages: Vec<String> =
                figures.iter().map(|(stage, p50, p99)| format!("{stage} {p50:.1}/{p99:.1}")).collect();
            println!(
                "{name}: capture → end of stage (from {STAGE_WINDOW_AFTER_S} s after the player was launched), p50/p99 ms: {}",
                stages.join(", ")
            );
        }
    }
}
