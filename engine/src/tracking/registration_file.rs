//! The registration file (`scopecast-registration/1`): what the station's
//! registration desk and `scopecast register collect` write when a
//! registration is accepted, and what a model's `pose` chain reads
//! (`{ file = "registration.json" }`, its one `…_from_…` key). It keeps the
//! errors shown before acceptance and who accepted it, in the access log's
//! terms (a link's name and role, or the user of the command line), and
//! when; never patient data. Written whole to a temporary file and renamed,
//! so a crash leaves the old file or the new one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::pose_store::Pose;
use super::setup::pose_of_rows;

/// The format's name and version.
pub const FORMAT: &str = "scopecast-registration/1";

/// The surface refinement that went into an accepted registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurfaceRecord {
    /// Swept points used.
    pub points: usize,
    /// RMS distance of the kept points to the model's surface, mm.
    pub rms_mm: f64,
    /// How far the refinement moved the target (or the model's origin) from
    /// the paired-point result, mm.
    pub change_mm: f64,
}

/// A registration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationFile {
    /// [`FORMAT`].
    pub format: String,
    /// The model in the patient reference's frame: 4×4, rows first, mm.
    pub reference_from_model: [[f64; 4]; 4],
    /// Fiducial registration error, mm.
    pub fre_mm: f64,
    /// Each fiducial's residual, mm.
    pub residuals_mm: Vec<f64>,
    /// Each fiducial's leave-one-out error, mm.
    pub leave_one_out_mm: Vec<f64>,
    /// Predicted TRE at the target, mm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_tre_mm: Option<f64>,
    /// The target's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Fiducials used.
    pub fiducials: usize,
    /// The surface refinement, if one was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surface: Option<SurfaceRecord>,
    /// Who accepted it: a link's name and role, or a user of the command line.
    pub accepted_by: String,
    /// When, Unix ms.
    pub accepted_wall_ms: u64,
}

/// Why a registration file cannot be read or written.
#[derive(Debug, Error)]
pub enum RegistrationFileError {
    /// Not readable or writable.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a registration file of this version.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl RegistrationFile {
    /// The file of a registration accepted by `accepted_by` at `accepted_wall_ms`
    /// (Unix ms): `reference_from_model` (the surface refinement's, when there is one)
    /// with the paired-point errors of `fiducials`.
    pub fn accepted(
        reference_from_model: &Pose,
        fiducials: &super::registration::FiducialRegistration,
        target: Option<String>,
        surface: Option<SurfaceRecord>,
        accepted_by: String,
        accepted_wall_ms: u64,
    ) -> Self {
        Self {
            format: FORMAT.into(),
            reference_from_model: Self::rows_of(reference_from_model),
            fre_mm: fiducials.fre_mm,
            residuals_mm: fiducials.residuals_mm.clone(),
            leave_one_out_mm: fiducials.leave_one_out_mm.clone(),
            predicted_tre_mm: fiducials.tre_mm,
            target,
            fiducials: fiducials.residuals_mm.len(),
            surface,
            accepted_by,
            accepted_wall_ms,
        }
    }

    /// The matrix as a pose; `None` when it is not rigid.
    pub fn pose(&self) -> Option<Pose> {
        pose_of_rows(&self.reference_from_model.concat())
    }

    /// The rows of `pose`'s matrix.
    pub fn rows_of(pose: &Pose) -> [[f64; 4]; 4] {
        pose.matrix().transpose().to_cols_array_2d()
    }

    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, RegistrationFileError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| RegistrationFileError::Io { path: path.into(), source })?;
        let format = |reason: String| RegistrationFileError::Format { path: path.into(), reason };
        let file: Self = serde_json::from_str(&text).map_err(|e| format(format!("not a registration file: {e}")))?;
        if file.format != FORMAT {
            return Err(format(format!("format {:?}, this station reads {FORMAT:?}", file.format)));
        }
        if file.pose().is_none() {
            return Err(format("reference_from_model is not a rigid transform".into()));
        }
        Ok(file)
    }

    /// Writes `self` to `path` whole (a temporary file beside it, renamed).
    pub fn save(&self, path: &Path) -> Result<(), RegistrationFileError> {
        let io = |source| RegistrationFileError::Io { path: path.into(), source };
        let text = serde_json::to_string_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".partial");
        let temporary = PathBuf::from(temporary);
        std::fs::write(&temporary, format!("{text}\n")).map_err(io)?;
        std::fs::rename(&temporary, path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use glam::{DQuat, DVec3};

    use super::*;
    use crate::tracking::setup::load_transform_file;

    #[test]
    fn a_registration_file_round_trips_and_a_chain_reads_it() {
        let pose = Pose {
            rotation: DQuat::from_euler(glam::EulerRot::XYZ, 0.2, -0.4, 1.3),
            translation: DVec3::new(12.5, -3.25, 88.0),
        };
        let file = RegistrationFile {
            format: FORMAT.into(),
            reference_from_model: RegistrationFile::rows_of(&pose),
            fre_mm: 0.31,
            residuals_mm: vec![0.2, 0.4, 0.3],
            leave_one_out_mm: vec![0.5, 0.7, 0.6],
            predicted_tre_mm: Some(0.25),
            target: Some("tumour centroid".into()),
            fiducials: 3,
            surface: Some(SurfaceRecord { points: 410, rms_mm: 0.42, change_mm: 0.8 }),
            accepted_by: "Dr A (operator)".into(),
            accepted_wall_ms: 1_796_000_000_123,
        };
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("registration.json");
        file.save(&path).expect("writes");
        let read = RegistrationFile::load(&path).expect("reads");
        assert_eq!(read, file);
        assert!(read.pose().expect("rigid").matrix().abs_diff_eq(pose.matrix(), 1e-12));
        let chained = load_transform_file(&path).expect("a chain reads it");
        assert!(chained.matrix().abs_diff_eq(pose.matrix(), 1e-12));
        std::fs::write(&path, r#"{"format": "scopecast-registration/9"}"#).expect("write");
        assert!(matches!(RegistrationFile::load(&path), Err(RegistrationFileError::Format { .. })));
    }
}
