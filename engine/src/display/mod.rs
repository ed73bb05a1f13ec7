//! The station's own monitor: a window (winit) whose wgpu surface shows the
//! compositor's output texture directly (a GPU copy, never through the CPU),
//! with a HUD and keys for the OR staff.
//!
//! It is a viewer that can never stall the pipeline: the compositor hands
//! each frame's texture to a newest-wins slot and wakes the display thread;
//! if presenting is slow the display shows fewer frames while the encoder and
//! the remote viewers keep their rate. Capture → present latency (the moment
//! `present` returns) is recorded as the `display` stage.

pub mod hud;
pub mod keys;
pub mod present;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use winit::application::ApplicationHandler;
use winit::event::{ElementState, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop, EventLoopProxy};
use winit::window::{Fullscreen, Window, WindowId};

use crate::clock::SharedClock;
use crate::compositor::DisplayFrame;
use crate::compositor::gpu::GpuContext;
use crate::metrics::{Counter, FpsMeter, LatencyHistogram, MetricsRegistry};
use crate::scene::{OutputMode, Scene, SceneStore};
use crate::shutdown::Shutdown;
use crate::slot::{SlotConsumer, SlotProducer, Timestamped, latest_slot};
use crate::source::supervisor::SourceStatus;
use hud::{HudState, KEY_HELP, render_panel};
use keys::Action;
use present::Presenter;

impl Timestamped for DisplayFrame {
    fn capture_time_ns(&self) -> u64 {
        self.capture_time_ns
    }
}

/// `[display]` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DisplaySettings {
    /// Start fullscreen.
    pub fullscreen: bool,
    /// Which monitor (0 = the first the display server lists).
    pub monitor: usize,
    /// Initial window size (the frame size: shown 1:1).
    pub size: (u32, u32),
}

/// What the HUD reads that exists only once the station is fully started.
#[derive(Default)]
pub struct HudSources {
    /// The source's status.
    pub source: OnceLock<Arc<Mutex<SourceStatus>>>,
    /// The remote viewers.
    pub broadcast: OnceLock<Arc<scopecast_transport::broadcast::Broadcast>>,
    /// The session recorder.
    pub recorder: OnceLock<Arc<crate::recorder::Recorder>>,
    /// The stages' failures in words (and the encoder's choice).
    pub stages: OnceLock<Arc<crate::stage_status::StageStatus>>,
    /// Set when the GPU is a software renderer known to leak memory.
    pub renderer_warning: OnceLock<String>,
    /// The registration desk, when `[registration]` is set.
    pub registration: OnceLock<Arc<crate::station::registration_desk::StationDesk>>,
}

/// The compositor's side: put each frame's texture here and wake the display.
pub struct DisplayLink {
    frames: SlotProducer<DisplayFrame>,
    proxy: EventLoopProxy<()>,
}

impl DisplayLink {
    /// Offers the newest frame (an older one not yet shown is replaced).
    pub fn show(&self, frame: DisplayFrame) {
        self.frames.put(frame);
        let _ = self.proxy.send_event(());
    }
}

/// Everything the display thread needs.
pub struct DisplayParts {
    /// The compositor's GPU (the surface must live on the same device).
    pub gpu: GpuContext,
    /// Layers and undistortion are toggled here.
    pub scene: Arc<SceneStore>,
    /// For the `display` stage figures.
    pub registry: Arc<MetricsRegistry>,
    /// Late-bound HUD inputs.
    pub sources: Arc<HudSources>,
    /// The station clock.
    pub clock: SharedClock,
    /// Quit key and window close trigger it; it ends the display too.
    pub shutdown: Shutdown,
    /// Window settings.
    pub settings: DisplaySettings,
}

