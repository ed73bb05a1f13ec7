//! Per-frame cost of the synthetic endoscope, the station's default source.
//!
//! Target (issue 2): at most a quarter of one core at 720p60, i.e. a mean of
//! at most 4.17 ms per frame. The source is driven on a fake clock so only
//! rendering is timed, never pacing. Run with
//! `cargo bench -p scopecast-benches --bench synthetic_source`.

use std::sync::Arc;

use scopecast_benches::{Timings, ms};
use scopecast_engine::clock::{FakeClock, NS_PER_S};
use scopecast_engine::config::SyntheticConfig;
use scopecast_engine::source::FrameSource;
use scopecast_engine::source::synthetic::SyntheticEndoscope;

fn main() {
    println!("synthetic endoscope, per frame (render only, fake clock):");
    println!("{:<12} {:>9} {:>9} {:>9} {:>14}", "case", "p50 ms", "p99 ms", "mean ms", "share of core");
    for (width, height, fps) in [(1280, 720, 30), (1280, 720, 60), (1920, 1080, 30), (1920, 1080, 60)] {
        let clock = Arc::new(FakeClock::new(0, 0));
        let mut source = SyntheticEndoscope::new(width, height, fps, &SyntheticConfig::default(), clock);
        if let Err(e) = source.start() {
            panic!("synthetic source failed to start: {e}");
        }
        let timings = Timings::measure(30, 600, || {
            let frame = source.next_frame(NS_PER_S).ok().flatten();
            assert!(frame.is_some(), "a frame every call on the fake clock");
        });
        let share = timings.mean().as_secs_f64() * f64::from(fps);
        println!(
            "{:<12} {:>9} {:>9} {:>9} {:>13.1}%",
            format!("{height}p{fps}"),
            ms(timings.quantile(0.5)),
            ms(timings.quantile(0.99)),
            ms(timings.mean()),
            share * 100.0
        );
    }
}
