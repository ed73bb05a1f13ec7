//! The capture station: builds the source and the stages from a [`Config`],
//! runs each on its own named thread joined by latest-wins slots, and stops
//! them all on [`Shutdown`].
//!
//! The live path today: source (supervised) → slot → compositor (GPU) → slot →
//! encoder (H.264) → slot → sink. The sink is the end of the path until the
//! WebRTC fan-out takes its place: it records each access unit's
//! capture-to-delivery latency and the delivered rate, then releases it.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::clock::SharedClock;
use crate::compositor::gpu::{AdapterPreference, GpuContext};
use crate::compositor::{Compositor, CompositorSettings};
use crate::config::{Config, EncoderConfig};
use crate::encoder::EncodedFrame;
use crate::encoder::stage::EncoderStage;
use crate::frame::Frame;
use crate::metrics::{FpsMeter, MetricsRegistry};
use crate::scene::SceneStore;
use crate::scene::setup::scene_from_config;
use crate::shutdown::{POLL_INTERVAL, Shutdown};
use crate::slot::{SlotConsumer, SlotProducer, SlotReport, Timestamped};
use crate::slot::{TakeError, latest_slot};
use crate::source::gst::GstSource;
use crate::source::health::HealthPolicy;
use crate::source::supervisor::{SharedSourceStatus, Supervisor, SupervisorSettings};
use crate::source::synthetic::SyntheticEndoscope;
use crate::source::{FrameSource, SourceSpec, SpecError};
use crate::telestration::Telestration;
use scopecast_transport::broadcast::Broadcast;
use scopecast_transport::fanout::FanOutPolicy;

