//! `scopecast calibrate hand-eye-live`: the camera's pose on the scope's
//! tracked marker, collected at the station from chessboard views while the
//! scope moves (`scopecast_engine::station::hand_eye_run`), written as the
//! `camera_from_scope` file a model's `pose` chain reads, with its residuals.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use scopecast_engine::clock::{SharedClock, SystemClock};
use scopecast_engine::config::Config;
use scopecast_engine::station::hand_eye_run::{HandEyePlan, collect_hand_eye};
use scopecast_engine::tracking::registration_file::RegistrationFile;

/// `scopecast calibrate hand-eye-live`.
#[derive(Debug, Args)]
pub struct HandEyeLiveArgs {
    /// The station's config: its source, camera calibration and trackers.
    #[arg(long)]
    pub config: PathBuf,
    /// Inner corners per chessboard row.
    #[arg(long, default_value_t = 9)]
    pub cols: usize,
    /// Inner corners per chessboard column.
    #[arg(long, default_value_t = 6)]
    pub rows: usize,
    /// Square side, mm.
    #[arg(long)]
    pub square_mm: f64,
    /// The scope marker's transform name.
    #[arg(long, default_value = "ScopeToTracker")]
    pub scope: String,
    /// Views to collect.
    #[arg(long, default_value_t = 12)]
    pub views: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Write camera_from_scope here.
    #[arg(long)]
    pub output: PathBuf,
}

/// Collects the views, solves and writes the file; the text to print.
pub fn hand_eye_live(args: &HandEyeLiveArgs) -> anyhow::Result<String> {
    if !(args.square_mm.is_finite() && args.square_mm > 0.0) || args.cols < 2 || args.rows < 2 || args.views < 3 {
        anyhow::bail!("--square-mm must be positive, --cols and --rows at least 2, --views at least 3");
    }
    let config = Config::load(&args.config)?;
    let plan = HandEyePlan {
        cols: args.cols,
        rows: args.rows,
        square_mm: args.square_mm,
        scope: args.scope.clone(),
        views: args.views,
        min_turn_deg: 2.0,
        max_board_rms_px: 1.0,
        timeout: Duration::from_secs(args.timeout),
    };
    let clock: SharedClock = std::sync::Arc::new(SystemClock::new());
    let run = collect_hand_eye(&config, clock, &plan, |line| eprintln!("scopecast: {line}"))?;
    let r = &run.result;
    let file = serde_json::json!({
        "camera_from_scope": RegistrationFile::rows_of(&r.camera_from_scope),
        "rotation_rms_deg": r.rotation_rms_deg,
        "translation_rms_mm": r.translation_rms_mm,
        "views": r.views,
        "board_rms_px": run.board_rms_px,
    });
    let text = serde_json::to_string_pretty(&file)?;
    std::fs::write(&args.output, format!("{text}\n")).with_context(|| format!("writing {}", args.output.display()))?;
    let t = r.camera_from_scope.translation;
    Ok(format!(
        "camera_from_scope from {} views ({} boards found in {} frames): translation ({:.2}, {:.2}, {:.2}) mm; residuals {:.3} degrees, {:.3} mm RMS; corners reproject to {:.2} px at worst\nwritten to {}",
        r.views,
        run.boards,
        run.frames,
        t.x,
        t.y,
        t.z,
        r.rotation_rms_deg,
        r.translation_rms_mm,
        run.board_rms_px.iter().copied().fold(0.0, f64::max),
        args.output.display()
    ))
}
