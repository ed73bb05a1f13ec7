//! The compositor's memory over time: renders 1200 frames (no anatomy, the
//! compose and I420 passes every frame) on the adapter `GpuContext` picks
//! (`SCOPECAST_BENCH_SOFTWARE=1`: lavapipe) and prints the process's resident
//! size every 300 frames and the growth per frame. A station runs for hours:
//! anything above a few bytes per frame is a leak.
//!
//! Measured: NVIDIA H100 (Vulkan) flat (200 MB at frame 0 and 1200);
//! lavapipe (Mesa 22.3, LLVM 15) grows about 420 kB per frame at any frame
//! size, from the compose draw alone (without its draw call: 13 kB/frame) —
//! a Mesa llvmpipe leak, not ours; see ARCHITECTURE.md.
//!
//! Run with `cargo bench -p scopecast-benches --bench compositor_memory`.

use std::sync::Arc;

use scopecast_engine::compositor::gpu::{AdapterPreference, GpuContext};
use scopecast_engine::compositor::{Compositor, CompositorSettings};
use scopecast_engine::frame::{Frame, FrameBytes, FrameContent, FrameStamp, PixelFormat};
use scopecast_engine::scene::Scene;

/// Resident set size of this process, kB (from /proc/self/statm, 4 kB pages).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .unwrap_or(0)
        * 4
}

fn main() {
    let preference = if std::env::var("SCOPECAST_BENCH_SOFTWARE").is_ok_and(|v| v == "1") {
        AdapterPreference::Software
    } else {
        AdapterPreference::HighPerformance
    };
    let ctx = GpuContext::new(preference).expect("a GPU adapter (or lavapipe)");
    let mut compositor = Compositor::new(ctx.clone(), CompositorSettings::default());
    let (width, height) = (1280u32, 720u32);
    let (planes, len) = PixelFormat::Rgba8.packed_layout(width, height);
    let bytes: Arc<dyn FrameBytes> = Arc::new(vec![90u8; len]);
    let frame = Frame::new(
        PixelFormat::Rgba8,
        width,
        height,
        planes,
        bytes,
        FrameStamp { sequence: 0, capture_time_ns: 0, capture_wall_ms: 0 },
        FrameContent::Live,
    )
    .expect("frame");
    println!("compositor memory on {}, 720p:", ctx.describe());
    let start = rss_kb();
    for i in 0..=1200 {
        compositor.render(&frame, &Scene::default()).expect("renders");
        let _ = compositor.drain_i420();
        if i % 300 == 0 {
            println!("  frame {i:>4}: resident {} kB", rss_kb());
        }
    }
    let grown = rss_kb().saturating_sub(start);
    println!("  growth {grown} kB over 1200 frames: {:.1} kB per frame", grown as f64 / 1200.0);
}
