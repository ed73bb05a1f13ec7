//! The `scopecast` binary as a user runs it: the demo started as a process and
//! stopped by SIGINT/SIGTERM, config errors, the default config, and `--help`.

mod viewer;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_scopecast");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("scopecast runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Sends `signal` (as `kill -s` names it) to the child.
fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill").args(["-s", signal, &child.id().to_string()]).status().expect("kill runs");
    assert!(status.success(), "kill -s {signal} failed");
}

/// Starts the demo, waits for its first status lines, stops it with `sig` and
/// returns (status lines, time from signal to exit, exit code).
fn demo_until_signal(sig: &str, extra: &[&str]) -> (Vec<String>, Duration, Option<i32>) {
    let mut child = Command::new(BIN)
        .args(["demo", "--fps", "30"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("demo-stdout".into())
        .spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        })
        .expect("reader thread");
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines.len() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            // The demo prints its links first; status lines start with the source.
            Ok(line) if !line.starts_with("source ") => {}
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("no status lines from the demo within 30 s; got {lines:?}");
            }
        }
    }
    signal(&child, sig);
    let sent = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if sent.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!("the demo did not exit within 5 s of {sig}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (lines, sent.elapsed(), code)
}

#[test]
fn the_demo_prints_plain_status_lines_and_stops_on_sigint_within_a_second() {
    let (lines, took, code) = demo_until_signal("INT", &[]);
    println!("status lines: {lines:#?}\nexit after SIGINT: {took:?}");
    assert_eq!(code, Some(0), "exit code after SIGINT");
    assert!(took < Duration::from_secs(1), "stopped {took:?} after SIGINT");
    let last = lines.last().expect("a status line");
    for word in ["source synthetic", "1280x720", "fps", "drops", "latency"] {
        assert!(last.contains(word), "status line lacks {word:?}: {last}");
    }
    assert!(!last.contains('\r') && !last.contains("\x1b["), "no terminal control codes when piped: {last:?}");
    // Frames reach the end of the path (the rate itself is a bench figure, not a test).
    let fps: f64 =
        last.split(" fps").next().and_then(|s| s.rsplit(' ').next()).and_then(|v| v.parse().ok()).expect("fps value");
    assert!(fps > 0.0, "no frames delivered: {last}");
    assert!(last.contains("compositor "), "the compositor stage is reported: {last}");
}

#[test]
fn the_demo_stops_on_sigterm_within_a_second() {
    let (_, took, code) = demo_until_signal("TERM", &["--width", "640", "--height", "360"]);
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(1), "stopped {took:?} after SIGTERM");
}

#[test]
fn config_errors_name_the_file_the_field_and_the_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write config");
        path.display().to_string()
    };
    let missing = dir.path().join("absent.toml").display().to_string();
    let cases = [
        (missing.clone(), vec![missing.as_str(), "cannot read"]),
        (write("broken.toml", "[source]\nuri = \"synthetic\nfps = 30\n"), vec!["broken.toml:2:"]),
        (write("unknown.toml", "[source]\nfps = 30\nframerate = 30\n"), vec!["unknown.toml:3:", "framerate"]),
        (write("range.toml", "[source]\nfps = 1000\n"), vec!["range.toml", "source.fps", "1000"]),
        (write("uri.toml", "[source]\nuri = \"webcam\"\n"), vec!["uri.toml", "source.uri", "webcam"]),
    ];
    for (path, needles) in cases {
        let output = run(&["run", "--config", &path]);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{path}: {message}");
        assert!(!message.contains("panicked"), "{message}");
        for needle in needles {
            assert!(message.contains(needle), "{path}: message lacks {needle:?}: {message}");
        }
    }
    let output = run(&["demo", "--fps", "0"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("source.fps"), "{}", stderr(&output));
}

