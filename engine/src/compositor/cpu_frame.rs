//! The CPU plan's per-frame work (`PassPlan::Cpu`, software adapters): the
//! video remapped through the table (undistorted mode) or taken as captured,
//! one premultiplied layer laid over it, the timecode strip, and BT.709 I420
//! for the encoder. The layer (the anatomy overlay, bent by the lens in the
//! distorted mode, with the annotations over it) is still drawn by wgpu, and
//! only when it changes (`passes/layer.rs`); everything here is integer
//! arithmetic over bytes. Where the CPU has AVX2 the rows run in `avx2.rs`
//! (eight pixels at a time, the same bytes); the scalar code finishes each
//! row and runs everything elsewhere ([`Kernels`]).
//!
//! Same pixels as the GPU passes within a code or two:
//! - bilinear sampling with 8-bit weights (1/256 px), clamped to the edge, as
//!   lavapipe filters RGBA8 (`compose_common.wgsl`'s `sample_video`);
//! - "over" with premultiplied colour: `out = layer + video·(255 − α)/255`.
//!   "Over" is associative, so marks over (overlay over video) is
//!   (marks over overlay) over video: one layer, one blend;
//! - BT.709 limited range in 16-bit fixed point, the same formulas as
//!   `bt709_i420.wgsl` and `crate::colour` (ITU-R BT.709-6), chroma the mean
//!   of each 2×2 block.
//!
//! `golden_images_of_each_pass` and `fiducials_land_within_half_a_pixel…`
//! (engine/tests/compositor.rs) run this plan beside the GPU ones.

mod avx2;

use crate::simd::Avx2;

use super::readback::I420Layout;
use super::remap::RemapTable;
use crate::timecode::{self, CELLS};

/// Which code runs the rows: the same integers either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// The widest this CPU has: AVX2 where it reports it (`avx2.rs`), else scalar.
    #[default]
    Widest,
    /// Scalar (SSE2 for the bilinear sample on x86-64), for comparison.
    Scalar,
}

impl Kernels {
    /// Whether these kernels run wider than scalar on this CPU (AVX2).
    pub fn is_simd(self) -> bool {
        self.avx2().is_some()
    }

    fn avx2(self) -> Option<Avx2> {
        match self {
            Self::Widest => Avx2::detect(),
            Self::Scalar => None,
        }
    }
}

/// One output pixel's bilinear source in the video frame (8 bytes: the
/// table is streamed once per frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Tap {
    /// Pixel index (`y · width + x`) of the top-left sample; [`Tap::OUTSIDE`]: black.
    pub index: u32,
    /// 1 when the right-hand sample is the next pixel, 0 at the right edge.
    pub step_x: u8,
    /// 1 when the lower sample is the next row, 0 at the bottom edge.
    pub step_y: u8,
    /// Weight of the right-hand samples, 0..=255 (1/256 px).
    pub weight_x: u8,
    /// Weight of the lower samples, 0..=255.
    pub weight_y: u8,
}

impl Tap {
    /// No source: the pixel is black (beyond the lens model's valid range).
    pub const OUTSIDE: u32 = u32::MAX;
}

/// The undistorted mode's table as integer bilinear taps into a video frame
/// of the table's size (built once per table, on the table builder's thread).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoGather {
    /// Width, px (of the output and of the video).
    pub width: u32,
    /// Height, px.
    pub height: u32,
    /// One tap per output pixel, row-major.
    pub taps: Vec<Tap>,
}

impl VideoGather {
    /// Taps for `table` (normalized video coordinates per output pixel).
    /// Sample positions follow the texture convention: texel centres at
    /// (i + 0.5) / size, so `u · width − 0.5` is the continuous pixel index.
    pub fn from_table(table: &RemapTable) -> Self {
        let (w, h) = (table.width as i64, table.height as i64);
        let axis = |coordinate: f32, size: i64| -> (u32, u8, u8) {
            let continuous = f64::from(coordinate) * size as f64 - 0.5;
            let mut first = continuous.floor() as i64;
            let mut weight = ((continuous - first as f64) * 256.0).round() as u16;
            if weight == 256 {
                first += 1;
                weight = 0;
            }
            let a = first.clamp(0, size - 1);
            let b = (first + 1).clamp(0, size - 1);
            (a as u32, (b - a) as u8, weight as u8)
        };
        let taps = table
            .uv
            .iter()
            .map(|&[u, v]| {
                let inside = (0.0..=1.0).contains(&u) && (0.0..=1.0).contains(&v);
                if !inside {
                    return Tap { index: Tap::OUTSIDE, step_x: 0, step_y: 0, weight_x: 0, weight_y: 0 };
                }
                let (x, step_x, weight_x) = axis(u, w);
                let (y, step_y, weight_y) = axis(v, h);
                Tap { index: y * table.width + x, step_x, step_y, weight_x, weight_y }
            })
            .collect();
        Self { width: table.width, height: table.height, taps }
    }
}

