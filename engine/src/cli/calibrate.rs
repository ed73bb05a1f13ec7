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
#[command(group(clap::ArgGroup::new("input").required(true).args(["points", "images"])))]
pub struct IntrinsicsArgs {
    /// Measured point sets (JSON: image_width, image_height, object_points, image_points per view).
    #[arg(long)]
    pub points: Option<PathBuf>,
    /// A folder of images (PNG, JPEG, TIFF, BMP; the format read from the content) of the pattern; needs
    /// --pattern. Files that cannot be decoded are listed with the reason.
    #[arg(long, requires = "pattern")]
    pub images: Option<PathBuf>,
    /// chessboard:COLSxROWS:SQUARE (inner corners) or circles:COLSxROWS:SPACING (asymmetric grid,
    /// circles per row × rows), sizes in mm.
    #[arg(long)]
    pub pattern: Option<String>,
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

/// A calibration pattern from `--pattern`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pattern {
    Chessboard { cols: usize, rows: usize, square: f64 },
    Circles { cols: usize, rows: usize, spacing: f64 },
}

fn parse_pattern(text: &str) -> anyhow::Result<Pattern> {
    let usage =
        || anyhow::anyhow!("--pattern {text:?}: expected chessboard:COLSxROWS:SQUARE or circles:COLSxROWS:SPACING");
    let mut parts = text.split(':');
    let (kind, dims, size) =
        (parts.next().ok_or_else(usage)?, parts.next().ok_or_else(usage)?, parts.next().ok_or_else(usage)?);
    let (cols, rows) = dims.split_once(['x', 'X']).ok_or_else(usage)?;
    let (cols, rows): (usize, usize) = (cols.parse().map_err(|_| usage())?, rows.parse().map_err(|_| usage())?);
    let size: f64 = size.parse().map_err(|_| usage())?;
    if cols < 3 || rows < 3 || cols * rows > 10_000 || !(size.is_finite() && size > 0.0) || parts.next().is_some() {
        return Err(usage());
    }
    Ok(match kind {
        "chessboard" => Pattern::Chessboard { cols, rows, square: size },
        "circles" => Pattern::Circles { cols, rows, spacing: size },
        _ => return Err(usage()),
    })
}

/// The views found in a folder of images.
struct ImageViews {
    views: Vec<scopecast_calibration::intrinsics::View>,
    image_size: (u32, u32),
    /// One line per image left out, with why.
    skipped: Vec<String>,
}

/// File extensions read as images; anything else in the folder (notes,
/// JSON, ...) is ignored without a word. The format itself is decided by
/// content, so a `.jpg` that is really a PNG is read as a PNG; an extension
/// listed here whose content no decoder takes (PGM: no PNM decoder is built
/// in) is reported with the decoder's reason.
const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "jpe", "bmp", "tif", "tiff", "pgm"];

/// Decodes `file` to 8-bit grey whatever its format (PNG, JPEG, TIFF, BMP),
/// choosing the decoder from the first bytes and falling back on the
/// extension when they match no known signature.
fn decode_gray(file: &Path) -> Result<image::GrayImage, String> {
    // Decoders' messages may span lines; the report gives each file one line.
    let one_line = |e: &dyn std::fmt::Display| e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
    let reader = image::ImageReader::open(file).map_err(|e| format!("cannot open ({})", one_line(&e)))?;
    let reader = reader.with_guessed_format().map_err(|e| format!("cannot read ({})", one_line(&e)))?;
    // The decoder's error names the format it tried ("Format error decoding Jpeg: ...").
    let picture = reader.decode().map_err(|e| format!("not an image ({})", one_line(&e)))?;
    Ok(picture.to_luma8())
}

