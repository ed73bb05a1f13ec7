//! Scale-out through an existing SFU: the station publishes once (WHIP, into
//! demos/janus-sfu/bridge.py, which joins it to a Janus 1.1 VideoRoom as the
//! publisher), and 8 headless Chromium viewers watch through Janus while one
//! more watches the station directly over WHEP. Prints the glass-to-glass
//! latency of both paths (timecode strip, one clock) and what Janus adds.
//! Needs Debian's `janus`, python3, Chromium and playwright-core (the README's
//! test command installs them).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scopecast_engine::clock::{SharedClock, SystemClock};
use scopecast_engine::config::Config;
use scopecast_engine::shutdown::Shutdown;
use scopecast_engine::station::Station;
use scopecast_transport::auth::{Role, Token, Tokens};
use scopecast_transport::whep::{Whep, WhepSettings};
use scopecast_transport::whip::{WhipPublisher, WhipSettings};

const VIEWERS: usize = 8;
const WHIP_TOKEN: &str = "janus-demo-publisher-token";
const VIEWER_TOKEN: &str = "janus-demo-direct-viewer-token";

fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("janus-sfu")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A child process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Janus with the demo's configs in `dir`, HTTP API on `port`.
fn start_janus(dir: &Path, port: u16) -> Running {
    let janus = Path::new("/usr/bin/janus");
    assert!(janus.exists(), "janus is missing: apt-get install janus (the README's test command installs it)");
    let template = |name: &str| std::fs::read_to_string(demo_dir().join(name)).expect("template");
    let configs = dir.display().to_string();
    std::fs::write(dir.join("janus.jcfg"), template("janus.jcfg.in").replace("@CONFIGS@", &configs)).expect("write");
    std::fs::write(
        dir.join("janus.transport.http.jcfg"),
        template("janus.transport.http.jcfg.in").replace("@PORT@", &port.to_string()),
    )
    .expect("write");
    std::fs::copy(demo_dir().join("janus.plugin.videoroom.jcfg"), dir.join("janus.plugin.videoroom.jcfg"))
        .expect("copy");
    let log = std::fs::File::create(dir.join("janus.log")).expect("log");
    let child = Command::new(janus)
        .args(["-F", &configs, "-C"])
        .arg(dir.join("janus.jcfg"))
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("janus starts");
    let running = Running(child);
    let started = Instant::now();
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(stream, "GET /janus/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.contains("server_info") {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(20), "Janus did not answer on {port}; see its log");
        std::thread::sleep(Duration::from_millis(200));
    }
    running
}

fn node_modules() -> String {
    let dir = std::env::var("SCOPECAST_NODE_MODULES")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/node/node_modules").to_string());
    assert!(
        Path::new(&dir).join("playwright-core").exists(),
        "playwright-core not found in {dir}: the README's test command installs it"
    );
    dir
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

#[test]
fn eight_viewers_watch_through_janus_and_the_harness_prints_what_janus_adds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let janus_port = free_port();
    let _janus = start_janus(dir.path(), janus_port);
    let bridge_port = free_port();
    let mut bridge = Running(
        Command::new("python3")
            .arg(demo_dir().join("bridge.py"))
            .args([&bridge_port.to_string(), &format!("http://127.0.0.1:{janus_port}/janus"), "1234", WHIP_TOKEN])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the bridge"),
    );
    let mut first = String::new();
    BufReader::new(bridge.0.stdout.take().expect("stdout")).read_line(&mut first).expect("bridge starts");
    assert!(first.starts_with("bridge: "), "{first}");

    let mut config = Config::default();
    (config.source.width, config.source.height, config.source.fps) = (640, 360, 30);
    let clock: SharedClock = Arc::new(SystemClock::new());
    let station = Station::start(&config, clock.clone(), Shutdown::new()).expect("the station starts");
    let broadcast = station.broadcast.clone().expect("encoding");
    let settings = WhepSettings {
        bind_ip: "127.0.0.1".parse().expect("ip"),
        max_viewers: 4,
        ice_servers: Vec::new(),
        initial_estimate_bps: f64::from(config.encoder.bitrate_kbps) * 1e3,
        connect_deadline: scopecast_transport::whep::CONNECT_DEADLINE,
        playout_delay_max_ms: config.http.playout_delay_max_ms,
    };
    let whep = Arc::new(Whep::new(broadcast.clone(), settings, None, scopecast_engine::clock::for_transport(&clock)));
    let server = scopecast_engine::http::HttpServer::start(
        "127.0.0.1:0".parse().expect("addr"),
        station.metrics_view(),
        station.source_status.clone(),
        clock.clone(),
        Some(whep),
        Tokens::new(vec![Token::new(VIEWER_TOKEN, Role::Viewer)]),
        scopecast_engine::http::HttpOptions::default(),
    )
    .expect("HTTP starts");
    let publisher = WhipPublisher::start(
        WhipSettings {
            url: format!("http://127.0.0.1:{bridge_port}/whip"),
            token: Some(WHIP_TOKEN.into()),
            bind_ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
            ice_servers: Vec::new(),
        },
        broadcast,
        scopecast_engine::clock::for_transport(&clock),
    )
    .expect("publisher starts");

    let output = Command::new("node")
        .arg(demo_dir().join("watch.mjs"))
        .args([
            &format!("http://127.0.0.1:{bridge_port}/"),
            &VIEWERS.to_string(),
            &format!("http://{}/#token={VIEWER_TOKEN}", server.local_addr),
            "10",
        ])
        .env("SCOPECAST_NODE_MODULES", node_modules())
        .stderr(Stdio::null())
        .output()
        .expect("node runs");
    let whip_status = publisher.status();
    publisher.stop();
    server.stop();
    station.stop(Duration::from_secs(2));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    let samples = |v: &serde_json::Value| -> Vec<f64> {
        v["latencies"].as_array().into_iter().flatten().filter_map(|x| x.as_f64()).collect()
    };
    let janus_pages = report["janus"].as_array().expect("janus pages");
    let mut through_janus: Vec<f64> = janus_pages.iter().flat_map(samples).collect();
    let mut direct = samples(&report["direct"]);
    for (i, page) in janus_pages.iter().enumerate() {
        println!(
            "Janus viewer {}: {} frames in 10 s, {}x{}, glass-to-glass p50 {} / p99 {} ms, longest gap {} ms",
            i + 1,
            page["frames"],
            page["width"],
            page["height"],
            page["p50"],
            page["p99"],
            page["max_gap_ms"]
        );
    }
    let (janus_p50, direct_p50) = (median(&mut through_janus), median(&mut direct));
    println!(
        "{VIEWERS} viewers through Janus: p50 {janus_p50:.0} ms; direct WHEP viewer: p50 {direct_p50:.0} ms \
         ({} frames); Janus adds {:.0} ms at the median (640x360 at 30 fps, lavapipe, 2 cores); WHIP sessions {}",
        report["direct"]["frames"],
        janus_p50 - direct_p50,
        whip_status.sessions
    );
    assert_eq!(janus_pages.len(), VIEWERS);
    for page in janus_pages {
        assert!(page["frames"].as_u64().unwrap_or(0) >= 150, "a Janus viewer did not play: {page}");
        assert_eq!(page["width"], 640, "{page}");
    }
    assert!(report["direct"]["frames"].as_u64().unwrap_or(0) >= 150, "{}", report["direct"]);
    assert_eq!(whip_status.sessions, 1, "published once");
}
