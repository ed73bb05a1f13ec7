//! Shared helpers of the scopecast benches: per-iteration timings summarised
//! as p50/p99/mean and printed one line per case, so figures can be quoted.

pub mod phantom_rig;
pub mod receiver;
pub mod soak;

use std::time::{Duration, Instant};

/// Timings of one benchmark case.
#[derive(Debug, Clone)]
pub struct Timings {
    samples_ns: Vec<u64>,
}

impl Timings {
    /// Runs `body` `warmup` times untimed, then `iterations` times timed.
    pub fn measure(warmup: usize, iterations: usize, mut body: impl FnMut()) -> Self {
        for _ in 0..warmup {
            body();
        }
        let samples_ns = (0..iterations)
            .map(|_| {
                let start = Instant::now();
                body();
                start.elapsed().as_nanos() as u64
            })
            .collect();
        Self { samples_ns }
    }

    /// The `q` quantile (0..=1), nearest rank.
    pub fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.samples_ns.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        Duration::from_nanos(sorted[rank - 1])
    }

    /// Arithmetic mean.
    pub fn mean(&self) -> Duration {
        let n = self.samples_ns.len().max(1) as u64;
        Duration::from_nanos(self.samples_ns.iter().sum::<u64>() / n)
    }
}

/// Milliseconds with three decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// A station running in this process with its HTTP server (WHEP, `/metrics`) on loopback.
pub struct ServedStation {
    /// The station.
    pub station: scopecast_engine::station::Station,
    /// Its HTTP server (plain HTTP on 127.0.0.1, a free port).
    pub server: scopecast_engine::http::HttpServer,
    /// The station clock.
    pub clock: scopecast_engine::clock::SharedClock,
}

impl ServedStation {
    /// Starts `config` and serves WHEP to `viewer_token` for at most `max_viewers`.
    pub fn start(config: &scopecast_engine::config::Config, viewer_token: &str, max_viewers: usize) -> Self {
        use scopecast_transport::auth::{Role, Token};
        Self::start_with_tokens(config, vec![Token::new(viewer_token, Role::Viewer)], max_viewers)
    }

    /// Starts `config` and serves WHEP to `tokens` for at most `max_viewers`.
    pub fn start_with_tokens(
        config: &scopecast_engine::config::Config,
        tokens: Vec<scopecast_transport::auth::Token>,
        max_viewers: usize,
    ) -> Self {
        use std::sync::Arc;

        use scopecast_transport::auth::Tokens;
        use scopecast_transport::whep::{Whep, WhepSettings};
        let clock: scopecast_engine::clock::SharedClock = Arc::new(scopecast_engine::clock::SystemClock::new());
        let station = scopecast_engine::station::Station::start(
            config,
            clock.clone(),
            scopecast_engine::shutdown::Shutdown::new(),
        )
        .expect("the station starts");
        let settings = WhepSettings {
            bind_ip: "127.0.0.1".parse().expect("ip"),
            max_viewers,
            ice_servers: Vec::new(),
            initial_estimate_bps: f64::from(config.encoder.bitrate_kbps) * 1e3,
            connect_deadline: scopecast_transport::whep::CONNECT_DEADLINE,
            playout_delay_max_ms: config.http.playout_delay_max_ms,
        };
        let drawing: Arc<dyn scopecast_transport::room::CommandSink> = station.commands.clone();
        let whep = station
            .broadcast
            .clone()
            .map(|b| Arc::new(Whep::new(b, settings, Some(drawing), scopecast_engine::clock::for_transport(&clock))));
        let server = scopecast_engine::http::HttpServer::start(
            "127.0.0.1:0".parse().expect("addr"),
            station.metrics_view(),
            station.source_status.clone(),
            clock.clone(),
            whep,
            Tokens::new(tokens),
            scopecast_engine::http::HttpOptions::default(),
        )
        .expect("the HTTP server starts");
        Self { station, server, clock }
    }

    /// The station's metrics now, then both stopped.
    pub fn stop(self) -> String {
        let metrics = self.station.render_metrics(self.clock.now_ns());
        self.server.stop();
        self.station.stop(Duration::from_secs(3));
        metrics
    }
}

/// The repository's root.
pub fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Node's modules with playwright-core (`SCOPECAST_NODE_MODULES`, else
/// target/node/node_modules, where the README's test command installs it).
pub fn node_modules() -> String {
    let dir = std::env::var("SCOPECAST_NODE_MODULES")
        .unwrap_or_else(|_| root().join("target/node/node_modules").display().to_string());
    assert!(
        std::path::PathBuf::from(&dir).join("playwright-core").exists(),
        "playwright-core not found in {dir}: run the README's test command once (it installs it)"
    );
    dir
}

/// The `q` quantile of sorted values (nearest rank); NaN when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}
