//! Calibration files: OpenCV FileStorage YAML (`%YAML:1.0`, `!!opencv-matrix`
//! nodes `camera_matrix` and `distortion_coefficients`, plus `image_width`,
//! `image_height`, `avg_reprojection_error` and `camera_model`), which
//! `cv2.FileStorage` opens, and the same content as JSON.
//!
//! The YAML reader handles the subset FileStorage writes (top-level scalars
//! and `!!opencv-matrix` maps, flow sequences over several lines). A
//! malformed or incomplete file is an error naming the file and the field.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::camera::{BrownConrady, CameraModel, KannalaBrandt, LensModel, PinholeIntrinsics};

/// A camera calibration as stored on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationFile {
    /// The camera.
    pub camera: CameraModel,
    /// Image width the intrinsics refer to, px.
    pub image_width: u32,
    /// Image height, px.
    pub image_height: u32,
    /// RMS reprojection error of the calibration, px (0 if unknown).
    pub avg_reprojection_error: f64,
}

/// Why a calibration file could not be read or written.
#[derive(Debug, Error)]
pub enum FileError {
    /// IO failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file's syntax is wrong.
    #[error("{path}:{line}: {reason}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A field is missing or has a bad value.
    #[error("{path}: field `{field}`: {reason}")]
    Field {
        /// The file.
        path: PathBuf,
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// Model names as written in `camera_model`.
fn model_name(lens: &LensModel) -> &'static str {
    match lens {
        LensModel::BrownConrady(_) => "brown_conrady",
        LensModel::KannalaBrandt(_) => "kannala_brandt",
    }
}

fn coefficients(lens: &LensModel) -> Vec<f64> {
    match *lens {
        LensModel::BrownConrady(BrownConrady { k1, k2, p1, p2, k3 }) => vec![k1, k2, p1, p2, k3],
        LensModel::KannalaBrandt(KannalaBrandt { k1, k2, k3, k4 }) => vec![k1, k2, k3, k4],
    }
}

/// `%.17g`-like: shortest text that reads back to the same f64, with a dot.
fn number(v: f64) -> String {
    let s = format!("{v:?}");
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") { s } else { format!("{s}.") }
}

fn opencv_matrix(out: &mut String, name: &str, rows: usize, cols: usize, data: &[f64]) {
    let _ = writeln!(out, "{name}: !!opencv-matrix");
    let _ = writeln!(out, "   rows: {rows}");
    let _ = writeln!(out, "   cols: {cols}");
    let _ = writeln!(out, "   dt: d");
    let values: Vec<String> = data.iter().map(|v| number(*v)).collect();
    let _ = writeln!(out, "   data: [ {} ]", values.join(", "));
}

impl CalibrationFile {
    /// The OpenCV FileStorage YAML text.
    pub fn to_opencv_yaml(&self) -> String {
        let PinholeIntrinsics { fx, fy, cx, cy } = self.camera.intrinsics;
        let mut out = String::from("%YAML:1.0\n---\n");
        let _ = writeln!(out, "camera_model: \"{}\"", model_name(&self.camera.lens));
        let _ = writeln!(out, "image_width: {}", self.image_width);
        let _ = writeln!(out, "image_height: {}", self.image_height);
        opencv_matrix(&mut out, "camera_matrix", 3, 3, &[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]);
        let d = coefficients(&self.camera.lens);
        opencv_matrix(&mut out, "distortion_coefficients", 1, d.len(), &d);
        let _ = writeln!(out, "avg_reprojection_error: {}", number(self.avg_reprojection_error));
        out
    }

    /// The JSON text.
    pub fn to_json(&self) -> String {
        let PinholeIntrinsics { fx, fy, cx, cy } = self.camera.intrinsics;
        let json = JsonCalibration {
            camera_model: model_name(&self.camera.lens).into(),
            image_width: self.image_width,
            image_height: self.image_height,
            camera_matrix: [[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]],
            distortion_coefficients: coefficients(&self.camera.lens),
            avg_reprojection_error: self.avg_reprojection_error,
        };
        serde_json::to_string_pretty(&json).unwrap_or_default()
    }

    /// Writes YAML (`.yaml`, `.yml`) or JSON (`.json`) by extension.
    pub fn save(&self, path: &Path) -> Result<(), FileError> {
        let text = if is_json(path) { self.to_json() } else { self.to_opencv_yaml() };
        std::fs::write(path, text).map_err(|source| FileError::Io { path: path.into(), source })
    }

