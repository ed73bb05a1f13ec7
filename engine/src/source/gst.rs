//! GStreamer inputs: `videotestsrc`, V4L2 devices, files (looped by seeking),
//! RTSP and MPEG-TS over TCP, all ending in an `appsink` that hands decoded
//! frames over without copying (the frame keeps the mapped GStreamer buffer).
//!
//! The appsink keeps at most one buffer and drops older ones (`max-buffers=1,
//! drop=true`), the same newest-wins policy as the pipeline's slots.

use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::{FrameSource, SourceError, SourceSpec};
use crate::clock::SharedClock;
use crate::config::FormatRequest;
use crate::frame::{Frame, FrameBytes, FrameContent, FrameStamp, PixelFormat, Plane};

/// The elements [`GstSource`] makes for `spec`, in the order it makes them
/// (a test builds each pipeline and compares).
fn made_elements(spec: &SourceSpec) -> Vec<&'static str> {
    let mut elements = vec!["videoconvert", "appsink"];
    elements.extend_from_slice(match spec {
        SourceSpec::Synthetic => return Vec::new(),
        SourceSpec::GstTest { .. } => &["videotestsrc", "capsfilter"][..],
        SourceSpec::V4l2 { .. } => &["v4l2src", "decodebin"],
        SourceSpec::File { .. } | SourceSpec::Rtsp { .. } => &["uridecodebin"],
        SourceSpec::Tcp { .. } => &["tcpclientsrc", "decodebin"],
    });
    elements
}

/// Every element a source needs: those made, and those its decoder bin must
/// find at run time for that kind of input (RTSP's `rtspsrc`, MPEG-TS's
/// demuxer). Codecs inside files and streams vary and are not listed.
pub fn source_elements(spec: &SourceSpec) -> Vec<&'static str> {
    let mut elements = made_elements(spec);
    match spec {
        SourceSpec::Rtsp { .. } => elements.push("rtspsrc"),
        SourceSpec::Tcp { .. } => elements.push("tsdemux"),
        _ => {}
    }
    elements
}

/// Creates an element, or says which package provides it.
fn make(factory: &str) -> Result<gst::Element, SourceError> {
    gst::ElementFactory::make(factory).build().map_err(|_| SourceError::GstUnavailable {
        reason: format!(
            "element {factory} is missing (Debian/Ubuntu: apt-get install {})",
            crate::gst_elements::package_of(factory)
        ),
    })
}

fn caps_for(format: FormatRequest) -> gst::Caps {
    let formats: &[&str] = match format {
        FormatRequest::Auto => &["I420", "NV12", "RGBA"],
        FormatRequest::Rgba => &["RGBA"],
        FormatRequest::I420 => &["I420"],
        FormatRequest::Nv12 => &["NV12"],
    };
    gst::Caps::builder("video/x-raw").field("format", gst::List::new(formats.iter().copied())).build()
}

/// Bytes of a mapped GStreamer buffer: the frame holds the buffer itself.
struct GstBytes(gst::buffer::MappedBuffer<gst::buffer::Readable>);

impl FrameBytes for GstBytes {
    fn bytes(&self) -> &[u8] {
        self.0.as_slice()
    }
}

struct Running {
    pipeline: gst::Pipeline,
    appsink: gst_app::AppSink,
    bus: gst::Bus,
}

/// A GStreamer-backed source.
pub struct GstSource {
    spec: SourceSpec,
    loop_file: bool,
    format: FormatRequest,
    /// Size and rate requested of `test:` sources.
    test_size: (u32, u32, u32),
    clock: SharedClock,
    running: Option<Running>,
}

impl GstSource {
    /// A source for `spec` (anything but `synthetic`).
    pub fn new(
        spec: SourceSpec,
        loop_file: bool,
        format: FormatRequest,
        test_size: (u32, u32, u32),
        clock: SharedClock,
    ) -> Self {
        Self { spec, loop_file, format, test_size, clock, running: None }
    }

