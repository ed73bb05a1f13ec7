//! Temporal calibration on the tracked phantom: the synthetic scope wiggles
//! over the phantom with its picture 40 ms older than its stamps, the
//! simulated tracker publishes the true poses over OpenIGTLink, and
//! `measure_delay` (what `scopecast calibrate delay` runs) finds the 40 ms
//! from the picture's motion against the tracker's.

use std::path::Path;
use std::sync::Arc;

use scopecast_engine::clock::{SharedClock, SystemClock};
use scopecast_engine::config::{Config, ModelConfig, PoseLinkConfig, TrackedPhantomConfig, TrackerConfig};
use scopecast_engine::source::phantom::PathShape;
use scopecast_engine::station::delay::measure_delay;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn config(injected_ms: f64) -> Config {
    let phantom = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demos/tracked-scope/phantom");
    let port = free_port();
    let mut config = Config::default();
    config.source.uri = "synthetic".into();
    (config.source.width, config.source.height, config.source.fps) = (640, 360, 30);
    config.source.synthetic.instrument = false;
    config.source.synthetic.tracked = Some(TrackedPhantomConfig {
        phantom: phantom.join("phantom.json"),
        camera_from_scope: phantom.join("camera_from_scope.json"),
        path: PathShape::Wiggle,
        video_delay_ms: injected_ms,
        listen: format!("127.0.0.1:{port}"),
        ..Default::default()
    });
    config.tracking.trackers = vec![TrackerConfig {
        name: "simulated".into(),
        connect: Some(format!("127.0.0.1:{port}")),
        tracker_timestamps: true,
        ..Default::default()
    }];
    let link = |tracked: Option<&str>, file: Option<&str>, inverse| PoseLinkConfig {
        tracked: tracked.map(str::to_string),
        file: file.map(|f| phantom.join(f)),
        inverse,
    };
    config.compositor.demo_anatomy = false;
    config.compositor.models = vec![ModelConfig {
        path: phantom.join("fiducials.obj"),
        pose: vec![
            link(None, Some("camera_from_scope.json"), false),
            link(Some("ScopeToTracker"), None, true),
            link(Some("PhantomToTracker"), None, false),
        ],
        ..Default::default()
    }];
    config.validate(Path::new("<test>")).unwrap_or_else(|e| panic!("{e}"));
    config
}

#[test]
fn the_injected_video_delay_is_recovered_within_5_ms() {
    let clock: SharedClock = Arc::new(SystemClock::new());
    let found = measure_delay(&config(40.0), clock, 4.0, None).unwrap_or_else(|e| panic!("{e}"));
    let ms = found.estimate.video_minus_tracker_ns as f64 / 1e6;
    println!(
        "injected 40 ms, found {ms:.2} ms (correlation {:.3}, {} image motions, {} poses)",
        found.estimate.correlation, found.frames, found.poses
    );
    assert!((ms - 40.0).abs() <= 5.0, "found {ms} ms");
    assert!(found.frames >= 60, "{} image motions in 4 s at 30 fps", found.frames);
}
