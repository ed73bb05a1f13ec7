//! The CPU plan's frame (`PassPlan::Cpu`, software adapters): the layer
//! (anatomy and marks, `passes/layer.rs`) drawn by wgpu only when it
//! changed and read back, then the per-frame work on the compositor's thread
//! (`cpu_frame`). A layer that moves from frame to frame is left to the
//! fused pass (`CpuPlan::moving`); `super::Compositor::render_passes` routes
//! each frame.

use std::collections::VecDeque;
use std::time::Instant;

use super::passes::compose::ComposeInputs;
use super::passes::layer::LayerPass;
use super::passes::overlay::OverlayInputs;
use super::{Compositor, CompositorError, ModelPose, PassTimings, annotations, cpu_frame, readback};
use crate::frame::{Frame, FrameStamp, PixelFormat};
use crate::pool::BufferPool;
use crate::scene::{OutputMode, Scene};

/// I420 buffers the CPU plan keeps for reuse (frames in the encoder's slot
/// and queue hold theirs until they are dropped; more are allocated then).
const CPU_FRAMES_POOLED: usize = 4;

/// What the CPU plan's layer was drawn from: it is drawn again when any of
/// this changes, and on every frame with marks on screen (they are placed
/// and fade by the frame's time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct LayerKey {
    pub(super) generation: u64,
    pub(super) overlay_draws: u64,
    pub(super) overlay_drawn: bool,
    pub(super) mode: OutputMode,
    pub(super) remap_in_use: bool,
    pub(super) marks: bool,
}

impl CpuPlan {
    /// The plan's state on `device`; `compose_layout` is the compose pass's
    /// bind group layout (group 0 of the layer pass).
    pub(super) fn new(device: &wgpu::Device, compose_layout: &wgpu::BindGroupLayout) -> Self {
        Self {
            pass: LayerPass::new(device, compose_layout),
            layer: Vec::new(),
            layer_any: false,
            layer_key: None,
            last_seen: None,
            moving: true,
            rgba: Vec::new(),
            last_frame: false,
            done: VecDeque::new(),
            pool: BufferPool::new(CPU_FRAMES_POOLED),
        }
    }

    /// This frame's layer is `key`: whether it moves (changed since the
    /// last frame, or holds marks, which are placed and fade per frame).
    pub(super) fn note_layer(&mut self, key: LayerKey) {
        self.moving = key.marks || self.last_seen != Some(key);
        self.last_seen = Some(key);
    }
}

/// The CPU plan's state (see [`PassPlan::Cpu`]).
pub(super) struct CpuPlan {
    pass: LayerPass,
    /// The layer, packed premultiplied RGBA, and whether any pixel is not transparent.
    layer: Vec<u32>,
    layer_any: bool,
    layer_key: Option<LayerKey>,
    /// What the layer was last frame (whichever route drew it), and whether
    /// it changed then: a layer that changes frame after frame (tracked
    /// poses, marks on screen) is cheaper in the fused pass than drawn,
    /// read back and waited for on each frame, so such frames take it.
    pub(super) last_seen: Option<LayerKey>,
    pub(super) moving: bool,
    /// The last CPU frame's composed picture (packed RGBA pixels).
    pub(super) rgba: Vec<u32>,
    /// The last frame took this plan (its picture is `rgba`).
    pub(super) last_frame: bool,
    /// Composed I420 frames, oldest first, until [`Compositor::poll_i420`].
    pub(super) done: VecDeque<Frame>,
    /// Their buffers, reused.
    pool: BufferPool,
}

