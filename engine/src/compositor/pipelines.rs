//! Render and compute pipelines of the compositor, created once per device.

use scopecast_shaders::{ANNOTATION, COMPOSE, MESH, RGBA_TO_I420, Shader, TIMECODE};

/// Format of the composited output (the monitor, the encoder input, snapshots).
/// Unorm, not sRGB: pixel values pass through unchanged from the camera's
/// gamma-encoded video, and blending happens on those encoded values.
pub const OUTPUT_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;
/// Format of the overlay target (premultiplied alpha).
pub const OVERLAY_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;
/// Depth format of the overlay pass.
pub const DEPTH_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Depth32Float;
/// Default multisampling of the overlay pass (edges anti-aliased).
pub const DEFAULT_MSAA_SAMPLES: u32 = 4;

/// Premultiplied-alpha "over" blending.
const PREMULTIPLIED_OVER: wgpu::BlendState = wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING;

/// Every pipeline and layout (crate-internal: the compositor owns them).
#[derive(Debug)]
pub(crate) struct Pipelines {
    pub(crate) compose: wgpu::RenderPipeline,
    pub(crate) compose_layout: wgpu::BindGroupLayout,
    pub(crate) mesh_solid: wgpu::RenderPipeline,
    pub(crate) mesh_wireframe: wgpu::RenderPipeline,
    pub(crate) mesh_layout: wgpu::BindGroupLayout,
    pub(crate) annotation: wgpu::RenderPipeline,
    pub(crate) annotation_layout: wgpu::BindGroupLayout,
    pub(crate) timecode: wgpu::RenderPipeline,
    pub(crate) timecode_layout: wgpu::BindGroupLayout,
    pub(crate) i420: wgpu::ComputePipeline,
    pub(crate) i420_layout: wgpu::BindGroupLayout,
}

fn module(device: &wgpu::Device, shader: Shader) -> wgpu::ShaderModule {
    device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(shader.name),
        source: wgpu::ShaderSource::Wgsl(shader.source.into()),
    })
}

fn uniform_entry(binding: u32, visibility: wgpu::ShaderStages) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

fn texture_entry(binding: u32, filterable: bool, visibility: wgpu::ShaderStages) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility,
        ty: wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Float { filterable },
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        },
        count: None,
    }
}

fn sampler_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
        count: None,
    }
}

fn layout(device: &wgpu::Device, label: &str, entries: &[wgpu::BindGroupLayoutEntry]) -> wgpu::BindGroupLayout {
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(label), entries })
}

struct Fullscreen<'a> {
    label: &'a str,
    module: &'a wgpu::ShaderModule,
    layout: &'a wgpu::BindGroupLayout,
    blend: Option<wgpu::BlendState>,
    buffers: &'a [Option<wgpu::VertexBufferLayout<'a>>],
    topology: wgpu::PrimitiveTopology,
}

fn output_pipeline(device: &wgpu::Device, p: Fullscreen<'_>) -> wgpu::RenderPipeline {
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(p.label),
        bind_group_layouts: &[Some(p.layout)],
        immediate_size: 0,
    });
    device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some(p.label),
        layout: Some(&pipeline_layout),
        vertex: wgpu::VertexState {
            module: p.module,
            entry_point: Some("vs_main"),
            compilation_options: Default::default(),
            buffers: p.buffers,
        },
        primitive: wgpu::PrimitiveState { topology: p.topology, ..Default::default() },
        depth_stencil: None,
        multisample: wgpu::MultisampleState::default(),
        fragment: Some(wgpu::FragmentState {
            module: p.module,
            entry_point: Some("fs_main"),
            compilation_options: Default::default(),
            targets: &[Some(wgpu::ColorTargetState {
                format: OUTPUT_FORMAT,
                blend: p.blend,
                write_mask: wgpu::ColorWrites::ALL,
            })],
        }),
        multiview_mask: None,
        cache: None,
    })
}

