//! The GPU compositor: per frame, upload the video once, undistort it (or
//! not), draw the registered anatomy (depth-tested, alpha-blended, 4× MSAA;
//! bent by the lens in the distorted mode), the annotations (anti-aliased),
//! the timecode strip last, and convert to I420 for the encoder with an
//! asynchronous readback ring. wgpu + WGSL; lavapipe where there is no GPU,
//! where the CPU plan ([`PassPlan::Cpu`]) draws only the anatomy and marks
//! on it, when they change, and does the per-frame work on the CPU
//! (`cpu_frame`).
//!
//! This module keeps the order of the passes and what they share (the
//! per-size textures, the bindings generation); each pass is a file of
//! `passes/`, the per-frame CPU work `cpu_frame`, the remap tables'
//! lifecycle `remap_cache`, the monitor's textures `display_ring`.

pub mod annotations;
pub mod cpu_frame;
mod cpu_plan;
mod display_ring;
pub mod gpu;
mod passes;
pub mod pipelines;
pub mod projection;
pub mod readback;
pub mod remap;
mod remap_cache;
pub mod targets;

use std::time::{Duration, Instant};

use thiserror::Error;

pub use display_ring::DisplayFrame;

use crate::frame::{Frame, FrameStamp, PixelFormat};
use crate::scene::Scene;
use cpu_plan::{CpuPlan, LayerKey};
use display_ring::DisplayRing;
use gpu::GpuContext;
use passes::annotations::AnnotationPass;
use passes::compose::{ComposeInputs, ComposePass};
use passes::fused::{FusedFrame, FusedPass, FusedTarget};
use passes::i420::{I420Pass, I420Target};
use passes::layer::LayerTarget;
use passes::overlay::{OverlayInputs, OverlayPass};
use passes::timecode::TimecodePass;
use projection::OverlayViewport;
use remap_cache::{RemapCache, RemapUpdate};
use targets::{OverlayTarget, VideoPlanes};

/// Why a frame could not be composited.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CompositorError {
    /// The frame is larger than the device's textures allow.
    #[error("a {width}x{height} frame exceeds the GPU's {max_side} px texture limit")]
    FrameTooLarge {
        /// Width, px.
        width: u32,
        /// Height, px.
        height: u32,
        /// Largest texture side.
        max_side: u32,
    },
    /// A remap table could not be built.
    #[error("the remap table builder stopped")]
    RemapBuilderGone,
    /// The CPU plan could not compose a frame.
    #[error("the CPU plan cannot compose this frame: {0}")]
    Cpu(#[from] cpu_frame::CpuFrameError),
    /// The CPU plan's layer (anatomy and marks) could not be read back from
    /// the GPU: frames are not sent without it.
    #[error("the overlay layer could not be read back from the GPU (device lost?)")]
    LayerReadback,
}

/// How a frame's passes are laid out (`[compositor] passes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PassPlan {
    /// The CPU plan on a software adapter (lavapipe; its frames that cannot
    /// take it, fused), separate passes on a GPU.
    #[default]
    Auto,
    /// Compose, annotations, strip and I420 as separate passes (a GPU's
    /// fixed-function blending and rasterisation are free there).
    Separate,
    /// Compose, annotation layer, strip and I420 in one compute pass
    /// (`passes/fused.rs`): on a software adapter the picture is never
    /// written to a texture and read back between passes.
    Fused,
    /// The per-frame work on the CPU (`cpu_frame`: remap, the layer over
    /// the video, strip, I420) with the overlay and annotations still drawn
    /// by wgpu, only when they change, into one layer (`passes/layer.rs`).
    /// RGBA frames without a monitor; others take the fused pass.
    Cpu,
}

impl PassPlan {
    /// Whether frames that do not take the CPU plan run the fused pass on an
    /// adapter of `info`.
    pub fn fused_on(self, info: &wgpu::AdapterInfo) -> bool {
        match self {
            Self::Auto => gpu::is_software(info),
            Self::Separate => false,
            Self::Fused | Self::Cpu => true,
        }
    }

