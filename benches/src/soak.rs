//! The endurance harness: the real station (`scopecast run`, its own
//! process) with recording on, fed over TCP by a GStreamer sender that drops
//! out and comes back, while viewers come and go: webrtc-rs receivers join
//! every few seconds and leave by `DELETE`, or vanish without one; one
//! annotator draws strokes; one viewer sends garbage (data-channel junk,
//! malformed trickle fragments, bad offers); one headless Chromium watches
//! throughout. It samples the station's resident size, open descriptors,
//! threads and encoded fps every few seconds, and gives their slopes after
//! warm-up, each viewer's longest freeze, the station's exit and whether the
//! recording verifies. Figures, not verdicts: the bench prints them, the
//! short test form checks them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::receiver::{Receiver, http_request};
use crate::root;

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakSettings {
    /// The `scopecast` binary.
    pub binary: PathBuf,
    /// How long.
    pub duration: Duration,
    /// Left out of the slopes at the start.
    pub warm_up: Duration,
    /// Frame size and rate.
    pub width: u32,
    /// px.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// A viewer joins this often.
    pub join_every: Duration,
    /// The source drops out this often…
    pub dropout_every: Duration,
    /// …for this long.
    pub dropout_for: Duration,
    /// Samples this often.
    pub sample_every: Duration,
    /// With a headless Chromium watching throughout.
    pub chromium: bool,
}

/// One sample of the station process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Since the start, s.
    pub t_s: f64,
    /// Resident size, MB.
    pub rss_mb: f64,
    /// Open file descriptors.
    pub fds: f64,
    /// Threads.
    pub threads: f64,
    /// The encoder stage's fps as `/metrics` reports it.
    pub encoded_fps: f64,
}

/// One viewer's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewerFigures {
    /// Which kind: `churn`, `annotator`, `garbage`, `chromium`.
    pub kind: &'static str,
    /// Frames it received.
    pub frames: u64,
    /// Its longest time between two frames, ms.
    pub longest_freeze_ms: f64,
    /// How it left: `delete`, `vanished`, `stayed`.
    pub left: &'static str,
}

/// What the soak measured.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// The samples.
    pub samples: Vec<Sample>,
    /// Every viewer.
    pub viewers: Vec<ViewerFigures>,
    /// Viewers that could not join, with why.
    pub refused: Vec<String>,
    /// Source dropouts made.
    pub dropouts: u32,
    /// Strokes drawn.
    pub strokes: u32,
    /// Garbage messages and requests sent.
    pub garbage: u32,
    /// Lines of the station's stderr that say it panicked.
    pub panics: Vec<String>,
    /// The station's exit status after SIGINT (`None`: it had to be killed).
    pub exit: Option<i32>,
    /// `scopecast recordings verify` of the session.
    pub verify: String,
    /// Whether it verified.
    pub recording_ok: bool,
    /// The warm-up left out of the slopes, s.
    pub warm_up_s: f64,
}

/// The least-squares slope of `(x, y)`, y per x.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) =
        points.iter().fold((0.0, 0.0), |(num, den), (x, y)| (num + (x - mx) * (y - my), den + (x - mx) * (x - mx)));
    if den == 0.0 { 0.0 } else { num / den }
}

impl SoakReport {
    fn after_warm_up(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(move |s| s.t_s >= self.warm_up_s)
    }

    /// Slope of `field` after warm-up, per minute.
    pub fn slope_per_min(&self, field: impl Fn(&Sample) -> f64) -> f64 {
        let points: Vec<(f64, f64)> = self.after_warm_up().map(|s| (s.t_s / 60.0, field(s))).collect();
        slope(&points)
    }

    /// The longest freeze of any viewer, ms.
    pub fn longest_freeze_ms(&self) -> f64 {
        self.viewers.iter().map(|v| v.longest_freeze_ms).fold(0.0, f64::max)
    }