fn mesh_pipeline(
    device: &wgpu::Device,
    samples: u32,
    module: &wgpu::ShaderModule,
    layout: &wgpu::BindGroupLayout,
    topology: wgpu::PrimitiveTopology,
) -> wgpu::RenderPipeline {
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("mesh"),
        bind_group_layouts: &[Some(layout)],
        immediate_size: 0,
    });
    let attributes = wgpu::vertex_attr_array![0 => Float32x3, 1 => Float32x3];
    device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some("mesh"),
        layout: Some(&pipeline_layout),
        vertex: wgpu::VertexState {
            module,
            entry_point: Some("vs_main"),
            compilation_options: Default::default(),
            buffers: &[Some(wgpu::VertexBufferLayout {
                array_stride: 24,
                step_mode: wgpu::VertexStepMode::Vertex,
                attributes: &attributes,
            })],
        },
        // Organ surfaces may be open: draw both faces.
        primitive: wgpu::PrimitiveState { topology, cull_mode: None, ..Default::default() },
        depth_stencil: Some(wgpu::DepthStencilState {
            format: DEPTH_FORMAT,
            depth_write_enabled: Some(true),
            depth_compare: Some(wgpu::CompareFunction::LessEqual),
            stencil: wgpu::StencilState::default(),
            bias: wgpu::DepthBiasState::default(),
        }),
        multisample: wgpu::MultisampleState { count: samples, ..Default::default() },
        fragment: Some(wgpu::FragmentState {
            module,
            entry_point: Some("fs_main"),
            compilation_options: Default::default(),
            targets: &[Some(wgpu::ColorTargetState {
                format: OVERLAY_FORMAT,
                blend: Some(PREMULTIPLIED_OVER),
                write_mask: wgpu::ColorWrites::ALL,
            })],
        }),
        multiview_mask: None,
        cache: None,
    })
}

impl Pipelines {
    /// Creates every pipeline on `device`; the overlay with `msaa_samples` (1 or 4).
    pub fn new(device: &wgpu::Device, msaa_samples: u32) -> Self {
        let fragment = wgpu::ShaderStages::FRAGMENT;
        let compose_layout = layout(
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
        let compose_module = module(device, COMPOSE);
        let compose = output_pipeline(
            device,
            Fullscreen {
                label: "compose",
                module: &compose_module,
                layout: &compose_layout,
                blend: None,
                buffers: &[],
                topology: wgpu::PrimitiveTopology::TriangleList,
            },
        );

        let mesh_layout = layout(device, "mesh", &[uniform_entry(0, wgpu::ShaderStages::VERTEX_FRAGMENT)]);
        let mesh_module = module(device, MESH);
        let mesh_solid =
            mesh_pipeline(device, msaa_samples, &mesh_module, &mesh_layout, wgpu::PrimitiveTopology::TriangleList);
        let mesh_wireframe =
            mesh_pipeline(device, msaa_samples, &mesh_module, &mesh_layout, wgpu::PrimitiveTopology::LineList);

        let annotation_layout = layout(device, "annotation", &[uniform_entry(0, wgpu::ShaderStages::VERTEX)]);
        let annotation_module = module(device, ANNOTATION);
        let instance_attributes =
            wgpu::vertex_attr_array![0 => Float32x2, 1 => Float32x2, 2 => Float32x2, 3 => Float32x4];
        let annotation = output_pipeline(
            device,
            Fullscreen {
                label: "annotation",
                module: &annotation_module,
                layout: &annotation_layout,
                blend: Some(PREMULTIPLIED_OVER),
                buffers: &[Some(wgpu::VertexBufferLayout {
                    array_stride: std::mem::size_of::<super::annotations::ShapeInstance>() as u64,
                    step_mode: wgpu::VertexStepMode::Instance,
                    attributes: &instance_attributes,
                })],
                topology: wgpu::PrimitiveTopology::TriangleStrip,
            },
        );

        let timecode_layout = layout(device, "timecode", &[uniform_entry(0, fragment)]);
        let timecode_module = module(device, TIMECODE);
        let timecode = output_pipeline(
            device,
            Fullscreen {
                label: "timecode",
                module: &timecode_module,
                layout: &timecode_layout,
                blend: None,
                buffers: &[],
                topology: wgpu::PrimitiveTopology::TriangleList,
            },
        );

        let compute = wgpu::ShaderStages::COMPUTE;
        let i420_layout = layout(
            device,
            "rgba_to_i420",
            &[
                uniform_entry(0, compute),
                texture_entry(1, false, compute),
                wgpu::BindGroupLayoutEntry {
                    binding: 2,
                    visibility: compute,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: false },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
            ],
        );
        let i420_module = module(device, RGBA_TO_I420);
        let i420_pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("rgba_to_i420"),
            bind_group_layouts: &[Some(&i420_layout)],
            immediate_size: 0,
        });
        let i420 = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("rgba_to_i420"),
            layout: Some(&i420_pipeline_layout),
            module: &i420_module,
            entry_point: Some("cs_main"),
            compilation_options: Default::default(),
            cache: None,
        });
        Self {
            compose,
            compose_layout,
            mesh_solid,
            mesh_wireframe,
            mesh_layout,
            annotation,
            annotation_layout,
            timecode,
            timecode_layout,
            i420,
            i420_layout,
        }
    }
}
