//! Colour conversion on the CPU, with the one matrix the whole station uses:
//! ITU-R BT.709 (HD video: Kr = 0.2126, Kb = 0.0722) in limited range (8-bit
//! codes Y 16–235, Cb/Cr 16–240). The GPU passes use the same numbers
//! (`shaders/shader/compose.wgsl` decodes, `rgba_to_i420.wgsl` encodes);
//! the CPU paths (snapshots, the encoder's conversion when the compositor is
//! off) come here, so a frame converted on either side has the same colours.

/// A Y′CbCr matrix: the luma weights of red and blue (green's is the rest).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YcbcrMatrix {
    /// Kr.
    pub kr: f32,
    /// Kb.
    pub kb: f32,
}

/// ITU-R BT.709-6 §3.2 (what the station and H.264 HD streams use).
pub const BT709: YcbcrMatrix = YcbcrMatrix { kr: 0.2126, kb: 0.0722 };

/// Limited range: Y′ 219 codes from 16, Cb/Cr 224 codes around 128 (BT.709-6 §4.6).
const Y_SPAN: f32 = 219.0;
const C_SPAN: f32 = 224.0;

fn code(x: f32) -> u8 {
    x.round().clamp(0.0, 255.0) as u8
}

impl YcbcrMatrix {
    /// Green's weight.
    pub fn kg(self) -> f32 {
        1.0 - self.kr - self.kb
    }

    /// Luma of straight 8-bit RGB, 0–255.
    pub fn luma(self, rgb: [f32; 3]) -> f32 {
        self.kr * rgb[0] + self.kg() * rgb[1] + self.kb * rgb[2]
    }

    /// 8-bit limited-range codes of straight 8-bit RGB (values 0–255).
    pub fn ycbcr_from_rgb(self, rgb: [f32; 3]) -> [u8; 3] {
        let y = self.luma(rgb);
        let [cb, cr] = self.chroma(rgb, y);
        [code(16.0 + Y_SPAN * y / 255.0), cb, cr]
    }

    /// Chroma codes (Cb, Cr) of an RGB average whose luma is `y` (0–255).
    pub fn chroma(self, rgb: [f32; 3], y: f32) -> [u8; 2] {
        [
            code(128.0 + C_SPAN * (rgb[2] - y) / 255.0 / (2.0 * (1.0 - self.kb))),
            code(128.0 + C_SPAN * (rgb[0] - y) / 255.0 / (2.0 * (1.0 - self.kr))),
        ]
    }

    /// Straight 8-bit RGB of 8-bit limited-range codes (out-of-gamut values clamped).
    pub fn rgb_from_ycbcr(self, y: u8, cb: u8, cr: u8) -> [u8; 3] {
        let yl = (f32::from(y) - 16.0) * 255.0 / Y_SPAN;
        let pb = (f32::from(cb) - 128.0) * 255.0 / C_SPAN;
        let pr = (f32::from(cr) - 128.0) * 255.0 / C_SPAN;
        let (kr, kb, kg) = (self.kr, self.kb, self.kg());
        let r = yl + 2.0 * (1.0 - kr) * pr;
        let b = yl + 2.0 * (1.0 - kb) * pb;
        let g = yl - 2.0 * (1.0 - kb) * kb / kg * pb - 2.0 * (1.0 - kr) * kr / kg * pr;
        [code(r), code(g), code(b)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bt709_codes_of_the_primaries_and_greys_match_the_recommendation() {
        // BT.709 limited range, 8 bit: white (235, 128, 128), black (16, 128, 128),
        // red (63, 102, 240), green (173, 42, 26), blue (32, 240, 118).
        assert_eq!(BT709.ycbcr_from_rgb([255.0; 3]), [235, 128, 128]);
        assert_eq!(BT709.ycbcr_from_rgb([0.0; 3]), [16, 128, 128]);
        assert_eq!(BT709.ycbcr_from_rgb([255.0, 0.0, 0.0]), [63, 102, 240]);
        assert_eq!(BT709.ycbcr_from_rgb([0.0, 255.0, 0.0]), [173, 42, 26]);
        assert_eq!(BT709.ycbcr_from_rgb([0.0, 0.0, 255.0]), [32, 240, 118]);
        // Back within one code (the codes above are rounded).
        let near = |got: [u8; 3], want: [u8; 3]| (0..3).all(|c| got[c].abs_diff(want[c]) <= 1);
        assert!(near(BT709.rgb_from_ycbcr(63, 102, 240), [255, 0, 0]));
        assert!(near(BT709.rgb_from_ycbcr(173, 42, 26), [0, 255, 0]));
        assert!(near(BT709.rgb_from_ycbcr(32, 240, 118), [0, 0, 255]));
        assert_eq!(BT709.rgb_from_ycbcr(235, 128, 128), [255, 255, 255]);
    }

    #[test]
    fn every_colour_survives_a_round_trip_within_two_codes() {
        // Limited range has fewer codes than 0–255: at most 2 codes of error per channel.
        for r in (0..=255).step_by(15) {
            for g in (0..=255).step_by(15) {
                for b in (0..=255).step_by(15) {
                    let rgb = [r as f32, g as f32, b as f32];
                    let [y, cb, cr] = BT709.ycbcr_from_rgb(rgb);
                    let back = BT709.rgb_from_ycbcr(y, cb, cr);
                    for c in 0..3 {
                        assert!((i32::from(back[c]) - [r, g, b][c]).abs() <= 2, "{rgb:?} → {back:?}");
                    }
                }
            }
        }
    }
}