/// Detects the pattern in every image of `dir`.
fn views_from_images(dir: &Path, pattern: Pattern) -> anyhow::Result<ImageViews> {
    use scopecast_calibration::detect::{GrayImage, chessboard::find_chessboard, circles::find_asymmetric_circles};
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        anyhow::bail!("{}: no image files (looked for .{})", dir.display(), IMAGE_EXTENSIONS.join(", ."));
    }
    let (object, cols, rows) = match pattern {
        Pattern::Chessboard { cols, rows, square } => (
            (0..rows)
                .flat_map(|r| (0..cols).map(move |c| [c as f64 * square, r as f64 * square, 0.0]))
                .collect::<Vec<_>>(),
            cols,
            rows,
        ),
        Pattern::Circles { cols, rows, spacing } => {
            (scopecast_calibration::synthetic::asymmetric_grid_points(cols, rows, spacing), cols, rows)
        }
    };
    let mut views = Vec::new();
    let mut skipped = Vec::new();
    let mut size = None;
    for file in &files {
        let picture = match decode_gray(file) {
            Ok(p) => p,
            Err(why) => {
                skipped.push(format!("{}: {why}", file.display()));
                continue;
            }
        };
        let dims = picture.dimensions();
        let Some(gray) =
            GrayImage::new(dims.0 as usize, dims.1 as usize, picture.as_raw().iter().map(|v| f32::from(*v)).collect())
        else {
            skipped.push(format!("{}: empty image ({}x{})", file.display(), dims.0, dims.1));
            continue;
        };
        if *size.get_or_insert(dims) != dims {
            skipped.push(format!("{}: {}x{} differs from the first image's size", file.display(), dims.0, dims.1));
            continue;
        }
        let found = match pattern {
            Pattern::Chessboard { .. } => find_chessboard(&gray, cols, rows),
            Pattern::Circles { .. } => find_asymmetric_circles(&gray, cols, rows),
        };
        match found {
            Ok(image) => views.push(scopecast_calibration::intrinsics::View { object: object.clone(), image }),
            Err(e) => skipped.push(format!("{}: pattern not found ({e})", file.display())),
        }
    }
    let Some(image_size) = size else {
        anyhow::bail!(
            "{}: none of the {} image files could be read:\n  {}",
            dir.display(),
            files.len(),
            skipped.join("\n  ")
        );
    };
    Ok(ImageViews { views, image_size, skipped })
}

/// Runs an intrinsic calibration and writes the file; returns the report.
pub fn intrinsics(args: &IntrinsicsArgs) -> anyhow::Result<String> {
    let mut skipped = Vec::new();
    let (input, source) = match (&args.points, &args.images, &args.pattern) {
        (Some(points), _, _) => (PointsFile::load(points)?, points.clone()),
        (None, Some(dir), Some(pattern)) => {
            let found = views_from_images(dir, parse_pattern(pattern)?)?;
            skipped = found.skipped;
            (PointsFile { image_size: found.image_size, views: found.views }, dir.clone())
        }
        _ => anyhow::bail!("give --points FILE.json, or --images DIR with --pattern"),
    };
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
    let result = calibrate(&input.views, input.image_size, kind, flags).with_context(|| {
        // The images left out are often why too few views remain: say which and why.
        let left_out: String = skipped.iter().map(|s| format!("\n  skipped {s}")).collect();
        format!("calibrating from {} ({} views){left_out}", source.display(), input.views.len())
    })?;
    let file = CalibrationFile {
        camera: result.camera,
        image_width: input.image_size.0,
        image_height: input.image_size.1,
        avg_reprojection_error: result.rms_px,
    };
    file.save(&args.output)?;
    let k = result.camera.intrinsics;
    let s = &result.std_dev;
    let mut report: String = skipped.iter().map(|s| format!("skipped {s}\n")).collect();
    report += &format!(
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

use nalgebra::{Isometry3, Vector3};
use scopecast_calibration::registration::hand_eye::hand_eye_calibration;
use scopecast_calibration::registration::icp::{IcpMetric, IcpSettings, icp};
use scopecast_calibration::registration::pivot::pivot_calibration;
use scopecast_calibration::registration::points::register_points;
use scopecast_calibration::registration::{isometry_from_rows, rows_from_isometry};
use serde::Deserialize;

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not the documented JSON layout", path.display()))
}

fn poses(rows: &[[f64; 16]], field: &str, path: &Path) -> anyhow::Result<Vec<Isometry3<f64>>> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| isometry_from_rows(r).with_context(|| format!("{}: {field}[{i}]", path.display())))
        .collect()
}

fn write_output(output: Option<&PathBuf>, value: &serde_json::Value) -> anyhow::Result<String> {
    let text = serde_json::to_string_pretty(value)?;
    match output {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("cannot write {}", path.display()))?;
            Ok(format!("written to {}", path.display()))
        }
        None => Ok(text),
    }
}

/// `scopecast calibrate pivot`.
#[derive(Debug, Args)]
pub struct PivotArgs {
    /// JSON: {"tracker_from_tool": [[16 numbers, row-major 4x4, mm], ...]} (at least 4 poses).
    #[arg(long)]
    pub poses: PathBuf,
    /// Write the result as JSON here (else print it).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PivotInput {
    tracker_from_tool: Vec<[f64; 16]>,
}