/// Linear interpolation of two packed RGBA pixels with `weight` (0..=256) of
/// `b`, two channels per multiply (red/blue and green/alpha lanes of 16 bits).
#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline(always)]
fn lerp_rgba(a: u32, b: u32, weight: u32) -> u32 {
    let keep = 256 - weight;
    let rb = ((a & 0x00ff_00ff) * keep + (b & 0x00ff_00ff) * weight + 0x0080_0080) >> 8;
    let ga = (((a >> 8) & 0x00ff_00ff) * keep + ((b >> 8) & 0x00ff_00ff) * weight + 0x0080_0080) >> 8;
    (rb & 0x00ff_00ff) | ((ga & 0x00ff_00ff) << 8)
}

/// Bilinear sample of four packed RGBA pixels (`p00` top-left, `p01` its
/// right-hand neighbour, `p10`/`p11` the row below) with weights 0..=255 of
/// the right-hand and lower samples: the same numbers as three
/// [`lerp_rgba`]s (each rounded to 8 bits), in SSE2 (x86-64's baseline): the
/// two samples of a channel side by side in 16-bit lanes, one multiply-add
/// per direction.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unsafe_code)]
fn bilinear(p00: u32, p01: u32, p10: u32, p11: u32, weight_x: u32, weight_y: u32) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_cvtsi32_si128, _mm_cvtsi128_si32, _mm_madd_epi16, _mm_packs_epi32,
        _mm_packus_epi16, _mm_set1_epi32, _mm_setzero_si128, _mm_srli_epi32, _mm_unpackhi_epi64, _mm_unpacklo_epi8,
        _mm_unpacklo_epi16,
    };
    // SAFETY: SSE2 is part of every x86-64 CPU (the target's baseline), and
    // these intrinsics only move and compute on registers: no pointers.
    unsafe {
        let zero = _mm_setzero_si128();
        // r0 r1 g0 g1 b0 b1 a0 a1 as 16-bit lanes.
        let pair = |a: u32, b: u32| -> __m128i {
            _mm_unpacklo_epi8(_mm_unpacklo_epi8(_mm_cvtsi32_si128(a as i32), _mm_cvtsi32_si128(b as i32)), zero)
        };
        // (256 − w, w) in each pair of 16-bit lanes.
        let weights = |w: u32| -> __m128i { _mm_set1_epi32(((w << 16) | (256 - w)) as i32) };
        let half = _mm_set1_epi32(128);
        let round = |x: __m128i| -> __m128i { _mm_srli_epi32::<8>(_mm_add_epi32(x, half)) };
        let top = round(_mm_madd_epi16(pair(p00, p01), weights(weight_x)));
        let bottom = round(_mm_madd_epi16(pair(p10, p11), weights(weight_x)));
        // t_r t_g t_b t_a b_r b_g b_b b_a → t_r b_r t_g b_g t_b b_b t_a b_a.
        let rows = _mm_packs_epi32(top, bottom);
        let columns = _mm_unpacklo_epi16(rows, _mm_unpackhi_epi64(rows, rows));
        let v = round(_mm_madd_epi16(columns, weights(weight_y)));
        let v = _mm_packs_epi32(v, v);
        _mm_cvtsi128_si32(_mm_packus_epi16(v, v)) as u32
    }
}

/// Bilinear sample (see the x86-64 version): three [`lerp_rgba`]s.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn bilinear(p00: u32, p01: u32, p10: u32, p11: u32, weight_x: u32, weight_y: u32) -> u32 {
    lerp_rgba(lerp_rgba(p00, p01, weight_x), lerp_rgba(p10, p11, weight_x), weight_y)
}

/// `x / 255` rounded, for `x ≤ 255 · 255` (Blinn, "Three wrongs make a
/// right"): the reference [`over`]'s lanes compute.
#[cfg(test)]
fn div255(x: u32) -> u32 {
    let x = x + 128;
    (x + (x >> 8)) >> 8
}

/// Premultiplied `layer` over opaque `video`, both packed RGBA; alpha out
/// 255. Two channels per multiply (red/blue and green/alpha lanes of 16
/// bits), `x / 255` rounded in each lane (Blinn's "three wrongs"); a valid premultiplied colour never
/// exceeds its alpha, so the sum fits 8 bits (saturated all the same).
#[inline(always)]
fn over(layer: u32, video: u32) -> u32 {
    const LANES: u32 = 0x00ff_00ff;
    if layer == 0 {
        return video | ALPHA;
    }
    let keep = 255 - (layer >> 24);
    let scale = |lanes: u32| {
        let x = lanes * keep + 0x0080_0080;
        ((x + ((x >> 8) & LANES)) >> 8) & LANES
    };
    let saturate = |lanes: u32| {
        let carry = lanes & 0x0100_0100;
        (lanes | (carry - (carry >> 8))) & LANES
    };
    let rb = saturate(scale(video & LANES) + (layer & LANES));
    let ga = saturate(scale((video >> 8) & LANES) + ((layer >> 8) & LANES));
    rb | (ga << 8) | ALPHA
}

/// Why a frame could not be composed on the CPU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuFrameError {
    /// A buffer's length does not match the frame size.
    #[error("{what} holds {len} bytes, {expected} expected for {width}x{height}")]
    Size {
        /// Which buffer.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The length the size needs.
        expected: usize,
        /// Width, px.
        width: u32,
        /// Height, px.
        height: u32,
    },
    /// The composed planes did not make a frame.
    #[error("the composed I420 is not a frame: {0}")]
    Frame(String),
}

