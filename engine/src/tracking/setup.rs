//! What the config says about tracking, made into the types the station
//! runs: each tracker's settings, and each model's chain (its file links
//! read now, so a broken file is an error at start, not a wrong picture).

use std::path::{Path, PathBuf};

use glam::{DMat4, DVec4};

use super::chain::{Chain, Link, REGISTRATION_LINK, canonical_name};
use super::pose_store::{Freshness, Pose};
use super::smoothing::Smoothing;
use super::tracker_link::{PoseTime, TrackerRole, TrackerSettings};
use crate::config::{ModelConfig, SmoothingConfig, TrackingConfig};

/// Why a transform file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TransformFileError {
    /// Not readable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not JSON with one `a_from_b` 4×4 matrix.
    #[error("{path}: {reason}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The rigid transform in a JSON file of `scopecast calibrate hand-eye` or
/// `scopecast register`: its one key named `…_from_…` holding a 4×4 matrix,
/// rows first, mm.
pub fn load_transform_file(path: &Path) -> Result<Pose, TransformFileError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| TransformFileError::Read { path: path.into(), source })?;
    let shape = |reason: String| TransformFileError::Shape { path: path.into(), reason };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| shape(format!("not JSON: {e}")))?;
    let object = value.as_object().ok_or_else(|| shape("not a JSON object".into()))?;
    let mut keys = object.keys().filter(|k| k.contains("_from_"));
    let (Some(key), None) = (keys.next(), keys.next()) else {
        return Err(shape("needs exactly one key named like fixed_from_moving".into()));
    };
    let rows: Vec<Vec<f64>> =
        serde_json::from_value(object[key].clone()).map_err(|_| shape(format!("{key} is not a 4x4 matrix")))?;
    if rows.len() != 4 || rows.iter().any(|r| r.len() != 4) {
        return Err(shape(format!("{key} is not a 4x4 matrix")));
    }
    let column = |c: usize| DVec4::new(rows[0][c], rows[1][c], rows[2][c], rows[3][c]);
    let matrix = DMat4::from_cols(column(0), column(1), column(2), column(3));
    Pose::from_matrix(matrix, 1e-3).ok_or_else(|| shape(format!("{key} is not a rigid transform")))
}

/// The rigid pose of 16 numbers, a 4×4 matrix rows first (mm); `None` when
/// they are not 16 or not a rigid transform.
pub fn pose_of_rows(rows: &[f64]) -> Option<Pose> {
    if rows.len() != 16 {
        return None;
    }
    let column = |c: usize| DVec4::new(rows[c], rows[4 + c], rows[8 + c], rows[12 + c]);
    Pose::from_matrix(DMat4::from_cols(column(0), column(1), column(2), column(3)), 1e-3)
}

/// The model's tracked pose, if it has one (links read and checked). A
/// `file` link naming `registered` (the registration desk's output) is the
/// registration accepted at the station ([`REGISTRATION_LINK`]): "not
/// registered" until there is one, replaced at once by each one accepted.
pub fn chain_of(model: &ModelConfig, registered: Option<&Path>) -> Result<Option<Chain>, TransformFileError> {
    if model.pose.is_empty() {
        return Ok(None);
    }
    let mut links = Vec::new();
    for link in &model.pose {
        links.push(match (&link.tracked, &link.file) {
            (Some(name), _) => Link::Tracked { name: canonical_name(name), inverted: link.inverse },
            (None, Some(file)) if registered == Some(file.as_path()) => {
                Link::Tracked { name: REGISTRATION_LINK.into(), inverted: link.inverse }
            }
            (None, Some(file)) => {
                let pose = load_transform_file(file)?;
                Link::Fixed(if link.inverse { pose.inverse() } else { pose })
            }
            (None, None) => continue,
        });
    }
    Ok(Some(Chain { links }))
}

/// The trackers to connect, from `[tracking]`.
pub fn tracker_settings(tracking: &TrackingConfig) -> Vec<TrackerSettings> {
    tracking
        .trackers
        .iter()
        .filter_map(|t| {
            let role = match (&t.connect, &t.listen) {
                (Some(address), _) => TrackerRole::Client(address.clone()),
                (None, Some(address)) => TrackerRole::Server(address.clone()),
                (None, None) => return None,
            };
            let time = if t.tracker_timestamps {
                PoseTime::Tracker
            } else {
                PoseTime::Arrival { latency_ns: (t.latency_ms.max(0.0) * 1e6) as u64 }
            };
            let smoothing = match t.smoothing {
                SmoothingConfig::Off => Smoothing::Off,
                SmoothingConfig::LowPass => Smoothing::LowPass { cutoff_hz: 7.5 },
                SmoothingConfig::OneEuro => Smoothing::OneEuro { min_cutoff_hz: 1.0, beta: 0.05, speed_cutoff_hz: 1.0 },
            };
            Some(TrackerSettings { name: t.name.clone(), role, time, smoothing })
        })
        .collect()
}

/// How stale a pose may be, from `[tracking]`.
pub fn freshness(tracking: &TrackingConfig) -> Freshness {
    Freshness { stale_after_ns: tracking.stale_after_ms.saturating_mul(1_000_000) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PoseLinkConfig;

    #[test]
    fn a_registration_file_becomes_a_fixed_link_and_names_are_canonical() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("registration.json");
        std::fs::write(&file, r#"{"fixed_from_moving": [[0,-1,0,10],[1,0,0,20],[0,0,1,30],[0,0,0,1]], "fre_mm": 0.4}"#)
            .expect("write");
        let model = ModelConfig {
            pose: vec![
                PoseLinkConfig { tracked: Some("ScopeToTracker".into()), file: None, inverse: true },
                PoseLinkConfig { tracked: None, file: Some(file.clone()), inverse: false },
            ],
            ..ModelConfig::default()
        };
        let chain = chain_of(&model, None).expect("reads").expect("a chain");
        assert_eq!(chain.links[0], Link::Tracked { name: "tracker_from_scope".into(), inverted: true });
        let Link::Fixed(pose) = &chain.links[1] else { panic!("fixed") };
        assert_eq!(pose.translation, glam::DVec3::new(10.0, 20.0, 30.0));
        std::fs::write(&file, r#"{"fixed_from_moving": [[2,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}"#).expect("write");
        assert!(matches!(chain_of(&model, None), Err(TransformFileError::Shape { .. })), "a scaled matrix is refused");
        // The desk's output is the live registration, whether or not the file exists yet.
        let chain = chain_of(&model, Some(file.as_path())).expect("reads").expect("a chain");
        assert_eq!(chain.links[1], Link::Tracked { name: REGISTRATION_LINK.into(), inverted: false });
    }
}
