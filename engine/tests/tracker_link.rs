//! The station's tracker connection against pyigtl (PyPI), an independent
//! OpenIGTLink implementation, both ways: the station as a client of a
//! pyigtl server (PLUS Server's role, header version 2 with
//! `TransformStatus`), and as a server a pyigtl client pushes to (header
//! version 1). Poses land in the store under their `a_from_b` names with
//! their times; PLUS-style invalid poses are kept as invalid; a peer that
//! sends garbage costs counted errors and its connection, and the station
//! connects again. The README's test command installs pyigtl into
//! `target/pyenv` and sets `SCOPECAST_PYTHON`; without it this test fails.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use scopecast_engine::clock::{SharedClock, SystemClock};
use scopecast_engine::shutdown::Shutdown;
use scopecast_engine::tracking::pose_store::{Freshness, PoseAt, PoseStore};
use scopecast_engine::tracking::smoothing::Smoothing;
use scopecast_engine::tracking::tracker_link::{PoseTime, SharedPoses, TrackerLink, TrackerRole, TrackerSettings};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn pyigtl(mode: &str, port: u16) -> Child {
    let python = std::env::var("SCOPECAST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tracker/pyigtl_tracker.py");
    Command::new(&python)
        .args([script, mode, &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} ({e}): the README's test command installs pyigtl"))
}

fn wait_until(what: &str, seconds: u64, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(role: TrackerRole, poses: &SharedPoses, clock: &SharedClock, shutdown: &Shutdown) -> TrackerLink {
    let settings = TrackerSettings {
        name: "test".into(),
        role,
        time: PoseTime::Arrival { latency_ns: 20_000_000 },
        smoothing: Smoothing::Off,
    };
    TrackerLink::start(settings, poses.clone(), clock.clone(), shutdown.clone()).expect("thread")
}

const FRESH: Freshness = Freshness { stale_after_ns: 200_000_000 };

#[test]
fn poses_from_a_pyigtl_server_then_garbage_then_a_reconnect() {
    let clock: SharedClock = Arc::new(SystemClock::new());
    let poses: SharedPoses = Arc::new(ArcSwap::from_pointee(PoseStore::new()));
    let shutdown = Shutdown::new();
    let port = free_port();
    let mut server = pyigtl("server", port);
    let link = start(TrackerRole::Client(format!("127.0.0.1:{port}")), &poses, &clock, &shutdown);
    wait_until("40 valid poses", 30, || link.stats.poses.load(Ordering::Relaxed) >= 40);
    let store = poses.load();
    let newest_valid = match store.at("tracker_from_stylus", clock.now_ns() - 20_000_000, FRESH) {
        PoseAt::Tracked(p) => p.translation.x,
        other => panic!("tracked expected: {other:?}"),
    };
    assert!((30.0..50.0).contains(&newest_valid), "the stylus moved along x: {newest_valid}");
    wait_until("the 10 invalid poses", 10, || link.stats.invalid.load(Ordering::Relaxed) >= 10);
    assert_eq!(poses.load().at("tracker_from_stylus", clock.now_ns(), FRESH), PoseAt::Invalid);
    let _ = server.wait();
    // The peer is gone: a few hundred ms later the pose is stale, never "right".
    std::thread::sleep(Duration::from_millis(300));
    assert!(matches!(poses.load().at("tracker_from_stylus", clock.now_ns(), FRESH), PoseAt::Stale { .. }));

    // A hostile peer on the same port: garbage, then a header claiming an absurd body.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("rebind");
    let (mut hostile, _) = listener.accept().expect("the station reconnects");
    let connections = link.stats.connections.load(Ordering::Relaxed);
    let mut garbage = vec![0u8; 4096];
    // A version 1 header of an unnamed type with no body (skipped), then zeros: header version 0,
    // which cannot be framed: counted, and the connection dropped.
    garbage[1] = 1;
    let _ = hostile.write_all(&garbage);
    let mut absurd = vec![0u8; 58];
    absurd[1] = 1;
    absurd[2..11].copy_from_slice(b"TRANSFORM");
    absurd[42..50].copy_from_slice(&(1u64 << 60).to_be_bytes());
    let _ = hostile.write_all(&absurd);
    wait_until("errors counted", 10, || link.stats.errors.load(Ordering::Relaxed) >= 1);
    drop(hostile);
    let (_again, _) = listener.accept().expect("and connects again after dropping the broken stream");
    assert!(link.stats.connections.load(Ordering::Relaxed) > connections);
    shutdown.trigger();
    wait_until("the tracker thread to stop", 5, || link.is_finished());
}

#[test]
fn a_pyigtl_tracker_pushes_to_the_station() {
    let clock: SharedClock = Arc::new(SystemClock::new());
    let poses: SharedPoses = Arc::new(ArcSwap::from_pointee(PoseStore::new()));
    let shutdown = Shutdown::new();
    let port = free_port();
    let link = start(TrackerRole::Server(format!("127.0.0.1:{port}")), &poses, &clock, &shutdown);
    std::thread::sleep(Duration::from_millis(200));
    let mut client = pyigtl("client", port);
    wait_until("50 poses pushed", 30, || link.stats.poses.load(Ordering::Relaxed) >= 50);
    match poses.load().at("tracker_from_stylus", clock.now_ns() - 20_000_000, FRESH) {
        PoseAt::Tracked(p) => assert!(p.translation.x >= 45.0, "{p:?}"),
        other => panic!("tracked expected: {other:?}"),
    }
    assert_eq!(link.stats.errors.load(Ordering::Relaxed), 0);
    shutdown.trigger();
    let _ = client.kill();
    let _ = client.wait();
    wait_until("the tracker thread to stop", 5, || link.is_finished());
}
