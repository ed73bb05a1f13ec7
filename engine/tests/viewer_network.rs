//! The stream under a bad network and over HTTPS, watched by headless
//! Chromium: 5 % loss and 20 ms jitter through a test-controlled UDP relay
//! (NACK retransmission and PLI keep it playing), and the whole WHEP flow over
//! the self-signed HTTPS the station uses off loopback.

mod viewer;

use std::time::Duration;

use viewer::relay::{Impairment, LossyRelay};
use viewer::{addr_and_token, http, play, play_with, signal, start_station, start_station_on};

#[test]
fn playback_survives_5_percent_loss_and_20_ms_jitter() {
    let station = start_station(&["--width", "640", "--height", "360", "--fps", "30"]);
    let (addr, _) = addr_and_token(&station.viewer_url);
    let relay = LossyRelay::start(Impairment { loss: 0.05, max_delay: Duration::from_millis(20), seed: 0x5c0e });
    let env =
        [("SCOPECAST_RELAY", relay.data_addr.to_string()), ("SCOPECAST_RELAY_CONTROL", relay.control_addr.to_string())];
    let url = station.viewer_url.clone();
    let player = std::thread::spawn(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        play_with(&url, 300, 25_000, &env)
    });
    // The last view of the viewer's RTCP figures before it leaves.
    let mut viewers = String::new();
    while !player.is_finished() {
        std::thread::sleep(Duration::from_millis(500));
        let now =
            http(&addr, &format!("GET /viewers HTTP/1.1\r\nAuthorization: Bearer {}", station.operator_token), "");
        if now.contains("\"connected\":true") {
            viewers = now;
        }
    }
    let stats = player.join().expect("player thread");
    signal(station.child.id(), "INT");
    let forwarded = relay.counters.forwarded.load(std::sync::atomic::Ordering::Relaxed);
    let dropped = relay.counters.dropped.load(std::sync::atomic::Ordering::Relaxed);
    let frames = stats["frames"].as_u64().unwrap_or(0);
    let max_gap_ms = stats["max_gap_ms"].as_f64().unwrap_or(f64::MAX);
    let figures: serde_json::Value =
        viewers.split_once("\r\n\r\n").and_then(|(_, body)| serde_json::from_str(body).ok()).unwrap_or_default();
    let viewer = &figures["viewers"][0];
    println!(
        "through the relay (5 % loss, 0-20 ms jitter): {forwarded} packets forwarded, {dropped} dropped; \
         {frames} frames presented in {} ms, longest gap {max_gap_ms:.0} ms; station saw {} packets NACKed, \
         {} PLI, loss reported {}, RTT {} ms; estimate {} kbit/s, layer {}, {} resends refused",
        stats["elapsed_ms"],
        viewer["nacked_packets"],
        viewer["plis"],
        viewer["packets_lost"],
        viewer["rtt_ms"],
        viewer["estimate_kbps"],
        viewer["layer"],
        viewer["resends_refused"]
    );
    assert!(dropped > 50, "the relay dropped only {dropped} packets: was the media routed through it?");
    assert!(frames >= 300, "only {frames} frames under loss: {stats}");
    assert!(max_gap_ms <= 1000.0, "a freeze of {max_gap_ms} ms: {stats}");
    assert!(viewer["nacked_packets"].as_u64().unwrap_or(0) > 0, "no NACK reached the station: {viewers}");
}

/// This machine's address on its default route (no packet is sent).
fn routed_ipv4() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
    socket.connect("192.0.2.200:9").or_else(|_| socket.connect("10.255.255.1:9")).expect("a route off loopback");
    socket.local_addr().expect("addr").ip()
}

