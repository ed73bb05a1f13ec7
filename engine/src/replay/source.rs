//! The source of a replay that draws the overlays afresh: the recording's
//! clean video (`record_clean`), decoded frame by frame when the playback
//! schedule says, with the recorded scene put into the station's scene for
//! each frame ([`super::scene_track`]), so the station's own compositor,
//! encoder and WHEP sessions show it, and the trainer's layer switches and
//! new annotations land on top. Nothing is written to the recording.
//!
//! Held (or ended, or between frames slower than `repeat_ns` at a low
//! speed), the last picture is sent again every `repeat_ns` with a fresh
//! capture time: the compositor keeps drawing what the trainer draws while
//! the replay stands still, and the station never sees the signal vanish.

use std::sync::Arc;
use std::time::Duration;

use super::decoder::H264Decoder;
use super::player::Shared;
use super::scene_track::{RecordedScene, apply, in_force};
use super::session::{RecordedSession, SegmentCache};
use crate::clock::SharedClock;
use crate::frame::{Frame, FrameStamp};
use crate::scene::SceneStore;
use crate::source::{FrameSource, SourceError};

/// A replay's clean video as a frame source.
pub struct ReplaySource {
    session: RecordedSession,
    shared: Arc<Shared>,
    scenes: Vec<RecordedScene>,
    scene: Arc<SceneStore>,
    clock: SharedClock,
    repeat_ns: u64,
    cache: SegmentCache,
    decoder: Option<H264Decoder>,
    /// The picture shown last and its frame index.
    held: Option<(Frame, usize)>,
    last_sent_ns: u64,
    /// The scene record applied last.
    applied: Option<usize>,
    skipped_frames: u64,
}

impl ReplaySource {
    /// `session` (its clean track) played by `shared`, with `scenes` (the
    /// timeline's scene records) put into `scene`; the held picture is sent
    /// again every `repeat_ns`.
    pub fn new(
        session: RecordedSession,
        shared: Arc<Shared>,
        scenes: Vec<RecordedScene>,
        scene: Arc<SceneStore>,
        clock: SharedClock,
        repeat_ns: u64,
    ) -> Self {
        Self {
            session,
            shared,
            scenes,
            scene,
            clock,
            repeat_ns: repeat_ns.max(1_000_000),
            cache: SegmentCache::default(),
            decoder: None,
            held: None,
            last_sent_ns: 0,
            applied: None,
            skipped_frames: 0,
        }
    }

    /// Puts the scene recorded for frame `index` into the live scene, for a
    /// picture captured (replay clock) at `now_ns`.
    fn show_scene(&mut self, index: usize, now_ns: u64) {
        let recorded_ns = self.session.frames[index].capture_ns;
        let Some(record) = in_force(&self.scenes, recorded_ns) else { return };
        let switches = self.applied != Some(record);
        self.applied = Some(record);
        let shift = i128::from(now_ns) - i128::from(recorded_ns);
        let recorded = &self.scenes[record];
        let _ = self.scene.edit(|scene| {
            apply(scene, recorded, switches, shift);
            Ok::<(), std::convert::Infallible>(())
        });
    }

    fn decode(&mut self, index: usize) -> Result<Option<Frame>, SourceError> {
        let recorded = self.session.frames[index];
        let data = match self.cache.annex_b(&self.session, &recorded) {
            Ok(data) => data,
            Err(e) => {
                // A vanished or shrunk segment costs its frames, not the replay.
                self.skipped_frames += 1;
                if self.skipped_frames.is_power_of_two() {
                    tracing::warn!(error = %e, skipped = self.skipped_frames, "replay frame unreadable");
                }
                return Ok(None);
            }
        };
        let now = self.clock.now_ns();
        let stamp = FrameStamp { sequence: 0, capture_time_ns: now, capture_wall_ms: recorded.wall_ms };
        let decoder = self.decoder.as_mut().ok_or(SourceError::StreamEnded)?;
        let Some(frame) = decoder.decode(data, stamp)? else { return Ok(None) };
        self.show_scene(index, now);
        self.held = Some((frame.clone(), index));
        self.last_sent_ns = now;
        Ok(Some(frame))
    }
}

impl FrameSource for ReplaySource {
    fn describe(&self) -> String {
        format!("replay of {} (clean video, overlays drawn afresh)", self.session.name)
    }

    fn start(&mut self) -> Result<(), SourceError> {
        self.decoder = Some(H264Decoder::new()?);
        Ok(())
    }

    fn next_frame(&mut self, timeout_ns: u64) -> Result<Option<Frame>, SourceError> {
        let wait = Duration::from_nanos(timeout_ns.min(self.repeat_ns));
        if let Some(index) = self.shared.next_due(wait, |_| false) {
            return self.decode(index);
        }
        let now = self.clock.now_ns();
        let Some((held, index)) = self.held.clone() else { return Ok(None) };
        if now.saturating_sub(self.last_sent_ns) < self.repeat_ns {
            return Ok(None);
        }
        self.show_scene(index, now);
        self.last_sent_ns = now;
        let mut again = held;
        again.capture_time_ns = now;
        Ok(Some(again))
    }

    fn stop(&mut self) {
        self.decoder = None;
    }
}
