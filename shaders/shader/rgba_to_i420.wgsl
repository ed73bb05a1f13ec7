// RGBA to I420 for the encoder (the formulas: bt709_i420.wgsl, prepended at
// build time).
//
// One invocation converts an 8x2 block: 16 Y bytes (4 words), 4 U and 4 V
// bytes (1 word each). The output buffer holds the Y plane (stride
// `y_stride` bytes), then U, then V (stride `y_stride / 2` each).

struct Layout {
    width: u32,
    height: u32,
    // Bytes per Y row (a multiple of 8).
    y_stride: u32,
    // Word offset of the U plane; the V plane follows it.
    u_offset_words: u32,
    v_offset_words: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
};

@group(0) @binding(0) var<uniform> plane_layout: Layout;
@group(0) @binding(1) var source: texture_2d<f32>;
@group(0) @binding(2) var<storage, read_write> planes: array<u32>;

fn rgb_at(x: u32, y: u32) -> vec3<f32> {
    let cx = min(x, plane_layout.width - 1u);
    let cy = min(y, plane_layout.height - 1u);
    return textureLoad(source, vec2<i32>(i32(cx), i32(cy)), 0).rgb;
}

@compute @workgroup_size(8, 8, 1)
fn cs_main(@builtin(global_invocation_id) id: vec3<u32>) {
    let x0 = id.x * 8u;
    let y0 = id.y * 2u;
    if (x0 >= plane_layout.width || y0 >= plane_layout.height) {
        return;
    }
    var u_word = 0u;
    var v_word = 0u;
    for (var row = 0u; row < 2u; row = row + 1u) {
        for (var word = 0u; word < 2u; word = word + 1u) {
            let x = x0 + word * 4u;
            let y = y0 + row;
            let index = (y * plane_layout.y_stride + x) / 4u;
            planes[index] = y_word(rgb_at(x, y), rgb_at(x + 1u, y), rgb_at(x + 2u, y), rgb_at(x + 3u, y));
        }
    }
    for (var pair = 0u; pair < 4u; pair = pair + 1u) {
        let x = x0 + pair * 2u;
        let rgb = (rgb_at(x, y0) + rgb_at(x + 1u, y0) + rgb_at(x, y0 + 1u) + rgb_at(x + 1u, y0 + 1u)) * 0.25;
        u_word = u_word | (cb_code(rgb) << (pair * 8u));
        v_word = v_word | (cr_code(rgb) << (pair * 8u));
    }
    let chroma_index = ((y0 / 2u) * (plane_layout.y_stride / 2u) + x0 / 2u) / 4u;
    planes[plane_layout.u_offset_words + chroma_index] = u_word;
    planes[plane_layout.v_offset_words + chroma_index] = v_word;
}
