//! The encoder on its own thread: the newest composited frame in, one access
//! unit out. Frames that are not I420 (the compositor is off) are converted
//! on the CPU, and stamped with the timecode strip when it is wanted; a
//! change of frame size reopens the encoder.

use std::sync::Arc;

use scopecast_transport::media::AccessUnit;

use super::{EncoderSettings, H264Encoder};
use crate::clock::SharedClock;
use crate::config::EncoderConfig;
use crate::frame::{Frame, PixelFormat};
use crate::metrics::{Counter, FpsMeter, LatencyHistogram, MetricsRegistry};
use crate::shutdown::{POLL_INTERVAL, Shutdown};
use crate::slot::{SlotConsumer, SlotProducer, TakeError};

/// The encoder stage.
pub struct EncoderStage {
    config: EncoderConfig,
    fps: u32,
    encoder: Option<(EncoderSettings, Box<dyn H264Encoder>)>,
    input: SlotConsumer<Frame>,
    output: SlotProducer<AccessUnit>,
    clock: SharedClock,
    latency: Arc<LatencyHistogram>,
    frames: Arc<Counter>,
    fps_meter: FpsMeter,
    bytes: Arc<Counter>,
    keyframes: Arc<Counter>,
    errors: Arc<Counter>,
    /// Where viewers' keyframe requests come from.
    broadcast: Option<Arc<scopecast_transport::whep::Broadcast>>,
    /// Stamp the timecode strip into frames converted here.
    stamp_timecode: bool,
}

impl EncoderStage {
    /// A stage encoding frames that arrive at about `fps`.
    pub fn new(
        config: EncoderConfig,
        fps: u32,
        input: SlotConsumer<Frame>,
        output: SlotProducer<AccessUnit>,
        clock: SharedClock,
        registry: &MetricsRegistry,
    ) -> Self {
        Self {
            config,
            fps,
            encoder: None,
            input,
            output,
            clock,
            latency: registry.stage_latency("encoder"),
            frames: registry.stage_frames("encoder"),
            fps_meter: FpsMeter::new(registry.stage_fps("encoder")),
            bytes: registry.counter("scopecast_encoder_bytes_total", "Bytes of H.264 produced.", &[]),
            keyframes: registry.counter("scopecast_encoder_keyframes_total", "IDR pictures produced.", &[]),
            errors: registry.counter("scopecast_encoder_errors_total", "Frames the encoder could not encode.", &[]),
            broadcast: None,
            stamp_timecode: false,
        }
    }

    /// Stamps the timecode strip into frames that arrive uncomposited.
    pub fn with_timecode(mut self, stamp: bool) -> Self {
        self.stamp_timecode = stamp;
        self
    }

    /// Takes keyframe requests (joins, PLI, overflows) from `broadcast`.
    pub fn with_broadcast(mut self, broadcast: Arc<scopecast_transport::whep::Broadcast>) -> Self {
        self.broadcast = Some(broadcast);
        self
    }

    /// Runs until shutdown.
    pub fn run(mut self, stop: &Shutdown) {
        let mut last_error: Option<String> = None;
        while !stop.is_triggered() {
            let frame = match self.input.take(POLL_INTERVAL) {
                Ok(frame) => frame,
                Err(TakeError::Timeout) => continue,
                Err(TakeError::ProducerGone) => break,
            };
            match self.encode(&frame) {
                Ok(Some(au)) => {
                    let now = self.clock.now_ns();
                    self.latency.record_ns(now.saturating_sub(au.capture_time_ns));
                    self.frames.inc();
                    self.fps_meter.tick(now);
                    self.bytes.add(au.data.len() as u64);
                    if au.keyframe {
                        self.keyframes.inc();
                    }
                    self.output.put(au);
                }
                Ok(None) => {}
                Err(message) => {
                    self.errors.inc();
                    if last_error.as_ref() != Some(&message) {
                        tracing::error!(error = %message, "encoder failed; reopening it on the next frame");
                        last_error = Some(message);
                    }
                    self.encoder = None;
                }
            }
        }
    }

    fn encode(&mut self, frame: &Frame) -> Result<Option<AccessUnit>, String> {
        let converted;
        let frame = if frame.format() == PixelFormat::I420 {
            frame
        } else {
            converted = if self.stamp_timecode {
                crate::snapshot::i420_with_timecode(frame)
            } else {
                crate::snapshot::i420_from(frame)
            };
            &converted
        };
        let settings = EncoderSettings {
            kind: self.config.kind,
            width: frame.width(),
            height: frame.height(),
            fps: self.fps,
            bitrate_kbps: self.config.bitrate_kbps,
            keyframe_interval: ((self.config.keyframe_interval_s * f64::from(self.fps)).round() as u32).max(1),
        };
        if self.encoder.as_ref().is_none_or(|(s, _)| *s != settings) {
            let encoder = super::open(settings).map_err(|e| e.to_string())?;
            tracing::info!(kind = ?settings.kind, width = settings.width, height = settings.height, "encoder opened");
            self.encoder = Some((settings, encoder));
        }
        let now = self.clock.now_ns();
        let keyframe = self.broadcast.as_ref().is_some_and(|b| {
            b.fanout.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take_keyframe_request(now)
        });
        let Some((_, encoder)) = self.encoder.as_mut() else { return Ok(None) };
        encoder.encode(frame, keyframe).map_err(|e| e.to_string())
    }
}
