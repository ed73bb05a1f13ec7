//! The visual timecode stamped into every composited frame, and its decoder.
//!
//! Layout (issue 3): 40 square cells of side `round(h / 90)` px in one row at
//! the very bottom of the frame, left edge at x = 0. Cells 0–3 are the sync
//! pattern 1, 0, 1, 0; cells 4–39 carry the low 36 bits of the frame's
//! `capture_wall_ms`, most significant bit first. A 1 is white, a 0 black.
//! Viewers and the glass-to-glass harness read latency from it.

use thiserror::Error;

/// Number of cells.
pub const CELLS: u32 = 40;
/// Sync cells.
pub const SYNC: [bool; 4] = [true, false, true, false];
/// Bits of `capture_wall_ms` carried.
pub const PAYLOAD_BITS: u32 = 36;

/// Why a strip could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TimecodeError {
    /// The frame is too small to hold the strip.
    #[error("a {width}x{height} frame cannot hold a timecode strip")]
    FrameTooSmall {
        /// Width, px.
        width: u32,
        /// Height, px.
        height: u32,
    },
    /// The sync cells do not read 1, 0, 1, 0.
    #[error("sync pattern not found (read {found:?})")]
    NoSync {
        /// What the four sync cells read.
        found: [bool; 4],
    },
}

/// Cell side for a frame `height` px high: `round(h / 90)`, at least 1.
pub fn cell_size_px(height: u32) -> u32 {
    ((f64::from(height) / 90.0).round() as u32).max(1)
}

/// The 40 cell values for `capture_wall_ms`.
pub fn cells(capture_wall_ms: u64) -> [bool; CELLS as usize] {
    let mut out = [false; CELLS as usize];
    out[..4].copy_from_slice(&SYNC);
    for (i, cell) in out.iter_mut().enumerate().skip(4) {
        let bit = 39 - i as u32;
        *cell = (capture_wall_ms >> bit) & 1 == 1;
    }
    out
}

/// Reads the strip from a brightness function `level(x, y)` in 0..=255 by
/// sampling each cell's centre; `threshold` splits black from white.
fn decode_with(width: u32, height: u32, threshold: u8, level: impl Fn(u32, u32) -> u8) -> Result<u64, TimecodeError> {
    let cell = cell_size_px(height);
    if cell * CELLS > width || cell > height {
        return Err(TimecodeError::FrameTooSmall { width, height });
    }
    let y = height - cell + cell / 2;
    let read = |i: u32| level(i * cell + cell / 2, y) > threshold;
    let found = [read(0), read(1), read(2), read(3)];
    if found != SYNC {
        return Err(TimecodeError::NoSync { found });
    }
    Ok((4..CELLS).fold(0u64, |acc, i| (acc << 1) | u64::from(read(i))))
}

/// Decodes the strip of a packed RGBA image (`stride` bytes per row).
pub fn decode_rgba(rgba: &[u8], stride: usize, width: u32, height: u32) -> Result<u64, TimecodeError> {
    decode_with(width, height, 127, |x, y| {
        let at = y as usize * stride + x as usize * 4;
        let p = rgba.get(at..at + 3).unwrap_or(&[0, 0, 0]);
        ((u16::from(p[0]) + u16::from(p[1]) + u16::from(p[2])) / 3) as u8
    })
}

/// Decodes the strip of a luma plane (limited range: black 16, white 235).
pub fn decode_luma(y_plane: &[u8], stride: usize, width: u32, height: u32) -> Result<u64, TimecodeError> {
    decode_with(width, height, 125, |x, y| y_plane.get(y as usize * stride + x as usize).copied().unwrap_or(0))
}

/// Stamps the strip into a packed RGBA image on the CPU (reference for the
/// GPU pass and for the CPU benchmark).
pub fn stamp_rgba(rgba: &mut [u8], stride: usize, width: u32, height: u32, capture_wall_ms: u64) {
    let values = cells(capture_wall_ms);
    for y in height.saturating_sub(cell_size_px(height))..height {
        if let Some(row) = rgba.get_mut(y as usize * stride..) {
            stamp_rgba_row(row, y, width, height, &values);
        }
    }
}

