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
//!   become at most one forced IDR per `keyframe_min_interval_ns` and layer,
//!   for all.
//! - Two layers (full and reduced, see [`crate::adapt`]): each viewer gets
//!   one; its [`LayerSelector`] picks which from its bandwidth estimate, and
//!   a change takes effect at the next keyframe of the new layer (one is
//!   asked for), so nobody else is touched.

use std::collections::{HashMap, VecDeque};

use crate::adapt::{LayerSelector, VideoLayer};
use crate::media::AccessUnit;

/// Bytes of one layer over the last second of capture time: its rate.
#[derive(Debug, Default)]
struct RateMeter {
    /// (capture time ns, bytes), oldest first, spanning at most one second.
    window: VecDeque<(u64, usize)>,
    bytes: usize,
}

impl RateMeter {
    const WINDOW_NS: u64 = 1_000_000_000;

    fn add(&mut self, time_ns: u64, bytes: usize) {
        self.window.push_back((time_ns, bytes));
        self.bytes += bytes;
        while let Some(&(oldest, size)) = self.window.front() {
            if time_ns.saturating_sub(oldest) < Self::WINDOW_NS {
                break;
            }
            self.window.pop_front();
            self.bytes -= size;
        }
    }

    /// bit/s over the window (0 until it has two units).
    fn bits_per_second(&self) -> f64 {
        match (self.window.front(), self.window.back()) {
            (Some(first), Some(last)) if last.0 > first.0 && self.window.len() >= 2 => {
                // n units span n − 1 intervals: scale to the mean interval.
                let span_s =
                    (last.0 - first.0) as f64 / 1e9 * self.window.len() as f64 / (self.window.len() - 1) as f64;
                self.bytes as f64 * 8.0 / span_s
            }
            _ => 0.0,
        }
    }
}

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
    /// Times it moved between layers.
    pub layer_switches: u64,
}

#[derive(Debug)]
struct Viewer {
    queue: VecDeque<AccessUnit>,
    waiting_for_keyframe: bool,
    stats: ViewerStats,
    /// The layer it receives now.
    layer: VideoLayer,
    selector: LayerSelector,
}

/// The fan-out state.
#[derive(Debug)]
pub struct FanOut {
    policy: FanOutPolicy,
    viewers: HashMap<ViewerId, Viewer>,
    /// Per layer ([`VideoLayer::index`]).
    keyframe_wanted: [bool; 2],
    last_forced_ns: [Option<u64>; 2],
    forced_keyframes: u64,
    rates: [RateMeter; 2],
    /// The encoder makes a reduced layer whenever a viewer needs it (see
    /// [`FanOut::reduced_wanted`]), so viewers may be moved to it before
    /// any of it was seen.
    reduced_offered: bool,
}

impl FanOut {
    /// An empty fan-out.
    pub fn new(policy: FanOutPolicy) -> Self {
        Self {
            policy,
            viewers: HashMap::new(),
            keyframe_wanted: [false; 2],
            last_forced_ns: [None; 2],
            forced_keyframes: 0,
            rates: Default::default(),
            reduced_offered: false,
        }
    }

    /// The encoder makes the reduced layer on demand: viewers may be moved
    /// to it (which asks for it) before any of it was encoded.
    pub fn offer_reduced_layer(&mut self) {
        self.reduced_offered = true;
    }

    /// Whether any viewer receives the reduced layer or is to be moved to
    /// it: the encoder makes that layer only then (each encode costs the
    /// station's cores whether anyone watches it or not).
    pub fn reduced_wanted(&self) -> bool {
        self.viewers.values().any(|v| v.layer == VideoLayer::Reduced || v.selector.target() == VideoLayer::Reduced)
    }

    /// Adds a viewer; it receives nothing until the next keyframe, which it requests.
    pub fn add_viewer(&mut self, id: ViewerId) {
        let viewer = Viewer {
            queue: VecDeque::new(),
            waiting_for_keyframe: true,
            stats: ViewerStats::default(),
            layer: VideoLayer::Full,
            selector: LayerSelector::default(),
        };
        self.viewers.insert(id, viewer);
        self.keyframe_wanted[VideoLayer::Full.index()] = true;
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
        self.rates[au.layer.index()].add(au.capture_time_ns, au.data.len());
        for viewer in self.viewers.values_mut() {
            let target = viewer.selector.target();
            if au.layer != viewer.layer {
                // Another layer: the viewer moves to it at its keyframe, if that is its target.
                if au.layer != target || !au.keyframe {
                    continue;
                }
                viewer.layer = target;
                viewer.waiting_for_keyframe = false;
                viewer.stats.dropped += viewer.queue.len() as u64;
                viewer.queue.clear();
                viewer.stats.layer_switches += 1;
            }
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
            self.keyframe_wanted[au.layer.index()] = true;
        }
    }

