//! One encode, many viewers: the fan-out of access units as a plain state
//! machine (no sockets, no threads, time as an input).
//!
//! - Every viewer gets the same `AccessUnit` (its bytes are shared, never
//!   copied or re-encoded).
//! - Each viewer has a bounded queue. Drop policy: a viewer whose queue is
//!   full loses its whole backlog and waits for the next keyframe (a decoder
//!   cannot use P-frames after a gap); nobody else is slowed or touched.
//! - A new viewer waits for a keyframe and asks for one.
//! - Keyframe requests (PLI/FIR, joins, overflows) from any number of viewers
//!   become at most one forced IDR per `keyframe_min_interval_ns`, for all.

use std::collections::{HashMap, VecDeque};

use crate::media::AccessUnit;

/// A viewer's identity within one station.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ViewerId(pub u64);

/// Fan-out limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanOutPolicy {
    /// Access units a viewer may have waiting.
    pub queue_capacity: usize,
    /// Shortest time between two forced keyframes, ns.
    pub keyframe_min_interval_ns: u64,
}

impl Default for FanOutPolicy {
    fn default() -> Self {
        // About 130 ms of video at 60 fps; a keyframe at most every 500 ms.
        Self { queue_capacity: 8, keyframe_min_interval_ns: 500_000_000 }
    }
}

/// Per-viewer counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ViewerStats {
    /// Access units handed to the viewer's sender.
    pub delivered: u64,
    /// Access units dropped for this viewer (overflow or waiting for a keyframe).
    pub dropped: u64,
    /// Times the viewer fell behind and skipped to the next keyframe.
    pub overflows: u64,
    /// Bytes handed to the sender.
    pub bytes: u64,
}

#[derive(Debug)]
struct Viewer {
    queue: VecDeque<AccessUnit>,
    waiting_for_keyframe: bool,
    stats: ViewerStats,
}

/// The fan-out state.
#[derive(Debug)]
pub struct FanOut {
    policy: FanOutPolicy,
    viewers: HashMap<ViewerId, Viewer>,
    keyframe_wanted: bool,
    last_forced_ns: Option<u64>,
    forced_keyframes: u64,
}

impl FanOut {
    /// An empty fan-out.
    pub fn new(policy: FanOutPolicy) -> Self {
        Self { policy, viewers: HashMap::new(), keyframe_wanted: false, last_forced_ns: None, forced_keyframes: 0 }
    }

    /// Adds a viewer; it receives nothing until the next keyframe, which it requests.
    pub fn add_viewer(&mut self, id: ViewerId) {
        self.viewers
            .insert(id, Viewer { queue: VecDeque::new(), waiting_for_keyframe: true, stats: ViewerStats::default() });
        self.keyframe_wanted = true;
    }

    /// Removes a viewer and its queue.
    pub fn remove_viewer(&mut self, id: ViewerId) -> Option<ViewerStats> {
        self.viewers.remove(&id).map(|v| v.stats)
    }

    /// Number of viewers.
    pub fn viewer_count(&self) -> usize {
        self.viewers.len()
    }

    /// A viewer's counters.
    pub fn stats(&self, id: ViewerId) -> Option<ViewerStats> {
        self.viewers.get(&id).map(|v| v.stats)
    }

    /// Offers a new access unit to every viewer.
    pub fn push(&mut self, au: &AccessUnit) {
        let capacity = self.policy.queue_capacity.max(1);
        let mut overflowed = false;
        for viewer in self.viewers.values_mut() {
            if viewer.waiting_for_keyframe {
                if !au.keyframe {
                    viewer.stats.dropped += 1;
                    continue;
                }
                viewer.waiting_for_keyframe = false;
            }
            if au.keyframe {
                // Nothing before a keyframe is needed any more: send the freshest picture.
                viewer.stats.dropped += viewer.queue.len() as u64;
                viewer.queue.clear();
            }
            if viewer.queue.len() >= capacity {
                viewer.stats.dropped += viewer.queue.len() as u64 + 1;
                viewer.stats.overflows += 1;
                viewer.queue.clear();
                viewer.waiting_for_keyframe = true;
                overflowed = true;
                continue;
            }
            viewer.queue.push_back(au.clone());
        }
        if overflowed {
            self.keyframe_wanted = true;
        }
    }

    /// The next access unit for `id`'s sender, if any.
    pub fn pop(&mut self, id: ViewerId) -> Option<AccessUnit> {
        let viewer = self.viewers.get_mut(&id)?;
        let au = viewer.queue.pop_front()?;
        viewer.stats.delivered += 1;
        viewer.stats.bytes += au.data.len() as u64;
        Some(au)
    }

    /// A viewer asks for a keyframe (RTCP PLI or FIR).
    pub fn request_keyframe(&mut self, id: ViewerId) {
        if self.viewers.contains_key(&id) {
            self.keyframe_wanted = true;
        }
    }

