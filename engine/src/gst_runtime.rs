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

/// Gives each of `pipeline`'s streaming threads the priority of the thread
/// building it ([`crate::thread_priority::frame_path_nice_here`]): the
/// frame path's for a pipeline built on it (the source's, the live
/// encoder's), none for one built elsewhere (the clean recording's encoder).
/// See [`raise_streaming_threads_to`].
pub fn raise_streaming_threads(pipeline: &gst::Pipeline) {
    let nice = crate::thread_priority::frame_path_nice_here();
    if nice != 0 {
        raise_streaming_threads_to(pipeline, nice);
    }
}

/// GStreamer posts a stream-status message from each streaming thread
/// itself, ENTER before its loop and LEAVE after it (the application
/// development manual's "Configuring priorities"); a sync handler runs on
/// that thread. On ENTER it takes `nice`
/// ([`crate::thread_priority::enter_frame_path_at`]); on LEAVE it gives it
/// back, since GStreamer's threads are pooled and may next serve another
/// pipeline. Those messages go no further; every other message reaches the
/// bus as before. Threads the elements start there (x264's) inherit `nice`.
pub fn raise_streaming_threads_to(pipeline: &gst::Pipeline, nice: i32) {
    let Some(bus) = pipeline.bus() else { return };
    bus.set_sync_handler(move |_, message| match message.view() {
        gst::MessageView::StreamStatus(status) => {
            match status.get().0 {
                gst::StreamStatusType::Enter => crate::thread_priority::enter_frame_path_at(nice),
                gst::StreamStatusType::Leave => crate::thread_priority::leave_frame_path(),
                _ => {}
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
