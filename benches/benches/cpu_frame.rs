//! The CPU plan's per-frame work (`compositor::cpu_frame`, what a software
//! adapter's station does for each frame): the video remapped through the
//! undistortion table (bilinear) or taken 1:1, a premultiplied layer laid
//! over it, the strip, and BT.709 I420, on one core, at 720p and 1080p: each
//! step alone, and in the one sweep of row pairs the station runs, with the
//! widest kernels this CPU has (AVX2, `cpu_frame/avx2.rs`) and with the
//! scalar code (SSE2 bilinear) beside them. The layer covers about a third of
//! the frame (an organ and marks), the rest is transparent, as in the demo.
//!
//! Run with `cargo bench -p scopecast-benches --bench cpu_frame`.

use scopecast_benches::{Timings, ms};
use scopecast_engine::compositor::cpu_frame::{
    CpuFrame, Kernels, VideoGather, compose_i420, compose_rgba, rgba_to_i420,
};
use scopecast_engine::compositor::readback::I420Layout;
use scopecast_engine::compositor::remap;
use scopecast_engine::config::SyntheticConfig;
use scopecast_engine::source::synthetic::synthetic_camera;

const ITERATIONS: usize = 200;
/// Video frames the cases take in turn.
const VIDEO_FRAMES: usize = 4;

/// A case: its name, the table (undistorted mode) and the layer, if any.
type Case<'a> = (&'a str, Option<&'a VideoGather>, Option<&'a [u32]>);

fn main() {
    println!("CPU plan per frame, one core ({ITERATIONS} frames per case):");
    println!("{:<40} {:>9} {:>9}", "case", "p50 ms", "p99 ms");
    for (width, height) in [(1280u32, 720u32), (1920, 1080)] {
        let (w, h) = (width as usize, height as usize);
        let camera = synthetic_camera(width, height, &SyntheticConfig::default());
        let gather = VideoGather::from_table(&remap::undistort_video(&camera, width, height));
        // Four video frames in turn, as the source's buffer pool hands them over: each
        // frame arrives from memory or another core's cache, never hot in this one's.
        let videos: Vec<Vec<u8>> = (0..VIDEO_FRAMES)
            .map(|k| (0..w * h).flat_map(|i| [((i + k) % 251) as u8, (i % 241) as u8, (i % 239) as u8, 255]).collect())
            .collect();
        let mut turn = 0usize;
        let mut next_video = || {
            turn += 1;
            videos[turn % VIDEO_FRAMES].as_slice()
        };
        let layer: Vec<u32> =
            (0..w * h).map(|i| if (i % w) * 3 < w { u32::from_le_bytes([90, 30, 20, 200]) } else { 0 }).collect();
        let mut out = vec![0u32; w * h];
        let layout = I420Layout::new(width, height);
        let mut i420 = vec![0u8; layout.size() as usize];
        let cases: [Case<'_>; 4] = [
            ("remap + layer", Some(&gather), Some(&layer)),
            ("remap, no layer", Some(&gather), None),
            ("1:1 + layer", None, Some(&layer)),
            ("1:1, no layer", None, None),
        ];
        for (kernels, which) in [(Kernels::Widest, "widest"), (Kernels::Scalar, "scalar")] {
            for (name, gather, layer) in cases {
                let frame = |video| CpuFrame {
                    video,
                    video_stride: w * 4,
                    size: (width, height),
                    gather,
                    layer,
                    strip_ms: Some(0),
                    kernels,
                };
                let timings = Timings::measure(5, ITERATIONS, || {
                    compose_rgba(&frame(next_video()), &mut out).expect("composes");
                });
                let label = format!("{height}p {which} compose {name}");
                println!("{label:<40} {:>9} {:>9}", ms(timings.quantile(0.5)), ms(timings.quantile(0.99)));
                let timings = Timings::measure(5, ITERATIONS, || {
                    compose_i420(&frame(next_video()), &layout, &mut i420, None).expect("composes");
                });
                let label = format!("{height}p {which} compose+I420 {name}");
                println!(
                    "{label:<40} {:>9} {:>9}  (one sweep, as the station runs it)",
                    ms(timings.quantile(0.5)),
                    ms(timings.quantile(0.99))
                );
            }
            let timings = Timings::measure(5, ITERATIONS, || {
                rgba_to_i420(bytemuck::cast_slice(&out), (width, height), &layout, &mut i420, kernels)
                    .expect("converts");
            });
            let label = format!("{height}p {which} I420 alone");
            println!("{label:<40} {:>9} {:>9}", ms(timings.quantile(0.5)), ms(timings.quantile(0.99)));
        }
    }
}