    fn build(&self) -> Result<Running, SourceError> {
        crate::gst_runtime::init()?;
        let pipeline = gst::Pipeline::with_name("scopecast-source");
        crate::gst_runtime::raise_streaming_threads(&pipeline);
        let convert = make("videoconvert")?;
        let is_file = matches!(self.spec, SourceSpec::File { .. });
        let appsink = gst_app::AppSink::builder()
            .name("scopecast-appsink")
            .caps(&caps_for(self.format))
            .max_buffers(1)
            .drop(true)
            // Files play at their own rate; live inputs are taken as soon as they arrive.
            .sync(is_file)
            .build();
        let link_err =
            |what: &str| SourceError::Pipeline { element: "scopecast".into(), message: format!("cannot link {what}") };
        pipeline.add_many([&convert, appsink.upcast_ref()]).map_err(|_| link_err("videoconvert to appsink"))?;
        convert.link(&appsink).map_err(|_| link_err("videoconvert to appsink"))?;
        match &self.spec {
            SourceSpec::GstTest { pattern } => {
                let src = make("videotestsrc")?;
                src.set_property("is-live", true);
                if let Some(pattern) = pattern {
                    set_enum_by_nick(&src, "pattern", pattern)?;
                }
                let (w, h, fps) = self.test_size;
                let filter = make("capsfilter")?;
                let caps = gst::Caps::builder("video/x-raw")
                    .field("width", w as i32)
                    .field("height", h as i32)
                    .field("framerate", gst::Fraction::new(fps as i32, 1))
                    .build();
                filter.set_property("caps", &caps);
                pipeline.add_many([&src, &filter]).map_err(|_| link_err("videotestsrc"))?;
                gst::Element::link_many([&src, &filter, &convert])
                    .map_err(|_| link_err("videotestsrc to videoconvert"))?;
            }
            SourceSpec::V4l2 { device } => {
                let src = make("v4l2src")?;
                src.set_property("device", device.to_string_lossy().as_ref());
                self.add_decoded(&pipeline, &src, &convert)?;
            }
            SourceSpec::File { path } => {
                let decode = make("uridecodebin")?;
                let uri = gst::glib::filename_to_uri(path, None).map_err(|e| SourceError::Pipeline {
                    element: "uridecodebin".into(),
                    message: format!("{}: {e}", path.display()),
                })?;
                decode.set_property("uri", uri.as_str());
                self.add_dynamic(&pipeline, &decode, &convert)?;
            }
            SourceSpec::Rtsp { url } => {
                let decode = make("uridecodebin")?;
                decode.set_property("uri", url.as_str());
                // rtspsrc's jitter buffer defaults to 2 s; a live scope wants the smallest that holds.
                decode.connect("source-setup", false, |args| {
                    if let Some(source) = args.get(1).and_then(|v| v.get::<gst::Element>().ok())
                        && source.find_property("latency").is_some()
                    {
                        source.set_property("latency", 50u32);
                    }
                    None
                });
                self.add_dynamic(&pipeline, &decode, &convert)?;
            }
            SourceSpec::Tcp { host, port } => {
                let src = make("tcpclientsrc")?;
                src.set_property("host", host.as_str());
                src.set_property("port", i32::from(*port));
                self.add_decoded(&pipeline, &src, &convert)?;
            }
            SourceSpec::Synthetic => {
                return Err(SourceError::Unsupported { reason: "the synthetic source does not use GStreamer".into() });
            }
        }
        let bus = pipeline.bus().ok_or_else(|| link_err("the pipeline bus"))?;
        Ok(Running { pipeline, appsink, bus })
    }

    /// `src ! decodebin ! convert`, decodebin's pads linked when they appear.
    fn add_decoded(
        &self,
        pipeline: &gst::Pipeline,
        src: &gst::Element,
        convert: &gst::Element,
    ) -> Result<(), SourceError> {
        let decode = make("decodebin")?;
        let error =
            || SourceError::Pipeline { element: src.name().to_string(), message: "cannot link to decodebin".into() };
        pipeline.add_many([src, &decode]).map_err(|_| error())?;
        src.link(&decode).map_err(|_| error())?;
        self.add_dynamic(pipeline, &decode, convert)
    }

