//! `scopecast replay SESSION --listen ADDR:PORT`: a recorded session
//! streamed over WHEP to the same viewer page (and headset mode) as live.
//! The trainer (an operator token) pauses, seeks and changes the speed from
//! the page; every trainee watching follows.
//!
//! Two ways, chosen by what the session holds:
//! - with clean video (`record_clean`): the station's own pipeline runs on
//!   it — compositor (overlays drawn afresh from the recorded timeline),
//!   encoder, WHEP — so the trainer can switch layers and draw; nothing is
//!   written to the recording;
//! - otherwise (or `--as-recorded`): the composited stream as it was
//!   recorded goes out without a decode or an encode.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use scopecast_engine::clock::{SharedClock, SystemClock};
use scopecast_engine::config::Config;
use scopecast_engine::metrics::MetricsRegistry;
use scopecast_engine::recorder::Track;
use scopecast_engine::replay::player::{Player, PlayerControls, Shared};
use scopecast_engine::replay::replay_broadcast;
use scopecast_engine::replay::scene_track::scene_track;
use scopecast_engine::replay::session::{RecordedSession, timeline_records};
use scopecast_engine::replay::source::ReplaySource;
use scopecast_engine::shutdown::{POLL_INTERVAL, Shutdown};
use scopecast_engine::source::supervisor::SourceStatus;
use scopecast_engine::station::endpoints::{EndpointParts, Endpoints};
use scopecast_engine::station::{MetricsView, Station};
use scopecast_engine::tracking::recorded_poses::RecordedPoses;
use scopecast_transport::protocol::Notice;
use scopecast_transport::room::CommandSink;

/// Serves `dir` until Ctrl-C or `stop_after_s`.
pub fn run(config: &Config, dir: &Path, as_recorded: bool, stop_after_s: Option<f64>) -> anyhow::Result<()> {
    if config.http.listen.as_deref().and_then(|l| l.parse::<std::net::SocketAddr>().ok()).is_none() {
        bail!("a replay is watched over WHEP: give --listen ADDR:PORT (or [http] listen in --config)");
    }
    let recomposite = !as_recorded && RecordedSession::has_clean_video(dir);
    let track = if recomposite { Track::Clean } else { Track::Composited };
    let session = RecordedSession::open_track(dir, track)?;
    let last = session.frames.last().map_or(0, |f| f.play_ns);
    println!(
        "replaying {} ({}): {} frames, {:.1} s, {} segment(s); {}",
        session.name,
        session.state,
        session.frames.len(),
        last as f64 / 1e9,
        session.segments.len(),
        if recomposite {
            "clean video, overlays drawn afresh (layers and drawing work; the recording is not altered)"
        } else {
            "the composited stream as recorded"
        }
    );
    if session.state == scopecast_engine::recorder::format::SessionState::Recording {
        println!("unfinished session (the station crashed or still records it): playing up to its last whole fragment");
    }
    for skipped in &session.skipped {
        println!("left out: {skipped}");
    }
    println!(
        "the operator link is the trainer's (play/hold, seek, speed); viewer links are the trainees' (they follow)"
    );
    let shutdown = Shutdown::new();
    let on_signal = shutdown.clone();
    ctrlc::set_handler(move || on_signal.trigger()).context("cannot install the SIGINT/SIGTERM handler")?;
    let clock: SharedClock = Arc::new(SystemClock::new());
    if recomposite {
        let records = timeline_records(dir);
        let (scenes, poses) = (scene_track(&records), RecordedPoses::from_timeline(&records));
        let mut config = config.clone();
        config.source.fps = recorded_fps(&session);
        config.recording.enabled = false;
        // Tracked models are placed where the recording drew them, frame by
        // frame (its `poses` records): no trackers or registration desk here.
        config.tracking.trackers.clear();
        config.registration = Default::default();
        let shared = Shared::new(session.frame_times(), clock.clone());
        let (for_source, source_clock) = (shared.clone(), clock.clone());
        let repeat_ns = 1_000_000_000 / u64::from(config.source.fps.max(1));
        let station = Station::start_with_source(
            &config,
            clock.clone(),
            shutdown.clone(),
            Box::new(move |scene| {
                Box::new(ReplaySource::new(session, for_source, scenes, scene, source_clock, repeat_ns))
            }),
            poses,
        )
        .context("cannot start the replay's pipeline")?;
        let broadcast = station.broadcast.clone().context("a replay needs the encoder (encoder.enabled = true)")?;
        let drawing: Arc<dyn CommandSink> = station.commands.clone();
        let controls: Arc<dyn CommandSink> = Arc::new(PlayerControls::new(shared.clone(), Some(drawing)));
        let parts = EndpointParts {
            broadcast: Some(broadcast),
            commands: Some(controls),
            metrics: station.metrics_view(),
            source: station.source_status.clone(),
            recorder: None,
            publish_whip: false,
            announcements: None,
            snapshots: station.snapshots.clone(),
        };
        let endpoints = start_endpoints(&config, parts, &clock)?;
        report_until_stopped(&shutdown, &clock, stop_after_s, || (shared.state(), endpoints.viewer_count()));
        endpoints.stop();
        shared.stop();
        station.stop(std::time::Duration::from_millis(800));
    } else {
        let source = Arc::new(Mutex::new(SourceStatus {
            description: format!("replay of {}", session.name),
            ..SourceStatus::default()
        }));
        let broadcast = replay_broadcast();
        let player = Player::start(session, broadcast.clone(), clock.clone()).context("cannot start the player")?;
        let controls: Arc<dyn CommandSink> = player.controls();
        let parts = EndpointParts {
            broadcast: Some(broadcast),
            commands: Some(controls),
            metrics: MetricsView::of_registry(Arc::new(MetricsRegistry::new())),
            source,
            recorder: None,
            publish_whip: false,
            announcements: None,
            snapshots: None,
        };
        let endpoints = start_endpoints(config, parts, &clock)?;
        report_until_stopped(&shutdown, &clock, stop_after_s, || (player.state(), endpoints.viewer_count()));
        endpoints.stop();
        player.stop();
    }
    Ok(())
}