    /// Whether the encoder should force an IDR now: true at most once per
    /// `keyframe_min_interval_ns`, and only when someone needs one.
    pub fn take_keyframe_request(&mut self, now_ns: u64) -> bool {
        if !self.keyframe_wanted {
            return false;
        }
        let allowed =
            self.last_forced_ns.is_none_or(|last| now_ns.saturating_sub(last) >= self.policy.keyframe_min_interval_ns);
        if allowed {
            self.keyframe_wanted = false;
            self.last_forced_ns = Some(now_ns);
            self.forced_keyframes += 1;
        }
        allowed
    }

    /// Keyframes forced since creation.
    pub fn forced_keyframes(&self) -> u64 {
        self.forced_keyframes
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn au(sequence: u64, keyframe: bool) -> AccessUnit {
        AccessUnit {
            data: Arc::from(vec![0u8; 100 + sequence as usize]),
            keyframe,
            sequence,
            capture_time_ns: sequence * 16_666_667,
            capture_wall_ms: 0,
        }
    }

    /// A stream with a keyframe every `gop` units.
    fn stream(count: u64, gop: u64) -> Vec<AccessUnit> {
        (0..count).map(|i| au(i, i % gop == 0)).collect()
    }

    #[test]
    fn every_viewer_gets_the_same_bytes() {
        let mut fanout = FanOut::new(FanOutPolicy::default());
        fanout.add_viewer(ViewerId(1));
        fanout.add_viewer(ViewerId(2));
        fanout.push(&au(0, true));
        let (a, b) = (fanout.pop(ViewerId(1)).expect("a"), fanout.pop(ViewerId(2)).expect("b"));
        assert!(Arc::ptr_eq(&a.data, &b.data), "one encode, shared");
    }

    #[test]
    fn a_stalled_viewer_skips_to_the_next_keyframe_and_never_slows_the_others() {
        let policy = FanOutPolicy { queue_capacity: 4, keyframe_min_interval_ns: 0 };
        let mut fanout = FanOut::new(policy);
        let (fast, slow) = (ViewerId(1), ViewerId(2));
        fanout.add_viewer(fast);
        fanout.add_viewer(slow);
        let mut fast_got = Vec::new();
        for unit in stream(63, 30) {
            fanout.push(&unit);
            while let Some(u) = fanout.pop(fast) {
                fast_got.push(u.sequence);
            }
        }
        assert_eq!(fast_got, (0..63).collect::<Vec<_>>(), "the fast viewer gets every unit in order");
        // The slow viewer never reads: it overflows in each GOP (at units 4 and 34)
        // and its queue restarts at each keyframe, never growing past 4.
        let slow_stats = fanout.stats(slow).expect("slow");
        assert_eq!(slow_stats.overflows, 2);
        let resumed: Vec<u64> = std::iter::from_fn(|| fanout.pop(slow).map(|u| u.sequence)).collect();
        assert_eq!(resumed, vec![60, 61, 62]);
        assert!(fanout.take_keyframe_request(0), "the overflow asked for a keyframe");
    }

    #[test]
    fn a_joining_viewer_starts_at_a_keyframe() {
        let mut fanout = FanOut::new(FanOutPolicy::default());
        fanout.add_viewer(ViewerId(1));
        for unit in stream(10, 30) {
            fanout.push(&unit);
        }
        fanout.add_viewer(ViewerId(2));
        fanout.push(&au(10, false));
        assert_eq!(fanout.pop(ViewerId(2)), None, "no P-frame before the first keyframe");
        fanout.push(&au(11, true));
        assert_eq!(fanout.pop(ViewerId(2)).map(|u| u.sequence), Some(11));
    }

    #[test]
    fn keyframe_requests_are_merged_and_rate_limited() {
        let mut fanout = FanOut::new(FanOutPolicy { queue_capacity: 8, keyframe_min_interval_ns: 500 });
        for v in 0..32 {
            fanout.add_viewer(ViewerId(v));
        }
        assert!(fanout.take_keyframe_request(1_000));
        // A PLI storm from every viewer within the interval: no second keyframe yet.
        for v in 0..32 {
            fanout.request_keyframe(ViewerId(v));
        }
        assert!(!fanout.take_keyframe_request(1_200));
        assert!(fanout.take_keyframe_request(1_500), "one keyframe for all after the interval");
        assert!(!fanout.take_keyframe_request(5_000), "nothing wanted, nothing forced");
        assert_eq!(fanout.forced_keyframes(), 2);
        fanout.request_keyframe(ViewerId(999));
        assert!(!fanout.take_keyframe_request(10_000), "an unknown viewer cannot force keyframes");
    }

    #[test]
    fn removing_a_viewer_frees_its_queue() {
        let mut fanout = FanOut::new(FanOutPolicy::default());
        fanout.add_viewer(ViewerId(7));
        fanout.push(&au(0, true));
        let stats = fanout.remove_viewer(ViewerId(7)).expect("was there");
        assert_eq!(stats.delivered, 0);
        assert_eq!(fanout.viewer_count(), 0);
        assert_eq!(fanout.pop(ViewerId(7)), None);
    }
}
