//! Which encoded layer each viewer gets: the full one, or the reduced one
//! when its own bandwidth estimate says the full one does not fit. A plain
//! state machine: estimates and the time come in, a target layer goes out.
//!
//! The estimate is the send-side GCC target (draft-ietf-rmcat-gcc-02,
//! webrtc-rs's `Gcc` over TWCC feedback from the viewer); the full layer's
//! need is its measured rate over the last second. Rules, with hysteresis so
//! a viewer does not flap:
//!
//! - on the full layer, an estimate below [`DOWN_FACTOR`] × the full layer's
//!   rate for [`DOWN_AFTER_NS`] → reduced;
//! - on the reduced layer, an estimate at or above [`UP_FACTOR`] × the full
//!   rate for [`UP_AFTER_NS`] → full. Because a viewer on the reduced layer
//!   cannot show more headroom than the reduced layer uses (GCC caps its
//!   target near 1.5 × what was acknowledged, and the station sends no
//!   padding probes), it is also tried on the full layer again after a
//!   back-off that starts at [`FIRST_PROBE_AFTER_NS`] and doubles (up to
//!   [`MAX_PROBE_AFTER_NS`]) each time the try fails within
//!   [`PROBE_HOLD_NS`].
//!
//! The switch itself happens in the fan-out, at the next keyframe of the
//! target layer, so the viewer's decoder never sees a broken picture.

/// The encoded layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum VideoLayer {
    /// The full-size stream.
    #[default]
    Full,
    /// Half the size at a fraction of the bitrate.
    Reduced,
}

impl VideoLayer {
    /// Both, full first.
    pub const ALL: [VideoLayer; 2] = [VideoLayer::Full, VideoLayer::Reduced];

    /// 0 for full, 1 for reduced (metrics, arrays).
    pub fn index(self) -> usize {
        match self {
            VideoLayer::Full => 0,
            VideoLayer::Reduced => 1,
        }
    }

    /// As the API and metrics name it.
    pub fn name(self) -> &'static str {
        match self {
            VideoLayer::Full => "full",
            VideoLayer::Reduced => "reduced",
        }
    }
}

/// Estimate / full-layer rate below which the full layer does not fit. Below
/// 0.85 (what GCC multiplies the acknowledged rate by on one overuse), so a
/// single false alarm on a clean link does not move anyone.
pub const DOWN_FACTOR: f64 = 0.7;
/// How long it must not fit before switching down, ns.
pub const DOWN_AFTER_NS: u64 = 1_000_000_000;
/// Estimate / full-layer rate at or above which the full layer fits again.
pub const UP_FACTOR: f64 = 1.3;
/// How long it must fit before switching up, ns.
pub const UP_AFTER_NS: u64 = 3_000_000_000;
/// First try of the full layer after a switch down, ns.
pub const FIRST_PROBE_AFTER_NS: u64 = 10_000_000_000;
/// Longest back-off between tries, ns.
pub const MAX_PROBE_AFTER_NS: u64 = 160_000_000_000;
/// A try that falls back within this time counts as failed, ns.
pub const PROBE_HOLD_NS: u64 = 15_000_000_000;

/// One viewer's layer choice.
#[derive(Debug, Clone)]
pub struct LayerSelector {
    target: VideoLayer,
    /// Since when the current condition for a switch has held.
    condition_since: Option<u64>,
    /// When the last switch was decided.
    switched_at: Option<u64>,
    /// The current back-off before trying the full layer again.
    probe_after_ns: u64,
    /// The last switch up was a try (not earned by the estimate).
    probing: bool,
}

impl Default for LayerSelector {
    fn default() -> Self {
        Self {
            target: VideoLayer::Full,
            condition_since: None,
            switched_at: None,
            probe_after_ns: FIRST_PROBE_AFTER_NS,
            probing: false,
        }
    }
}

impl LayerSelector {
    /// The layer this viewer should get.
    pub fn target(&self) -> VideoLayer {
        self.target
    }

