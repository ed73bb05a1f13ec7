//! Smoke test of the capture station demo: its config loads, the station runs
//! on it and frames reach the end of the live path at the configured rate.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use scopecast_engine::clock::{SharedClock, SystemClock};
use scopecast_engine::config::Config;
use scopecast_engine::shutdown::Shutdown;
use scopecast_engine::station::Station;

#[test]
fn the_capture_station_demo_runs_at_its_configured_rate() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("capture-station/station.toml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let clock: SharedClock = Arc::new(SystemClock::new());
    let station = Station::start(&config, clock.clone(), Shutdown::new()).expect("the station starts");
    let delivered = || station.registry.stage_frames("sink").get();
    let produced = || station.registry.stage_frames("source").get();
    // Let the one-off tables build, then count frames over two seconds.
    std::thread::sleep(Duration::from_millis(1000));
    let (delivered_before, produced_before) = (delivered(), produced());
    std::thread::sleep(Duration::from_secs(2));
    let delivered = delivered() - delivered_before;
    let produced = produced() - produced_before;
    let status = station.source_status.lock().expect("status").clone();
    let metrics = station.render_metrics(clock.now_ns());
    let station_gpu = station.gpu.clone();
    assert!(station.stop(Duration::from_secs(1)), "stops within a second");
    assert_eq!(status.no_signal, None, "the synthetic source never loses signal");
    assert_eq!(status.size, Some((config.source.width, config.source.height)));
    for series in [
        "scopecast_stage_latency_seconds{stage=\"sink\",quantile=\"0.99\"}",
        "scopecast_stage_latency_seconds{stage=\"compositor\",quantile=\"0.5\"}",
        "scopecast_stage_fps{stage=\"source\"}",
        "scopecast_slot_depth{slot=\"source_to_compositor\"}",
        "scopecast_slot_dropped_total{slot=\"source_to_compositor\"}",
        "scopecast_slot_depth{slot=\"compositor_out\"}",
        "scopecast_stage_latency_seconds{stage=\"encoder\",quantile=\"0.5\"}",
        "scopecast_encoder_keyframes_total",
        "scopecast_slot_depth{slot=\"encoder_out\"}",
        "scopecast_source_up 1",
    ] {
        assert!(metrics.contains(series), "/metrics lacks {series}:\n{metrics}");
    }
    // The rates are bench figures (software GPUs are slow); here: frames flow end to end,
    // and the source is never held back by the compositor (it costs frames, not rate).
    assert!(delivered >= 2, "{delivered} composited frames delivered in 2 s");
    // Frames in flight when the window opened (produced before it, delivered in it): at
    // most one per slot and stage between the two counters.
    const IN_FLIGHT: u64 = 4;
    assert!(
        produced + IN_FLIGHT >= delivered,
        "the source produced {produced}, the sink got {delivered} (more than {IN_FLIGHT} were in flight)"
    );
    assert!(station_gpu.is_some(), "the demo composites on a GPU adapter");
}
