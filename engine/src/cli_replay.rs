//! `scopecast replay SESSION --listen ADDR:PORT`: a recorded session
//! streamed over WHEP to the same viewer page (and headset mode) as live.
//! The trainer (an operator token) pauses, seeks and changes the speed from
//! the page; every trainee watching follows.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use scopecast_engine::clock::{SharedClock, SystemClock};
use scopecast_engine::config::Config;
use scopecast_engine::metrics::MetricsRegistry;
use scopecast_engine::replay::player::Player;
use scopecast_engine::replay::replay_broadcast;
use scopecast_engine::replay::session::RecordedSession;
use scopecast_engine::shutdown::{POLL_INTERVAL, Shutdown};
use scopecast_engine::source::supervisor::SourceStatus;
use scopecast_engine::station::MetricsView;
use scopecast_transport::protocol::Notice;
use scopecast_transport::whep::{Whep, WhepSettings};

/// Serves `dir` until Ctrl-C or `stop_after_s`.
pub fn run(config: &Config, dir: &Path, stop_after_s: Option<f64>) -> anyhow::Result<()> {
    let addr: std::net::SocketAddr = match config.http.listen.parse() {
        Ok(addr) => addr,
        Err(_) => bail!("a replay is watched over WHEP: give --listen ADDR:PORT (or [http] listen in --config)"),
    };
    let session = RecordedSession::open(dir)?;
    let last = session.frames.last().map_or(0, |f| f.play_ns);
    println!(
        "replaying {} ({}): {} frames, {:.1} s, {} segment(s)",
        session.name,
        session.state,
        session.frames.len(),
        last as f64 / 1e9,
        session.segments.len()
    );
    if session.state == "recording" {
        println!("unfinished session (the station crashed or still records it): playing up to its last whole fragment");
    }
    for skipped in &session.skipped {
        println!("left out: {skipped}");
    }
    let shutdown = Shutdown::new();
    let on_signal = shutdown.clone();
    ctrlc::set_handler(move || on_signal.trigger()).context("cannot install the SIGINT/SIGTERM handler")?;
    let clock: SharedClock = Arc::new(SystemClock::new());
    let source = Arc::new(Mutex::new(SourceStatus {
        description: format!("replay of {}", session.name),
        ..SourceStatus::default()
    }));
    let broadcast = replay_broadcast();
    let player = Player::start(session, broadcast.clone(), clock.clone()).context("cannot start the player")?;
    let settings = WhepSettings {
        bind_ip: addr.ip(),
        max_viewers: config.http.max_viewers,
        ice_servers: config.http.ice_servers.clone(),
        initial_estimate_bps: f64::from(config.encoder.bitrate_kbps) * 1e3,
    };
    let controls: Arc<dyn scopecast_transport::room::CommandSink> = player.controls();
    let whep = Arc::new(Whep::new(broadcast, settings, Some(controls)));
    let metrics = MetricsView::of_registry(Arc::new(MetricsRegistry::new()));
    let server = crate::start_http(config, addr, metrics, source, &clock, Some(whep.clone()))?;
    let started = clock.now_ns();
    let stop_at = stop_after_s.map(|s| started + (s * 1e9) as u64);
    let mut next_status = started;
    while !shutdown.is_triggered() && stop_at.is_none_or(|at| clock.now_ns() < at) {
        std::thread::sleep(POLL_INTERVAL);
        if clock.now_ns() >= next_status {
            next_status += 1_000_000_000;
            if let Notice::Playback { paused, ended, position_ms, duration_ms, speed, .. } = player.state() {
                let state = if ended {
                    "ended"
                } else if paused {
                    "held"
                } else {
                    "playing"
                };
                let mut out = std::io::stdout().lock();
                let _ = writeln!(
                    out,
                    "replay {:.1} / {:.1} s  {state}  ×{speed}  {} viewer(s)",
                    position_ms as f64 / 1e3,
                    duration_ms as f64 / 1e3,
                    whep.viewer_count()
                );
            }
        }
    }
    server.stop();
    player.stop();
    Ok(())
}
