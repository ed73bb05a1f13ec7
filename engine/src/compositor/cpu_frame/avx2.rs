//! AVX2 kernels for the CPU plan's rows: the same integers as the scalar
//! code in `cpu_frame.rs`, eight pixels at a time (sixteen for I420).
//!
//! - The remap fetches a group's four bilinear samples with hardware gathers
//!   and lerps in 16-bit lanes: `a·(256 − w) + b·w + 128` is at most
//!   255·256 + 128 = 65 408, so each of the three rounded lerps is exact in
//!   `u16`, as [`super::lerp_rgba`] computes it. The video frame arrives from
//!   another core or from memory, and the hardware prefetcher does not follow
//!   gathers, so the remap asks for both source rows 16 groups ahead (720p
//!   sweep with frames in turn: 4.2 → 2.6 ms, `cpu_frame` bench).
//! - "Over" scales the video by `255 − α` with Blinn's rounding in 16-bit lanes
//!   (`v·keep + 128 ≤ 65 153`, plus its `>> 8` ≤ 65 407) and adds the layer
//!   with unsigned saturation, as [`super::over`] does two channels at a time.
//! - I420 multiplies in 32-bit lanes with the same 2¹⁶ coefficients as
//!   [`super::y_code`] and [`super::chroma_codes`], the chroma's "/ 4"
//!   truncating towards zero as Rust's integer division does.
//!
//! The kernels run only behind the [`Avx2`] token (`crate::simd`), which
//! exists only where the CPU reports AVX2; elsewhere the scalar code does
//! all of it. Each kernel returns how many pixels it did
//! (whole groups); the caller finishes the row. The tests compare every
//! kernel with the scalar code byte for byte.

use crate::simd::Avx2;

impl Avx2 {
    /// Remaps whole groups of eight pixels of a row: `out[i]` = the bilinear
    /// sample of `pixels` (the video, packed RGBA, `width` pixels a row) at
    /// `taps[i]`, opaque black for [`super::Tap::OUTSIDE`]. Taps must come
    /// from [`super::VideoGather::from_table`] (steps 0 or 1); any tap reads
    /// inside `pixels` all the same (indices are clamped). Returns the number
    /// of pixels done.
    pub(super) fn remap_row(self, taps: &[super::Tap], pixels: &[u32], width: usize, out: &mut [u32]) -> usize {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the token proves AVX2 (`crate::simd`); the kernel checks its
        // slices' lengths and clamps every gathered index below `pixels.len()`.
        #[allow(unsafe_code)]
        unsafe {
            x86::remap_row(taps, pixels, width, out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        match self.0 {}
    }

    /// Lays `layer` (premultiplied) over `out` (opaque video) in whole
    /// groups of eight pixels, alpha out 255. Returns the number of pixels done.
    pub(super) fn over_row(self, layer: &[u32], out: &mut [u32]) -> usize {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the token proves AVX2; the kernel reads and writes within
        // the shorter slice's length.
        #[allow(unsafe_code)]
        unsafe {
            x86::over_row(layer, out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        match self.0 {}
    }

    /// Converts whole groups of sixteen pixels of two RGBA rows (`rows`: the
    /// top one, then the one below; bytes, 4 a pixel) into their Y rows and
    /// one row of U and V (one sample per 2×2 block). Returns the number of
    /// pixels done per row.
    pub(super) fn i420_pair(
        self,
        rows: [&[u8]; 2],
        y_rows: [&mut [u8]; 2],
        u_row: &mut [u8],
        v_row: &mut [u8],
    ) -> usize {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the token proves AVX2; the kernel reads and writes within
        // every slice's length.
        #[allow(unsafe_code)]
        unsafe {
            x86::i420_pair(rows, y_rows, u_row, v_row)
        }
        #[cfg(not(target_arch = "x86_64"))]
        match self.0 {}
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    //! The kernels and their helpers: safe functions of the `avx2` target
    //! feature (calling one needs AVX2: the [`super::Avx2`] token), with
    //! `unsafe` only around the loads, stores and gathers.

    use std::arch::x86_64::*;

    use super::super::{ALPHA, Tap, fixed};

    /// Each pixel's weight (the low byte of its 32-bit lane) in the four
    /// 16-bit lanes of that pixel after `unpacklo_epi8` (pixels 0, 1 of each
    /// 128-bit half) and `unpackhi_epi8` (pixels 2, 3).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn spread_weights(weights: __m256i) -> (__m256i, __m256i) {
        const Z: i8 = -128;
        let low = _mm256_setr_epi8(
            0, Z, 0, Z, 0, Z, 0, Z, 4, Z, 4, Z, 4, Z, 4, Z, 0, Z, 0, Z, 0, Z, 0, Z, 4, Z, 4, Z, 4, Z, 4, Z,
        );
        let high = _mm256_setr_epi8(
            8, Z, 8, Z, 8, Z, 8, Z, 12, Z, 12, Z, 12, Z, 12, Z, 8, Z, 8, Z, 8, Z, 8, Z, 12, Z, 12, Z, 12, Z, 12, Z,
        );
        (_mm256_shuffle_epi8(weights, low), _mm256_shuffle_epi8(weights, high))
    }

    /// `(a·(256 − w) + b·w + 128) >> 8` in 16-bit lanes (exact: ≤ 65 408).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn lerp16(a: __m256i, b: __m256i, weight: __m256i) -> __m256i {
        let keep = _mm256_sub_epi16(_mm256_set1_epi16(256), weight);
        let sum = _mm256_add_epi16(_mm256_mullo_epi16(a, keep), _mm256_mullo_epi16(b, weight));
        _mm256_srli_epi16::<8>(_mm256_add_epi16(sum, _mm256_set1_epi16(128)))
    }

    /// The bilinear sample in 16-bit lanes of unpacked samples.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn bilinear16([p00, p01, p10, p11]: [__m256i; 4], weight_x: __m256i, weight_y: __m256i) -> __m256i {
        lerp16(lerp16(p00, p01, weight_x), lerp16(p10, p11, weight_x), weight_y)
    }

    /// The 32-bit lanes at even (`ODD = false`) or odd positions of the
    /// sixteen in `a`, `b`, in order.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn deinterleave<const ODD: bool>(a: __m256i, b: __m256i) -> __m256i {
        let (a, b) = (_mm256_castsi256_ps(a), _mm256_castsi256_ps(b));
        let picked =
            if ODD { _mm256_shuffle_ps::<0b11_01_11_01>(a, b) } else { _mm256_shuffle_ps::<0b10_00_10_00>(a, b) };
        // Taps 0 1 4 5 | 2 3 6 7 → 0 1 2 3 4 5 6 7.
        _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_castps_si256(picked))
    }

