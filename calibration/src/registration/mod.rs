//! Registration: paired-point rigid registration with FRE and Fitzpatrick's
//! predicted TRE, pivot calibration of tracked tools, hand–eye calibration
//! (AX = XB), and surface registration by ICP.
//!
//! Transforms are named `a_from_b` and map points given in frame `b` to frame
//! `a`; lengths are in millimetres.

pub mod hand_eye;
pub mod icp;
pub mod kdtree;
pub mod pivot;
pub mod points;

use nalgebra::{Isometry3, Matrix3, Matrix4, Rotation3, Translation3, UnitQuaternion, Vector3};
use thiserror::Error;

/// Why a registration could not be computed.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RegistrationError {
    /// Too few points or poses.
    #[error("{given} {what} given; at least {needed} are needed")]
    TooFew {
        /// Points, poses or motions.
        what: &'static str,
        /// How many were given.
        given: usize,
        /// How many are needed.
        needed: usize,
    },
    /// The input does not determine the result.
    #[error("degenerate input: {reason}")]
    Degenerate {
        /// Why (collinear points, repeated poses, parallel rotation axes, ...).
        reason: String,
    },
    /// Lists that must pair up differ in length.
    #[error("{left} has {left_len} entries but {right} has {right_len}")]
    Mismatch {
        /// First list.
        left: &'static str,
        /// Its length.
        left_len: usize,
        /// Second list.
        right: &'static str,
        /// Its length.
        right_len: usize,
    },
    /// A value is NaN or infinite, or a matrix is not a rigid transform.
    #[error("invalid input: {reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
}

/// A rigid transform from a row-major 4×4 matrix, checked to be rigid (its
/// rotation orthonormal within 1e-3 and the last row 0 0 0 1).
pub fn isometry_from_rows(rows: &[f64; 16]) -> Result<Isometry3<f64>, RegistrationError> {
    if rows.iter().any(|v| !v.is_finite()) {
        return Err(RegistrationError::Invalid { reason: "a matrix entry is not finite".into() });
    }
    let m = Matrix4::from_row_slice(rows);
    let r: Matrix3<f64> = m.fixed_view::<3, 3>(0, 0).into();
    let orthonormal = (r.transpose() * r - Matrix3::identity()).amax() < 1e-3 && (r.determinant() - 1.0).abs() < 1e-3;
    let last_row_ok = (m[(3, 0)].abs() + m[(3, 1)].abs() + m[(3, 2)].abs() + (m[(3, 3)] - 1.0).abs()) < 1e-9;
    if !orthonormal || !last_row_ok {
        return Err(RegistrationError::Invalid { reason: "a 4x4 matrix is not a rigid transform".into() });
    }
    let rotation = UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix(&r));
    Ok(Isometry3::from_parts(Translation3::new(m[(0, 3)], m[(1, 3)], m[(2, 3)]), rotation))
}

/// Row-major 4×4 of an isometry.
pub fn rows_from_isometry(t: &Isometry3<f64>) -> [f64; 16] {
    let m = t.to_homogeneous();
    let mut out = [0.0; 16];
    for r in 0..4 {
        for c in 0..4 {
            out[r * 4 + c] = m[(r, c)];
        }
    }
    out
}

pub(crate) fn finite_points(points: &[Vector3<f64>], what: &str) -> Result<(), RegistrationError> {
    match points.iter().position(|p| !p.iter().all(|v| v.is_finite())) {
        Some(i) => Err(RegistrationError::Invalid { reason: format!("{what} point {i} is not finite") }),
        None => Ok(()),
    }
}
