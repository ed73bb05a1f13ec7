//! The software adapters' frame (lavapipe: the "GPU" is the station's own
//! cores): compose, annotations, timecode strip and I420 in one compute pass
//! (`compose_fused.wgsl`), instead of a compose render pass, an annotation
//! pass over it, a strip pass and a compute pass that reads the picture back.
//! The annotations are drawn into a layer of their own (cleared, and only on
//! frames that have any) which the fused pass lays over the composed video.
//!
//! Same pixels as the separate passes: the same `composed` function
//! (`compose_common.wgsl`), the same BT.709 code (`bt709_i420.wgsl`) and
//! strip cells (`timecode_cells.wgsl`); the colour is quantised to 8 bits
//! before conversion as the RGBA output stores it. The only difference is
//! where annotations overlap video: the layer is stored in 8 bits before it is
//! blended (≤ 1 code): `golden_images_of_each_pass` (engine/tests/compositor.rs)
//! renders every golden with both plans and compares their I420.

use bytemuck::{Pod, Zeroable};
use scopecast_shaders::COMPOSE_FUSED;

use crate::compositor::gpu::GpuContext;
use crate::compositor::passes::i420::I420Target;
use crate::compositor::passes::timecode::TimecodeUniform;
use crate::compositor::pipelines::{
    OVERLAY_FORMAT, compute_pipeline, layout, storage_buffer_entry, texture_entry, uniform_buffer, uniform_entry,
};
use crate::compositor::readback::I420Layout;
use crate::compositor::targets;

/// The shader's `Fused` parameters.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct FusedParams {
    width: u32,
    height: u32,
    y_stride: u32,
    u_offset_words: u32,
    v_offset_words: u32,
    annotations: u32,
    stamp: u32,
    store_rgba: u32,
}

/// The fused pass (one per device; its per-size part is [`FusedTarget`]).
pub(crate) struct FusedPass {
    pipeline: wgpu::ComputePipeline,
    bind_layout: wgpu::BindGroupLayout,
    params: wgpu::Buffer,
    strip: wgpu::Buffer,
}

/// The fused pass's per-size part: the annotation layer and the bind group
/// over it, the planes' storage and the output.
pub(crate) struct FusedTarget {
    /// The annotations of this frame, premultiplied, over transparent.
    pub(crate) annotation_layer: wgpu::TextureView,
    bind_group: wgpu::BindGroup,
}

/// One frame's figures for the fused pass.
pub(crate) struct FusedFrame {
    /// Output size, px.
    pub(crate) size: (u32, u32),
    /// The annotation layer was drawn this frame.
    pub(crate) annotations: bool,
    /// Stamp the strip with this capture time (Unix ms).
    pub(crate) timecode_ms: Option<u64>,
    /// Write the RGBA output too (the monitor or a snapshot reads it).
    pub(crate) store_rgba: bool,
}

impl FusedPass {
    /// The pipeline on `device`; `compose_layout` is the compose pass's bind
    /// group layout (group 0, shared with its fragment shader).
    pub(crate) fn new(device: &wgpu::Device, compose_layout: &wgpu::BindGroupLayout) -> Self {
        let compute = wgpu::ShaderStages::COMPUTE;
        let bind_layout = layout(
            device,
            "compose_fused",
            &[
                uniform_entry(0, compute),
                uniform_entry(1, compute),
                texture_entry(2, false, compute),
                storage_buffer_entry(3, compute),
                wgpu::BindGroupLayoutEntry {
                    binding: 4,
                    visibility: compute,
                    ty: wgpu::BindingType::StorageTexture {
                        access: wgpu::StorageTextureAccess::WriteOnly,
                        format: crate::compositor::pipelines::OUTPUT_FORMAT,
                        view_dimension: wgpu::TextureViewDimension::D2,
                    },
                    count: None,
                },
            ],
        );
        let pipeline = compute_pipeline(device, COMPOSE_FUSED, &[Some(compose_layout), Some(&bind_layout)]);
        Self {
            pipeline,
            bind_layout,
            params: uniform_buffer(device, "fused-params", std::mem::size_of::<FusedParams>() as u64),
            strip: uniform_buffer(device, "fused-strip", std::mem::size_of::<TimecodeUniform>() as u64),
        }
    }

    /// The annotation layer and bind group for an `output` (with storage
    /// usage) of `size` px converted into `i420`'s storage.
    pub(crate) fn target(
        &self,
        device: &wgpu::Device,
        output: &wgpu::TextureView,
        i420: &I420Target,
        size: (u32, u32),
    ) -> FusedTarget {
        let usage = wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::TEXTURE_BINDING;
        let layer = targets::texture(device, "annotation-layer", size, OVERLAY_FORMAT, usage, 1);
        let annotation_layer = layer.create_view(&wgpu::TextureViewDescriptor::default());
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("compose_fused"),
            layout: &self.bind_layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: self.params.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: self.strip.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 2, resource: wgpu::BindingResource::TextureView(&annotation_layer) },
                wgpu::BindGroupEntry { binding: 3, resource: i420.storage.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 4, resource: wgpu::BindingResource::TextureView(output) },
            ],
        });
        FusedTarget { annotation_layer, bind_group }
    }

    /// Encodes the fused pass: `compose` is the compose pass's bind group for
    /// this frame (group 0).
    pub(crate) fn encode(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        compose: &wgpu::BindGroup,
        target: &FusedTarget,
        frame: FusedFrame,
    ) {
        let FusedFrame { size, annotations, timecode_ms, store_rgba } = frame;
        let layout = I420Layout::new(size.0, size.1);
        let params = FusedParams {
            width: size.0,
            height: size.1,
            y_stride: layout.y_stride,
            u_offset_words: layout.u_offset() / 4,
            v_offset_words: layout.v_offset() / 4,
            annotations: u32::from(annotations),
            stamp: u32::from(timecode_ms.is_some()),
            store_rgba: u32::from(store_rgba),
        };
        ctx.queue.write_buffer(&self.params, 0, bytemuck::bytes_of(&params));
        let strip = TimecodeUniform::new(timecode_ms.unwrap_or(0), size.1);
        ctx.queue.write_buffer(&self.strip, 0, bytemuck::bytes_of(&strip));
        let mut pass = encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("compose_fused"), timestamp_writes: None });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, compose, &[]);
        pass.set_bind_group(1, &target.bind_group, &[]);
        // 8×8 workgroups, each invocation 8×2 pixels (as the I420 pass).
        pass.dispatch_workgroups(size.0.div_ceil(8).div_ceil(8), size.1.div_ceil(2).div_ceil(8), 1);
    }
}
