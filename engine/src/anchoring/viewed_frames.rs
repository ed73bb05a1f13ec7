//! The frames viewers may be looking at: for each recently composited frame,
//! its capture time (Unix ms, what its timecode strip shows), its geometry
//! and every model's pose in it. The compositor stage notes each frame as it
//! composites it; a viewer's point names the frame it was drawn on and is
//! lifted with exactly that frame's pose.
//!
//! Bounded: the newest [`KEPT_FRAMES`] frames (about 4 s at 60 fps, more than
//! any viewer's glass-to-glass delay); older ones are dropped first. The
//! lock is held for a push or a lookup only (never across a lift).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use super::ModelAt;
use super::view::FrameView;

/// Frames kept.
pub const KEPT_FRAMES: usize = 256;

/// One composited frame as marks need it.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewedFrame {
    /// Its capture time, Unix ms (the timecode strip's value).
    pub capture_wall_ms: u64,
    /// Its capture time, station clock, ns.
    pub capture_time_ns: u64,
    /// Its geometry (`None`: no calibrated camera, nothing can be lifted).
    pub view: Option<FrameView>,
    /// Each model's pose in it, by model index.
    pub models: Vec<ModelAt>,
}

/// Why no frame could be found for a viewer's point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameLookupError {
    /// Nothing composited yet.
    #[error("no frame has been composited yet")]
    NoFrames,
    /// The frame named is not among the recent ones (too old, or never shown).
    #[error("the frame drawn on ({frame_ms} ms) is not among the last {KEPT_FRAMES} frames")]
    Unknown {
        /// The frame asked for, Unix ms.
        frame_ms: u64,
    },
}

/// The recent frames, shared by the compositor stage (writer) and the
/// telestration (reader).
#[derive(Debug, Default)]
pub struct ViewedFrames {
    frames: Mutex<VecDeque<Arc<ViewedFrame>>>,
}

impl ViewedFrames {
    /// An empty history, shareable.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn frames(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<ViewedFrame>>> {
        self.frames.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a composited frame (the oldest goes beyond [`KEPT_FRAMES`]).
    pub fn note(&self, frame: ViewedFrame) {
        let frame = Arc::new(frame);
        let mut frames = self.frames();
        if frames.len() >= KEPT_FRAMES {
            frames.pop_front();
        }
        frames.push_back(frame);
    }

    /// The frame captured at `frame_ms` (Unix ms); with `None`, the newest
    /// (a page that did not say: what it shows is close to the newest).
    pub fn find(&self, frame_ms: Option<u64>) -> Result<Arc<ViewedFrame>, FrameLookupError> {
        let frames = self.frames();
        let newest = frames.back().ok_or(FrameLookupError::NoFrames)?;
        let Some(frame_ms) = frame_ms else { return Ok(newest.clone()) };
        frames
            .iter()
            .rev()
            .find(|f| f.capture_wall_ms == frame_ms)
            .cloned()
            .ok_or(FrameLookupError::Unknown { frame_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ms: u64) -> ViewedFrame {
        ViewedFrame { capture_wall_ms: ms, capture_time_ns: ms * 1_000_000, view: None, models: Vec::new() }
    }

    #[test]
    fn the_frame_drawn_on_is_found_and_the_history_stays_bounded() {
        let history = ViewedFrames::new();
        assert_eq!(history.find(None), Err(FrameLookupError::NoFrames));
        for ms in 0..(KEPT_FRAMES as u64 + 10) {
            history.note(frame(1_000 + ms * 16));
        }
        assert_eq!(history.find(Some(1_000 + 100 * 16)).expect("kept").capture_wall_ms, 1_000 + 100 * 16);
        assert_eq!(history.find(Some(1_000)), Err(FrameLookupError::Unknown { frame_ms: 1_000 }), "dropped");
        assert_eq!(history.find(Some(1_001)), Err(FrameLookupError::Unknown { frame_ms: 1_001 }), "never shown");
        let newest = 1_000 + (KEPT_FRAMES as u64 + 9) * 16;
        assert_eq!(history.find(None).expect("newest").capture_wall_ms, newest);
        assert_eq!(history.frames().len(), KEPT_FRAMES);
    }
}
