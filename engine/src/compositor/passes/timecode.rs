//! Pass 4: the timecode strip (the capture wall clock as black and white
//! cells, see `crate::timecode`), drawn last over everything in the
//! bottom-left corner so glass-to-glass latency can be read off any picture.

use bytemuck::{Pod, Zeroable};
use scopecast_shaders::TIMECODE;

use crate::compositor::gpu::GpuContext;
use crate::compositor::pipelines::{
    Fullscreen, layout, module, output_pass, output_pipeline, single_uniform_bind_group, uniform_buffer, uniform_entry,
};
use crate::timecode::{CELLS, cell_size_px};

/// The shader's `Timecode` (`timecode_cells.wgsl`; the fused pass binds it too).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct TimecodeUniform {
    /// Cell side, px.
    cell: u32,
    /// Output height, px.
    height: u32,
    /// Bits 32..36 of the capture wall time, ms.
    high_bits: u32,
    /// Bits 0..32 of the capture wall time, ms.
    low_bits: u32,
}

impl TimecodeUniform {
    /// The strip of `capture_wall_ms` (Unix ms) on an output `height` px high.
    pub(crate) fn new(capture_wall_ms: u64, height: u32) -> Self {
        Self {
            cell: cell_size_px(height),
            height,
            high_bits: ((capture_wall_ms >> 32) & 0xf) as u32,
            low_bits: (capture_wall_ms & 0xffff_ffff) as u32,
        }
    }
}

/// The timecode pass.
pub(crate) struct TimecodePass {
    pipeline: wgpu::RenderPipeline,
    params: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

impl TimecodePass {
    /// The pass's pipeline and buffers on `device`.
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let bind_layout = layout(device, "timecode", &[uniform_entry(0, wgpu::ShaderStages::FRAGMENT)]);
        let shader = module(device, TIMECODE);
        let pipeline = output_pipeline(
            device,
            Fullscreen {
                label: "timecode",
                module: &shader,
                layout: &bind_layout,
                blend: None,
                buffers: &[],
                topology: wgpu::PrimitiveTopology::TriangleList,
            },
        );
        let params = uniform_buffer(device, "timecode-params", std::mem::size_of::<TimecodeUniform>() as u64);
        let bind_group = single_uniform_bind_group(device, "timecode", &bind_layout, &params);
        Self { pipeline, params, bind_group }
    }

    /// Stamps `capture_wall_ms` (Unix ms) onto `output` of `size` px.
    pub(crate) fn encode(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        output: &wgpu::TextureView,
        capture_wall_ms: u64,
        size: (u32, u32),
    ) {
        let params = TimecodeUniform::new(capture_wall_ms, size.1);
        let cell = params.cell;
        ctx.queue.write_buffer(&self.params, 0, bytemuck::bytes_of(&params));
        let strip_width = (cell * CELLS).min(size.0);
        let strip_height = cell.min(size.1);
        let mut pass = output_pass(encoder, output, "timecode", wgpu::LoadOp::Load);
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let top = size.1 - strip_height;
        pass.set_viewport(0.0, top as f32, strip_width as f32, strip_height as f32, 0.0, 1.0);
        pass.set_scissor_rect(0, top, strip_width, strip_height);
        pass.draw(0..3, 0..1);
    }
}