fn check(what: &'static str, len: usize, expected: usize, (width, height): (u32, u32)) -> Result<(), CpuFrameError> {
    if len == expected { Ok(()) } else { Err(CpuFrameError::Size { what, len, expected, width, height }) }
}

/// One frame's inputs: the video (RGBA rows of `video_stride` bytes), the
/// undistorted mode's taps (else the video is taken 1:1), the layer
/// (packed premultiplied RGBA of the output size) and the strip's capture
/// time (Unix ms).
#[derive(Debug, Clone, Copy)]
pub struct CpuFrame<'a> {
    /// RGBA rows.
    pub video: &'a [u8],
    /// Bytes from one video row to the next.
    pub video_stride: usize,
    /// Width and height, px (of the video and the output).
    pub size: (u32, u32),
    /// The undistorted mode's taps.
    pub gather: Option<&'a VideoGather>,
    /// The overlay and marks over transparent.
    pub layer: Option<&'a [u32]>,
    /// Stamp the timecode strip with this capture time.
    pub strip_ms: Option<u64>,
    /// The code that runs the rows.
    pub kernels: Kernels,
}

/// The video as whole pixels, checked against the frame's size: in place
/// when packed and aligned, else copied into `copy`.
fn checked_pixels<'a>(frame: &CpuFrame<'a>, copy: &'a mut Vec<u32>) -> Result<&'a [u32], CpuFrameError> {
    let (w, h) = (frame.size.0 as usize, frame.size.1 as usize);
    let (video, stride) = (frame.video, frame.video_stride);
    if stride < w * 4 || video.len() < stride * (h - 1) + w * 4 {
        let (width, height) = frame.size;
        return Err(CpuFrameError::Size { what: "the video", len: video.len(), expected: stride * h, width, height });
    }
    if let Some(layer) = frame.layer {
        check("the layer", layer.len() * 4, w * h * 4, frame.size)?;
    }
    if let Some(gather) = frame.gather
        && ((gather.width, gather.height) != frame.size || gather.taps.len() != w * h)
    {
        return Err(CpuFrameError::Size {
            what: "the remap table",
            len: gather.taps.len(),
            expected: w * h,
            width: gather.width,
            height: gather.height,
        });
    }
    match bytemuck::try_cast_slice::<u8, u32>(&video[..w * h * 4]) {
        Ok(pixels) if stride == w * 4 => Ok(pixels),
        _ => {
            *copy = (0..h)
                .flat_map(|y| video[y * stride..][..w * 4].chunks_exact(4))
                .map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]]))
                .collect();
            Ok(copy.as_slice())
        }
    }
}

/// Composes row `y` of `frame` into `out` (`width` pixels): the video
/// through the taps or 1:1, the layer over it, the strip.
fn compose_row(
    frame: &CpuFrame<'_>,
    pixels: &[u32],
    y: usize,
    strip: Option<&[bool; CELLS as usize]>,
    simd: Option<Avx2>,
    out: &mut [u32],
) {
    let (w, h) = (frame.size.0 as usize, frame.size.1 as usize);
    match frame.gather {
        Some(gather) => {
            let taps = &gather.taps[y * w..(y + 1) * w];
            let done = simd.map_or(0, |k| k.remap_row(taps, pixels, w, out));
            for (o, tap) in out[done..].iter_mut().zip(&taps[done..]) {
                *o = if tap.index == Tap::OUTSIDE {
                    OPAQUE_BLACK
                } else {
                    let i = tap.index as usize;
                    let (right, down) = (usize::from(tap.step_x), usize::from(tap.step_y) * w);
                    bilinear(
                        pixels[i],
                        pixels[i + right],
                        pixels[i + down],
                        pixels[i + down + right],
                        u32::from(tap.weight_x),
                        u32::from(tap.weight_y),
                    )
                };
            }
        }
        None => out.copy_from_slice(&pixels[y * w..(y + 1) * w]),
    }
    match frame.layer {
        Some(layer) => {
            let layer = &layer[y * w..(y + 1) * w];
            let done = simd.map_or(0, |k| k.over_row(layer, out));
            for (o, &l) in out[done..].iter_mut().zip(&layer[done..]) {
                *o = over(l, *o);
            }
        }
        None => {
            for o in out.iter_mut() {
                *o |= ALPHA;
            }
        }
    }
    if let Some(values) = strip {
        timecode::stamp_rgba_row(bytemuck::cast_slice_mut(out), y as u32, frame.size.0, h as u32, values);
    }
}

/// Composes `frame` into `out` (packed pixels, RGBA in memory order).
pub fn compose_rgba(frame: &CpuFrame<'_>, out: &mut [u32]) -> Result<(), CpuFrameError> {
    let (w, h) = (frame.size.0 as usize, frame.size.1 as usize);
    if w == 0 || h == 0 {
        return Ok(());
    }
    check("the output", out.len() * 4, w * h * 4, frame.size)?;
    let mut copy = Vec::new();
    let pixels = checked_pixels(frame, &mut copy)?;
    let strip = frame.strip_ms.map(timecode::cells);
    // The CPU's kernels, asked once a frame.
    let simd = frame.kernels.avx2();
    for (y, row) in out.chunks_exact_mut(w).enumerate() {
        compose_row(frame, pixels, y, strip.as_ref(), simd, row);
    }
    Ok(())
}

