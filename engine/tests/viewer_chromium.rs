//! A real browser watches the station: headless Chromium (Debian's, driven
//! by playwright-core) opens the viewer page, connects over WHEP and plays
//! the stream; the page decodes the timecode strip of every presented frame.
//! Missing Chromium or playwright-core is a failure with what to install.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_scopecast");

fn node_modules() -> String {
    let dir = std::env::var("SCOPECAST_NODE_MODULES")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/node/node_modules").to_string());
    assert!(
        std::path::Path::new(&dir).join("playwright-core").exists(),
        "playwright-core not found in {dir}: the README's test command installs it (npm install --prefix target/node playwright-core)"
    );
    assert!(std::path::Path::new("/usr/bin/chromium").exists(), "/usr/bin/chromium missing: apt-get install chromium");
    dir
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args(["-s", sig, &pid.to_string()]).status();
}

/// A running demo station.
struct Station {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT/#token=…`.
    viewer_url: String,
    operator_token: String,
}

/// Starts the demo with `args`.
fn start_station(args: &[&str]) -> Station {
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let viewer_url =
        lines.by_ref().find_map(|l| l.strip_prefix("viewer: ").map(str::to_string)).expect("the viewer URL is printed");
    let operator_token = lines
        .find_map(|l| l.strip_prefix("operator token: ").map(str::to_string))
        .expect("the operator token is printed");
    // Keep reading, so the station's status lines never meet a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Station { child, viewer_url, operator_token }
}

