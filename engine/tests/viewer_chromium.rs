//! A real browser watches the station: headless Chromium (Debian's, driven
//! by playwright-core) opens the viewer page, connects over WHEP and plays
//! the stream; the page decodes the timecode strip of every presented frame.
//! Missing Chromium or playwright-core is a failure with what to install.

mod viewer;

use std::time::Duration;

use viewer::{addr_and_token, http, percentile, play, signal, start_station, status_line};

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
    assert_eq!(stats["playout_delay"], true, "the answer negotiates the playout-delay extension with Chrome");
    // The strip is read from the decoded frame's luma rows, not through a
    // whole-frame canvas (4-5 ms of the page's thread a 720p frame).
    let reader = stats["strip_reader"].as_str().unwrap_or_default();
    assert!(reader.starts_with("luma plane"), "the page read the timecode strip by {reader:?}");
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
    let receiver: Vec<f64> = stats["receiver_latencies"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    let inbound = stats["inbound"].as_array().cloned().unwrap_or_default();
    let reading = if receiver.is_empty() {
        "none".to_string()
    } else {
        format!("p50 {:.1} ms, p99 {:.1} ms", percentile(&receiver, 0.5), percentile(&receiver, 0.99))
    };
    println!(
        "abs-capture-time negotiated: {}; the receiver's own reading in {} frames: {reading}; last getStats sample: {}",
        stats["abs_capture_time"],
        receiver.len(),
        inbound.last().cloned().unwrap_or_default()
    );
    assert_eq!(stats["abs_capture_time"], true, "the page asks for abs-capture-time and the answer has it");
    assert!(receiver.len() >= 100, "Chromium reported the capture time of only {} frames", receiver.len());
    // Both readings measure capture → presentation on one clock: the receiver's may not exceed the picture's.
    assert!(
        percentile(&receiver, 0.5) <= percentile(&latencies, 0.99) + 20.0,
        "the receiver's reading {receiver:?} is far above the picture's"
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

#[test]
fn the_viewer_page_reconnects_by_itself_when_the_station_restarts() {
    let configured = viewer::ConfiguredStation::new("restart-test-viewer-token", "");
    let (port, start) = (configured.port, || configured.start());
    let mut first = start();
    std::thread::sleep(Duration::from_millis(700));
    let url = format!("http://127.0.0.1:{port}/#token=restart-test-viewer-token");
    let player = std::thread::spawn(move || play(&url, 150, 40_000));
    // Let it play, then take the station away and bring it back on the same address.
    std::thread::sleep(Duration::from_secs(6));
    signal(first.id(), "KILL");
    let _ = first.wait();
    std::thread::sleep(Duration::from_secs(2));
    let mut second = start();
    let stats = player.join().expect("player thread");
    signal(second.id(), "INT");
    let _ = second.wait();
    println!(
        "after the restart: {} frames in all, {} reconnects, longest gap {} ms, state {}",
        stats["frames"], stats["reconnects"], stats["max_gap_ms"], stats["state"]
    );
    assert!(stats["reconnects"].as_u64().unwrap_or(0) >= 1, "the page did not reconnect: {stats}");
    assert!(stats["frames"].as_u64().unwrap_or(0) >= 150, "no picture after the restart: {stats}");
    assert_eq!(stats["state"], "connected", "{stats}");
}

#[test]
fn a_full_station_answers_503_with_retry_after_and_announces_its_ice_servers() {
    let configured = viewer::ConfiguredStation::new(
        "full-test-viewer-token",
        "max_viewers = 1\n[[http.ice_servers]]\nurls = [\"turn:turn.hospital.example:3478?transport=udp\"]\n\
         username = \"or7\"\ncredential = \"s3cret\"",
    );
    let port = configured.port;
    let mut station = configured.start();
    std::thread::sleep(Duration::from_millis(700));
    let addr = format!("127.0.0.1:{port}");
    let preflight = http(&addr, "OPTIONS /whep HTTP/1.1\r\nOrigin: https://viewer.example", "");
    let url = format!("http://{addr}/#token=full-test-viewer-token");
    let player = std::thread::spawn(move || play(&url, 60, 20_000));
    let mut full = String::new();
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(250));
        if http(&addr, "GET /metrics HTTP/1.1", "").contains("scopecast_viewers 1") {
            full = http(
                &addr,
                "POST /whep HTTP/1.1\r\nAuthorization: Bearer full-test-viewer-token\r\nContent-Type: application/sdp",
                // A real browser's offer: the SDP is parsed before a seat is looked for.
                include_str!("../fuzz/corpus/whep_offer/chrome.sdp"),
            );
            break;
        }
    }
    let stats = player.join().expect("player thread");
    signal(station.id(), "INT");
    let _ = station.wait();
    assert!(status_line(&full).contains(" 503 "), "{full}");
    assert!(full.to_ascii_lowercase().contains("retry-after: 5"), "{full}");
    assert!(
        preflight.contains(
            "<turn:turn.hospital.example:3478?transport=udp>; rel=\"ice-server\"; username=\"or7\"; credential=\"s3cret\""
        ),
        "{preflight}"
    );
    assert!(stats["frames"].as_u64().unwrap_or(0) >= 60, "the one viewer plays on: {stats}");
}
