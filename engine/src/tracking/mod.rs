//! Tracking: poses from trackers (OpenIGTLink, `scopecast_transport::igtl`)
//! kept with their times and evaluated at each frame's capture time.

pub mod chain;
pub mod frame_poses;
pub mod hand_eye_views;
pub mod pose_store;
pub mod recorded_poses;
pub mod registration;
pub mod registration_desk;
pub mod registration_file;
pub mod setup;
pub mod simulated;
pub mod smoothing;
pub mod temporal;
pub mod tracker_link;
