//! The compositor's stage: on its own thread, the newest captured frame in,
//! composited on the GPU with the current scene, I420 out to the encoder's
//! slot; the monitor gets its GPU copy, and while recording with
//! `record_clean` each frame before the overlay also goes to the clean
//! encoder. A frame the compositor cannot draw passes through undrawn (said
//! once in the log and the stage status, not per frame).

use std::sync::Arc;
use std::time::Duration;

use crate::anchoring::models_at;
use crate::anchoring::view::FrameView;
use crate::anchoring::viewed_frames::ViewedFrame;
use crate::clock::SharedClock;
use crate::compositor::Compositor;
use crate::frame::Frame;
use crate::metrics::FpsMeter;
use crate::scene::SceneStore;
use crate::shutdown::{POLL_INTERVAL, Shutdown};
use crate::slot::{SlotConsumer, SlotProducer, TakeError};

/// Frames the compositor may have on a GPU at once (one rendering, one
/// being read back): the GPU works while the CPU waits for a readback.
const MAX_GPU_FRAMES: usize = 2;
/// Frames in flight on a software adapter (lavapipe): its "GPU" is the same
/// cores as the encoder's, so a second frame in flight adds a frame of
/// waiting and no throughput (issue 20; measured in the glass-to-glass
/// bench, see ARCHITECTURE.md).
const MAX_CPU_ADAPTER_FRAMES: usize = 1;

/// Frames in flight for the adapter `info` describes.
pub(super) fn frames_in_flight(info: &wgpu::AdapterInfo) -> usize {
    if info.device_type == wgpu::DeviceType::Cpu { MAX_CPU_ADAPTER_FRAMES } else { MAX_GPU_FRAMES }
}

/// Where each frame's tracked poses come from.
pub(super) enum PoseSource {
    /// The trackers, at each frame's capture time (the live station).
    Live(Box<crate::tracking::frame_poses::FramePoses>),
    /// A recording's, by each frame's recorded capture time (a replay that
    /// composites afresh).
    Recorded(crate::tracking::recorded_poses::RecordedPoses),
}

/// The compositor on its own thread: newest frame in, composited I420 out.
pub(super) struct CompositorStage {
    pub(super) compositor: Compositor,
    pub(super) input: SlotConsumer<Frame>,
    pub(super) output: SlotProducer<Frame>,
    pub(super) scene: Arc<SceneStore>,
    pub(super) clock: SharedClock,
    pub(super) latency: Arc<crate::metrics::LatencyHistogram>,
    pub(super) frames: Arc<crate::metrics::Counter>,
    pub(super) fps: FpsMeter,
    pub(super) errors: Arc<crate::metrics::Counter>,
    /// The station's monitor, when it has one.
    pub(super) display: Option<crate::display::DisplayLink>,
    /// `record_clean`: while recording, each frame before the overlay goes
    /// here too (to the clean encoder).
    pub(super) clean: Option<(SlotProducer<Frame>, Arc<crate::recorder::Recorder>)>,
    /// Snapshot requests (`GET /snapshot.png`), answered after the next frame.
    pub(super) snapshots: super::snapshot_desk::SnapshotWindow,
    /// Tracked models' poses for each frame, when any model is tracked.
    pub(super) tracked: Option<PoseSource>,
    /// Each composited frame's capture time, geometry and model poses, for
    /// viewers' marks on the anatomy.
    pub(super) viewed: Arc<crate::anchoring::viewed_frames::ViewedFrames>,
    /// Failures in words for the status line, the HUD and `/healthz`.
    pub(super) stages: Arc<crate::stage_status::StageStatus>,
}

impl CompositorStage {
    pub(super) fn run(mut self, stop: &Shutdown) {
        let mut last_error: Option<String> = None;
        let in_flight = frames_in_flight(&self.compositor.context().adapter_info);
        while !stop.is_triggered() {
            // A GPU slower than the source must cost frames, not latency: with
            // `frames_in_flight` in flight, new frames wait in the input slot (where
            // the newest replaces older ones, counted as drops).
            if self.compositor.in_flight() >= in_flight {
                std::thread::sleep(Duration::from_micros(500));
                self.collect();
                continue;
            }
            // While a readback is in flight, come back soon to collect it.
            let wait = if self.compositor.readback_pending() { Duration::from_millis(1) } else { POLL_INTERVAL };
            match self.input.take(wait) {
                Ok(frame) => {
                    if let Some((clean, recorder)) = &self.clean
                        && recorder.is_recording()
                    {
                        clean.put(frame.clone());
                    }
                    let scene = self.scene.load();
                    let poses = match self.tracked.as_mut() {
                        Some(PoseSource::Live(tracked)) => {
                            tracked.for_frame(&scene.scene, frame.capture_time_ns, frame.capture_wall_ms)
                        }
                        Some(PoseSource::Recorded(recorded)) => recorded.for_frame(&scene.scene, frame.capture_wall_ms),
                        None => Vec::new(),
                    };
                    // A snapshot asked for: this frame keeps its RGBA picture (the fused pass
                    // of a software adapter writes it only when asked).
                    let snapshot = self.snapshots.asked();
                    if snapshot.is_some() {
                        self.compositor.keep_rgba_of_next_frame();
                    }
                    let rendered = self.compositor.render_posed(&frame, &scene.scene, &poses);
                    self.viewed.note(ViewedFrame {
                        capture_wall_ms: frame.capture_wall_ms,
                        capture_time_ns: frame.capture_time_ns,
                        view: FrameView::of(&scene.scene, (frame.width(), frame.height())),
                        models: models_at(&scene.scene, &poses),
                    });
                    if let (Some(display), Some(shown)) = (&self.display, self.compositor.take_display_frame()) {
                        display.show(shown);
                    }
                    match rendered {
                        Err(e) => {
                            self.errors.inc();
                            let message = e.to_string();
                            if last_error.as_ref() != Some(&message) {
                                tracing::error!(error = %message, "compositor cannot draw this frame; passing it through");
                                self.stages.fail("compositor", format!("{message} (frames pass through undrawn)"));
                                last_error = Some(message);
                            }
                            self.output.put(frame);
                        }
                        Ok(_) => {
                            if last_error.take().is_some() {
                                self.stages.recover("compositor");
                            }
                            if let Some(reply) = snapshot
                                && let Some(rgba) = self.compositor.read_rgba()
                            {
                                let _ = reply.send(super::snapshot_desk::Snapshot {
                                    width: frame.width(),
                                    height: frame.height(),
                                    rgba,
                                    capture_wall_ms: frame.capture_wall_ms,
                                });
                            }
                        }
                    }
                }
                Err(TakeError::Timeout) => {}
                Err(TakeError::ProducerGone) => break,
            }
            self.collect();
        }
    }

    fn collect(&mut self) {
        for composited in self.compositor.poll_i420() {
            let now = self.clock.now_ns();
            self.latency.record_ns(now.saturating_sub(composited.capture_time_ns));
            if let Some(PoseSource::Live(tracked)) = self.tracked.as_mut() {
                tracked.composited(composited.capture_time_ns, now);
            }
            self.frames.inc();
            self.fps.tick(now);
            self.output.put(composited);
        }
    }
}
