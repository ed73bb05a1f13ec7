//! Drawing onto the monitor's window surface: the composited texture
//! letterboxed into the window (1:1 when the window has the frame's size),
//! then the HUD image blended over it. The surface is configured for the
//! lowest latency it offers: Mailbox, else Immediate, else Fifo, always with
//! at most one frame queued.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

use crate::compositor::DisplayFrame;
use crate::compositor::gpu::GpuContext;

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct Quad {
    rect: [f32; 4],
    window: [f32; 2],
    _pad: [f32; 2],
}

/// The lowest-latency present mode among `modes`.
pub fn lowest_latency_mode(modes: &[wgpu::PresentMode]) -> wgpu::PresentMode {
    [wgpu::PresentMode::Mailbox, wgpu::PresentMode::Immediate]
        .into_iter()
        .find(|m| modes.contains(m))
        .unwrap_or(wgpu::PresentMode::Fifo)
}

/// The largest rectangle of the frame's aspect inside the window, centred:
/// `(x, y, width, height)` in window pixels; 1:1 when it fits exactly.
pub fn letterbox(frame: (u32, u32), window: (u32, u32)) -> [f32; 4] {
    let (fw, fh) = (frame.0.max(1) as f32, frame.1.max(1) as f32);
    let (ww, wh) = (window.0.max(1) as f32, window.1.max(1) as f32);
    let scale = (ww / fw).min(wh / fh);
    let (w, h) = (fw * scale, fh * scale);
    [((ww - w) / 2.0).floor(), ((wh - h) / 2.0).floor(), w, h]
}

/// The window surface and what draws on it.
pub struct Presenter {
    ctx: GpuContext,
    surface: wgpu::Surface<'static>,
    config: wgpu::SurfaceConfiguration,
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    nearest: wgpu::Sampler,
    linear: wgpu::Sampler,
    frame_quad: wgpu::Buffer,
    hud_quad: wgpu::Buffer,
    hud: Option<(wgpu::Texture, (u32, u32))>,
    /// The present mode in use.
    pub present_mode: wgpu::PresentMode,
}

fn quad_buffer(device: &wgpu::Device, label: &str) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: std::mem::size_of::<Quad>() as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

