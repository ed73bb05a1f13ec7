//! Video sources: the built-in synthetic endoscope and GStreamer inputs
//! (test pattern, V4L2, files, RTSP, MPEG-TS over TCP), and the supervisor
//! that keeps frames flowing when an input fails (NO SIGNAL, retry, recover).

pub mod gst;
pub mod health;
pub mod no_signal;
pub mod phantom;
pub mod spec;
pub mod supervisor;
pub mod synthetic;

use thiserror::Error;

use crate::frame::{Frame, FrameError};
pub use spec::{SourceSpec, SpecError};

/// Why a source could not deliver frames.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SourceError {
    /// GStreamer itself, or an element the source needs, is missing.
    #[error("GStreamer is not usable: {reason}")]
    GstUnavailable {
        /// What is missing and how to install it.
        reason: String,
    },
    /// The pipeline reported an error (device gone, file unreadable, server down, ...).
    #[error("{element}: {message}")]
    Pipeline {
        /// Element that raised it.
        element: String,
        /// GStreamer's message.
        message: String,
    },
    /// A live stream ended (the sender closed it).
    #[error("the stream ended")]
    StreamEnded,
    /// A file without `loop` reached its end.
    #[error("end of file")]
    EndOfFile,
    /// The source delivered a frame the pipeline cannot carry.
    #[error("unsupported frame: {reason}")]
    Unsupported {
        /// What was wrong with it.
        reason: String,
    },
    /// The frame's memory layout was inconsistent.
    #[error("bad frame layout: {0}")]
    Layout(#[from] FrameError),
}

impl From<crate::gst_runtime::GstUnavailable> for SourceError {
    fn from(e: crate::gst_runtime::GstUnavailable) -> Self {
        SourceError::GstUnavailable { reason: e.reason }
    }
}

/// A producer of frames, driven by the supervisor on the source thread.
pub trait FrameSource: Send {
    /// Short human description for the status line, e.g. `synthetic` or `v4l2:///dev/video0`.
    fn describe(&self) -> String;
    /// Opens the input. Called again after a failure (`stop` comes first).
    fn start(&mut self) -> Result<(), SourceError>;
    /// Waits up to `timeout_ns` for the next frame: `Ok(None)` when none came.
    /// The supervisor overwrites the frame's sequence number.
    fn next_frame(&mut self, timeout_ns: u64) -> Result<Option<Frame>, SourceError>;
    /// Releases the input. Must be cheap and idempotent.
    fn stop(&mut self);
}