    /// Rate of `layer` over the last second of capture time, bit/s.
    pub fn layer_rate_bps(&self, layer: VideoLayer) -> f64 {
        self.rates[layer.index()].bits_per_second()
    }

    /// The layer viewer `id` receives now.
    pub fn layer(&self, id: ViewerId) -> Option<VideoLayer> {
        self.viewers.get(&id).map(|v| v.layer)
    }

    /// Feeds viewer `id`'s bandwidth estimate (bit/s) at `now_ns` (any
    /// monotonic clock, the same for every call about this viewer); a new
    /// target layer asks that layer for a keyframe. Without a reduced layer
    /// (neither offered nor encoded), everyone stays on the full one.
    pub fn update_estimate(&mut self, id: ViewerId, estimate_bps: f64, now_ns: u64) {
        if !self.reduced_offered && self.rates[VideoLayer::Reduced.index()].window.is_empty() {
            return;
        }
        let full_rate = self.layer_rate_bps(VideoLayer::Full);
        let Some(viewer) = self.viewers.get_mut(&id) else { return };
        let before = viewer.selector.target();
        let after = viewer.selector.update(estimate_bps, full_rate, now_ns);
        if after != before && after != viewer.layer {
            self.keyframe_wanted[after.index()] = true;
        }
    }

    /// Whether `id` has an access unit waiting.
    pub fn has_pending(&self, id: ViewerId) -> bool {
        self.viewers.get(&id).is_some_and(|v| !v.queue.is_empty())
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
        if let Some(viewer) = self.viewers.get(&id) {
            self.keyframe_wanted[viewer.layer.index()] = true;
        }
    }

    /// Someone besides the viewers needs a keyframe of `layer` (a recording
    /// that starts: its first segment starts at one).
    pub fn want_keyframe(&mut self, layer: VideoLayer) {
        self.keyframe_wanted[layer.index()] = true;
    }