    /// Takes the viewer's estimate (bit/s) and the full layer's rate
    /// (bit/s) at `now_ns`; returns the target layer.
    pub fn update(&mut self, estimate_bps: f64, full_rate_bps: f64, now_ns: u64) -> VideoLayer {
        if !(estimate_bps.is_finite() && full_rate_bps.is_finite() && full_rate_bps > 0.0) {
            return self.target;
        }
        let ratio = estimate_bps / full_rate_bps;
        let (condition, hold) = match self.target {
            VideoLayer::Full => (ratio < DOWN_FACTOR, DOWN_AFTER_NS),
            VideoLayer::Reduced => (ratio >= UP_FACTOR, UP_AFTER_NS),
        };
        let held = if condition {
            let since = *self.condition_since.get_or_insert(now_ns);
            now_ns.saturating_sub(since) >= hold
        } else {
            self.condition_since = None;
            false
        };
        let since_switch = self.switched_at.map_or(u64::MAX, |t| now_ns.saturating_sub(t));
        match self.target {
            VideoLayer::Full if held => {
                if self.probing && since_switch < PROBE_HOLD_NS {
                    self.probe_after_ns = (self.probe_after_ns * 2).min(MAX_PROBE_AFTER_NS);
                } else if since_switch >= PROBE_HOLD_NS {
                    self.probe_after_ns = FIRST_PROBE_AFTER_NS;
                }
                self.switch(VideoLayer::Reduced, false, now_ns);
            }
            VideoLayer::Reduced if held => self.switch(VideoLayer::Full, false, now_ns),
            VideoLayer::Reduced if since_switch >= self.probe_after_ns => self.switch(VideoLayer::Full, true, now_ns),
            _ => {}
        }
        self.target
    }

    fn switch(&mut self, to: VideoLayer, probing: bool, now_ns: u64) {
        self.target = to;
        self.probing = probing;
        self.switched_at = Some(now_ns);
        self.condition_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_squeezed_viewer_goes_down_after_a_second_not_on_one_dip() {
        let mut selector = LayerSelector::default();
        // A dip shorter than a second changes nothing.
        assert_eq!(selector.update(400e3, 2e6, 0), VideoLayer::Full);
        assert_eq!(selector.update(3e6, 2e6, S / 2), VideoLayer::Full);
        // A second below the full layer's rate: down.
        assert_eq!(selector.update(400e3, 2e6, S), VideoLayer::Full);
        assert_eq!(selector.update(400e3, 2e6, 2 * S - 1), VideoLayer::Full);
        assert_eq!(selector.update(400e3, 2e6, 2 * S), VideoLayer::Reduced);
    }

    #[test]
    fn it_comes_back_when_the_estimate_allows_and_tries_with_a_growing_back_off() {
        let mut selector = LayerSelector::default();
        selector.update(400e3, 2e6, 0);
        assert_eq!(selector.update(400e3, 2e6, S), VideoLayer::Reduced);
        // An estimate that fits again for 3 s: back up.
        selector.update(3e6, 2e6, 2 * S);
        assert_eq!(selector.update(3e6, 2e6, 5 * S), VideoLayer::Full);
        // Squeezed again: down; then tried 10 s later without any sign of room.
        selector.update(400e3, 2e6, 30 * S);
        assert_eq!(selector.update(400e3, 2e6, 31 * S), VideoLayer::Reduced);
        assert_eq!(selector.update(400e3, 2e6, 40 * S), VideoLayer::Reduced);
        assert_eq!(selector.update(400e3, 2e6, 41 * S), VideoLayer::Full, "a try after 10 s");
        // The try fails: down again, and the next try waits 20 s.
        selector.update(400e3, 2e6, 41 * S + 1);
        assert_eq!(selector.update(400e3, 2e6, 42 * S + 1), VideoLayer::Reduced);
        assert_eq!(selector.update(400e3, 2e6, 61 * S), VideoLayer::Reduced);
        assert_eq!(selector.update(400e3, 2e6, 62 * S + 1), VideoLayer::Full);
    }

    #[test]
    fn nonsense_figures_change_nothing() {
        let mut selector = LayerSelector::default();
        for (estimate, rate) in [(f64::NAN, 1e6), (1.0, 0.0), (1.0, f64::INFINITY), (-1.0, -1.0)] {
            selector.update(estimate, rate, 0);
            assert_eq!(selector.update(estimate, rate, 10 * S), VideoLayer::Full);
        }
    }
}
