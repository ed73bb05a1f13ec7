//! Smoke test of the tracked scope demo: its config loads, the synthetic
//! endoscope renders the phantom, the station connects to the simulated
//! tracker over OpenIGTLink, and the composited frames carry the tracked
//! fiducial rings with every model tracked. (Accuracy is the
//! `tracked_overlay` bench's and the engine tests' business.)

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use scopecast_engine::clock::{SharedClock, SystemClock};
use scopecast_engine::config::Config;
use scopecast_engine::shutdown::Shutdown;
use scopecast_engine::station::Station;

/// The demo's paths are relative to the repository's root; a test runs in `demos/`.
fn from_root(config: &mut Config, root: &Path) {
    let tracked = config.source.synthetic.tracked.as_mut().expect("the demo is in tracked mode");
    tracked.phantom = root.join(&tracked.phantom);
    tracked.camera_from_scope = root.join(&tracked.camera_from_scope);
    let registration = &mut config.registration;
    for path in [&mut registration.fiducials, &mut registration.output].into_iter().flatten() {
        *path = root.join(&*path);
    }
    for model in &mut config.compositor.models {
        model.path = root.join(&model.path);
        for link in &mut model.pose {
            if let Some(file) = &link.file {
                link.file = Some(root.join(file));
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

#[test]
fn the_tracked_scope_demo_draws_the_fiducials_where_the_tracker_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("demos/tracked-scope/station.toml");
    let text = std::fs::read_to_string(&path).expect("the demo's config");
    let mut config = Config::from_toml_str(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    // Its ports may be taken here.
    let port = free_port();
    from_root(&mut config, &root);
    config.source.synthetic.tracked.as_mut().expect("tracked mode").listen = format!("127.0.0.1:{port}");
    config.tracking.trackers[0].connect = Some(format!("127.0.0.1:{port}"));
    config.validate(&path).unwrap_or_else(|e| panic!("{e}"));
    config.source.fps = 15;
    config.compositor.msaa = 1;
    let clock: SharedClock = Arc::new(SystemClock::new());
    let station = Station::start(&config, clock.clone(), Shutdown::new()).unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_secs(3));
    let snapshot = station.snapshots.as_ref().expect("compositing").take(Duration::from_secs(5)).expect("a frame");
    let metrics = station.render_metrics(clock.now_ns());
    let failures = station.stages.failures();
    let status = station.source_status.lock().expect("status").clone();
    assert!(station.stop(Duration::from_secs(1)), "stops within a second");
    assert_eq!(status.no_signal, None);
    assert!(metrics.contains("scopecast_models_not_tracked 0"), "models not tracked:\n{metrics}");
    assert!(failures.is_empty(), "{failures:?}");
    // The rings are green (the phantom is pink, its paint white and black).
    let green = snapshot.rgba.chunks_exact(4).filter(|p| i32::from(p[1]) - i32::from(p[0].max(p[2])) > 60).count();
    assert!(green > 2_000, "{green} green pixels: the tracked fiducial rings are not drawn");
}

/// The calibration configs the README gives read and check (paths from the repository's root).
#[test]
fn the_calibration_configs_of_the_demo_read_and_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for name in ["calibrate-delay.toml", "register.toml", "register-at-station.toml", "hand-eye.toml"] {
        let path = root.join("demos/tracked-scope").join(name);
        let text = std::fs::read_to_string(&path).expect("the config");
        let mut config = Config::from_toml_str(&text, &path).unwrap_or_else(|e| panic!("{e}"));
        from_root(&mut config, &root);
        config.validate(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.tracking.trackers.len(), 1, "{name}");
        if name == "register-at-station.toml" {
            // The models read the registration the desk writes: "not registered" until one is accepted.
            let output = config.registration.registered_file().expect("registration at the station").to_path_buf();
            let reads =
                |m: &scopecast_engine::config::ModelConfig| m.pose.iter().any(|l| l.file.as_ref() == Some(&output));
            assert!(config.compositor.models.iter().all(reads), "every model's chain ends in the registration");
        }
    }
}
