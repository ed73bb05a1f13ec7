//! Smoke test of the trainer's replay demo (`demos/trainer-replay/run`): it
//! records a short session of the demo station with a stroke drawn on it
//! (and the clean video), the session verifies, and the replay starts with
//! the trainer's and a trainee's links printed, plays and stops by itself.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `scopecast` binary the workspace's tests built (`SCOPECAST_BIN` to use another).
fn scopecast() -> PathBuf {
    let path = std::env::var_os("SCOPECAST_BIN").map(PathBuf::from).unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        target.join("debug/scopecast")
    });
    assert!(path.exists(), "{} is missing: `cargo test --workspace` builds it", path.display());
    path
}

#[test]
fn the_trainer_replay_demo_records_a_session_with_a_stroke_and_replays_it() {
    let recordings = tempfile::tempdir().expect("temp dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("trainer-replay/run");
    let output = Command::new(&script)
        .args(["--stop-after", "4"])
        .env("SCOPECAST_BIN", scopecast())
        .env("SCOPECAST_RECORDINGS", recordings.path())
        .env("RECORD_SECONDS", "6")
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    assert!(output.status.success(), "exit {:?}", output.status.code());
    for needle in ["\nviewer: http://127.0.0.1:", "\noperator: http://127.0.0.1:", "trainer's", "clean video"] {
        assert!(stdout.contains(needle), "the output lacks {needle:?}");
    }
    let playing = stdout.lines().filter(|l| l.starts_with("replay ") && l.contains("playing")).count();
    assert!(playing >= 2, "the replay reports playing once a second: {stdout}");
    let sessions: Vec<PathBuf> =
        std::fs::read_dir(recordings.path()).expect("recordings").filter_map(|e| e.ok().map(|e| e.path())).collect();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let files: Vec<String> = std::fs::read_dir(&sessions[0])
        .expect("session")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
        .collect();
    for prefix in ["segment-", "clean-", "timeline.bin", "manifest.json"] {
        assert!(files.iter().any(|f| f.starts_with(prefix)), "{prefix} in {files:?}");
    }
    let timeline = std::fs::read(sessions[0].join("timeline.bin")).expect("timeline");
    assert!(
        timeline.windows(b"Stroke".len()).any(|w| w.eq_ignore_ascii_case(b"stroke")),
        "the drawn stroke is in the recorded scene timeline"
    );
    let verify = Command::new(scopecast()).args(["recordings", "verify"]).arg(&sessions[0]).output().expect("verify");
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}