    /// The table the bench prints.
    pub fn table(&self) -> String {
        let mut out = String::from("    t_s   rss_MB  fds  threads  encoded_fps\n");
        for s in &self.samples {
            out.push_str(&format!(
                "{:7.0} {:8.1} {:4.0} {:8.0} {:12.1}\n",
                s.t_s, s.rss_mb, s.fds, s.threads, s.encoded_fps
            ));
        }
        let first = self.after_warm_up().next().copied();
        let last = self.samples.last().copied();
        if let (Some(first), Some(last)) = (first, last) {
            out.push_str(&format!(
                "after warm-up ({:.0} s): RSS {:.1} → {:.1} MB, slope {:+.2} MB/min; fds {:.0} → {:.0}, slope {:+.2}/min; \
                 threads {:.0} → {:.0}, slope {:+.2}/min\n",
                self.warm_up_s,
                first.rss_mb,
                last.rss_mb,
                self.slope_per_min(|s| s.rss_mb),
                first.fds,
                last.fds,
                self.slope_per_min(|s| s.fds),
                first.threads,
                last.threads,
                self.slope_per_min(|s| s.threads),
            ));
        }
        let fps: Vec<f64> = self.after_warm_up().map(|s| s.encoded_fps).collect();
        if !fps.is_empty() {
            let min = fps.iter().copied().fold(f64::INFINITY, f64::min);
            out.push_str(&format!(
                "encoded fps after warm-up: mean {:.1}, min {:.1}\n",
                fps.iter().sum::<f64>() / fps.len() as f64,
                min
            ));
        }
        for kind in ["churn", "annotator", "garbage", "chromium"] {
            let of_kind: Vec<&ViewerFigures> = self.viewers.iter().filter(|v| v.kind == kind).collect();
            if of_kind.is_empty() {
                continue;
            }
            let longest = of_kind.iter().map(|v| v.longest_freeze_ms).fold(0.0, f64::max);
            let frames: u64 = of_kind.iter().map(|v| v.frames).sum();
            let deleted = of_kind.iter().filter(|v| v.left == "delete").count();
            let vanished = of_kind.iter().filter(|v| v.left == "vanished").count();
            out.push_str(&format!(
                "viewers {kind}: {} ({deleted} left by DELETE, {vanished} vanished), {frames} frames, longest freeze {longest:.0} ms\n",
                of_kind.len()
            ));
        }
        out.push_str(&format!(
            "source dropouts {}, strokes {}, garbage sent {}, refused joins {}, panics {}, exit {:?}\n",
            self.dropouts,
            self.strokes,
            self.garbage,
            self.refused.len(),
            self.panics.len(),
            self.exit
        ));
        out.push_str(&format!("recording: {}\n", if self.recording_ok { "verified whole" } else { "NOT whole" }));
        out.push_str(self.verify.trim_end());
        out.push('\n');
        out
    }
}

