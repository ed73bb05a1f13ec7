//! `scopecast`: the capture station's command line.

mod cli;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use scopecast_engine::config::{Config, DEFAULT_CONFIG_TOML, FormatRequest};

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
    Link(cli::links::LinkArgs),
    /// Work with config files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CalibrateCommand {
    /// Intrinsics and lens distortion from views of a planar target.
    Intrinsics(cli::calibrate::IntrinsicsArgs),
    /// Tip offset of a tracked tool pivoted about its tip.
    Pivot(cli::calibrate::PivotArgs),
    /// The camera's pose on its tracked marker (AX = XB).
    HandEye(cli::calibrate::HandEyeArgs),
    /// The camera's delay against the tracker's, from a wiggle of the scope (runs the configured station's source and trackers).
    Delay(cli::delay::DelayArgs),
    /// The camera's pose on its tracked marker from chessboard views at the station (runs its source and trackers).
    HandEyeLive(cli::hand_eye_live::HandEyeLiveArgs),
}

#[derive(Debug, Subcommand)]
enum RegisterCommand {
    /// Paired-point rigid registration with FRE and predicted TRE.
    Points(cli::calibrate::PointsArgs),
    /// Surface registration by ICP.
    Surface(cli::calibrate::SurfaceArgs),
    /// Fiducial registration with a tracked pointer: touch the model's fiducials in order.
    Collect(cli::collect::CollectArgs),
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
            // `--listen ""` turns the server off, as an empty `[http] listen` does.
            config.http.listen = Some(listen.clone()).filter(|l| !l.is_empty());
        }
        config.recording.enabled |= self.record;
        config.recording.record_clean |= self.record_clean;
        if let Some(folder) = &self.recordings {
            config.recording.folder = folder.display().to_string();
        }
        if let Some(url) = &self.whip {
            config.whip.url = Some(url.clone()).filter(|u| !u.is_empty());
        }
        if let Some(token) = &self.whip_token {
            config.whip.token = Some(token.clone()).filter(|t| !t.is_empty());
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
                match cli::snapshot::snapshot(&c, &out, frames, timeout) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(e),
                }
            }
            Err(e) => usage_error(&e.to_string()),
        },
        Command::Calibrate { command } => report(match command {
            CalibrateCommand::Intrinsics(args) => cli::calibrate::intrinsics(&args),
            CalibrateCommand::Pivot(args) => cli::calibrate::pivot(&args),
            CalibrateCommand::HandEye(args) => cli::calibrate::hand_eye(&args),
            CalibrateCommand::Delay(args) => cli::delay::delay(&args),
            CalibrateCommand::HandEyeLive(args) => cli::hand_eye_live::hand_eye_live(&args),
        }),
        Command::Register { command } => report(match command {
            RegisterCommand::Points(args) => cli::calibrate::points(&args),
            RegisterCommand::Surface(args) => cli::calibrate::surface(&args),
            RegisterCommand::Collect(args) => cli::collect::collect(&args),
        }),
        Command::Recordings { command } => report(match command {
            RecordingsCommand::List { folder } => cli::recordings::list(&folder),
            RecordingsCommand::Info { session } => cli::recordings::info(&session),
            RecordingsCommand::Verify { session } => cli::recordings::verify(&session),
            RecordingsCommand::Export { session, out } => cli::recordings::export(&session, &out),
        }),
        Command::Link(args) => report(cli::links::run(&args)),
        Command::Replay { session, listen, config, stop_after, as_recorded } => {
            match config_or_default(config.as_deref()) {
                Ok(mut loaded) => {
                    if let Some(listen) = listen {
                        loaded.http.listen = Some(listen).filter(|l| !l.is_empty());
                    }
                    let origin = config.unwrap_or_else(|| PathBuf::from("<command line>"));
                    if let Err(e) = loaded.validate(&origin) {
                        return usage_error(&e.to_string());
                    }
                    report(cli::replay::run(&loaded, &session, as_recorded, stop_after).map(|()| String::new()))
                }
                Err(e) => usage_error(&e.to_string()),
            }
        }
        Command::Demo { config, headless, no_software_limits, overrides } => match config_or_default(config.as_deref())
        {
            Ok(mut loaded) => {
                let origin = config.unwrap_or_else(|| PathBuf::from("<command line>"));
                let profile = cli::demo_profile::DemoProfile { headless, software_limits: !no_software_limits };
                for line in profile.apply(&mut loaded, &overrides) {
                    println!("{line}");
                }
                cli::run::station(loaded, &origin, &overrides)
            }
            Err(e) => usage_error(&e.to_string()),
        },
        Command::Doctor { config } => match config_or_default(config.as_deref()) {
            Ok(loaded) => cli::doctor::run(&loaded, config.as_deref()),
            Err(e) => usage_error(&e.to_string()),
        },
        Command::Run { config, overrides } => match Config::load(&config) {
            Ok(loaded) => cli::run::station(loaded, &config, &overrides),
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
