//! H.264 through GStreamer: `appsrc ! x264enc|openh264enc ! h264parse
//! config-interval=-1 ! appsink`, pushed one frame at a time and pulled
//! synchronously (zero-latency encoders give one access unit per frame).
//! `h264parse config-interval=-1` puts SPS and PPS in front of every IDR.

use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use scopecast_transport::media::AccessUnit;

use super::{EncoderError, EncoderKind, EncoderSettings, H264Encoder, h264_level_idc};
use crate::frame::Frame;
use crate::gst_runtime::{app_ends, bus_error};

/// How long to wait for an access unit after pushing a frame.
const PULL_TIMEOUT_MS: u64 = 500;

/// A GStreamer H.264 encoder.
pub struct GstH264Encoder {
    settings: EncoderSettings,
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    appsink: gst_app::AppSink,
    frame_index: u64,
}

/// The frame's pixels, lent to GStreamer without a copy.
struct FramePixels(Frame);

impl AsRef<[u8]> for FramePixels {
    fn as_ref(&self) -> &[u8] {
        self.0.bytes()
    }
}

fn unavailable(e: impl std::fmt::Display) -> EncoderError {
    EncoderError::Unavailable(e.to_string())
}

/// The launch description of the encoding pipeline for `settings`; every
/// GStreamer element the encoder uses is named in it.
pub fn pipeline_description(settings: &EncoderSettings) -> Result<String, EncoderError> {
    let fps = settings.fps.max(1);
    let level = h264_level_idc(settings.width, settings.height, fps);
    // GStreamer spells levels "3", "3.1", "4.2" (never "3.0").
    let level =
        if level.is_multiple_of(10) { format!("{}", level / 10) } else { format!("{}.{}", level / 10, level % 10) };
    let encoder = match settings.kind {
        EncoderKind::X264 => format!(
            "x264enc name=enc tune=zerolatency speed-preset=ultrafast bitrate={} vbv-buf-capacity=200 \
             key-int-max={} bframes=0 b-adapt=false rc-lookahead=0 sliced-threads=true threads=2 aud=false \
             byte-stream=true",
            settings.bitrate_kbps,
            settings.keyframe_interval.max(1)
        ),
        EncoderKind::Openh264 => format!(
            "openh264enc name=enc complexity=low rate-control=bitrate bitrate={} gop-size={} usage-type=camera \
             multi-thread=2 slice-mode=auto",
            settings.bitrate_kbps * 1000,
            settings.keyframe_interval.max(1)
        ),
        EncoderKind::Embedded | EncoderKind::Auto => {
            return Err(EncoderError::Unavailable(format!("{:?} is not a GStreamer encoder", settings.kind)));
        }
    };
    Ok(format!(
        "appsrc name=src is-live=true format=time do-timestamp=false block=false \
         caps=video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 \
         ! {encoder} \
         ! video/x-h264,profile=constrained-baseline,level=(string){level} \
         ! h264parse config-interval=-1 \
         ! video/x-h264,stream-format=byte-stream,alignment=au \
         ! appsink name=sink sync=false max-buffers=8 drop=false",
        w = settings.width,
        h = settings.height,
    ))
}

/// The GStreamer elements the encoder `kind` needs (none for the embedded one).
pub fn elements(kind: EncoderKind) -> Vec<String> {
    let settings =
        EncoderSettings { kind, width: 1280, height: 720, fps: 30, bitrate_kbps: 1000, keyframe_interval: 30 };
    pipeline_description(&settings)
        .map(|d| crate::gst_elements::elements_in(&d).into_iter().map(str::to_string).collect())
        .unwrap_or_default()
}

impl GstH264Encoder {
    /// Opens the encoder.
    pub fn new(settings: EncoderSettings) -> Result<Self, EncoderError> {
        crate::gst_runtime::init().map_err(unavailable)?;
        let description = pipeline_description(&settings)?;
        let needed = elements(settings.kind);
        let needed: Vec<&str> = needed.iter().map(String::as_str).collect();
        let missing = crate::gst_elements::missing(&needed);
        if !missing.is_empty() {
            return Err(unavailable(format!(
                "not installed: {} (Debian/Ubuntu: {})",
                missing.join(", "),
                crate::gst_elements::install_hint(&missing)
            )));
        }
        let pipeline = gst::parse::launch(&description)
            .map_err(unavailable)?
            .downcast::<gst::Pipeline>()
            .map_err(|_| unavailable("not a pipeline"))?;
        let (appsrc, appsink) = app_ends(&pipeline).ok_or_else(|| unavailable("no appsrc or appsink"))?;
        crate::gst_runtime::raise_streaming_threads(&pipeline);
        pipeline.set_state(gst::State::Playing).map_err(|e| EncoderError::Pipeline(e.to_string()))?;
        Ok(Self { settings, pipeline, appsrc, appsink, frame_index: 0 })
    }

    fn check_bus(&self) -> Result<(), EncoderError> {
        bus_error(&self.pipeline).map_or(Ok(()), |e| Err(EncoderError::Pipeline(e)))
    }
}

impl H264Encoder for GstH264Encoder {
    fn encode(&mut self, frame: &Frame, keyframe: bool) -> Result<Option<AccessUnit>, EncoderError> {
        let s = &self.settings;
        super::check_input(s, frame)?;
        self.check_bus()?;
        let period = gst::ClockTime::from_nseconds(1_000_000_000 / u64::from(s.fps.max(1)));
        let mut buffer = gst::Buffer::from_slice(FramePixels(frame.clone()));
        {
            let buffer = buffer.get_mut().ok_or_else(|| EncoderError::Pipeline("buffer not writable".into()))?;
            buffer.set_pts(period * self.frame_index);
            buffer.set_duration(period);
            let planes = frame.planes();
            let offsets: Vec<usize> = planes.iter().map(|p| p.offset).collect();
            let strides: Vec<i32> = planes.iter().map(|p| p.stride as i32).collect();
            gst_video::VideoMeta::add_full(
                buffer,
                gst_video::VideoFrameFlags::empty(),
                gst_video::VideoFormat::I420,
                s.width,
                s.height,
                &offsets,
                &strides,
            )
            .map_err(|e| EncoderError::Pipeline(format!("video meta: {e}")))?;
        }
        if keyframe || self.frame_index == 0 {
            let event = gst_video::DownstreamForceKeyUnitEvent::builder().all_headers(true).build();
            self.appsrc.send_event(event);
        }
        self.frame_index += 1;
        self.appsrc.push_buffer(buffer).map_err(|e| EncoderError::Pipeline(format!("push: {e:?}")))?;
        let Some(sample) = self.appsink.try_pull_sample(gst::ClockTime::from_mseconds(PULL_TIMEOUT_MS)) else {
            self.check_bus()?;
            return Ok(None);
        };
        let Some(out) = sample.buffer() else { return Ok(None) };
        let map = out.map_readable().map_err(|_| EncoderError::Pipeline("unreadable output".into()))?;
        Ok(Some(AccessUnit {
            data: Arc::from(map.as_slice()),
            keyframe: !out.flags().contains(gst::BufferFlags::DELTA_UNIT),
            sequence: frame.sequence,
            capture_time_ns: frame.capture_time_ns,
            capture_wall_ms: frame.capture_wall_ms,
            // The stage marks what its second encoder makes.
            layer: scopecast_transport::adapt::VideoLayer::Full,
        }))
    }
}

impl Drop for GstH264Encoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
