//! `scopecast run` and `scopecast demo`: the capture station, its endpoints
//! (`scopecast_engine::station::endpoints`) and the status line on the
//! operator's terminal until Ctrl-C or `--stop-after`.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use scopecast_engine::clock::{NS_PER_MS, SharedClock, SystemClock};
use scopecast_engine::config::Config;
use scopecast_engine::shutdown::{POLL_INTERVAL, Shutdown};
use scopecast_engine::station::Station;
use scopecast_engine::station::endpoints::{EndpointParts, Endpoints};
use scopecast_engine::status::StatusLine;
use scopecast_transport::room::CommandSink;

use crate::{Overrides, fail, usage_error};

/// Validates `config` with the command line's `overrides` and runs the
/// station until Ctrl-C (or `--stop-after`).
pub fn station(mut config: Config, origin: &Path, overrides: &Overrides) -> ExitCode {
    overrides.apply(&mut config);
    if let Err(e) = config.validate(origin) {
        return usage_error(&e.to_string());
    }
    if let Some(seconds) = overrides.stop_after
        && !(seconds.is_finite() && seconds > 0.0)
    {
        return usage_error(&format!("--stop-after {seconds} must be a positive number of seconds"));
    }
    match run_station(&config, overrides.stop_after, overrides.draw_demo_stroke) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Draws a pinned ring around the middle of the picture through the
/// station's telestration, as viewer `u64::MAX` (`--draw-demo-stroke`).
fn draw_demo_stroke(station: &Station, now_ns: u64) -> anyhow::Result<()> {
    use scopecast_transport::protocol::Command;
    const DEMO_VIEWER: scopecast_transport::fanout::ViewerId = scopecast_transport::fanout::ViewerId(u64::MAX);
    let ring: Vec<[f32; 2]> = (0..=48)
        .map(|i| {
            let angle = i as f32 / 48.0 * std::f32::consts::TAU;
            // A circle on a 16:9 picture: the horizontal radius is 9/16 of the vertical one.
            [0.5 + 0.12 * 9.0 / 16.0 * angle.cos(), 0.5 + 0.12 * angle.sin()]
        })
        .collect();
    let commands = [
        Command::PenDown {
            stroke: 1,
            at: ring[0],
            colour: "#ffd000".into(),
            width: 6.0,
            pinned: true,
            anchor: Default::default(),
            frame_ms: None,
        },
        Command::PenMove { stroke: 1, points: ring[1..].to_vec(), frame_ms: None },
        Command::PenUp { stroke: 1 },
    ];
    for command in &commands {
        station.telestration.apply_at(DEMO_VIEWER, command, now_ns).map_err(|e| anyhow::anyhow!("demo stroke: {e}"))?;
    }
    Ok(())
}

fn run_station(config: &Config, stop_after_s: Option<f64>, demo_stroke: bool) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    let on_signal = shutdown.clone();
    ctrlc::set_handler(move || on_signal.trigger()).context("cannot install the SIGINT/SIGTERM handler")?;
    let clock: SharedClock = Arc::new(SystemClock::new());
    let station = Station::start(config, clock.clone(), shutdown.clone()).context("cannot start the station")?;
    let parts = EndpointParts {
        broadcast: station.broadcast.clone(),
        commands: Some(station.commands.clone() as Arc<dyn CommandSink>),
        metrics: station.metrics_view(),
        source: station.source_status.clone(),
        recorder: station.recorder.clone(),
        publish_whip: true,
        announcements: station.announcements.clone(),
        snapshots: station.snapshots.clone(),
    };
    let endpoints = Endpoints::start(config, parts, &clock)?;
    for line in &endpoints.operator_lines {
        println!("{line}");
    }
    let started_ns = clock.now_ns();
    if demo_stroke {
        draw_demo_stroke(&station, started_ns)?;
    }
    let stop_at_ns = stop_after_s.map(|s| started_ns + (s * 1e9) as u64);
    let interval_ns = config.status.interval_ms * NS_PER_MS;
    let mut next_status_ns = started_ns + interval_ns;
    let mut status = StatusLine::new(started_ns);
    let terminal = std::io::stdout().is_terminal();
    tracing::info!(source = %config.source.uri, "capture station running; Ctrl-C to stop");
    while !shutdown.is_triggered() {
        std::thread::sleep(POLL_INTERVAL);
        let now = clock.now_ns();
        if stop_at_ns.is_some_and(|at| now >= at) {
            break;
        }
        if now >= next_status_ns {
            next_status_ns += interval_ns;
            let line = status.render(&station, now);
            let mut out = std::io::stdout().lock();
            // A closed stdout must not stop the station; the status is advisory.
            let _ = if terminal { write!(out, "\r\x1b[2K{line}") } else { writeln!(out, "{line}") };
            let _ = out.flush();
        }
    }
    if terminal {
        println!();
    }
    endpoints.stop();
    let clean = station.stop(Duration::from_millis(800));
    if !clean {
        tracing::warn!("a stage did not stop within 800 ms; exiting anyway");
    }
    tracing::info!("capture station stopped");
    Ok(())
}
