// The fused pass of software adapters (lavapipe): compose, annotations,
// timecode strip and I420 in one compute pass, so the frame is never written
// to a texture and read back between passes. Prepended at build time:
// compose_common.wgsl (group 0 and `composed`), bt709_i420.wgsl and
// timecode_cells.wgsl.
//
// Per pixel, exactly what the separate passes do: `composed`, then the
// annotation layer (premultiplied, drawn into its own target this frame) over
// it, quantised to 8 bits as the RGBA output texture stores it, then the
// strip's cells over the bottom-left. The colour goes into the I420 planes
// and, when the monitor or a snapshot needs it, to the RGBA output. One invocation
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
    // 1: also write the RGBA output (for the monitor or a snapshot; on
    // lavapipe the store costs more than the rest of the pass).
    store_rgba: u32,
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
    if (fused.store_rgba == 1u && x < fused.width && y < fused.height) {
        textureStore(output, pixel, vec4<f32>(colour, 1.0));
    }
    return colour;
}

// The mean colour of a 2x2 block.
fn mean4(a: vec3<f32>, b: vec3<f32>, c: vec3<f32>, d: vec3<f32>) -> vec3<f32> {
    return (a + b + c + d) * 0.25;
}

// Written out pixel by pixel (no local array: a dynamically indexed array
// lives in memory on lavapipe, which made this pass slower than the two it
// replaces).
@compute @workgroup_size(8, 8, 1)
fn cs_main(@builtin(global_invocation_id) id: vec3<u32>) {
    let x = id.x * 8u;
    let y = id.y * 2u;
    if (x >= fused.width || y >= fused.height) {
        return;
    }
    let a0 = final_colour(x, y);
    let a1 = final_colour(x + 1u, y);
    let a2 = final_colour(x + 2u, y);
    let a3 = final_colour(x + 3u, y);
    let a4 = final_colour(x + 4u, y);
    let a5 = final_colour(x + 5u, y);
    let a6 = final_colour(x + 6u, y);
    let a7 = final_colour(x + 7u, y);
    let b0 = final_colour(x, y + 1u);
    let b1 = final_colour(x + 1u, y + 1u);
    let b2 = final_colour(x + 2u, y + 1u);
    let b3 = final_colour(x + 3u, y + 1u);
    let b4 = final_colour(x + 4u, y + 1u);
    let b5 = final_colour(x + 5u, y + 1u);
    let b6 = final_colour(x + 6u, y + 1u);
    let b7 = final_colour(x + 7u, y + 1u);
    let row0 = (y * fused.y_stride + x) / 4u;
    let row1 = ((y + 1u) * fused.y_stride + x) / 4u;
    planes[row0] = y_word(a0, a1, a2, a3);
    planes[row0 + 1u] = y_word(a4, a5, a6, a7);
    planes[row1] = y_word(b0, b1, b2, b3);
    planes[row1 + 1u] = y_word(b4, b5, b6, b7);
    let m0 = mean4(a0, a1, b0, b1);
    let m1 = mean4(a2, a3, b2, b3);
    let m2 = mean4(a4, a5, b4, b5);
    let m3 = mean4(a6, a7, b6, b7);
    let chroma_index = ((y / 2u) * (fused.y_stride / 2u) + x / 2u) / 4u;
    planes[fused.u_offset_words + chroma_index] =
        cb_code(m0) | (cb_code(m1) << 8u) | (cb_code(m2) << 16u) | (cb_code(m3) << 24u);
    planes[fused.v_offset_words + chroma_index] =
        cr_code(m0) | (cr_code(m1) << 8u) | (cr_code(m2) << 16u) | (cr_code(m3) << 24u);
}
