//! Telestration end to end: two viewer pages in headless Chromium on a real
//! station (synthetic endoscope, lavapipe compositor, x264, WHEP). An
//! annotator draws over the data channel and with the mouse on a letterboxed
//! page; the watcher's decoded video must show the strokes and lose them on
//! undo; refusals go back to the sender alone; presence lists both.

mod viewer;

use std::time::Duration;

use viewer::{ConfiguredStation, draw, percentile, signal};

const ANNOTATOR: &str = "telestration-annotator-token";
const WATCHER: &str = "telestration-watcher-token";

#[test]
fn strokes_reach_every_viewer_and_bad_messages_harm_only_their_sender() {
    let configured =
        ConfiguredStation::new(WATCHER, &format!("[[http.tokens]]\ntoken = \"{ANNOTATOR}\"\nrole = \"annotator\"\n"));
    let mut station = configured.start();
    std::thread::sleep(Duration::from_millis(700));
    let report = draw(&format!("http://127.0.0.1:{}", configured.port), ANNOTATOR, WATCHER, 8);
    signal(station.id(), "INT");
    let _ = station.wait();
    eprintln!("{report:#}");

    assert_eq!(report["roles"]["annotator"], "annotator");
    assert_eq!(report["roles"]["watcher"], "viewer");
    let presence = report["presence"].as_array().expect("presence list");
    let names: Vec<&str> = presence.iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(names.contains(&"Dr A") && names.contains(&"Watcher B"), "presence: {presence:?}");

    let codes = |who: &str| -> Vec<String> {
        report["errors_seen"][who]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(String::from))
            .collect()
    };
    assert_eq!(codes("watcher"), ["forbidden"], "the watcher hears only its own refusal");
    for code in ["malformed", "too_large", "version", "refused", "rate_limited"] {
        assert!(codes("annotator").iter().any(|c| c == code), "annotator got no {code}: {:?}", codes("annotator"));
    }
    assert!(report["watcher_still_playing"].as_u64().unwrap_or(0) > 30, "the watcher kept playing");

    let latencies: Vec<f64> =
        report["latencies_ms"].as_array().expect("latencies").iter().filter_map(|v| v.as_f64()).collect();
    assert_eq!(report["misses"], 0, "every stroke showed in the watcher's video: {report}");
    assert_eq!(latencies.len(), 8);
    assert_eq!(report["undo_cleared"], 8, "every undo cleared the spot");
    eprintln!(
        "pen-to-video (320x240@15, lavapipe): p50 {:.0} ms, max {:.0} ms over {} strokes",
        percentile(&latencies, 0.5),
        percentile(&latencies, 1.0),
        latencies.len()
    );
    assert_eq!(report["mouse_stroke_seen"], true, "a mouse stroke on a letterboxed page lands on the same image point");
}

/// The headset path, in headless Chromium with Meta's WebXR emulator (iwer,
/// a Quest 3 with Touch controllers): "Enter VR" appears, immersive-vr
/// renders two views, a side-by-side source gives each eye its half, and the
/// right controller's ray draws a stroke that shows up in the video where
/// the ray hit the virtual screen.
#[test]
fn a_headset_sees_one_half_per_eye_and_its_controller_draws() {
    let configured =
        ConfiguredStation::new(WATCHER, &format!("[[http.tokens]]\ntoken = \"{ANNOTATOR}\"\nrole = \"annotator\"\n"));
    let mut station = configured.start();
    std::thread::sleep(Duration::from_millis(700));
    let report = viewer::vr(&format!("http://127.0.0.1:{}", configured.port), ANNOTATOR);
    signal(station.id(), "INT");
    let _ = station.wait();
    eprintln!("{report}");
    assert_eq!(report["button_visible"], true, "Enter VR is offered");
    assert_eq!(report["state"], "active");
    assert_eq!(report["views"], 2);
    assert_eq!(report["eyes"], serde_json::json!(["left", "right"]));
    assert_eq!(report["uv"], serde_json::json!([[0.5, 0], [0.5, 0.5]]), "left eye the left half, right eye the right");
    // Aimed 0.2 m right and 0.1 m below the head, straight ahead, at a 2.4 m
    // wide screen 2.5 m away: u = 0.5 + 0.2 / 2.4 of the left half, v = 0.5 +
    // 0.1 / (2.4 × 240 / 160).
    let hit: Vec<f64> = report["hit"].as_array().expect("hit").iter().filter_map(|v| v.as_f64()).collect();
    assert!((hit[0] - (0.5 + 0.2 / 2.4) * 0.5).abs() < 1e-3, "hit {hit:?}");
    assert!((hit[1] - (0.5 + 0.1 / 3.6)).abs() < 1e-3, "hit {hit:?}");
    assert_eq!(report["strokes"], 1);
    assert_eq!(report["stroke_seen"], true, "the controller's stroke is in the video: {report}");
    assert_eq!(report["errors"], serde_json::json!([]));
}