/// `/proc/PID/status` field `name` (first number).
fn proc_status(pid: u32, name: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn sample(pid: u32, addr: &str, t_s: f64) -> Option<Sample> {
    let rss_kb = proc_status(pid, "VmRSS:")?;
    let threads = proc_status(pid, "Threads:")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as f64;
    let metrics = http_request(addr, "GET /metrics HTTP/1.1", "").unwrap_or_default();
    let encoded_fps = metrics
        .lines()
        .find_map(|l| l.strip_prefix("scopecast_stage_fps{stage=\"encoder\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    Some(Sample { t_s, rss_mb: rss_kb / 1024.0, fds, threads, encoded_fps })
}

/// The GStreamer sender the station reads over TCP (MPEG-TS, H.264).
fn start_sender(settings: &SoakSettings, port: u16) -> std::io::Result<Child> {
    Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "is-live=true", "pattern=ball", "!"])
        .arg(format!("video/x-raw,width={},height={},framerate={}/1", settings.width, settings.height, settings.fps))
        .args(["!", "x264enc", "tune=zerolatency", "speed-preset=ultrafast", "key-int-max=30", "!", "mpegtsmux", "!"])
        .args(["tcpserversink", "host=127.0.0.1", &format!("port={port}"), "sync=false"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// A child process killed (and reaped) when dropped, so a failing harness
/// leaves nothing running.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

const VIEWER: &str = "soak-viewer-token-0123456789abcdef";
const ANNOTATOR: &str = "soak-annotator-token-0123456789abcd";
const OPERATOR: &str = "soak-operator-token-0123456789abcde";

fn write_config(dir: &Path, settings: &SoakSettings, source_port: u16, http_port: u16) -> PathBuf {
    let path = dir.join("soak.toml");
    let text = format!(
        "[source]\nuri = \"tcp://127.0.0.1:{source_port}\"\nwidth = {w}\nheight = {h}\nfps = {fps}\n\
         [http]\nlisten = \"127.0.0.1:{http_port}\"\nmetrics_auth = \"open\"\n\
         [[http.tokens]]\ntoken = \"{VIEWER}\"\nrole = \"viewer\"\n\
         [[http.tokens]]\ntoken = \"{ANNOTATOR}\"\nrole = \"annotator\"\n\
         [[http.tokens]]\ntoken = \"{OPERATOR}\"\nrole = \"operator\"\n\
         [recording]\nenabled = true\nfolder = {rec:?}\n[access]\nstate_dir = {state:?}\n",
        w = settings.width,
        h = settings.height,
        fps = settings.fps,
        rec = dir.join("recordings").display().to_string(),
        state = dir.join("state").display().to_string(),
    );
    std::fs::write(&path, text).expect("write the soak config");
    path
}

/// A stroke as data-channel messages.
fn stroke(id: u32, t: f64) -> Vec<String> {
    let at = |k: f64| [0.3 + 0.4 * (t + k).sin().abs(), 0.3 + 0.4 * (t * 1.3 + k).cos().abs()];
    let down =
        serde_json::json!({"v": 1, "type": "pen_down", "stroke": id, "at": at(0.0), "colour": "#ffd000", "width": 6});
    let points: Vec<[f64; 2]> = (1..8).map(|k| at(f64::from(k) * 0.05)).collect();
    let moved = serde_json::json!({"v": 1, "type": "pen_move", "stroke": id, "points": points});
    let up = serde_json::json!({"v": 1, "type": "pen_up", "stroke": id});
    vec![down.to_string(), moved.to_string(), up.to_string()]
}

/// Garbage a hostile or broken viewer might send on its data channel.
fn junk(n: u32) -> String {
    match n % 5 {
        0 => "{not json".into(),
        1 => r#"{"v":99,"type":"pen_down"}"#.into(),
        2 => "x".repeat(20_000),
        3 => r#"{"v":1,"type":"clear_all"}"#.into(),
        _ => format!(r#"{{"v":1,"type":"pen_move","stroke":{n},"points":[[1e308,-1e308]]}}"#),
    }
}

/// Runs the soak.
pub fn run(settings: &SoakSettings) -> SoakReport {
    let dir = std::env::temp_dir().join(format!("scopecast-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp folder");
    let (source_port, http_port) = (free_port(), free_port());
    let config = write_config(&dir, settings, source_port, http_port);
    let addr = format!("127.0.0.1:{http_port}");
    let mut sender =
        Some(start_sender(settings, source_port).expect("gst-launch-1.0 runs (apt-get install gstreamer1.0-tools)"));
    let mut station = Reaped(
        Command::new(&settings.binary)
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the station starts"),
    );
    let pid = station.0.id();
    let panics = Arc::new(Mutex::new(Vec::new()));
    if let Some(stderr) = station.0.stderr.take() {
        let panics = panics.clone();
        let log = dir.join("station.log");
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(log).ok();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("panicked") {
                    panics.lock().unwrap_or_else(PoisonError::into_inner).push(line.clone());
                }
                if let Some(file) = &mut file {
                    let _ = std::io::Write::write_all(file, format!("{line}\n").as_bytes());
                }
            }
        });
    }
    let started = Instant::now();
    while http_request(&addr, "GET /healthz HTTP/1.1", "").is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the station did not serve within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let chromium = settings.chromium.then(|| {
        let url = format!("http://{addr}/#token={VIEWER}&name=Chromium");
        let timeout_ms = settings.duration.as_millis().saturating_sub(5000).to_string();
        let script = root().join("engine/tests/viewer/play.mjs");
        Command::new("node")
            .arg(script)
            .args([url.as_str(), "100000000", timeout_ms.as_str()])
            .env("SCOPECAST_NODE_MODULES", crate::node_modules())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs")
    });

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut report = SoakReport {
        samples: Vec::new(),
        viewers: Vec::new(),
        refused: Vec::new(),
        dropouts: 0,
        strokes: 0,
        garbage: 0,
        panics: Vec::new(),
        exit: None,
        verify: String::new(),
        recording_ok: false,
        warm_up_s: settings.warm_up.as_secs_f64(),
    };
    runtime.block_on(async {
        let annotator = Receiver::connect(&addr, ANNOTATOR).await;
        let garbage = Receiver::connect(&addr, VIEWER).await;
        let mut churn: Vec<(Receiver, Instant, u32)> = Vec::new();
        let (mut next_join, mut next_sample, mut next_stroke) = (Instant::now(), Instant::now(), Instant::now());
        let mut next_dropout = Instant::now() + settings.dropout_every;
        let mut source_back: Option<Instant> = None;
        let mut joined = 0u32;
        while started.elapsed() < settings.duration {
            let now = Instant::now();
            if now >= next_sample {
                next_sample += settings.sample_every;
                if let Some(s) = sample(pid, &addr, started.elapsed().as_secs_f64()) {
                    report.samples.push(s);
                }
            }
            if now >= next_join {
                next_join += settings.join_every;
                joined += 1;
                match Receiver::connect(&addr, VIEWER).await {
                    // Stays 2 to 4 join intervals; every other one leaves without DELETE.
                    Ok(viewer) => churn.push((viewer, now + settings.join_every * (2 + joined % 3), joined)),
                    Err(e) => report.refused.push(e),
                }
            }
            let mut still = Vec::new();
            for (viewer, until, n) in churn.drain(..) {
                if Instant::now() < until {
                    still.push((viewer, until, n));
                    continue;
                }
                let figures = |left| ViewerFigures {
                    kind: "churn",
                    frames: viewer.reception.frames.load(Ordering::Relaxed),
                    longest_freeze_ms: viewer.reception.longest_gap_ns.load(Ordering::Relaxed) as f64 / 1e6,
                    left,
                };
                if n % 2 == 0 {
                    report.viewers.push(figures("delete"));
                    viewer.leave().await;
                } else {
                    report.viewers.push(figures("vanished"));
                    viewer.vanish().await;
                }
            }
            churn = still;
            if now >= next_stroke {
                next_stroke += Duration::from_secs(2);
                if let Ok(annotator) = &annotator {
                    report.strokes += 1;
                    for message in stroke(report.strokes, started.elapsed().as_secs_f64()) {
                        let _ = annotator.send(&message).await;
                    }
                }
                if let Ok(garbage) = &garbage {
                    for _ in 0..5 {
                        report.garbage += 1;
                        let _ = garbage.send(&junk(report.garbage)).await;
                    }
                    let (a, location) = (addr.clone(), garbage.location.clone());
                    let _ = tokio::task::spawn_blocking(move || {
                        let patch = format!(
                            "PATCH {location} HTTP/1.1\r\nAuthorization: Bearer {VIEWER}\r\nContent-Type: application/trickle-ice-sdpfrag"
                        );
                        let _ = http_request(&a, &patch, "a=candidate:garbage\r\n\u{0}\u{7f}");
                        let post = format!("POST /whep HTTP/1.1\r\nAuthorization: Bearer {VIEWER}\r\nContent-Type: application/sdp");
                        let _ = http_request(&a, &post, "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/nonsense\r\n");
                        let _ = http_request(&a, "DELETE /whep/1 HTTP/1.1\r\nAuthorization: Bearer nope", "");
                    })
                    .await;
                    report.garbage += 3;
                }
            }
            if now >= next_dropout && source_back.is_none() {
                if let Some(mut child) = sender.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                report.dropouts += 1;
                source_back = Some(now + settings.dropout_for);
            }
            if let Some(back) = source_back
                && now >= back
            {
                sender = start_sender(settings, source_port).ok();
                source_back = None;
                next_dropout = now + settings.dropout_every;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for (viewer, _, _) in churn {
            report.viewers.push(ViewerFigures {
                kind: "churn",
                frames: viewer.reception.frames.load(Ordering::Relaxed),
                longest_freeze_ms: viewer.reception.longest_gap_ns.load(Ordering::Relaxed) as f64 / 1e6,
                left: "delete",
            });
            viewer.leave().await;
        }
        for (kind, viewer) in [("annotator", annotator), ("garbage", garbage)] {
            match viewer {
                Ok(viewer) => {
                    report.viewers.push(ViewerFigures {
                        kind,
                        frames: viewer.reception.frames.load(Ordering::Relaxed),
                        longest_freeze_ms: viewer.reception.longest_gap_ns.load(Ordering::Relaxed) as f64 / 1e6,
                        left: "stayed",
                    });
                    viewer.leave().await;
                }
                Err(e) => report.refused.push(format!("{kind}: {e}")),
            }
        }
    });
    if let Some(child) = chromium {
        match child.wait_with_output() {
            Ok(output) => {
                let text = String::from_utf8_lossy(&output.stdout);
                let stats: serde_json::Value =
                    serde_json::from_str(text.lines().last().unwrap_or("")).unwrap_or(serde_json::Value::Null);
                report.viewers.push(ViewerFigures {
                    kind: "chromium",
                    frames: stats["frames"].as_u64().unwrap_or(0),
                    longest_freeze_ms: stats["max_gap_ms"].as_f64().unwrap_or(f64::NAN),
                    left: "stayed",
                });
            }
            Err(e) => report.refused.push(format!("chromium: {e}")),
        }
    }
    // Stop the station as an operator would (Ctrl-C), then check the recording.
    let _ = Command::new("kill").args(["-s", "INT", &pid.to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = station.0.try_wait() {
            report.exit = status.code();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(station);
    if let Some(mut child) = sender.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
    std::thread::sleep(Duration::from_millis(200));
    report.panics = panics.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let sessions: Vec<PathBuf> = std::fs::read_dir(dir.join("recordings"))
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    for session in &sessions {
        let output = Command::new(&settings.binary).args(["recordings", "verify"]).arg(session).output();
        if let Ok(output) = output {
            report.recording_ok = output.status.success();
            report.verify.push_str(&String::from_utf8_lossy(&output.stdout));
            report.verify.push_str(&String::from_utf8_lossy(&output.stderr));
        }
    }
    if sessions.len() != 1 {
        report.recording_ok = false;
        report.verify.push_str(&format!("{} recorded sessions (expected 1)\n", sessions.len()));
    }
    let _ = std::fs::remove_dir_all(&dir);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slope_of_a_line_is_its_gradient() {
        let line: Vec<(f64, f64)> = (0..10).map(|x| (f64::from(x), 3.0 * f64::from(x) + 1.0)).collect();
        assert!((slope(&line) - 3.0).abs() < 1e-12);
        assert_eq!(slope(&[(1.0, 1.0)]), 0.0);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), 0.0);
    }
}
