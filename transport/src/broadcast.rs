//! The broadcast hub: the one place where encoded access units meet the
//! viewers who receive them. The station's delivery step and the replay
//! player publish into it, each viewer's sending task takes its next unit
//! from it, the encoders ask it whether a keyframe is due, and each viewer's
//! RTCP feedback reaches it. Its state (the [`FanOut`] state machine and
//! one wake per viewer) is private; callers only use the operations below,
//! so nobody can forget to unlock or to wake.
//!
//! Wakes keep a permit: a unit published while a viewer's task is busy
//! elsewhere (writing the previous frame, sampling statistics) wakes it as
//! soon as it next waits, not a frame later (the earlier `notify_waiters`
//! design lost such wakes; see the test `a_wake_while_busy_is_kept`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::adapt::VideoLayer;
use crate::fanout::{FanOut, FanOutPolicy, ViewerId, ViewerStats};
use crate::media::AccessUnit;

/// Shared between whoever publishes the stream and the viewers' sessions.
pub struct Broadcast {
    state: Mutex<State>,
}

struct State {
    fanout: FanOut,
    /// One wake per viewer, signalled when its queue got something.
    wakes: HashMap<ViewerId, Arc<Notify>>,
}

/// A viewer's place in the hub: what its sending task waits on.
#[derive(Clone)]
pub struct ViewerFeed {
    viewer: ViewerId,
    wake: Arc<Notify>,
}

impl ViewerFeed {
    /// The viewer this feed belongs to.
    pub fn viewer(&self) -> ViewerId {
        self.viewer
    }

    /// Waits until something was published for this viewer since it last
    /// woke (returns at once when that happened while it was not waiting).
    pub async fn published(&self) {
        self.wake.notified().await;
    }
}

/// What one viewer's RTCP feedback changed, for its figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerNow {
    /// The layer the viewer receives.
    pub layer: VideoLayer,
    /// That layer's rate over the last second, bit/s.
    pub rate_bps: f64,
}

