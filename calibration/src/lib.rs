//! scopecast-calibration: the estimation math of scopecast in pure Rust: camera
//! models (pinhole + Brown–Conrady, Kannala–Brandt fisheye), and later
//! intrinsic calibration, pattern detection, hand–eye, pivot calibration and
//! point/surface registration.
//!
//! It must never depend on a GPU, the pipeline, the network or any other
//! scopecast crate; its only IO is reading and writing calibration files
//! (serde/serde_json for the JSON forms, a small reader and writer of its own
//! for OpenCV's FileStorage YAML).
//! Everything here is f64 and deterministic, so results can be compared with
//! the references integrators trust (OpenCV, Bouguet's toolbox).
//!
//! Pixel convention: as in OpenCV, the centre of pixel `(col, row)` sits at
//! `(col, row)`, so the principal point of a perfectly centred W×H sensor is
//! `((W-1)/2, (H-1)/2)`. The engine's continuous image coordinates put pixel
//! centres at integer + 0.5 and convert at its boundary.

pub mod camera;
pub mod detect;
pub mod file;
pub mod intrinsics;
pub mod points_file;
pub mod registration;
pub mod synthetic;

pub use camera::{BrownConrady, CameraError, CameraModel, KannalaBrandt, LensModel, PinholeIntrinsics};
