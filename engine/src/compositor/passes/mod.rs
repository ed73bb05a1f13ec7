//! The compositor's passes, one file each, in the order a frame runs them
//! (`super::Compositor::render` keeps that order): the registered anatomy
//! into the overlay target, the compose pass (video, undistorted or not,
//! with the overlay), the annotations, the timecode strip, and RGBA → I420
//! for the encoder. Each owns its pipeline, buffers and bind groups, is
//! created once per device, and records its work with `encode(..)`. On a
//! software adapter the compose, strip and I420 passes are one (`fused`), with
//! the annotations drawn into a layer of their own before it; with the CPU
//! plan (`PassPlan::Cpu`) only the overlay and annotations are drawn, into
//! one layer (`layer`), when they change, and `super::cpu_frame` does the rest.

pub(crate) mod annotations;
pub(crate) mod compose;
pub(crate) mod fused;
pub(crate) mod i420;
pub(crate) mod layer;
pub(crate) mod overlay;
pub(crate) mod timecode;
