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
