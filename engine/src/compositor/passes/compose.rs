//! Pass 2: the composed picture. One full-screen triangle samples the video
//! planes (RGBA, I420 or NV12 → RGB, BT.709), undistorted through the remap
//! table or as captured, and lays the overlay over it (itself bent by the
//! lens through the table in the distorted mode); `compose.wgsl`.

use bytemuck::{Pod, Zeroable};
use scopecast_shaders::COMPOSE;

use crate::compositor::gpu::GpuContext;
use crate::compositor::pipelines::{
    Fullscreen, layout, module, output_pass, output_pipeline, sampler_entry, texture_entry, uniform_buffer,
    uniform_entry,
};
use crate::compositor::remap_cache::ReadyRemap;
use crate::compositor::targets::{self, VideoPlanes};
use crate::frame::PixelFormat;
use crate::scene::OutputMode;

/// The shader's parameters (`compose.wgsl`); flags are 0 or 1.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct ComposeParams {
    /// [`format_code`] of the video planes.
    format: u32,
    undistort_video: u32,
    distort_overlay: u32,
    overlay_visible: u32,
    /// Output width and height, px.
    output_size: [f32; 2],
    pad: [f32; 2],
}

fn format_code(format: PixelFormat) -> u32 {
    match format {
        PixelFormat::Rgba8 => 0,
        PixelFormat::I420 => 1,
        PixelFormat::Nv12 => 2,
    }
}

/// What the compose bind group was built for: it is rebuilt only when a
/// bound texture is replaced (`generation`) or the remap table in use
/// changes, never per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BindingsKey {
    /// `Compositor`'s bindings generation.
    generation: u64,
    /// A remap table is bound (else a 1×1 placeholder).
    remap: bool,
    /// The overlay bound is the distorted mode's target.
    distorted: bool,
}

/// One frame's inputs to the compose pass.
pub(crate) struct ComposeInputs<'a> {
    /// The uploaded video.
    pub(crate) video: &'a VideoPlanes,
    /// Where the composed picture goes.
    pub(crate) output: &'a wgpu::TextureView,
    /// The overlay target of the undistorted mode (and of the distorted one
    /// until its table is ready).
    pub(crate) identity_overlay: &'a wgpu::TextureView,
    /// The remap table in use, if any (see `RemapCache::in_use`).
    pub(crate) remap: Option<&'a ReadyRemap>,
    pub(crate) mode: OutputMode,
    /// Whether the overlay pass drew anything to lay over the video.
    pub(crate) overlay_drawn: bool,
    /// Output size, px.
    pub(crate) size: (u32, u32),
    /// `Compositor`'s bindings generation.
    pub(crate) generation: u64,
}

/// The compose pass.
pub(crate) struct ComposePass {
    pipeline: wgpu::RenderPipeline,
    bind_layout: wgpu::BindGroupLayout,
    /// Linear filtering, for the video and the overlay.
    sampler: wgpu::Sampler,
    params: wgpu::Buffer,
    /// Bound in place of a remap table when there is none.
    empty_remap: wgpu::TextureView,
    bind_group: Option<(BindingsKey, wgpu::BindGroup)>,
}

impl ComposePass {
    /// The pass's pipeline, sampler and buffers on `device`.
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        // The fused pass of software adapters binds the same group from a compute shader.
        let fragment = wgpu::ShaderStages::FRAGMENT | wgpu::ShaderStages::COMPUTE;
        let bind_layout = layout(
            device,
            "compose",
            &[
                uniform_entry(0, fragment),
                texture_entry(1, true, fragment),
                texture_entry(2, true, fragment),
                texture_entry(3, true, fragment),
                sampler_entry(4),
                texture_entry(5, false, fragment),
                texture_entry(6, true, fragment),
                sampler_entry(7),
            ],
        );
        let shader = module(device, COMPOSE);
        let pipeline = output_pipeline(
            device,
            Fullscreen {
                label: "compose",
                module: &shader,
                layout: &bind_layout,
                blend: None,
                buffers: &[],
                topology: wgpu::PrimitiveTopology::TriangleList,
            },
        );
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("video"),
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..Default::default()
        });
        Self {
            pipeline,
            bind_layout,
            sampler,
            params: uniform_buffer(device, "compose-params", std::mem::size_of::<ComposeParams>() as u64),
            empty_remap: targets::empty_remap(device),
            bind_group: None,
        }
    }

    /// The bind group layout (group 0 of the fused pass too).
    pub(crate) fn bind_layout(&self) -> &wgpu::BindGroupLayout {
        &self.bind_layout
    }

    /// Writes this frame's parameters and returns the bind group for them
    /// (cached until a bound texture changes).
    pub(crate) fn bind(&mut self, ctx: &GpuContext, inputs: &ComposeInputs<'_>) -> wgpu::BindGroup {
        let ComposeInputs { video, identity_overlay, remap, mode, overlay_drawn, size, generation, .. } = *inputs;
        let mode_ready = remap.is_some_and(|r| r.key.mode == mode);
        let params = ComposeParams {
            format: format_code(video.format),
            undistort_video: u32::from(mode_ready && mode == OutputMode::Undistorted),
            distort_overlay: u32::from(mode_ready && mode == OutputMode::Distorted),
            overlay_visible: u32::from(overlay_drawn),
            output_size: [size.0 as f32, size.1 as f32],
            pad: [0.0; 2],
        };
        ctx.queue.write_buffer(&self.params, 0, bytemuck::bytes_of(&params));
        let overlay_view = match (mode, remap) {
            (OutputMode::Distorted, Some(r)) => &r.overlay.resolved_view,
            _ => identity_overlay,
        };
        let remap_view = remap.map_or(&self.empty_remap, |r| &r.view);
        let key = BindingsKey { generation, remap: remap.is_some(), distorted: mode == OutputMode::Distorted };
        let cached = self.bind_group.as_ref().filter(|(k, _)| *k == key).map(|(_, b)| b.clone());
        let bind_group = cached.unwrap_or_else(|| {
            ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("compose"),
                layout: &self.bind_layout,
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: self.params.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&video.views[0]) },
                    wgpu::BindGroupEntry { binding: 2, resource: wgpu::BindingResource::TextureView(&video.views[1]) },
                    wgpu::BindGroupEntry { binding: 3, resource: wgpu::BindingResource::TextureView(&video.views[2]) },
                    wgpu::BindGroupEntry { binding: 4, resource: wgpu::BindingResource::Sampler(&self.sampler) },
                    wgpu::BindGroupEntry { binding: 5, resource: wgpu::BindingResource::TextureView(remap_view) },
                    wgpu::BindGroupEntry { binding: 6, resource: wgpu::BindingResource::TextureView(overlay_view) },
                    wgpu::BindGroupEntry { binding: 7, resource: wgpu::BindingResource::Sampler(&self.sampler) },
                ],
            })
        });
        self.bind_group = Some((key, bind_group.clone()));
        bind_group
    }

    /// Composes `inputs.video` with the overlay into `inputs.output`.
    pub(crate) fn encode(&mut self, ctx: &GpuContext, encoder: &mut wgpu::CommandEncoder, inputs: ComposeInputs<'_>) {
        let bind_group = self.bind(ctx, &inputs);
        let mut pass = output_pass(encoder, inputs.output, "compose", wgpu::LoadOp::Clear(wgpu::Color::BLACK));
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.draw(0..3, 0..1);
    }
}
