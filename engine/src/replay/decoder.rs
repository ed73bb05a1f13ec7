//! H.264 decoding for replays that draw the overlays afresh: `appsrc !
//! h264parse ! avdec_h264 ! videoconvert ! I420 ! appsink`, one access unit
//! pushed and its picture pulled synchronously. `avdec_h264` runs with one
//! thread so each picture comes out as soon as its access unit went in
//! (frame threading would hold pictures back); a keyframe with its SPS/PPS
//! (every seek lands on one) resets the decoder's state.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::frame::{Frame, FrameStamp};
use crate::gst_runtime::{app_ends, bus_error};
use crate::source::SourceError;
use crate::source::gst::frame_of_sample;

/// Longest wait for one picture, ms.
const PULL_TIMEOUT_MS: u64 = 1000;

/// A running decoder.
pub struct H264Decoder {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    appsink: gst_app::AppSink,
    pushed: u64,
}

fn failed(reason: impl std::fmt::Display) -> SourceError {
    SourceError::Unsupported { reason: format!("H.264 decoder: {reason}") }
}

/// The decoding pipeline; every GStreamer element the replay's decoder uses is named here.
pub const DESCRIPTION: &str = "appsrc name=src format=time is-live=false block=false \
     caps=video/x-h264,stream-format=byte-stream,alignment=au \
     ! h264parse ! avdec_h264 max-threads=1 output-corrupt=false ! videoconvert \
     ! video/x-raw,format=I420 ! appsink name=sink sync=false max-buffers=4 drop=false";

impl H264Decoder {
    /// Starts the pipeline (GStreamer's libav plugin: `gstreamer1.0-libav`).
    pub fn new() -> Result<Self, SourceError> {
        crate::gst_runtime::init()?;
        let missing = crate::gst_elements::missing(&crate::gst_elements::elements_in(DESCRIPTION));
        if !missing.is_empty() {
            return Err(failed(format!(
                "not installed: {} (Debian/Ubuntu: {})",
                missing.join(", "),
                crate::gst_elements::install_hint(&missing)
            )));
        }
        let pipeline = gst::parse::launch(DESCRIPTION)
            .map_err(failed)?
            .downcast::<gst::Pipeline>()
            .map_err(|_| failed("not a pipeline"))?;
        let (appsrc, appsink) = app_ends(&pipeline).ok_or_else(|| failed("no appsrc or appsink"))?;
        // On the frame path when a re-composited replay's source builds it.
        crate::gst_runtime::raise_streaming_threads(&pipeline);
        pipeline.set_state(gst::State::Playing).map_err(failed)?;
        Ok(Self { pipeline, appsrc, appsink, pushed: 0 })
    }

    fn check_bus(&self) -> Result<(), SourceError> {
        bus_error(&self.pipeline).map_or(Ok(()), |e| Err(failed(e)))
    }

    /// Decodes one Annex B access unit into a frame stamped `stamp`;
    /// `Ok(None)` when the decoder gave no picture for it (a broken frame).
    pub fn decode(&mut self, annex_b: Vec<u8>, stamp: FrameStamp) -> Result<Option<Frame>, SourceError> {
        self.check_bus()?;
        let mut buffer = gst::Buffer::from_mut_slice(annex_b);
        if let Some(buffer) = buffer.get_mut() {
            // Any increasing time will do: the sink does not synchronise.
            buffer.set_pts(gst::ClockTime::from_mseconds(self.pushed * 10));
        }
        self.pushed += 1;
        self.appsrc.push_buffer(buffer).map_err(|e| failed(format!("push: {e:?}")))?;
        let Some(sample) = self.appsink.try_pull_sample(gst::ClockTime::from_mseconds(PULL_TIMEOUT_MS)) else {
            self.check_bus()?;
            return Ok(None);
        };
        frame_of_sample(&sample, |_| stamp).map(Some)
    }
}

impl Drop for H264Decoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
