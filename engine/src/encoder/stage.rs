//! The encoder on its own thread: the newest composited frame in, one access
//! unit per layer out (the full one, and with `reduced_layer` a second encode
//! of the frame halved on the CPU). Frames that are not I420 (the compositor
//! is off) are converted on the CPU, and stamped with the timecode strip when
//! it is wanted; a change of frame size reopens the encoder.

use std::sync::Arc;

use scopecast_transport::adapt::VideoLayer;
use scopecast_transport::media::AccessUnit;

use super::choice::EncoderChoice;
use super::keyframe_clock::{BACKSTOP, KeyframeClock};
use super::{EncodedFrame, EncoderError, EncoderKind, EncoderSettings, H264Encoder};
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
    reduced: Option<(EncoderSettings, Box<dyn H264Encoder>)>,
    input: SlotConsumer<Frame>,
    output: SlotProducer<EncodedFrame>,
    clock: SharedClock,
    latency: Arc<LatencyHistogram>,
    frames: Arc<Counter>,
    fps_meter: FpsMeter,
    bytes: Arc<Counter>,
    keyframes: Arc<Counter>,
    errors: Arc<Counter>,
    /// Where viewers' keyframe requests come from.
    broadcast: Option<Arc<scopecast_transport::broadcast::Broadcast>>,
    /// Stamp the timecode strip into frames converted here.
    stamp_timecode: bool,
    /// Stamp it afresh into the reduced layer's frames.
    reduced_timecode: bool,
    reduced_bytes: Arc<Counter>,
    /// The encoder chosen for `config.kind` (resolved on the stage's thread).
    choice: Option<EncoderChoice>,
    /// When each layer's next keyframe is due, by capture time (full, reduced).
    keyframe_clocks: [KeyframeClock; 2],
    /// The reduced layer was not encoded for the last frame (nobody needed
    /// it): its next picture is a keyframe, the first a viewer can switch at.
    reduced_paused: bool,
    /// Where the choice and failures are shown, under `status_name`.
    status: Option<(Arc<crate::stage_status::StageStatus>, &'static str)>,
}

/// Why a layer produced nothing.
enum LayerError {
    /// The encoder could not be opened.
    Open(EncoderError),
    /// It was open and failed on this frame.
    Encode(String),
}

impl EncoderStage {
    /// A stage encoding frames that arrive at about `fps`.
    pub fn new(
        config: EncoderConfig,
        fps: u32,
        input: SlotConsumer<Frame>,
        output: SlotProducer<EncodedFrame>,
        clock: SharedClock,
        registry: &MetricsRegistry,
    ) -> Self {
        Self {
            fps,
            encoder: None,
            reduced: None,
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
            reduced_timecode: false,
            reduced_bytes: registry.counter(
                "scopecast_encoder_reduced_bytes_total",
                "Bytes of H.264 produced for the reduced layer.",
                &[],
            ),
            choice: None,
            status: None,
            keyframe_clocks: [KeyframeClock::new(config.keyframe_interval_s); 2],
            reduced_paused: true,
            config,
        }
    }

    /// Shows the encoder's choice and failures in `status` under `name`.
    pub fn with_status(mut self, status: Arc<crate::stage_status::StageStatus>, name: &'static str) -> Self {
        self.status = Some((status, name));
        self
    }

    /// The encoder kind to open, chosen once (and said once).
    fn chosen_kind(&mut self) -> EncoderKind {
        if let Some(choice) = &self.choice {
            return choice.kind;
        }
        let choice = super::choice::choose_here(self.config.kind);
        self.announce(&choice);
        let kind = choice.kind;
        self.choice = Some(choice);
        kind
    }

    fn announce(&self, choice: &EncoderChoice) {
        let Some((status, name)) = &self.status else {
            // A second encoder (the clean track's) follows the live one's choice quietly.
            tracing::debug!(encoder = %choice.summary(), "H.264 encoder chosen");
            return;
        };
        status.note(name, choice.summary());
        match (&choice.reason, choice.requested) {
            (None, _) => tracing::info!(encoder = %choice.summary(), "H.264 encoder chosen"),
            (Some(_), EncoderKind::Auto) => tracing::info!(encoder = %choice.summary(), "H.264 encoder chosen"),
            (Some(_), _) => tracing::warn!(encoder = %choice.summary(), "the configured H.264 encoder is missing"),
        }
    }

    /// Stamps the timecode strip into frames that arrive uncomposited
    /// (`cpu`), and afresh into the reduced layer's (`reduced`).
    pub fn with_timecode(mut self, cpu: bool, reduced: bool) -> Self {
        self.stamp_timecode = cpu;
        self.reduced_timecode = reduced;
        self
    }

