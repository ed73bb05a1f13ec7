//! Pass 5: RGBA → I420 (BT.709 limited range, `rgba_to_i420.wgsl`) as a
//! compute pass into a storage buffer, then a copy into a free staging
//! buffer of the readback ring (`crate::compositor::readback`), which the
//! encoder's frames are read from without the frame loop waiting.

use bytemuck::{Pod, Zeroable};
use scopecast_shaders::RGBA_TO_I420;

use crate::compositor::gpu::GpuContext;
use crate::compositor::pipelines::{
    compute_pipeline, layout, storage_buffer_entry, texture_entry, uniform_buffer, uniform_entry,
};
use crate::compositor::readback::{I420Layout, I420Ring};

/// The shader's parameters (`rgba_to_i420.wgsl`); offsets in 32-bit words.
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

/// The conversion pass (one per device; its per-size part is [`I420Target`]).
pub(crate) struct I420Pass {
    pipeline: wgpu::ComputePipeline,
    bind_layout: wgpu::BindGroupLayout,
    params: wgpu::Buffer,
}

/// What the pass needs for one output size: the planes' storage, its bind
/// group (reading the composited output) and the readback ring.
pub(crate) struct I420Target {
    /// The planes as the conversion writes them (the fused pass writes them too).
    pub(crate) storage: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    /// The staging buffers the planes are copied into and mapped from.
    pub(crate) ring: I420Ring,
}

impl I420Pass {
    /// The pass's pipeline and parameter buffer on `device`.
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let compute = wgpu::ShaderStages::COMPUTE;
        let bind_layout = layout(
            device,
            "rgba_to_i420",
            &[uniform_entry(0, compute), texture_entry(1, false, compute), storage_buffer_entry(2, compute)],
        );
        let pipeline = compute_pipeline(device, RGBA_TO_I420, &[Some(&bind_layout)]);
        let params = uniform_buffer(device, "i420-params", std::mem::size_of::<I420Params>() as u64);
        Self { pipeline, bind_layout, params }
    }

    /// The storage, bind group and ring for converting `output` of `size` px.
    pub(crate) fn target(&self, ctx: &GpuContext, output: &wgpu::TextureView, size: (u32, u32)) -> I420Target {
        let device = &ctx.device;
        let layout = I420Layout::new(size.0, size.1);
        let storage = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("i420-planes"),
            size: layout.size(),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("rgba_to_i420"),
            layout: &self.bind_layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: self.params.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(output) },
                wgpu::BindGroupEntry { binding: 2, resource: storage.as_entire_binding() },
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
        ctx.queue.write_buffer(&self.params, 0, bytemuck::bytes_of(&params));
        I420Target { storage, bind_group, ring: I420Ring::new(device, layout) }
    }

    /// Encodes the conversion of a `size` px output and its copy into a free
    /// staging buffer, which it returns; `None` when every staging buffer is
    /// still in flight (the ring counts the skip).
    pub(crate) fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        target: &mut I420Target,
        size: (u32, u32),
    ) -> Option<wgpu::Buffer> {
        let staging = target.ring.acquire()?;
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("rgba_to_i420"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &target.bind_group, &[]);
            // 8×8 workgroups, each invocation converting 8×2 pixels.
            pass.dispatch_workgroups(size.0.div_ceil(8).div_ceil(8), size.1.div_ceil(2).div_ceil(8), 1);
        }
        encoder.copy_buffer_to_buffer(&target.storage, 0, &staging, 0, target.ring.layout().size());
        Some(staging)
    }

    /// Encodes only the copy of the planes (written by the fused pass) into a
    /// free staging buffer, which it returns; `None` when none is free.
    pub(crate) fn encode_copy(encoder: &mut wgpu::CommandEncoder, target: &mut I420Target) -> Option<wgpu::Buffer> {
        let staging = target.ring.acquire()?;
        encoder.copy_buffer_to_buffer(&target.storage, 0, &staging, 0, target.ring.layout().size());
        Some(staging)
    }
}
