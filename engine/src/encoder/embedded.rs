//! The embedded H.264 encoder: Cisco's OpenH264 compiled into the binary (the
//! `openh264` crate, built from source), so a station without GStreamer's
//! encoders still streams. Tuned for latency: constrained baseline, real-time
//! camera usage, low complexity, bitrate rate control, every frame encoded (one
//! frame in, one access unit out), no scene-change IDRs (IDRs come from the
//! GOP and from requests only), two threads. OpenH264 writes SPS and PPS in
//! front of every IDR.

use std::sync::Arc;

use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Level, Profile,
    RateControlMode, UsageType,
};
use openh264::formats::YUVSlices;
use scopecast_transport::media::AccessUnit;

use super::{EncoderError, EncoderSettings, H264Encoder, h264_level_idc};
use crate::frame::Frame;

/// OpenH264's level for a `level_idc` from table A-1.
fn openh264_level(level_idc: u8) -> Level {
    match level_idc {
        0..=30 => Level::Level_3_0,
        31 => Level::Level_3_1,
        32 => Level::Level_3_2,
        33..=40 => Level::Level_4_0,
        41 => Level::Level_4_1,
        42 => Level::Level_4_2,
        43..=50 => Level::Level_5_0,
        51 => Level::Level_5_1,
        _ => Level::Level_5_2,
    }
}

/// The embedded encoder.
pub struct EmbeddedH264Encoder {
    settings: EncoderSettings,
    encoder: Encoder,
    /// Access-unit bytes, reused.
    out: Vec<u8>,
}

impl EmbeddedH264Encoder {
    /// Opens the encoder.
    pub fn new(settings: EncoderSettings) -> Result<Self, EncoderError> {
        let fps = settings.fps.max(1);
        let config = EncoderConfig::new()
            .profile(Profile::Baseline)
            .level(openh264_level(h264_level_idc(settings.width, settings.height, fps)))
            .usage_type(UsageType::CameraVideoRealTime)
            .complexity(Complexity::Low)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(settings.bitrate_kbps.saturating_mul(1000)))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .skip_frames(false)
            .scene_change_detect(false)
            .background_detection(false)
            .adaptive_quantization(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(settings.keyframe_interval.max(1)))
            .num_threads(2);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| EncoderError::Unavailable(format!("OpenH264: {e}")))?;
        Ok(Self { settings, encoder, out: Vec::new() })
    }
}

impl H264Encoder for EmbeddedH264Encoder {
    fn encode(&mut self, frame: &Frame, keyframe: bool) -> Result<Option<AccessUnit>, EncoderError> {
        let s = &self.settings;
        let planes = frame.planes();
        super::check_input(s, frame)?;
        let (w, h) = (s.width as usize, s.height as usize);
        let bytes = frame.bytes();
        let plane = |i: usize, rows: usize| -> Result<&[u8], EncoderError> {
            let p = planes.get(i).ok_or_else(|| EncoderError::Pipeline(format!("I420 frame without plane {i}")))?;
            bytes
                .get(p.offset..p.offset + p.stride * rows)
                .ok_or_else(|| EncoderError::Pipeline(format!("I420 plane {i} is shorter than {rows} rows")))
        };
        let ch = h.div_ceil(2);
        let yuv = YUVSlices::new(
            (plane(0, h)?, plane(1, ch)?, plane(2, ch)?),
            (w, h),
            (planes[0].stride, planes[1].stride, planes[2].stride),
        );
        if keyframe {
            self.encoder.force_intra_frame();
        }
        let stream = self.encoder.encode(&yuv).map_err(|e| EncoderError::Pipeline(format!("OpenH264: {e}")))?;
        let frame_type = stream.frame_type();
        if matches!(frame_type, FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        self.out.clear();
        stream.write_vec(&mut self.out);
        if self.out.is_empty() {
            return Ok(None);
        }
        Ok(Some(AccessUnit {
            data: Arc::from(self.out.as_slice()),
            keyframe: matches!(frame_type, FrameType::IDR),
            sequence: frame.sequence,
            capture_time_ns: frame.capture_time_ns,
            capture_wall_ms: frame.capture_wall_ms,
            // The stage marks what its second encoder makes.
            layer: scopecast_transport::adapt::VideoLayer::Full,
        }))
    }
}
