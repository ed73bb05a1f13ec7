//! The compositor's passes, one file each, in the order a frame runs them
//! (`super::Compositor::render` keeps that order): the registered anatomy
//! into the overlay target, the compose pass (video, undistorted or not,
//! with the overlay), the annotations, the timecode strip, and RGBA → I420
//! for the encoder. Each owns its pipeline, buffers and bind groups, is
//! created once per device, and records its work with `encode(..)`. On a
//! software adapter the compose, strip and I420 passes are one (`fused`), with
//! the annotations drawn into a layer of their own before it.

pub(crate) mod annotations;
pub(crate) mod compose;
pub(crate) mod fused;
pub(crate) mod i420;
pub(crate) mod overlay;
pub(crate) mod timecode;
