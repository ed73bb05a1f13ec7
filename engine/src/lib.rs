//! scopecast-engine: the capture station: frames and their clock, the
//! latest-wins slots between stages, sources (the synthetic endoscope and
//! GStreamer inputs) with NO SIGNAL and recovery, the scene and telestration,
//! the GPU compositor, the encoders, recording and replay, the station's
//! wiring and endpoints (`station/`), the HTTP(S) server, metrics and the
//! config. The `scopecast` binary's subcommands live beside it in `cli/`
//! (declared by `main.rs`, not part of the library).
//!
//! It depends on `scopecast-calibration` (camera models, registration),
//! `scopecast-shaders` and `scopecast-transport`; nothing of ours depends on
//! the engine except `demos/` and `benches/`. Decision code takes time as
//! a parameter; threads ask a [`clock::Clock`].

pub mod access_log;
pub mod anchoring;
pub mod clock;
pub mod colour;
pub mod commands;
pub mod compositor;
pub mod config;
pub mod display;
pub mod encoder;
pub mod font;
pub mod frame;
pub mod gst_elements;
pub mod gst_runtime;
pub mod http;
pub mod malloc_arenas;
pub mod metrics;
pub mod pacing;
pub mod pool;
pub mod recorder;
pub mod replay;
pub mod scene;
pub mod shutdown;
mod simd;
pub mod slot;
pub mod snapshot;
pub mod source;
pub mod stage_status;
pub mod station;
pub mod status;
pub mod telestration;
pub mod thread_priority;
pub mod timecode;
pub mod tls;
pub mod tracking;
