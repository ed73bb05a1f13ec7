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
