//! The capture station: builds the source and the stages from a [`Config`],
//! runs each on its own named thread joined by latest-wins slots, and stops
//! them all on [`Shutdown`].
//!
//! The live path: source (supervised) → slot → compositor (GPU) → slot →
//! encoder (H.264) → slot → sink, whose delivery step publishes each access
//! unit to every viewer and offers it to the recorder. The files here:
//! `setup` (what the config builds), `compositor_stage`, `delivery` (the
//! sink and the clean track's encoder), `capture` (one-shot capture for
//! snapshots and calibration), `metrics_view`, and `endpoints` (HTTP, WHEP,
//! WHIP and the access log, started alike for a live station and a replay).

mod capture;
mod compositor_stage;
pub mod delay;
mod delivery;
pub mod endpoints;
pub mod fiducial_run;
pub mod hand_eye_run;
mod metrics_view;
pub mod registration_desk;
mod setup;
pub mod snapshot_desk;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;

pub use capture::{Picture, capture_one, snapshot};
pub use metrics_view::MetricsView;

use crate::clock::SharedClock;
use crate::compositor::gpu::{AdapterPreference, GpuContext};
use crate::compositor::{Compositor, CompositorSettings};
use crate::config::Config;
use crate::display::{DisplayLink, HudSources};
use crate::encoder::EncodedFrame;
use crate::encoder::stage::EncoderStage;
use crate::frame::Frame;
use crate::metrics::{FpsMeter, MetricsRegistry};
use crate::recorder::Recorder;
use crate::scene::SceneStore;
use crate::scene::setup::scene_from_config;
use crate::shutdown::Shutdown;
use crate::slot::{SlotConsumer, SlotProducer, SlotReport, latest_slot};
use crate::source::supervisor::{SharedSourceStatus, Supervisor};
use crate::source::{FrameSource, SpecError};
use crate::stage_status::StageStatus;
use crate::telestration::Telestration;
use crate::tracking::frame_poses::FramePoses;
use crate::tracking::pose_store::PoseStore;
use crate::tracking::tracker_link::SharedPoses;
use compositor_stage::CompositorStage;
use delivery::{Delivery, spawn_clean_encoder, spawn_sink};
use scopecast_transport::broadcast::Broadcast;
use scopecast_transport::fanout::FanOutPolicy;
use scopecast_transport::room_channels::Announcements;
use setup::{make_source, session_info, spawn, supervisor_settings};

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
    /// A tracked model's pose cannot be set up.
    #[error("tracking: {0}")]
    Tracking(#[from] crate::tracking::setup::TransformFileError),
    /// The registration desk cannot start.
    #[error(transparent)]
    Registration(#[from] registration_desk::DeskSetupError),
    /// The tracked phantom's file cannot be used.
    #[error(transparent)]
    Phantom(#[from] crate::source::phantom::PhantomError),
    /// The synthetic endoscope's simulated tracker cannot start.
    #[error("simulated tracker: {reason}")]
    SimulatedTracker {
        /// Why.
        reason: String,
    },
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
    /// What every viewer page hears on the station's own account (tracking state), when tracking.
    pub announcements: Option<Announcements>,
    /// Where `GET /snapshot.png` asks for the newest composited frame (when compositing).
    pub snapshots: Option<snapshot_desk::SnapshotDesk>,
    /// The registration desk, when `[registration]` is set.
    pub registration: Option<Arc<registration_desk::StationDesk>>,
}

/// Builds a frame source on the station's scene (see [`Station::start_with_source`]).
pub type SourceOnScene = Box<dyn FnOnce(Arc<SceneStore>) -> Box<dyn FrameSource>>;

/// What the stages being started share.
struct Wiring<'a> {
    config: &'a Config,
    clock: SharedClock,
    shutdown: Shutdown,
    registry: Arc<MetricsRegistry>,
    stages: Arc<StageStatus>,
    scene: Arc<SceneStore>,
    hud: Arc<HudSources>,
    threads: Vec<JoinHandle<()>>,
    slots: Vec<Box<dyn SlotReport>>,
    /// What the station announces to every page (tracking, registration, marks).
    announcer: scopecast_transport::room_channels::Announcer,
    announcements: Option<Announcements>,
    registration: Option<Arc<registration_desk::StationDesk>>,
    /// The frames viewers draw on, noted by the compositor stage (marks on the anatomy).
    viewed: Arc<crate::anchoring::viewed_frames::ViewedFrames>,
    /// A replay's recorded poses (then no trackers run).
    recorded_poses: Option<crate::tracking::recorded_poses::RecordedPoses>,
}

/// The compositing part of the path, once started.
struct Compositing {
    /// Where the source puts its frames.
    source_out: SlotProducer<Frame>,
    /// Where the encoder takes them from.
    frames_out: SlotConsumer<Frame>,
    /// The adapter, in words (none without the compositor).
    gpu: Option<String>,
    /// The monitor window is open.
    display: bool,
    /// Where snapshots are asked for.
    snapshots: Option<snapshot_desk::SnapshotDesk>,
}

impl Wiring<'_> {
    fn spawn(&mut self, name: &'static str, body: impl FnOnce() + Send + 'static) -> Result<(), StationError> {
        self.threads.push(spawn(name, body)?);
        Ok(())
    }

    /// [`Self::spawn`] for a thread every frame passes through.
    fn spawn_frame_path(
        &mut self,
        name: &'static str,
        body: impl FnOnce() + Send + 'static,
    ) -> Result<(), StationError> {
        self.threads.push(setup::spawn_frame_path(name, body)?);
        Ok(())
    }

    /// The session recorder (a live station that encodes; never a replay).
    fn recorder(&self, replay: bool) -> Result<Option<Arc<Recorder>>, StationError> {
        if !self.config.encoder.enabled || replay {
            return Ok(None);
        }
        let recorder = Recorder::start(
            std::path::PathBuf::from(&self.config.recording.folder),
            self.config.recording.segment_s,
            self.scene.clone(),
            self.clock.clone(),
            session_info(self.config),
            &self.registry,
        )
        .map_err(|source| StationError::Spawn { name: "scopecast-recorder", source })?;
        Ok(Some(Arc::new(recorder)))
    }

    /// The monitor window on `ctx`, when configured and a display server answers.
    fn display(&mut self, ctx: &GpuContext) -> Option<DisplayLink> {
        if !self.config.display.enabled {
            return None;
        }
        let config = self.config;
        let parts = crate::display::DisplayParts {
            gpu: ctx.clone(),
            scene: self.scene.clone(),
            registry: self.registry.clone(),
            sources: self.hud.clone(),
            clock: self.clock.clone(),
            shutdown: self.shutdown.clone(),
            settings: crate::display::DisplaySettings {
                fullscreen: config.display.fullscreen,
                monitor: config.display.monitor,
                size: (config.source.width, config.source.height),
            },
        };
        match crate::display::start(parts) {
            Ok((link, thread)) => {
                self.threads.push(thread);
                Some(link)
            }
            Err(reason) => {
                tracing::warn!(%reason, "no display server: the station runs headless");
                None
            }
        }
    }

    /// The trackers' threads and each tracked model's chain; `None` when no
    /// model is tracked and no tracker is configured.
    fn tracking(&mut self) -> Result<Option<FramePoses>, StationError> {
        let tracking = &self.config.tracking;
        let mut chains = Vec::new();
        for model in &self.config.compositor.models {
            if let Some(chain) = crate::tracking::setup::chain_of(model, self.config.registration.registered_file())? {
                let name = model.name();
                chains.push((name, chain));
            }
        }
        let trackers = crate::tracking::setup::tracker_settings(tracking);
        if chains.is_empty() && trackers.is_empty() {
            return Ok(None);
        }
        let poses: SharedPoses = Arc::new(arc_swap::ArcSwap::from_pointee(PoseStore::new()));
        let announcer = self.announcer.clone();
        if self.config.registration.registered_file().is_some() {
            let desk = registration_desk::StationDesk::new(
                &self.config.registration,
                poses.clone(),
                self.clock.clone(),
                announcer.clone(),
            )?;
            let _ = self.hud.registration.set(desk.clone());
            let (running, stop) = (desk.clone(), self.shutdown.clone());
            self.spawn("scopecast-registration", move || running.run(&stop))?;
            self.registration = Some(desk);
        }
        setup::start_trackers(trackers, &poses, &self.clock, &self.shutdown, &mut self.threads)?;
        let frame_poses = FramePoses::new(
            poses,
            chains,
            crate::tracking::setup::freshness(tracking),
            tracking.video_minus_tracker_latency_ms,
            tracking.when_stale,
            self.stages.clone(),
            &self.registry,
        );
        Ok(Some(frame_poses.with_alignment(tracking.time_alignment).with_announcer(announcer)))
    }

    /// Source → compositor → encoder slots, with the compositor's thread
    /// (and the monitor, and the clean track's encoder) when compositing.
    fn compositing(&mut self, recorder: Option<&Arc<Recorder>>) -> Result<Compositing, StationError> {
        let config = self.config;
        if config.display.enabled && !config.compositor.enabled {
            tracing::warn!("the monitor shows the compositor's output: with compositor.enabled = false it stays off");
        }
        if !config.compositor.enabled {
            let (source_out, frames_out) = latest_slot::<Frame>("source_out");
            self.slots.push(Box::new(source_out.monitor()));
            return Ok(Compositing { source_out, frames_out, gpu: None, display: false, snapshots: None });
        }
        let ctx = GpuContext::new(AdapterPreference::HighPerformance)?;
        let gpu = ctx.describe();
        tracing::info!(adapter = %gpu, "compositing on the GPU");
        if let Some(warning) = crate::compositor::gpu::leaky_software_renderer(&ctx.adapter_info) {
            tracing::warn!("{warning}");
            let _ = self.hud.renderer_warning.set(warning);
        }
        let display = self.display(&ctx);
        let tracked = match self.recorded_poses.take() {
            Some(recorded) => Some(compositor_stage::PoseSource::Recorded(recorded)),
            None => self
                .tracking()?
                .map(|t| compositor_stage::PoseSource::Live(Box::new(t.with_recorder(recorder.cloned())))),
        };
        let (source_out, compositor_in) = latest_slot::<Frame>("source_to_compositor");
        let (compositor_out, frames_out) = latest_slot::<Frame>("compositor_out");
        self.slots.push(Box::new(source_out.monitor()));
        self.slots.push(Box::new(compositor_out.monitor()));
        let settings = CompositorSettings {
            timecode: config.compositor.timecode,
            msaa_samples: config.compositor.msaa,
            hidden_marks: config.telestration.hidden_marks,
            passes: config.compositor.passes,
        };
        let mut compositor = Compositor::new(ctx, settings);
        // A software adapter does the per-frame work on the CPU, or (with a monitor) in one
        // fused pass (`compositor::PassPlan`).
        let gpu = if compositor.cpu() && display.is_none() {
            format!("{gpu}, per-frame work on the CPU")
        } else if compositor.cpu() || compositor.fused() {
            format!("{gpu}, fused passes")
        } else {
            gpu
        };
        if display.is_some() {
            compositor.enable_display();
        }
        let clean = match recorder {
            Some(recorder) if config.recording.record_clean => {
                let (clean_out, clean_in) = latest_slot::<Frame>("clean_to_encoder");
                self.slots.push(Box::new(clean_out.monitor()));
                spawn_clean_encoder(
                    config,
                    clean_in,
                    recorder.clone(),
                    &self.clock,
                    &self.shutdown,
                    &mut self.threads,
                )?;
                Some((clean_out, recorder.clone()))
            }
            _ => None,
        };
        let registry = &self.registry;
        let has_display = display.is_some();
        let (desk, window) = snapshot_desk::snapshot_desk();
        let stage = CompositorStage {
            snapshots: window,
            tracked,
            viewed: self.viewed.clone(),
            stages: self.stages.clone(),
            clean,
            display,
            compositor,
            input: compositor_in,
            output: compositor_out,
            scene: self.scene.clone(),
            clock: self.clock.clone(),
            latency: registry.stage_latency("compositor"),
            frames: registry.stage_frames("compositor"),
            fps: FpsMeter::new(registry.stage_fps("compositor")),
            errors: registry.counter("scopecast_compositor_errors_total", "Frames the compositor could not draw.", &[]),
        };
        let stop = self.shutdown.clone();
        self.spawn_frame_path("scopecast-compositor", move || stage.run(&stop))?;
        Ok(Compositing { source_out, frames_out, gpu: Some(gpu), display: has_display, snapshots: Some(desk) })
    }

    /// The encoder and the sink that delivers to viewers and the recorder;
    /// without the encoder, a sink that only measures.
    fn encoding(
        &mut self,
        frames: SlotConsumer<Frame>,
        recorder: Option<&Arc<Recorder>>,
    ) -> Result<Option<Arc<Broadcast>>, StationError> {
        let config = self.config;
        if !config.encoder.enabled {
            let sink =
                spawn_sink(frames, self.clock.clone(), &self.registry, self.shutdown.clone(), true, |_: &Frame, _| {})?;
            self.threads.push(sink);
            return Ok(None);
        }
        let broadcast = Arc::new(Broadcast::new(FanOutPolicy::default()));
        let (encoder_out, sink_in) = latest_slot::<EncodedFrame>("encoder_out");
        self.slots.push(Box::new(encoder_out.monitor()));
        let stage = EncoderStage::new(
            config.encoder.clone(),
            config.source.fps,
            frames,
            encoder_out,
            self.clock.clone(),
            &self.registry,
        )
        .with_broadcast(broadcast.clone())
        .with_status(self.stages.clone(), "encoder")
        // Without the compositor the strip is stamped on the CPU: viewers still read latency.
        .with_timecode(config.compositor.timecode && !config.compositor.enabled, config.compositor.timecode);
        let stop = self.shutdown.clone();
        self.spawn_frame_path("scopecast-encoder", move || stage.run(&stop))?;
        if let Some(recorder) = recorder {
            if config.recording.enabled {
                // A fresh recorder's control queue is empty: it cannot be busy.
                let _ = recorder.start_session();
            }
            let _ = self.hud.recorder.set(recorder.clone());
        }
        let delivery = Delivery {
            broadcast: broadcast.clone(),
            recorder: recorder.cloned(),
            viewers: self.registry.gauge("scopecast_viewers", "Viewers receiving the stream.", &[]),
            stages: self.stages.clone(),
        };
        let sink =
            spawn_sink(sink_in, self.clock.clone(), &self.registry, self.shutdown.clone(), true, move |e, now| {
                delivery.deliver(e, now)
            })?;
        self.threads.push(sink);
        let _ = self.hud.broadcast.set(broadcast.clone());
        Ok(Some(broadcast))
    }
}

