// RGBA to I420 for the encoder, BT.709 limited range (ITU-R BT.709-6):
//   Y  = 16  + 219 * (0.2126 R + 0.7152 G + 0.0722 B)
//   Cb = 128 + 224 * (B - Y') / 1.8556
//   Cr = 128 + 224 * (R - Y') / 1.5748
// with R, G, B the gamma-encoded values in [0, 1] and Y' the unscaled luma.
// Chroma is the average of each 2x2 block (centred siting, as the H.264
// default "chroma_sample_loc_type 0" approximates).

fn luma(rgb: vec3<f32>) -> f32 {
    return dot(rgb, vec3<f32>(0.2126, 0.7152, 0.0722));
}

fn code(v: f32) -> u32 {
    return u32(clamp(round(v), 0.0, 255.0));
}

// 8-bit Y of one pixel.
fn y_code(rgb: vec3<f32>) -> u32 {
    return code(16.0 + 219.0 * luma(rgb));
}

// Four Y codes packed little-endian into one word of the Y plane.
fn y_word(a: vec3<f32>, b: vec3<f32>, c: vec3<f32>, d: vec3<f32>) -> u32 {
    return y_code(a) | (y_code(b) << 8u) | (y_code(c) << 16u) | (y_code(d) << 24u);
}

// 8-bit Cb and Cr of a 2x2 block's mean colour.
fn cb_code(rgb: vec3<f32>) -> u32 {
    return code(128.0 + 224.0 * (rgb.b - luma(rgb)) / 1.8556);
}

fn cr_code(rgb: vec3<f32>) -> u32 {
    return code(128.0 + 224.0 * (rgb.r - luma(rgb)) / 1.5748);
}
