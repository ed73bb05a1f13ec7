//! `scopecast`: the capture station's command line.

mod cli_calibrate;
mod cli_doctor;
mod cli_links;
mod cli_recordings;
mod cli_replay;
mod demo_profile;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use scopecast_engine::clock::{NS_PER_MS, SharedClock, SystemClock};
use scopecast_engine::config::{Config, DEFAULT_CONFIG_TOML, FormatRequest};
use scopecast_engine::shutdown::{POLL_INTERVAL, Shutdown};
use scopecast_engine::station::Station;
use scopecast_engine::status::StatusLine;

/// Real-time surgical AR streaming: the capture station.
#[derive(Debug, Parser)]
#[command(name = "scopecast", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the capture station demo: the built-in synthetic endoscope (no config needed), the
    /// viewer page on 127.0.0.1:8080 (or a free port), the monitor window where there is a display,
    /// and settings a software GPU can sustain.
    Demo {
        /// Start from this config file instead of the defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Do not open the monitor window even where there is a display.
        #[arg(long)]
        headless: bool,
        /// Keep the configured frame rate and MSAA on a software GPU.
        #[arg(long)]
        no_software_limits: bool,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Check that this machine can run the station: GPU, Vulkan, GStreamer and the elements the
    /// config needs, display, listen port, recordings folder. Exits non-zero when it cannot run.
    Doctor {
        /// Check for this config file (default: the built-in defaults, as `scopecast demo` runs).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run the capture station from a config file.
    Run {
        /// The TOML config file (see `scopecast config default`).
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Run the pipeline briefly and save the last composited frame as an RGB PNG
    /// (with the timecode strip).
    Snapshot {
        /// Read this config file first.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Where to write the PNG.
        #[arg(long, short)]
        out: PathBuf,
        /// Live frames to run before taking the picture.
        #[arg(long, default_value_t = 10)]
        frames: u32,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Calibrate the endoscope camera (intrinsics, hand-eye) and tracked tools (pivot).
    Calibrate {
        #[command(subcommand)]
        command: CalibrateCommand,
    },
    /// Register anatomy to the patient: paired points or surfaces.
    Register {
        #[command(subcommand)]
        command: RegisterCommand,
    },
    /// Session recordings: list a folder, show or verify a session, export it as one archive.
    Recordings {
        #[command(subcommand)]
        command: RecordingsCommand,
    },
    /// Stream a recorded session over WHEP to the viewer page, with pause, seek and speed for the trainer.
    Replay {
        /// The session folder (see `scopecast recordings list`).
        session: PathBuf,
        /// Serve the viewer page and WHEP on ADDR:PORT.
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<String>,
        /// Tokens, TLS and ICE servers from this config file (`[http]`).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Stop by itself after this many seconds.
        #[arg(long, value_name = "SECONDS")]
        stop_after: Option<f64>,
        /// Play the composited stream as recorded even when the clean video was kept.
        #[arg(long)]
        as_recorded: bool,
    },
    /// Invite one person: a named link that expires (`--role annotator --name "Dr A" --expires 8h`),
    /// and `list` or `revoke` them. No config edit, no restart.
    Link(cli_links::LinkArgs),
    /// Work with config files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CalibrateCommand {
    /// Intrinsics and lens distortion from views of a planar target.
    Intrinsics(cli_calibrate::IntrinsicsArgs),
    /// Tip offset of a tracked tool pivoted about its tip.
    Pivot(cli_calibrate::PivotArgs),
    /// The camera's pose on its tracked marker (AX = XB).
    HandEye(cli_calibrate::HandEyeArgs),
}

#[derive(Debug, Subcommand)]
enum RegisterCommand {
    /// Paired-point rigid registration with FRE and predicted TRE.
    Points(cli_calibrate::PointsArgs),
    /// Surface registration by ICP.
    Surface(cli_calibrate::SurfaceArgs),
}

#[derive(Debug, Subcommand)]
enum RecordingsCommand {
    /// The sessions in a recordings folder.
    List {
        /// The folder (`[recording] folder`).
        #[arg(default_value = "recordings")]
        folder: PathBuf,
    },
    /// Duration, segments, frames, gaps and whether it was repaired.
    Info {
        /// The session folder.
        session: PathBuf,
    },
    /// Checks every segment and the timeline; fails when anything is wrong.
    Verify {
        /// The session folder.
        session: PathBuf,
    },
    /// Writes the session folder as one tar archive.
    Export {
        /// The session folder.
        session: PathBuf,
        /// The archive to write.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the full default config, every field with a comment.
    Default,
    /// Check a config file and print the effective values.
    Check {
        /// The TOML config file.
        file: PathBuf,
    },
}

/// Flags that override the config file.
#[derive(Debug, Args, Default)]
struct Overrides {
    /// Source URI: synthetic, test:[PATTERN], v4l2:///dev/videoN, file:///PATH, rtsp://..., tcp://HOST:PORT.
    #[arg(long)]
    source: Option<String>,
    /// Frame width of the synthetic and test sources, px.
    #[arg(long)]
    width: Option<u32>,
    /// Frame height of the synthetic and test sources, px.
    #[arg(long)]
    height: Option<u32>,
    /// Frames per second of the synthetic and test sources and of NO SIGNAL frames.
    #[arg(long)]
    fps: Option<u32>,
    /// Pixel format asked of GStreamer sources.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Serve /metrics and /healthz on ADDR:PORT (port 0: a free port, printed at start).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// Stop by itself after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    stop_after: Option<f64>,
    /// Show the AR view on this station's monitor (a window; `?` in it lists the keys).
    #[arg(long)]
    display: bool,
    /// With --display: fullscreen.
    #[arg(long)]
    fullscreen: bool,
    /// With --display --fullscreen: which monitor (0 = the first).
    #[arg(long, value_name = "N")]
    monitor: Option<usize>,
    /// Also publish the stream to this WHIP endpoint (http://host:port/path).
    #[arg(long, value_name = "URL")]
    whip: Option<String>,
    /// The WHIP endpoint's bearer token.
    #[arg(long, value_name = "TOKEN")]
    whip_token: Option<String>,
    /// Record the session from the start (into `[recording] folder`).
    #[arg(long)]
    record: bool,
    /// Also record the clean video (before the overlay), for replays that draw the overlays afresh.
    #[arg(long)]
    record_clean: bool,
    /// Where recordings go (overrides `[recording] folder`).
    #[arg(long, value_name = "DIR")]
    recordings: Option<PathBuf>,
    /// Draw a pinned stroke (a ring around the middle of the picture) as the
    /// station starts, as a remote expert would: for demos and recorded examples.
    #[arg(long)]
    draw_demo_stroke: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Auto,
    Rgba,
    I420,
    Nv12,
}

impl Overrides {
    fn apply(&self, config: &mut Config) {
        if let Some(uri) = &self.source {
            config.source.uri = uri.clone();
        }
        if let Some(listen) = &self.listen {
            config.http.listen = listen.clone();
        }
        config.recording.enabled |= self.record;
        config.recording.record_clean |= self.record_clean;
        if let Some(folder) = &self.recordings {
            config.recording.folder = folder.display().to_string();
        }
        if let Some(url) = &self.whip {
            config.whip.url = url.clone();
        }
        if let Some(token) = &self.whip_token {
            config.whip.token = token.clone();
        }
        config.display.enabled |= self.display || self.fullscreen;
        config.display.fullscreen |= self.fullscreen;
        config.display.monitor = self.monitor.unwrap_or(config.display.monitor);
        let s = &mut config.source;
        s.width = self.width.unwrap_or(s.width);
        s.height = self.height.unwrap_or(s.height);
        s.fps = self.fps.unwrap_or(s.fps);
        if let Some(format) = self.format {
            s.format = match format {
                FormatArg::Auto => FormatRequest::Auto,
                FormatArg::Rgba => FormatRequest::Rgba,
                FormatArg::I420 => FormatRequest::I420,
                FormatArg::Nv12 => FormatRequest::Nv12,
            };
        }
    }
}

/// Exit code of a bad config or bad flags.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    // Before any thread: GStreamer's restarted streaming threads must not take fresh arenas.
    let arenas = scopecast_engine::malloc_arenas::bound_malloc_arenas();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: logs kept in files stay readable.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    tracing::debug!(?arenas, "glibc malloc arenas");
    match cli.command {
        Command::Config { command: ConfigCommand::Default } => {
            print!("{DEFAULT_CONFIG_TOML}");
            ExitCode::SUCCESS
        }
        Command::Config { command: ConfigCommand::Check { file } } => match Config::load(&file) {
            Ok(config) => match toml::to_string_pretty(&config) {
                Ok(text) => {
                    println!("{} is valid. Effective config:\n\n{text}", file.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(anyhow::anyhow!("cannot print the config: {e}")),
            },
            Err(e) => usage_error(&e.to_string()),
        },
        Command::Snapshot { config, out, frames, timeout, overrides } => match config_or_default(config.as_deref()) {
            Ok(mut c) => {
                overrides.apply(&mut c);
                let origin = config.unwrap_or_else(|| PathBuf::from("<command line>"));
                if let Err(e) = c.validate(&origin) {
                    return usage_error(&e.to_string());
                }
                match snapshot(&c, &out, frames, timeout) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(e),
                }
            }
            Err(e) => usage_error(&e.to_string()),
        },
        Command::Calibrate { command } => report(match command {
            CalibrateCommand::Intrinsics(args) => cli_calibrate::intrinsics(&args),
            CalibrateCommand::Pivot(args) => cli_calibrate::pivot(&args),
            CalibrateCommand::HandEye(args) => cli_calibrate::hand_eye(&args),
        }),
        Command::Register { command } => report(match command {
            RegisterCommand::Points(args) => cli_calibrate::points(&args),
            RegisterCommand::Surface(args) => cli_calibrate::surface(&args),
        }),
        Command::Recordings { command } => report(match command {
            RecordingsCommand::List { folder } => cli_recordings::list(&folder),
            RecordingsCommand::Info { session } => cli_recordings::info(&session),
            RecordingsCommand::Verify { session } => cli_recordings::verify(&session),
            RecordingsCommand::Export { session, out } => cli_recordings::export(&session, &out),
        }),
        Command::Link(args) => report(cli_links::run(&args)),
        Command::Replay { session, listen, config, stop_after, as_recorded } => {
            match config_or_default(config.as_deref()) {
                Ok(mut loaded) => {
                    if let Some(listen) = listen {
                        loaded.http.listen = listen;
                    }
                    let origin = config.unwrap_or_else(|| PathBuf::from("<command line>"));
                    if let Err(e) = loaded.validate(&origin) {
                        return usage_error(&e.to_string());
                    }
                    report(cli_replay::run(&loaded, &session, as_recorded, stop_after).map(|()| String::new()))
                }
                Err(e) => usage_error(&e.to_string()),
            }
        }
        Command::Demo { config, headless, no_software_limits, overrides } => match config_or_default(config.as_deref())
        {
            Ok(mut loaded) => {
                let origin = config.unwrap_or_else(|| PathBuf::from("<command line>"));
                let profile = demo_profile::DemoProfile { headless, software_limits: !no_software_limits };
                for line in profile.apply(&mut loaded, &overrides) {
                    println!("{line}");
                }
                station(loaded, &origin, &overrides)
            }
            Err(e) => usage_error(&e.to_string()),
        },
        Command::Doctor { config } => match config_or_default(config.as_deref()) {
            Ok(loaded) => cli_doctor::run(&loaded, config.as_deref()),
            Err(e) => usage_error(&e.to_string()),
        },
        Command::Run { config, overrides } => match Config::load(&config) {
            Ok(loaded) => station(loaded, &config, &overrides),
            Err(e) => usage_error(&e.to_string()),
        },
    }
}

/// The config file at `path`, or the defaults when none is given.
fn config_or_default(path: Option<&Path>) -> Result<Config, scopecast_engine::config::ConfigError> {
    path.map_or_else(|| Ok(Config::default()), Config::load)
}

fn report(result: anyhow::Result<String>) -> ExitCode {
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("scopecast: {message}");
    ExitCode::from(EXIT_USAGE)
}

fn fail(error: anyhow::Error) -> ExitCode {
    eprintln!("scopecast: {error:#}");
    ExitCode::FAILURE
}

fn station(mut config: Config, origin: &Path, overrides: &Overrides) -> ExitCode {
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

fn snapshot(config: &Config, out: &Path, frames: u32, timeout_s: f64) -> anyhow::Result<()> {
    let clock: SharedClock = Arc::new(SystemClock::new());
    let timeout_ms = (timeout_s.clamp(0.1, 3600.0) * 1000.0) as u64;
    let picture = scopecast_engine::station::snapshot(config, clock, frames, timeout_ms)?;
    image::save_buffer(out, &picture.rgb, picture.width, picture.height, image::ExtendedColorType::Rgb8)
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "{}: {}x{} frame {} (capture {} ms) from {}",
        out.display(),
        picture.width,
        picture.height,
        picture.sequence,
        picture.capture_wall_ms,
        config.source.uri
    );
    Ok(())
}

/// HTTPS off loopback: the configured certificate, or a self-signed one for
/// the listening address (and `localhost`).
fn tls_identity(
    config: &Config,
    addr: std::net::SocketAddr,
) -> anyhow::Result<Option<scopecast_engine::tls::TlsIdentity>> {
    use scopecast_engine::tls::TlsIdentity;
    if addr.ip().is_loopback() {
        return Ok(None);
    }
    let identity = if config.http.tls_cert.is_empty() {
        let mut names = vec!["localhost".to_string()];
        if !addr.ip().is_unspecified() {
            names.push(addr.ip().to_string());
        }
        TlsIdentity::self_signed(names)?
    } else {
        TlsIdentity::load(Path::new(&config.http.tls_cert), Path::new(&config.http.tls_key))?
    };
    Ok(Some(identity))
}

/// Starts the access log of `[access]` (records also go to `recorder`'s
/// open session); `None`, with a warning, when its thread cannot start.
fn start_access_log(
    config: &Config,
    recorder: Option<Arc<scopecast_engine::recorder::Recorder>>,
) -> Option<Arc<scopecast_engine::access_log::AccessLog>> {
    use scopecast_engine::access_log::{AccessLog, AccessLogSettings};
    let settings = AccessLogSettings {
        path: config.access.log_path(),
        max_bytes: config.access.log_max_mib * 1024 * 1024,
        keep: config.access.log_keep,
    };
    let path = settings.path.clone();
    match AccessLog::start(settings, recorder) {
        Ok(log) => {
            tracing::info!(path = %path.display(), "access log");
            Some(Arc::new(log))
        }
        Err(e) => {
            tracing::warn!(error = %e, "no access log: its thread cannot start");
            None
        }
    }
}

/// A WHEP endpoint whose joins, leaves and actions go to `access`.
fn whep_with_access(
    whep: scopecast_transport::whep::Whep,
    access: Option<&Arc<scopecast_engine::access_log::AccessLog>>,
) -> scopecast_transport::whep::Whep {
    match access {
        Some(log) => whep.with_access(log.clone()),
        None => whep,
    }
}

/// Starts the HTTP(S) server on `addr` (on a free port of the same address
/// when that port is taken, saying so) with the config's tokens (a viewer and
/// an operator token generated when none are configured), and prints the
/// links to watch with, once, on the operator's terminal (never logged).
fn start_http(
    config: &Config,
    addr: std::net::SocketAddr,
    metrics: scopecast_engine::station::MetricsView,
    source: scopecast_engine::source::supervisor::SharedSourceStatus,
    clock: &SharedClock,
    whep: Option<Arc<scopecast_transport::whep::Whep>>,
    access: Option<Arc<scopecast_engine::access_log::AccessLog>>,
) -> anyhow::Result<scopecast_engine::http::HttpServer> {
    use scopecast_engine::http::{HttpError, HttpServer};
    use scopecast_transport::auth::{Role, Token, Tokens};
    use scopecast_transport::links::{LinkKey, Revocations};
    let mut tokens: Vec<Token> = config.http.tokens.iter().map(|t| Token::new(t.token.clone(), t.role)).collect();
    if tokens.is_empty() {
        tokens.push(Token::generate(Role::Viewer).context("cannot generate a token")?);
        tokens.push(Token::generate(Role::Operator).context("cannot generate a token")?);
    }
    let state_dir = config.access.state_dir();
    let mut credentials = Tokens::new(tokens.clone());
    let mut links_state_dir = None;
    match (LinkKey::load_or_create(&state_dir), Revocations::load(&state_dir)) {
        (Ok(key), Ok(revoked)) => {
            credentials = credentials.with_links(key, revoked);
            links_state_dir = Some(state_dir);
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "named links (scopecast link) are refused: the state folder is not usable");
        }
    }
    let viewer_token = tokens.iter().find(|t| t.role == Role::Viewer).map(|t| t.reveal().to_string());
    let operator_token = tokens.iter().find(|t| t.role == Role::Operator).map(|t| t.reveal().to_string());
    let tls = tls_identity(config, addr)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    if let Some(identity) = &tls {
        let origin = if identity.self_signed { "self-signed, generated now" } else { "from the config" };
        println!("TLS certificate ({origin}) SHA-256 fingerprint: {}", identity.fingerprint_sha256);
    }
    let start = |addr| {
        HttpServer::start(
            addr,
            metrics.clone(),
            source.clone(),
            clock.clone(),
            whep.clone(),
            credentials.clone(),
            scopecast_engine::http::HttpOptions {
                tls: tls.clone(),
                metrics_need_token: config.http.metrics_auth.needs_token(addr),
                access: access.clone().map(|a| a as Arc<dyn scopecast_transport::access::AccessSink>),
                links_state_dir: links_state_dir.clone(),
            },
        )
    };
    let server = match start(addr) {
        Err(HttpError::Bind { source, .. }) if source.kind() == std::io::ErrorKind::AddrInUse && addr.port() != 0 => {
            let server = start(std::net::SocketAddr::new(addr.ip(), 0))?;
            println!(
                "port {} is taken (another station or program); serving on port {} instead",
                addr.port(),
                server.local_addr.port()
            );
            server
        }
        other => other?,
    };
    let base = format!("{scheme}://{}", server.local_addr);
    // The tokens go to the operator's terminal once; they are never logged.
    match &viewer_token {
        Some(token) => {
            println!("open a link in a browser to watch (the operator's may also draw, record and switch layers):");
            println!("viewer: {base}/#token={token}");
            if let Some(operator) = &operator_token {
                println!("operator: {base}/#token={operator}&name=Operator");
            }
            println!("WHEP endpoint for players: {base}/whep token={token}");
        }
        None => println!("{base}/whep (no viewer token configured)"),
    }
    let needs_token = config.http.metrics_auth.needs_token(server.local_addr);
    println!("metrics: {base}/metrics{}", if needs_token { " (with a bearer token)" } else { "" });
    println!("health: {base}/healthz");
    if let Some(token) = &operator_token {
        println!("operator token: {token}");
    }
    Ok(server)
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
        Command::PenDown { stroke: 1, at: ring[0], colour: "#ffd000".into(), width: 6.0, pinned: true },
        Command::PenMove { stroke: 1, points: ring[1..].to_vec() },
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
    let http = match config.http.listen.parse::<std::net::SocketAddr>() {
        Ok(addr) => {
            let settings = scopecast_transport::whep::WhepSettings {
                bind_ip: addr.ip(),
                max_viewers: config.http.max_viewers,
                ice_servers: config.http.ice_servers.clone(),
                initial_estimate_bps: f64::from(config.encoder.bitrate_kbps) * 1e3,
                connect_deadline: scopecast_transport::whep::CONNECT_DEADLINE,
            };
            let drawing: Arc<dyn scopecast_transport::room::CommandSink> = station.commands.clone();
            let access = start_access_log(config, station.recorder.clone());
            let whep = station.broadcast.clone().map(|b| {
                let whep = scopecast_transport::whep::Whep::new(
                    b,
                    settings.clone(),
                    Some(drawing),
                    scopecast_engine::clock::for_transport(&clock),
                );
                Arc::new(whep_with_access(whep, access.as_ref()))
            });
            let (metrics, source) = (station.metrics_view(), station.source_status.clone());
            Some(start_http(config, addr, metrics, source, &clock, whep, access)?)
        }
        Err(_) => None,
    };
    let whip = match (&station.broadcast, config.whip.url.is_empty()) {
        (Some(broadcast), false) => {
            let settings = scopecast_transport::whip::WhipSettings {
                url: config.whip.url.clone(),
                token: (!config.whip.token.is_empty()).then(|| config.whip.token.clone()),
                // All interfaces: the endpoint may be reachable on any of them.
                bind_ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
                ice_servers: config.http.ice_servers.clone(),
            };
            println!("publishing to WHIP endpoint {}", config.whip.url);
            Some(scopecast_transport::whip::WhipPublisher::start(
                settings,
                broadcast.clone(),
                scopecast_engine::clock::for_transport(&clock),
            )?)
        }
        (None, false) => {
            tracing::warn!("whip.url is set but the encoder is off: nothing to publish");
            None
        }
        _ => None,
    };
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
    if let Some(publisher) = whip {
        publisher.stop();
    }
    if let Some(server) = http {
        server.stop();
    }
    let clean = station.stop(Duration::from_millis(800));
    if !clean {
        tracing::warn!("a stage did not stop within 800 ms; exiting anyway");
    }
    tracing::info!("capture station stopped");
    Ok(())
}
