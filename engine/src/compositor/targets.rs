//! Textures the compositor renders from and into: the video planes, the
//! overlay target (multisampled colour and depth, resolved), the output, and
//! the remap table.

use super::pipelines::{DEPTH_FORMAT, OUTPUT_FORMAT, OVERLAY_FORMAT};
use super::projection::OverlayViewport;
use super::remap::RemapTable;
use crate::frame::{Frame, PixelFormat};

/// Creates a 2D texture.
pub fn texture(
    device: &wgpu::Device,
    label: &str,
    size: (u32, u32),
    format: wgpu::TextureFormat,
    usage: wgpu::TextureUsages,
    samples: u32,
) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d { width: size.0.max(1), height: size.1.max(1), depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: samples,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage,
        view_formats: &[],
    })
}

fn view(t: &wgpu::Texture) -> wgpu::TextureView {
    t.create_view(&wgpu::TextureViewDescriptor::default())
}

/// The uploaded video frame: up to three planes.
pub struct VideoPlanes {
    /// Format of the frames these planes hold.
    pub format: PixelFormat,
    /// Frame size, px.
    pub size: (u32, u32),
    planes: Vec<wgpu::Texture>,
    /// Views for binding 1..=3 of the compose pass (unused planes are 1×1).
    pub views: [wgpu::TextureView; 3],
}

impl VideoPlanes {
    /// Textures for frames of `format` and `size`.
    pub fn new(device: &wgpu::Device, format: PixelFormat, size: (u32, u32)) -> Self {
        let usage = wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST;
        let chroma = (size.0.div_ceil(2), size.1.div_ceil(2));
        let specs: Vec<((u32, u32), wgpu::TextureFormat)> = match format {
            PixelFormat::Rgba8 => vec![(size, wgpu::TextureFormat::Rgba8Unorm)],
            PixelFormat::I420 => vec![
                (size, wgpu::TextureFormat::R8Unorm),
                (chroma, wgpu::TextureFormat::R8Unorm),
                (chroma, wgpu::TextureFormat::R8Unorm),
            ],
            PixelFormat::Nv12 => vec![(size, wgpu::TextureFormat::R8Unorm), (chroma, wgpu::TextureFormat::Rg8Unorm)],
        };
        let planes: Vec<wgpu::Texture> =
            specs.iter().map(|(s, f)| texture(device, "video-plane", *s, *f, usage, 1)).collect();
        let dummy = || view(&texture(device, "video-unused", (1, 1), wgpu::TextureFormat::R8Unorm, usage, 1));
        let views = [
            planes.first().map_or_else(dummy, view),
            planes.get(1).map_or_else(dummy, view),
            planes.get(2).map_or_else(dummy, view),
        ];
        Self { format, size, planes, views }
    }

    /// Copies the frame's planes to the GPU (strides honoured, no repacking).
    pub fn upload(&self, queue: &wgpu::Queue, frame: &Frame) {
        for (index, (texture, plane)) in self.planes.iter().zip(frame.planes()).enumerate() {
            let (row_bytes, rows) = frame.format().plane_extent(index, frame.width(), frame.height());
            let end = plane.offset + plane.stride * (rows - 1) + row_bytes;
            // Frame::new checked that every plane lies within the bytes.
            let Some(bytes) = frame.bytes().get(plane.offset..end) else { continue };
            queue.write_texture(
                wgpu::TexelCopyTextureInfo {
                    texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d::ZERO,
                    aspect: wgpu::TextureAspect::All,
                },
                bytes,
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(plane.stride as u32),
                    rows_per_image: Some(rows as u32),
                },
                texture.size(),
            );
        }
    }
}

/// The overlay's render target on the ideal image plane.
pub struct OverlayTarget {
    /// Where it sits on the ideal image plane.
    pub viewport: OverlayViewport,
    /// Multisampled colour (`None` without multisampling: draw into `resolved_view`).
    pub msaa_view: Option<wgpu::TextureView>,
    /// Multisampled depth.
    pub depth_view: wgpu::TextureView,
    /// Resolved colour, sampled by the compose pass.
    pub resolved_view: wgpu::TextureView,
}

impl OverlayTarget {
    /// Targets for `viewport` with `samples` per pixel (1 or 4).
    pub fn new(device: &wgpu::Device, viewport: OverlayViewport, samples: u32) -> Self {
        let attach = wgpu::TextureUsages::RENDER_ATTACHMENT;
        let size = viewport.size;
        Self {
            viewport,
            msaa_view: (samples > 1)
                .then(|| view(&texture(device, "overlay-msaa", size, OVERLAY_FORMAT, attach, samples))),
            depth_view: view(&texture(device, "overlay-depth", size, DEPTH_FORMAT, attach, samples)),
            resolved_view: view(&texture(
                device,
                "overlay",
                size,
                OVERLAY_FORMAT,
                attach | wgpu::TextureUsages::TEXTURE_BINDING,
                1,
            )),
        }
    }
}

/// The composited output (`storage`: also written by a compute pass, the fused one).
pub fn output_texture(device: &wgpu::Device, size: (u32, u32), storage: bool) -> wgpu::Texture {
    let mut usage =
        wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_SRC;
    if storage {
        usage |= wgpu::TextureUsages::STORAGE_BINDING;
    }
    texture(device, "composited", size, OUTPUT_FORMAT, usage, 1)
}

/// Uploads a remap table as an `Rg32Float` texture (read with `textureLoad`).
pub fn remap_texture(device: &wgpu::Device, queue: &wgpu::Queue, table: &RemapTable) -> wgpu::TextureView {
    let usage = wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST;
    let t = texture(device, "remap", (table.width, table.height), wgpu::TextureFormat::Rg32Float, usage, 1);
    queue.write_texture(
        wgpu::TexelCopyTextureInfo {
            texture: &t,
            mip_level: 0,
            origin: wgpu::Origin3d::ZERO,
            aspect: wgpu::TextureAspect::All,
        },
        bytemuck::cast_slice(&table.uv),
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(table.width * 8),
            rows_per_image: Some(table.height),
        },
        t.size(),
    );
    view(&t)
}

/// A 1×1 remap texture for when no table is in use.
pub fn empty_remap(device: &wgpu::Device) -> wgpu::TextureView {
    let usage = wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST;
    view(&texture(device, "remap-none", (1, 1), wgpu::TextureFormat::Rg32Float, usage, 1))
}