    /// Whether RGBA frames take the CPU plan on an adapter of `info`.
    pub fn cpu_on(self, info: &wgpu::AdapterInfo) -> bool {
        match self {
            Self::Auto => gpu::is_software(info),
            Self::Separate | Self::Fused => false,
            Self::Cpu => true,
        }
    }
}

/// Compositor options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompositorSettings {
    /// Stamp the timecode strip.
    pub timecode: bool,
    /// Samples per pixel of the overlay pass: 4 (anti-aliased edges) or 1.
    pub msaa_samples: u32,
    /// How the parts of marks on the anatomy behind tissue are drawn.
    pub hidden_marks: annotations::HiddenMarks,
    /// Separate or fused passes.
    pub passes: PassPlan,
}

impl Default for CompositorSettings {
    fn default() -> Self {
        Self {
            timecode: true,
            msaa_samples: pipelines::DEFAULT_MSAA_SAMPLES,
            hidden_marks: annotations::HiddenMarks::default(),
            passes: PassPlan::Auto,
        }
    }
}

/// How a model is drawn this frame, by its tracked pose (see
/// `crate::tracking`); models without one are drawn as the scene says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ModelPose {
    /// As the scene says (not tracked, or a fixed pose).
    AsScene,
    /// At this camera_from_model (mm), tracked at the frame's capture time.
    Tracked(glam::Mat4),
    /// Not drawn: its pose is stale or invalid.
    Hidden,
    /// Drawn grey as a wireframe where its last pose put it: stale or invalid.
    NotTracked(glam::Mat4),
}

/// Wall time of each pass of one frame (bench only: passes are submitted and
/// waited for one by one, which a live frame never does).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassTimings {
    /// `(pass name, duration)` in pipeline order.
    pub passes: Vec<(&'static str, Duration)>,
}

/// What the compositor holds for one output size.
struct Sized {
    size: (u32, u32),
    output: wgpu::Texture,
    output_view: wgpu::TextureView,
    /// The overlay target of the undistorted mode (output-sized).
    identity_overlay: OverlayTarget,
    i420: I420Target,
    /// The fused pass's annotation layer and bindings (software adapters).
    fused: Option<FusedTarget>,
    /// The CPU plan's layer buffers (made on its first layer).
    layer: Option<LayerTarget>,
}

/// The compositor. Owns its GPU resources; one per station.
pub struct Compositor {
    ctx: GpuContext,
    settings: CompositorSettings,
    overlay: OverlayPass,
    compose: ComposePass,
    annotations: AnnotationPass,
    timecode: TimecodePass,
    i420: I420Pass,
    /// Compose, annotation layer, strip and I420 in one pass (see [`PassPlan`]).
    fused: Option<FusedPass>,
    /// The per-frame work on the CPU (see [`PassPlan::Cpu`]).
    cpu: Option<CpuPlan>,
    /// Bumped whenever a texture a pass binds is replaced (a new size, video
    /// format or remap table): the passes' cached bind groups and the drawn
    /// overlay are keyed on it.
    bindings_generation: u64,
    /// With a monitor: the textures its frames rotate through.
    display: Option<DisplayRing>,
    video: Option<VideoPlanes>,
    sized: Option<Sized>,
    remap: RemapCache,
    /// The next frame keeps its RGBA picture (see [`Compositor::keep_rgba_of_next_frame`]).
    keep_rgba_next: bool,
    /// The last frame's RGBA picture is in the output texture.
    rgba_kept: bool,
    /// Frames composited.
    pub frames: u64,
}