#[test]
fn the_printed_default_config_is_valid_and_complete() {
    let output = run(&["config", "default"]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).expect("utf-8");
    for field in ["uri", "loop", "width", "height", "fps", "format", "no_signal_after_ms", "distortion", "interval_ms"]
    {
        assert!(text.contains(&format!("\n{field} = ")), "default config lacks {field}");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("station.toml");
    std::fs::write(&path, &text).expect("write");
    let check = run(&["config", "check", path.to_str().expect("utf-8 path")]);
    assert!(check.status.success(), "{}", stderr(&check));
}

#[test]
fn run_uses_the_config_file_and_flags_override_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("station.toml");
    std::fs::write(&path, "[source]\nwidth = 640\nheight = 360\nfps = 30\n\n[status]\ninterval_ms = 200\n")
        .expect("write");
    let output = run(&["run", "--config", path.to_str().expect("utf-8"), "--height", "480", "--stop-after", "1.5"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.lines().count() >= 4, "a status line every 200 ms: {stdout}");
    assert!(stdout.contains("640x480"), "{stdout}");
}

#[test]
fn snapshot_writes_the_composited_frame_with_its_timecode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("frame.png");
    let output =
        run(&["snapshot", "--width", "640", "--height", "360", "--frames", "5", "--out", out.to_str().expect("utf-8")]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let picture = image::open(&out).expect("a PNG");
    assert_eq!(picture.color(), image::ColorType::Rgb8, "an RGB PNG");
    let rgba = picture.to_rgba8();
    assert_eq!(rgba.dimensions(), (640, 360));
    // The strip in the PNG carries the capture time the command reports.
    let capture_ms: u64 = stdout
        .split("(capture ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no capture time in {stdout}"));
    let decoded = scopecast_engine::timecode::decode_rgba(rgba.as_raw(), 640 * 4, 640, 360).expect("a timecode strip");
    assert_eq!(decoded, capture_ms & ((1 << 36) - 1));
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        vec!["--help"],
        vec!["demo", "--help"],
        vec!["run", "--help"],
        vec!["snapshot", "--help"],
        vec!["config", "--help"],
        vec!["config", "default", "--help"],
        vec!["config", "check", "--help"],
        vec!["calibrate", "--help"],
        vec!["calibrate", "intrinsics", "--help"],
    ] {
        let output = run(&args);
        assert!(output.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("Usage: scopecast"), "{args:?}");
    }
}

