//! H.264 encode time per frame (push to access unit out), p50/p99, for each
//! encoder at 720p and 1080p, on moving synthetic endoscope frames converted
//! to I420. Goal (issue 5): the default encoder at most 3 ms median per 720p
//! frame on this machine.
//!
//! Run with `cargo bench -p scopecast-benches --bench encoder`.

use std::sync::Arc;

use scopecast_benches::{Timings, ms};
use scopecast_engine::clock::{FakeClock, NS_PER_S};
use scopecast_engine::config::SyntheticConfig;
use scopecast_engine::encoder::{EncoderKind, EncoderSettings};
use scopecast_engine::snapshot::i420_from;
use scopecast_engine::source::FrameSource;
use scopecast_engine::source::synthetic::SyntheticEndoscope;

const FRAMES: usize = 240;

fn main() {
    println!("H.264 encode per frame ({FRAMES} frames of the moving synthetic endoscope, 1 s GOP):");
    for (width, height, fps, kbps) in [(1280u32, 720u32, 60u32, 6000u32), (1920, 1080, 60, 10_000)] {
        let clock = Arc::new(FakeClock::new(0, 1_764_158_400_000));
        let mut source = SyntheticEndoscope::new(width, height, fps, &SyntheticConfig::default(), clock);
        if let Err(e) = source.start() {
            panic!("{e}");
        }
        let frames: Vec<_> =
            (0..FRAMES).filter_map(|_| source.next_frame(NS_PER_S).ok().flatten()).map(|f| i420_from(&f)).collect();
        for kind in [EncoderKind::X264, EncoderKind::Openh264, EncoderKind::Embedded] {
            let settings = EncoderSettings { kind, width, height, fps, bitrate_kbps: kbps, keyframe_interval: fps };
            let mut encoder = match scopecast_engine::encoder::open(settings) {
                Ok(e) => e,
                Err(e) => panic!("{kind:?}: {e}"),
            };
            let mut index = 0;
            let mut bytes = 0usize;
            let timings = Timings::measure(10, FRAMES - 10, || {
                let frame = &frames[index % frames.len()];
                index += 1;
                if let Ok(Some(au)) = encoder.encode(frame, false) {
                    bytes += au.data.len();
                }
            });
            println!(
                "{:<10} {height}p{fps}: p50 {} ms  p99 {} ms  ({:.1} Mbit/s at {kbps} kbit/s target)",
                format!("{kind:?}"),
                ms(timings.quantile(0.5)),
                ms(timings.quantile(0.99)),
                bytes as f64 * 8.0 * f64::from(fps) / index as f64 / 1e6
            );
        }
    }
}