/// Why the station could not start.
#[derive(Debug, Error)]
pub enum StationError {
    /// The source URI is not understood.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// No live frame arrived in time.
    #[error("no live frame from {source_uri} within {waited_ms} ms: {reason}")]
    NoFrame {
        /// The source.
        source_uri: String,
        /// How long we waited.
        waited_ms: u64,
        /// The last NO SIGNAL reason, if any.
        reason: String,
    },
    /// The compositor needs a GPU (or lavapipe) and found none.
    #[error(transparent)]
    Gpu(#[from] crate::compositor::gpu::GpuError),
    /// The compositor failed.
    #[error("compositor: {0}")]
    Compositor(String),
    /// The scene from the config is invalid.
    #[error("scene: {0}")]
    Scene(#[from] crate::scene::SceneError),
    /// A thread could not be spawned.
    #[error("cannot spawn thread {name}: {source}")]
    Spawn {
        /// Thread name.
        name: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running station.
pub struct Station {
    shutdown: Shutdown,
    threads: Vec<JoinHandle<()>>,
    /// Every metric of the station.
    pub registry: Arc<MetricsRegistry>,
    /// The source's state, for the status line.
    pub source_status: SharedSourceStatus,
    /// The handoff slots, for depth, drops and age.
    pub slots: Arc<Vec<Box<dyn SlotReport>>>,
    /// The scene the compositor draws; writers replace it.
    pub scene: Arc<SceneStore>,
    /// The GPU adapter in use, if compositing.
    pub gpu: Option<String>,
    /// The encoded stream for every viewer, when encoding.
    pub broadcast: Option<Arc<Broadcast>>,
    /// The station's monitor window is open.
    pub display: bool,
    /// The viewers' drawings and layer switches, written into `scene`.
    pub telestration: Arc<Telestration>,
    /// Session recording (when encoding).
    pub recorder: Option<Arc<crate::recorder::Recorder>>,
    /// Where the viewers' accepted data-channel commands go (drawing, layers, recording).
    pub commands: Arc<crate::commands::StationCommands>,
    /// The stages' choices and failures in words, and the last delivery (`/healthz`).
    pub stages: Arc<crate::stage_status::StageStatus>,
}

/// What a recording's manifest says about the setup: the calibration (its
/// contents, not its path) and the models' names.
fn session_info(config: &Config) -> crate::recorder::SessionInfo {
    let calibration = match config.compositor.calibration.as_str() {
        source @ ("synthetic" | "none") => serde_json::json!(source),
        path => scopecast_calibration::file::CalibrationFile::load(std::path::Path::new(path))
            .ok()
            .and_then(|c| serde_json::from_str::<serde_json::Value>(&c.to_json()).ok())
            .unwrap_or(serde_json::Value::Null),
    };
    let models: Vec<String> = config
        .compositor
        .models
        .iter()
        .filter_map(|m| m.path.file_name().map(|n| n.to_string_lossy().to_string()))
        .collect();
    crate::recorder::SessionInfo {
        station: "scopecast capture station".into(),
        setup: crate::recorder::format::SetupRecord { calibration, models },
        encoder: crate::recorder::format::EncoderRecord {
            kind: format!("{:?}", config.encoder.kind),
            bitrate_kbps: config.encoder.bitrate_kbps,
            keyframe_interval_s: config.encoder.keyframe_interval_s,
            width: config.source.width,
            height: config.source.height,
            fps: config.source.fps,
        },
    }
}

fn make_source(config: &Config, clock: &SharedClock) -> Result<Box<dyn FrameSource>, StationError> {
    let s = &config.source;
    Ok(match SourceSpec::parse(&s.uri)? {
        SourceSpec::Synthetic => {
            Box::new(SyntheticEndoscope::new(s.width, s.height, s.fps, &s.synthetic, clock.clone()))
        }
        spec => Box::new(GstSource::new(spec, s.loop_file, s.format, (s.width, s.height, s.fps), clock.clone())),
    })
}

fn spawn(name: &'static str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, StationError> {
    std::thread::Builder::new().name(name.into()).spawn(body).map_err(|source| StationError::Spawn { name, source })
}

fn supervisor_settings(config: &Config) -> SupervisorSettings {
    let s = &config.source;
    let ms = |v: u64| v * 1_000_000;
    SupervisorSettings {
        policy: HealthPolicy {
            no_signal_after_ns: ms(s.no_signal_after_ms),
            restart_after_ns: ms(s.restart_after_ms),
            retry_initial_ns: ms(s.retry_initial_ms),
            retry_max_ns: ms(s.retry_max_ms),
        },
        fps: s.fps,
        size: (s.width, s.height),
    }
}

/// Runs the configured source on the calling thread until it delivers a live
/// frame, or `timeout_ms` passes.
pub fn capture_one(config: &Config, clock: SharedClock, timeout_ms: u64) -> Result<Frame, StationError> {
    let (producer, consumer) = latest_slot::<Frame>("capture_one");
    let source = make_source(config, &clock)?;
    let mut supervisor =
        Supervisor::new(source, supervisor_settings(config), clock.clone(), producer, &MetricsRegistry::new());
    let status = supervisor.status();
    let deadline = clock.now_ns() + timeout_ms * 1_000_000;
    while clock.now_ns() < deadline {
        supervisor.step();
        if let Ok(frame) = consumer.take(Duration::ZERO)
            && !frame.is_no_signal()
        {
            return Ok(frame);
        }
    }
    let reason = status.lock().map(|s| s.no_signal.clone().unwrap_or_default()).unwrap_or_default();
    Err(StationError::NoFrame { source_uri: config.source.uri.clone(), waited_ms: timeout_ms, reason })
}

/// Frames the compositor may have on the GPU at once (one rendering, one
/// being read back).
const MAX_GPU_FRAMES: usize = 2;

/// The compositor on its own thread: newest frame in, composited I420 out.
struct CompositorStage {
    compositor: Compositor,
    input: SlotConsumer<Frame>,
    output: SlotProducer<Frame>,
    scene: Arc<SceneStore>,
    clock: SharedClock,
    latency: Arc<crate::metrics::LatencyHistogram>,
    frames: Arc<crate::metrics::Counter>,
    fps: FpsMeter,
    errors: Arc<crate::metrics::Counter>,
    /// The station's monitor, when it has one.
    display: Option<crate::display::DisplayLink>,
    /// `record_clean`: while recording, each frame before the overlay goes
    /// here too (to the clean encoder).
    clean: Option<(SlotProducer<Frame>, Arc<crate::recorder::Recorder>)>,
    /// Failures in words for the status line, the HUD and `/healthz`.
    stages: Arc<crate::stage_status::StageStatus>,
}

impl CompositorStage {
    fn run(mut self, stop: &Shutdown) {
        let mut last_error: Option<String> = None;
        while !stop.is_triggered() {
            // A GPU slower than the source must cost frames, not latency: with
            // MAX_GPU_FRAMES in flight, new frames wait in the input slot (where
            // the newest replaces older ones, counted as drops).
            if self.compositor.in_flight() >= MAX_GPU_FRAMES {
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
                    let rendered = self.compositor.render(&frame, &scene.scene);
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
            self.frames.inc();
            self.fps.tick(now);
            self.output.put(composited);
        }
    }
}

/// The end of the live path: records each item's capture-to-delivery latency
/// and rate, and hands it to `deliver` (the viewers' fan-out).
/// `record_clean`: a second encoder for the frames before the overlay (no
/// timecode strip: a replay's compositor stamps it afresh), whose access
/// units go to the recorder's clean track. Its figures stay out of the
/// station's metrics (they would mix with the live encoder's).
fn spawn_clean_encoder(
    config: &Config,
    input: SlotConsumer<Frame>,
    recorder: Arc<crate::recorder::Recorder>,
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
    threads.push(spawn_sink(sink_in, clock.clone(), &registry, shutdown.clone(), move |e: &EncodedFrame| {
        recorder.offer_clean(&e.full);
    })?);
    Ok(())
}

fn spawn_sink<T: Timestamped + Send + 'static>(
    input: SlotConsumer<T>,
    clock: SharedClock,
    registry: &MetricsRegistry,
    stop: Shutdown,
    mut deliver: impl FnMut(&T) + Send + 'static,
) -> Result<JoinHandle<()>, StationError> {
    let latency = registry.stage_latency("sink");
    let frames = registry.stage_frames("sink");
    let mut fps = FpsMeter::new(registry.stage_fps("sink"));
    spawn("scopecast-sink", move || {
        while !stop.is_triggered() {
            match input.take(POLL_INTERVAL) {
                Ok(item) => {
                    deliver(&item);
                    let now = clock.now_ns();
                    latency.record_ns(now.saturating_sub(item.capture_time_ns()));
                    frames.inc();
                    fps.tick(now);
                }
                Err(TakeError::Timeout) => {}
                Err(TakeError::ProducerGone) => break,
            }
        }
    })
}

/// The station's metrics, slots and live-path health, cloneable into the HTTP server.
#[derive(Clone)]
pub struct MetricsView {
    registry: Arc<MetricsRegistry>,
    slots: Arc<Vec<Box<dyn SlotReport>>>,
    stages: Option<Arc<crate::stage_status::StageStatus>>,
}

impl MetricsView {
    /// A view of `registry` alone (no pipeline slots and no live path to judge: a replay).
    pub fn of_registry(registry: Arc<MetricsRegistry>) -> Self {
        Self { registry, slots: Arc::new(Vec::new()), stages: None }
    }

    /// The same view, with `/healthz` judged by `stages` (see [`crate::stage_status::StageStatus::health`]).
    pub fn with_health(mut self, stages: Arc<crate::stage_status::StageStatus>) -> Self {
        self.stages = Some(stages);
        self
    }

    /// The live path's health at `now_ns`; `None` when there is none to judge.
    pub fn health(&self, now_ns: u64) -> Option<Result<String, String>> {
        self.stages.as_ref().map(|s| s.health(now_ns))
    }

    /// Prometheus text with the slots' depth, drops and waiting age at `now_ns`.
    pub fn render(&self, now_ns: u64) -> String {
        for slot in self.slots.iter() {
            let labels = [("slot", slot.name())];
            let stats = slot.stats(now_ns);
            let r = &self.registry;
            r.gauge("scopecast_slot_depth", "Frames waiting between two stages (0 or 1).", &labels)
                .set(stats.depth as f64);
            r.counter(
                "scopecast_slot_dropped_total",
                "Frames replaced by a newer one before the next stage took them.",
                &labels,
            )
            .raise_to(stats.dropped);
            r.gauge("scopecast_slot_age_seconds", "Age of the frame waiting in the slot, 0 when empty.", &labels)
                .set(stats.age_ns as f64 / 1e9);
        }
        self.registry.render_prometheus()
    }
}

/// A composited picture: packed RGB, 3 bytes a pixel.
#[derive(Debug, Clone)]
pub struct Picture {
    /// Width, px.
    pub width: u32,
    /// Height, px.
    pub height: u32,
    /// Pixels, row-major RGB.
    pub rgb: Vec<u8>,
    /// The frame's sequence number.
    pub sequence: u64,
    /// The frame's capture time, Unix ms (what the timecode strip carries).
    pub capture_wall_ms: u64,
}

/// Runs the source and the compositor of `config` on the calling thread for
/// `frames` live frames and returns the last one as composited (with the
/// timecode strip), or as captured when compositing is off.
pub fn snapshot(config: &Config, clock: SharedClock, frames: u32, timeout_ms: u64) -> Result<Picture, StationError> {
    let (producer, consumer) = latest_slot::<Frame>("snapshot");
    let source = make_source(config, &clock)?;
    let mut supervisor =
        Supervisor::new(source, supervisor_settings(config), clock.clone(), producer, &MetricsRegistry::new());
    let status = supervisor.status();
    let (scene, problems) = scene_from_config(config);
    for problem in &problems {
        tracing::error!("{problem}");
    }
    let mut compositor = if config.compositor.enabled {
        let ctx = GpuContext::new(AdapterPreference::HighPerformance)?;
        let settings =
            CompositorSettings { timecode: config.compositor.timecode, msaa_samples: config.compositor.msaa };
        Some(Compositor::new(ctx, settings))
    } else {
        None
    };
    let deadline = clock.now_ns() + timeout_ms * 1_000_000;
    let mut live = 0;
    let mut last = None;
    while clock.now_ns() < deadline && live < frames.max(1) {
        supervisor.step();
        if let Ok(frame) = consumer.take(Duration::ZERO)
            && !frame.is_no_signal()
        {
            if let Some(c) = compositor.as_mut() {
                // Keep the GPU busy like the live stage does, without piling up.
                c.render(&frame, &scene).map_err(|e| StationError::Compositor(e.to_string()))?;
                c.poll_i420();
            }
            live += 1;
            last = Some(frame);
        }
    }
    let Some(frame) = last else {
        let reason = status.lock().map(|s| s.no_signal.clone().unwrap_or_default()).unwrap_or_default();
        return Err(StationError::NoFrame { source_uri: config.source.uri.clone(), waited_ms: timeout_ms, reason });
    };
    let rgba = match compositor.as_mut() {
        Some(c) => {
            c.render_settled(&frame, &scene, Duration::from_millis(timeout_ms))
                .map_err(|e| StationError::Compositor(e.to_string()))?;
            c.drain_i420();
            c.read_rgba().ok_or_else(|| StationError::Compositor("the GPU readback failed".into()))?
        }
        None => crate::snapshot::to_rgba(&frame),
    };
    let rgb = rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    Ok(Picture {
        width: frame.width(),
        height: frame.height(),
        rgb,
        sequence: frame.sequence,
        capture_wall_ms: frame.capture_wall_ms,
    })
}

/// Builds a frame source on the station's scene (see [`Station::start_with_source`]).
pub type SourceOnScene = Box<dyn FnOnce(Arc<SceneStore>) -> Box<dyn FrameSource>>;

impl Station {
    /// Starts the station described by `config` (already validated).
    pub fn start(config: &Config, clock: SharedClock, shutdown: Shutdown) -> Result<Self, StationError> {
        Self::start_inner(config, clock, shutdown, None)
    }

    /// Starts a station whose frames come from the source `make` builds on
    /// the station's scene (a replay drawing the overlays afresh), instead of
    /// `config.source.uri`. It never records: the recording being replayed
    /// is not altered, and no other one is made.
    pub fn start_with_source(
        config: &Config,
        clock: SharedClock,
        shutdown: Shutdown,
        make: SourceOnScene,
    ) -> Result<Self, StationError> {
        Self::start_inner(config, clock, shutdown, Some(make))
    }

    fn start_inner(
        config: &Config,
        clock: SharedClock,
        shutdown: Shutdown,
        make_source_on_scene: Option<SourceOnScene>,
    ) -> Result<Self, StationError> {
        let registry = Arc::new(MetricsRegistry::new());
        let stages = Arc::new(crate::stage_status::StageStatus::new(clock.now_ns()));
        let settings = supervisor_settings(config);
        let (scene, problems) = scene_from_config(config);
        for problem in &problems {
            tracing::error!("{problem}");
        }
        let scene = Arc::new(SceneStore::new(scene)?);
        let fade_after = Duration::from_secs_f64(config.telestration.fade_after_s);
        let telestration = Telestration::new(scene.clone(), clock.clone(), fade_after);
        let recorder = if config.encoder.enabled && make_source_on_scene.is_none() {
            Some(Arc::new(
                crate::recorder::Recorder::start(
                    std::path::PathBuf::from(&config.recording.folder),
                    config.recording.segment_s,
                    scene.clone(),
                    clock.clone(),
                    session_info(config),
                    &registry,
                )
                .map_err(|source| StationError::Spawn { name: "scopecast-recorder", source })?,
            ))
        } else {
            None
        };
        let mut threads = Vec::new();
        let (board, stop) = (telestration.clone(), shutdown.clone());
        threads.push(spawn("scopecast-telestration", move || board.sweep_until(&stop))?);
        let mut slots: Vec<Box<dyn SlotReport>> = Vec::new();
        let hud_sources = Arc::new(crate::display::HudSources::default());
        let _ = hud_sources.stages.set(stages.clone());
        let mut has_display = false;
        if config.display.enabled && !config.compositor.enabled {
            tracing::warn!("the monitor shows the compositor's output: with compositor.enabled = false it stays off");
        }
        let (source_out, frames_out, gpu) = if config.compositor.enabled {
            let ctx = GpuContext::new(AdapterPreference::HighPerformance)?;
            let gpu = ctx.describe();
            tracing::info!(adapter = %gpu, "compositing on the GPU");
            if let Some(warning) = crate::compositor::gpu::leaky_software_renderer(&ctx.adapter_info) {
                tracing::warn!("{warning}");
                let _ = hud_sources.renderer_warning.set(warning);
            }
            let display = if config.display.enabled {
                let parts = crate::display::DisplayParts {
                    gpu: ctx.clone(),
                    scene: scene.clone(),
                    registry: registry.clone(),
                    sources: hud_sources.clone(),
                    clock: clock.clone(),
                    shutdown: shutdown.clone(),
                    settings: crate::display::DisplaySettings {
                        fullscreen: config.display.fullscreen,
                        monitor: config.display.monitor,
                        size: (config.source.width, config.source.height),
                    },
                };
                match crate::display::start(parts) {
                    Ok((link, thread)) => {
                        threads.push(thread);
                        Some(link)
                    }
                    Err(reason) => {
                        tracing::warn!(%reason, "no display server: the station runs headless");
                        None
                    }
                }
            } else {
                None
            };
            let (source_out, compositor_in) = latest_slot::<Frame>("source_to_compositor");
            let (compositor_out, frames_out) = latest_slot::<Frame>("compositor_out");
            slots.push(Box::new(source_out.monitor()));
            slots.push(Box::new(compositor_out.monitor()));
            let mut compositor = Compositor::new(
                ctx,
                CompositorSettings { timecode: config.compositor.timecode, msaa_samples: config.compositor.msaa },
            );
            if display.is_some() {
                compositor.enable_display();
                has_display = true;
            }
            let clean = match &recorder {
                Some(recorder) if config.recording.record_clean => {
                    let (clean_out, clean_in) = latest_slot::<Frame>("clean_to_encoder");
                    slots.push(Box::new(clean_out.monitor()));
                    spawn_clean_encoder(config, clean_in, recorder.clone(), &clock, &shutdown, &mut threads)?;
                    Some((clean_out, recorder.clone()))
                }
                _ => None,
            };
            let stage = CompositorStage {
                stages: stages.clone(),
                clean,
                display,
                compositor,
                input: compositor_in,
                output: compositor_out,
                scene: scene.clone(),
                clock: clock.clone(),
                latency: registry.stage_latency("compositor"),
                frames: registry.stage_frames("compositor"),
                fps: FpsMeter::new(registry.stage_fps("compositor")),
                errors: registry.counter(
                    "scopecast_compositor_errors_total",
                    "Frames the compositor could not draw.",
                    &[],
                ),
            };
            let stop = shutdown.clone();
            threads.push(spawn("scopecast-compositor", move || stage.run(&stop))?);
            (source_out, frames_out, Some(gpu))
        } else {
            let (source_out, frames_out) = latest_slot::<Frame>("source_out");
            slots.push(Box::new(source_out.monitor()));
            (source_out, frames_out, None)
        };
        let source = match make_source_on_scene {
            Some(make) => make(scene.clone()),
            None => make_source(config, &clock)?,
        };
        let supervisor = Supervisor::new(source, settings, clock.clone(), source_out, &registry);
        let source_status = supervisor.status();
        let _ = hud_sources.source.set(source_status.clone());

        let stop = shutdown.clone();
        threads.push(spawn("scopecast-source", move || supervisor.run(&stop))?);
        let broadcast = if config.encoder.enabled {
            let broadcast = Arc::new(Broadcast::new(FanOutPolicy::default()));
            let (encoder_out, sink_in) = latest_slot::<EncodedFrame>("encoder_out");
            slots.push(Box::new(encoder_out.monitor()));
            let stage = EncoderStage::new(
                config.encoder.clone(),
                config.source.fps,
                frames_out,
                encoder_out,
                clock.clone(),
                &registry,
            )
            .with_broadcast(broadcast.clone())
            .with_status(stages.clone(), "encoder")
            // Without the compositor the strip is stamped on the CPU: viewers still read latency.
            .with_timecode(config.compositor.timecode && !config.compositor.enabled, config.compositor.timecode);
            let stop = shutdown.clone();
            threads.push(spawn("scopecast-encoder", move || stage.run(&stop))?);
            if let Some(recorder) = &recorder {
                if config.recording.enabled {
                    // A fresh recorder's control queue is empty: it cannot be busy.
                    let _ = recorder.start_session();
                }
                let _ = hud_sources.recorder.set(recorder.clone());
            }
            let to_recorder = recorder.clone();
            let to_viewers = broadcast.clone();
            let viewers = registry.gauge("scopecast_viewers", "Viewers receiving the stream.", &[]);
            let delivered = stages.clone();
            let sink_clock = clock.clone();
            threads.push(spawn_sink(sink_in, clock.clone(), &registry, shutdown.clone(), move |e: &EncodedFrame| {
                delivered.delivered(sink_clock.now_ns());
                let receiving = to_viewers.publish(std::iter::once(&e.full).chain(&e.reduced));
                if let Some(recorder) = &to_recorder {
                    recorder.offer(&e.full);
                    if recorder.take_keyframe_wish() {
                        to_viewers.want_keyframe(scopecast_transport::adapt::VideoLayer::Full);
                    }
                }
                viewers.set(receiving as f64);
            })?);
            let _ = hud_sources.broadcast.set(broadcast.clone());
            Some(broadcast)
        } else {
            threads.push(spawn_sink(frames_out, clock.clone(), &registry, shutdown.clone(), |_: &Frame| {})?);
            None
        };
        Ok(Self {
            shutdown,
            threads,
            registry,
            source_status,
            slots: Arc::new(slots),
            scene,
            gpu,
            broadcast,
            display: has_display,
            commands: Arc::new(crate::commands::StationCommands::new(
                telestration.clone(),
                recorder.clone(),
                clock.clone(),
            )),
            telestration,
            recorder,
            stages,
        })
    }

    /// What `/metrics` and `/healthz` need, shareable with other threads.
    /// Health is judged only where encoded frames should reach viewers.
    pub fn metrics_view(&self) -> MetricsView {
        MetricsView {
            registry: self.registry.clone(),
            slots: self.slots.clone(),
            stages: self.broadcast.as_ref().map(|_| self.stages.clone()),
        }
    }

    /// The registry as Prometheus text, with fresh slot figures.
    pub fn render_metrics(&self, now_ns: u64) -> String {
        self.metrics_view().render(now_ns)
    }

    /// Asks every stage to stop and waits up to `grace` for their threads.
    /// Returns whether all of them finished in time.
    pub fn stop(self, grace: Duration) -> bool {
        self.shutdown.trigger();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && !self.threads.iter().all(JoinHandle::is_finished) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let all_finished = self.threads.iter().all(JoinHandle::is_finished);
        for thread in self.threads {
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
        all_finished
    }
}
