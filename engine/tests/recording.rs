//! Session recording with the real station: SIGKILL mid-recording and the
//! repair on the next start (what survives, what is lost), a disk that fills
//! up under a recording while a viewer keeps watching, and the recordings CLI
//! on corrupt and foreign files.

mod viewer;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use scopecast_engine::recorder::format::TimelineRecord;
use scopecast_engine::recorder::{mp4, segment_files, sessions, timeline};
use scopecast_engine::replay::schedule::Playback;
use scopecast_engine::replay::session::RecordedSession;
use viewer::{BIN, addr_and_token, http, node_script, play, send_steps, signal, start_serving, start_station};

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest")).expect("JSON manifest")
}

fn cli(args: &[&str]) -> (bool, String) {
    let output = Command::new(BIN).args(args).output().expect("scopecast runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// The wall time (Unix ms) up to which a session holds video: the last
/// segment's start plus its samples' durations.
fn recorded_until_ms(dir: &Path) -> u64 {
    let records =
        timeline::read(&std::fs::read(dir.join("timeline.bin")).expect("timeline")).expect("a timeline").records;
    let last = records
        .iter()
        .rev()
        .find_map(|r| match r {
            TimelineRecord::Segment(segment) => Some(*segment),
            _ => None,
        })
        .expect("a segment record");
    let index = last.index;
    let path = dir.join(format!("segment-{index:06}.mp4"));
    let samples = mp4::read_samples(&std::fs::read(&path).expect("segment")).expect("readable segment");
    let ticks: u64 = samples.iter().map(|(_, s)| u64::from(s.duration)).sum();
    last.wall_ms + ticks * 1000 / mp4::TIMESCALE
}

fn gst_discoverer(path: &Path) -> String {
    let output = Command::new("gst-discoverer-1.0")
        .arg(path)
        .output()
        .expect("gst-discoverer-1.0 runs (apt-get install gstreamer1.0-plugins-base-apps)");
    assert!(output.status.success(), "gst-discoverer failed on {}", path.display());
    String::from_utf8_lossy(&output.stdout).to_string()
}

#[test]
fn a_sigkilled_recording_is_repaired_on_the_next_start_and_loses_at_most_two_seconds() {
    let folder = tempfile::tempdir().expect("temp dir");
    let recordings = folder.path().display().to_string();
    let station =
        start_station(&["--width", "640", "--height", "360", "--fps", "30", "--record", "--recordings", &recordings]);
    std::thread::sleep(Duration::from_secs(20));
    let killed_at_ms = wall_ms();
    let mut station = station;
    signal(station.child.id(), "KILL");
    let _ = station.child.wait();
    let found = sessions(folder.path());
    assert_eq!(found.len(), 1, "one session");
    let session: PathBuf = found[0].clone();
    assert_eq!(manifest(&session)["state"], "recording", "a killed station cannot have finished it");

    // The next start finds it and repairs it.
    let status = Command::new(BIN)
        .args(["demo", "--width", "320", "--height", "240", "--recordings", &recordings, "--stop-after", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("restarts");
    assert!(status.success());
    let repaired = manifest(&session);
    assert_eq!(repaired["state"], "repaired", "{repaired}");
    let session_arg = session.display().to_string();
    let (ok, verified) = cli(&["recordings", "verify", &session_arg]);
    assert!(ok, "the repaired session verifies: {verified}");
    let (ok, info) = cli(&["recordings", "info", &session_arg]);
    assert!(ok && info.contains("repaired"), "{info}");
    let lost_ms = killed_at_ms.saturating_sub(recorded_until_ms(&session));
    let segments = segment_files(&session);
    for segment in &segments {
        let discovered = gst_discoverer(segment);
        assert!(discovered.contains("H.264") && discovered.contains("Width: 640"), "{discovered}");
    }
    println!(
        "SIGKILL after 20 s of recording: {} segment(s) survive, the last {lost_ms} ms before the kill were lost; \
         repair cut {} bytes; {}",
        segments.len(),
        repaired["repair"]["cut_bytes"],
        verified.trim()
    );
    assert!(lost_ms <= 2000, "lost {lost_ms} ms");
    assert!(segments.len() >= 4, "20 s in 4 s segments");
    readers_agree_on_a_segment_without_a_whole_fragment(&session, segments.len());
    replays_to_a_trainer_and_a_trainee(&session);
}

/// A kill right after a segment was opened leaves only its header: `verify`,
/// `info` and the replay's reader must count the same segments (it once was
/// "ok" for verify and left out by replay).
fn readers_agree_on_a_segment_without_a_whole_fragment(session: &Path, segments: usize) {
    let first = std::fs::read(&segment_files(session)[0]).expect("a segment");
    let (sps, pps) = mp4::stored_parameter_sets(&first).expect("avcC");
    let header_only = session.join("segment-999999.mp4");
    std::fs::write(&header_only, mp4::init_segment(640, 360, &sps, &pps)).expect("write");
    let session_arg = session.display().to_string();
    let (ok, verified) = cli(&["recordings", "verify", &session_arg]);
    let (_, info) = cli(&["recordings", "info", &session_arg]);
    let replayed = RecordedSession::open(session).expect("the replay reads it");
    std::fs::remove_file(&header_only).expect("remove");
    assert!(ok, "{verified}");
    let counted = format!("{segments} segment(s)");
    assert!(verified.contains(&counted) && verified.contains("left out: segment-999999.mp4"), "{verified}");
    assert!(info.contains(&counted) && info.contains("left out: segment-999999.mp4"), "{info}");
    assert_eq!(replayed.segments.len(), segments, "the replay counts what verify counts");
    assert!(replayed.skipped.iter().any(|s| s.contains("segment-999999.mp4")), "{:?}", replayed.skipped);
}

/// The timecodes a page presented: [[Date.now() ms, low 36 bits of the recorded Unix ms], …].
fn timecodes(value: &serde_json::Value) -> Vec<(f64, u64)> {
    value.as_array().into_iter().flatten().filter_map(|pair| Some((pair[0].as_f64()?, pair[1].as_u64()?))).collect()
}

/// Recorded ms per wall ms over a phase (least squares), and how many frames it had.
fn pace(presented: &[(f64, u64)]) -> (f64, usize) {
    let n = presented.len() as f64;
    let (t0, v0) = presented.first().map_or((0.0, 0), |p| *p);
    let xs: Vec<f64> = presented.iter().map(|(t, _)| t - t0).collect();
    let ys: Vec<f64> = presented.iter().map(|(_, v)| *v as f64 - v0 as f64).collect();
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    (sxy / sxx, presented.len())
}

/// `scopecast replay` of `session` to a trainer's and a trainee's page in
/// headless Chromium: what the trainee sees is the recording (timecodes
/// match the recorded capture times), and the trainer's seek, speed and
/// pause change it; the trainee cannot.
fn replays_to_a_trainer_and_a_trainee(session: &Path) {
    const MASK: u64 = (1 << 36) - 1;
    let recorded = RecordedSession::open(session).expect("the repaired session opens for replay");
    let recorded_times: Vec<u64> = recorded.frames.iter().map(|f| f.wall_ms & MASK).collect();
    let seek_ms = 1_500;
    let key = Playback::new(recorded.frame_times(), 0).keyframe_at_or_before(seek_ms * 1_000_000).expect("a keyframe");
    let key_wall = recorded.frames[key].wall_ms;
    let session_arg = session.display().to_string();
    let replay = start_serving(&["replay", &session_arg, "--listen", "127.0.0.1:0"]);
    let (origin, trainee_token) = replay.viewer_url.split_once("/#token=").expect("viewer URL with a token");
    let report = node_script(
        "replay.mjs",
        &[origin, &replay.operator_token, trainee_token, &seek_ms.to_string(), &key_wall.to_string()],
    );
    drop(replay);
    let summary: serde_json::Value = report
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_array().map_or(v.clone(), |a| a.len().into()))).collect())
        .unwrap_or_default();
    eprintln!("replay report (phases as frame counts): {summary}");
    assert_eq!(report["trainer_role"], "operator");
    assert_eq!(report["trainee_role"], "viewer");
    assert_eq!(report["bar_shown"], true, "the trainee's page shows where the replay is");
    assert_eq!(report["trainee_controls_disabled"], true);
    assert_eq!(report["trainer_tools_shown"], false, "nothing can be drawn over the stream as recorded");
    assert_eq!(report["trainer_draw_errors"], serde_json::json!(["refused"]), "and drawing is refused in words");

    let normal = timecodes(&report["normal"]);
    assert!(normal.len() >= 40, "2 s of 30 fps frames decoded: {}", normal.len());
    for (_, shown) in &normal {
        let nearest = recorded_times.iter().map(|r| r.abs_diff(*shown)).min().unwrap_or(u64::MAX);
        assert!(nearest <= 2, "timecode {shown} is not a recorded capture time (nearest {nearest} ms away)");
    }
    let (normal_pace, _) = pace(&normal);
    assert!((0.85..=1.15).contains(&normal_pace), "1×: recorded time advanced {normal_pace:.2}× wall time");
    let errors: Vec<&str> =
        report["trainee_errors"].as_array().into_iter().flatten().filter_map(|c| c.as_str()).collect();
    assert!(errors.contains(&"forbidden"), "the trainee cannot seek: {errors:?}");
    let seek_latency = report["seek_latency_ms"].as_f64().unwrap_or_else(|| panic!("the seek never showed: {report}"));
    let first_shown = report["seek_first_shown"].as_u64().unwrap_or(0);
    let key_masked = key_wall & MASK;
    assert!(
        (key_masked..key_masked + 100).contains(&first_shown),
        "the seek landed on the keyframe at or before the target ({key_masked}) or the frames right after it: \
         {first_shown}"
    );
    let (fast, fast_frames) = pace(&timecodes(&report["fast"]));
    let (slow, slow_frames) = pace(&timecodes(&report["slow"]));
    eprintln!(
        "replay in Chromium: seek to {seek_ms} ms shown (keyframe at {key_wall}) {seek_latency:.0} ms after the \
         trainer sent it; 1× pace {normal_pace:.2}, 2× {fast:.2} ({fast_frames} frames in 2 s), 0.5× {slow:.2} \
         ({slow_frames} frames)"
    );
    assert!(seek_latency < 1000.0, "seek shown after {seek_latency} ms");
    assert!((1.7..=2.3).contains(&fast), "2×: recorded time advanced {fast:.2}× wall time");
    assert!((0.4..=0.6).contains(&slow), "0.5×: recorded time advanced {slow:.2}× wall time");
    assert_eq!(report["trainee_speed"], 0.5, "the trainee's page follows the speed");
    assert_eq!(report["trainee_paused"], true, "and the hold");
    let held: std::collections::BTreeSet<u64> = timecodes(&report["held"]).iter().map(|(_, v)| *v).collect();
    assert!(held.len() <= 1, "nothing moves while held: {held:?}");
    assert_eq!(
        (&report["ui_paused"], &report["ui_speed"], &report["ui_playing"]),
        (&serde_json::json!(true), &serde_json::json!(4), &serde_json::json!(true)),
        "the page's hold button and speed list work, and the trainee follows"
    );
    let resumed = timecodes(&report["resumed"]);
    assert!(resumed.len() >= 10 && pace(&resumed).0 > 0.3, "playing again after the hold: {resumed:?}");
}

#[test]
fn the_operator_starts_and_stops_recording_from_the_viewer_page() {
    let folder = tempfile::tempdir().expect("temp dir");
    let recordings = folder.path().display().to_string();
    let station = start_station(&["--width", "320", "--height", "240", "--fps", "30", "--recordings", &recordings]);
    let (origin, viewer_token) = station.viewer_url.split_once("/#token=").expect("viewer URL with a token");
    let record = |on: bool| serde_json::json!({ "type": "record", "on": on });
    let viewer = send_steps(origin, viewer_token, &serde_json::json!([[0, record(true)]]));
    assert_eq!(viewer["record_button"], false, "a viewer has no record button");
    assert_eq!(viewer["after"][0]["errors"], serde_json::json!(["forbidden"]), "{viewer}");
    assert!(sessions(folder.path()).is_empty(), "a viewer cannot start a recording");
    let operator =
        send_steps(origin, &station.operator_token, &serde_json::json!([[0, record(true)], [3000, record(false)]]));
    drop(station);
    assert_eq!(operator["role"], "operator");
    assert_eq!(operator["record_button"], true, "{operator}");
    assert_eq!(operator["after"][0]["recording"], true, "{operator}");
    assert_eq!(operator["after"][1]["recording"], false, "{operator}");
    let found = sessions(folder.path());
    assert_eq!(found.len(), 1, "one session recorded");
    assert_eq!(manifest(&found[0])["state"], "finished");
    let recorded = RecordedSession::open(&found[0]).expect("it replays");
    let seconds = recorded.frames.last().map_or(0, |f| f.play_ns) as f64 / 1e9;
    eprintln!("recorded from the operator's page: {} frames, {seconds:.1} s", recorded.frames.len());
    // The 3.3 s between start and stop: the start asks the encoder for a keyframe (forced ones are
    // at least 0.5 s apart, and the page forced one when it joined).
    assert!((2.5..=4.0).contains(&seconds), "about the 3.3 s between start and stop: {seconds:.1} s");
}

#[test]
fn a_full_disk_marks_a_gap_raises_an_alarm_and_the_live_stream_carries_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).expect("mount point");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&disk)
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "mounting a 3 MB tmpfs failed: this test needs root (CAP_SYS_ADMIN) to fill a small disk");
    let recordings = disk.display().to_string();
    let station =
        start_station(&["--width", "640", "--height", "360", "--fps", "30", "--record", "--recordings", &recordings]);
    let (addr, _) = addr_and_token(&station.viewer_url);
    let url = station.viewer_url.clone();
    let player = std::thread::spawn(move || play(&url, 240, 30_000));
    let metric = |text: &str, name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok())).unwrap_or(f64::NAN)
    };
    let (mut alarm_seen, mut gaps, mut fps_readings) = (false, 0.0, Vec::new());
    for second in 0..12 {
        std::thread::sleep(Duration::from_secs(1));
        let metrics = http(&addr, "GET /metrics HTTP/1.1", "");
        alarm_seen |= metric(&metrics, "scopecast_recording_error ") == 1.0;
        gaps = metric(&metrics, "scopecast_recording_gaps_total ");
        if second >= 2 {
            fps_readings.push(metric(&metrics, "scopecast_stage_fps{stage=\"encoder\"} "));
        }
    }
    let stats = player.join().expect("player");
    let mut station = station;
    signal(station.child.id(), "INT");
    let exited = station.child.wait().expect("exits");
    let _ = Command::new("umount").arg(&disk).status();
    fps_readings.sort_by(f64::total_cmp);
    // The median of one-second readings: other tests share the two cores, so a single second can dip.
    let median_fps = fps_readings.get(fps_readings.len() / 2).copied().unwrap_or(f64::NAN);
    let min_fps = fps_readings.first().copied().unwrap_or(f64::NAN);
    println!(
        "3 MB disk: alarm raised {alarm_seen}, {gaps} gap(s) recorded; encoder median {median_fps:.1} fps (lowest second \
         {min_fps:.1}); viewer {} frames, longest gap {} ms",
        stats["frames"], stats["max_gap_ms"]
    );
    assert!(alarm_seen, "scopecast_recording_error never went to 1");
    assert!(gaps >= 1.0, "no gap recorded");
    assert!(median_fps >= 25.0, "the live path slowed to {median_fps} fps");
    assert!(stats["frames"].as_u64().unwrap_or(0) >= 240, "the viewer kept playing: {stats}");
    assert!(stats["max_gap_ms"].as_f64().unwrap_or(f64::MAX) < 500.0, "the viewer froze: {stats}");
    assert!(exited.success(), "the station stops cleanly with a full disk");
}

