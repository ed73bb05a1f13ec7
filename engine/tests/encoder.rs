//! The H.264 encoders through GStreamer: one access unit per frame,
//! constrained baseline at the right level, SPS/PPS before every IDR,
//! keyframes on request and every GOP, and a stream GStreamer's own decoder
//! plays back frame for frame.

use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use scopecast_engine::clock::{FakeClock, NS_PER_S};
use scopecast_engine::config::SyntheticConfig;
use scopecast_engine::encoder::{EncoderError, EncoderKind, EncoderSettings};
use scopecast_engine::snapshot::i420_from;
use scopecast_engine::source::FrameSource;
use scopecast_engine::source::synthetic::SyntheticEndoscope;
use scopecast_transport::media::{NalType, nal_types, nal_units};

fn frames(width: u32, height: u32, count: usize) -> Vec<scopecast_engine::frame::Frame> {
    let clock = Arc::new(FakeClock::new(0, 1_764_158_400_000));
    let mut source = SyntheticEndoscope::new(width, height, 30, &SyntheticConfig::default(), clock);
    source.start().expect("starts");
    (0..count)
        .map(|i| {
            let mut f = source.next_frame(NS_PER_S).expect("renders").expect("frame");
            f.sequence = i as u64;
            i420_from(&f)
        })
        .collect()
}

/// Decodes an Annex B stream with GStreamer's own decoder; returns the frames decoded.
fn decode(stream: &[u8]) -> usize {
    let pipeline = gst::parse::launch(
        "appsrc name=src caps=video/x-h264,stream-format=byte-stream,alignment=au ! h264parse ! avdec_h264 ! appsink name=sink sync=false",
    )
    .expect("decoder pipeline (gstreamer1.0-libav)")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    let src = pipeline.by_name("src").and_then(|e| e.downcast::<gst_app::AppSrc>().ok()).expect("appsrc");
    let sink = pipeline.by_name("sink").and_then(|e| e.downcast::<gst_app::AppSink>().ok()).expect("appsink");
    pipeline.set_state(gst::State::Playing).expect("plays");
    src.push_buffer(gst::Buffer::from_slice(stream.to_vec())).expect("push");
    src.end_of_stream().expect("eos");
    let mut decoded = 0;
    while sink.try_pull_sample(gst::ClockTime::from_seconds(5)).is_some() {
        decoded += 1;
    }
    pipeline.set_state(gst::State::Null).expect("stops");
    decoded
}

#[test]
fn every_encoder_produces_decodable_low_latency_baseline_streams() {
    let input = frames(640, 360, 90);
    for kind in [EncoderKind::X264, EncoderKind::Openh264, EncoderKind::Embedded] {
        let settings =
            EncoderSettings { kind, width: 640, height: 360, fps: 30, bitrate_kbps: 2000, keyframe_interval: 30 };
        let mut encoder = scopecast_engine::encoder::open(settings).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        let mut stream = Vec::new();
        let mut keyframes = Vec::new();
        for (i, frame) in input.iter().enumerate() {
            let au = encoder
                .encode(frame, i == 45)
                .expect("encodes")
                .unwrap_or_else(|| panic!("{kind:?}: no access unit for frame {i}"));
            assert_eq!(au.sequence, i as u64, "one access unit per frame, in order");
            let types = nal_types(&au.data);
            if au.keyframe {
                keyframes.push(i);
                // SPS and PPS in front of every IDR.
                let sps = types
                    .iter()
                    .position(|t| *t == NalType::Sps)
                    .unwrap_or_else(|| panic!("{kind:?} frame {i}: no SPS in {types:?}"));
                let pps = types.iter().position(|t| *t == NalType::Pps).expect("PPS");
                let idr = types.iter().position(|t| *t == NalType::Idr).expect("IDR");
                assert!(sps < idr && pps < idr, "{types:?}");
                let sps_bytes = nal_units(&au.data)[sps];
                // profile_idc 66 (baseline) with constraint_set1 (constrained), level 3.0 for 640x360@30.
                assert_eq!(sps_bytes[1], 66, "{kind:?}: profile");
                assert!(sps_bytes[2] & 0x40 != 0, "{kind:?}: constrained baseline");
                assert!(sps_bytes[3] <= 30, "{kind:?}: level_idc {}", sps_bytes[3]);
            } else {
                assert!(!types.contains(&NalType::Idr), "{types:?}");
            }
            stream.extend_from_slice(&au.data);
        }
        println!("{kind:?}: keyframes at {keyframes:?}, {} bytes for 90 frames", stream.len());
        for expected in [0, 45] {
            assert!(keyframes.contains(&expected), "{kind:?}: keyframe {expected} in {keyframes:?}");
        }
        assert!(
            keyframes.iter().any(|&k| (28..=32).contains(&k) || (58..=62).contains(&k)),
            "{kind:?}: a GOP keyframe"
        );
        assert_eq!(decode(&stream), 90, "{kind:?}: every frame decodes");
    }
}