impl Compositor {
    /// A compositor on `ctx`.
    pub fn new(ctx: GpuContext, settings: CompositorSettings) -> Self {
        let device = &ctx.device;
        let settings = CompositorSettings { msaa_samples: if settings.msaa_samples > 1 { 4 } else { 1 }, ..settings };
        let compose = ComposePass::new(device);
        let fused = settings.passes.fused_on(&ctx.adapter_info).then(|| FusedPass::new(device, compose.bind_layout()));
        let cpu = settings.passes.cpu_on(&ctx.adapter_info).then(|| CpuPlan::new(device, compose.bind_layout()));
        let remap = if cpu.is_some() { RemapCache::with_gather() } else { RemapCache::default() };
        Self {
            overlay: OverlayPass::new(device, settings.msaa_samples),
            compose,
            fused,
            cpu,
            annotations: AnnotationPass::new(device),
            timecode: TimecodePass::new(device),
            i420: I420Pass::new(device),
            bindings_generation: 0,
            display: None,
            settings,
            video: None,
            sized: None,
            remap,
            keep_rgba_next: false,
            rgba_kept: false,
            frames: 0,
            ctx,
        }
    }

    /// The device this compositor runs on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// The next frame keeps its composited RGBA picture for
    /// [`Compositor::read_rgba`]. Separate passes always have it; the fused
    /// pass writes it only for the monitor or when asked (writing it costs a
    /// software adapter more than the rest of the pass: see ARCHITECTURE.md).
    pub fn keep_rgba_of_next_frame(&mut self) {
        self.keep_rgba_next = true;
    }

    /// Whether frames run the fused pass (see [`PassPlan`]).
    pub fn fused(&self) -> bool {
        self.fused.is_some() && self.cpu.is_none()
    }

    /// Whether RGBA frames take the CPU plan (see [`PassPlan::Cpu`]).
    pub fn cpu(&self) -> bool {
        self.cpu.is_some()
    }

    /// Whether the last frame was composed on the CPU (the CPU plan hands
    /// frames whose layer moves to the fused pass).
    pub fn last_frame_on_cpu(&self) -> bool {
        self.cpu.as_ref().is_some_and(|c| c.last_frame)
    }

    /// The composited output of the last frame (for the station's monitor).
    pub fn output_view(&self) -> Option<&wgpu::TextureView> {
        self.sized.as_ref().map(|s| &s.output_view)
    }

    fn ensure_sized(&mut self, size: (u32, u32)) {
        if self.sized.as_ref().is_some_and(|s| s.size == size) {
            return;
        }
        let device = &self.ctx.device;
        let output = targets::output_texture(device, size, self.fused.is_some());
        let output_view = output.create_view(&wgpu::TextureViewDescriptor::default());
        let i420 = self.i420.target(&self.ctx, &output_view, size);
        let fused = self.fused.as_ref().map(|pass| pass.target(device, &output_view, &i420, size));
        self.bindings_generation += 1;
        self.sized = Some(Sized {
            size,
            identity_overlay: OverlayTarget::new(
                device,
                OverlayViewport::identity(size.0, size.1),
                self.settings.msaa_samples,
            ),
            i420,
            fused,
            layer: None,
            output,
            output_view,
        });
    }

    /// Video textures of `frame`'s format and size (new ones replace the
    /// bound ones: the bindings generation moves).
    fn ensure_video_planes(&mut self, frame: &Frame) {
        let size = (frame.width(), frame.height());
        if self.video.as_ref().is_none_or(|v| v.format != frame.format() || v.size != size) {
            self.video = Some(VideoPlanes::new(&self.ctx.device, frame.format(), size));
            self.bindings_generation += 1;
        }
    }

    /// Whether the scene's remap table is in use (tests and snapshots wait for it).
    pub fn remap_ready(&self, scene: &Scene) -> bool {
        self.remap.ready_for(scene)
    }

    /// Composites `frame` with `scene`: every pass is encoded and submitted at
    /// once, and the I420 readback is started. Never waits for the GPU.
    pub fn render(&mut self, frame: &Frame, scene: &Scene) -> Result<(), CompositorError> {
        self.render_passes(frame, scene, &[], None)
    }

    /// Like [`Compositor::render`], with the models' tracked poses for this
    /// frame (by model index; missing entries: as the scene says).
    pub fn render_posed(&mut self, frame: &Frame, scene: &Scene, poses: &[ModelPose]) -> Result<(), CompositorError> {
        self.render_passes(frame, scene, poses, None)
    }