/// Composes `frame` and converts it into I420 of `layout` in one sweep of
/// row pairs (the picture never leaves the cache), keeping the composed
/// picture in `rgba` when given (a snapshot or a test reads it).
pub fn compose_i420(
    frame: &CpuFrame<'_>,
    layout: &I420Layout,
    i420: &mut [u8],
    mut rgba: Option<&mut [u32]>,
) -> Result<(), CpuFrameError> {
    let (w, h) = (frame.size.0 as usize, frame.size.1 as usize);
    if w == 0 || h == 0 {
        return Ok(());
    }
    check("the I420 buffer", i420.len(), layout.size() as usize, frame.size)?;
    if let Some(rgba) = rgba.as_deref() {
        check("the picture", rgba.len() * 4, w * h * 4, frame.size)?;
    }
    let mut copy = Vec::new();
    let pixels = checked_pixels(frame, &mut copy)?;
    let strip = frame.strip_ms.map(timecode::cells);
    // The CPU's kernels, asked once a frame.
    let simd = frame.kernels.avx2();
    let mut planes = I420Rows::new(layout, i420);
    let mut scratch = vec![0u32; 2 * w];
    for pair in 0..layout.y_rows as usize / 2 {
        let (top_y, bottom_y) = ((2 * pair).min(h - 1), (2 * pair + 1).min(h - 1));
        let (top, bottom) = scratch.split_at_mut(w);
        compose_row(frame, pixels, top_y, strip.as_ref(), simd, top);
        compose_row(frame, pixels, bottom_y, strip.as_ref(), simd, bottom);
        if let Some(rgba) = rgba.as_deref_mut() {
            rgba[top_y * w..][..w].copy_from_slice(top);
            rgba[bottom_y * w..][..w].copy_from_slice(bottom);
        }
        planes.convert_pair(pair, bytemuck::cast_slice(top), bytemuck::cast_slice(bottom), w, simd);
    }
    Ok(())
}

/// Alpha 255 in a packed little-endian RGBA pixel.
const ALPHA: u32 = 0xff00_0000;
/// Opaque black.
const OPAQUE_BLACK: u32 = ALPHA;

/// BT.709 limited-range coefficients × 2¹⁶ (ITU-R BT.709-6: Kr 0.2126,
/// Kb 0.0722; Y′ 219 codes from 16, Cb/Cr 224 codes around 128), for 8-bit
/// RGB (0–255): `Y = 16 + 219/255 · (Kr R + Kg G + Kb B)`,
/// `Cb = 128 + 224/255 · (B − Y′) / (2 (1 − Kb))`, `Cr = 128 + 224/255 · (R − Y′) / (2 (1 − Kr))`.
mod fixed {
    const fn scaled(x: f64) -> i32 {
        let v = x * 65536.0;
        (if v < 0.0 { v - 0.5 } else { v + 0.5 }) as i32
    }
    const KR: f64 = 0.2126;
    const KB: f64 = 0.0722;
    const KG: f64 = 1.0 - KR - KB;
    const Y_SCALE: f64 = 219.0 / 255.0;
    const CB_SCALE: f64 = 224.0 / 255.0 / (2.0 * (1.0 - KB));
    const CR_SCALE: f64 = 224.0 / 255.0 / (2.0 * (1.0 - KR));
    pub const Y_R: i32 = scaled(Y_SCALE * KR);
    pub const Y_G: i32 = scaled(Y_SCALE * KG);
    pub const Y_B: i32 = scaled(Y_SCALE * KB);
    pub const CB_R: i32 = scaled(-CB_SCALE * KR);
    pub const CB_G: i32 = scaled(-CB_SCALE * KG);
    pub const CB_B: i32 = scaled(CB_SCALE * (1.0 - KB));
    pub const CR_R: i32 = scaled(CR_SCALE * (1.0 - KR));
    pub const CR_G: i32 = scaled(-CR_SCALE * KG);
    pub const CR_B: i32 = scaled(-CR_SCALE * KB);
    /// 16 and the rounding half, × 2¹⁶.
    pub const Y_OFFSET: i32 = (16 << 16) + (1 << 15);
    /// 128 and the rounding half, × 2¹⁶.
    pub const C_OFFSET: i32 = (128 << 16) + (1 << 15);
}

#[inline(always)]
fn y_code(r: i32, g: i32, b: i32) -> u8 {
    ((fixed::Y_R * r + fixed::Y_G * g + fixed::Y_B * b + fixed::Y_OFFSET) >> 16).clamp(0, 255) as u8
}

/// Cb and Cr of a 2×2 block from its channel sums (each 0..=1020).
#[inline(always)]
fn chroma_codes(r: i32, g: i32, b: i32) -> (u8, u8) {
    // Sums of four: the coefficients' product is ≤ 2²⁶, a quarter of it is the mean.
    let cb = ((fixed::CB_R * r + fixed::CB_G * g + fixed::CB_B * b) / 4 + fixed::C_OFFSET) >> 16;
    let cr = ((fixed::CR_R * r + fixed::CR_G * g + fixed::CR_B * b) / 4 + fixed::C_OFFSET) >> 16;
    (cb.clamp(0, 255) as u8, cr.clamp(0, 255) as u8)
}