#[test]
fn wrong_input_is_an_error() {
    for kind in [EncoderKind::X264, EncoderKind::Embedded] {
        let settings =
            EncoderSettings { kind, width: 640, height: 360, fps: 30, bitrate_kbps: 1000, keyframe_interval: 30 };
        let mut encoder = scopecast_engine::encoder::open(settings).expect("opens");
        let small = frames(320, 180, 1).remove(0);
        assert!(matches!(encoder.encode(&small, false), Err(EncoderError::WrongInput { width: 320, .. })), "{kind:?}");
    }
}

/// Keyframes come by capture time (issue 20): a station set to 60 fps that
/// reaches only 20 still sends one every `keyframe_interval_s` (counted in
/// nominal frames, 60 frames took 3 s at 20 fps). The encoder stage on its
/// thread, the embedded encoder, frames 50 ms apart.
#[test]
fn keyframes_come_every_interval_of_capture_time_whatever_the_frame_rate() {
    use scopecast_engine::clock::{SharedClock, SystemClock};
    use scopecast_engine::config::EncoderConfig;
    use scopecast_engine::encoder::EncodedFrame;
    use scopecast_engine::encoder::stage::EncoderStage;
    use scopecast_engine::frame::Frame;
    use scopecast_engine::metrics::MetricsRegistry;
    use scopecast_engine::shutdown::Shutdown;
    use scopecast_engine::slot::latest_slot;

    let clock: SharedClock = Arc::new(SystemClock::new());
    let (frames_in, stage_in) = latest_slot::<Frame>("encoder_in");
    let (stage_out, units) = latest_slot::<EncodedFrame>("encoder_out");
    let config = EncoderConfig { kind: EncoderKind::Embedded, keyframe_interval_s: 1.0, ..Default::default() };
    let stage = EncoderStage::new(config, 60, stage_in, stage_out, clock, &MetricsRegistry::new());
    let stop = Shutdown::new();
    let running = stop.clone();
    let thread = std::thread::Builder::new()
        .name("scopecast-encoder-test".into())
        .spawn(move || stage.run(&running))
        .expect("spawn");
    let pictures = frames(320, 240, 20);
    let mut keyframes_s = Vec::new();
    for i in 0..100u64 {
        let mut frame = pictures[(i % 20) as usize].clone();
        frame.capture_time_ns = 1_000_000_000 + i * 50_000_000;
        frames_in.put(frame);
        let unit = units.take(std::time::Duration::from_secs(5)).expect("an access unit per frame");
        if unit.full.keyframe {
            keyframes_s.push((unit.full.capture_time_ns - 1_000_000_000) as f64 / 1e9);
        }
    }
    stop.trigger();
    thread.join().expect("the stage stops");
    println!("keyframes at {keyframes_s:?} s (20 fps of a nominal 60)");
    assert_eq!(keyframes_s, vec![0.0, 1.0, 2.0, 3.0, 4.0], "one a second of capture time");
}
