//! `scopecast register collect`: fiducial registration with a tracked
//! pointer, from the command line (`scopecast_engine::station::fiducial_run`):
//! the operator touches the model's fiducials in the file's order, each
//! taken when the tip rests still; FRE, residuals, leave-one-out errors and
//! the predicted TRE are printed, and the registration is written as a
//! registration file a model's `pose` chain reads.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use glam::DVec3;
use scopecast_engine::clock::{SharedClock, SystemClock};
use scopecast_engine::config::Config;
use scopecast_engine::station::fiducial_run::{FiducialPlan, collect_fiducials};
use scopecast_engine::tracking::registration::StillWindow;
use scopecast_engine::tracking::registration_file::RegistrationFile;

/// `scopecast register collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// The station's config: its trackers (and the synthetic scope's simulated one).
    #[arg(long)]
    pub config: PathBuf,
    /// JSON with "fiducials_mm": [[x, y, z], ...], the model's fiducials in the order they are touched
    /// (a phantom file has them).
    #[arg(long)]
    pub fiducials: PathBuf,
    /// The pointer's transform name.
    #[arg(long, default_value = "PointerToTracker")]
    pub pointer: String,
    /// The patient reference's transform name.
    #[arg(long, default_value = "ReferenceToTracker")]
    pub reference: String,
    /// The tip in the pointer's frame, mm: "x,y,z" (or --tip-file).
    #[arg(long, value_parser = parse_point)]
    pub tip: Option<[f64; 3]>,
    /// A `scopecast calibrate pivot` result (its tip_in_tool_mm).
    #[arg(long)]
    pub tip_file: Option<PathBuf>,
    /// Pivot the pointer about its tip for this many seconds first, and solve the tip (instead of --tip).
    #[arg(long)]
    pub pivot_seconds: Option<f64>,
    /// A target in the model's frame for the predicted TRE, mm: "x,y,z".
    #[arg(long, value_parser = parse_point)]
    pub target: Option<[f64; 3]>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Write the registration here (a model's pose chain reads it: `{ file = "..." }`).
    #[arg(long)]
    pub output: PathBuf,
}

fn parse_point(text: &str) -> Result<[f64; 3], String> {
    let v: Vec<f64> =
        text.split(',').map(|p| p.trim().parse::<f64>()).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    match v.as_slice() {
        [x, y, z] if v.iter().all(|c| c.is_finite()) => Ok([*x, *y, *z]),
        _ => Err(format!("{text:?} is not three numbers x,y,z")),
    }
}

fn points_of(value: &serde_json::Value, key: &str, file: &std::path::Path) -> anyhow::Result<Vec<[f64; 3]>> {
    serde_json::from_value(value.get(key).cloned().unwrap_or_default())
        .with_context(|| format!("{}: needs {key:?}: [[x, y, z], ...]", file.display()))
}

/// Collects and registers; the text to print.
pub fn collect(args: &CollectArgs) -> anyhow::Result<String> {
    let config = Config::load(&args.config)?;
    let read = |file: &PathBuf| -> anyhow::Result<serde_json::Value> {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))
    };
    let fiducials = points_of(&read(&args.fiducials)?, "fiducials_mm", &args.fiducials)?;
    let tip = match (args.tip, &args.tip_file) {
        _ if args.pivot_seconds.is_some() => [0.0; 3],
        (Some(tip), _) => tip,
        (None, Some(file)) => {
            let value = read(file)?;
            serde_json::from_value(value.get("tip_in_tool_mm").cloned().unwrap_or_default())
                .with_context(|| format!("{}: needs \"tip_in_tool_mm\": [x, y, z]", file.display()))?
        }
        (None, None) => {
            anyhow::bail!("give the pointer's tip: --tip x,y,z, --tip-file pivot.json or --pivot-seconds 10")
        }
    };
    let plan = FiducialPlan {
        model_fiducials: fiducials.iter().map(|p| DVec3::from_array(*p)).collect(),
        pointer: args.pointer.clone(),
        reference: args.reference.clone(),
        tip_in_pointer: DVec3::from_array(tip),
        target: args.target.map(DVec3::from_array),
        still: StillWindow::default(),
        min_apart_mm: 5.0,
        timeout: Duration::from_secs(args.timeout),
        pivot: args.pivot_seconds.map(|s| Duration::from_secs_f64(s.clamp(1.0, 120.0))),
    };
    let clock: SharedClock = std::sync::Arc::new(SystemClock::new());
    let run = collect_fiducials(&config, clock.clone(), &plan, |line| eprintln!("scopecast: {line}"))?;
    let r = &run.registration;
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown user".into());
    let file = RegistrationFile::accepted(
        &r.reference_from_model,
        r,
        args.target.map(|_| "target".to_string()),
        None,
        format!("{user} (scopecast register collect)"),
        clock.wall_ms(),
    );
    file.save(&args.output)?;
    let mut out = String::new();
    if let Some(pivot) = &run.pivot {
        let t = pivot.tip_in_pointer;
        out.push_str(&format!("pivot: tip ({:.3}, {:.3}, {:.3}) mm, RMS {:.3} mm\n", t.x, t.y, t.z, pivot.rms_mm));
    }
    out.push_str(&format!("FRE {:.3} mm over {} fiducials", r.fre_mm, fiducials.len()));
    if let Some(tre) = r.tre_mm {
        out.push_str(&format!(", predicted TRE at the target {tre:.3} mm"));
    }
    for (i, (residual, loo)) in r.residuals_mm.iter().zip(&r.leave_one_out_mm).enumerate() {
        let flag = if r.suspects.contains(&i) { "  <- redo: far from where the others put it" } else { "" };
        out.push_str(&format!("\nfiducial {}: residual {residual:.3} mm, leave-one-out {loo:.3} mm{flag}", i + 1));
    }
    out.push_str(&format!("\nwritten to {}", args.output.display()));
    Ok(out)
}