#[test]
fn the_recordings_cli_says_what_is_wrong_with_corrupt_and_foreign_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).expect("dir");
    std::fs::write(foreign.join("manifest.json"), r#"{"format": "someone-else/3"}"#).expect("write");
    let (ok, text) = cli(&["recordings", "info", &foreign.display().to_string()]);
    assert!(!ok && text.contains("foreign manifest"), "{text}");

    let corrupt = dir.path().join("corrupt");
    std::fs::create_dir(&corrupt).expect("dir");
    std::fs::write(
        corrupt.join("manifest.json"),
        r#"{"format": "scopecast-recording/1", "session": "corrupt", "state": "finished"}"#,
    )
    .expect("write");
    std::fs::write(corrupt.join("segment-000001.mp4"), b"this is no mp4 at all, just text").expect("write");
    std::fs::write(corrupt.join("timeline.bin"), b"SCTL0001\xff\xff\xff\x7f").expect("write");
    let (ok, text) = cli(&["recordings", "verify", &corrupt.display().to_string()]);
    assert!(!ok, "{text}");
    assert!(text.contains("segment-000001.mp4: not a scopecast MP4 segment"), "{text}");
    assert!(text.contains("timeline.bin") && !text.contains("panicked"), "{text}");
    let (ok, text) = cli(&["recordings", "info", &dir.path().join("nothing").display().to_string()]);
    assert!(!ok && text.contains("no readable manifest.json"), "{text}");
    let (ok, text) = cli(&["recordings", "list", &dir.path().display().to_string()]);
    assert!(ok && text.contains("corrupt") && text.contains("foreign"), "{text}");
    let archive = dir.path().join("corrupt.tar");
    let (ok, text) =
        cli(&["recordings", "export", &corrupt.display().to_string(), "--out", &archive.display().to_string()]);
    assert!(ok, "{text}");
    let listing = Command::new("tar").arg("tf").arg(&archive).output().expect("tar");
    let names = String::from_utf8_lossy(&listing.stdout);
    assert!(names.contains("corrupt/manifest.json") && names.contains("corrupt/segment-000001.mp4"), "{names}");

    // Replay refuses them in words too, before serving anything.
    for (session, expected) in [
        (&foreign, "foreign manifest"),
        (&corrupt, "no playable frames"),
        (&dir.path().join("nothing"), "no readable manifest"),
    ] {
        let (ok, text) = cli(&["replay", &session.display().to_string(), "--listen", "127.0.0.1:0"]);
        assert!(!ok && text.contains(expected) && !text.contains("panicked"), "{text}");
    }
}