/// The three planes of an I420 buffer of some layout, by row pair.
struct I420Rows<'a> {
    y_stride: usize,
    luma: &'a mut [u8],
    u_plane: &'a mut [u8],
    v_plane: &'a mut [u8],
}

impl<'a> I420Rows<'a> {
    /// `i420` must hold `layout.size()` bytes.
    fn new(layout: &I420Layout, i420: &'a mut [u8]) -> Self {
        let (luma, chroma) = i420.split_at_mut(layout.u_offset() as usize);
        let (u_plane, v_plane) = chroma.split_at_mut((layout.v_offset() - layout.u_offset()) as usize);
        Self { y_stride: layout.y_stride as usize, luma, u_plane, v_plane }
    }

    /// Converts RGBA rows `2·pair` (`top`) and `2·pair + 1` (`bottom`), `w`
    /// pixels each, into their two Y rows and one row of U and V; padding
    /// columns repeat the last pixel, as the GPU pass clamps.
    fn convert_pair(&mut self, pair: usize, top: &[u8], bottom: &[u8], w: usize, simd: Option<Avx2>) {
        let y_stride = self.y_stride;
        let chroma_stride = y_stride / 2;
        let (y_top, y_bottom) = self.luma[2 * pair * y_stride..(2 * pair + 2) * y_stride].split_at_mut(y_stride);
        let u_row = &mut self.u_plane[pair * chroma_stride..(pair + 1) * chroma_stride];
        let v_row = &mut self.v_plane[pair * chroma_stride..(pair + 1) * chroma_stride];
        if w.is_multiple_of(2) && y_stride == w {
            // The common case: whole 2×2 blocks, no padding.
            let done = simd.map_or(0, |k| k.i420_pair([top, bottom], [&mut *y_top, &mut *y_bottom], u_row, v_row));
            for (((((t, b), yt), yb), u), v) in top[done * 4..]
                .chunks_exact(8)
                .zip(bottom[done * 4..].chunks_exact(8))
                .zip(y_top[done..].chunks_exact_mut(2))
                .zip(y_bottom[done..].chunks_exact_mut(2))
                .zip(u_row[done / 2..].iter_mut())
                .zip(v_row[done / 2..].iter_mut())
            {
                let p = |s: &[u8], i: usize| (i32::from(s[i]), i32::from(s[i + 1]), i32::from(s[i + 2]));
                let (a, b2, c, d) = (p(t, 0), p(t, 4), p(b, 0), p(b, 4));
                yt[0] = y_code(a.0, a.1, a.2);
                yt[1] = y_code(b2.0, b2.1, b2.2);
                yb[0] = y_code(c.0, c.1, c.2);
                yb[1] = y_code(d.0, d.1, d.2);
                (*u, *v) = chroma_codes(a.0 + b2.0 + c.0 + d.0, a.1 + b2.1 + c.1 + d.1, a.2 + b2.2 + c.2 + d.2);
            }
            return;
        }
        let channel = |row: &[u8], x: usize, c: usize| i32::from(row[x.min(w - 1) * 4 + c]);
        for x in 0..y_stride {
            y_top[x] = y_code(channel(top, x, 0), channel(top, x, 1), channel(top, x, 2));
            y_bottom[x] = y_code(channel(bottom, x, 0), channel(bottom, x, 1), channel(bottom, x, 2));
        }
        for cx in 0..chroma_stride {
            let sum = |c: usize| {
                channel(top, 2 * cx, c)
                    + channel(top, 2 * cx + 1, c)
                    + channel(bottom, 2 * cx, c)
                    + channel(bottom, 2 * cx + 1, c)
            };
            (u_row[cx], v_row[cx]) = chroma_codes(sum(0), sum(1), sum(2));
        }
    }
}

