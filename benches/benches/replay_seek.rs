//! How fast a replay seek lands: records 12 s of the demo at 720p30 (the
//! real station, recording to a temporary folder), then replays it and seeks
//! 40 times to spread-out targets, playing and held. For each seek it times
//! the trainer's command (the data channel's sink) to the keyframe at or
//! before the target leaving the fan-out ("landed"), and to the frame after
//! it ("playing"; playing seeks only). The target: playing within
//! 300 ms. In the browser, the replay test measures the same seek to the
//! decoded picture (`engine/tests/recording.rs`).
//!
//! Run with `cargo bench -p scopecast-benches --bench replay_seek`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use scopecast_benches::quantile;
use scopecast_engine::clock::{SharedClock, SystemClock};
use scopecast_engine::config::Config;
use scopecast_engine::replay::player::Player;
use scopecast_engine::replay::replay_broadcast;
use scopecast_engine::replay::schedule::Playback;
use scopecast_engine::replay::session::RecordedSession;
use scopecast_engine::shutdown::Shutdown;
use scopecast_engine::station::Station;
use scopecast_transport::access::Who;
use scopecast_transport::auth::Role;
use scopecast_transport::broadcast::Broadcast;
use scopecast_transport::fanout::ViewerId;
use scopecast_transport::media::AccessUnit;
use scopecast_transport::protocol::Command;
use scopecast_transport::room::CommandSink;

const SEEKS: u64 = 40;

fn record(folder: &std::path::Path) -> std::path::PathBuf {
    let mut config = Config::default();
    (config.source.width, config.source.height, config.source.fps) = (1280, 720, 30);
    config.recording.enabled = true;
    config.recording.folder = folder.display().to_string();
    let clock: SharedClock = Arc::new(SystemClock::new());
    let station = Station::start(&config, clock, Shutdown::new()).expect("the station starts");
    std::thread::sleep(Duration::from_secs(12));
    if !station.stop(Duration::from_secs(2)) {
        eprintln!("a stage was slow to stop");
    }
    scopecast_engine::recorder::sessions(folder).pop().expect("a session was recorded")
}

/// Pops the viewer's queue until `wanted` says yes; the time it took from `since`.
fn wait_for(
    broadcast: &Broadcast,
    viewer: ViewerId,
    since: Instant,
    mut wanted: impl FnMut(&AccessUnit) -> bool,
) -> Option<Duration> {
    while since.elapsed() < Duration::from_secs(3) {
        let popped = broadcast.next_for(viewer);
        match popped {
            Some(au) if wanted(&au) => return Some(since.elapsed()),
            Some(_) => {}
            None => std::thread::sleep(Duration::from_micros(200)),
        }
    }
    None
}

fn drain(broadcast: &Broadcast, viewer: ViewerId) {
    while broadcast.next_for(viewer).is_some() {}
}

fn print(name: &str, mut values: Vec<f64>, misses: usize) {
    values.sort_by(f64::total_cmp);
    println!(
        "  {name:<28} p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms  ({} seeks, {misses} missed)",
        quantile(&values, 0.5),
        quantile(&values, 0.99),
        values.last().copied().unwrap_or(f64::NAN),
        values.len()
    );
}

fn main() {
    let folder = std::env::temp_dir().join(format!("scopecast-replay-seek-{}", std::process::id()));
    let dir = record(&folder);
    let session = RecordedSession::open(&dir).expect("the session opens");
    let times = session.frame_times();
    let duration_ms = times.last().map_or(0, |f| f.play_ns / 1_000_000);
    println!(
        "replay seek, 720p30 recording of {:.1} s in {} segment(s), {} frames:",
        duration_ms as f64 / 1e3,
        session.segments.len(),
        session.frames.len()
    );
    let index = Playback::new(times, 0);
    let frames = session.frames.clone();
    let clock: SharedClock = Arc::new(SystemClock::new());
    let broadcast = replay_broadcast();
    let viewer = ViewerId(1);
    let _feed = broadcast.join(viewer);
    let player = Player::start(session, broadcast.clone(), clock).expect("the player starts");
    let controls = player.controls();
    let trainer = Who { credential: "config:0".into(), name: None, role: Role::Operator };
    std::thread::sleep(Duration::from_millis(500));
    for held in [false, true] {
        if held {
            controls.apply(ViewerId(1), &trainer, &Command::Pause {}).expect("pause");
        }
        let (mut landed, mut playing, mut misses) = (Vec::new(), Vec::new(), 0);
        for i in 0..SEEKS {
            // Spread over the recording, forwards and backwards, on and between keyframes.
            let target_ms = (i * 7_919 + 1_234) % duration_ms.max(1);
            let key = index.keyframe_at_or_before(target_ms * 1_000_000).expect("a keyframe");
            let key_wall = frames[key].wall_ms;
            drain(&broadcast, viewer);
            let sent = Instant::now();
            controls.apply(ViewerId(1), &trainer, &Command::Seek { to_ms: target_ms }).expect("seek");
            match wait_for(&broadcast, viewer, sent, |au| au.keyframe && au.capture_wall_ms == key_wall) {
                Some(t) => landed.push(t.as_secs_f64() * 1e3),
                None => misses += 1,
            }
            if !held {
                let next_wall = frames.get(key + 1).map_or(u64::MAX, |f| f.wall_ms);
                if let Some(t) = wait_for(&broadcast, viewer, sent, |au| au.capture_wall_ms == next_wall) {
                    playing.push(t.as_secs_f64() * 1e3);
                }
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        let mode = if held { "held" } else { "playing" };
        print(&format!("{mode}: command → keyframe out"), landed, misses);
        if !held {
            print("playing: command → next frame", playing, 0);
        }
    }
    player.stop();
    let _ = std::fs::remove_dir_all(&folder);
}
