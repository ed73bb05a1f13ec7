//! GStreamer's streaming threads take the frame path's nice value from the
//! thread that built their pipeline (`gst_runtime::raise_streaming_threads`).
//! In its own process: GStreamer pools its threads, and one lowered here
//! (nice 19 needs no privileges; coming back from it does) must not serve
//! another test's pipeline.

use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use scopecast_engine::{gst_runtime, thread_priority};

/// Builds and plays three buffers of a test pattern on a new thread that
/// first enters the frame path with `nice` (0: it does not), and returns the
/// nice value of the streaming thread each buffer reached the sink on.
fn streaming_nice_for_a_pipeline_built_with(nice: i32) -> Vec<Option<i32>> {
    std::thread::spawn(move || {
        thread_priority::enter_frame_path_at(nice);
        gst_runtime::init().expect("GStreamer starts (the test packages install it)");
        let pipeline = gst::parse::launch("videotestsrc num-buffers=3 ! fakesink name=sink signal-handoffs=true")
            .expect("a pipeline of base elements")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        gst_runtime::raise_streaming_threads(&pipeline);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        pipeline.by_name("sink").expect("the sink").connect("handoff", false, move |_| {
            record.lock().expect("not poisoned").push(thread_priority::current_thread_nice());
            None
        });
        pipeline.set_state(gst::State::Playing).expect("plays");
        let bus = pipeline.bus().expect("a bus");
        let end =
            bus.timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Eos, gst::MessageType::Error]);
        pipeline.set_state(gst::State::Null).expect("stops");
        assert!(matches!(end.as_ref().map(|m| m.view()), Some(gst::MessageView::Eos(_))), "{end:?}");
        seen.lock().expect("not poisoned").clone()
    })
    .join()
    .expect("the building thread")
}

#[test]
fn streaming_threads_take_the_nice_value_of_the_thread_that_built_the_pipeline() {
    let base = thread_priority::current_thread_nice().expect("this thread's nice value is readable");
    // Off the frame path (the clean recording's encoder): left as they are.
    // First, before any pooled thread has been lowered.
    assert_eq!(streaming_nice_for_a_pipeline_built_with(0), vec![Some(base); 3]);
    // On it: every buffer is handled by a thread at the builder's value.
    assert_eq!(streaming_nice_for_a_pipeline_built_with(19), vec![Some(19); 3]);
}