    /// Like [`Compositor::render`], but submits and waits for each pass on its
    /// own and returns their wall times (for benches).
    pub fn render_timed(&mut self, frame: &Frame, scene: &Scene) -> Result<PassTimings, CompositorError> {
        let mut timings = PassTimings::default();
        self.render_passes(frame, scene, &[], Some(&mut timings))?;
        Ok(timings)
    }

    /// The passes in order: upload, overlay, compose, annotations, timecode,
    /// then I420 (and the monitor's copy); fused: upload, overlay, the
    /// annotation layer, the fused pass and the copy. With `timings`, each is
    /// submitted and waited for on its own.
    fn render_passes(
        &mut self,
        frame: &Frame,
        scene: &Scene,
        poses: &[ModelPose],
        mut timings: Option<&mut PassTimings>,
    ) -> Result<(), CompositorError> {
        let size = (frame.width(), frame.height());
        let max_side = self.ctx.device.limits().max_texture_dimension_2d;
        if size.0 > max_side || size.1 > max_side {
            return Err(CompositorError::FrameTooLarge { width: size.0, height: size.1, max_side });
        }
        self.ensure_sized(size);
        if self.remap.update(&self.ctx, scene, size, self.settings.msaa_samples)? == RemapUpdate::Installed {
            self.bindings_generation += 1;
        }
        self.overlay.drop_unused_meshes(scene);
        let cpu_route = self.cpu.as_ref().is_some_and(|c| !c.moving);
        if cpu_route && self.display.is_none() && frame.format() == PixelFormat::Rgba8 {
            return self.render_cpu(frame, scene, poses, timings);
        }
        if let Some(cpu) = self.cpu.as_mut() {
            cpu.last_frame = false;
        }

        // Upload.
        let upload_start = Instant::now();
        self.ensure_video_planes(frame);
        if let Some(video) = &self.video {
            video.upload(&self.ctx.queue, frame);
        }
        if let Some(t) = timings.as_deref_mut() {
            self.ctx.queue.submit([]);
            let _ = self.ctx.device.poll(wgpu::PollType::wait_indefinitely());
            t.passes.push(("upload", upload_start.elapsed()));
        }
        let (Some(video), Some(sized)) = (&self.video, &mut self.sized) else { return Ok(()) };

        let ctx = &self.ctx;
        let mut step = |name: &'static str, encoder: wgpu::CommandEncoder| {
            if let Some(t) = timings.as_deref_mut() {
                let start = Instant::now();
                ctx.queue.submit([encoder.finish()]);
                let _ = ctx.device.poll(wgpu::PollType::wait_indefinitely());
                t.passes.push((name, start.elapsed()));
                None
            } else {
                Some(encoder)
            }
        };
        let new_encoder =
            || ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("frame") });

        // 1. The anatomy into the overlay target, once its table is in use.
        let mut encoder = new_encoder();
        let overlay_drawn = self.remap.ready_for(scene) && {
            let target = self.remap.distorted_overlay(scene.output_mode).unwrap_or(&sized.identity_overlay);
            let inputs = OverlayInputs { scene, poses, target, size, generation: self.bindings_generation };
            self.overlay.encode(ctx, &mut encoder, inputs)
        };
        let mut pending = step("overlay", encoder);

        // 2. Video and overlay composed.
        let mut encoder = pending.take().unwrap_or_else(new_encoder);
        let inputs = ComposeInputs {
            video,
            output: &sized.output_view,
            identity_overlay: &sized.identity_overlay.resolved_view,
            remap: self.remap.in_use(scene),
            mode: scene.output_mode,
            overlay_drawn,
            size,
            generation: self.bindings_generation,
        };
        let models_at = crate::anchoring::models_at(scene, poses);
        let view = crate::anchoring::view::FrameView::of(scene, size);
        let marks = annotations::MarkDrawing {
            placer: crate::anchoring::place::Placer::new(view, &scene.models, &models_at),
            hidden: self.settings.hidden_marks,
        };
        let timecode_ms = self.settings.timecode.then_some(frame.capture_wall_ms);
        let keep_rgba = std::mem::take(&mut self.keep_rgba_next);
        self.rgba_kept = self.fused.is_none() || self.display.is_some() || keep_rgba;
        let store_rgba = self.rgba_kept;
        let staging = if let (Some(fused), Some(target)) = (&self.fused, &sized.fused) {
            // Software adapter: the annotations into their layer, then one pass
            // for compose, layer, strip and I420 (`passes/fused.rs`).
            let compose = self.compose.bind(ctx, &inputs);
            let clear = wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT);
            let layer = &target.annotation_layer;
            let annotations =
                self.annotations.encode(ctx, &mut encoder, layer, scene, size, frame.capture_time_ns, &marks, clear);
            if let Some(cpu) = self.cpu.as_mut() {
                let key = LayerKey {
                    generation: self.bindings_generation,
                    overlay_draws: self.overlay.draws(),
                    overlay_drawn,
                    mode: scene.output_mode,
                    remap_in_use: inputs.remap.is_some(),
                    marks: annotations,
                };
                cpu.note_layer(key);
            }
            let mut encoder = step("annotations", encoder).unwrap_or_else(new_encoder);
            fused.encode(
                ctx,
                &mut encoder,
                &compose,
                target,
                FusedFrame { size, annotations, timecode_ms, store_rgba },
            );
            let mut encoder = step("fused", encoder).unwrap_or_else(new_encoder);
            if let Some(display) = self.display.as_mut() {
                display.encode_copy(&ctx.device, &mut encoder, &sized.output, frame, size);
            }
            let staging = I420Pass::encode_copy(&mut encoder, &mut sized.i420);
            if let Some(encoder) = step("i420 copy", encoder) {
                ctx.queue.submit([encoder.finish()]);
            }
            staging
        } else {
            self.compose.encode(ctx, &mut encoder, inputs);
            let mut pending = step("compose", encoder);

            // 3. Annotations (marks on the anatomy placed with this frame's poses).
            let mut encoder = pending.take().unwrap_or_else(new_encoder);
            let load = wgpu::LoadOp::Load;
            let output = &sized.output_view;
            self.annotations.encode(ctx, &mut encoder, output, scene, size, frame.capture_time_ns, &marks, load);
            let mut pending = step("annotations", encoder);

            // 4. Timecode, last over everything.
            let mut encoder = pending.take().unwrap_or_else(new_encoder);
            if let Some(capture_wall_ms) = timecode_ms {
                self.timecode.encode(ctx, &mut encoder, &sized.output_view, capture_wall_ms, size);
            }
            let mut pending = step("timecode", encoder);

            // 5. RGBA → I420 and the copy into a staging buffer (and, with a
            // monitor, a GPU copy of the picture for it).
            let mut encoder = pending.take().unwrap_or_else(new_encoder);
            if let Some(display) = self.display.as_mut() {
                display.encode_copy(&ctx.device, &mut encoder, &sized.output, frame, size);
            }
            let staging = self.i420.encode(&mut encoder, &mut sized.i420, size);
            if let Some(encoder) = step("i420", encoder) {
                ctx.queue.submit([encoder.finish()]);
            }
            staging
        };
        if let Some(staging) = staging {
            let stamp = FrameStamp {
                sequence: frame.sequence,
                capture_time_ns: frame.capture_time_ns,
                capture_wall_ms: frame.capture_wall_ms,
            };
            sized.i420.ring.start_map(staging, stamp, frame.content.clone());
        }
        self.frames += 1;
        Ok(())
    }

    /// Keeps a GPU copy of every composited frame for the station's monitor
    /// (see [`Compositor::take_display_frame`]).
    pub fn enable_display(&mut self) {
        if self.display.is_none() {
            self.display = Some(DisplayRing::default());
        }
    }

    /// The newest composited frame for the monitor, once (submitted already).
    pub fn take_display_frame(&mut self) -> Option<DisplayFrame> {
        self.display.as_mut().and_then(DisplayRing::take)
    }

    /// The device and queue, shared with the monitor's presenter.
    pub fn gpu(&self) -> &GpuContext {
        &self.ctx
    }

    /// I420 frames whose readback finished (and the CPU plan's), oldest
    /// first; never blocks.
    pub fn poll_i420(&mut self) -> Vec<Frame> {
        let _ = self.ctx.device.poll(wgpu::PollType::Poll);
        let mut out: Vec<Frame> = self.cpu.as_mut().map(|c| c.done.drain(..).collect()).unwrap_or_default();
        out.extend(self.sized.as_mut().map(|s| s.i420.ring.collect()).unwrap_or_default());
        out
    }

    /// Waits for every readback in flight and returns the frames (tests, snapshots).
    pub fn drain_i420(&mut self) -> Vec<Frame> {
        let mut out: Vec<Frame> = self.cpu.as_mut().map(|c| c.done.drain(..).collect()).unwrap_or_default();
        while self.sized.as_ref().is_some_and(|s| s.i420.ring.busy()) {
            let _ = self.ctx.device.poll(wgpu::PollType::wait_indefinitely());
            out.extend(self.sized.as_mut().map(|s| s.i420.ring.collect()).unwrap_or_default());
        }
        out
    }

    /// Whether an I420 readback is still in flight.
    pub fn readback_pending(&self) -> bool {
        self.in_flight() > 0
    }

    /// Frames submitted whose I420 has not been collected yet.
    pub fn in_flight(&self) -> usize {
        self.sized.as_ref().map_or(0, |s| s.i420.ring.in_flight()) + self.cpu.as_ref().map_or(0, |c| c.done.len())
    }

    /// Frames whose readback was dropped: every staging buffer was busy.
    pub fn skipped_readbacks(&self) -> u64 {
        self.sized.as_ref().map_or(0, |s| s.i420.ring.skipped)
    }

    /// Reads the composited RGBA output of the last frame (blocking; for
    /// snapshots and tests, never the live path). Packed rows, 4 bytes a pixel;
    /// `None` when the last frame did not keep it (a fused frame not asked to:
    /// [`Compositor::keep_rgba_of_next_frame`]).
    pub fn read_rgba(&mut self) -> Option<Vec<u8>> {
        if !self.rgba_kept {
            return None;
        }
        if let Some(cpu) = self.cpu.as_ref().filter(|c| c.last_frame) {
            return Some(bytemuck::cast_slice(&cpu.rgba).to_vec());
        }
        let sized = self.sized.as_ref()?;
        let (w, h) = sized.size;
        let padded = (w * 4).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT);
        let buffer = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("rgba-readback"),
            size: u64::from(padded) * u64::from(h),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder =
            self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("read_rgba") });
        encoder.copy_texture_to_buffer(
            sized.output.as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: &buffer,
                layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(padded), rows_per_image: Some(h) },
            },
            sized.output.size(),
        );
        self.ctx.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        buffer.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r.is_ok());
        });
        let _ = self.ctx.device.poll(wgpu::PollType::wait_indefinitely());
        if !rx.recv().unwrap_or(false) {
            return None;
        }
        let mapped = buffer.slice(..).get_mapped_range().ok()?;
        let mut out = Vec::with_capacity((w * h * 4) as usize);
        for row in mapped.chunks_exact(padded as usize) {
            out.extend_from_slice(&row[..(w * 4) as usize]);
        }
        Some(out)
    }

    /// Renders until the scene's remap table is in use (at most `timeout`),
    /// re-rendering `frame`; for snapshots and tests.
    pub fn render_settled(&mut self, frame: &Frame, scene: &Scene, timeout: Duration) -> Result<(), CompositorError> {
        let deadline = Instant::now() + timeout;
        self.render(frame, scene)?;
        while !self.remap_ready(scene) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            self.render(frame, scene)?;
        }
        self.keep_rgba_of_next_frame();
        self.render(frame, scene)
    }
}
