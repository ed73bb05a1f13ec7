//! GStreamer sources through the real pipeline: a `test:` source feeding the
//! station, and inputs that disappear and come back (a TCP MPEG-TS sender
//! that stops and restarts, a file that is missing and then appears). A
//! missing GStreamer element fails these tests with the package to install.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use scopecast_engine::clock::{SharedClock, SystemClock};
use scopecast_engine::config::{Config, FormatRequest};
use scopecast_engine::frame::PixelFormat;
use scopecast_engine::shutdown::Shutdown;
use scopecast_engine::station::{Station, capture_one};

/// Elements these tests need, with the Debian package that ships each.
const REQUIRED: [(&str, &str); 6] = [
    ("videotestsrc", "gstreamer1.0-plugins-base"),
    ("tcpserversink", "gstreamer1.0-plugins-base"),
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("mpegtsmux", "gstreamer1.0-plugins-bad"),
    ("tsdemux", "gstreamer1.0-plugins-bad"),
    ("avdec_h264", "gstreamer1.0-libav"),
];

fn require_gstreamer() {
    gst::init().expect("GStreamer must initialise (install libgstreamer1.0-0)");
    for (element, package) in REQUIRED {
        assert!(
            gst::ElementFactory::find(element).is_some(),
            "GStreamer element {element} is missing: apt-get install {package} (the README's test command does this)"
        );
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn config(uri: &str) -> Config {
    let mut c = Config::default();
    c.source.uri = uri.into();
    c.source.width = 320;
    c.source.height = 240;
    c.source.fps = 30;
    c.source.no_signal_after_ms = 300;
    c.source.restart_after_ms = 1500;
    c.source.retry_initial_ms = 100;
    c.source.retry_max_ms = 400;
    c.validate(Path::new("<test>")).expect("valid test config");
    c
}

/// Polls `condition` every 20 ms until it holds or `limit` passes; returns the time it took.
fn wait_for(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

fn sender(port: u16) -> gst::Pipeline {
    let description = format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! mpegtsmux \
         ! tcpserversink host=127.0.0.1 port={port} sync=false"
    );
    let pipeline =
        gst::parse::launch(&description).expect("sender pipeline").downcast::<gst::Pipeline>().expect("pipeline");
    pipeline.set_state(gst::State::Playing).expect("sender plays");
    pipeline
}

#[test]
fn a_test_source_feeds_the_pipeline_in_the_requested_format() {
    require_gstreamer();
    for (request, expected) in [(FormatRequest::I420, PixelFormat::I420), (FormatRequest::Rgba, PixelFormat::Rgba8)] {
        let mut c = config("test:smpte");
        c.source.format = request;
        let clock: SharedClock = Arc::new(SystemClock::new());
        let frame = capture_one(&c, clock.clone(), 5_000).expect("a live frame from videotestsrc");
        assert_eq!((frame.format(), frame.width(), frame.height()), (expected, 320, 240));
        // SMPTE bars: the top-left bar is light grey (75 % white), not black.
        let rgba = scopecast_engine::snapshot::to_rgba(&frame);
        assert!(rgba[0] > 150 && rgba[1] > 150 && rgba[2] > 150, "top-left pixel {:?}", &rgba[..4]);

        let station = Station::start(&c, clock, Shutdown::new()).expect("station starts");
        wait_for(Duration::from_secs(10), "30 frames at the sink", || {
            station.registry.stage_frames("sink").get() >= 30
        });
        let status = station.source_status.lock().expect("status").clone();
        assert_eq!((status.size, status.format, status.no_signal), (Some((320, 240)), Some(expected), None));
        assert!(station.stop(Duration::from_secs(1)), "every stage stops within a second");
    }
}

#[test]
fn a_tcp_stream_that_stops_shows_no_signal_and_recovers_when_it_returns() {
    require_gstreamer();
    let port = free_port();
    let first = sender(port);
    let clock: SharedClock = Arc::new(SystemClock::new());
    let station = Station::start(&config(&format!("tcp://127.0.0.1:{port}")), clock, Shutdown::new()).expect("starts");
    let live = || station.registry.stage_frames("source").get();
    let no_signal = || station.registry.counter("scopecast_source_no_signal_frames_total", "", &[]).get();
    let status = || station.source_status.lock().expect("status").clone();
    wait_for(Duration::from_secs(15), "live frames over TCP", || status().live_frames >= 30);
    assert_eq!(status().no_signal, None);

    // The sender disappears: NO SIGNAL frames keep the pipeline fed.
    first.set_state(gst::State::Null).expect("sender stops");
    drop(first);
    let frames_before = live();
    wait_for(Duration::from_secs(5), "NO SIGNAL after the sender stopped", || status().no_signal.is_some());
    let gap_start = no_signal();
    std::thread::sleep(Duration::from_millis(1000));
    let gap_frames = no_signal() - gap_start;
    assert!((20..=40).contains(&gap_frames), "{gap_frames} NO SIGNAL frames in 1 s at 30 fps");
    assert!(live() - frames_before >= gap_frames, "the pipeline keeps receiving frames while the input is down");
    let reason = status().no_signal.unwrap_or_default();
    assert!(reason.contains("retry"), "the reason says a retry is coming: {reason}");

    // The sender comes back on the same port: the source recovers unaided.
    let second = sender(port);
    let live_before = status().live_frames;
    let recovery = wait_for(Duration::from_secs(15), "live frames after the sender returned", || {
        status().live_frames >= live_before + 30 && status().no_signal.is_none()
    });
    println!("recovered {recovery:?} after the sender returned; failures so far: {}", status().failures);
    assert!(status().failures >= 1);
    assert!(station.stop(Duration::from_secs(1)));
    second.set_state(gst::State::Null).expect("sender stops");
}

#[test]
fn a_missing_file_shows_no_signal_until_it_appears_then_loops() {
    require_gstreamer();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("clip.ts");
    let uri = format!("file://{}", path.display());
    let clock: SharedClock = Arc::new(SystemClock::new());
    let station = Station::start(&config(&uri), clock, Shutdown::new()).expect("starts");
    let status = || station.source_status.lock().expect("status").clone();
    wait_for(Duration::from_secs(5), "NO SIGNAL for a missing file", || status().no_signal.is_some());
    assert_eq!(status().live_frames, 0);

    // Write a 1 s clip (30 frames) elsewhere, then move it into place atomically.
    let staging = dir.path().join("staging.ts");
    let description = format!(
        "videotestsrc num-buffers=30 pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc speed-preset=ultrafast key-int-max=10 ! mpegtsmux ! filesink location={}",
        staging.display()
    );
    let writer = gst::parse::launch(&description).expect("writer pipeline");
    writer.set_state(gst::State::Playing).expect("writer plays");
    let bus = writer.bus().expect("bus");
    let done =
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(20), &[gst::MessageType::Eos, gst::MessageType::Error]);
    assert!(matches!(done.as_ref().map(|m| m.view()), Some(gst::MessageView::Eos(_))), "clip written: {done:?}");
    writer.set_state(gst::State::Null).expect("writer stops");
    std::fs::rename(&staging, &path).expect("clip in place");

    // The 1 s clip loops: after 2.5 s more than 30 frames have played.
    wait_for(Duration::from_secs(15), "the looped clip to play past its end", || status().live_frames > 45);
    assert_eq!(status().no_signal, None);
    assert!(station.stop(Duration::from_secs(1)));
}