impl Compositor {
    /// The CPU plan's frame (see [`PassPlan::Cpu`]): the layer drawn by wgpu
    /// when it changed (and waited for), then the video, the layer, the
    /// strip and I420 on this thread. The I420 frame is ready at once.
    pub(super) fn render_cpu(
        &mut self,
        frame: &Frame,
        scene: &Scene,
        poses: &[ModelPose],
        mut timings: Option<&mut PassTimings>,
    ) -> Result<(), CompositorError> {
        let size = (frame.width(), frame.height());
        // The compose bindings need video textures; the CPU plan never uploads into them.
        self.ensure_video_planes(frame);
        let (Some(video), Some(sized), Some(cpu)) = (&self.video, &mut self.sized, &mut self.cpu) else {
            return Ok(());
        };
        let Some(fused_target) = &sized.fused else { return Ok(()) };
        let ctx = &self.ctx;
        let layer_start = Instant::now();

        // 1. The layer, when it changed: the overlay and the marks drawn, packed, read back.
        let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("layer") });
        let overlay_drawn = self.remap.ready_for(scene) && {
            let target = self.remap.distorted_overlay(scene.output_mode).unwrap_or(&sized.identity_overlay);
            let inputs = OverlayInputs { scene, poses, target, size, generation: self.bindings_generation };
            self.overlay.encode(ctx, &mut encoder, inputs)
        };
        let models_at = crate::anchoring::models_at(scene, poses);
        let view = crate::anchoring::view::FrameView::of(scene, size);
        let marks = annotations::MarkDrawing {
            placer: crate::anchoring::place::Placer::new(view, &scene.models, &models_at),
            hidden: self.settings.hidden_marks,
        };
        let clear = wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT);
        let layer_view = &fused_target.annotation_layer;
        let marks_drawn =
            self.annotations.encode(ctx, &mut encoder, layer_view, scene, size, frame.capture_time_ns, &marks, clear);
        let remap = self.remap.in_use(scene);
        let key = LayerKey {
            generation: self.bindings_generation,
            overlay_draws: self.overlay.draws(),
            overlay_drawn,
            mode: scene.output_mode,
            remap_in_use: remap.is_some(),
            marks: marks_drawn,
        };
        cpu.note_layer(key);
        if marks_drawn || cpu.layer_key != Some(key) {
            cpu.layer_any = false;
            cpu.layer_key = None;
            if overlay_drawn || marks_drawn {
                let inputs = ComposeInputs {
                    video,
                    output: &sized.output_view,
                    identity_overlay: &sized.identity_overlay.resolved_view,
                    remap,
                    mode: scene.output_mode,
                    overlay_drawn,
                    size,
                    generation: self.bindings_generation,
                };
                let compose = self.compose.bind(ctx, &inputs);
                let target = sized.layer.get_or_insert_with(|| cpu.pass.target(&ctx.device, layer_view, size));
                cpu.pass.encode(ctx, &mut encoder, &compose, target, marks_drawn);
                ctx.queue.submit([encoder.finish()]);
                cpu.layer_any = target.read_into(ctx, &mut cpu.layer).ok_or(CompositorError::LayerReadback)?;
            } else {
                ctx.queue.submit([encoder.finish()]);
            }
            cpu.layer_key = Some(key);
        }
        if let Some(t) = timings.as_deref_mut() {
            t.passes.push(("layer", layer_start.elapsed()));
        }

        // 2. Video (through the table, as the compose pass samples it), layer, strip and
        // I420 in one sweep; the picture kept only for a snapshot or a test.
        let compose_start = Instant::now();
        let gather = remap
            .filter(|r| r.key.mode == scene.output_mode && scene.output_mode == OutputMode::Undistorted)
            .and_then(|r| r.gather.as_deref());
        let plane = frame.planes()[0];
        let cpu_frame = cpu_frame::CpuFrame {
            video: frame.bytes().get(plane.offset..).unwrap_or_default(),
            video_stride: plane.stride,
            size,
            gather,
            layer: cpu.layer_any.then_some(cpu.layer.as_slice()),
            strip_ms: self.settings.timecode.then_some(frame.capture_wall_ms),
            kernels: cpu_frame::Kernels::Widest,
        };
        let keep_rgba = std::mem::take(&mut self.keep_rgba_next);
        if keep_rgba {
            cpu.rgba.resize(size.0 as usize * size.1 as usize, 0);
        }
        let layout = readback::I420Layout::new(size.0, size.1);
        let mut buffer = cpu.pool.take(layout.size() as usize);
        let rgba = keep_rgba.then_some(cpu.rgba.as_mut_slice());
        cpu_frame::compose_i420(&cpu_frame, &layout, buffer.as_mut_slice(), rgba)?;
        let stamp = FrameStamp {
            sequence: frame.sequence,
            capture_time_ns: frame.capture_time_ns,
            capture_wall_ms: frame.capture_wall_ms,
        };
        let i420 = Frame::new(
            PixelFormat::I420,
            size.0,
            size.1,
            layout.planes(),
            std::sync::Arc::new(buffer),
            stamp,
            frame.content.clone(),
        )
        .map_err(|e| CompositorError::Cpu(cpu_frame::CpuFrameError::Frame(e.to_string())))?;
        if let Some(t) = timings {
            t.passes.push(("cpu frame", compose_start.elapsed()));
        }

        // 3. After any frame still in the GPU's readback (order kept).
        while sized.i420.ring.busy() {
            let _ = ctx.device.poll(wgpu::PollType::wait_indefinitely());
            cpu.done.extend(sized.i420.ring.collect());
        }
        cpu.done.push_back(i420);
        cpu.last_frame = true;
        self.rgba_kept = keep_rgba;
        self.frames += 1;
        Ok(())
    }
}
