// The fused pass of software adapters (lavapipe): compose, annotations,
// timecode strip and I420 in one compute pass, so the frame is never written
// to a texture and read back between passes. Prepended at build time:
// compose_common.wgsl (group 0 and `composed`), bt709_i420.wgsl and
// timecode_cells.wgsl.
//
// Per pixel, exactly what the separate passes do: `composed`, then the
// annotation layer (premultiplied, drawn into its own target this frame) over
// it, quantised to 8 bits as the RGBA output texture stores it, then the
// strip's cells over the bottom-left. The colour goes to the RGBA output (the
// monitor and snapshots read it) and into the I420 planes. One invocation
// converts an 8x2 block (as rgba_to_i420.wgsl): 16 Y bytes, 4 U and 4 V.

struct Fused {
    width: u32,
    height: u32,
    // Bytes per Y row (a multiple of 8).
    y_stride: u32,
    // Word offsets of the U and V planes.
    u_offset_words: u32,
    v_offset_words: u32,
    // 1: the annotation layer holds something this frame.
    annotations: u32,
    // 1: stamp the timecode strip.
    stamp: u32,
    _pad: u32,
};

@group(1) @binding(0) var<uniform> fused: Fused;
@group(1) @binding(1) var<uniform> strip: Timecode;
@group(1) @binding(2) var annotation_layer: texture_2d<f32>;
@group(1) @binding(3) var<storage, read_write> planes: array<u32>;
@group(1) @binding(4) var output: texture_storage_2d<rgba8unorm, write>;

// The final colour of pixel (x, y), also stored in the RGBA output.
fn final_colour(x: u32, y: u32) -> vec3<f32> {
    let pixel = vec2<i32>(i32(min(x, fused.width - 1u)), i32(min(y, fused.height - 1u)));
    var colour = composed(pixel);
    if (fused.annotations == 1u) {
        let mark = textureLoad(annotation_layer, pixel, 0);
        colour = mark.rgb + colour * (1.0 - mark.a);
    }
    colour = round(clamp(colour, vec3<f32>(0.0), vec3<f32>(1.0)) * 255.0) / 255.0;
    let cell = strip.cell;
    if (fused.stamp == 1u && u32(pixel.y) + cell >= fused.height && u32(pixel.x) < cell * 40u) {
        colour = vec3<f32>(f32(cell_bit(strip, u32(pixel.x) / cell)));
    }
    if (x < fused.width && y < fused.height) {
        textureStore(output, pixel, vec4<f32>(colour, 1.0));
    }
    return colour;
}

@compute @workgroup_size(8, 8, 1)
fn cs_main(@builtin(global_invocation_id) id: vec3<u32>) {
    let x0 = id.x * 8u;
    let y0 = id.y * 2u;
    if (x0 >= fused.width || y0 >= fused.height) {
        return;
    }
    var block: array<vec3<f32>, 16>;
    for (var row = 0u; row < 2u; row = row + 1u) {
        for (var column = 0u; column < 8u; column = column + 1u) {
            block[row * 8u + column] = final_colour(x0 + column, y0 + row);
        }
    }
    for (var row = 0u; row < 2u; row = row + 1u) {
        for (var word = 0u; word < 2u; word = word + 1u) {
            var packed = 0u;
            for (var byte = 0u; byte < 4u; byte = byte + 1u) {
                packed = packed | (y_code(block[row * 8u + word * 4u + byte]) << (byte * 8u));
            }
            planes[((y0 + row) * fused.y_stride + x0 + word * 4u) / 4u] = packed;
        }
    }
    var u_word = 0u;
    var v_word = 0u;
    for (var pair = 0u; pair < 4u; pair = pair + 1u) {
        let i = pair * 2u;
        let rgb = (block[i] + block[i + 1u] + block[i + 8u] + block[i + 9u]) * 0.25;
        u_word = u_word | (cb_code(rgb) << (pair * 8u));
        v_word = v_word | (cr_code(rgb) << (pair * 8u));
    }
    let chroma_index = ((y0 / 2u) * (fused.y_stride / 2u) + x0 / 2u) / 4u;
    planes[fused.u_offset_words + chroma_index] = u_word;
    planes[fused.v_offset_words + chroma_index] = v_word;
}
