//! Per-viewer adaptation between the full and the reduced layer, in headless
//! Chromium: two viewers watch the demo (640×360 at 30 fps, full layer at
//! the default 6 Mbit/s, reduced 320×180 at 300 kbit/s); one of them through
//! the test's UDP relay, which after a few seconds becomes a 500 kbit/s
//! bottleneck with a 200 ms queue. That viewer's estimate (GCC over its TWCC
//! feedback) must move it to the reduced layer within a few seconds, and it
//! must keep playing; the other viewer, on a clean path, stays on the full
//! layer throughout.

mod viewer;

use std::time::{Duration, Instant};

use viewer::relay::{Impairment, LossyRelay};
use viewer::{addr_and_token, http, play, play_with, signal, start_station};

/// The `/viewers` figures of viewer `id`, if connected.
fn viewer_figures(addr: &str, operator_token: &str, id: u64) -> Option<serde_json::Value> {
    let response = http(addr, &format!("GET /viewers HTTP/1.1\r\nAuthorization: Bearer {operator_token}"), "");
    let (_, body) = response.split_once("\r\n\r\n")?;
    let all: serde_json::Value = serde_json::from_str(body).ok()?;
    all["viewers"].as_array()?.iter().find(|v| v["id"] == id && v["connected"] == true).cloned()
}

#[test]
fn a_squeezed_viewer_moves_to_the_reduced_layer_and_the_clean_one_stays_full() {
    let station = start_station(&["--width", "640", "--height", "360", "--fps", "30"]);
    let (addr, _) = addr_and_token(&station.viewer_url);
    let operator = station.operator_token.clone();
    let relay = LossyRelay::start(Impairment { loss: 0.0, max_delay: Duration::ZERO, seed: 1 });
    let env =
        [("SCOPECAST_RELAY", relay.data_addr.to_string()), ("SCOPECAST_RELAY_CONTROL", relay.control_addr.to_string())];
    // 28 s of video each.
    let url = station.viewer_url.clone();
    let squeezed_player = std::thread::spawn(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        play_with(&url, 840, 45_000, &env)
    });
    let started = Instant::now();
    while viewer_figures(&addr, &operator, 1).is_none() {
        assert!(started.elapsed() < Duration::from_secs(20), "the relayed viewer never connected");
        std::thread::sleep(Duration::from_millis(200));
    }
    let url = station.viewer_url.clone();
    let clean_player = std::thread::spawn(move || play(&url, 780, 45_000));
    std::thread::sleep(Duration::from_secs(5));
    let before = viewer_figures(&addr, &operator, 1).expect("viewer 1 connected");
    assert_eq!(before["layer"], "full", "an unsqueezed viewer starts and stays on the full layer: {before}");

    relay.set_rate(500_000);
    let squeezed_at = Instant::now();
    let mut switched_after = None;
    let mut clean_layers = std::collections::BTreeSet::new();
    let mut last = (before, serde_json::Value::Null);
    while !(squeezed_player.is_finished() && clean_player.is_finished()) {
        std::thread::sleep(Duration::from_millis(250));
        if let Some(squeezed) = viewer_figures(&addr, &operator, 1) {
            if switched_after.is_none() && squeezed["layer"] == "reduced" {
                switched_after = Some(squeezed_at.elapsed());
            }
            last.0 = squeezed;
        }
        if let Some(clean) = viewer_figures(&addr, &operator, 2) {
            clean_layers.insert(clean["layer"].as_str().unwrap_or("?").to_string());
            last.1 = clean;
        }
    }
    let squeezed = squeezed_player.join().expect("player");
    let clean = clean_player.join().expect("player");
    signal(station.child.id(), "INT");
    let bottleneck_drops = relay.counters.dropped_at_bottleneck.load(std::sync::atomic::Ordering::Relaxed);
    let switched_after = switched_after.expect("the squeezed viewer never moved to the reduced layer");
    println!(
        "squeezed to 500 kbit/s: reduced layer after {:.1} s (estimate then {} kbit/s, {} resends refused, {bottleneck_drops} packets \
         dropped at the bottleneck); squeezed viewer: {} frames, {}x{}, longest gap {:.0} ms; clean viewer: {} \
         frames, {}x{}, layers {clean_layers:?}, estimate {} kbit/s",
        switched_after.as_secs_f64(),
        last.0["estimate_kbps"],
        last.0["resends_refused"],
        squeezed["frames"],
        squeezed["width"],
        squeezed["height"],
        squeezed["max_gap_ms"].as_f64().unwrap_or(f64::NAN),
        clean["frames"],
        clean["width"],
        clean["height"],
        last.1["estimate_kbps"],
    );
    assert!(switched_after < Duration::from_secs(6), "took {switched_after:?} to switch");
    assert!(bottleneck_drops > 0, "the bottleneck never filled: was the media routed through the relay?");
    assert_eq!(squeezed["width"], 320, "the squeezed viewer ends on the reduced layer: {squeezed}");
    assert!(squeezed["frames"].as_u64().unwrap_or(0) >= 840, "the squeezed viewer kept playing: {squeezed}");
    assert_eq!(clean["width"], 640, "the clean viewer stays full-size: {clean}");
    assert!(clean["frames"].as_u64().unwrap_or(0) >= 780, "{clean}");
    assert_eq!(clean_layers.into_iter().collect::<Vec<_>>(), ["full"], "the clean viewer was never moved");
    assert!(clean["max_gap_ms"].as_f64().unwrap_or(f64::MAX) < 500.0, "the clean viewer never froze: {clean}");
}
