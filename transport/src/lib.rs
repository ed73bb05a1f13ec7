//! scopecast-transport: everything that crosses the network between the capture
//! station and its viewers: WHEP/WHIP signalling over HTTP (SDP offer in,
//! `201 Created` + `Location` + SDP answer out, `DELETE` to end, Bearer
//! tokens), WebRTC sessions, the one-encode fan-out of encoded access units to
//! N peers, the versioned data-channel protocol (telestration, layer toggles,
//! presence), and the embedded viewer web app.
//!
//! It knows encoded media (H.264 access units with timestamps) and protocol
//! messages, never frames, pixels or GPUs. It must never depend on
//! `scopecast-engine`, wgpu or GStreamer: the engine depends on it, never the
//! other way round. Protocol decisions (fan-out, keyframe requests, pacing)
//! are plain state machines that take time as an input.

pub mod access;
#[cfg(feature = "webrtc")]
pub mod adapt;
pub mod admission;
pub mod auth;
#[cfg(feature = "webrtc")]
pub mod broadcast;
#[cfg(feature = "webrtc")]
pub mod clock;
#[cfg(feature = "webrtc")]
pub mod fanout;
#[cfg(feature = "webrtc")]
pub mod feedback;
#[cfg(feature = "webrtc")]
pub mod http_client;
pub mod ice;
pub mod igtl;
pub mod links;
#[cfg(feature = "webrtc")]
pub mod media;
#[cfg(feature = "webrtc")]
pub mod nack_budget;
#[cfg(feature = "webrtc")]
pub mod peer;
pub mod protocol;
pub mod refused;
#[cfg(feature = "webrtc")]
pub mod room;
#[cfg(feature = "webrtc")]
pub mod room_channels;
pub mod rtp_extensions;
#[cfg(feature = "webrtc")]
pub mod rtp_h264;
#[cfg(feature = "webrtc")]
pub mod whep;
#[cfg(feature = "webrtc")]
pub mod whip;

/// The viewer web page (served at `/`): a WHEP player with the lowest-latency
/// playout settings, connection state, size, fps and glass-to-glass latency
/// read from the timecode strip.
pub const VIEWER_PAGE: &str = include_str!("../web/viewer.html");