/// Converts packed RGBA (`size`, alpha ignored) into I420 of `layout`
/// (`i420.len() == layout.size()`) with `kernels`; padding rows and columns
/// repeat the last pixel, as the GPU pass clamps.
pub fn rgba_to_i420(
    rgba: &[u8],
    size: (u32, u32),
    layout: &I420Layout,
    i420: &mut [u8],
    kernels: Kernels,
) -> Result<(), CpuFrameError> {
    let (w, h) = (size.0 as usize, size.1 as usize);
    if w == 0 || h == 0 {
        return Ok(());
    }
    check("the picture", rgba.len(), w * h * 4, size)?;
    check("the I420 buffer", i420.len(), layout.size() as usize, size)?;
    let mut planes = I420Rows::new(layout, i420);
    let simd = kernels.avx2();
    for pair in 0..layout.y_rows as usize / 2 {
        let top = &rgba[(2 * pair).min(h - 1) * w * 4..][..w * 4];
        let bottom = &rgba[(2 * pair + 1).min(h - 1) * w * 4..][..w * 4];
        planes.convert_pair(pair, top, bottom, w, simd);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::colour::BT709;
    use crate::compositor::remap::OUTSIDE;

    /// A float bilinear sample of `rgba` (w×h) at normalized `uv`, clamped to the edge.
    fn reference_sample(rgba: &[u8], w: usize, h: usize, [u, v]: [f32; 2]) -> [f64; 3] {
        let (sx, sy) = (f64::from(u) * w as f64 - 0.5, f64::from(v) * h as f64 - 0.5);
        let (x0, y0) = (sx.floor(), sy.floor());
        let (fx, fy) = (sx - x0, sy - y0);
        let at = |x: f64, y: f64, c: usize| {
            let (x, y) = ((x as i64).clamp(0, w as i64 - 1) as usize, (y as i64).clamp(0, h as i64 - 1) as usize);
            f64::from(rgba[(y * w + x) * 4 + c])
        };
        let mut out = [0.0; 3];
        for (c, o) in out.iter_mut().enumerate() {
            let top = at(x0, y0, c) * (1.0 - fx) + at(x0 + 1.0, y0, c) * fx;
            let bottom = at(x0, y0 + 1.0, c) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0, c) * fx;
            *o = top * (1.0 - fy) + bottom * fy;
        }
        out
    }

    fn noise(len: usize, seed: u32) -> Vec<u8> {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn the_gather_samples_like_a_float_bilinear_filter_within_a_code() {
        let (w, h) = (37u32, 23u32);
        let video = noise((w * h * 4) as usize, 7);
        // A table that shrinks, shifts and runs off every edge, with some pixels outside.
        let uv: Vec<[f32; 2]> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| {
                if (x + y) % 17 == 0 {
                    return OUTSIDE;
                }
                [(x as f32 * 1.13 - 2.3) / w as f32, (y as f32 * 0.87 + 1.7) / h as f32]
            })
            .collect();
        let table = RemapTable { width: w, height: h, uv: uv.clone() };
        let gather = VideoGather::from_table(&table);
        let mut pixels = vec![0u32; (w * h) as usize];
        let frame = CpuFrame {
            video: &video,
            video_stride: (w * 4) as usize,
            size: (w, h),
            gather: Some(&gather),
            layer: None,
            strip_ms: None,
            kernels: Kernels::Widest,
        };
        compose_rgba(&frame, &mut pixels).expect("composes");
        let out: &[u8] = bytemuck::cast_slice(&pixels);
        let mut worst = 0.0f64;
        for (i, &entry) in uv.iter().enumerate() {
            let got = &out[i * 4..i * 4 + 4];
            let inside = entry.iter().all(|c| (0.0..=1.0).contains(c));
            if !inside {
                assert_eq!(got, [0, 0, 0, 255], "pixel {i} has no source: black");
                continue;
            }
            let want = reference_sample(&video, w as usize, h as usize, entry);
            for c in 0..3 {
                worst = worst.max((f64::from(got[c]) - want[c]).abs());
            }
            assert_eq!(got[3], 255);
        }
        assert!(worst <= 1.5, "worst difference {worst} codes");
    }

    #[test]
    fn the_bilinear_sample_is_three_rounded_lerps() {
        let pixels = noise(4 * 4 * 64, 3);
        let pixel =
            |i: usize| u32::from_le_bytes([pixels[4 * i], pixels[4 * i + 1], pixels[4 * i + 2], pixels[4 * i + 3]]);
        for i in 0..64 {
            let [p00, p01, p10, p11] = [pixel(4 * i), pixel(4 * i + 1), pixel(4 * i + 2), pixel(4 * i + 3)];
            for (wx, wy) in [(0, 0), (255, 255), (128, 1), (1, 200), (77, 181)] {
                let want = lerp_rgba(lerp_rgba(p00, p01, wx), lerp_rgba(p10, p11, wx), wy);
                assert_eq!(
                    bilinear(p00, p01, p10, p11, wx, wy),
                    want,
                    "{p00:08x} {p01:08x} {p10:08x} {p11:08x} {wx} {wy}"
                );
            }
        }
    }

    #[test]
    fn over_is_the_per_channel_blend() {
        let bytes = noise(4 * 4096, 11);
        for (i, p) in bytes.chunks_exact(8).enumerate() {
            // A valid premultiplied layer pixel: each channel at most alpha.
            let alpha = u32::from(p[3]) | if i % 5 == 0 { 255 } else { 0 };
            let layer_c = [0, 1, 2].map(|c| u32::from(p[c]).min(alpha));
            let layer = layer_c[0] | (layer_c[1] << 8) | (layer_c[2] << 16) | (alpha << 24);
            let video = u32::from_le_bytes([p[4], p[5], p[6], p[7]]);
            let want: [u8; 4] = std::array::from_fn(|c| {
                if c == 3 {
                    255
                } else if layer == 0 {
                    p[4 + c]
                } else {
                    (layer_c[c] + div255(u32::from(p[4 + c]) * (255 - alpha))).min(255) as u8
                }
            });
            assert_eq!(over(layer, video).to_le_bytes(), want, "layer {layer:08x} video {video:08x}");
        }
    }

    #[test]
    fn the_layer_is_laid_over_premultiplied() {
        let (w, h) = (4u32, 1u32);
        let video = [200, 100, 50, 255].repeat(4);
        // Transparent, opaque red, half-transparent white (premultiplied 128), faint blue.
        let layer = [[0, 0, 0, 0], [255, 0, 0, 255], [128, 128, 128, 128], [0, 0, 26, 26]].map(u32::from_le_bytes);
        let mut pixels = vec![0u32; 4];
        let frame = CpuFrame {
            video: &video,
            video_stride: 16,
            size: (w, h),
            gather: None,
            layer: Some(&layer),
            strip_ms: None,
            kernels: Kernels::Widest,
        };
        compose_rgba(&frame, &mut pixels).expect("composes");
        let out: &[u8] = bytemuck::cast_slice(&pixels);
        assert_eq!(&out[0..4], [200, 100, 50, 255]);
        assert_eq!(&out[4..8], [255, 0, 0, 255]);
        for (c, v) in [200.0f64, 100.0, 50.0].iter().enumerate() {
            let want = 128.0 + v * (127.0 / 255.0);
            assert!((f64::from(out[8 + c]) - want).abs() <= 0.5, "channel {c}: {} vs {want}", out[8 + c]);
            let want = [0.0, 0.0, 26.0][c] + v * (229.0 / 255.0);
            assert!((f64::from(out[12 + c]) - want).abs() <= 0.5, "channel {c}: {} vs {want}", out[12 + c]);
        }
    }

    #[test]
    fn i420_matches_the_float_bt709_formulas_within_a_code() {
        for (w, h) in [(64u32, 32u32), (37, 23)] {
            let rgba = noise((w * h * 4) as usize, w);
            let layout = I420Layout::new(w, h);
            let mut i420 = vec![0u8; layout.size() as usize];
            rgba_to_i420(&rgba, (w, h), &layout, &mut i420, Kernels::Widest).expect("converts");
            let px = |x: u32, y: u32| {
                let at = ((y.min(h - 1) * w + x.min(w - 1)) * 4) as usize;
                [f32::from(rgba[at]), f32::from(rgba[at + 1]), f32::from(rgba[at + 2])]
            };
            for y in 0..layout.y_rows {
                for x in 0..layout.y_stride {
                    let want = BT709.ycbcr_from_rgb(px(x, y))[0];
                    let got = i420[(y * layout.y_stride + x) as usize];
                    assert!(got.abs_diff(want) <= 1, "Y at ({x}, {y}): {got} vs {want}");
                }
            }
            for cy in 0..layout.y_rows / 2 {
                for cx in 0..layout.y_stride / 2 {
                    let block = [
                        px(2 * cx, 2 * cy),
                        px(2 * cx + 1, 2 * cy),
                        px(2 * cx, 2 * cy + 1),
                        px(2 * cx + 1, 2 * cy + 1),
                    ];
                    let mean: [f32; 3] = std::array::from_fn(|c| block.iter().map(|p| p[c]).sum::<f32>() / 4.0);
                    let [cb, cr] = BT709.chroma(mean, BT709.luma(mean));
                    let at = (cy * layout.y_stride / 2 + cx) as usize;
                    let (u, v) = (i420[layout.u_offset() as usize + at], i420[layout.v_offset() as usize + at]);
                    assert!(u.abs_diff(cb) <= 1 && v.abs_diff(cr) <= 1, "chroma at ({cx}, {cy}): {u},{v} vs {cb},{cr}");
                }
            }
        }
    }

    #[test]
    fn one_sweep_equals_composing_then_converting_and_the_strip_decodes() {
        for (w, h) in [(640u32, 360u32), (322, 181)] {
            let video = noise((w * h * 4) as usize, 5);
            let layer: Vec<u32> =
                (0..w * h).map(|i| if i % 3 == 0 { u32::from_le_bytes([40, 20, 10, 60]) } else { 0 }).collect();
            let table = RemapTable {
                width: w,
                height: h,
                uv: (0..h)
                    .flat_map(|y| (0..w).map(move |x| [(x as f32 + 0.7) / w as f32, (y as f32 + 0.2) / h as f32]))
                    .collect(),
            };
            let gather = VideoGather::from_table(&table);
            let frame = CpuFrame {
                video: &video,
                video_stride: (w * 4) as usize,
                size: (w, h),
                gather: Some(&gather),
                layer: Some(&layer),
                strip_ms: Some(1_764_000_123_456),
                kernels: Kernels::Widest,
            };
            let mut rgba = vec![0u32; (w * h) as usize];
            compose_rgba(&frame, &mut rgba).expect("composes");
            let layout = I420Layout::new(w, h);
            let mut want = vec![0u8; layout.size() as usize];
            rgba_to_i420(bytemuck::cast_slice(&rgba), (w, h), &layout, &mut want, Kernels::Widest).expect("converts");
            let mut got = vec![0u8; layout.size() as usize];
            let mut kept = vec![0u32; (w * h) as usize];
            compose_i420(&frame, &layout, &mut got, Some(&mut kept)).expect("composes");
            assert_eq!(kept, rgba, "{w}x{h}: the kept picture");
            assert_eq!(got, want, "{w}x{h}: the I420");
            let rgba_bytes: &[u8] = bytemuck::cast_slice(&kept);
            assert_eq!(
                timecode::decode_rgba(rgba_bytes, (w * 4) as usize, w, h),
                Ok(1_764_000_123_456 & ((1 << 36) - 1))
            );
            assert_eq!(
                timecode::decode_luma(&got, layout.y_stride as usize, w, h),
                Ok(1_764_000_123_456 & ((1 << 36) - 1))
            );
        }
    }

    #[test]
    fn wrong_sizes_are_errors_not_panics() {
        let mut out = vec![0u32; 4];
        let frame = CpuFrame {
            video: &[0u8; 8],
            video_stride: 8,
            size: (2, 2),
            gather: None,
            layer: None,
            strip_ms: None,
            kernels: Kernels::Widest,
        };
        let err = compose_rgba(&frame, &mut out).expect_err("short video");
        assert!(matches!(err, CpuFrameError::Size { what: "the video", .. }), "{err}");
        let layer = [0u32; 3];
        let frame = CpuFrame { video: &[0u8; 16], layer: Some(&layer), ..frame };
        let err = compose_rgba(&frame, &mut out).expect_err("short layer");
        assert!(matches!(err, CpuFrameError::Size { what: "the layer", .. }), "{err}");
        let layout = I420Layout::new(2, 2);
        let mut i420 = vec![0u8; 3];
        assert!(rgba_to_i420(bytemuck::cast_slice(&out), (2, 2), &layout, &mut i420, Kernels::Widest).is_err());
    }

    /// Off x86-64 there are no kernels: the scalar code is all there is.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_kernels_give_the_scalar_bytes() {
        Avx2::required_by_test("the CPU plan's kernels");
        // Widths with and without whole groups of 8 and 16, a tiny one, odd heights.
        for (w, h) in [(64u32, 8u32), (37, 23), (1280, 12), (5, 3), (333, 7)] {
            let video = noise((w * h * 4) as usize, w + h);
            let uv: Vec<[f32; 2]> = (0..h)
                .flat_map(|y| (0..w).map(move |x| (x, y)))
                .map(|(x, y)| {
                    if (x * 7 + y) % 13 == 0 {
                        return OUTSIDE;
                    }
                    // Runs past every edge (steps of 0 there) and samples between pixels.
                    [(x as f32 * 1.21 - 3.3) / w as f32, (y as f32 * 1.09 - 0.6) / h as f32]
                })
                .collect();
            let gather = VideoGather::from_table(&RemapTable { width: w, height: h, uv });
            // Layers: every kind of alpha, some not even valid premultiplied colour (saturates alike).
            let layer: Vec<u32> = noise((w * h * 4) as usize, 99)
                .chunks_exact(4)
                .enumerate()
                .map(|(i, p)| match i % 4 {
                    0 => 0,
                    1 => u32::from_le_bytes([p[0], p[1], p[2], 255]),
                    2 => u32::from_le_bytes([p[0].min(p[3]), p[1].min(p[3]), p[2].min(p[3]), p[3]]),
                    _ => u32::from_le_bytes([p[0], p[1], p[2], p[3]]),
                })
                .collect();
            let layout = I420Layout::new(w, h);
            for (gather, layer) in [(Some(&gather), Some(&layer)), (Some(&gather), None), (None, Some(&layer))] {
                let scalar = CpuFrame {
                    video: &video,
                    video_stride: (w * 4) as usize,
                    size: (w, h),
                    gather,
                    layer: layer.map(Vec::as_slice),
                    strip_ms: Some(1_764_000_000_001),
                    kernels: Kernels::Scalar,
                };
                let widest = CpuFrame { kernels: Kernels::Widest, ..scalar };
                let mut want = (vec![0u8; layout.size() as usize], vec![0u32; (w * h) as usize]);
                let mut got = want.clone();
                compose_i420(&scalar, &layout, &mut want.0, Some(&mut want.1)).expect("composes");
                compose_i420(&widest, &layout, &mut got.0, Some(&mut got.1)).expect("composes");
                let what = format!("{w}x{h}, table {}, layer {}", gather.is_some(), layer.is_some());
                assert_eq!(
                    first_difference(&got.1, &want.1),
                    None,
                    "{what}: the composed picture (index, AVX2, scalar)"
                );
                assert_eq!(first_difference(&got.0, &want.0), None, "{what}: the I420 (index, AVX2, scalar)");
            }
            let mut want = vec![0u8; layout.size() as usize];
            let mut got = want.clone();
            rgba_to_i420(&video, (w, h), &layout, &mut want, Kernels::Scalar).expect("converts");
            rgba_to_i420(&video, (w, h), &layout, &mut got, Kernels::Widest).expect("converts");
            assert_eq!(first_difference(&got, &want), None, "{w}x{h}: I420 of the video (index, AVX2, scalar)");
        }
    }

    /// The first index where `a` and `b` differ, with both values.
    #[cfg(target_arch = "x86_64")]
    fn first_difference<T: PartialEq + Copy>(a: &[T], b: &[T]) -> Option<(usize, T, T)> {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).position(|(x, y)| x != y).map(|i| (i, a[i], b[i]))
    }
}