impl Presenter {
    /// A surface for `window` on the compositor's device.
    pub fn new(ctx: GpuContext, window: Arc<winit::window::Window>) -> Result<Self, String> {
        let surface = ctx.instance.create_surface(window.clone()).map_err(|e| format!("window surface: {e}"))?;
        let caps = surface.get_capabilities(&ctx.adapter);
        // The composited pixels are already display-encoded: a non-sRGB format shows them as they are.
        let format = caps
            .formats
            .iter()
            .copied()
            .find(|f| matches!(f, wgpu::TextureFormat::Bgra8Unorm | wgpu::TextureFormat::Rgba8Unorm))
            .or_else(|| caps.formats.first().copied())
            .ok_or_else(|| format!("the surface offers no format on {}", ctx.describe()))?;
        let present_mode = lowest_latency_mode(&caps.present_modes);
        let size = window.inner_size();
        let config = wgpu::SurfaceConfiguration {
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
            format,
            width: size.width.max(1),
            height: size.height.max(1),
            present_mode,
            desired_maximum_frame_latency: 1,
            alpha_mode: caps.alpha_modes.first().copied().unwrap_or(wgpu::CompositeAlphaMode::Auto),
            view_formats: Vec::new(),
            color_space: wgpu::SurfaceColorSpace::default(),
        };
        surface.configure(&ctx.device, &config);
        let device = &ctx.device;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(scopecast_shaders::DISPLAY.name),
            source: wgpu::ShaderSource::Wgsl(scopecast_shaders::DISPLAY.source.into()),
        });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("display"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::VERTEX,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: true },
                        view_dimension: wgpu::TextureViewDimension::D2,
                        multisampled: false,
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 2,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("display"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("display"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_main"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_main"),
                compilation_options: Default::default(),
                targets: &[Some(wgpu::ColorTargetState {
                    format,
                    blend: Some(wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING),
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            multiview_mask: None,
            cache: None,
        });
        let sampler = |filter| {
            device.create_sampler(&wgpu::SamplerDescriptor {
                mag_filter: filter,
                min_filter: filter,
                ..Default::default()
            })
        };
        let (nearest, linear) = (sampler(wgpu::FilterMode::Nearest), sampler(wgpu::FilterMode::Linear));
        let frame_quad = quad_buffer(device, "display-frame-quad");
        let hud_quad = quad_buffer(device, "display-hud-quad");
        Ok(Self {
            ctx,
            surface,
            config,
            pipeline,
            layout,
            nearest,
            linear,
            frame_quad,
            hud_quad,
            hud: None,
            present_mode,
        })
    }

    /// Follows a window resize.
    pub fn resize(&mut self, width: u32, height: u32) {
        if width > 0 && height > 0 && (width, height) != (self.config.width, self.config.height) {
            self.config.width = width;
            self.config.height = height;
            self.surface.configure(&self.ctx.device, &self.config);
        }
    }

    /// Replaces the HUD image (RGBA8, premultiplied), or removes it.
    pub fn set_hud(&mut self, image: Option<(&[u8], (u32, u32))>) {
        let Some((pixels, size)) = image else {
            self.hud = None;
            return;
        };
        if self.hud.as_ref().is_none_or(|(_, s)| *s != size) {
            let texture = self.ctx.device.create_texture(&wgpu::TextureDescriptor {
                label: Some("hud"),
                size: wgpu::Extent3d { width: size.0, height: size.1, depth_or_array_layers: 1 },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba8Unorm,
                usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            });
            self.hud = Some((texture, size));
        }
        if let Some((texture, _)) = &self.hud {
            self.ctx.queue.write_texture(
                texture.as_image_copy(),
                pixels,
                wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(size.0 * 4), rows_per_image: None },
                wgpu::Extent3d { width: size.0, height: size.1, depth_or_array_layers: 1 },
            );
        }
    }

    fn bind(&self, quad: &wgpu::Buffer, texture: &wgpu::Texture, sampler: &wgpu::Sampler) -> wgpu::BindGroup {
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        self.ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("display"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: quad.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&view) },
                wgpu::BindGroupEntry { binding: 2, resource: wgpu::BindingResource::Sampler(sampler) },
            ],
        })
    }

    /// Draws `frame` and the HUD and presents. Returns false when the surface
    /// had no image to give (occluded, timed out): the frame is skipped.
    pub fn present(&mut self, frame: &DisplayFrame) -> bool {
        let texture = match self.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(t) | wgpu::CurrentSurfaceTexture::Suboptimal(t) => t,
            wgpu::CurrentSurfaceTexture::Outdated | wgpu::CurrentSurfaceTexture::Lost => {
                self.surface.configure(&self.ctx.device, &self.config);
                return false;
            }
            _ => return false,
        };
        let window = (self.config.width, self.config.height);
        let rect = letterbox(frame.size, window);
        let window_f = [window.0 as f32, window.1 as f32];
        let write = |buffer: &wgpu::Buffer, rect: [f32; 4]| {
            self.ctx.queue.write_buffer(
                buffer,
                0,
                bytemuck::bytes_of(&Quad { rect, window: window_f, _pad: [0.0; 2] }),
            );
        };
        write(&self.frame_quad, rect);
        // 1:1 shows the stream's own pixels; scaled, a bilinear filter.
        let one_to_one = (rect[2] - frame.size.0 as f32).abs() < 0.5 && (rect[3] - frame.size.1 as f32).abs() < 0.5;
        let frame_group =
            self.bind(&self.frame_quad, &frame.texture, if one_to_one { &self.nearest } else { &self.linear });
        let hud_group = self.hud.as_ref().map(|(hud, size)| {
            write(&self.hud_quad, [8.0, 8.0, size.0 as f32, size.1 as f32]);
            self.bind(&self.hud_quad, hud, &self.nearest)
        });
        let view = texture.texture.create_view(&wgpu::TextureViewDescriptor::default());
        let mut encoder =
            self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("display") });
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("display"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &view,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                depth_stencil_attachment: None,
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &frame_group, &[]);
            pass.draw(0..6, 0..1);
            if let Some(group) = &hud_group {
                pass.set_bind_group(0, group, &[]);
                pass.draw(0..6, 0..1);
            }
        }
        self.ctx.queue.submit([encoder.finish()]);
        self.ctx.queue.present(texture);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_then_immediate_then_fifo() {
        use wgpu::PresentMode::*;
        assert_eq!(lowest_latency_mode(&[Fifo, Immediate, Mailbox]), Mailbox);
        assert_eq!(lowest_latency_mode(&[Fifo, Immediate]), Immediate);
        assert_eq!(lowest_latency_mode(&[Fifo]), Fifo);
    }

    #[test]
    fn letterbox_is_one_to_one_at_the_frame_size_and_centred_otherwise() {
        assert_eq!(letterbox((1280, 720), (1280, 720)), [0.0, 0.0, 1280.0, 720.0]);
        assert_eq!(letterbox((1280, 720), (1920, 1200)), [0.0, 60.0, 1920.0, 1080.0]);
        assert_eq!(letterbox((1280, 720), (1000, 1000)), [0.0, 218.0, 1000.0, 562.5]);
    }
}