impl Broadcast {
    /// An empty hub whose viewers' queues follow `policy`.
    pub fn new(policy: FanOutPolicy) -> Self {
        Self { state: Mutex::new(State { fanout: FanOut::new(policy), wakes: HashMap::new() }) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Offers `units` (one picture's layers, in order) to every viewer and
    /// wakes each viewer that has something to send; returns the number of
    /// viewers.
    pub fn publish<'a>(&self, units: impl IntoIterator<Item = &'a AccessUnit>) -> usize {
        let mut state = self.state();
        for unit in units {
            state.fanout.push(unit);
        }
        let State { fanout, wakes } = &*state;
        for (viewer, wake) in wakes {
            if fanout.has_pending(*viewer) {
                wake.notify_one();
            }
        }
        wakes.len()
    }

    /// Adds `viewer` (it receives nothing until the next keyframe, which it
    /// asks for); its sending task waits on the returned feed.
    pub fn join(&self, viewer: ViewerId) -> ViewerFeed {
        let wake = Arc::new(Notify::new());
        let mut state = self.state();
        state.fanout.add_viewer(viewer);
        state.wakes.insert(viewer, wake.clone());
        ViewerFeed { viewer, wake }
    }

    /// Removes `viewer` and its queue; its figures, if it was there.
    pub fn leave(&self, viewer: ViewerId) -> Option<ViewerStats> {
        let mut state = self.state();
        state.wakes.remove(&viewer);
        state.fanout.remove_viewer(viewer)
    }

    /// The next access unit for `viewer`'s sender, if any.
    pub fn next_for(&self, viewer: ViewerId) -> Option<AccessUnit> {
        self.state().fanout.pop(viewer)
    }

    /// Whether the encoder of `layer` should force an IDR now (at `now_ns`,
    /// the station clock): at most once per the policy's interval, and only
    /// when someone needs one.
    pub fn keyframe_due(&self, layer: VideoLayer, now_ns: u64) -> bool {
        self.state().fanout.take_keyframe_request(layer, now_ns)
    }

    /// Someone besides the viewers needs a keyframe of `layer` (a recording
    /// that starts: its first segment starts at one).
    pub fn want_keyframe(&self, layer: VideoLayer) {
        self.state().fanout.want_keyframe(layer);
    }

    /// A viewer's RTCP feedback: whether it asked for a keyframe (PLI/FIR)
    /// and its bandwidth estimate (bit/s at `now_ns` of the viewer's own
    /// monotonic clock); returns its layer now, if it is still a viewer.
    pub fn feedback(
        &self,
        viewer: ViewerId,
        keyframe_wanted: bool,
        estimate_bps: Option<f64>,
        now_ns: u64,
    ) -> Option<LayerNow> {
        let mut state = self.state();
        if keyframe_wanted {
            state.fanout.request_keyframe(viewer);
        }
        if let Some(estimate) = estimate_bps {
            state.fanout.update_estimate(viewer, estimate, now_ns);
        }
        let layer = state.fanout.layer(viewer)?;
        Some(LayerNow { layer, rate_bps: state.fanout.layer_rate_bps(layer) })
    }

    /// The encoder makes the reduced layer on demand (see [`Broadcast::reduced_wanted`]).
    pub fn offer_reduced_layer(&self) {
        self.state().fanout.offer_reduced_layer();
    }

    /// Whether any viewer receives the reduced layer or is to be moved to it.
    pub fn reduced_wanted(&self) -> bool {
        self.state().fanout.reduced_wanted()
    }

    /// Viewers receiving (or waiting for) the stream.
    pub fn viewer_count(&self) -> usize {
        self.state().fanout.viewer_count()
    }

    /// `viewer`'s counters.
    pub fn stats(&self, viewer: ViewerId) -> Option<ViewerStats> {
        self.state().fanout.stats(viewer)
    }

    /// Keyframes forced since the hub was made.
    pub fn forced_keyframes(&self) -> u64 {
        self.state().fanout.forced_keyframes()
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn unit(sequence: u64, keyframe: bool) -> AccessUnit {
        AccessUnit {
            data: Arc::from(vec![7u8; 64]),
            keyframe,
            sequence,
            capture_time_ns: sequence * 33_333_333,
            capture_wall_ms: 0,
            layer: VideoLayer::Full,
        }
    }

    /// Whether `future` is ready at its first poll.
    fn ready_at_once(future: impl Future<Output = ()>) -> bool {
        let mut future = pin!(future);
        future.as_mut().poll(&mut Context::from_waker(Waker::noop())) == Poll::Ready(())
    }

    #[test]
    fn a_wake_while_busy_is_kept() {
        let hub = Broadcast::new(FanOutPolicy::default());
        let feed = hub.join(ViewerId(1));
        // The viewer's task is busy (not waiting) when the unit is published ...
        assert_eq!(hub.publish([&unit(0, true)]), 1);
        // ... and finds it the moment it waits, not a frame later.
        assert!(ready_at_once(feed.published()), "the wake was kept");
        assert_eq!(hub.next_for(ViewerId(1)).map(|u| u.sequence), Some(0));
        // One permit: with nothing new, it waits.
        assert!(!ready_at_once(feed.published()));
    }

    #[test]
    fn only_viewers_with_something_to_send_are_woken() {
        let hub = Broadcast::new(FanOutPolicy::default());
        let waiting = hub.join(ViewerId(1));
        hub.publish([&unit(0, true)]);
        let late = hub.join(ViewerId(2));
        // A P-frame: the new viewer waits for a keyframe and is not woken for nothing.
        hub.publish([&unit(1, false)]);
        assert!(!ready_at_once(late.published()));
        assert!(ready_at_once(waiting.published()));
        let got: Vec<u64> = std::iter::from_fn(|| hub.next_for(ViewerId(1)).map(|u| u.sequence)).collect();
        assert_eq!(got, [0, 1]);
    }

    #[test]
    fn joins_and_feedback_ask_for_keyframes_and_leaving_frees_the_queue() {
        let hub = Broadcast::new(FanOutPolicy { queue_capacity: 8, keyframe_min_interval_ns: 1_000 });
        let _feed = hub.join(ViewerId(3));
        assert!(hub.keyframe_due(VideoLayer::Full, 0), "a join asks for a keyframe");
        assert!(!hub.keyframe_due(VideoLayer::Full, 10));
        let layer = hub.feedback(ViewerId(3), true, None, 0).expect("a viewer");
        assert_eq!(layer.layer, VideoLayer::Full);
        assert!(!hub.keyframe_due(VideoLayer::Full, 500), "rate-limited");
        assert!(hub.keyframe_due(VideoLayer::Full, 1_000), "the PLI is served after the interval");
        hub.publish([&unit(0, true)]);
        assert_eq!(hub.viewer_count(), 1);
        assert_eq!(hub.leave(ViewerId(3)).map(|s| s.dropped), Some(0));
        assert_eq!((hub.viewer_count(), hub.next_for(ViewerId(3))), (0, None));
        assert_eq!(hub.feedback(ViewerId(3), true, Some(1e6), 2_000), None, "a viewer that left has no say");
        assert_eq!(hub.publish([&unit(1, true)]), 0);
    }
}
