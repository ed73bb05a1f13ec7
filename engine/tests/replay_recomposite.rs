//! A replay that draws the overlays afresh: a session recorded with its
//! clean video (`--record-clean`) while the operator drew a pinned stroke,
//! replayed to a trainer's page in headless Chromium. The recorded stroke
//! shows where it was drawn; the trainer switches the annotations layer off
//! and on and draws a stroke of their own over the held replay; the replayed
//! timecodes are the recorded capture times; the headset mode works on it as
//! on a live station; and not one byte of the
//! recording changed. gst-discoverer opens the clean segments; Chromium's
//! <video> plays a segment of each track from its file.

mod viewer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use scopecast_engine::recorder::{Track, sessions};
use scopecast_engine::replay::schedule::Playback;
use scopecast_engine::replay::session::RecordedSession;
use viewer::{node_script, send_steps, signal, start_serving, start_station};

/// Every file of a session folder with its bytes.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("session folder")
        .flatten()
        .map(|e| (e.path(), std::fs::read(e.path()).expect("readable")))
        .collect();
    files.sort();
    files
}

fn is_green(pixel: &serde_json::Value) -> bool {
    let channel = |i: usize| pixel[i].as_i64().unwrap_or(-1);
    channel(0) < 70 && channel(1) > 185 && channel(2) < 70
}

#[test]
fn a_clean_recording_replays_with_overlays_drawn_afresh_that_the_trainer_can_change() {
    let folder = tempfile::tempdir().expect("temp dir");
    let recordings = folder.path().display().to_string();
    let mut station = start_station(&[
        "--width",
        "640",
        "--height",
        "360",
        "--fps",
        "30",
        "--record",
        "--record-clean",
        "--recordings",
        &recordings,
    ]);
    let (origin, _) = station.viewer_url.split_once("/#token=").expect("viewer URL");
    let stroke = serde_json::json!([
        [0, { "type": "pen_down", "stroke": 1, "at": [0.3, 0.3], "colour": "#00ff00", "width": 16, "pinned": true }],
        [0, { "type": "pen_move", "stroke": 1, "points": [[0.5, 0.3], [0.7, 0.3]] }],
        [0, { "type": "pen_up", "stroke": 1 }],
        [3000, null]
    ]);
    let drawn = send_steps(origin, &station.operator_token, &stroke);
    assert_eq!(drawn["after"][2]["errors"], serde_json::json!([]), "{drawn}");
    signal(station.child.id(), "INT");
    let _ = station.child.wait();
    let session = sessions(folder.path()).pop().expect("a session");
    assert!(RecordedSession::has_clean_video(&session), "clean-NNNNNN.mp4 segments were written");
    let clean = RecordedSession::open_track(&session, Track::Clean).expect("the clean track opens");
    let recorded_times: Vec<u64> = clean.frames.iter().map(|f| f.wall_ms & ((1 << 36) - 1)).collect();
    let before = contents(&session);
    for segment in scopecast_engine::recorder::track_files(&session, Track::Clean) {
        let output =
            std::process::Command::new("gst-discoverer-1.0").arg(&segment).output().expect("gst-discoverer-1.0");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success() && text.contains("H.264") && text.contains("Width: 640"), "{text}");
    }
    // Chromium's own <video> plays a segment of each track from its file.
    let files: Vec<String> = [Track::Composited, Track::Clean]
        .iter()
        .filter_map(|t| scopecast_engine::recorder::track_files(&session, *t).first().map(|p| p.display().to_string()))
        .collect();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let played = node_script("mp4play.mjs", &args);
    for file in &files {
        let v = &played[file.as_str()];
        assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(640), Some(360)), "{file}: {v}");
        assert!(
            v["duration"].as_f64().unwrap_or(0.0) > 1.0 && v["played"].as_f64().unwrap_or(0.0) > 0.5,
            "{file}: {v}"
        );
        assert!(v["error"].is_null(), "{file}: {v}");
    }
    let info = std::process::Command::new(viewer::BIN)
        .args(["recordings", "info"])
        .arg(&session)
        .output()
        .expect("recordings info");
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("clean video"), "{info}");

    let session_arg = session.display().to_string();
    let replay = start_serving(&["replay", &session_arg, "--listen", "127.0.0.1:0"]);
    assert!(
        replay.startup.iter().any(|l| l.contains("overlays drawn afresh")),
        "the replay says how it plays: {:?}",
        replay.startup
    );
    let (origin, _) = replay.viewer_url.split_once("/#token=").expect("viewer URL");
    let seek_ms = 1_000;
    let key = Playback::new(clean.frame_times(), 0).keyframe_at_or_before(seek_ms * 1_000_000).expect("a keyframe");
    let key_wall = clean.frames[key].wall_ms.to_string();
    let report =
        node_script("recompose.mjs", &[origin, &replay.operator_token, "0.5", "0.3", &seek_ms.to_string(), &key_wall]);
    // The same headset mode as live (Meta's WebXR emulator): both eyes, and the controller draws over the replay.
    let vr = viewer::vr(origin, &replay.operator_token);
    drop(replay);
    std::thread::sleep(Duration::from_millis(200));
    eprintln!("replay in the headset mode: {vr}");
    assert_eq!((vr["state"].as_str(), vr["views"].as_u64()), (Some("active"), Some(2)), "{vr}");
    assert_eq!(vr["stroke_seen"], true, "the controller's stroke is drawn over the replay: {vr}");
    eprintln!("recomposited replay: {report}");
    assert_eq!(report["recorded_stroke_seen"], true, "the recorded stroke is drawn where it was");
    assert!(!is_green(&report["hidden_pixel"]), "annotations off hides it: {}", report["hidden_pixel"]);
    assert_eq!(report["shown_again"], true, "annotations on shows it again");
    assert_eq!(report["new_stroke_seen"], true, "the trainer's own stroke is drawn over the replay");
    assert_eq!(report["errors"], serde_json::json!([]));
    let seek_latency = report["seek_latency_ms"].as_f64().unwrap_or_else(|| panic!("the seek never showed: {report}"));
    eprintln!("re-composited replay (640x360, lavapipe): seek shown {seek_latency:.0} ms after the trainer sent it");
    assert!(seek_latency < 1000.0, "seek shown after {seek_latency} ms");
    let timecodes: Vec<u64> =
        report["timecodes"].as_array().into_iter().flatten().filter_map(|p| p[1].as_u64()).collect();
    assert!(timecodes.len() >= 20, "frames kept coming: {}", timecodes.len());
    for shown in &timecodes {
        let nearest = recorded_times.iter().map(|r| r.abs_diff(*shown)).min().unwrap_or(u64::MAX);
        assert!(nearest <= 2, "timecode {shown} is not a recorded capture time ({nearest} ms off)");
    }
    assert!(contents(&session) == before, "replaying (and drawing over it) left the recording untouched");
}