/// Sends one HTTP/1.1 request to `addr`; returns the whole response.
fn http(addr: &str, head: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    write!(stream, "{head}\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
        .expect("send");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

/// (`127.0.0.1:PORT`, viewer token) from the viewer link.
fn addr_and_token(viewer_url: &str) -> (String, String) {
    let (origin, token) = viewer_url.split_once("/#token=").expect("the viewer link carries a token");
    (origin.trim_start_matches("http://").to_string(), token.to_string())
}

fn play(url: &str, frames: u32, timeout_ms: u32) -> serde_json::Value {
    let modules = node_modules();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/viewer/play.mjs");
    let output = Command::new("node")
        .args([script, url, &frames.to_string(), &timeout_ms.to_string()])
        .env("SCOPECAST_NODE_MODULES", modules)
        .output()
        .expect("node runs (apt-get install nodejs)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "player failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

#[test]
fn chromium_plays_300_frames_over_whep_and_reads_the_timecode() {
    let station = start_station(&["--width", "640", "--height", "360", "--fps", "30"]);
    let (addr, _) = addr_and_token(&station.viewer_url);
    let url = station.viewer_url.clone();
    let player = std::thread::spawn(move || play(&url, 300, 15_000));
    // While it plays: the viewer's RTCP figures reach /metrics and the operator's /viewers.
    let mut metrics = String::new();
    let mut viewers = String::new();
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(250));
        metrics = http(&addr, "GET /metrics HTTP/1.1", "");
        viewers =
            http(&addr, &format!("GET /viewers HTTP/1.1\r\nAuthorization: Bearer {}", station.operator_token), "");
        if metrics.contains("scopecast_viewer_rtt_seconds{") {
            break;
        }
    }
    let stats = player.join().expect("player thread");
    signal(station.child.id(), "INT");
    let rtt_line = metrics.lines().find(|l| l.starts_with("scopecast_viewer_rtt_seconds{")).unwrap_or_default();
    println!("while playing: {rtt_line}; /viewers: {}", viewers.lines().last().unwrap_or_default());
    let rtt_s: f64 = rtt_line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(-1.0);
    assert!((0.0..0.5).contains(&rtt_s), "no plausible viewer RTT from RTCP in /metrics:\n{metrics}");
    assert!(metrics.contains("scopecast_viewer_connected{viewer=") && metrics.contains(" 1\n"), "{metrics}");
    assert!(viewers.contains("\"connected\":true") && viewers.contains("\"rtt_ms\""), "{viewers}");
    let frames = stats["frames"].as_u64().unwrap_or(0);
    let decoded = stats["decoded"].as_u64().unwrap_or(0);
    let latencies: Vec<f64> =
        stats["latencies"].as_array().map(|a| a.iter().filter_map(|v| v.as_f64()).collect()).unwrap_or_default();
    println!(
        "Chromium over WHEP: {frames} frames presented, {decoded} timecodes decoded, {}x{}, in {} ms; glass-to-glass p50 {:.0} ms, p99 {:.0} ms (debug build, lavapipe)",
        stats["width"],
        stats["height"],
        stats["elapsed_ms"],
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    println!(
        "trickle PATCHes accepted {} refused {}; longest gap between frames {} ms",
        stats["patches_ok"], stats["patches_refused"], stats["max_gap_ms"]
    );
    assert_eq!(stats["state"], "connected", "{stats}");
    assert!(stats["patches_ok"].as_u64().unwrap_or(0) >= 1, "no trickle PATCH was accepted: {stats}");
    assert!(frames >= 300, "only {frames} frames in 15 s: {stats}");
    assert!(decoded * 10 >= frames * 9, "the timecode decodes in {decoded} of {frames} frames");
    assert_eq!((stats["width"].as_u64(), stats["height"].as_u64()), (Some(640), Some(360)));
}

#[test]
fn bad_whep_requests_get_4xx_and_do_not_disturb_the_station() {
    let station = start_station(&["--width", "320", "--height", "240", "--fps", "15"]);
    let base = station.viewer_url.clone();
    let (addr, token) = addr_and_token(&base);
    let auth = format!("Authorization: Bearer {token}");
    let request = |head: &str, body: &str| -> String { status_line(&http(&addr, head, body)).to_string() };
    let no_token = request("POST /whep HTTP/1.1\r\nContent-Type: application/sdp", "v=0");
    let bad_token = request(
        "POST /whep HTTP/1.1\r\nAuthorization: Bearer 0123456789abcdef\r\nContent-Type: application/sdp",
        "v=0",
    );
    let garbage =
        request(&format!("POST /whep HTTP/1.1\r\n{auth}\r\nContent-Type: application/sdp"), "this is not SDP");
    let wrong_type = request(&format!("POST /whep HTTP/1.1\r\n{auth}\r\nContent-Type: text/plain"), "v=0");
    let oversized =
        request(&format!("POST /whep HTTP/1.1\r\n{auth}\r\nContent-Type: application/sdp"), &"a".repeat(100_000));
    let unknown = request(&format!("DELETE /whep/999 HTTP/1.1\r\n{auth}"), "");
    let preflight =
        request("OPTIONS /whep HTTP/1.1\r\nOrigin: https://viewer.example\r\nAccess-Control-Request-Method: POST", "");
    // A viewer token may watch but not see who else watches; the operator may.
    let viewer_lists = request(&format!("GET /viewers HTTP/1.1\r\n{auth}"), "");
    let operator_lists =
        request(&format!("GET /viewers HTTP/1.1\r\nAuthorization: Bearer {}", station.operator_token), "");
    let patch_unknown = request(
        &format!("PATCH /whep/999 HTTP/1.1\r\n{auth}\r\nContent-Type: application/trickle-ice-sdpfrag"),
        "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n",
    );
    let patch_wrong_type = request(&format!("PATCH /whep/999 HTTP/1.1\r\n{auth}\r\nContent-Type: text/plain"), "x");
    let patch_garbage = request(
        &format!("PATCH /whep/999 HTTP/1.1\r\n{auth}\r\nContent-Type: application/trickle-ice-sdpfrag"),
        "garbage",
    );
    // After all that, a real viewer still plays; it leaves by closing the browser
    // (no DELETE), and the next viewer plays as well.
    let stats = play(&base, 30, 15_000);
    let after_vanished = play(&base, 30, 15_000);
    signal(station.child.id(), "INT");
    assert!(after_vanished["frames"].as_u64().unwrap_or(0) >= 30, "{after_vanished}");
    assert!(no_token.contains(" 401 "), "{no_token}");
    assert!(bad_token.contains(" 401 "), "{bad_token}");
    assert!(garbage.contains(" 400 "), "{garbage}");
    assert!(wrong_type.contains(" 415 "), "{wrong_type}");
    assert!(oversized.contains(" 413 "), "{oversized}");
    assert!(unknown.contains(" 404 "), "{unknown}");
    assert!(preflight.contains(" 204 "), "{preflight}");
    assert!(viewer_lists.contains(" 403 "), "{viewer_lists}");
    assert!(operator_lists.contains(" 200 "), "{operator_lists}");
    assert!(patch_unknown.contains(" 404 "), "{patch_unknown}");
    assert!(patch_wrong_type.contains(" 415 "), "{patch_wrong_type}");
    assert!(patch_garbage.contains(" 400 "), "{patch_garbage}");
    assert!(stats["frames"].as_u64().unwrap_or(0) >= 30, "{stats}");
}
