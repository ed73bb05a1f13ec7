//! GStreamer as every pipeline of the station uses it: started once per
//! process, a parsed pipeline's `appsrc`/`appsink` ends, and the error
//! waiting on its bus. Shared by the sources, the GStreamer encoders and the
//! replay decoder; it knows none of them (nor the config).

use std::sync::OnceLock;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use thiserror::Error;

/// GStreamer could not start in this process.
#[derive(Debug, Clone, Error)]
#[error("GStreamer is not usable: {reason}")]
pub struct GstUnavailable {
    /// What failed.
    pub reason: String,
}

/// Initialises GStreamer once per process (later calls return the first
/// call's result).
pub fn init() -> Result<(), GstUnavailable> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| gst::init().map_err(|e| e.to_string()))
        .clone()
        .map_err(|reason| GstUnavailable { reason: format!("gst_init failed: {reason}") })
}

/// The `appsrc` named `src` and the `appsink` named `sink` of a parsed
/// pipeline (the encoders' and the replay decoder's push/pull ends).
pub fn app_ends(pipeline: &gst::Pipeline) -> Option<(gst_app::AppSrc, gst_app::AppSink)> {
    let appsrc = pipeline.by_name("src")?.downcast::<gst_app::AppSrc>().ok()?;
    let appsink = pipeline.by_name("sink")?.downcast::<gst_app::AppSink>().ok()?;
    Some((appsrc, appsink))
}

/// Gives each of `pipeline`'s streaming threads the frame path's priority as
/// it starts ([`crate::thread_priority::enter_frame_path`]): GStreamer posts
/// a stream-status ENTER message from the new thread itself, before its loop
/// (the application development manual's "Configuring priorities"); a sync
/// handler runs on that thread. Those messages are handled here and go no
/// further; every other message reaches the bus as before. Threads the
/// elements start there (x264's) inherit the value.
pub fn raise_streaming_threads(pipeline: &gst::Pipeline) {
    raise_streaming_threads_to(pipeline, crate::thread_priority::frame_path_nice);
}

/// [`raise_streaming_threads`] with the nice value `nice()` gives as each
/// thread starts.
pub fn raise_streaming_threads_to(pipeline: &gst::Pipeline, nice: impl Fn() -> i32 + Send + Sync + 'static) {
    let Some(bus) = pipeline.bus() else { return };
    bus.set_sync_handler(move |_, message| match message.view() {
        gst::MessageView::StreamStatus(status) => {
            if status.get().0 == gst::StreamStatusType::Enter {
                crate::thread_priority::enter_frame_path_at(nice());
            }
            gst::BusSyncReply::Drop
        }
        _ => gst::BusSyncReply::Pass,
    });
}

/// The first error waiting on `pipeline`'s bus, in words.
pub fn bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let message = pipeline.bus()?.pop_filtered(&[gst::MessageType::Error])?;
    match message.view() {
        gst::MessageView::Error(e) => Some(e.error().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_threads_take_the_nice_value_as_they_start() {
        init().expect("GStreamer starts (the test packages install it)");
        let pipeline = gst::parse::launch("videotestsrc num-buffers=3 ! fakesink name=sink signal-handoffs=true")
            .expect("a pipeline of base elements")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        // Lowering is allowed without privileges: 19 is seen wherever the tests run.
        raise_streaming_threads_to(&pipeline, || 19);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = pipeline.by_name("sink").expect("the sink");
        let record = seen.clone();
        sink.connect("handoff", false, move |_| {
            record.lock().expect("not poisoned").push(crate::thread_priority::current_thread_nice());
            None
        });
        pipeline.set_state(gst::State::Playing).expect("plays");
        let bus = pipeline.bus().expect("a bus");
        let end =
            bus.timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Eos, gst::MessageType::Error]);
        pipeline.set_state(gst::State::Null).expect("stops");
        assert!(matches!(end.as_ref().map(|m| m.view()), Some(gst::MessageView::Eos(_))), "{end:?}");
        assert_eq!(
            *seen.lock().expect("not poisoned"),
            vec![Some(19); 3],
            "each buffer reached the sink on a thread at nice 19"
        );
    }

    #[test]
    fn the_app_ends_are_found_by_name_and_a_bus_without_errors_has_none() {
        init().expect("GStreamer starts (the test packages install it)");
        let pipeline = gst::parse::launch("appsrc name=src ! appsink name=sink")
            .expect("a pipeline of core elements")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        assert!(app_ends(&pipeline).is_some());
        assert_eq!(bus_error(&pipeline), None);
        let unnamed =
            gst::parse::launch("appsrc ! appsink").expect("parses").downcast::<gst::Pipeline>().expect("a pipeline");
        assert!(app_ends(&unnamed).is_none(), "ends are found by name, not by kind");
    }
}
