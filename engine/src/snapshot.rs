//! Frames to pictures: conversion of any pipeline frame to packed RGBA, and
//! PNG snapshots (for the operator's snapshot command and for tests that
//! look at what a source delivers).

use std::path::Path;

use thiserror::Error;

use crate::colour::BT709;
use crate::compositor::cpu_frame::{Kernels, rgba_to_i420};
use crate::compositor::readback::I420Layout;
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
                    let rgb = BT709.rgb_from_ycbcr(
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

/// The frame converted to tightly packed I420 with BT.709 limited range
/// ([`crate::colour::BT709`], the compositor's matrix); a CPU path for
/// benches and for sources that bypass the compositor.
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
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let rgba = to_rgba(frame);
    let (planes, len) = PixelFormat::I420.packed_layout(frame.width(), frame.height());
    let mut out = vec![0u8; len];
    // Where the compositor's I420 layout is this packed one (width a multiple of 8, even
    // height: every station size), its CPU plan's fixed-point conversion (AVX2 where the
    // CPU has it; within a code of `BT709`); else the float formulas below.
    let layout = I420Layout::new(frame.width(), frame.height());
    if layout.planes() == planes
        && layout.size() as usize == len
        && rgba_to_i420(&rgba, (frame.width(), frame.height()), &layout, &mut out, Kernels::Widest).is_ok()
    {
        return finished(frame, out, planes, timecode);
    }
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let rgb = |p: &[u8]| [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = BT709.ycbcr_from_rgb(rgb(&rgba[(y * w + x) * 4..]))[0];
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
            // Luma of the average truncated to codes, as before the move (the goldens' numbers).
            let l = BT709.luma([sum[0].trunc(), sum[1].trunc(), sum[2].trunc()]);
            let [cb, cr] = BT709.chroma(sum, l);
            out[planes[1].offset + cy * cw + cx] = cb;
            out[planes[2].offset + cy * cw + cx] = cr;
        }
    }
    finished(frame, out, planes, timecode)
}

/// The I420 `out` of `frame`'s size as a frame with `frame`'s stamp, the
/// strip stamped in when `timecode`.
fn finished(frame: &Frame, mut out: Vec<u8>, planes: Vec<crate::frame::Plane>, timecode: bool) -> Frame {
    use crate::frame::{FrameBytes, FrameStamp};
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
        // 2×2 of BT.709 red (Y 63, Cb 102, Cr 240) → about (255, 0, 0).
        let i420 = frame(PixelFormat::I420, vec![63, 63, 63, 63, 102, 240], 2, 2);
        let nv12 = frame(PixelFormat::Nv12, vec![63, 63, 63, 63, 102, 240], 2, 2);
        let a = to_rgba(&i420);
        assert_eq!(a, to_rgba(&nv12));
        assert!(a[0] >= 250 && a[1] <= 5 && a[2] <= 5, "{:?}", &a[..4]);
        let rgba = frame(PixelFormat::Rgba8, vec![1, 2, 3, 4], 1, 1);
        assert_eq!(to_rgba(&rgba), vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_yuv_frame_keeps_its_codes_through_the_cpu_conversion() {
        // Decoded and encoded with one matrix (BT.709), the codes stay within one;
        // decoding with BT.601, as this path once did, moved green's Cr from 26 to 35.
        for [y, cb, cr] in [[173u8, 42, 26], [63, 102, 240], [32, 240, 118], [126, 128, 128]] {
            let source = frame(PixelFormat::I420, vec![y, y, y, y, cb, cr], 2, 2);
            let out = i420_from(&source);
            let got = [out.row(0, 0).expect("Y")[0], out.row(1, 0).expect("Cb")[0], out.row(2, 0).expect("Cr")[0]];
            assert!((0..3).all(|c| got[c].abs_diff([y, cb, cr][c]) <= 1), "{:?} → {got:?}", [y, cb, cr]);
        }
    }

    #[test]
    fn station_sizes_and_odd_sizes_convert_within_a_code_of_bt709() {
        // 64×32 takes the compositor's fixed-point conversion, 5×3 the float formulas.
        for (w, h) in [(64u32, 32u32), (5, 3)] {
            let rgba: Vec<u8> = (0..w * h * 4).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
            let source = frame(PixelFormat::Rgba8, rgba.clone(), w, h);
            let out = i420_from(&source);
            assert_eq!(out.format(), PixelFormat::I420);
            for y in 0..h as usize {
                for x in 0..w as usize {
                    let p = &rgba[(y * w as usize + x) * 4..];
                    let want = BT709.ycbcr_from_rgb([f32::from(p[0]), f32::from(p[1]), f32::from(p[2])])[0];
                    let got = out.row(0, y).expect("Y")[x];
                    assert!(got.abs_diff(want) <= 1, "{w}x{h} Y at ({x}, {y}): {got} vs {want}");
                }
            }
            let stamped = i420_with_timecode(&source);
            assert_eq!(stamped.bytes().len(), out.bytes().len());
        }
    }
}