    /// Adds a decoder with dynamic pads; its first video pad is linked to `convert`.
    fn add_dynamic(
        &self,
        pipeline: &gst::Pipeline,
        decode: &gst::Element,
        convert: &gst::Element,
    ) -> Result<(), SourceError> {
        if decode.parent().is_none() {
            pipeline.add(decode).map_err(|_| SourceError::Pipeline {
                element: decode.name().to_string(),
                message: "cannot add to the pipeline".into(),
            })?;
        }
        let convert_weak = convert.downgrade();
        decode.connect_pad_added(move |_, pad| {
            let Some(convert) = convert_weak.upgrade() else { return };
            let Some(sink_pad) = convert.static_pad("sink") else { return };
            if sink_pad.is_linked() {
                return;
            }
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let is_video = caps.structure(0).is_some_and(|s| s.name().starts_with("video/"));
            if is_video && let Err(e) = pad.link(&sink_pad) {
                tracing::warn!("cannot link decoded video: {e:?}");
            }
        });
        Ok(())
    }

    fn handle_end(&self, running: &Running) -> Result<Option<Frame>, SourceError> {
        match (&self.spec, self.loop_file) {
            (SourceSpec::File { .. }, true) => {
                running
                    .pipeline
                    .seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT, gst::ClockTime::ZERO)
                    .map_err(|e| SourceError::Pipeline {
                        element: "scopecast-source".into(),
                        message: format!("cannot loop: {e}"),
                    })?;
                Ok(None)
            }
            (SourceSpec::File { .. }, false) => Err(SourceError::EndOfFile),
            _ => Err(SourceError::StreamEnded),
        }
    }

    fn frame_from_sample(&self, running: &Running, sample: &gst::Sample) -> Result<Frame, SourceError> {
        frame_of_sample(sample, |buffer| {
            let now_ns = self.clock.now_ns();
            let age_ns = buffer
                .pts()
                .zip(sample.segment().and_then(|s| s.downcast_ref::<gst::ClockTime>()))
                .and_then(|(pts, segment)| segment.to_running_time(pts))
                .zip(running.pipeline.clock())
                .map(|(running_time, clock)| {
                    let clock_time = running.pipeline.base_time().unwrap_or(gst::ClockTime::ZERO) + running_time;
                    clock.time().nseconds().saturating_sub(clock_time.nseconds())
                })
                .unwrap_or(0)
                // A timestamp from further back than a second is not a capture time we trust.
                .min(1_000_000_000);
            let capture_time_ns = now_ns.saturating_sub(age_ns);
            let capture_wall_ms = self.clock.wall_ms().saturating_sub(age_ns / 1_000_000);
            FrameStamp { sequence: 0, capture_time_ns, capture_wall_ms }
        })
    }
}