/// Starts the display thread. `Err` (with the reason) when no window can be
/// opened here (no display server): the station then runs headless.
pub fn start(parts: DisplayParts) -> Result<(DisplayLink, std::thread::JoinHandle<()>), String> {
    let (frames, consumer) = latest_slot::<DisplayFrame>("display");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<EventLoopProxy<()>, String>>();
    let thread = std::thread::Builder::new()
        .name("scopecast-display".into())
        .spawn(move || {
            // The OR's own monitor is a screen the frames are for, as a viewer's is.
            crate::thread_priority::enter_frame_path();
            use winit::platform::x11::EventLoopBuilderExtX11;
            let event_loop = match EventLoop::<()>::with_user_event().with_any_thread(true).build() {
                Ok(event_loop) => event_loop,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(event_loop.create_proxy()));
            let mut app = App::new(parts, consumer);
            if let Err(e) = event_loop.run_app(&mut app) {
                tracing::error!(error = %e, "the monitor window failed");
            }
        })
        .map_err(|e| e.to_string())?;
    match ready_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(proxy)) => Ok((DisplayLink { frames, proxy }, thread)),
        Ok(Err(reason)) => {
            let _ = thread.join();
            Err(reason)
        }
        Err(_) => Err("the display thread did not start".into()),
    }
}

/// How often the HUD's figures are read while frames come.
const HUD_REFRESH: Duration = Duration::from_millis(250);

/// A test hook that exists only in debug builds (what `cargo test` runs; a
/// release station never reads it): sleep this long after every present (a
/// deliberately slow monitor, `engine/tests/display_xvfb.rs`).
#[cfg(debug_assertions)]
const PRESENT_DELAY_ENV: &str = "SCOPECAST_TEST_PRESENT_DELAY_MS";

