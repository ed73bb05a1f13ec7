// Anatomy overlay: triangle meshes in the camera frame (+Z forward, +Y down),
// projected by `clip_from_camera`, which the engine derives from the calibrated
// intrinsics (see engine/src/compositor/projection.rs). Output is premultiplied
// alpha into the overlay target.

struct ModelUniform {
    clip_from_model: mat4x4<f32>,
    camera_from_model: mat4x4<f32>,
    // Linear RGB colour and opacity.
    colour: vec4<f32>,
    // x: style (0 solid shaded, 1 wireframe, 2 silhouette), y..w unused.
    style: vec4<f32>,
};

@group(0) @binding(0) var<uniform> model: ModelUniform;

struct VertexIn {
    @location(0) position: vec3<f32>,
    @location(1) normal: vec3<f32>,
};

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) normal_in_camera: vec3<f32>,
    @location(1) point_in_camera: vec3<f32>,
};

@vertex
fn vs_main(in: VertexIn) -> VertexOut {
    var out: VertexOut;
    out.position = model.clip_from_model * vec4<f32>(in.position, 1.0);
    out.normal_in_camera = (model.camera_from_model * vec4<f32>(in.normal, 0.0)).xyz;
    out.point_in_camera = (model.camera_from_model * vec4<f32>(in.position, 1.0)).xyz;
    return out;
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let style = u32(model.style.x);
    let alpha = model.colour.a;
    if (style == 1u) {
        // Wireframe: flat colour.
        return vec4<f32>(model.colour.rgb * alpha, alpha);
    }
    let n = normalize(in.normal_in_camera);
    let view = normalize(-in.point_in_camera);
    let facing = abs(dot(n, view));
    if (style == 2u) {
        // Silhouette: opaque at grazing angles, clear where the surface faces the scope.
        let rim = pow(1.0 - facing, 3.0);
        let a = alpha * rim;
        return vec4<f32>(model.colour.rgb * a, a);
    }
    // Solid: a headlight at the scope tip (Lambert) plus a little ambient.
    let shade = 0.35 + 0.65 * facing;
    return vec4<f32>(model.colour.rgb * shade * alpha, alpha);
}
