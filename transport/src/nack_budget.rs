//! A retransmission budget per viewer. webrtc-rs's NACK responder resends
//! every packet a viewer asks for; on a path that is already too narrow
//! (exactly when a viewer is being moved to the reduced layer) those resends
//! of old full-layer packets fill the bottleneck and starve the new layer's
//! keyframe. This interceptor sits wire-ward of the responder (slot
//! [`NACK_BUDGET_SLOT`], between the pacer's 3 000 and the responder's
//! 4 000) and lets NACKs through only while their packets fit in
//! [`RESEND_SHARE`] of the rate of the layer the viewer receives now; the
//! rest are dropped (the viewer then asks for a keyframe, which the fan-out
//! rate-limits). The layer's rate, not the bandwidth estimate: a delay-based
//! estimate collapses on a jittery path that has room, and a budget tied to
//! it would then refuse the very resends that keep such a viewer playing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

use crate::feedback::ViewerLink;

/// Where the budget sits in webrtc-rs's chain (see `rtc::interceptor::Slot`).
pub const NACK_BUDGET_SLOT: usize = 3_500;
/// Share of the layer's rate retransmissions may use.
pub const RESEND_SHARE: f64 = 0.5;
/// Resends always allowed, packets per second (a small layer's few lost
/// packets, asked for again and again on a reordering path).
pub const RESEND_FLOOR_PER_SECOND: f64 = 20.0;
/// What one resent packet is counted as, bytes (a full RTP packet).
const PACKET_BYTES: f64 = 1_200.0;
/// The layer rate assumed before the first one is known, bit/s.
const DEFAULT_LAYER_BPS: f64 = 2_000_000.0;

/// A token bucket of resendable packets, one second deep. Time is an input.
#[derive(Debug, Clone)]
pub struct ResendBudget {
    tokens: f64,
    last: Option<Instant>,
}

impl Default for ResendBudget {
    fn default() -> Self {
        Self { tokens: Self::per_second(DEFAULT_LAYER_BPS), last: None }
    }
}

impl ResendBudget {
    fn per_second(layer_bps: f64) -> f64 {
        (layer_bps.max(0.0) * RESEND_SHARE / 8.0 / PACKET_BYTES).max(RESEND_FLOOR_PER_SECOND)
    }

    /// Whether `packets` resends fit at `now` for a viewer whose layer sends `layer_bps`.
    pub fn admit(&mut self, packets: usize, layer_bps: f64, now: Instant) -> bool {
        let rate = Self::per_second(layer_bps);
        let elapsed = self.last.map_or(0.0, |last| now.saturating_duration_since(last).as_secs_f64());
        self.last = Some(now);
        self.tokens = (self.tokens + elapsed * rate).min(rate.max(1.0));
        if self.tokens >= packets as f64 {
            self.tokens -= packets as f64;
            true
        } else {
            false
        }
    }
}

/// The interceptor.
pub struct NackBudget {
    link: Arc<Mutex<ViewerLink>>,
    budget: ResendBudget,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl NackBudget {
    /// A budget for the viewer whose figures (layer rate, refused count) are in `link`.
    pub fn new(link: Arc<Mutex<ViewerLink>>) -> Self {
        Self { link, budget: ResendBudget::default(), read_queue: VecDeque::new(), write_queue: VecDeque::new() }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for NackBudget {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &mut msg.message.packet
            && packets.iter().any(|p| p.as_any().is::<TransportLayerNack>())
        {
            let mut link = self.link.lock().unwrap_or_else(PoisonError::into_inner);
            let layer_bps = link.layer_rate_bps.filter(|r| *r > 0.0).unwrap_or(DEFAULT_LAYER_BPS);
            let before = packets.len();
            let now = msg.now;
            let budget = &mut self.budget;
            let mut refused = 0u64;
            packets.retain(|p| match p.as_any().downcast_ref::<TransportLayerNack>() {
                Some(nack) => {
                    let asked: usize = nack.nacks.iter().map(|pair| pair.packet_list().len()).sum();
                    let fits = budget.admit(asked, layer_bps, now);
                    if !fits {
                        refused += asked as u64;
                    }
                    fits
                }
                None => true,
            });
            link.resends_refused += refused;
            drop(link);
            if packets.is_empty() && before > 0 {
                // Nothing left to hand on (an empty RTCP list means something else to the chain).
                return Ok(());
            }
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for NackBudget {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn resends_fit_in_a_quarter_of_the_layer_rate() {
        let mut budget = ResendBudget::default();
        let t0 = Instant::now();
        // A 960 kbit/s layer: 0.5 × 960 000 / 8 / 1200 = 50 packets a second.
        assert!(budget.admit(50, 960_000.0, t0), "a second's worth at once");
        assert!(!budget.admit(50, 960_000.0, t0), "not twice");
        assert!(!budget.admit(50, 960_000.0, t0 + Duration::from_millis(500)), "half refilled");
        assert!(budget.admit(50, 960_000.0, t0 + Duration::from_millis(1_500)));
        // A small layer still gets the floor.
        assert!(budget.admit(20, 100_000.0, t0 + Duration::from_secs(3)));
        // A clean, fast path: hundreds a second.
        assert!(budget.admit(100, 6_000_000.0, t0 + Duration::from_secs(5)));
    }
}
