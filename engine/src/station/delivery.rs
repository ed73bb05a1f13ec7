//! The end of the live path. A sink thread takes each item from the last
//! slot, hands it to its delivery step and records its capture-to-delivery
//! latency and rate. The station's [`Delivery`] publishes each encoded
//! access unit to every viewer (the fan-out) and offers it to the recorder;
//! `record_clean` adds a second encoder whose sink feeds the recorder's
//! clean track.

use std::sync::Arc;
use std::thread::JoinHandle;

use scopecast_transport::adapt::VideoLayer;
use scopecast_transport::broadcast::Broadcast;

use super::StationError;
use super::setup::{spawn, spawn_frame_path};
use crate::clock::SharedClock;
use crate::config::{Config, EncoderConfig};
use crate::encoder::EncodedFrame;
use crate::encoder::stage::EncoderStage;
use crate::frame::Frame;
use crate::metrics::{FpsMeter, Gauge, MetricsRegistry};
use crate::recorder::Recorder;
use crate::shutdown::{POLL_INTERVAL, Shutdown};
use crate::slot::TakeError;
use crate::slot::{SlotConsumer, Timestamped, latest_slot};
use crate::stage_status::StageStatus;

/// Where each encoded access unit of the live path goes.
pub(super) struct Delivery {
    /// Every viewer (WHEP sessions, a WHIP publisher).
    pub(super) broadcast: Arc<Broadcast>,
    /// The session recording, when the station records.
    pub(super) recorder: Option<Arc<Recorder>>,
    /// `scopecast_viewers`: viewers that received the last unit.
    pub(super) viewers: Arc<Gauge>,
    /// The last delivery's time (`/healthz`).
    pub(super) stages: Arc<StageStatus>,
}

impl Delivery {
    /// Delivers `frame` at `now_ns` (station clock): both layers to the
    /// viewers, the full layer to the recorder, whose wish for a keyframe (a
    /// new segment starts) becomes a keyframe request to the encoder.
    pub(super) fn deliver(&self, frame: &EncodedFrame, now_ns: u64) {
        self.stages.delivered(now_ns);
        let receiving = self.broadcast.publish(std::iter::once(&frame.full).chain(&frame.reduced));
        if let Some(recorder) = &self.recorder {
            recorder.offer(&frame.full);
            if recorder.take_keyframe_wish() {
                self.broadcast.want_keyframe(VideoLayer::Full);
            }
        }
        self.viewers.set(receiving as f64);
    }
}

/// A thread that hands each item of `input` to `deliver` (with the station
/// clock's time) and records the item's capture-to-delivery latency and the
/// delivered rate as the `sink` stage; `on_frame_path`: it delivers what
/// viewers see (not the clean recording's track), so it takes the frame
/// path's priority.
pub(super) fn spawn_sink<T: Timestamped + Send + 'static>(
    input: SlotConsumer<T>,
    clock: SharedClock,
    registry: &MetricsRegistry,
    stop: Shutdown,
    on_frame_path: bool,
    mut deliver: impl FnMut(&T, u64) + Send + 'static,
) -> Result<JoinHandle<()>, StationError> {
    let latency = registry.stage_latency("sink");
    let frames = registry.stage_frames("sink");
    let mut fps = FpsMeter::new(registry.stage_fps("sink"));
    let body = move || {
        while !stop.is_triggered() {
            match input.take(POLL_INTERVAL) {
                Ok(item) => {
                    deliver(&item, clock.now_ns());
                    let now = clock.now_ns();
                    latency.record_ns(now.saturating_sub(item.capture_time_ns()));
                    frames.inc();
                    fps.tick(now);
                }
                Err(TakeError::Timeout) => {}
                Err(TakeError::ProducerGone) => break,
            }
        }
    };
    if on_frame_path { spawn_frame_path("scopecast-sink", body) } else { spawn("scopecast-clean-sink", body) }
}

/// `record_clean`: a second encoder for the frames before the overlay (no
/// timecode strip: a replay's compositor stamps it afresh), whose access
/// units go to the recorder's clean track. Its figures stay out of the
/// station's metrics (they would mix with the live encoder's).
pub(super) fn spawn_clean_encoder(
    config: &Config,
    input: SlotConsumer<Frame>,
    recorder: Arc<Recorder>,
    clock: &SharedClock,
    shutdown: &Shutdown,
    threads: &mut Vec<JoinHandle<()>>,
) -> Result<(), StationError> {
    let registry = MetricsRegistry::new();
    let (encoder_out, sink_in) = latest_slot::<EncodedFrame>("clean_encoder_out");
    let encoder_config = EncoderConfig { reduced_layer: false, ..config.encoder.clone() };
    let stage = EncoderStage::new(encoder_config, config.source.fps, input, encoder_out, clock.clone(), &registry)
        .with_timecode(false, false);
    let stop = shutdown.clone();
    threads.push(spawn("scopecast-clean-encoder", move || stage.run(&stop))?);
    threads.push(spawn_sink(
        sink_in,
        clock.clone(),
        &registry,
        shutdown.clone(),
        false,
        move |e: &EncodedFrame, _| {
            recorder.offer_clean(&e.full);
        },
    )?);
    Ok(())
}