/// Runs a pivot calibration.
pub fn pivot(args: &PivotArgs) -> anyhow::Result<String> {
    let input: PivotInput = read_json(&args.poses)?;
    let result = pivot_calibration(&poses(&input.tracker_from_tool, "tracker_from_tool", &args.poses)?)?;
    let json = serde_json::json!({
        "tip_in_tool_mm": result.tip_in_tool.as_slice(),
        "pivot_in_tracker_mm": result.pivot_in_tracker.as_slice(),
        "rms_mm": result.rms_mm,
        "max_mm": result.max_mm,
    });
    Ok(format!(
        "tip in tool {:.3?} mm, pivot in tracker {:.3?} mm\nRMS {:.4} mm, max {:.4} mm over {} poses\n{}",
        result.tip_in_tool.as_slice(),
        result.pivot_in_tracker.as_slice(),
        result.rms_mm,
        result.max_mm,
        input.tracker_from_tool.len(),
        write_output(args.output.as_ref(), &json)?
    ))
}

/// `scopecast calibrate hand-eye`.
#[derive(Debug, Args)]
pub struct HandEyeArgs {
    /// JSON: {"tracker_from_marker": [[16]...], "camera_from_target": [[16]...]}, row-major 4x4, mm, paired.
    #[arg(long)]
    pub poses: PathBuf,
    /// Write the result as JSON here (else print it).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HandEyeInput {
    tracker_from_marker: Vec<[f64; 16]>,
    camera_from_target: Vec<[f64; 16]>,
}

/// Runs a hand–eye calibration.
pub fn hand_eye(args: &HandEyeArgs) -> anyhow::Result<String> {
    let input: HandEyeInput = read_json(&args.poses)?;
    let markers = poses(&input.tracker_from_marker, "tracker_from_marker", &args.poses)?;
    let cameras = poses(&input.camera_from_target, "camera_from_target", &args.poses)?;
    let result = hand_eye_calibration(&markers, &cameras)?;
    let json = serde_json::json!({
        "marker_from_camera": rows_from_isometry(&result.marker_from_camera).to_vec(),
        "rotation_rms_deg": result.rotation_rms_deg,
        "translation_rms_mm": result.translation_rms_mm,
        "motions": result.motions,
    });
    Ok(format!(
        "marker_from_camera translation {:.3?} mm, rotation {:.4} deg about {:.4?}\nresiduals over {} motions: rotation RMS {:.4} deg, translation RMS {:.4} mm\n{}",
        result.marker_from_camera.translation.vector.as_slice(),
        result.marker_from_camera.rotation.angle().to_degrees(),
        result.marker_from_camera.rotation.axis().map(|a| a.into_inner()).unwrap_or_else(Vector3::z).as_slice(),
        result.motions,
        result.rotation_rms_deg,
        result.translation_rms_mm,
        write_output(args.output.as_ref(), &json)?
    ))
}

/// `scopecast register points`.
#[derive(Debug, Args)]
pub struct PointsArgs {
    /// JSON: {"moving": [[x,y,z]...], "fixed": [[x,y,z]...], "targets": [[x,y,z]...] (optional, moving frame),
    /// "fle_mm": number (optional; estimated from the FRE otherwise)}.
    #[arg(long)]
    pub pairs: PathBuf,
    /// Also estimate a uniform scale (off by default).
    #[arg(long)]
    pub scale: bool,
    /// Write the result as JSON here (else print it).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PointsInput {
    moving: Vec<[f64; 3]>,
    fixed: Vec<[f64; 3]>,
    #[serde(default)]
    targets: Vec<[f64; 3]>,
    #[serde(default)]
    fle_mm: Option<f64>,
}

fn vectors(points: &[[f64; 3]]) -> Vec<Vector3<f64>> {
    points.iter().map(|p| Vector3::new(p[0], p[1], p[2])).collect()
}

