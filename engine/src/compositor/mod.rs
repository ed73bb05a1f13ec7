//! The GPU compositor: per frame, upload the video once, undistort it (or
//! not), draw the registered anatomy (depth-tested, alpha-blended, 4× MSAA;
//! bent by the lens in the distorted mode), the annotations (anti-aliased),
//! the timecode strip last, and convert to I420 for the encoder with an
//! asynchronous readback ring. wgpu + WGSL; lavapipe where there is no GPU.
//!
//! The remap tables (one per calibration, frame size and output mode) are
//! built on a background thread; until a table is ready the video is shown as
//! captured and the overlay waits, so a calibration change never stalls the
//! frame loop.

pub mod annotations;
pub mod gpu;
pub mod pipelines;
pub mod projection;
pub mod readback;
pub mod remap;
pub mod targets;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};
use glam::Vec3;
use scopecast_calibration::CameraModel;
use thiserror::Error;

use crate::frame::{Frame, FrameStamp, PixelFormat};
use crate::scene::{Mesh, ModelStyle, OutputMode, Scene};
use crate::timecode::cell_size_px;
use gpu::GpuContext;
use pipelines::Pipelines;
use projection::{OverlayViewport, camera_for_frame, clip_from_camera};
use readback::{I420Layout, I420Ring};
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
}

/// Compositor options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompositorSettings {
    /// Stamp the timecode strip.
    pub timecode: bool,
    /// Samples per pixel of the overlay pass: 4 (anti-aliased edges) or 1.
    pub msaa_samples: u32,
}

impl Default for CompositorSettings {
    fn default() -> Self {
        Self { timecode: true, msaa_samples: pipelines::DEFAULT_MSAA_SAMPLES }
    }
}

/// Wall time of each pass of one frame (bench only: passes are submitted and
/// waited for one by one, which a live frame never does).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassTimings {
    /// `(pass name, duration)` in pipeline order.
    pub passes: Vec<(&'static str, Duration)>,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct ComposeParams {
    format: u32,
    undistort_video: u32,
    distort_overlay: u32,
    overlay_visible: u32,
    output_size: [f32; 2],
    pad: [f32; 2],
}

/// Everything the overlay's pixels depend on: the target (its generation,
/// mode, size, viewport) and, in drawing order, each model's mesh and
/// uniforms. The meshes are held, so an address cannot be reused while the
/// key lives.
#[derive(Clone)]
struct OverlayKey {
    target: (u64, bool, (u32, u32), (u32, u32)),
    models: Vec<(Arc<crate::scene::mesh::Mesh>, ModelUniform)>,
}

