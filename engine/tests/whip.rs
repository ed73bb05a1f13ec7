//! WHIP publishing (RFC 9725) against an independent receiver: an aiortc WHIP
//! endpoint (benches/aiortc/whip_receiver.py) that checks the bearer token and
//! decodes what arrives. The station publishes the demo into it; the endpoint
//! is then killed and started again on the same port, and the station must
//! publish again by itself; a wrong token is refused and retried without
//! harming the local viewers.

mod viewer;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use viewer::{aiortc_python, signal, start_station};

const TOKEN: &str = "whip-endpoint-token-0123";

/// A running receiver and its JSON status lines.
struct Receiver {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
}

impl Receiver {
    fn start(port: u16) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../benches/aiortc/whip_receiver.py");
        let mut child = Command::new(aiortc_python())
            .args([script, &port.to_string(), TOKEN])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the WHIP receiver starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str(&line) {
                    let _ = tx.send(value);
                }
            }
        });
        let receiver = Self { child, lines };
        let first = receiver.lines.recv_timeout(Duration::from_secs(20)).expect("the receiver listens");
        assert_eq!(first["listening"], port);
        receiver
    }

    /// Waits until a status line satisfies `done`; returns the last line seen.
    fn wait_for(&self, within: Duration, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + within;
        let mut last = serde_json::Value::Null;
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
                if done(&line) {
                    return line;
                }
                last = line;
            }
        }
        panic!("not reached within {within:?}; last status {last}");
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

#[test]
fn the_station_publishes_to_a_whip_endpoint_and_comes_back_after_it_restarts() {
    let port = free_port();
    let receiver = Receiver::start(port);
    let url = format!("http://127.0.0.1:{port}/whip");
    let station =
        start_station(&["--width", "640", "--height", "360", "--fps", "30", "--whip", &url, "--whip-token", TOKEN]);
    let first = receiver.wait_for(Duration::from_secs(30), |s| s["frames"].as_u64().unwrap_or(0) >= 90);
    assert_eq!((first["width"].as_u64(), first["height"].as_u64()), (Some(640), Some(360)), "{first}");
    assert_eq!(first["sessions"], 1);
    // The endpoint goes away and comes back on the same port.
    drop(receiver);
    std::thread::sleep(Duration::from_secs(3));
    let restarted_at = Instant::now();
    let receiver = Receiver::start(port);
    let again = receiver.wait_for(Duration::from_secs(60), |s| s["frames"].as_u64().unwrap_or(0) >= 60);
    let back_after = restarted_at.elapsed();
    println!("published: {first}; after the endpoint restarted: {again}, frames flowing again within {back_after:?}");
    assert!(again["sessions"].as_u64().unwrap_or(0) >= 1);
    // Stopping the station ends the session with a DELETE.
    signal(station.child.id(), "INT");
    let deleted = receiver.wait_for(Duration::from_secs(10), |s| s["deleted"].as_u64().unwrap_or(0) >= 1);
    assert_eq!(deleted["unauthorised"], 0);
}

#[test]
fn a_wrong_token_is_refused_and_retried_without_harming_the_station() {
    let port = free_port();
    let receiver = Receiver::start(port);
    let url = format!("http://127.0.0.1:{port}/whip");
    let mut station = start_station(&["--whip", &url, "--whip-token", "not-the-right-token-at-all"]);
    let refused = receiver.wait_for(Duration::from_secs(20), |s| s["unauthorised"].as_u64().unwrap_or(0) >= 2);
    assert_eq!(refused["sessions"], 0, "{refused}");
    let (addr, _) = viewer::addr_and_token(&station.viewer_url);
    let health = viewer::http(&addr, "GET /healthz HTTP/1.1", "");
    assert!(health.starts_with("HTTP/1.1 200"), "the station serves on: {health}");
    signal(station.child.id(), "INT");
    let _ = station.child.wait();
}
