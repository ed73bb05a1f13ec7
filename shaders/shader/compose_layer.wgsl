// The CPU plan's layer (software adapters, `PassPlan::Cpu`): per output
// pixel, the annotation layer over the anatomy overlay (both premultiplied),
// packed as RGBA8 into a buffer the station reads back when the layer
// changes. "Over" is associative, so the CPU lays this one layer over the
// video: marks over (overlay over video) = (marks over overlay) over video.
// Prepended at build time: compose_common.wgsl (group 0 and `overlay_at`).

struct Layer {
    width: u32,
    height: u32,
    // 1: the annotation layer holds something this frame.
    annotations: u32,
    _pad: u32,
};

@group(1) @binding(0) var<uniform> layer: Layer;
@group(1) @binding(1) var annotation_layer: texture_2d<f32>;
// One packed RGBA8 word per output pixel, row-major (pack4x8unorm: red in the low byte).
@group(1) @binding(2) var<storage, read_write> packed: array<u32>;

@compute @workgroup_size(8, 8, 1)
fn cs_main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= layer.width || id.y >= layer.height) {
        return;
    }
    let pixel = vec2<i32>(id.xy);
    let identity_uv = (vec2<f32>(pixel) + vec2<f32>(0.5)) / params.output_size;
    let mapped = textureLoad(remap, pixel, 0).xy;
    var colour = overlay_at(pixel, identity_uv, mapped);
    if (layer.annotations == 1u) {
        let mark = textureLoad(annotation_layer, pixel, 0);
        colour = mark + colour * (1.0 - mark.a);
    }
    packed[id.y * layer.width + id.x] = pack4x8unorm(clamp(colour, vec4<f32>(0.0), vec4<f32>(1.0)));
}