/// The test hook's delay (`SCOPECAST_TEST_PRESENT_DELAY_MS`, debug builds only); zero otherwise.
fn test_present_delay() -> Duration {
    #[cfg(debug_assertions)]
    {
        std::env::var(PRESENT_DELAY_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(Duration::ZERO)
    }
    #[cfg(not(debug_assertions))]
    {
        Duration::ZERO
    }
}

struct App {
    parts: DisplayParts,
    frames: SlotConsumer<DisplayFrame>,
    window: Option<Arc<Window>>,
    presenter: Option<Presenter>,
    latency: Arc<LatencyHistogram>,
    frames_shown: Arc<Counter>,
    fps: FpsMeter,
    recent_latency_ms: VecDeque<f64>,
    recent_presents: VecDeque<Instant>,
    hud_visible: bool,
    help_visible: bool,
    hud_drawn: Option<Vec<(String, [u8; 4])>>,
    /// When the HUD's figures are read again (they change every frame; a reader needs a few updates a second).
    hud_due: Instant,
    last_frame: Option<DisplayFrame>,
    last_viewers: usize,
    viewer_alarm_until: Option<Instant>,
    message: Option<(String, Instant)>,
    present_delay: Duration,
}

impl App {
    fn new(parts: DisplayParts, frames: SlotConsumer<DisplayFrame>) -> Self {
        let registry = parts.registry.clone();
        let present_delay = test_present_delay();
        Self {
            parts,
            frames,
            window: None,
            presenter: None,
            latency: registry.stage_latency("display"),
            frames_shown: registry.stage_frames("display"),
            fps: FpsMeter::new(registry.stage_fps("display")),
            recent_latency_ms: VecDeque::new(),
            recent_presents: VecDeque::new(),
            hud_visible: true,
            help_visible: false,
            hud_drawn: None,
            hud_due: Instant::now(),
            last_frame: None,
            last_viewers: 0,
            viewer_alarm_until: None,
            message: None,
            present_delay,
        }
    }

    fn hud_lines(&mut self) -> Option<Vec<(String, [u8; 4])>> {
        if !self.hud_visible {
            return None;
        }
        if self.help_visible {
            let cyan = [120, 220, 255, 255];
            return Some(KEY_HELP.iter().map(|l| (l.to_string(), cyan)).collect());
        }
        let now = Instant::now();
        let mut state = HudState { recording: "NOT AVAILABLE".into(), ..Default::default() };
        if let Some(desk) = self.parts.sources.registration.get() {
            state.registration = desk.hud_lines();
        }
        if let Some(recorder) = self.parts.sources.recorder.get() {
            state.recording = if recorder.is_recording() { "ON".into() } else { "OFF".into() };
            if let Some(alarm) = recorder.status.alarm() {
                state.alarms.push(alarm.to_uppercase());
            }
        }
        if let Some(stages) = self.parts.sources.stages.get() {
            for (stage, reason) in stages.failures() {
                state.alarms.push(format!("{stage} failing: {reason}").to_uppercase());
            }
            for (stage, note) in stages.notes() {
                if note.contains('(') {
                    state.alarms.push(format!("{stage} {note}").to_uppercase());
                }
            }
        }
        if self.parts.sources.renderer_warning.get().is_some() {
            state.alarms.push("SOFTWARE GPU WITH A KNOWN MEMORY LEAK: UPDATE MESA".into());
        }
        if let Some(source) = self.parts.sources.source.get() {
            let status = source.lock().unwrap_or_else(PoisonError::into_inner).clone();
            state.source = match status.size {
                Some((w, h)) => format!("{} {w}X{h}", status.description),
                None => status.description.clone(),
            };
            if let Some(reason) = status.no_signal {
                state.alarms.push(format!("NO SIGNAL: {reason}"));
            }
        }
        while self.recent_presents.front().is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1)) {
            self.recent_presents.pop_front();
        }
        state.fps = self.recent_presents.len() as f64;
        if let Some(broadcast) = self.parts.sources.broadcast.get() {
            state.viewers = broadcast.viewer_count();
            if state.viewers < self.last_viewers {
                self.viewer_alarm_until = Some(now + Duration::from_secs(10));
            }
            self.last_viewers = state.viewers;
        }
        if self.viewer_alarm_until.is_some_and(|t| now < t) {
            state.alarms.push("A REMOTE VIEWER'S CONNECTION DROPPED".into());
        }
        let scene = self.parts.scene.load();
        if !scene.scene.layers.anatomy {
            state.alarms.push("ANATOMY OVERLAY HIDDEN".into());
        }
        if !scene.scene.layers.annotations {
            state.alarms.push("ANNOTATIONS HIDDEN".into());
        }
        if scene.scene.output_mode == OutputMode::Distorted {
            state.alarms.push("UNDISTORTION OFF".into());
        }
        if !self.recent_latency_ms.is_empty() {
            let mut sorted: Vec<f64> = self.recent_latency_ms.iter().copied().collect();
            sorted.sort_by(f64::total_cmp);
            let q = |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
            state.local_latency_ms = Some((q(0.5), q(0.99)));
        }
        state.message = self.message.as_ref().filter(|(_, until)| now < *until).map(|(m, _)| m.clone());
        Some(state.lines())
    }

    fn show_newest(&mut self) {
        if let Ok(frame) = self.frames.take(Duration::ZERO) {
            self.show(frame, true);
        }
    }

    /// Presents `frame` with the HUD; `fresh`: a new frame (counted), not a redraw.
    fn show(&mut self, frame: DisplayFrame, fresh: bool) {
        // Redraws after a key refresh the HUD at once; new frames, 4 times a second.
        let now = Instant::now();
        let lines = if !fresh || now >= self.hud_due {
            self.hud_due = now + HUD_REFRESH;
            Some(self.hud_lines())
        } else {
            None
        };
        let Some(presenter) = self.presenter.as_mut() else { return };
        if let Some(lines) = lines.filter(|lines| *lines != self.hud_drawn) {
            match &lines {
                Some(lines) => {
                    let (image, size) = render_panel(lines);
                    presenter.set_hud(Some((&image, size)));
                }
                None => presenter.set_hud(None),
            }
            self.hud_drawn = lines;
        }
        if presenter.present(&frame) && fresh {
            let now_ns = self.parts.clock.now_ns();
            let latency_ns = now_ns.saturating_sub(frame.capture_time_ns);
            self.latency.record_ns(latency_ns);
            self.frames_shown.inc();
            self.fps.tick(now_ns);
            self.recent_latency_ms.push_back(latency_ns as f64 / 1e6);
            if self.recent_latency_ms.len() > 240 {
                self.recent_latency_ms.pop_front();
            }
            self.recent_presents.push_back(Instant::now());
            if !self.present_delay.is_zero() {
                std::thread::sleep(self.present_delay);
            }
        }
        self.last_frame = Some(frame);
    }

    /// A registration key: the step to the desk, its refusal on the HUD.
    fn registration_step(&mut self, action: Action) {
        use scopecast_transport::protocol::RegistrationStep;
        let Some(desk) = self.parts.sources.registration.get().cloned() else {
            self.say("NO REGISTRATION DESK: SET [REGISTRATION] IN THE CONFIG");
            return;
        };
        let (step, fiducial) = match action {
            Action::RegistrationPivot => (RegistrationStep::Pivot, None),
            Action::RegistrationRedo(n) => (RegistrationStep::Redo, Some(n)),
            Action::RegistrationSweep => (RegistrationStep::Sweep, None),
            Action::RegistrationAccept => (RegistrationStep::Accept, None),
            _ => (RegistrationStep::Take, None),
        };
        if let Err(why) = desk.step(step, fiducial, "station monitor (operator)") {
            self.say(&why.to_uppercase());
        }
    }

    fn act(&mut self, action: Action, event_loop: &ActiveEventLoop) {
        let scene = &self.parts.scene;
        let result = match action {
            Action::ToggleAnatomy => edit_scene(scene, |s| s.layers.anatomy = !s.layers.anatomy),
            Action::ToggleAnnotations => edit_scene(scene, |s| s.layers.annotations = !s.layers.annotations),
            Action::ToggleUndistortion => edit_scene(scene, |s| {
                s.output_mode = match s.output_mode {
                    OutputMode::Undistorted => OutputMode::Distorted,
                    OutputMode::Distorted => OutputMode::Undistorted,
                }
            }),
            Action::ClearAnnotations => edit_scene(scene, |s| s.annotations.clear()),
            Action::ToggleRecording => {
                match self.parts.sources.recorder.get() {
                    Some(recorder) if recorder.is_recording() => match recorder.stop_session() {
                        Ok(()) => self.say("RECORDING STOPPED"),
                        Err(_) => self.say("THE RECORDER IS BUSY: PRESS R AGAIN IN A SECOND"),
                    },
                    Some(recorder) => match recorder.start_session() {
                        Ok(()) => self.say("RECORDING STARTED"),
                        Err(_) => self.say("THE RECORDER IS BUSY: PRESS R AGAIN IN A SECOND"),
                    },
                    None => self.say("NOTHING TO RECORD: THE ENCODER IS OFF"),
                }
                Ok(0)
            }
            Action::Snapshot => {
                self.snapshot();
                Ok(0)
            }
            Action::ToggleFullscreen => {
                if let Some(window) = &self.window {
                    let next = match window.fullscreen() {
                        Some(_) => None,
                        None => Some(Fullscreen::Borderless(
                            event_loop.available_monitors().nth(self.parts.settings.monitor),
                        )),
                    };
                    window.set_fullscreen(next);
                }
                Ok(0)
            }
            Action::ToggleHud => {
                self.hud_visible = !self.hud_visible;
                Ok(0)
            }
            Action::ToggleHelp => {
                self.help_visible = !self.help_visible;
                self.hud_visible = true;
                Ok(0)
            }
            Action::RegistrationPivot
            | Action::RegistrationTake
            | Action::RegistrationRedo(_)
            | Action::RegistrationSweep
            | Action::RegistrationAccept => {
                self.registration_step(action);
                Ok(0)
            }
            Action::Quit => {
                tracing::info!("quit key on the monitor: stopping the station");
                self.parts.shutdown.trigger();
                event_loop.exit();
                Ok(0)
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, ?action, "the scene refused the change");
        }
        // Show the change at once, even before the next frame.
        if let Some(frame) = self.last_frame.clone() {
            self.show(frame, false);
        }
    }

    fn say(&mut self, message: &str) {
        self.message = Some((message.to_string(), Instant::now() + Duration::from_secs(4)));
    }

    fn snapshot(&mut self) {
        let Some(frame) = self.last_frame.clone() else { return };
        let wall_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let path = PathBuf::from(format!("scopecast-monitor-{wall_ms}.png"));
        let saved = read_rgba(&self.parts.gpu, &frame).and_then(|rgba| {
            image::save_buffer(&path, &rgba, frame.size.0, frame.size.1, image::ExtendedColorType::Rgba8)
                .map_err(|e| e.to_string())
        });
        match saved {
            Ok(()) => {
                tracing::info!(path = %path.display(), "monitor snapshot saved");
                self.say(&format!("SNAPSHOT SAVED: {}", path.display()));
            }
            Err(e) => {
                tracing::error!(error = %e, "monitor snapshot failed");
                self.say("SNAPSHOT FAILED");
            }
        }
    }
}

