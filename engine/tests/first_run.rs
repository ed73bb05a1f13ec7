//! The first run as a new user meets it. The quick-start command
//! (`demos/capture-station/run`) as a process: it prints the viewer link,
//! the link plays in headless Chromium, Ctrl-C ends it within a second and no
//! error-level line was printed. The station with every GStreamer plugin
//! hidden: it picks the embedded encoder, says so, and still plays. And
//! `/healthz` tells a dead station from a live one.

mod viewer;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use viewer::{BIN, addr_and_token, http, play, signal, start_command, status_line};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Lines of `log` at error level (tracing's `ERROR`, and libraries' `error:` lines).
fn error_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("ERROR") || l.to_ascii_lowercase().starts_with("error")).collect()
}

/// Kills the process group `0` when dropped (the run script and the station it started).
struct KillGroupOnDrop(u32);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.0)]).status();
    }
}

/// Waits up to `limit` for `child` to exit; its exit code and how long it took.
fn wait_exit(child: &mut std::process::Child, limit: Duration) -> (Option<i32>, Duration) {
    let sent = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return (status.code(), sent.elapsed());
        }
        if sent.elapsed() > limit {
            let _ = child.kill();
            panic!("did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_quick_start_command_prints_a_link_that_plays_and_stops_on_ctrl_c() {
    let log = tempfile::NamedTempFile::new().expect("temp file");
    let mut command = Command::new(format!("{ROOT}/demos/capture-station/run"));
    // The built binary instead of a release build; the packages are the test command's (a superset).
    // Its own process group, so that a failing test takes the station down with the script.
    command.env("SCOPECAST_BIN", BIN).env_remove("DISPLAY").stderr(log.reopen().expect("log")).process_group(0);
    let mut station = start_command(&mut command);
    let _group = KillGroupOnDrop(station.child.id());
    let startup = station.startup.join("\n");
    println!("{startup}");
    assert!(station.viewer_url.starts_with("http://127.0.0.1:"), "a loopback link: {}", station.viewer_url);
    assert!(startup.contains("\noperator: http://127.0.0.1:"), "the operator's link: {startup}");
    assert!(startup.contains("no display server here"), "says how to get the monitor window: {startup}");
    let (addr, _) = addr_and_token(&station.viewer_url);
    let stats = play(&station.viewer_url, 30, 30_000);
    assert!(stats["frames"].as_u64().unwrap_or(0) >= 30, "the printed link plays as it is: {stats}");
    let health = http(&addr, "GET /healthz HTTP/1.1", "");
    assert!(status_line(&health).contains(" 200 "), "{health}");
    // Ctrl-C in a terminal signals the whole foreground process group: the script and the station.
    // (Signalling the script alone depends on its trap, which bash ignores when the script was
    // started with SIGINT ignored, as a background job of a non-interactive shell is.)
    let group = format!("-{}", station.child.id());
    Command::new("kill").args(["-INT", "--", &group]).status().expect("kill runs");
    let (code, took) = wait_exit(&mut station.child, Duration::from_secs(5));
    assert_eq!(code, Some(0), "exit code after Ctrl-C");
    assert!(took < Duration::from_secs(1), "stopped {took:?} after Ctrl-C");
    let mut stderr = String::new();
    log.reopen().expect("log").read_to_string(&mut stderr).expect("read log");
    println!("{stderr}");
    assert!(error_lines(&stderr).is_empty(), "a clean start prints no error-level line: {:?}", error_lines(&stderr));
}

#[test]
fn without_gstreamer_plugins_the_station_picks_the_embedded_encoder_says_so_and_plays() {
    let plugins = tempfile::tempdir().expect("temp dir");
    let log = tempfile::NamedTempFile::new().expect("temp file");
    let mut command = Command::new(BIN);
    command
        .args(["demo", "--headless", "--listen", "127.0.0.1:0", "--width", "640", "--height", "360"])
        .args(["--fps", "15", "--stop-after", "60"])
        // An empty plugin folder and a fresh registry: GStreamer finds no element at all.
        .env("GST_PLUGIN_SYSTEM_PATH_1_0", plugins.path())
        .env("GST_PLUGIN_SYSTEM_PATH", plugins.path())
        .env("GST_PLUGIN_PATH_1_0", plugins.path())
        .env("GST_PLUGIN_PATH", plugins.path())
        .env("GST_REGISTRY_1_0", plugins.path().join("registry.bin"))
        .env("GST_REGISTRY", plugins.path().join("registry.bin"))
        .stderr(log.reopen().expect("log"));
    let mut station = start_command(&mut command);
    let stats = play(&station.viewer_url, 30, 30_000);
    assert!(stats["frames"].as_u64().unwrap_or(0) >= 30, "plays with the embedded encoder: {stats}");
    let (addr, _) = addr_and_token(&station.viewer_url);
    let metrics = http(&addr, "GET /metrics HTTP/1.1", "");
    assert!(!metrics.contains("scopecast_encoder_errors_total 1"), "no encoder errors: {metrics}");
    signal(station.child.id(), "INT");
    wait_exit(&mut station.child, Duration::from_secs(5));
    let mut stderr = String::new();
    log.reopen().expect("log").read_to_string(&mut stderr).expect("read log");
    println!("{stderr}");
    let said = stderr.lines().filter(|l| l.contains("H.264 encoder chosen")).collect::<Vec<_>>();
    assert_eq!(said.len(), 1, "said once in the log: {stderr}");
    assert!(said[0].contains("embedded (") && said[0].contains("x264enc"), "{}", said[0]);
    assert!(error_lines(&stderr).is_empty(), "no error-level line: {:?}", error_lines(&stderr));
}

#[test]
fn the_status_line_names_the_encoder_in_use() {
    let output = Command::new(BIN)
        .args(["demo", "--headless", "--listen", "127.0.0.1:0", "--width", "320", "--height", "240"])
        .args(["--fps", "15", "--stop-after", "3"])
        .stderr(Stdio::null())
        .output()
        .expect("demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let status = stdout.lines().rfind(|l| l.starts_with("source ")).expect("a status line");
    // The test packages include x264enc and h264parse, so auto takes x264.
    assert!(status.contains(" | encoder x264 | "), "{status}");
}

#[test]
fn healthz_answers_503_with_the_reason_when_no_frame_reaches_the_viewers() {
    use scopecast_engine::clock::{FakeClock, SharedClock};
    use scopecast_engine::http::HttpServer;
    use scopecast_engine::metrics::MetricsRegistry;
    use scopecast_engine::stage_status::StageStatus;
    use scopecast_engine::station::MetricsView;
    use std::sync::Arc;
    let fake = Arc::new(FakeClock::new(10_000_000_000, 0));
    let clock: SharedClock = fake.clone();
    // A station whose encoder has failed since it started.
    let stages = Arc::new(StageStatus::new(clock.now_ns()));
    stages.fail("encoder", "encoder unavailable: no element \"x264enc\"");
    fake.advance_ns(3_000_000_000);
    let server = HttpServer::start(
        "127.0.0.1:0".parse().expect("addr"),
        MetricsView::of_registry(Arc::new(MetricsRegistry::new())).with_health(stages.clone()),
        Arc::default(),
        clock.clone(),
        None,
        scopecast_transport::auth::Tokens::new(Vec::new()),
        scopecast_engine::http::HttpOptions::default(),
    )
    .expect("server starts");
    let addr = server.local_addr.to_string();
    let dead = http(&addr, "GET /healthz HTTP/1.1", "");
    assert!(status_line(&dead).contains(" 503 "), "{dead}");
    assert!(dead.contains("no encoded frame reached the viewers for 3.") && dead.contains("x264enc"), "{dead}");
    stages.recover("encoder");
    stages.delivered(clock.now_ns());
    let alive = http(&addr, "GET /healthz HTTP/1.1", "");
    assert!(status_line(&alive).contains(" 200 "), "{alive}");
    server.stop();
}
