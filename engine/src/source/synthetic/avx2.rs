//! AVX2 kernel for the synthetic endoscope's tissue: eight pixels at a time,
//! the same integers as the scalar loop in `render` (`synthetic.rs`): each
//! pixel's texel fetched with a masked hardware gather (no lane outside the
//! texture is read; those pixels are black, as the scalar `get(..)` gives),
//! scaled by the vignette (0..=256) two channels per 32-bit multiply.

use crate::simd::Avx2;

impl Avx2 {
    /// Shades whole groups of eight pixels of a row segment: `out` (RGBA,
    /// 4 bytes a pixel) = the texel at `texel_at_rest[i] + shift` (black
    /// for [`super::OUTSIDE`] or beyond `texels`) times `vignette[i] / 256`,
    /// opaque. Returns the number of pixels done.
    pub(super) fn tissue_row(
        self,
        texel_at_rest: &[u32],
        vignette: &[u16],
        texels: &[u32],
        shift: isize,
        out: &mut [u8],
    ) -> usize {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the token proves AVX2 (`crate::simd`); the kernel checks its
        // slices' lengths and gathers only lanes whose index is inside `texels`.
        #[allow(unsafe_code)]
        unsafe {
            x86::tissue_row(texel_at_rest, vignette, texels, shift, out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        match self.0 {}
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::OUTSIDE;

    #[target_feature(enable = "avx2")]
    pub(super) fn tissue_row(
        texel_at_rest: &[u32],
        vignette: &[u16],
        texels: &[u32],
        shift: isize,
        out: &mut [u8],
    ) -> usize {
        let done = texel_at_rest.len().min(vignette.len()).min(out.len() / 4) / 8 * 8;
        let Ok(shift) = i32::try_from(shift) else { return 0 };
        if done == 0 || texels.is_empty() || texels.len() > i32::MAX as usize {
            return 0;
        }
        let last = _mm256_set1_epi32((texels.len() - 1) as i32);
        let outside = _mm256_set1_epi32(OUTSIDE as i32);
        let shift = _mm256_set1_epi32(shift);
        let red_blue = _mm256_set1_epi32(0x00ff_00ff);
        let green = _mm256_set1_epi32(0x0000_ff00);
        let alpha = _mm256_set1_epi32(0xff00_0000_u32 as i32);
        let base = texels.as_ptr().cast::<i32>();
        for group in 0..done / 8 {
            // SAFETY: group·8 + 8 ≤ done ≤ both lengths: 32 and 16 bytes.
            let (texel, scale) = unsafe {
                (
                    _mm256_loadu_si256(texel_at_rest.as_ptr().add(group * 8).cast()),
                    _mm256_cvtepu16_epi32(_mm_loadu_si128(vignette.as_ptr().add(group * 8).cast())),
                )
            };
            let index = _mm256_add_epi32(texel, shift);
            // Inside: not OUTSIDE, and 0 ≤ index ≤ last (one unsigned compare covers both,
            // as the scalar `(texel + shift) as usize` wraps a negative index out of range).
            let in_range = _mm256_cmpeq_epi32(_mm256_min_epu32(index, last), index);
            let wanted = _mm256_andnot_si256(_mm256_cmpeq_epi32(texel, outside), in_range);
            // SAFETY: only lanes of `wanted` are read, and their indices lie in `texels`.
            let colour = unsafe { _mm256_mask_i32gather_epi32::<4>(_mm256_setzero_si256(), base, index, wanted) };
            let rb = _mm256_and_si256(
                _mm256_srli_epi32::<8>(_mm256_mullo_epi32(_mm256_and_si256(colour, red_blue), scale)),
                red_blue,
            );
            let g = _mm256_and_si256(
                _mm256_srli_epi32::<8>(_mm256_mullo_epi32(_mm256_and_si256(colour, green), scale)),
                green,
            );
            let pixels = _mm256_or_si256(_mm256_or_si256(rb, g), alpha);
            // SAFETY: (group·8 + 8)·4 ≤ done·4 ≤ out.len().
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(group * 32).cast(), pixels) };
        }
        done
    }
}