/// Publishes a copy of the scene with `change` applied.
fn edit_scene(scene: &SceneStore, change: fn(&mut Scene)) -> Result<u64, crate::scene::SceneError> {
    scene.update(|s| {
        let mut s = s.clone();
        change(&mut s);
        s
    })
}

/// Reads a monitor frame back to the CPU (RGBA8, tightly packed).
fn read_rgba(gpu: &GpuContext, frame: &DisplayFrame) -> Result<Vec<u8>, String> {
    let (w, h) = frame.size;
    let padded = (w * 4).div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
    let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("monitor-snapshot"),
        size: u64::from(padded) * u64::from(h),
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    let mut encoder = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("snapshot") });
    encoder.copy_texture_to_buffer(
        frame.texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &buffer,
            layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(padded), rows_per_image: None },
        },
        wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
    );
    gpu.queue.submit([encoder.finish()]);
    let (tx, rx) = std::sync::mpsc::channel();
    buffer.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    let _ = gpu.device.poll(wgpu::PollType::wait_indefinitely());
    rx.recv().map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    let mapped = buffer.slice(..).get_mapped_range().map_err(|e| e.to_string())?;
    let mut rgba = Vec::with_capacity((w * h * 4) as usize);
    for row in mapped.chunks(padded as usize).take(h as usize) {
        rgba.extend_from_slice(&row[..(w * 4) as usize]);
    }
    Ok(rgba)
}

