// The compose pass's bindings and per-pixel work (compose.wgsl draws it as a
// fragment shader, compose_fused.wgsl in one compute pass with the annotations,
// the timecode and I420): the video frame (optionally undistorted through a remap table)
// with the anatomy overlay (optionally distorted through the same table)
// blended over it. Output pixel (x, y) is the pixel whose centre lies at
// (x + 0.5, y + 0.5) in the output image.
//
// Formats: 0 = RGBA (plane0 holds RGBA), 1 = I420 (plane0 Y, plane1 U,
// plane2 V), 2 = NV12 (plane0 Y, plane1 UV). YUV input is converted with the
// BT.709 limited-range matrix (ITU-R BT.709-6), what HD endoscope cameras and
// GStreamer's decoders deliver for 720p and up.

struct ComposeParams {
    // 0 RGBA, 1 I420, 2 NV12.
    format: u32,
    // 1: the video is undistorted (sampled through `remap`); 0: shown as captured.
    undistort_video: u32,
    // 1: the overlay is distorted (sampled through `remap`); 0: sampled 1:1.
    distort_overlay: u32,
    // 1: draw the overlay at all.
    overlay_visible: u32,
    // Output size in pixels.
    output_size: vec2<f32>,
    _pad: vec2<f32>,
};

@group(0) @binding(0) var<uniform> params: ComposeParams;
@group(0) @binding(1) var plane0: texture_2d<f32>;
@group(0) @binding(2) var plane1: texture_2d<f32>;
@group(0) @binding(3) var plane2: texture_2d<f32>;
@group(0) @binding(4) var video_sampler: sampler;
// Per output pixel: the normalized texture coordinate to sample, in the video
// (undistorted mode) or in the overlay (distorted mode); negative = outside.
@group(0) @binding(5) var remap: texture_2d<f32>;
@group(0) @binding(6) var overlay: texture_2d<f32>;
@group(0) @binding(7) var overlay_sampler: sampler;

fn yuv_to_rgb(y: f32, u: f32, v: f32) -> vec3<f32> {
    // BT.709 limited range: Y in [16, 235], Cb/Cr in [16, 240] (8-bit codes).
    let yl = (y * 255.0 - 16.0) / 219.0;
    let cb = (u * 255.0 - 128.0) / 224.0;
    let cr = (v * 255.0 - 128.0) / 224.0;
    let r = yl + 1.5748 * cr;
    let g = yl - 0.1873 * cb - 0.4681 * cr;
    let b = yl + 1.8556 * cb;
    return clamp(vec3<f32>(r, g, b), vec3<f32>(0.0), vec3<f32>(1.0));
}

fn sample_video(uv: vec2<f32>) -> vec3<f32> {
    if (params.format == 0u) {
        return textureSampleLevel(plane0, video_sampler, uv, 0.0).rgb;
    }
    let y = textureSampleLevel(plane0, video_sampler, uv, 0.0).r;
    if (params.format == 1u) {
        let u = textureSampleLevel(plane1, video_sampler, uv, 0.0).r;
        let v = textureSampleLevel(plane2, video_sampler, uv, 0.0).r;
        return yuv_to_rgb(y, u, v);
    }
    let uv_pair = textureSampleLevel(plane1, video_sampler, uv, 0.0).rg;
    return yuv_to_rgb(y, uv_pair.x, uv_pair.y);
}

// The overlay's premultiplied colour at output pixel `pixel` (centre at
// `identity_uv`; `mapped` is the remap table's entry there): transparent
// where there is none. compose_layer.wgsl packs it for the CPU plan.
fn overlay_at(pixel: vec2<i32>, identity_uv: vec2<f32>, mapped: vec2<f32>) -> vec4<f32> {
    if (params.overlay_visible != 1u) {
        return vec4<f32>(0.0);
    }
    var overlay_uv = identity_uv;
    if (params.distort_overlay == 1u) {
        overlay_uv = mapped;
    }
    if (!(all(overlay_uv >= vec2<f32>(0.0)) && all(overlay_uv <= vec2<f32>(1.0)))) {
        return vec4<f32>(0.0);
    }
    // Undistorted, the overlay matches the output pixel for pixel and is
    // loaded, not filtered.
    if (params.distort_overlay == 1u) {
        return textureSampleLevel(overlay, overlay_sampler, overlay_uv, 0.0);
    }
    return textureLoad(overlay, pixel, 0);
}

// The composed colour of output pixel `pixel` (its centre at pixel + 0.5):
// the video, undistorted or as captured, with the overlay over it.
fn composed(pixel: vec2<i32>) -> vec3<f32> {
    let identity_uv = (vec2<f32>(pixel) + vec2<f32>(0.5)) / params.output_size;
    let mapped = textureLoad(remap, pixel, 0).xy;

    var colour = vec3<f32>(0.0);
    if (params.undistort_video == 1u) {
        if (all(mapped >= vec2<f32>(0.0)) && all(mapped <= vec2<f32>(1.0))) {
            colour = sample_video(mapped);
        }
    } else if (params.format == 0u) {
        // 1:1 with the output: a load, no filtering.
        colour = textureLoad(plane0, pixel, 0).rgb;
    } else {
        colour = sample_video(identity_uv);
    }

    // The overlay is premultiplied: colour over video.
    if (params.overlay_visible == 1u) {
        let o = overlay_at(pixel, identity_uv, mapped);
        colour = o.rgb + colour * (1.0 - o.a);
    }
    return colour;
}