#[test]
fn off_loopback_the_station_speaks_https_with_a_printed_fingerprint() {
    let ip = routed_ipv4();
    assert!(!ip.is_loopback(), "this test needs an address off loopback, got {ip}");
    let station = start_station_on(&format!("{ip}:0"), &["--width", "320", "--height", "240", "--fps", "15"]);
    let fingerprint = station
        .startup
        .iter()
        .find_map(|l| l.split_once("SHA-256 fingerprint: ").map(|(_, f)| f.to_string()))
        .unwrap_or_else(|| panic!("no fingerprint printed: {:?}", station.startup));
    assert_eq!(fingerprint.split(':').count(), 32, "{fingerprint}");
    assert!(station.viewer_url.starts_with("https://"), "{}", station.viewer_url);
    let (addr, _) = addr_and_token(&station.viewer_url);
    // Plain HTTP gets no HTTP answer from a TLS port.
    let plain = http(&addr, "GET /healthz HTTP/1.1", "");
    let stats = play(&station.viewer_url, 30, 15_000);
    signal(station.child.id(), "INT");
    println!("HTTPS at {addr}, certificate SHA-256 {fingerprint}: {} frames", stats["frames"]);
    assert!(!plain.starts_with("HTTP/1.1 200"), "plain HTTP was answered: {plain}");
    assert!(stats["frames"].as_u64().unwrap_or(0) >= 30, "{stats}");
}

#[test]
fn an_independent_aiortc_peer_plays_the_stream_beside_chromium() {
    let station = start_station(&["--width", "640", "--height", "360", "--fps", "30"]);
    let (addr, token) = addr_and_token(&station.viewer_url);
    let url = station.viewer_url.clone();
    let chromium = std::thread::spawn(move || play(&url, 150, 20_000));
    let aiortc = viewer::play_aiortc(&format!("http://{addr}/whep"), &token, 150, 20, &[]);
    let chromium = chromium.join().expect("chromium thread");
    signal(station.child.id(), "INT");
    let frames = aiortc["frames"].as_u64().unwrap_or(0);
    let decoded = aiortc["decoded"].as_u64().unwrap_or(0);
    println!(
        "aiortc peer: {frames} frames ({}x{}), {decoded} timecodes decoded; Chromium beside it: {} frames",
        aiortc["width"], aiortc["height"], chromium["frames"]
    );
    assert!(frames >= 150, "aiortc got {frames} frames: {aiortc}");
    assert!(decoded * 10 >= frames * 9, "aiortc decoded the timecode in {decoded} of {frames} frames");
    assert_eq!((aiortc["width"].as_u64(), aiortc["height"].as_u64()), (Some(640), Some(360)));
    assert!(chromium["frames"].as_u64().unwrap_or(0) >= 150, "{chromium}");
}

#[test]
fn a_viewer_sending_garbage_rtcp_disturbs_nobody_else() {
    let station = start_station(&["--width", "640", "--height", "360", "--fps", "30"]);
    let (addr, token) = addr_and_token(&station.viewer_url);
    let url = station.viewer_url.clone();
    let chromium = std::thread::spawn(move || play(&url, 300, 25_000));
    std::thread::sleep(Duration::from_secs(2));
    let vandal = viewer::play_aiortc(&format!("http://{addr}/whep"), &token, 240, 20, &["--garbage-rtcp"]);
    let chromium = chromium.join().expect("chromium thread");
    let metrics = http(&addr, "GET /metrics HTTP/1.1", "");
    let health = http(&addr, "GET /healthz HTTP/1.1", "");
    signal(station.child.id(), "INT");
    let keyframes: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("scopecast_encoder_keyframes_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::MAX);
    let elapsed_s = chromium["elapsed_ms"].as_f64().unwrap_or(0.0) / 1e3;
    println!(
        "hostile viewer sent {} garbage RTCP packets ({} refused locally) while playing {} frames; \
         Chromium beside it: {} frames in {elapsed_s:.1} s, longest gap {} ms; {keyframes} keyframes in all",
        vandal["garbage_rtcp_sent"],
        vandal["garbage_rtcp_refused"],
        vandal["frames"],
        chromium["frames"],
        chromium["max_gap_ms"]
    );
    assert!(vandal["garbage_rtcp_sent"].as_u64().unwrap_or(0) > 1000, "{vandal}");
    assert!(chromium["frames"].as_u64().unwrap_or(0) >= 300, "{chromium}");
    assert!(chromium["max_gap_ms"].as_f64().unwrap_or(f64::MAX) <= 1000.0, "{chromium}");
    assert!(health.contains(" 200 "), "{health}");
    // PLI/FIR floods are rate-limited: one GOP keyframe a second plus at most two forced ones.
    assert!(keyframes <= 3.0 * (elapsed_s + 3.0), "{keyframes} keyframes in {elapsed_s} s");
}