    /// Takes keyframe requests (joins, PLI, overflows) from `broadcast`, and
    /// encodes the reduced layer only while one of its viewers needs it
    /// (`Broadcast::reduced_wanted`; each encode costs the station's cores).
    pub fn with_broadcast(mut self, broadcast: Arc<scopecast_transport::broadcast::Broadcast>) -> Self {
        if self.config.reduced_layer {
            broadcast.offer_reduced_layer();
        }
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
                Ok(Some(encoded)) => {
                    if last_error.take().is_some()
                        && let Some((status, name)) = &self.status
                    {
                        status.recover(name);
                        tracing::info!("the encoder works again");
                    }
                    let au = &encoded.full;
                    let now = self.clock.now_ns();
                    self.latency.record_ns(now.saturating_sub(au.capture_time_ns));
                    self.frames.inc();
                    self.fps_meter.tick(now);
                    self.bytes.add(au.data.len() as u64);
                    if au.keyframe {
                        self.keyframes.inc();
                    }
                    if let Some(reduced) = &encoded.reduced {
                        self.reduced_bytes.add(reduced.data.len() as u64);
                    }
                    self.output.put(encoded);
                }
                Ok(None) => {}
                Err(error) => {
                    self.errors.inc();
                    let message = match error {
                        LayerError::Open(e) => self.open_failed(&e),
                        LayerError::Encode(message) => message,
                    };
                    if last_error.as_ref() != Some(&message) {
                        tracing::error!(error = %message, "encoder failed; reopening it on the next frame");
                        if let Some((status, name)) = &self.status {
                            status.fail(name, message.clone());
                        }
                        last_error = Some(message);
                    }
                    self.encoder = None;
                    self.reduced = None;
                }
            }
        }
    }

    /// A GStreamer encoder that cannot be opened gives way to the embedded
    /// one (which needs nothing from the system); returns the failure in words.
    fn open_failed(&mut self, error: &EncoderError) -> String {
        if let Some(choice) = &self.choice
            && choice.kind != EncoderKind::Embedded
            && matches!(error, EncoderError::Unavailable(_) | EncoderError::Pipeline(_))
        {
            let fallback = choice.fall_back(&error.to_string());
            tracing::warn!(encoder = %fallback.summary(), "switching to the embedded encoder");
            self.announce(&fallback);
            self.choice = Some(fallback);
        }
        format!("cannot open the encoder: {error}")
    }

    fn encode(&mut self, frame: &Frame) -> Result<Option<EncodedFrame>, LayerError> {
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
            kind: self.chosen_kind(),
            width: frame.width(),
            height: frame.height(),
            fps: self.fps,
            bitrate_kbps: self.config.bitrate_kbps,
            // Keyframes come by capture time (`keyframe_clock`); the encoder's own GOP is a backstop.
            keyframe_interval: ((self.config.keyframe_interval_s * f64::from(self.fps)).round() as u32)
                .max(1)
                .saturating_mul(BACKSTOP),
        };
        let keyframe = self.keyframe_wanted(VideoLayer::Full, frame.capture_time_ns);
        let Some(full) = encode_layer(&mut self.encoder, settings, frame, keyframe)? else { return Ok(None) };
        self.keyframe_clocks[0].encoded(frame.capture_time_ns, full.keyframe);
        let reduced_wanted = self.config.reduced_layer && self.broadcast.as_ref().is_none_or(|b| b.reduced_wanted());
        if !reduced_wanted {
            self.reduced_paused = true;
        }
        let reduced = if reduced_wanted {
            let half = super::downscale::half_i420(frame, self.reduced_timecode)
                .ok_or_else(|| LayerError::Encode("the reduced layer needs I420".to_string()))?;
            let settings = EncoderSettings {
                width: half.width(),
                height: half.height(),
                bitrate_kbps: self.config.reduced_bitrate_kbps,
                ..settings
            };
            let resumed = std::mem::take(&mut self.reduced_paused);
            let keyframe = self.keyframe_wanted(VideoLayer::Reduced, frame.capture_time_ns) || resumed;
            let au = encode_layer(&mut self.reduced, settings, &half, keyframe)?;
            if let Some(au) = &au {
                self.keyframe_clocks[1].encoded(frame.capture_time_ns, au.keyframe);
            }
            au.map(|au| AccessUnit { layer: VideoLayer::Reduced, ..au })
        } else {
            None
        };
        Ok(Some(EncodedFrame { full, reduced }))
    }

    /// Whether the frame captured at `capture_ns` is to be a keyframe on
    /// `layer`: its interval of capture time passed, or a viewer asked
    /// (rate-limited in the fan-out).
    fn keyframe_wanted(&self, layer: VideoLayer, capture_ns: u64) -> bool {
        let index = if layer == VideoLayer::Full { 0 } else { 1 };
        let now = self.clock.now_ns();
        let requested = self.broadcast.as_ref().is_some_and(|b| b.keyframe_due(layer, now));
        requested || self.keyframe_clocks[index].due(capture_ns)
    }
}

/// Encodes `frame` with `slot`'s encoder, (re)opening it when the settings changed.
fn encode_layer(
    slot: &mut Option<(EncoderSettings, Box<dyn H264Encoder>)>,
    settings: EncoderSettings,
    frame: &Frame,
    keyframe: bool,
) -> Result<Option<AccessUnit>, LayerError> {
    if slot.as_ref().is_none_or(|(s, _)| *s != settings) {
        let encoder = super::open(settings).map_err(LayerError::Open)?;
        tracing::info!(kind = %settings.kind, width = settings.width, height = settings.height, "encoder opened");
        *slot = Some((settings, encoder));
    }
    let Some((_, encoder)) = slot.as_mut() else { return Ok(None) };
    encoder.encode(frame, keyframe).map_err(|e| LayerError::Encode(e.to_string()))
}
