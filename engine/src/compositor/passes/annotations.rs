//! Pass 3: the annotations (strokes, arrows, text; see
//! `crate::compositor::annotations` for their shapes), anti-aliased, drawn
//! over the composed picture as instanced quads.

use scopecast_shaders::ANNOTATION;

use crate::compositor::annotations::{MAX_SHAPES, MarkDrawing, ShapeInstance, instances};
use crate::compositor::gpu::GpuContext;
use crate::compositor::pipelines::{
    Fullscreen, PREMULTIPLIED_OVER, layout, module, output_pass, output_pipeline, single_uniform_bind_group,
    uniform_buffer, uniform_entry,
};
use crate::scene::Scene;

/// Initial size of the instance buffer, bytes; it grows to the next power of
/// two when a frame needs more (at most [`MAX_SHAPES`] instances).
const INITIAL_INSTANCE_BYTES: u64 = 64 * 1024;

/// The annotation pass.
pub(crate) struct AnnotationPass {
    pipeline: wgpu::RenderPipeline,
    /// The output size, px (`vec4<f32>`: width, height, 0, 0).
    frame: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    instances: wgpu::Buffer,
}

fn instance_buffer(device: &wgpu::Device, size: u64) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("annotation-instances"),
        size,
        usage: wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

impl AnnotationPass {
    /// The pass's pipeline and buffers on `device`.
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let bind_layout = layout(device, "annotation", &[uniform_entry(0, wgpu::ShaderStages::VERTEX)]);
        let shader = module(device, ANNOTATION);
        let instance_attributes =
            wgpu::vertex_attr_array![0 => Float32x2, 1 => Float32x2, 2 => Float32x2, 3 => Float32x4];
        let pipeline = output_pipeline(
            device,
            Fullscreen {
                label: "annotation",
                module: &shader,
                layout: &bind_layout,
                blend: Some(PREMULTIPLIED_OVER),
                buffers: &[Some(wgpu::VertexBufferLayout {
                    array_stride: std::mem::size_of::<ShapeInstance>() as u64,
                    step_mode: wgpu::VertexStepMode::Instance,
                    attributes: &instance_attributes,
                })],
                topology: wgpu::PrimitiveTopology::TriangleStrip,
            },
        );
        let frame = uniform_buffer(device, "annotation-frame", 16);
        let bind_group = single_uniform_bind_group(device, "annotation", &bind_layout, &frame);
        Self { pipeline, frame, bind_group, instances: instance_buffer(device, INITIAL_INSTANCE_BYTES) }
    }

    /// Draws the scene's annotations visible at `now_ns` (pipeline clock)
    /// onto `output` of `size` px (loaded with `load`: over the picture, or
    /// onto a cleared layer), unless the annotation layer is off; marks on
    /// the anatomy placed by `marks`. Whether anything was drawn (with
    /// nothing to draw, no pass is recorded and `output` is left as it was).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn encode(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        output: &wgpu::TextureView,
        scene: &Scene,
        size: (u32, u32),
        now_ns: u64,
        marks: &MarkDrawing<'_>,
        load: wgpu::LoadOp<wgpu::Color>,
    ) -> bool {
        if !scene.layers.annotations || scene.annotations.is_empty() {
            return false;
        }
        let mut shapes = instances(&scene.annotations, size.0, size.1, now_ns, marks);
        if shapes.is_empty() {
            return false;
        }
        // Bounded GPU memory whatever viewers send: the newest shapes win.
        if shapes.len() > MAX_SHAPES {
            shapes.drain(..shapes.len() - MAX_SHAPES);
        }
        let bytes: &[u8] = bytemuck::cast_slice(&shapes);
        if bytes.len() as u64 > self.instances.size() {
            self.instances = instance_buffer(&ctx.device, (bytes.len() as u64).next_power_of_two());
        }
        ctx.queue.write_buffer(&self.instances, 0, bytes);
        let frame_size = [size.0 as f32, size.1 as f32, 0.0, 0.0];
        ctx.queue.write_buffer(&self.frame, 0, bytemuck::cast_slice(&frame_size));
        let mut pass = output_pass(encoder, output, "annotations", load);
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.set_vertex_buffer(0, self.instances.slice(..bytes.len() as u64));
        pass.draw(0..4, 0..shapes.len() as u32);
        true
    }
}