    /// Whether the encoder should force an IDR now: true at most once per
    /// `keyframe_min_interval_ns`, and only when someone needs one.
    pub fn take_keyframe_request(&mut self, layer: VideoLayer, now_ns: u64) -> bool {
        let i = layer.index();
        if !self.keyframe_wanted[i] {
            return false;
        }
        let allowed = self.last_forced_ns[i]
            .is_none_or(|last| now_ns.saturating_sub(last) >= self.policy.keyframe_min_interval_ns);
        if allowed {
            self.keyframe_wanted[i] = false;
            self.last_forced_ns[i] = Some(now_ns);
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
            layer: VideoLayer::Full,
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
        assert!(fanout.take_keyframe_request(VideoLayer::Full, 0), "the overflow asked for a keyframe");
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
        assert!(fanout.take_keyframe_request(VideoLayer::Full, 1_000));
        // A PLI storm from every viewer within the interval: no second keyframe yet.
        for v in 0..32 {
            fanout.request_keyframe(ViewerId(v));
        }
        assert!(!fanout.take_keyframe_request(VideoLayer::Full, 1_200));
        assert!(fanout.take_keyframe_request(VideoLayer::Full, 1_500), "one keyframe for all after the interval");
        assert!(!fanout.take_keyframe_request(VideoLayer::Full, 5_000), "nothing wanted, nothing forced");
        assert_eq!(fanout.forced_keyframes(), 2);
        fanout.request_keyframe(ViewerId(999));
        assert!(!fanout.take_keyframe_request(VideoLayer::Full, 10_000), "an unknown viewer cannot force keyframes");
    }

    #[test]
    fn a_viewer_moves_to_the_reduced_layer_at_its_keyframe_and_nobody_else_does() {
        let mut fanout = FanOut::new(FanOutPolicy { queue_capacity: 8, keyframe_min_interval_ns: 0 });
        let (squeezed, clean) = (ViewerId(1), ViewerId(2));
        fanout.add_viewer(squeezed);
        fanout.add_viewer(clean);
        let reduced =
            |sequence: u64, keyframe: bool| AccessUnit { layer: VideoLayer::Reduced, ..au(sequence, keyframe) };
        let got = |fanout: &mut FanOut, id| {
            std::iter::from_fn(|| fanout.pop(id)).map(|u| (u.sequence, u.layer)).collect::<Vec<_>>()
        };
        // 30 frames of both layers; the full layer takes about 2 × 100 kB/s.
        for i in 0..30 {
            fanout.push(&au(i, i == 0));
            fanout.push(&reduced(i, i == 0));
            let _ = (got(&mut fanout, squeezed), got(&mut fanout, clean));
        }
        assert!(fanout.layer_rate_bps(VideoLayer::Full) > 50_000.0);
        assert!(fanout.take_keyframe_request(VideoLayer::Full, 0), "the joins asked the full layer");
        assert!(!fanout.take_keyframe_request(VideoLayer::Reduced, 0));
        // The squeezed viewer's estimate stays far below the full layer's rate for over a second.
        for t in 0..=12 {
            fanout.update_estimate(squeezed, 1_000.0, t * 100_000_000);
            fanout.update_estimate(clean, 1e9, t * 100_000_000);
        }
        assert!(fanout.take_keyframe_request(VideoLayer::Reduced, 1), "the new layer was asked for a keyframe");
        assert!(!fanout.take_keyframe_request(VideoLayer::Full, 1));
        // Until that keyframe the squeezed viewer stays on the full layer.
        fanout.push(&au(30, false));
        fanout.push(&reduced(30, false));
        assert_eq!(got(&mut fanout, squeezed), [(30, VideoLayer::Full)]);
        fanout.push(&au(31, false));
        fanout.push(&reduced(31, true));
        // The switch drops what was queued of the old layer: the new keyframe is the freshest picture.
        assert_eq!(got(&mut fanout, squeezed), [(31, VideoLayer::Reduced)]);
        assert_eq!(got(&mut fanout, clean), [(30, VideoLayer::Full), (31, VideoLayer::Full)]);
        assert_eq!(fanout.layer(squeezed), Some(VideoLayer::Reduced));
        assert_eq!(fanout.stats(squeezed).map(|s| s.layer_switches), Some(1));
        assert_eq!(fanout.layer(clean), Some(VideoLayer::Full));
    }

    #[test]
    fn an_offered_reduced_layer_is_wanted_only_while_a_viewer_needs_it() {
        let mut fanout = FanOut::new(FanOutPolicy { queue_capacity: 8, keyframe_min_interval_ns: 0 });
        fanout.offer_reduced_layer();
        let (squeezed, clean) = (ViewerId(1), ViewerId(2));
        fanout.add_viewer(squeezed);
        fanout.add_viewer(clean);
        // One second of the full layer only, nobody squeezed yet.
        for sequence in 0..60u64 {
            fanout.push(&au(sequence, sequence == 0));
        }
        assert!(fanout.layer_rate_bps(VideoLayer::Full) > 50_000.0);
        assert!(!fanout.reduced_wanted(), "nobody needs the reduced layer: it is not encoded");
        // The squeezed viewer's estimate stays far below the full layer's rate for over a second.
        let full_rate = fanout.layer_rate_bps(VideoLayer::Full);
        for step in 0..=12u64 {
            fanout.update_estimate(squeezed, full_rate * 0.2, step * 100_000_000);
            fanout.update_estimate(clean, full_rate * 10.0, step * 100_000_000);
        }
        assert!(fanout.reduced_wanted(), "a viewer to be moved down asks for the reduced layer");
        assert!(fanout.take_keyframe_request(VideoLayer::Reduced, 2_000_000_000), "starting at a keyframe");
        let reduced = AccessUnit { layer: VideoLayer::Reduced, ..au(60, true) };
        fanout.push(&reduced);
        assert_eq!(fanout.layer(squeezed), Some(VideoLayer::Reduced));
        assert_eq!(fanout.layer(clean), Some(VideoLayer::Full));
        fanout.remove_viewer(squeezed);
        assert!(!fanout.reduced_wanted(), "its last viewer gone, the reduced layer stops");
    }

    #[test]
    fn without_a_reduced_layer_everyone_stays_full() {
        let mut fanout = FanOut::new(FanOutPolicy::default());
        fanout.add_viewer(ViewerId(1));
        for i in 0..30 {
            fanout.push(&au(i, i == 0));
        }
        for t in 0..40 {
            fanout.update_estimate(ViewerId(1), 1.0, t * 100_000_000);
        }
        assert!(!fanout.take_keyframe_request(VideoLayer::Reduced, 0));
        assert_eq!(fanout.layer(ViewerId(1)), Some(VideoLayer::Full));
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
