//! Frames to pictures: conversion of any pipeline frame to packed RGBA, and
//! PNG snapshots (for the operator's snapshot command and for tests that
//! look at what a source delivers).

use std::path::Path;

use thiserror::Error;

use crate::frame::{Frame, PixelFormat};

/// Why a snapshot could not be written.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// Encoding or writing the PNG failed.
    #[error("cannot write snapshot {path}: {source}")]
    Write {
        /// Target file.
        path: String,
        /// The encoder's error.
        source: image::ImageError,
    },
}

/// BT.601 limited-range YCbCr to RGB (ITU-R BT.601-7, the matrix GStreamer
/// and browsers use for SD and for most H.264 streams without colour info).
fn rgb_from_yuv(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = (f32::from(y) - 16.0) * 1.164;
    let d = f32::from(u) - 128.0;
    let e = f32::from(v) - 128.0;
    let clamp = |x: f32| x.round().clamp(0.0, 255.0) as u8;
    [clamp(c + 1.596 * e), clamp(c - 0.392 * d - 0.813 * e), clamp(c + 2.017 * d)]
}

/// The frame's pixels as packed RGBA (width·height·4 bytes, no padding).
pub fn to_rgba(frame: &Frame) -> Vec<u8> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let mut out = Vec::with_capacity(w * h * 4);
    for y in 0..h {
        match frame.format() {
            PixelFormat::Rgba8 => out.extend_from_slice(frame.row(0, y).unwrap_or(&[])),
            PixelFormat::I420 | PixelFormat::Nv12 => {
                let luma = frame.row(0, y).unwrap_or(&[]);
                let (u_row, v_row) = match frame.format() {
                    PixelFormat::I420 => (frame.row(1, y / 2).unwrap_or(&[]), frame.row(2, y / 2).unwrap_or(&[])),
                    _ => (frame.row(1, y / 2).unwrap_or(&[]), &[][..]),
                };
                for x in 0..w {
                    let (u, v) = if frame.format() == PixelFormat::I420 {
                        (u_row.get(x / 2), v_row.get(x / 2))
                    } else {
                        (u_row.get(x / 2 * 2), u_row.get(x / 2 * 2 + 1))
                    };
                    let rgb = rgb_from_yuv(
                        luma.get(x).copied().unwrap_or(0),
                        u.copied().unwrap_or(128),
                        v.copied().unwrap_or(128),
                    );
                    out.extend_from_slice(&[rgb[0], rgb[1], rgb[2], 255]);
                }
            }
        }
    }
    out.resize(w * h * 4, 0);
    out
}

/// The frame converted to tightly packed I420 with BT.709 limited range (the
/// same matrix as the compositor's GPU pass); a CPU path for benches and for
/// sources that bypass the compositor.
pub fn i420_from(frame: &Frame) -> Frame {
    i420_converted(frame, false)
}

/// [`i420_from`], with the timecode strip of the frame's capture time
/// stamped in (what the compositor does when it runs; the station's latency
/// instrument when it does not).
pub fn i420_with_timecode(frame: &Frame) -> Frame {
    i420_converted(frame, true)
}

fn i420_converted(frame: &Frame, timecode: bool) -> Frame {
    use crate::frame::{FrameBytes, FrameStamp};
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let rgba = to_rgba(frame);
    let (planes, len) = PixelFormat::I420.packed_layout(frame.width(), frame.height());
    let mut out = vec![0u8; len];
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let luma = |p: &[u8]| 0.2126 * f32::from(p[0]) + 0.7152 * f32::from(p[1]) + 0.0722 * f32::from(p[2]);
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = (16.0 + 219.0 * luma(&rgba[(y * w + x) * 4..]) / 255.0).round() as u8;
        }
    }
    for cy in 0..ch {
        for cx in 0..cw {
            let mut sum = [0f32; 3];
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let (x, y) = ((2 * cx + dx).min(w - 1), (2 * cy + dy).min(h - 1));
                for c in 0..3 {
                    sum[c] += f32::from(rgba[(y * w + x) * 4 + c]) / 4.0;
                }
            }
            let l = luma(&[sum[0] as u8, sum[1] as u8, sum[2] as u8]);
            out[planes[1].offset + cy * cw + cx] =
                (128.0 + 224.0 * (sum[2] - l) / 255.0 / 1.8556).round().clamp(0.0, 255.0) as u8;
            out[planes[2].offset + cy * cw + cx] =
                (128.0 + 224.0 * (sum[0] - l) / 255.0 / 1.5748).round().clamp(0.0, 255.0) as u8;
        }
    }
    if timecode {
        crate::timecode::stamp_i420(&mut out, &planes, frame.width(), frame.height(), frame.capture_wall_ms);
    }
    let bytes: std::sync::Arc<dyn FrameBytes> = std::sync::Arc::new(out);
    let stamp = FrameStamp {
        sequence: frame.sequence,
        capture_time_ns: frame.capture_time_ns,
        capture_wall_ms: frame.capture_wall_ms,
    };
    // The packed layout of exactly these bytes cannot be rejected.
    Frame::new(PixelFormat::I420, frame.width(), frame.height(), planes, bytes, stamp, frame.content.clone())
        .unwrap_or_else(|e| unreachable!("packed I420 layout rejected: {e}"))
}

/// Writes the frame as a PNG file.
pub fn write_png(frame: &Frame, path: &Path) -> Result<(), SnapshotError> {
    image::save_buffer(path, &to_rgba(frame), frame.width(), frame.height(), image::ExtendedColorType::Rgba8)
        .map_err(|source| SnapshotError::Write { path: path.display().to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameBytes, FrameContent, FrameStamp};
    use std::sync::Arc;

    fn frame(format: PixelFormat, bytes: Vec<u8>, w: u32, h: u32) -> Frame {
        let (planes, _) = format.packed_layout(w, h);
        let bytes: Arc<dyn FrameBytes> = Arc::new(bytes);
        let stamp = FrameStamp { sequence: 0, capture_time_ns: 0, capture_wall_ms: 0 };
        Frame::new(format, w, h, planes, bytes, stamp, FrameContent::Live).expect("layout")
    }

    #[test]
    fn yuv_formats_convert_to_the_same_colours() {
        // 2×2 of BT.601 "red" (Y 81, U 90, V 240) → about (255, 0, 0).
        let i420 = frame(PixelFormat::I420, vec![81, 81, 81, 81, 90, 240], 2, 2);
        let nv12 = frame(PixelFormat::Nv12, vec![81, 81, 81, 81, 90, 240], 2, 2);
        let a = to_rgba(&i420);
        assert_eq!(a, to_rgba(&nv12));
        assert!(a[0] >= 250 && a[1] <= 5 && a[2] <= 5, "{:?}", &a[..4]);
        let rgba = frame(PixelFormat::Rgba8, vec![1, 2, 3, 4], 1, 1);
        assert_eq!(to_rgba(&rgba), vec![1, 2, 3, 4]);
    }
}