    /// How many groups of eight ahead the remap asks for the video's rows.
    const PREFETCH_GROUPS: usize = 16;

    #[target_feature(enable = "avx2")]
    pub(super) fn remap_row(taps: &[Tap], pixels: &[u32], width: usize, out: &mut [u32]) -> usize {
        let done = taps.len().min(out.len()) / 8 * 8;
        if done == 0 || pixels.is_empty() || pixels.len() > i32::MAX as usize || width > i32::MAX as usize {
            return 0;
        }
        let last = _mm256_set1_epi32((pixels.len() - 1) as i32);
        let row = _mm256_set1_epi32(width as i32);
        let byte = _mm256_set1_epi32(0xff);
        let zero = _mm256_setzero_si256();
        let outside_index = _mm256_set1_epi32(Tap::OUTSIDE as i32);
        let alpha = _mm256_set1_epi32(ALPHA as i32);
        let base = pixels.as_ptr().cast::<i32>();
        // `Tap` is `repr(C)`: the index, then step_x, step_y, weight_x, weight_y as the bytes of one u32.
        let tap_words = taps.as_ptr().cast::<__m256i>();
        let prefetch_ahead = 8 * PREFETCH_GROUPS;
        for group in 0..done / 8 {
            // The video frame comes from another core's cache or from memory: ask for
            // both rows a few groups ahead (gathers are not followed by the prefetcher).
            if let Some(tap) = taps.get(group * 8 + prefetch_ahead)
                && (tap.index as usize) < pixels.len()
            {
                let at = base.wrapping_add(tap.index as usize).cast::<i8>();
                _mm_prefetch::<_MM_HINT_T0>(at);
                _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(4 * width));
            }
            // SAFETY: group·8 + 8 ≤ done ≤ taps.len(): two unaligned loads of four 8-byte taps.
            let (t0, t1) = unsafe {
                (_mm256_loadu_si256(tap_words.add(2 * group)), _mm256_loadu_si256(tap_words.add(2 * group + 1)))
            };
            let index = deinterleave::<false>(t0, t1);
            let meta = deinterleave::<true>(t0, t1);
            let outside = _mm256_cmpeq_epi32(index, outside_index);
            let step_x = _mm256_and_si256(meta, byte);
            let step_y = _mm256_and_si256(_mm256_srli_epi32::<8>(meta), byte);
            let down = _mm256_andnot_si256(_mm256_cmpeq_epi32(step_y, zero), row);
            // Every index ≤ last < 2³¹: the gathers stay inside `pixels`.
            let i00 = _mm256_min_epu32(index, last);
            let i01 = _mm256_min_epu32(_mm256_add_epi32(i00, step_x), last);
            let i10 = _mm256_min_epu32(_mm256_add_epi32(i00, down), last);
            let i11 = _mm256_min_epu32(_mm256_add_epi32(i10, step_x), last);
            // SAFETY: the indices are clamped into `pixels` (above), scale 4 bytes.
            let samples = unsafe {
                [
                    _mm256_i32gather_epi32::<4>(base, i00),
                    _mm256_i32gather_epi32::<4>(base, i01),
                    _mm256_i32gather_epi32::<4>(base, i10),
                    _mm256_i32gather_epi32::<4>(base, i11),
                ]
            };
            let (wx_low, wx_high) = spread_weights(_mm256_and_si256(_mm256_srli_epi32::<16>(meta), byte));
            let (wy_low, wy_high) = spread_weights(_mm256_srli_epi32::<24>(meta));
            let low = bilinear16(samples.map(|s| _mm256_unpacklo_epi8(s, zero)), wx_low, wy_low);
            let high = bilinear16(samples.map(|s| _mm256_unpackhi_epi8(s, zero)), wx_high, wy_high);
            let sampled = _mm256_blendv_epi8(_mm256_packus_epi16(low, high), alpha, outside);
            // SAFETY: group·8 + 8 ≤ done ≤ out.len().
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(group * 8).cast(), sampled) };
        }
        done
    }

    /// `(v·keep + 128) / 255` rounded (Blinn) in 16-bit lanes.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn scale16(video: __m256i, keep: __m256i) -> __m256i {
        let x = _mm256_add_epi16(_mm256_mullo_epi16(video, keep), _mm256_set1_epi16(128));
        _mm256_srli_epi16::<8>(_mm256_add_epi16(x, _mm256_srli_epi16::<8>(x)))
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn over_row(layer: &[u32], out: &mut [u32]) -> usize {
        let done = layer.len().min(out.len()) / 8 * 8;
        let zero = _mm256_setzero_si256();
        let opaque = _mm256_set1_epi32(255);
        let alpha = _mm256_set1_epi32(ALPHA as i32);
        for group in 0..done / 8 {
            // SAFETY: group·8 + 8 ≤ done ≤ both lengths.
            let (l, v) = unsafe {
                (
                    _mm256_loadu_si256(layer.as_ptr().add(group * 8).cast()),
                    _mm256_loadu_si256(out.as_ptr().add(group * 8).cast()),
                )
            };
            let (keep_low, keep_high) = spread_weights(_mm256_sub_epi32(opaque, _mm256_srli_epi32::<24>(l)));
            let low = scale16(_mm256_unpacklo_epi8(v, zero), keep_low);
            let high = scale16(_mm256_unpackhi_epi8(v, zero), keep_high);
            let blended = _mm256_or_si256(_mm256_adds_epu8(_mm256_packus_epi16(low, high), l), alpha);
            // SAFETY: as the loads.
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(group * 8).cast(), blended) };
        }
        done
    }

    /// Red, green and blue of eight packed RGBA pixels, one per 32-bit lane.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn channels(p: __m256i) -> [__m256i; 3] {
        let byte = _mm256_set1_epi32(0xff);
        [
            _mm256_and_si256(p, byte),
            _mm256_and_si256(_mm256_srli_epi32::<8>(p), byte),
            _mm256_and_si256(_mm256_srli_epi32::<16>(p), byte),
        ]
    }

    /// `kr·r + kg·g + kb·b` in 32-bit lanes.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn weighted([r, g, b]: [__m256i; 3], [kr, kg, kb]: [i32; 3]) -> __m256i {
        let sum = _mm256_add_epi32(
            _mm256_mullo_epi32(r, _mm256_set1_epi32(kr)),
            _mm256_mullo_epi32(g, _mm256_set1_epi32(kg)),
        );
        _mm256_add_epi32(sum, _mm256_mullo_epi32(b, _mm256_set1_epi32(kb)))
    }

    /// Y codes of eight pixels' channels (as `y_code`), in 32-bit lanes.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn luma(rgb: [__m256i; 3]) -> __m256i {
        let y = weighted(rgb, [fixed::Y_R, fixed::Y_G, fixed::Y_B]);
        _mm256_srai_epi32::<16>(_mm256_add_epi32(y, _mm256_set1_epi32(fixed::Y_OFFSET)))
    }

    /// A chroma code from 2×2 sums (as `chroma_codes`): the "/ 4" rounds
    /// towards zero as Rust's division does, `(x + (x < 0 ? 3 : 0)) >> 2`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn chroma(sums: [__m256i; 3], coefficients: [i32; 3]) -> __m256i {
        let x = weighted(sums, coefficients);
        let quarter = _mm256_srai_epi32::<2>(_mm256_add_epi32(
            x,
            _mm256_and_si256(_mm256_srai_epi32::<31>(x), _mm256_set1_epi32(3)),
        ));
        _mm256_srai_epi32::<16>(_mm256_add_epi32(quarter, _mm256_set1_epi32(fixed::C_OFFSET)))
    }

    /// Sixteen 32-bit codes (`a` then `b`), saturated to 0..=255, as bytes in order.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn bytes16(a: __m256i, b: __m256i) -> __m128i {
        // a0-3 b0-3 | a4-7 b4-7 → a0-7 | b0-7 (16-bit).
        let words = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(a, b));
        _mm_packus_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256::<1>(words))
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn i420_pair(rows: [&[u8]; 2], mut y_rows: [&mut [u8]; 2], u_row: &mut [u8], v_row: &mut [u8]) -> usize {
        let pixels = (rows[0].len() / 4)
            .min(rows[1].len() / 4)
            .min(y_rows[0].len())
            .min(y_rows[1].len())
            .min(2 * u_row.len())
            .min(2 * v_row.len());
        let done = pixels / 16 * 16;
        for group in 0..done / 16 {
            // Per half (pixels 0–7, 8–15) and channel: the sum over both rows.
            let mut sums = [[_mm256_setzero_si256(); 3]; 2];
            for (row, y_row) in rows.iter().zip(y_rows.iter_mut()) {
                // SAFETY: group·16 + 16 ≤ done ≤ row.len() / 4: two loads of 32 bytes.
                let halves = unsafe {
                    let at = row.as_ptr().add(group * 64).cast::<__m256i>();
                    [channels(_mm256_loadu_si256(at)), channels(_mm256_loadu_si256(at.add(1)))]
                };
                let codes = bytes16(luma(halves[0]), luma(halves[1]));
                // SAFETY: group·16 + 16 ≤ done ≤ y_row.len().
                unsafe { _mm_storeu_si128(y_row.as_mut_ptr().add(group * 16).cast(), codes) };
                for (half_sums, half) in sums.iter_mut().zip(halves) {
                    for (sum, channel) in half_sums.iter_mut().zip(half) {
                        *sum = _mm256_add_epi32(*sum, channel);
                    }
                }
            }
            // Neighbours added: a0+a1 a2+a3 b0+b1 b2+b3 | a4+a5 … → the eight blocks in order.
            let blocks: [__m256i; 3] = std::array::from_fn(|channel| {
                _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(sums[0][channel], sums[1][channel]))
            });
            let cb = chroma(blocks, [fixed::CB_R, fixed::CB_G, fixed::CB_B]);
            let cr = chroma(blocks, [fixed::CR_R, fixed::CR_G, fixed::CR_B]);
            let codes = bytes16(cb, cr);
            // SAFETY: group·8 + 8 ≤ done / 2 ≤ u_row.len(), v_row.len().
            unsafe {
                _mm_storel_epi64(u_row.as_mut_ptr().add(group * 8).cast(), codes);
                _mm_storel_epi64(v_row.as_mut_ptr().add(group * 8).cast(), _mm_unpackhi_epi64(codes, codes));
            }
        }
        done
    }
}
