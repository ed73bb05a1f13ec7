// The timecode strip drawn as a fragment pass over the strip (its cells:
// timecode_cells.wgsl, prepended at build time).

@group(0) @binding(0) var<uniform> timecode: Timecode;

@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> @builtin(position) vec4<f32> {
    let x = f32((index << 1u) & 2u);
    let y = f32(index & 2u);
    return vec4<f32>(x * 2.0 - 1.0, 1.0 - y * 2.0, 0.0, 1.0);
}

@fragment
fn fs_main(@builtin(position) position: vec4<f32>) -> @location(0) vec4<f32> {
    // The viewport and scissor cover exactly the strip; pixel coordinates are absolute.
    let index = u32(floor(position.x)) / timecode.cell;
    let value = f32(cell_bit(timecode, min(index, 39u)));
    return vec4<f32>(value, value, value, 1.0);
}
