// Annotations: anti-aliased capsules (stroke segments, arrow shafts and heads)
// and boxes (text glyph pixels), one instance each, in output pixel
// coordinates with the origin at the top-left corner and pixel centres at
// integer + 0.5. Coverage comes from the signed distance to the shape, so
// edges are smooth over about one pixel at any angle.

struct Frame {
    // Output size in pixels.
    size: vec2<f32>,
    _pad: vec2<f32>,
};

@group(0) @binding(0) var<uniform> frame: Frame;

struct Instance {
    // Segment end points, px.
    @location(0) p0: vec2<f32>,
    @location(1) p1: vec2<f32>,
    // x: half width (px), y: kind (0 capsule, 1 box).
    @location(2) shape: vec2<f32>,
    // Straight (not premultiplied) RGBA.
    @location(3) colour: vec4<f32>,
};

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) pixel: vec2<f32>,
    @location(1) p0: vec2<f32>,
    @location(2) p1: vec2<f32>,
    @location(3) shape: vec2<f32>,
    @location(4) colour: vec4<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) corner: u32, instance: Instance) -> VertexOut {
    // The shape's bounding box grown by one pixel for the anti-aliased edge.
    let grow = instance.shape.x + 1.0;
    let lo = min(instance.p0, instance.p1) - vec2<f32>(grow);
    let hi = max(instance.p0, instance.p1) + vec2<f32>(grow);
    let pick = vec2<f32>(f32(corner & 1u), f32((corner >> 1u) & 1u));
    let pixel = mix(lo, hi, pick);
    var out: VertexOut;
    out.position = vec4<f32>(pixel.x / frame.size.x * 2.0 - 1.0, 1.0 - pixel.y / frame.size.y * 2.0, 0.0, 1.0);
    out.pixel = pixel;
    out.p0 = instance.p0;
    out.p1 = instance.p1;
    out.shape = instance.shape;
    out.colour = instance.colour;
    return out;
}

fn capsule_distance(p: vec2<f32>, a: vec2<f32>, b: vec2<f32>) -> f32 {
    let ab = b - a;
    let t = clamp(dot(p - a, ab) / max(dot(ab, ab), 1e-6), 0.0, 1.0);
    return length(p - (a + ab * t));
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    var coverage: f32;
    if (in.shape.y < 0.5) {
        coverage = clamp(in.shape.x - capsule_distance(in.pixel, in.p0, in.p1) + 0.5, 0.0, 1.0);
    } else {
        // Box from p0 to p1: coverage of the pixel square by the box, per axis.
        let lo = min(in.p0, in.p1);
        let hi = max(in.p0, in.p1);
        let cover = clamp(min(in.pixel - lo, hi - in.pixel) + 0.5, vec2<f32>(0.0), vec2<f32>(1.0));
        coverage = cover.x * cover.y;
    }
    let a = in.colour.a * coverage;
    if (a <= 0.0) {
        discard;
    }
    return vec4<f32>(in.colour.rgb * a, a);
}