impl PartialEq for OverlayKey {
    fn eq(&self, other: &Self) -> bool {
        self.target == other.target
            && self.models.len() == other.models.len()
            && self
                .models
                .iter()
                .zip(&other.models)
                .all(|((ma, ua), (mb, ub))| Arc::ptr_eq(ma, mb) && bytemuck::bytes_of(ua) == bytemuck::bytes_of(ub))
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct ModelUniform {
    clip_from_model: [[f32; 4]; 4],
    camera_from_model: [[f32; 4]; 4],
    colour: [f32; 4],
    style: [f32; 4],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct TimecodeUniform {
    cell: u32,
    height: u32,
    high_bits: u32,
    low_bits: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct I420Params {
    width: u32,
    height: u32,
    y_stride: u32,
    u_offset_words: u32,
    v_offset_words: u32,
    pad: [u32; 3],
}

/// What a remap table is for.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RemapKey {
    camera: CameraModel,
    size: (u32, u32),
    mode: OutputMode,
}

struct ReadyRemap {
    key: RemapKey,
    view: wgpu::TextureView,
    overlay: OverlayTarget,
}

struct GpuMesh {
    /// Keeps the pointer used as cache key alive.
    _mesh: Arc<Mesh>,
    vertices: wgpu::Buffer,
    triangles: wgpu::Buffer,
    triangle_count: u32,
    edges: wgpu::Buffer,
    edge_count: u32,
}

/// Per-size resources.
struct Sized {
    size: (u32, u32),
    output: wgpu::Texture,
    output_view: wgpu::TextureView,
    identity_overlay: OverlayTarget,
    i420_storage: wgpu::Buffer,
    i420_bind_group: wgpu::BindGroup,
    ring: I420Ring,
}

/// A composited frame for the station's own monitor: the GPU texture itself
/// (RGBA8, no CPU copy), with the frame's times.
#[derive(Debug, Clone)]
pub struct DisplayFrame {
    /// The composited picture (the stream's pixels, before I420).
    pub texture: wgpu::Texture,
    /// Width and height, px.
    pub size: (u32, u32),
    /// Capture time on the station clock, ns.
    pub capture_time_ns: u64,
    /// Sequence number of the source frame.
    pub sequence: u64,
}

/// Textures the monitor's frames rotate through: one being written, one
/// shown, one spare. Reads and writes go through one queue, so they happen
/// in submission order.
const DISPLAY_RING: usize = 3;

/// The compositor. Owns its GPU resources; one per station.
pub struct Compositor {
    ctx: GpuContext,
    settings: CompositorSettings,
    pipelines: Pipelines,
    video_sampler: wgpu::Sampler,
    compose_params: wgpu::Buffer,
    annotation_frame: wgpu::Buffer,
    annotation_bind_group: wgpu::BindGroup,
    annotation_instances: wgpu::Buffer,
    timecode_params: wgpu::Buffer,
    timecode_bind_group: wgpu::BindGroup,
    /// Bumped whenever a texture the compose pass binds is replaced.
    bindings_generation: u64,
    /// The compose bind group and the (generation, remap in use, distorted overlay) it was built for.
    compose_bind_group: Option<((u64, bool, bool), wgpu::BindGroup)>,
    /// What the overlay target holds now; the overlay is drawn again only
    /// when this changes (a scene edit, a new pose, a new size or lens).
    overlay_drawn_for: Option<OverlayKey>,
    /// With a monitor: its texture ring, the next index, and the newest frame not yet taken.
    display: Option<(Vec<wgpu::Texture>, usize, Option<DisplayFrame>)>,
    i420_params: wgpu::Buffer,
    empty_remap: wgpu::TextureView,
    video: Option<VideoPlanes>,
    sized: Option<Sized>,
    remap: Option<ReadyRemap>,
    remap_pending: Option<(RemapKey, Receiver<(remap::RemapTable, OverlayViewport)>)>,
    meshes: HashMap<usize, GpuMesh>,
    model_buffers: Vec<(wgpu::Buffer, wgpu::BindGroup)>,
    /// Frames composited.
    pub frames: u64,
}

fn uniform_buffer(device: &wgpu::Device, label: &str, size: u64) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

fn buffer_with(device: &wgpu::Device, label: &str, bytes: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
    let size = bytes.len().max(4).next_multiple_of(4);
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: size as u64,
        usage,
        mapped_at_creation: true,
    });
    if let Ok(mut mapped) = buffer.slice(..).get_mapped_range_mut() {
        let mut padded = bytes.to_vec();
        padded.resize(size, 0);
        mapped.copy_from_slice(&padded);
    }
    buffer.unmap();
    buffer
}

/// A render pass writing the composited output (no depth, no multisampling).
fn output_pass<'e>(
    encoder: &'e mut wgpu::CommandEncoder,
    view: &wgpu::TextureView,
    label: &str,
    load: wgpu::LoadOp<wgpu::Color>,
) -> wgpu::RenderPass<'e> {
    encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
        label: Some(label),
        color_attachments: &[Some(wgpu::RenderPassColorAttachment {
            view,
            depth_slice: None,
            resolve_target: None,
            ops: wgpu::Operations { load, store: wgpu::StoreOp::Store },
        })],
        depth_stencil_attachment: None,
        timestamp_writes: None,
        occlusion_query_set: None,
        multiview_mask: None,
    })
}

fn format_code(format: PixelFormat) -> u32 {
    match format {
        PixelFormat::Rgba8 => 0,
        PixelFormat::I420 => 1,
        PixelFormat::Nv12 => 2,
    }
}