/// The endpoints of the replay, with the operator's links printed.
fn start_endpoints(config: &Config, parts: EndpointParts, clock: &SharedClock) -> anyhow::Result<Endpoints> {
    let endpoints = Endpoints::start(config, parts, clock)?;
    for line in &endpoints.operator_lines {
        println!("{line}");
    }
    Ok(endpoints)
}

/// The recording's frame rate (from its median frame interval), 1 to 240.
fn recorded_fps(session: &RecordedSession) -> u32 {
    let mut intervals: Vec<u64> =
        session.frames.windows(2).map(|w| w[1].play_ns.saturating_sub(w[0].play_ns)).collect();
    intervals.sort_unstable();
    let median = intervals.get(intervals.len() / 2).copied().unwrap_or(33_333_333).max(1);
    (1e9 / median as f64).round().clamp(1.0, 240.0) as u32
}

/// Prints where the replay is once a second until Ctrl-C or `stop_after_s`.
fn report_until_stopped(
    shutdown: &Shutdown,
    clock: &SharedClock,
    stop_after_s: Option<f64>,
    state: impl Fn() -> (Notice, usize),
) {
    let started = clock.now_ns();
    let stop_at = stop_after_s.map(|s| started + (s * 1e9) as u64);
    let mut next_status = started;
    while !shutdown.is_triggered() && stop_at.is_none_or(|at| clock.now_ns() < at) {
        std::thread::sleep(POLL_INTERVAL);
        if clock.now_ns() < next_status {
            continue;
        }
        next_status += 1_000_000_000;
        if let (Notice::Playback { paused, ended, position_ms, duration_ms, speed, .. }, viewers) = state() {
            let shown = if ended {
                "ended"
            } else if paused {
                "held"
            } else {
                "playing"
            };
            let _ = writeln!(
                std::io::stdout().lock(),
                "replay {:.1} / {:.1} s  {shown}  ×{speed}  {viewers} viewer(s)",
                position_ms as f64 / 1e3,
                duration_ms as f64 / 1e3,
            );
        }
    }
}