impl ApplicationHandler<()> for App {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.window.is_some() {
            return;
        }
        let settings = self.parts.settings;
        let mut attributes = Window::default_attributes()
            .with_title("scopecast station monitor")
            .with_inner_size(winit::dpi::PhysicalSize::new(settings.size.0.max(64), settings.size.1.max(64)));
        if settings.fullscreen {
            attributes = attributes
                .with_fullscreen(Some(Fullscreen::Borderless(event_loop.available_monitors().nth(settings.monitor))));
        }
        let window = match event_loop.create_window(attributes) {
            Ok(window) => Arc::new(window),
            Err(e) => {
                tracing::error!(error = %e, "cannot open the monitor window; running headless");
                event_loop.exit();
                return;
            }
        };
        match Presenter::new(self.parts.gpu.clone(), window.clone()) {
            Ok(presenter) => {
                tracing::info!(present_mode = ?presenter.present_mode, "monitor window open");
                self.presenter = Some(presenter);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot draw into the monitor window; running headless");
                event_loop.exit();
                return;
            }
        }
        self.window = Some(window);
    }

    fn user_event(&mut self, _event_loop: &ActiveEventLoop, _event: ()) {
        self.show_newest();
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested => self.act(Action::Quit, event_loop),
            WindowEvent::Resized(size) => {
                if let Some(presenter) = self.presenter.as_mut() {
                    presenter.resize(size.width, size.height);
                }
            }
            WindowEvent::KeyboardInput { event, .. } if event.state == ElementState::Pressed && !event.repeat => {
                if let Some(action) = keys::action_for(&event.logical_key) {
                    self.act(action, event_loop);
                }
            }
            _ => {}
        }
    }

    fn about_to_wait(&mut self, event_loop: &ActiveEventLoop) {
        if self.parts.shutdown.is_triggered() {
            event_loop.exit();
            return;
        }
        event_loop.set_control_flow(ControlFlow::WaitUntil(Instant::now() + Duration::from_millis(50)));
    }
}