impl Compositor {
    /// A compositor on `ctx`.
    pub fn new(ctx: GpuContext, settings: CompositorSettings) -> Self {
        let device = &ctx.device;
        let settings = CompositorSettings { msaa_samples: if settings.msaa_samples > 1 { 4 } else { 1 }, ..settings };
        let pipelines = Pipelines::new(device, settings.msaa_samples);
        let video_sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("video"),
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..Default::default()
        });
        let annotation_instances = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("annotation-instances"),
            size: 64 * 1024,
            usage: wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let annotation_frame = uniform_buffer(device, "annotation-frame", 16);
        let timecode_params = uniform_buffer(device, "timecode-params", 16);
        let single_uniform = |label, layout: &wgpu::BindGroupLayout, buffer: &wgpu::Buffer| {
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(label),
                layout,
                entries: &[wgpu::BindGroupEntry { binding: 0, resource: buffer.as_entire_binding() }],
            })
        };
        let annotation_bind_group = single_uniform("annotation", &pipelines.annotation_layout, &annotation_frame);
        let timecode_bind_group = single_uniform("timecode", &pipelines.timecode_layout, &timecode_params);
        Self {
            compose_params: uniform_buffer(device, "compose-params", std::mem::size_of::<ComposeParams>() as u64),
            annotation_frame,
            annotation_bind_group,
            timecode_params,
            timecode_bind_group,
            bindings_generation: 0,
            compose_bind_group: None,
            overlay_drawn_for: None,
            display: None,
            i420_params: uniform_buffer(device, "i420-params", std::mem::size_of::<I420Params>() as u64),
            empty_remap: targets::empty_remap(device),
            annotation_instances,
            video_sampler,
            pipelines,
            settings,
            video: None,
            sized: None,
            remap: None,
            remap_pending: None,
            meshes: HashMap::new(),
            model_buffers: Vec::new(),
            frames: 0,
            ctx,
        }
    }

    /// The device this compositor runs on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
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
        let output = targets::output_texture(device, size);
        let output_view = output.create_view(&wgpu::TextureViewDescriptor::default());
        let layout = I420Layout::new(size.0, size.1);
        let i420_storage = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("i420-planes"),
            size: layout.size(),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let i420_bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("rgba_to_i420"),
            layout: &self.pipelines.i420_layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: self.i420_params.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&output_view) },
                wgpu::BindGroupEntry { binding: 2, resource: i420_storage.as_entire_binding() },
            ],
        });
        let params = I420Params {
            width: size.0,
            height: size.1,
            y_stride: layout.y_stride,
            u_offset_words: layout.u_offset() / 4,
            v_offset_words: layout.v_offset() / 4,
            pad: [0; 3],
        };
        self.ctx.queue.write_buffer(&self.i420_params, 0, bytemuck::bytes_of(&params));
        self.bindings_generation += 1;
        self.sized = Some(Sized {
            size,
            identity_overlay: OverlayTarget::new(
                device,
                OverlayViewport::identity(size.0, size.1),
                self.settings.msaa_samples,
            ),
            ring: I420Ring::new(device, layout),
            output,
            output_view,
            i420_storage,
            i420_bind_group,
        });
    }

    /// Starts or collects the remap table the scene needs for `size`.
    fn update_remap(&mut self, scene: &Scene, size: (u32, u32)) -> Result<(), CompositorError> {
        let Some(calibration) = &scene.calibration else {
            self.remap = None;
            return Ok(());
        };
        let key = RemapKey {
            camera: camera_for_frame(&calibration.camera, (calibration.width, calibration.height), size),
            size,
            mode: scene.output_mode,
        };
        if self.remap.as_ref().is_some_and(|r| r.key == key) {
            return Ok(());
        }
        if let Some((pending_key, rx)) = &self.remap_pending
            && *pending_key == key
        {
            match rx.try_recv() {
                Ok((table, viewport)) => {
                    let view = targets::remap_texture(&self.ctx.device, &self.ctx.queue, &table);
                    let overlay = OverlayTarget::new(&self.ctx.device, viewport, self.settings.msaa_samples);
                    self.remap = Some(ReadyRemap { key, view, overlay });
                    self.bindings_generation += 1;
                    self.remap_pending = None;
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => {
                    self.remap_pending = None;
                    return Err(CompositorError::RemapBuilderGone);
                }
            }
            return Ok(());
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new().name("scopecast-remap".into()).spawn(move || {
            let built = match key.mode {
                OutputMode::Undistorted => (
                    remap::undistort_video(&key.camera, key.size.0, key.size.1),
                    OverlayViewport::identity(key.size.0, key.size.1),
                ),
                OutputMode::Distorted => remap::distort_overlay(&key.camera, key.size.0, key.size.1),
            };
            let _ = tx.send(built);
        });
        if spawned.is_err() {
            return Err(CompositorError::RemapBuilderGone);
        }
        self.remap_pending = Some((key, rx));
        Ok(())
    }

    /// Whether the scene's remap table is in use (tests and snapshots wait for it).
    pub fn remap_ready(&self, scene: &Scene) -> bool {
        match (&scene.calibration, &self.remap) {
            (None, _) => true,
            (Some(_), Some(r)) => r.key.mode == scene.output_mode && self.remap_pending.is_none(),
            (Some(_), None) => false,
        }
    }

    fn gpu_mesh(&mut self, mesh: &Arc<Mesh>) -> &GpuMesh {
        let key = Arc::as_ptr(mesh) as usize;
        let device = &self.ctx.device;
        self.meshes.entry(key).or_insert_with(|| {
            let interleaved: Vec<[f32; 6]> =
                mesh.positions.iter().zip(&mesh.normals).map(|(p, n)| [p[0], p[1], p[2], n[0], n[1], n[2]]).collect();
            let edges = mesh.edge_indices();
            GpuMesh {
                _mesh: mesh.clone(),
                vertices: buffer_with(
                    device,
                    "mesh-vertices",
                    bytemuck::cast_slice(&interleaved),
                    wgpu::BufferUsages::VERTEX,
                ),
                triangles: buffer_with(
                    device,
                    "mesh-triangles",
                    bytemuck::cast_slice(&mesh.indices),
                    wgpu::BufferUsages::INDEX,
                ),
                triangle_count: mesh.indices.len() as u32,
                edges: buffer_with(device, "mesh-edges", bytemuck::cast_slice(&edges), wgpu::BufferUsages::INDEX),
                edge_count: edges.len() as u32,
            }
        })
    }

    fn model_binding(&mut self, index: usize) -> &(wgpu::Buffer, wgpu::BindGroup) {
        while self.model_buffers.len() <= index {
            let buffer = uniform_buffer(&self.ctx.device, "model", std::mem::size_of::<ModelUniform>() as u64);
            let bind_group = self.ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("model"),
                layout: &self.pipelines.mesh_layout,
                entries: &[wgpu::BindGroupEntry { binding: 0, resource: buffer.as_entire_binding() }],
            });
            self.model_buffers.push((buffer, bind_group));
        }
        &self.model_buffers[index]
    }

    /// Composites `frame` with `scene`: every pass is encoded and submitted at
    /// once, and the I420 readback is started. Never waits for the GPU.
    pub fn render(&mut self, frame: &Frame, scene: &Scene) -> Result<(), CompositorError> {
        self.render_passes(frame, scene, None)
    }

    /// Like [`Compositor::render`], but submits and waits for each pass on its
    /// own and returns their wall times (for benches).
    pub fn render_timed(&mut self, frame: &Frame, scene: &Scene) -> Result<PassTimings, CompositorError> {
        let mut timings = PassTimings::default();
        self.render_passes(frame, scene, Some(&mut timings))?;
        Ok(timings)
    }

    fn render_passes(
        &mut self,
        frame: &Frame,
        scene: &Scene,
        mut timings: Option<&mut PassTimings>,
    ) -> Result<(), CompositorError> {
        let size = (frame.width(), frame.height());
        let max_side = self.ctx.device.limits().max_texture_dimension_2d;
        if size.0 > max_side || size.1 > max_side {
            return Err(CompositorError::FrameTooLarge { width: size.0, height: size.1, max_side });
        }
        self.ensure_sized(size);
        self.update_remap(scene, size)?;
        self.gc_meshes(scene);

        // 1. Upload.
        let upload_start = Instant::now();
        if self.video.as_ref().is_none_or(|v| v.format != frame.format() || v.size != size) {
            self.video = Some(VideoPlanes::new(&self.ctx.device, frame.format(), size));
            self.bindings_generation += 1;
        }
        if let Some(video) = &self.video {
            video.upload(&self.ctx.queue, frame);
        }
        if let Some(t) = timings.as_deref_mut() {
            self.ctx.queue.submit([]);
            let _ = self.ctx.device.poll(wgpu::PollType::wait_indefinitely());
            t.passes.push(("upload", upload_start.elapsed()));
        }

        let mut step = |this: &mut Self, name: &'static str, encoder: wgpu::CommandEncoder| {
            if let Some(t) = timings.as_deref_mut() {
                let start = Instant::now();
                this.ctx.queue.submit([encoder.finish()]);
                let _ = this.ctx.device.poll(wgpu::PollType::wait_indefinitely());
                t.passes.push((name, start.elapsed()));
                None
            } else {
                Some(encoder)
            }
        };
        let new_encoder = |this: &Self| {
            this.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("frame") })
        };

        // 2–3. Overlay, then compose.
        let mut encoder = new_encoder(self);
        let overlay_drawn = self.encode_overlay(&mut encoder, scene, size);
        let mut pending = step(self, "overlay", encoder);
        let mut encoder = pending.take().unwrap_or_else(|| new_encoder(self));
        self.encode_compose(&mut encoder, scene, frame.format(), size, overlay_drawn);
        let mut pending = step(self, "compose", encoder);

        // 4. Annotations.
        let mut encoder = pending.take().unwrap_or_else(|| new_encoder(self));
        self.encode_annotations(&mut encoder, scene, size, frame.capture_time_ns);
        let mut pending = step(self, "annotations", encoder);

        // 5. Timecode, last over everything.
        let mut encoder = pending.take().unwrap_or_else(|| new_encoder(self));
        if self.settings.timecode {
            self.encode_timecode(&mut encoder, frame.capture_wall_ms, size);
        }
        let mut pending = step(self, "timecode", encoder);

        // 6. RGBA → I420 and the copy into a staging buffer (and, with a
        // monitor, a GPU copy of the picture for it).
        let mut encoder = pending.take().unwrap_or_else(|| new_encoder(self));
        self.encode_display_copy(&mut encoder, frame, size);
        let staging = self.encode_i420(&mut encoder, size);
        if let Some(encoder) = step(self, "i420", encoder) {
            self.ctx.queue.submit([encoder.finish()]);
        }
        if let (Some(staging), Some(sized)) = (staging, self.sized.as_mut()) {
            let stamp = FrameStamp {
                sequence: frame.sequence,
                capture_time_ns: frame.capture_time_ns,
                capture_wall_ms: frame.capture_wall_ms,
            };
            sized.ring.start_map(staging, stamp, frame.content.clone());
        }
        self.frames += 1;
        Ok(())
    }

    /// Keeps a GPU copy of every composited frame for the station's monitor
    /// (see [`Compositor::take_display_frame`]).
    pub fn enable_display(&mut self) {
        if self.display.is_none() {
            self.display = Some((Vec::new(), 0, None));
        }
    }

    /// The newest composited frame for the monitor, once (submitted already).
    pub fn take_display_frame(&mut self) -> Option<DisplayFrame> {
        self.display.as_mut().and_then(|(_, _, newest)| newest.take())
    }

    /// The device and queue, shared with the monitor's presenter.
    pub fn gpu(&self) -> &GpuContext {
        &self.ctx
    }

    fn encode_display_copy(&mut self, encoder: &mut wgpu::CommandEncoder, frame: &Frame, size: (u32, u32)) {
        let (Some((ring, next, newest)), Some(sized)) = (self.display.as_mut(), self.sized.as_ref()) else { return };
        if ring.first().is_none_or(|t| (t.width(), t.height()) != size) {
            let usage = wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::COPY_DST
                | wgpu::TextureUsages::COPY_SRC
                | wgpu::TextureUsages::RENDER_ATTACHMENT;
            *ring = (0..DISPLAY_RING)
                .map(|_| targets::texture(&self.ctx.device, "display", size, pipelines::OUTPUT_FORMAT, usage, 1))
                .collect();
        }
        let target = &ring[*next % ring.len()];
        *next = next.wrapping_add(1);
        let extent = wgpu::Extent3d { width: size.0, height: size.1, depth_or_array_layers: 1 };
        encoder.copy_texture_to_texture(sized.output.as_image_copy(), target.as_image_copy(), extent);
        *newest = Some(DisplayFrame {
            texture: target.clone(),
            size,
            capture_time_ns: frame.capture_time_ns,
            sequence: frame.sequence,
        });
    }

    /// Drops GPU meshes no model of the scene uses any more.
    fn gc_meshes(&mut self, scene: &Scene) {
        if self.meshes.len() > scene.models.len() {
            let live: Vec<usize> = scene.models.iter().map(|m| Arc::as_ptr(&m.mesh) as usize).collect();
            self.meshes.retain(|k, _| live.contains(k));
        }
    }

    /// Draws the anatomy into the overlay target; returns whether anything is to be composed.
    fn encode_overlay(&mut self, encoder: &mut wgpu::CommandEncoder, scene: &Scene, size: (u32, u32)) -> bool {
        let Some(calibration) = &scene.calibration else { return false };
        if !scene.layers.anatomy || !scene.models.iter().any(|m| m.visible && m.opacity > 0.0) {
            return false;
        }
        if !self.remap_ready(scene) {
            return false;
        }
        let camera = camera_for_frame(&calibration.camera, (calibration.width, calibration.height), size);
        let viewport = match (scene.output_mode, &self.remap) {
            (OutputMode::Distorted, Some(r)) => r.overlay.viewport,
            _ => OverlayViewport::identity(size.0, size.1),
        };
        let clip_from_camera = clip_from_camera(&camera.intrinsics, &viewport);
        // Opaque models first, then translucent ones from far to near.
        let mut order: Vec<usize> =
            (0..scene.models.len()).filter(|&i| scene.models[i].visible && scene.models[i].opacity > 0.0).collect();
        let depth = |i: usize| scene.models[i].camera_from_model.transform_point3(Vec3::ZERO).z;
        order.sort_by(|&a, &b| {
            let (oa, ob) = (scene.models[a].opacity >= 1.0, scene.models[b].opacity >= 1.0);
            ob.cmp(&oa).then(depth(b).total_cmp(&depth(a)))
        });
        let uniforms: Vec<(Arc<crate::scene::mesh::Mesh>, ModelUniform)> = order
            .iter()
            .map(|&index| {
                let model = &scene.models[index];
                let uniform = ModelUniform {
                    clip_from_model: (clip_from_camera * model.camera_from_model).to_cols_array_2d(),
                    camera_from_model: model.camera_from_model.to_cols_array_2d(),
                    colour: [model.colour[0], model.colour[1], model.colour[2], model.opacity],
                    style: [
                        match model.style {
                            ModelStyle::Solid => 0.0,
                            ModelStyle::Wireframe => 1.0,
                            ModelStyle::Silhouette => 2.0,
                        },
                        0.0,
                        0.0,
                        0.0,
                    ],
                };
                (model.mesh.clone(), uniform)
            })
            .collect();
        let distorted = scene.output_mode == OutputMode::Distorted;
        let key = OverlayKey { target: (self.bindings_generation, distorted, size, viewport.size), models: uniforms };
        if self.overlay_drawn_for.as_ref() == Some(&key) {
            return true;
        }
        for (slot, (mesh, uniform)) in key.models.iter().enumerate() {
            let buffer = self.model_binding(slot).0.clone();
            self.ctx.queue.write_buffer(&buffer, 0, bytemuck::bytes_of(uniform));
            self.gpu_mesh(mesh);
        }
        let target = match (scene.output_mode, &self.remap, &self.sized) {
            (OutputMode::Distorted, Some(r), _) => &r.overlay,
            (_, _, Some(s)) => &s.identity_overlay,
            _ => return false,
        };
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("overlay"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: target.msaa_view.as_ref().unwrap_or(&target.resolved_view),
                depth_slice: None,
                resolve_target: target.msaa_view.as_ref().map(|_| &target.resolved_view),
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT),
                    store: if target.msaa_view.is_some() { wgpu::StoreOp::Discard } else { wgpu::StoreOp::Store },
                },
            })],
            depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                view: &target.depth_view,
                depth_ops: Some(wgpu::Operations { load: wgpu::LoadOp::Clear(1.0), store: wgpu::StoreOp::Discard }),
                stencil_ops: None,
            }),
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        for (slot, &index) in order.iter().enumerate() {
            let model = &scene.models[index];
            let Some(mesh) = self.meshes.get(&(Arc::as_ptr(&model.mesh) as usize)) else { continue };
            let wireframe = model.style == ModelStyle::Wireframe;
            pass.set_pipeline(if wireframe { &self.pipelines.mesh_wireframe } else { &self.pipelines.mesh_solid });
            pass.set_bind_group(0, &self.model_buffers[slot].1, &[]);
            pass.set_vertex_buffer(0, mesh.vertices.slice(..));
            if wireframe {
                pass.set_index_buffer(mesh.edges.slice(..), wgpu::IndexFormat::Uint32);
                pass.draw_indexed(0..mesh.edge_count, 0, 0..1);
            } else {
                pass.set_index_buffer(mesh.triangles.slice(..), wgpu::IndexFormat::Uint32);
                pass.draw_indexed(0..mesh.triangle_count, 0, 0..1);
            }
        }
        drop(pass);
        self.overlay_drawn_for = Some(key);
        true
    }

    fn encode_compose(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        scene: &Scene,
        format: PixelFormat,
        size: (u32, u32),
        overlay_drawn: bool,
    ) {
        let (Some(video), Some(sized)) = (&self.video, &self.sized) else { return };
        let remap = self.remap.as_ref().filter(|_| self.remap_pending.is_none() && scene.calibration.is_some());
        let mode_ready = remap.is_some_and(|r| r.key.mode == scene.output_mode);
        let params = ComposeParams {
            format: format_code(format),
            undistort_video: u32::from(mode_ready && scene.output_mode == OutputMode::Undistorted),
            distort_overlay: u32::from(mode_ready && scene.output_mode == OutputMode::Distorted),
            overlay_visible: u32::from(overlay_drawn),
            output_size: [size.0 as f32, size.1 as f32],
            pad: [0.0; 2],
        };
        self.ctx.queue.write_buffer(&self.compose_params, 0, bytemuck::bytes_of(&params));
        let overlay_view = match (scene.output_mode, remap) {
            (OutputMode::Distorted, Some(r)) => &r.overlay.resolved_view,
            _ => &sized.identity_overlay.resolved_view,
        };
        let remap_view = remap.map_or(&self.empty_remap, |r| &r.view);
        let key = (self.bindings_generation, remap.is_some(), scene.output_mode == OutputMode::Distorted);
        // Rebuilt only when a bound texture or the table in use changes, not per frame.
        let cached = self.compose_bind_group.as_ref().filter(|(k, _)| *k == key).map(|(_, b)| b.clone());
        let bind_group = cached.unwrap_or_else(|| {
            self.ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("compose"),
                layout: &self.pipelines.compose_layout,
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: self.compose_params.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&video.views[0]) },
                    wgpu::BindGroupEntry { binding: 2, resource: wgpu::BindingResource::TextureView(&video.views[1]) },
                    wgpu::BindGroupEntry { binding: 3, resource: wgpu::BindingResource::TextureView(&video.views[2]) },
                    wgpu::BindGroupEntry { binding: 4, resource: wgpu::BindingResource::Sampler(&self.video_sampler) },
                    wgpu::BindGroupEntry { binding: 5, resource: wgpu::BindingResource::TextureView(remap_view) },
                    wgpu::BindGroupEntry { binding: 6, resource: wgpu::BindingResource::TextureView(overlay_view) },
                    wgpu::BindGroupEntry { binding: 7, resource: wgpu::BindingResource::Sampler(&self.video_sampler) },
                ],
            })
        });
        {
            let mut pass = output_pass(encoder, &sized.output_view, "compose", wgpu::LoadOp::Clear(wgpu::Color::BLACK));
            pass.set_pipeline(&self.pipelines.compose);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.draw(0..3, 0..1);
        }
        self.compose_bind_group = Some((key, bind_group));
    }

    fn encode_annotations(&mut self, encoder: &mut wgpu::CommandEncoder, scene: &Scene, size: (u32, u32), now_ns: u64) {
        if !scene.layers.annotations || scene.annotations.is_empty() {
            return;
        }
        let mut shapes = annotations::instances(&scene.annotations, size.0, size.1, now_ns);
        if shapes.is_empty() {
            return;
        }
        // Bounded GPU memory whatever viewers send: the newest shapes win.
        if shapes.len() > annotations::MAX_SHAPES {
            shapes.drain(..shapes.len() - annotations::MAX_SHAPES);
        }
        let bytes: &[u8] = bytemuck::cast_slice(&shapes);
        if bytes.len() as u64 > self.annotation_instances.size() {
            self.annotation_instances = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("annotation-instances"),
                size: (bytes.len() as u64).next_power_of_two(),
                usage: wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
        }
        self.ctx.queue.write_buffer(&self.annotation_instances, 0, bytes);
        let frame_size = [size.0 as f32, size.1 as f32, 0.0, 0.0];
        self.ctx.queue.write_buffer(&self.annotation_frame, 0, bytemuck::cast_slice(&frame_size));
        let Some(sized) = &self.sized else { return };
        let mut pass = output_pass(encoder, &sized.output_view, "annotations", wgpu::LoadOp::Load);
        pass.set_pipeline(&self.pipelines.annotation);
        pass.set_bind_group(0, &self.annotation_bind_group, &[]);
        pass.set_vertex_buffer(0, self.annotation_instances.slice(..bytes.len() as u64));
        pass.draw(0..4, 0..shapes.len() as u32);
    }

    fn encode_timecode(&mut self, encoder: &mut wgpu::CommandEncoder, capture_wall_ms: u64, size: (u32, u32)) {
        let Some(sized) = &self.sized else { return };
        let cell = cell_size_px(size.1);
        let params = TimecodeUniform {
            cell,
            height: size.1,
            high_bits: ((capture_wall_ms >> 32) & 0xf) as u32,
            low_bits: (capture_wall_ms & 0xffff_ffff) as u32,
        };
        self.ctx.queue.write_buffer(&self.timecode_params, 0, bytemuck::bytes_of(&params));
        let strip_width = (cell * crate::timecode::CELLS).min(size.0);
        let strip_height = cell.min(size.1);
        let mut pass = output_pass(encoder, &sized.output_view, "timecode", wgpu::LoadOp::Load);
        pass.set_pipeline(&self.pipelines.timecode);
        pass.set_bind_group(0, &self.timecode_bind_group, &[]);
        let top = size.1 - strip_height;
        pass.set_viewport(0.0, top as f32, strip_width as f32, strip_height as f32, 0.0, 1.0);
        pass.set_scissor_rect(0, top, strip_width, strip_height);
        pass.draw(0..3, 0..1);
    }

    /// Encodes the I420 conversion and its copy into a free staging buffer.
    fn encode_i420(&mut self, encoder: &mut wgpu::CommandEncoder, size: (u32, u32)) -> Option<wgpu::Buffer> {
        let sized = self.sized.as_mut()?;
        let staging = sized.ring.acquire()?;
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("rgba_to_i420"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipelines.i420);
            pass.set_bind_group(0, &sized.i420_bind_group, &[]);
            pass.dispatch_workgroups(size.0.div_ceil(8).div_ceil(8), size.1.div_ceil(2).div_ceil(8), 1);
        }
        encoder.copy_buffer_to_buffer(&sized.i420_storage, 0, &staging, 0, sized.ring.layout().size());
        Some(staging)
    }

    /// I420 frames whose readback finished; never blocks.
    pub fn poll_i420(&mut self) -> Vec<Frame> {
        let _ = self.ctx.device.poll(wgpu::PollType::Poll);
        self.sized.as_mut().map(|s| s.ring.collect()).unwrap_or_default()
    }

    /// Waits for every readback in flight and returns the frames (tests, snapshots).
    pub fn drain_i420(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        while self.sized.as_ref().is_some_and(|s| s.ring.busy()) {
            let _ = self.ctx.device.poll(wgpu::PollType::wait_indefinitely());
            out.extend(self.sized.as_mut().map(|s| s.ring.collect()).unwrap_or_default());
        }
        out
    }

    /// Whether an I420 readback is still in flight.
    pub fn readback_pending(&self) -> bool {
        self.in_flight() > 0
    }

    /// Frames submitted whose I420 readback has not been collected yet.
    pub fn in_flight(&self) -> usize {
        self.sized.as_ref().map_or(0, |s| s.ring.in_flight())
    }

    /// Frames whose readback was dropped: every staging buffer was busy.
    pub fn skipped_readbacks(&self) -> u64 {
        self.sized.as_ref().map_or(0, |s| s.ring.skipped)
    }

    /// Reads the composited RGBA output of the last frame (blocking; for
    /// snapshots and tests, never the live path). Packed rows, 4 bytes a pixel.
    pub fn read_rgba(&mut self) -> Option<Vec<u8>> {
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
        self.render(frame, scene)
    }
}
