// The station's own monitor: one textured rectangle per draw, in window pixels.
// Draw 1 is the composited frame, letterboxed into the window; draw 2 the HUD
// image (premultiplied alpha, blended over the frame by the pipeline). The
// composited frame is shown 1:1 when the window has its size (nearest
// sampling then, so the picture is exactly the stream's pixels).

struct Quad {
    // Destination rectangle in window pixels: x, y, width, height.
    rect: vec4<f32>,
    // Window size in pixels.
    window: vec2<f32>,
    _pad: vec2<f32>,
};

@group(0) @binding(0) var<uniform> quad: Quad;
@group(0) @binding(1) var image: texture_2d<f32>;
@group(0) @binding(2) var image_sampler: sampler;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VertexOut {
    // Two triangles: corners (0,0) (1,0) (0,1) (1,0) (1,1) (0,1).
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(0.0, 0.0), vec2<f32>(1.0, 0.0), vec2<f32>(0.0, 1.0),
        vec2<f32>(1.0, 0.0), vec2<f32>(1.0, 1.0), vec2<f32>(0.0, 1.0),
    );
    let c = corners[index];
    let pixel = quad.rect.xy + c * quad.rect.zw;
    var out: VertexOut;
    out.position = vec4<f32>(pixel.x / quad.window.x * 2.0 - 1.0, 1.0 - pixel.y / quad.window.y * 2.0, 0.0, 1.0);
    out.uv = c;
    return out;
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    return textureSampleLevel(image, image_sampler, in.uv, 0.0);
}
