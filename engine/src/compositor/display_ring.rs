//! The station monitor's frames: each composited picture is copied on the
//! GPU (no CPU copy) into one of [`DISPLAY_RING`] textures, and the newest is
//! handed to the monitor's presenter once. Reads and writes go through one
//! queue, so they happen in submission order; with one texture being
//! written, one shown and one spare, a slow monitor never holds up the
//! frame loop (it simply sees newer frames).

use super::pipelines::OUTPUT_FORMAT;
use super::targets;
use crate::frame::Frame;

/// Textures the monitor's frames rotate through.
pub(crate) const DISPLAY_RING: usize = 3;

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

/// The monitor's texture ring.
#[derive(Default)]
pub(crate) struct DisplayRing {
    textures: Vec<wgpu::Texture>,
    /// Index (modulo the ring) of the texture the next frame is copied into.
    next: usize,
    /// The newest frame, not yet taken.
    newest: Option<DisplayFrame>,
}

impl DisplayRing {
    /// Encodes a copy of `output` (the composited `frame`, `size` px) into
    /// the next texture of the ring, which becomes the newest frame.
    pub(crate) fn encode_copy(
        &mut self,
        device: &wgpu::Device,
        encoder: &mut wgpu::CommandEncoder,
        output: &wgpu::Texture,
        frame: &Frame,
        size: (u32, u32),
    ) {
        if self.textures.first().is_none_or(|t| (t.width(), t.height()) != size) {
            let usage = wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::COPY_DST
                | wgpu::TextureUsages::COPY_SRC
                | wgpu::TextureUsages::RENDER_ATTACHMENT;
            self.textures =
                (0..DISPLAY_RING).map(|_| targets::texture(device, "display", size, OUTPUT_FORMAT, usage, 1)).collect();
        }
        let target = &self.textures[self.next % self.textures.len()];
        self.next = self.next.wrapping_add(1);
        let extent = wgpu::Extent3d { width: size.0, height: size.1, depth_or_array_layers: 1 };
        encoder.copy_texture_to_texture(output.as_image_copy(), target.as_image_copy(), extent);
        self.newest = Some(DisplayFrame {
            texture: target.clone(),
            size,
            capture_time_ns: frame.capture_time_ns,
            sequence: frame.sequence,
        });
    }

    /// The newest frame, once.
    pub(crate) fn take(&mut self) -> Option<DisplayFrame> {
        self.newest.take()
    }
}
