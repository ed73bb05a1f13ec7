//! GPU → CPU copies of composited frames.
//!
//! The I420 ring: each frame's I420 planes are copied into one of
//! [`RING_SLOTS`] staging buffers and mapped asynchronously; finished maps are
//! collected on later frames with a non-blocking poll, so the frame loop never
//! waits on a map. Drop policy: when every slot is still in flight, the new
//! frame's readback is skipped and counted.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::frame::{Frame, FrameContent, FrameStamp, PixelFormat, Plane};
use crate::pool::BufferPool;

/// Staging buffers in flight at most.
pub const RING_SLOTS: usize = 3;

const PENDING: u8 = 0;
const MAPPED: u8 = 1;
const FAILED: u8 = 2;

/// Byte layout of the I420 planes the compute pass writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct I420Layout {
    /// Frame width, px.
    pub width: u32,
    /// Frame height, px.
    pub height: u32,
    /// Bytes per Y row (width rounded up to 8).
    pub y_stride: u32,
    /// Rows of the Y plane (height rounded up to 2).
    pub y_rows: u32,
}

impl I420Layout {
    /// The layout for a `width`×`height` frame.
    pub fn new(width: u32, height: u32) -> Self {
        Self { width, height, y_stride: width.div_ceil(8) * 8, y_rows: height.div_ceil(2) * 2 }
    }

    /// Byte offset of the U plane.
    pub fn u_offset(&self) -> u32 {
        self.y_stride * self.y_rows
    }

    /// Byte offset of the V plane.
    pub fn v_offset(&self) -> u32 {
        self.u_offset() + self.y_stride / 2 * self.y_rows / 2
    }

    /// Total bytes.
    pub fn size(&self) -> u64 {
        u64::from(self.v_offset() + self.y_stride / 2 * self.y_rows / 2)
    }

    /// The frame's planes.
    pub fn planes(&self) -> Vec<Plane> {
        let chroma = (self.y_stride / 2) as usize;
        vec![
            Plane { offset: 0, stride: self.y_stride as usize },
            Plane { offset: self.u_offset() as usize, stride: chroma },
            Plane { offset: self.v_offset() as usize, stride: chroma },
        ]
    }
}

struct InFlight {
    buffer: wgpu::Buffer,
    state: Arc<AtomicU8>,
    stamp: FrameStamp,
    content: FrameContent,
}

/// The ring of I420 staging buffers.
pub struct I420Ring {
    layout: I420Layout,
    idle: Vec<wgpu::Buffer>,
    in_flight: VecDeque<InFlight>,
    pool: BufferPool,
    /// Frames whose readback was dropped: every slot was busy.
    pub skipped: u64,
}

impl I420Ring {
    /// A ring for frames of `layout`.
    pub fn new(device: &wgpu::Device, layout: I420Layout) -> Self {
        let idle = (0..RING_SLOTS)
            .map(|i| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("i420-staging-{i}")),
                    size: layout.size(),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        Self { layout, idle, in_flight: VecDeque::new(), pool: BufferPool::new(RING_SLOTS + 2), skipped: 0 }
    }

    /// The layout this ring reads.
    pub fn layout(&self) -> I420Layout {
        self.layout
    }

    /// Takes an idle staging buffer for the next frame, or `None` (and counts
    /// a skip) when all are in flight.
    pub fn acquire(&mut self) -> Option<wgpu::Buffer> {
        let buffer = self.idle.pop();
        if buffer.is_none() {
            self.skipped += 1;
        }
        buffer
    }

    /// Starts mapping `buffer` (after the copy into it was submitted).
    pub fn start_map(&mut self, buffer: wgpu::Buffer, stamp: FrameStamp, content: FrameContent) {
        let state = Arc::new(AtomicU8::new(PENDING));
        let flag = state.clone();
        buffer.slice(..).map_async(wgpu::MapMode::Read, move |result| {
            flag.store(if result.is_ok() { MAPPED } else { FAILED }, Ordering::Release);
        });
        self.in_flight.push_back(InFlight { buffer, state, stamp, content });
    }

    /// Frames whose maps have finished, oldest first; never blocks (the
    /// caller polls the device first).
    pub fn collect(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(front) = self.in_flight.front() {
            match front.state.load(Ordering::Acquire) {
                PENDING => break,
                state => {
                    let Some(done) = self.in_flight.pop_front() else { break };
                    if state == MAPPED {
                        out.extend(self.frame_from(&done));
                        done.buffer.unmap();
                    }
                    self.idle.push(done.buffer);
                }
            }
        }
        out
    }

    /// Readbacks in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether any readback is still in flight.
    pub fn busy(&self) -> bool {
        !self.in_flight.is_empty()
    }

    fn frame_from(&self, done: &InFlight) -> Option<Frame> {
        let mapped = done.buffer.slice(..).get_mapped_range().ok()?;
        let mut bytes = self.pool.take(mapped.len());
        bytes.as_mut_slice().copy_from_slice(&mapped);
        drop(mapped);
        let l = self.layout;
        Frame::new(
            PixelFormat::I420,
            l.width,
            l.height,
            l.planes(),
            Arc::new(bytes),
            done.stamp.clone(),
            done.content.clone(),
        )
        .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_pad_to_whole_blocks() {
        let l = I420Layout::new(1280, 720);
        assert_eq!((l.y_stride, l.y_rows, l.size()), (1280, 720, 1280 * 720 * 3 / 2));
        let odd = I420Layout::new(1918, 1081);
        assert_eq!((odd.y_stride, odd.y_rows), (1920, 1082));
        assert_eq!(odd.planes()[1].stride, 960);
    }
}