/// A decoded sample (I420, NV12 or RGBA) as a frame stamped by `stamp`
/// (which sees the buffer, for its timestamps). No copy: the frame holds
/// the mapped buffer, with its planes' offsets and strides.
pub fn frame_of_sample(
    sample: &gst::Sample,
    stamp: impl FnOnce(&gst::Buffer) -> FrameStamp,
) -> Result<Frame, SourceError> {
    let unsupported = |reason: String| SourceError::Unsupported { reason };
    let caps = sample.caps().ok_or_else(|| unsupported("sample without caps".into()))?;
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| unsupported(format!("caps {caps}: {e}")))?;
    let format = match info.format() {
        gst_video::VideoFormat::I420 => PixelFormat::I420,
        gst_video::VideoFormat::Nv12 => PixelFormat::Nv12,
        gst_video::VideoFormat::Rgba => PixelFormat::Rgba8,
        other => return Err(unsupported(format!("pixel format {other:?}"))),
    };
    let buffer = sample.buffer_owned().ok_or_else(|| unsupported("sample without buffer".into()))?;
    let (offsets, strides): (Vec<usize>, Vec<i32>) = match buffer.meta::<gst_video::VideoMeta>() {
        Some(meta) => (meta.offset().to_vec(), meta.stride().to_vec()),
        None => (info.offset().to_vec(), info.stride().to_vec()),
    };
    let planes = offsets
        .iter()
        .zip(&strides)
        .take(format.plane_count())
        .map(|(&offset, &stride)| {
            usize::try_from(stride)
                .map(|stride| Plane { offset, stride })
                .map_err(|_| unsupported(format!("negative stride {stride}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let stamp = stamp(&buffer);
    let mapped = buffer.into_mapped_buffer_readable().map_err(|_| unsupported("buffer not readable".into()))?;
    Ok(Frame::new(format, info.width(), info.height(), planes, Arc::new(GstBytes(mapped)), stamp, FrameContent::Live)?)
}

/// Sets an enum property from its nick, or says which nicks exist.
fn set_enum_by_nick(element: &gst::Element, property: &str, nick: &str) -> Result<(), SourceError> {
    let pspec = element.find_property(property);
    let class = pspec.as_ref().and_then(|p| p.downcast_ref::<gst::glib::ParamSpecEnum>()).map(|p| p.enum_class());
    let Some(class) = class else {
        return Err(SourceError::Unsupported { reason: format!("{} has no enum property {property}", element.name()) });
    };
    if class.value_by_nick(nick).is_none() {
        let known: Vec<&str> = class.values().iter().map(|v| v.nick()).collect();
        return Err(SourceError::Unsupported {
            reason: format!("unknown {property} {nick:?}; known: {}", known.join(", ")),
        });
    }
    element.set_property_from_str(property, nick);
    Ok(())
}

fn element_name(src: Option<&gst::Object>) -> String {
    src.map(|s| s.path_string().to_string()).unwrap_or_else(|| "pipeline".into())
}

impl FrameSource for GstSource {
    fn describe(&self) -> String {
        self.spec.to_string()
    }

    fn start(&mut self) -> Result<(), SourceError> {
        self.stop();
        let running = self.build()?;
        if running.pipeline.set_state(gst::State::Playing).is_err() {
            // The reason is on the bus.
            let message = running
                .bus
                .timed_pop_filtered(gst::ClockTime::from_mseconds(100), &[gst::MessageType::Error])
                .and_then(|m| match m.view() {
                    gst::MessageView::Error(e) => Some((element_name(e.src()), e.error().to_string())),
                    _ => None,
                });
            let _ = running.pipeline.set_state(gst::State::Null);
            let (element, message) = message.unwrap_or_else(|| ("pipeline".into(), "cannot start playing".into()));
            return Err(SourceError::Pipeline { element, message });
        }
        self.running = Some(running);
        Ok(())
    }

    fn next_frame(&mut self, timeout_ns: u64) -> Result<Option<Frame>, SourceError> {
        let Some(running) = &self.running else { return Ok(None) };
        while let Some(message) = running.bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos]) {
            match message.view() {
                gst::MessageView::Error(e) => {
                    return Err(SourceError::Pipeline {
                        element: element_name(e.src()),
                        message: e.error().to_string(),
                    });
                }
                gst::MessageView::Eos(_) => return self.handle_end(running),
                _ => {}
            }
        }
        match running.appsink.try_pull_sample(gst::ClockTime::from_nseconds(timeout_ns)) {
            Some(sample) => self.frame_from_sample(running, &sample).map(Some),
            None if running.appsink.is_eos() => self.handle_end(running),
            None => Ok(None),
        }
    }

    fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.pipeline.set_state(gst::State::Null);
        }
    }
}

impl Drop for GstSource {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_makes_the_elements_it_lists() {
        let clock: SharedClock = std::sync::Arc::new(crate::clock::SystemClock::new());
        for uri in
            ["test:ball", "v4l2:///dev/video9", "file:///tmp/none.mp4", "rtsp://127.0.0.1:1/x", "tcp://127.0.0.1:1"]
        {
            let spec = SourceSpec::parse(uri).expect("a valid URI");
            let source = GstSource::new(spec.clone(), false, FormatRequest::Auto, (64, 64, 30), clock.clone());
            let running = source.build().unwrap_or_else(|e| panic!("{uri}: {e} (the test packages include it)"));
            let mut made: Vec<String> = running
                .pipeline
                .children()
                .iter()
                // The appsink is made by its builder, without a factory.
                .map(|e| match e.factory() {
                    Some(f) => f.name().to_string(),
                    None if e.is::<gst_app::AppSink>() => "appsink".into(),
                    None => e.type_().name().to_string(),
                })
                .collect();
            made.sort();
            let mut listed: Vec<String> = made_elements(&spec).iter().map(|e| e.to_string()).collect();
            listed.sort();
            assert_eq!(made, listed, "{uri}");
            assert!(source_elements(&spec).len() >= listed.len());
        }
    }
}
