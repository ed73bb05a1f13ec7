//! The point-set input of `scopecast calibrate intrinsics --points`: the JSON
//! layout of `calibration/tests/data/calib1.json` (image size, pattern, the
//! target's object points, and per-view image points in the same order).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::intrinsics::View;

/// Why a points file could not be used.
#[derive(Debug, Error)]
pub enum PointsFileError {
    /// Unreadable.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// IO error.
        source: std::io::Error,
    },
    /// Not the documented JSON layout.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// serde_json's message (names the field and the line).
        message: String,
    },
    /// Consistent JSON but unusable values.
    #[error("{path}: field `{field}`: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPointsFile {
    image_width: u32,
    image_height: u32,
    #[serde(default)]
    pattern: Option<serde_json::Value>,
    object_points: Vec<[f64; 3]>,
    image_points: Vec<Vec<[f64; 2]>>,
    #[serde(default)]
    reference: Option<serde_json::Value>,
}

/// A parsed points file.
#[derive(Debug, Clone, PartialEq)]
pub struct PointsFile {
    /// Image size, px.
    pub image_size: (u32, u32),
    /// One view per image.
    pub views: Vec<View>,
}

impl PointsFile {
    /// Parses the JSON text; `path` names the origin in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, PointsFileError> {
        let raw: RawPointsFile = serde_json::from_str(text)
            .map_err(|e| PointsFileError::Parse { path: path.into(), message: e.to_string() })?;
        let _ = (&raw.pattern, &raw.reference);
        let invalid = |field, reason: String| PointsFileError::Invalid { path: path.into(), field, reason };
        if raw.image_width == 0 || raw.image_height == 0 || raw.image_width > 20_000 || raw.image_height > 20_000 {
            return Err(invalid(
                "image_width",
                format!("{}x{} is not an image size", raw.image_width, raw.image_height),
            ));
        }
        if raw.object_points.is_empty() {
            return Err(invalid("object_points", "no points".into()));
        }
        let mut views = Vec::new();
        for (i, image) in raw.image_points.into_iter().enumerate() {
            if image.len() != raw.object_points.len() {
                return Err(invalid(
                    "image_points",
                    format!("view {i} has {} points, object_points has {}", image.len(), raw.object_points.len()),
                ));
            }
            views.push(View { object: raw.object_points.clone(), image });
        }
        Ok(Self { image_size: (raw.image_width, raw.image_height), views })
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, PointsFileError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| PointsFileError::Read { path: path.into(), source })?;
        Self::parse(&text, path)
    }
}
