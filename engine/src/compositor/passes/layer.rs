//! The CPU plan's GPU part (`PassPlan::Cpu`, software adapters): the anatomy
//! overlay (sampled exactly as the compose pass samples it: 1:1 undistorted,
//! through the remap table distorted) with the annotation layer over it,
//! packed into one premultiplied RGBA8 layer (`compose_layer.wgsl`) and read
//! back, so `cpu_frame` lays it over each video frame. Run only when the
//! layer changes (a new overlay, marks on screen, a new table or size): a
//! still scene costs the GPU nothing per frame.

use bytemuck::{Pod, Zeroable};
use scopecast_shaders::COMPOSE_LAYER;

use crate::compositor::gpu::GpuContext;
use crate::compositor::pipelines::{
    compute_pipeline, layout, storage_buffer_entry, texture_entry, uniform_buffer, uniform_entry,
};

/// The shader's `Layer` parameters.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct LayerParams {
    width: u32,
    height: u32,
    annotations: u32,
    pad: u32,
}

/// The layer pass (one per device; its per-size part is [`LayerTarget`]).
pub(crate) struct LayerPass {
    pipeline: wgpu::ComputePipeline,
    bind_layout: wgpu::BindGroupLayout,
    params: wgpu::Buffer,
}

/// The layer's storage, its readback buffer and the bind group over them.
pub(crate) struct LayerTarget {
    size: (u32, u32),
    storage: wgpu::Buffer,
    staging: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

impl LayerPass {
    /// The pipeline on `device`; `compose_layout` is the compose pass's bind
    /// group layout (group 0).
    pub(crate) fn new(device: &wgpu::Device, compose_layout: &wgpu::BindGroupLayout) -> Self {
        let compute = wgpu::ShaderStages::COMPUTE;
        let bind_layout = layout(
            device,
            "compose_layer",
            &[uniform_entry(0, compute), texture_entry(1, false, compute), storage_buffer_entry(2, compute)],
        );
        let pipeline = compute_pipeline(device, COMPOSE_LAYER, &[Some(compose_layout), Some(&bind_layout)]);
        let params = uniform_buffer(device, "layer-params", std::mem::size_of::<LayerParams>() as u64);
        Self { pipeline, bind_layout, params }
    }

    /// The buffers for a `size` px layer over `annotation_layer`.
    pub(crate) fn target(
        &self,
        device: &wgpu::Device,
        annotation_layer: &wgpu::TextureView,
        size: (u32, u32),
    ) -> LayerTarget {
        let bytes = u64::from(size.0) * u64::from(size.1) * 4;
        let buffer = |label: &str, usage: wgpu::BufferUsages| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        let storage = buffer("layer", wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC);
        let staging = buffer("layer-readback", wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("compose_layer"),
            layout: &self.bind_layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: self.params.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(annotation_layer) },
                wgpu::BindGroupEntry { binding: 2, resource: storage.as_entire_binding() },
            ],
        });
        LayerTarget { size, storage, staging, bind_group }
    }

    /// Encodes the layer into `target` and its copy for readback; `compose`
    /// is the compose pass's bind group for this frame (group 0).
    pub(crate) fn encode(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        compose: &wgpu::BindGroup,
        target: &LayerTarget,
        annotations: bool,
    ) {
        let (width, height) = target.size;
        let params = LayerParams { width, height, annotations: u32::from(annotations), pad: 0 };
        ctx.queue.write_buffer(&self.params, 0, bytemuck::bytes_of(&params));
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("compose_layer"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, compose, &[]);
            pass.set_bind_group(1, &target.bind_group, &[]);
            pass.dispatch_workgroups(width.div_ceil(8), height.div_ceil(8), 1);
        }
        encoder.copy_buffer_to_buffer(&target.storage, 0, &target.staging, 0, target.storage.size());
    }
}

impl LayerTarget {
    /// Waits for the submitted layer and copies it into `out` (packed RGBA,
    /// premultiplied); returns whether any pixel is not fully transparent,
    /// or `None` when the readback failed (a lost device).
    pub(crate) fn read_into(&self, ctx: &GpuContext, out: &mut Vec<u32>) -> Option<bool> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.staging.slice(..).map_async(wgpu::MapMode::Read, move |result| {
            let _ = tx.send(result.is_ok());
        });
        let _ = ctx.device.poll(wgpu::PollType::wait_indefinitely());
        if !rx.recv().unwrap_or(false) {
            return None;
        }
        let any = {
            let mapped = self.staging.slice(..).get_mapped_range().ok()?;
            out.clear();
            out.extend(mapped.chunks_exact(4).map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]])));
            out.iter().any(|&p| p != 0)
        };
        self.staging.unmap();
        Some(any)
    }
}