#[test]
fn calibrate_intrinsics_writes_a_file_the_station_loads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("scope.yaml");
    let points = concat!(env!("CARGO_MANIFEST_DIR"), "/../calibration/tests/data/calib1.json");
    let output =
        run(&["calibrate", "intrinsics", "--points", points, "--fix-k3", "--output", out.to_str().expect("utf-8")]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(report.contains("RMS reprojection error: 0.1388"), "{report}");
    let file = scopecast_calibration::file::CalibrationFile::load(&out).expect("the file reads back");
    assert!((file.camera.intrinsics.fx - 809.9479).abs() < 0.8, "{:?}", file.camera);
    // A broken points file is an error naming it.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"image_width\": 640}").expect("write");
    let output =
        run(&["calibrate", "intrinsics", "--points", bad.to_str().expect("utf-8"), "--output", "/tmp/never.yaml"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("bad.json"), "{}", stderr(&output));
    assert!(!stderr(&output).contains("panicked"));
}

#[test]
fn calibrate_intrinsics_from_a_folder_of_images_lists_skipped_views() {
    use scopecast_calibration::camera::{BrownConrady, CameraModel, LensModel, PinholeIntrinsics};
    use scopecast_calibration::synthetic::{RenderQuality, render_board};
    let dir = tempfile::tempdir().expect("temp dir");
    let camera = CameraModel {
        intrinsics: PinholeIntrinsics { fx: 560.0, fy: 558.0, cx: 321.0, cy: 239.0 },
        lens: LensModel::BrownConrady(BrownConrady { k1: -0.2, k2: 0.05, ..Default::default() }),
    };
    let quality = RenderQuality { blur_px: 0.8, noise: 2.0, lighting_falloff: 0.3 };
    let poses = [
        ([0.0, 0.0, 0.0], [-70.0, -45.0, 330.0]),
        ([0.35, -0.3, 0.1], [-80.0, -40.0, 310.0]),
        ([-0.4, 0.25, -0.2], [-60.0, -55.0, 330.0]),
        ([0.2, 0.45, 0.3], [-85.0, -30.0, 350.0]),
        ([-0.3, -0.4, 0.5], [-50.0, -70.0, 320.0]),
    ];
    for (k, pose) in poses.into_iter().enumerate() {
        let (image, _) = render_board(&camera, (640, 480), (8, 5, 20.0), pose, quality, k as u64 + 1);
        let bytes: Vec<u8> = image.data.iter().map(|v| v.round() as u8).collect();
        image::save_buffer(dir.path().join(format!("view{k}.png")), &bytes, 640, 480, image::ExtendedColorType::L8)
            .expect("png");
    }
    image::save_buffer(
        dir.path().join("view9_blank.png"),
        &vec![128u8; 640 * 480],
        640,
        480,
        image::ExtendedColorType::L8,
    )
    .expect("png");
    std::fs::write(dir.path().join("view8_broken.png"), b"not a png").expect("write");
    let out = dir.path().join("scope.json");
    let output = run(&[
        "calibrate",
        "intrinsics",
        "--images",
        dir.path().to_str().expect("utf-8"),
        "--pattern",
        "chessboard:8x5:20",
        "--fix-k3",
        "--output",
        out.to_str().expect("utf-8"),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("{report}");
    assert!(report.contains("view8_broken.png: not an image"), "{report}");
    assert!(report.contains("view9_blank.png: pattern not found"), "{report}");
    assert!(report.contains("5 views"), "{report}");
    let file = scopecast_calibration::file::CalibrationFile::load(&out).expect("JSON calibration");
    assert!((file.camera.intrinsics.fx / 560.0 - 1.0).abs() < 0.01, "{:?}", file.camera);
    let bad =
        run(&["calibrate", "intrinsics", "--images", "/tmp", "--pattern", "hexagons:3x3:1", "--output", "/tmp/x.yaml"]);
    assert!(!bad.status.success() && stderr(&bad).contains("--pattern"), "{}", stderr(&bad));
}

/// Kills process `0` when dropped, so a failing test leaves no station running.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", &self.0.to_string()]).status();
    }
}

/// A plain HTTP/1.1 GET on loopback; returns (status line, body).
fn http_get(addr: &str, path: &str) -> (String, String) {
    let (head, body) = viewer::http_get_bytes(addr, path, None);
    (head.lines().next().unwrap_or("").to_string(), String::from_utf8_lossy(&body).into_owned())
}

/// `scopecast demo` at 640x360 serving HTTP on a free loopback port, killed
/// when the guard drops; with the lines it prints.
fn served_demo() -> (Child, KillOnDrop, std::io::Lines<BufReader<std::process::ChildStdout>>) {
    let mut child = Command::new(BIN)
        .args(["demo", "--width", "640", "--height", "360", "--fps", "30", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let guard = KillOnDrop(child.id());
    (child, guard, BufReader::new(stdout).lines())
}

#[test]
fn metrics_and_healthz_are_served_over_http() {
    let (mut child, _guard, mut lines) = served_demo();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("metrics: http://").map(str::to_string))
        .expect("the metrics URL is printed");
    let addr = url.trim_end_matches("/metrics").to_string();
    // Let frames flow through every stage.
    std::thread::sleep(Duration::from_secs(3));
    let (status, body) = http_get(&addr, "/metrics");
    let (health_status, health) = http_get(&addr, "/healthz");
    let (missing, _) = http_get(&addr, "/nope");
    signal(&child, "INT");
    let code = child.wait().expect("exits").code();
    assert!(status.contains("200"), "{status}");
    for series in [
        "# TYPE scopecast_stage_latency_seconds summary",
        "scopecast_stage_fps{stage=\"encoder\"}",
        "scopecast_encoder_bytes_total",
        "scopecast_source_up 1",
        "scopecast_viewers 0",
    ] {
        assert!(body.contains(series), "/metrics lacks {series}:\n{body}");
    }
    assert!(
        health_status.contains("200") && health.starts_with("ok: source synthetic live"),
        "{health_status} {health}"
    );
    assert!(missing.contains("404"), "{missing}");
    assert_eq!(code, Some(0));
}

#[test]
fn the_operator_gets_the_newest_composited_frame_as_a_png() {
    let (mut child, _guard, lines) = served_demo();
    let (mut addr, mut operator) = (None, None);
    for line in lines.map_while(Result::ok) {
        if let Some(url) = line.strip_prefix("metrics: http://") {
            addr = Some(url.trim_end_matches("/metrics").to_string());
        }
        if let Some(token) = line.strip_prefix("operator token: ") {
            operator = Some(token.to_string());
        }
        if addr.is_some() && operator.is_some() {
            break;
        }
    }
    let (addr, operator) = (addr.expect("the address is printed"), operator.expect("the operator token is printed"));
    std::thread::sleep(Duration::from_secs(2));
    let get = |token: Option<&str>| viewer::http_get_bytes(&addr, "/snapshot.png", token);
    let (refused, _) = get(None);
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let (head, png) = get(Some(&operator));
    signal(&child, "INT");
    let _ = child.wait();
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("image/png"), "{head}");
    let capture_ms: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("x-capture-wall-ms: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no capture time in {head}"));
    let picture = image::load_from_memory(&png).expect("a PNG").to_rgba8();
    assert_eq!(picture.dimensions(), (640, 360));
    // Exact pixels: the timecode strip decodes to the frame's capture time.
    let decoded =
        scopecast_engine::timecode::decode_rgba(picture.as_raw(), 640 * 4, 640, 360).expect("a timecode strip");
    assert_eq!(decoded, capture_ms & ((1 << 36) - 1));
}
