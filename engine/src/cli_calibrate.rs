//! `scopecast calibrate ...` and `scopecast register ...`: thin shells over
//! `scopecast-calibration` that read the documented inputs, run the solver
//! and print its error figures.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use scopecast_calibration::file::CalibrationFile;
use scopecast_calibration::intrinsics::{CalibrationFlags, ModelKind, calibrate};
use scopecast_calibration::points_file::PointsFile;

/// Lens models on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModelArg {
    /// Pinhole + Brown–Conrady (k1, k2, p1, p2, k3).
    BrownConrady,
    /// Kannala–Brandt fisheye (k1..k4).
    KannalaBrandt,
}

/// `scopecast calibrate intrinsics`.
#[derive(Debug, Args)]
pub struct IntrinsicsArgs {
    /// Measured point sets (JSON: image_width, image_height, object_points, image_points per view).
    #[arg(long)]
    pub points: PathBuf,
    /// Lens model to estimate.
    #[arg(long, value_enum, default_value = "brown-conrady")]
    pub model: ModelArg,
    /// Keep k3 at 0 (Brown–Conrady).
    #[arg(long)]
    pub fix_k3: bool,
    /// Keep the principal point at the image centre.
    #[arg(long)]
    pub fix_principal_point: bool,
    /// Keep fx / fy at 1.
    #[arg(long)]
    pub fix_aspect_ratio: bool,
    /// p1 = p2 = 0 (Brown–Conrady).
    #[arg(long)]
    pub zero_tangent: bool,
    /// Where to write the calibration (.yaml for OpenCV FileStorage, .json for JSON).
    #[arg(long)]
    pub output: PathBuf,
}

/// Runs an intrinsic calibration and writes the file; returns the report.
pub fn intrinsics(args: &IntrinsicsArgs) -> anyhow::Result<String> {
    let input = PointsFile::load(&args.points)?;
    let kind = match args.model {
        ModelArg::BrownConrady => ModelKind::BrownConrady,
        ModelArg::KannalaBrandt => ModelKind::KannalaBrandt,
    };
    let flags = CalibrationFlags {
        fix_k3: args.fix_k3,
        fix_principal_point: args.fix_principal_point,
        fix_aspect_ratio: args.fix_aspect_ratio,
        zero_tangent: args.zero_tangent,
    };
    let result = calibrate(&input.views, input.image_size, kind, flags)
        .with_context(|| format!("calibrating from {}", args.points.display()))?;
    let file = CalibrationFile {
        camera: result.camera,
        image_width: input.image_size.0,
        image_height: input.image_size.1,
        avg_reprojection_error: result.rms_px,
    };
    file.save(&args.output)?;
    let k = result.camera.intrinsics;
    let s = &result.std_dev;
    let mut report = format!(
        "{} views, {} iterations\nRMS reprojection error: {:.5} px\nfx {:.5} ± {:.5}  fy {:.5} ± {:.5}  cx {:.5} ± {:.5}  cy {:.5} ± {:.5}\n",
        input.views.len(),
        result.iterations,
        result.rms_px,
        k.fx,
        s.intrinsics[0],
        k.fy,
        s.intrinsics[1],
        k.cx,
        s.intrinsics[2],
        k.cy,
        s.intrinsics[3]
    );
    report.push_str(&format!("lens {:?}\ndistortion σ {:?}\nper-view RMS px:", result.camera.lens, s.distortion));
    for (i, e) in result.per_view_rms_px.iter().enumerate() {
        report.push_str(&format!(" [{i}] {e:.4}"));
    }
    report.push_str(&format!("\nwritten to {}", display(&args.output)));
    Ok(report)
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