    /// Reads YAML or JSON (by extension, else by content).
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let bytes = std::fs::metadata(path).map_err(|source| FileError::Io { path: path.into(), source })?.len();
        if bytes > 1 << 20 {
            return Err(FileError::Field {
                path: path.into(),
                field: "(file)".into(),
                reason: format!("{bytes} bytes is too large for a calibration"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Io { path: path.into(), source })?;
        if is_json(path) || text.trim_start().starts_with('{') {
            Self::parse_json(&text, path)
        } else {
            Self::parse_opencv_yaml(&text, path)
        }
    }

    /// Parses the JSON form.
    pub fn parse_json(text: &str, path: &Path) -> Result<Self, FileError> {
        let json: JsonCalibration = serde_json::from_str(text).map_err(|e| FileError::Syntax {
            path: path.into(),
            line: e.line(),
            reason: e.to_string(),
        })?;
        let m = json.camera_matrix;
        build(
            path,
            &json.camera_model,
            json.image_width,
            json.image_height,
            &[m[0][0], m[0][1], m[0][2], m[1][0], m[1][1], m[1][2], m[2][0], m[2][1], m[2][2]],
            &json.distortion_coefficients,
            json.avg_reprojection_error,
        )
    }

    /// Parses OpenCV FileStorage YAML.
    pub fn parse_opencv_yaml(text: &str, path: &Path) -> Result<Self, FileError> {
        let nodes = parse_yaml_subset(text, path)?;
        let field = |name: &str| FileError::Field { path: path.into(), field: name.into(), reason: "missing".into() };
        let scalar = |name: &str| -> Result<&str, FileError> {
            match nodes.iter().find(|(k, _)| k == name) {
                Some((_, Node::Scalar(s))) => Ok(s.as_str()),
                Some(_) => Err(FileError::Field {
                    path: path.into(),
                    field: name.into(),
                    reason: "expected a value, found a matrix".into(),
                }),
                None => Err(field(name)),
            }
        };
        let integer = |name: &str| -> Result<u32, FileError> {
            scalar(name)?.parse().map_err(|_| FileError::Field {
                path: path.into(),
                field: name.into(),
                reason: "not a whole number".into(),
            })
        };
        let matrix = |name: &str| -> Result<(usize, usize, Vec<f64>), FileError> {
            match nodes.iter().find(|(k, _)| k == name) {
                Some((_, Node::Matrix { rows, cols, data })) => Ok((*rows, *cols, data.clone())),
                Some(_) => Err(FileError::Field {
                    path: path.into(),
                    field: name.into(),
                    reason: "expected an !!opencv-matrix".into(),
                }),
                None => Err(field(name)),
            }
        };
        let model = scalar("camera_model").unwrap_or("brown_conrady").trim_matches('"').to_string();
        let (rows, cols, k) = matrix("camera_matrix")?;
        if (rows, cols) != (3, 3) {
            return Err(FileError::Field {
                path: path.into(),
                field: "camera_matrix".into(),
                reason: format!("{rows}x{cols}, expected 3x3"),
            });
        }
        let (_, _, d) = matrix("distortion_coefficients")?;
        let error = match scalar("avg_reprojection_error") {
            Ok(s) => s.parse().map_err(|_| FileError::Field {
                path: path.into(),
                field: "avg_reprojection_error".into(),
                reason: "not a number".into(),
            })?,
            Err(_) => 0.0,
        };
        build(path, &model, integer("image_width")?, integer("image_height")?, &k, &d, error)
    }
}

fn is_json(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonCalibration {
    #[serde(default = "default_model")]
    camera_model: String,
    image_width: u32,
    image_height: u32,
    camera_matrix: [[f64; 3]; 3],
    distortion_coefficients: Vec<f64>,
    #[serde(default)]
    avg_reprojection_error: f64,
}

fn default_model() -> String {
    "brown_conrady".into()
}

fn build(
    path: &Path,
    model: &str,
    width: u32,
    height: u32,
    k: &[f64],
    d: &[f64],
    error: f64,
) -> Result<CalibrationFile, FileError> {
    let bad = |field: &str, reason: String| FileError::Field { path: path.into(), field: field.into(), reason };
    if width == 0 || height == 0 || width > 20_000 || height > 20_000 {
        return Err(bad("image_width", format!("{width}x{height} is not an image size")));
    }
    if k.len() != 9 || k.iter().any(|v| !v.is_finite()) {
        return Err(bad("camera_matrix", "needs 9 finite numbers".into()));
    }
    if k[1] != 0.0 || k[3] != 0.0 || k[6] != 0.0 || k[7] != 0.0 || (k[8] - 1.0).abs() > 1e-12 {
        return Err(bad("camera_matrix", "must be [fx 0 cx; 0 fy cy; 0 0 1] (skew is not supported)".into()));
    }
    if d.iter().any(|v| !v.is_finite()) {
        return Err(bad("distortion_coefficients", "a coefficient is not finite".into()));
    }
    let c = |i: usize| d.get(i).copied().unwrap_or(0.0);
    let lens = match model {
        "brown_conrady" | "pinhole" => {
            if !matches!(d.len(), 4 | 5) {
                return Err(bad(
                    "distortion_coefficients",
                    format!("{} coefficients; Brown–Conrady takes 4 or 5 (k1 k2 p1 p2 [k3])", d.len()),
                ));
            }
            LensModel::BrownConrady(BrownConrady { k1: c(0), k2: c(1), p1: c(2), p2: c(3), k3: c(4) })
        }
        "kannala_brandt" | "fisheye" => {
            if d.len() != 4 {
                return Err(bad(
                    "distortion_coefficients",
                    format!("{} coefficients; Kannala–Brandt takes 4 (k1..k4)", d.len()),
                ));
            }
            LensModel::KannalaBrandt(KannalaBrandt { k1: c(0), k2: c(1), k3: c(2), k4: c(3) })
        }
        other => return Err(bad("camera_model", format!("{other:?} is not brown_conrady or kannala_brandt"))),
    };
    let camera = CameraModel { intrinsics: PinholeIntrinsics { fx: k[0], fy: k[4], cx: k[2], cy: k[5] }, lens };
    camera.validate().map_err(|e| bad("camera_matrix", e.to_string()))?;
    Ok(CalibrationFile { camera, image_width: width, image_height: height, avg_reprojection_error: error })
}

/// A node of the FileStorage subset.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Scalar(String),
    Matrix { rows: usize, cols: usize, data: Vec<f64> },
}

/// Parses top-level `key: value` and `key: !!opencv-matrix` blocks.
fn parse_yaml_subset(text: &str, path: &Path) -> Result<Vec<(String, Node)>, FileError> {
    let syntax = |line: usize, reason: String| FileError::Syntax { path: path.into(), line, reason };
    let lines: Vec<&str> = text.lines().collect();
    if !lines.first().is_some_and(|l| l.trim_start().starts_with("%YAML")) {
        return Err(syntax(1, "not an OpenCV FileStorage YAML file (no %YAML header)".into()));
    }
    let mut nodes: Vec<(String, Node)> = Vec::new();
    let mut i = 1;
    while i < lines.len() {
        let raw = lines[i].split('#').next().unwrap_or("");
        i += 1;
        if raw.trim().is_empty() || raw.trim() == "---" {
            continue;
        }
        if raw.starts_with(' ') {
            let after = nodes
                .last()
                .map_or(String::new(), |(k, _)| format!(" under field `{k}`, which is not an !!opencv-matrix"));
            return Err(syntax(i, format!("unexpected indented line {:?}{after}", raw.trim())));
        }
        let (key, value) =
            raw.split_once(':').ok_or_else(|| syntax(i, format!("expected `key: value`, found {:?}", raw.trim())))?;
        let (key, value) = (key.trim().to_string(), value.trim());
        if value != "!!opencv-matrix" {
            nodes.push((key, Node::Scalar(value.trim_matches('"').to_string())));
            continue;
        }
        // The matrix's indented map.
        let (mut rows, mut cols, mut data) = (None, None, None);
        while i < lines.len() && lines[i].starts_with(' ') {
            let line_no = i + 1;
            let inner = lines[i].trim();
            i += 1;
            let (k, v) =
                inner.split_once(':').ok_or_else(|| syntax(line_no, format!("expected `key: value` in {key}")))?;
            match k.trim() {
                "rows" => rows = v.trim().parse::<usize>().ok(),
                "cols" => cols = v.trim().parse::<usize>().ok(),
                "dt" => {}
                "data" => {
                    let mut seq = v.trim().to_string();
                    while !seq.contains(']') && i < lines.len() {
                        seq.push(' ');
                        seq.push_str(lines[i].trim());
                        i += 1;
                    }
                    let inner = seq
                        .trim()
                        .strip_prefix('[')
                        .and_then(|s| s.strip_suffix(']'))
                        .ok_or_else(|| syntax(line_no, format!("{key}.data is not a [ ... ] list")))?;
                    let values: Result<Vec<f64>, _> =
                        inner.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse::<f64>).collect();
                    data = Some(values.map_err(|_| syntax(line_no, format!("{key}.data holds a non-number")))?);
                }
                other => return Err(syntax(line_no, format!("unknown key {other:?} in {key}"))),
            }
        }
        let missing = |what: &str| FileError::Field {
            path: path.into(),
            field: format!("{key}.{what}"),
            reason: "missing or not a number".into(),
        };
        let (rows, cols) = (rows.ok_or_else(|| missing("rows"))?, cols.ok_or_else(|| missing("cols"))?);
        let data = data.ok_or_else(|| missing("data"))?;
        if rows.saturating_mul(cols) != data.len() {
            return Err(FileError::Field {
                path: path.into(),
                field: format!("{key}.data"),
                reason: format!("{} values for {rows}x{cols}", data.len()),
            });
        }
        nodes.push((key, Node::Matrix { rows, cols, data }));
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CalibrationFile {
        CalibrationFile {
            camera: CameraModel {
                intrinsics: PinholeIntrinsics { fx: 809.949_04, fy: 806.561_12, cx: 361.996_29, cy: 214.395_01 },
                lens: LensModel::BrownConrady(BrownConrady {
                    k1: -0.128,
                    k2: -0.394,
                    p1: -0.0043,
                    p2: -0.0073,
                    k3: 0.0,
                }),
            },
            image_width: 640,
            image_height: 480,
            avg_reprojection_error: 0.138_89,
        }
    }

    #[test]
    fn yaml_and_json_round_trip_exactly() {
        let p = Path::new("cam.yaml");
        let c = sample();
        assert_eq!(CalibrationFile::parse_opencv_yaml(&c.to_opencv_yaml(), p).expect("yaml"), c);
        assert_eq!(CalibrationFile::parse_json(&c.to_json(), p).expect("json"), c);
        let mut kb = sample();
        kb.camera.lens = LensModel::KannalaBrandt(KannalaBrandt { k1: 0.1, k2: -0.01, k3: 0.002, k4: -0.0003 });
        assert_eq!(CalibrationFile::parse_opencv_yaml(&kb.to_opencv_yaml(), p).expect("yaml"), kb);
    }

    #[test]
    fn opencv_written_yaml_with_wrapped_data_reads() {
        let text = "%YAML:1.0\n---\nimage_width: 640\nimage_height: 480\ncamera_matrix: !!opencv-matrix\n   rows: 3\n   cols: 3\n   dt: d\n   data: [ 8.0994790000000000e+02, 0., 3.6199611000000002e+02, 0.,\n       8.0655964000000006e+02, 2.1439514000000000e+02, 0., 0., 1. ]\ndistortion_coefficients: !!opencv-matrix\n   rows: 1\n   cols: 5\n   dt: d\n   data: [ -1.2821e-01, -3.9441e-01, -4.35e-03, -7.32e-03, 0. ]\n";
        let c = CalibrationFile::parse_opencv_yaml(text, Path::new("cv.yaml")).expect("parses");
        assert_eq!(c.camera.intrinsics.fy, "8.0655964000000006e+02".parse::<f64>().expect("number"));
        assert_eq!(c.avg_reprojection_error, 0.0);
    }

    #[test]
    fn malformed_files_name_the_field() {
        let p = Path::new("bad.yaml");
        let good = sample().to_opencv_yaml();
        let cases = [
            (good.replace("image_width: 640\n", ""), "image_width"),
            (good.replace("   rows: 3\n", "   rows: x\n"), "camera_matrix.rows"),
            (good.replace("   cols: 5", "   cols: 6"), "distortion_coefficients.data"),
            (good.replace("camera_matrix: !!opencv-matrix", "camera_matrix: 3"), "camera_matrix"),
            (good.replace("\"brown_conrady\"", "\"orthographic\""), "camera_model"),
            (good.replace("8.0994904e2", "nan").replace("809.94904", "nan"), "camera_matrix"),
            ("garbage".to_string(), "%YAML"),
        ];
        for (text, needle) in cases {
            let err = CalibrationFile::parse_opencv_yaml(&text, p).expect_err(needle);
            assert!(err.to_string().contains(needle), "{needle}: {err}");
            assert!(err.to_string().starts_with("bad.yaml"), "{err}");
        }
        let err = CalibrationFile::parse_json("{\"image_width\": 640}", Path::new("c.json")).expect_err("incomplete");
        assert!(err.to_string().contains("missing field"), "{err}");
    }
}