/// Runs a paired-point registration.
pub fn points(args: &PointsArgs) -> anyhow::Result<String> {
    let input: PointsInput = read_json(&args.pairs)?;
    let result = register_points(&vectors(&input.moving), &vectors(&input.fixed), args.scale)
        .with_context(|| format!("registering {}", args.pairs.display()))?;
    let fle = input.fle_mm.unwrap_or(result.fle_mm);
    let tre: Vec<f64> =
        vectors(&input.targets).iter().map(|t| result.predicted_tre_mm(&result.apply(t), fle)).collect();
    let json = serde_json::json!({
        "fixed_from_moving": rows_from_isometry(&result.fixed_from_moving).to_vec(),
        "scale": result.scale,
        "fre_mm": result.fre_mm,
        "residuals_mm": result.residuals_mm,
        "fle_mm": fle,
        "predicted_tre_mm": tre,
    });
    let tre_text: Vec<String> = tre.iter().map(|t| format!("{t:.3}")).collect();
    Ok(format!(
        "FRE {:.4} mm over {} fiducials (FLE {:.4} mm{}), scale {:.6}\npredicted TRE at targets: [{}] mm\n{}",
        result.fre_mm,
        input.moving.len(),
        fle,
        if input.fle_mm.is_some() { ", given" } else { ", estimated from FRE" },
        result.scale,
        tre_text.join(", "),
        write_output(args.output.as_ref(), &json)?
    ))
}

/// ICP metrics on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MetricArg {
    /// Point-to-point.
    PointToPoint,
    /// Point-to-plane.
    PointToPlane,
}

/// `scopecast register surface`.
#[derive(Debug, Args)]
pub struct SurfaceArgs {
    /// Points to move: CSV (x,y,z per line) or a mesh (.stl, .obj, .glb, .gltf: its vertices).
    #[arg(long)]
    pub moving: PathBuf,
    /// The surface to register onto, same formats.
    #[arg(long)]
    pub fixed: PathBuf,
    /// Error metric.
    #[arg(long, value_enum, default_value = "point-to-plane")]
    pub metric: MetricArg,
    /// Initial fixed_from_moving as JSON {"fixed_from_moving": [16 numbers, row-major]}.
    #[arg(long)]
    pub initial: Option<PathBuf>,
    /// Fraction of closest pairs kept per iteration (0.5..=1).
    #[arg(long, default_value_t = 0.9)]
    pub keep: f64,
    /// Most iterations.
    #[arg(long, default_value_t = 60)]
    pub max_iterations: usize,
    /// Write the result as JSON here (else print it).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

fn cloud(path: &Path) -> anyhow::Result<Vec<Vector3<f64>>> {
    let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv") || e.eq_ignore_ascii_case("txt"));
    if !is_csv {
        let mesh = scopecast_engine::scene::mesh::load_mesh(path)?;
        return Ok(mesh
            .positions
            .iter()
            .map(|p| Vector3::new(f64::from(p[0]), f64::from(p[1]), f64::from(p[2])))
            .collect());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut points = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(char::is_alphabetic) {
            continue;
        }
        let values: Result<Vec<f64>, _> =
            line.split([',', ' ', '\t', ';']).filter(|s| !s.is_empty()).map(str::parse).collect();
        match values {
            Ok(v) if v.len() == 3 => points.push(Vector3::new(v[0], v[1], v[2])),
            _ => anyhow::bail!("{}:{}: expected three numbers x,y,z", path.display(), i + 1),
        }
    }
    Ok(points)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InitialPose {
    fixed_from_moving: [f64; 16],
}

/// Runs ICP.
pub fn surface(args: &SurfaceArgs) -> anyhow::Result<String> {
    let moving = cloud(&args.moving)?;
    let fixed = cloud(&args.fixed)?;
    let initial = match &args.initial {
        Some(path) => {
            let pose: InitialPose = read_json(path)?;
            isometry_from_rows(&pose.fixed_from_moving)
                .with_context(|| format!("{}: fixed_from_moving", path.display()))?
        }
        None => Isometry3::identity(),
    };
    let settings = IcpSettings {
        metric: match args.metric {
            MetricArg::PointToPoint => IcpMetric::PointToPoint,
            MetricArg::PointToPlane => IcpMetric::PointToPlane,
        },
        max_iterations: args.max_iterations,
        keep_fraction: args.keep,
        ..Default::default()
    };
    let result = icp(&moving, &fixed, initial, settings)?;
    let json = serde_json::json!({
        "fixed_from_moving": rows_from_isometry(&result.fixed_from_moving).to_vec(),
        "rms_mm": result.rms_mm,
        "rms_all_mm": result.rms_all_mm,
        "iterations": result.iterations,
        "converged": result.converged,
    });
    Ok(format!(
        "ICP {:?}: RMS {:.4} mm over the kept {:.0} % of {} points (all points {:.4} mm), {} iterations, {}\n{}",
        settings.metric,
        result.rms_mm,
        args.keep * 100.0,
        moving.len(),
        result.rms_all_mm,
        result.iterations,
        if result.converged { "converged" } else { "iteration limit reached" },
        write_output(args.output.as_ref(), &json)?
    ))
}