/// Stamps the strip's part of row `y` of a `width`×`height` frame (`row`
/// starts at its first pixel, packed RGBA) with the cell `values` of
/// [`cells`]; a row above the strip is left as it is.
pub fn stamp_rgba_row(row: &mut [u8], y: u32, width: u32, height: u32, values: &[bool; CELLS as usize]) {
    let cell = cell_size_px(height);
    if y + cell < height || y >= height {
        return;
    }
    for x in 0..(cell * CELLS).min(width) {
        let v = if values[(x / cell) as usize] { 255 } else { 0 };
        let at = x as usize * 4;
        if let Some(p) = row.get_mut(at..at + 4) {
            p.copy_from_slice(&[v, v, v, 255]);
        }
    }
}

/// Stamps the strip into a packed I420 image on the CPU: luma 235 for a 1,
/// 16 for a 0 (limited range), neutral chroma under the strip.
pub fn stamp_i420(i420: &mut [u8], planes: &[crate::frame::Plane], width: u32, height: u32, capture_wall_ms: u64) {
    let cell = cell_size_px(height);
    let values = cells(capture_wall_ms);
    let strip_width = (cell * CELLS).min(width) as usize;
    if let Some(luma) = planes.first() {
        for y in height.saturating_sub(cell)..height {
            for x in 0..strip_width {
                if let Some(p) = i420.get_mut(luma.offset + y as usize * luma.stride + x) {
                    *p = if values[x / cell as usize] { 235 } else { 16 };
                }
            }
        }
    }
    for chroma in planes.iter().skip(1).take(2) {
        for y in (height.saturating_sub(cell) / 2)..height.div_ceil(2) {
            let row = chroma.offset + y as usize * chroma.stride;
            if let Some(r) = i420.get_mut(row..row + strip_width.div_ceil(2)) {
                r.fill(128);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_size_follows_the_spec() {
        assert_eq!(cell_size_px(720), 8);
        assert_eq!(cell_size_px(1080), 12);
        assert_eq!(cell_size_px(480), 5);
    }

    #[test]
    fn stamped_strips_decode_to_the_low_36_bits() {
        let (w, h) = (1280u32, 720u32);
        let mut image = vec![90u8; (w * h * 4) as usize];
        for wall_ms in [0u64, 1, 1_764_158_400_123, (1 << 36) - 1, u64::MAX] {
            stamp_rgba(&mut image, w as usize * 4, w, h, wall_ms);
            assert_eq!(decode_rgba(&image, w as usize * 4, w, h), Ok(wall_ms & ((1 << 36) - 1)));
        }
    }

    #[test]
    fn i420_stamped_strips_decode_from_the_luma_plane() {
        let (w, h) = (640u32, 360u32);
        let (planes, len) = crate::frame::PixelFormat::I420.packed_layout(w, h);
        let mut image = vec![120u8; len];
        stamp_i420(&mut image, &planes, w, h, 1_764_158_400_123);
        assert_eq!(decode_luma(&image, w as usize, w, h), Ok(1_764_158_400_123 & ((1 << 36) - 1)));
        let u = &image[planes[1].offset..planes[2].offset];
        assert_eq!(u[(h as usize / 2 - 1) * (w as usize / 2)], 128, "neutral chroma under the strip");
    }

    #[test]
    fn a_frame_without_a_strip_has_no_sync() {
        let image = vec![0u8; 320 * 240 * 4];
        assert!(matches!(decode_rgba(&image, 320 * 4, 320, 240), Err(TimecodeError::NoSync { .. })));
        assert_eq!(decode_rgba(&image, 40, 10, 240), Err(TimecodeError::FrameTooSmall { width: 10, height: 240 }));
    }
}