impl Station {
    /// Starts the station described by `config` (already validated).
    pub fn start(config: &Config, clock: SharedClock, shutdown: Shutdown) -> Result<Self, StationError> {
        Self::start_inner(config, clock, shutdown, None)
    }

    /// Starts a station whose frames come from the source `make` builds on
    /// the station's scene (a replay drawing the overlays afresh), instead of
    /// `config.source.uri`, with the tracked models where `poses` (the
    /// recording's) put them in each frame (no tracker runs). It never
    /// records: the recording being replayed is not altered, and no other
    /// one is made.
    pub fn start_with_source(
        config: &Config,
        clock: SharedClock,
        shutdown: Shutdown,
        make: SourceOnScene,
        poses: crate::tracking::recorded_poses::RecordedPoses,
    ) -> Result<Self, StationError> {
        Self::start_inner(config, clock, shutdown, Some((make, poses)))
    }

    fn start_inner(
        config: &Config,
        clock: SharedClock,
        shutdown: Shutdown,
        replay: Option<(SourceOnScene, crate::tracking::recorded_poses::RecordedPoses)>,
    ) -> Result<Self, StationError> {
        let (make_source_on_scene, recorded_poses) = replay.unzip();
        crate::thread_priority::set_frame_path_nice(config.threads.frame_path_nice);
        let (scene, problems) = scene_from_config(config);
        for problem in &problems {
            tracing::error!("{problem}");
        }
        let (announcer, announcements) = scopecast_transport::room_channels::announcements();
        let mut wiring = Wiring {
            config,
            registry: Arc::new(MetricsRegistry::new()),
            stages: Arc::new(StageStatus::new(clock.now_ns())),
            scene: Arc::new(SceneStore::new(scene)?),
            hud: Arc::new(HudSources::default()),
            threads: Vec::new(),
            slots: Vec::new(),
            announcer,
            announcements: Some(announcements),
            registration: None,
            viewed: crate::anchoring::viewed_frames::ViewedFrames::new(),
            recorded_poses,
            clock,
            shutdown,
        };
        let _ = wiring.hud.stages.set(wiring.stages.clone());
        let fade_after = Duration::from_secs_f64(config.telestration.fade_after_s);
        let telestration = Telestration::new(wiring.scene.clone(), wiring.clock.clone(), fade_after);
        if config.compositor.enabled {
            telestration.set_viewed_frames(wiring.viewed.clone());
        }
        telestration.set_announcer(wiring.announcer.clone());
        let recorder = wiring.recorder(make_source_on_scene.is_some())?;
        let (board, stop) = (telestration.clone(), wiring.shutdown.clone());
        wiring.spawn("scopecast-telestration", move || board.sweep_until(&stop))?;
        // The source first: a simulated tracker it brings is listening before the trackers connect.
        let source = match make_source_on_scene {
            Some(make) => make(wiring.scene.clone()),
            None => make_source(config, &wiring.clock, &wiring.shutdown, &mut wiring.threads)?,
        };
        let compositing = wiring.compositing(recorder.as_ref())?;
        let supervisor = Supervisor::new(
            source,
            supervisor_settings(config),
            wiring.clock.clone(),
            compositing.source_out,
            &wiring.registry,
        );
        let source_status = supervisor.status();
        let _ = wiring.hud.source.set(source_status.clone());
        let stop = wiring.shutdown.clone();
        wiring.spawn_frame_path("scopecast-source", move || supervisor.run(&stop))?;
        let broadcast = wiring.encoding(compositing.frames_out, recorder.as_ref())?;
        if let Some(desk) = &wiring.registration {
            desk.set_recorder(recorder.clone());
        }
        let Wiring { clock, shutdown, registry, stages, scene, threads, slots, announcements, registration, .. } =
            wiring;
        Ok(Self {
            shutdown,
            threads,
            registry,
            source_status,
            slots: Arc::new(slots),
            scene,
            gpu: compositing.gpu,
            broadcast,
            display: compositing.display,
            commands: Arc::new(
                crate::commands::StationCommands::new(telestration.clone(), recorder.clone(), clock)
                    .with_registration(registration.clone()),
            ),
            registration,
            telestration,
            recorder,
            stages,
            announcements,
            snapshots: compositing.snapshots,
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
