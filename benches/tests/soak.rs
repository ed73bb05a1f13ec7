//! The soak's 3-minute form (the bench runs 30): the real station with
//! recording on, a source that drops out and returns, viewers joining every
//! 3 s and leaving by DELETE or vanishing, an annotator drawing, a viewer
//! sending garbage, Chromium watching. The station must not panic, must stop
//! cleanly on Ctrl-C with its recording whole, keep its descriptors and
//! resident size flat after warm-up, and no viewer may freeze for over 1 s
//! (loopback: no network to blame). At 640x360 so that this 2-core machine's
//! own load does not make the freezes.
//!
//! The warm-up (70 s) ends after the first source restart: a restarted
//! GStreamer pipeline's new threads take new glibc malloc arenas, which
//! stay (measured: +16 MB at the first restart, +7 MB at the second with the
//! default arenas, +0.3 MB with `MALLOC_ARENA_MAX=2`), so in a 2-minute
//! window one restart is worth 4 to 7 MB/min of slope that is not a leak; the
//! 30-minute bench judges the ≤ 1 MB/min goal. Before the fix of vanished
//! viewers' peer connections this test measured +25.7 MB/min and +20.8
//! descriptors/min. `SCOPECAST_SOAK_SECONDS` and `SCOPECAST_SOAK_SIZE=WxH`
//! run a longer or larger form with the same checks.

use std::time::Duration;

use scopecast_benches::soak::{SoakSettings, run};

#[test]
fn three_minutes_of_churn_garbage_and_a_source_dropping_out_leave_the_station_unchanged() {
    // The station binary `cargo test --workspace` built next to this test's directory.
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|dir| dir.join("scopecast")))
        .filter(|path| path.exists())
        .expect("target/<profile>/scopecast is built by `cargo test --workspace` (cargo build -p scopecast-engine)");
    let seconds: u64 = std::env::var("SCOPECAST_SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(180);
    let (width, height) = std::env::var("SCOPECAST_SOAK_SIZE")
        .ok()
        .and_then(|s| s.split_once('x').and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?))))
        .unwrap_or((640, 360));
    let settings = SoakSettings {
        binary,
        duration: Duration::from_secs(seconds),
        warm_up: Duration::from_secs(if seconds > 600 { 120 } else { 70 }),
        width,
        height,
        fps: 30,
        join_every: Duration::from_secs(3),
        // Every minute in the short form, every 3 minutes in a long one.
        dropout_every: Duration::from_secs(if seconds > 600 { 180 } else { 60 }),
        dropout_for: Duration::from_secs(5),
        sample_every: Duration::from_secs(5),
        chromium: true,
    };
    let report = run(&settings);
    let table = report.table();
    eprintln!("{table}");
    assert!(report.panics.is_empty(), "the station panicked: {:?}\n{table}", report.panics);
    assert_eq!(report.exit, Some(0), "the station stops cleanly on Ctrl-C\n{table}");
    assert!(report.recording_ok, "the recording is whole\n{table}");
    let minutes = seconds as f64 / 60.0;
    assert!(report.dropouts >= 2, "{table}");
    assert!(f64::from(report.strokes) >= 20.0 * minutes && f64::from(report.garbage) >= 100.0 * minutes, "{table}");
    let churned = report.viewers.iter().filter(|v| v.kind == "churn").count();
    assert!(churned as f64 >= 13.0 * minutes, "viewers came and went: {churned}\n{table}");
    assert!(report.viewers.iter().any(|v| v.left == "vanished"), "{table}");
    assert!(report.refused.is_empty(), "every viewer got in: {:?}\n{table}", report.refused);
    assert!(report.viewers.iter().all(|v| v.frames > 0), "every viewer received frames\n{table}");
    let freeze = report.longest_freeze_ms();
    assert!(freeze <= 1000.0, "longest freeze {freeze:.0} ms\n{table}");
    let fds = report.slope_per_min(|s| s.fds);
    assert!(fds <= 2.0, "descriptors grow by {fds:.2}/min\n{table}");
    let rss = report.slope_per_min(|s| s.rss_mb);
    // In 2 minutes one source restart's allocator step (+7 to +9 MB with
    // glibc's default arenas) is 3.6 to 6.4 MB/min of slope on its own; the
    // leak this caught was 25.7 MB/min. The bench judges ≤ 1 MB/min over 30.
    assert!(rss <= 12.0, "RSS grows by {rss:.2} MB/min\n{table}");
}
