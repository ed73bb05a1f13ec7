//! What each viewer tells the station over RTCP. webrtc-rs's own
//! interceptors answer NACKs and generate sender reports; this one, last in
//! the chain, reads what is left for the application:
//!
//! - PLI (RFC 4585 §6.3.1) and FIR (RFC 5104 §4.3.1) become a keyframe request
//!   in the fan-out, which turns requests from every viewer into at most one
//!   forced IDR per interval (see [`crate::fanout`]);
//! - receiver reports (RFC 3550 §6.4.2) give loss and the round-trip time
//!   (webrtc-rs 0.21 reports RTT as 0; §6.4.1's formula is computed here);
//! - NACKs are counted;
//! - the send-side bandwidth estimate (GCC over the viewer's TWCC feedback,
//!   webrtc-rs's congestion-control interceptor, attached to the feedback
//!   packet as `TargetBitrateChanged`) is kept and handed to the fan-out,
//!   which picks the viewer's layer from it (see [`crate::adapt`]).
//!
//! Inbound RTCP ends here (the interceptors before it have used it); a packet
//! that is not for our stream, or garbage webrtc-rs could still parse, only
//! changes this viewer's figures.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

use crate::broadcast::Broadcast;
use crate::clock::StationClock;
use crate::fanout::ViewerId;

/// One viewer's network path as the station sees it from RTCP.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewerLink {
    /// ICE and DTLS are up.
    pub connected: bool,
    /// Round-trip time from the viewer's last receiver report that echoed a sender report, s.
    pub rtt_s: Option<f64>,
    /// Fraction of packets lost in the viewer's last report interval, 0..=1.
    pub fraction_lost: f64,
    /// Packets the viewer reported lost in total (RFC 3550 cumulative lost).
    pub packets_lost: u32,
    /// RTP packets sent to the viewer.
    pub packets_sent: u64,
    /// RTP payload bytes sent to the viewer.
    pub bytes_sent: u64,
    /// Packets the viewer asked to be resent (NACK).
    pub nacked_packets: u64,
    /// Picture loss indications received.
    pub plis: u64,
    /// Full intra requests received.
    pub firs: u64,
    /// The latest send-side bandwidth estimate, bit/s.
    pub estimate_bps: Option<f64>,
    /// The layer the viewer receives.
    pub layer: crate::adapt::VideoLayer,
    /// Resends asked for but refused by the retransmission budget.
    pub resends_refused: u64,
    /// The rate of the layer the viewer receives, bit/s.
    pub layer_rate_bps: Option<f64>,
}

/// RFC 3550 §6.4.1: RTT = A − LSR − DLSR, all in NTP short format (1/65536 s):
/// `arrival` the middle 32 bits of the NTP time the report arrived, `lsr` the
/// echoed middle bits of our sender report, `dlsr` the viewer's delay since it.
/// `None` when the report echoes no sender report, or the result is negative or
/// longer than [`MAX_PLAUSIBLE_RTT`] (an LSR that was never ours: a broken or
/// hostile viewer).
pub fn round_trip_time(arrival: u32, lsr: u32, dlsr: u32) -> Option<Duration> {
    if lsr == 0 {
        return None;
    }
    let rtt = Duration::from_nanos(u64::from(arrival.wrapping_sub(lsr).wrapping_sub(dlsr)) * 1_000_000_000 / 65_536);
    (rtt <= MAX_PLAUSIBLE_RTT).then_some(rtt)
}

/// Longer round trips than this are not believed.
pub const MAX_PLAUSIBLE_RTT: Duration = Duration::from_secs(60);

/// The middle 32 bits of the NTP timestamp for `unix` (RFC 3550 §4).
pub fn ntp_short(unix: Duration) -> u32 {
    const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;
    let seconds = unix.as_secs() + NTP_UNIX_OFFSET_S;
    let fraction = (u64::from(unix.subsec_nanos()) << 16) / 1_000_000_000;
    ((seconds << 16) as u32) | (fraction as u32)
}

/// Where it sits: after every built-in slot (the last one is 13 000), so the
/// others have acted on each RTCP packet before it ends here.
pub const VIEWER_FEEDBACK_SLOT: usize = 14_000;

/// Reads one viewer's RTCP into its [`ViewerLink`] and the fan-out.
pub struct ViewerFeedback {
    viewer: ViewerId,
    broadcast: Arc<Broadcast>,
    link: Arc<Mutex<ViewerLink>>,
    /// A monotonic instant and the wall time then (as webrtc-rs's sender
    /// reports use): packet times become NTP without reading the clock again.
    baseline: (Instant, Duration),
    clock: StationClock,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl ViewerFeedback {
    /// Feedback of `viewer`, written to `link`, keyframe requests to `broadcast`.
    /// `clock` times its estimates for the layer choice (the station's clock).
    pub fn new(
        viewer: ViewerId,
        broadcast: Arc<Broadcast>,
        link: Arc<Mutex<ViewerLink>>,
        now: Instant,
        clock: StationClock,
    ) -> Self {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Self {
            viewer,
            broadcast,
            link,
            baseline: (now, wall),
            clock,
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        }
    }

    fn on_rtcp(&self, packets: &[Box<dyn rtc::rtcp::Packet>], estimate_bps: Option<f64>, now: Instant) {
        let arrival = ntp_short(self.baseline.1 + now.saturating_duration_since(self.baseline.0));
        let mut keyframe_wanted = false;
        let mut link = self.link.lock().unwrap_or_else(PoisonError::into_inner);
        for packet in packets {
            let any = packet.as_any();
            if let Some(report) = any.downcast_ref::<ReceiverReport>() {
                for block in &report.reports {
                    link.fraction_lost = f64::from(block.fraction_lost) / 256.0;
                    link.packets_lost = block.total_lost;
                    if let Some(rtt) = round_trip_time(arrival, block.last_sender_report, block.delay) {
                        link.rtt_s = Some(rtt.as_secs_f64());
                    }
                }
            } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                link.nacked_packets += nack.nacks.iter().map(|pair| pair.packet_list().len() as u64).sum::<u64>();
            } else if any.is::<FullIntraRequest>() {
                link.firs += 1;
                keyframe_wanted = true;
            } else if any.is::<PictureLossIndication>() {
                link.plis += 1;
                keyframe_wanted = true;
            }
        }
        if estimate_bps.is_some() {
            link.estimate_bps = estimate_bps;
        }
        let estimate = link.estimate_bps;
        drop(link);
        if keyframe_wanted {
            tracing::debug!(viewer = self.viewer.0, "keyframe requested");
        }
        if let Some(now) = self.broadcast.feedback(self.viewer, keyframe_wanted, estimate, self.clock.now_ns()) {
            let mut link = self.link.lock().unwrap_or_else(PoisonError::into_inner);
            link.layer = now.layer;
            link.layer_rate_bps = Some(now.rate_bps);
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for ViewerFeedback {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let estimate = match msg.message.get(&Attribute::TargetBitrateChanged { bits_per_second: 0.0 }) {
                Some(Attribute::TargetBitrateChanged { bits_per_second }) => Some(*bits_per_second),
                _ => None,
            };
            self.on_rtcp(packets, estimate, msg.now);
            return Ok(());
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

impl Interceptor for ViewerFeedback {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_follows_rfc3550_example() {
        // RFC 3550 §6.4.1's example: A = 0xb710:8a80, LSR = 0xb705:2000, DLSR = 0x0005:4000,
        // A − LSR − DLSR = 46864.5415 − 46853.125 − 5.25 = 6.1665 s.
        let rtt = round_trip_time(0xb710_8a80, 0xb705_2000, 0x0005_4000).expect("a positive RTT");
        assert_eq!(round_trip_time(0xb710_8a80, 0x0005_2000, 0), None, "hours: not ours");
        assert!((rtt.as_secs_f64() - 6.1665).abs() < 1e-3, "{rtt:?}");
        assert_eq!(round_trip_time(0xb710_8a80, 0, 0), None, "no sender report echoed");
        assert_eq!(round_trip_time(0x0000_0010, 0x0000_0020, 0), None, "negative");
        assert_eq!(
            round_trip_time(0x0000_0010, 0xffff_fff0, 0x10),
            Some(Duration::from_nanos(16 * 1_000_000_000 / 65_536))
        );
    }

    #[test]
    fn ntp_short_is_the_middle_32_bits() {
        // 1970-01-01T00:00:00.5 is NTP 2208988800.5: seconds 0x83AA7E80, fraction 0x8000.
        assert_eq!(ntp_short(Duration::from_millis(500)), 0x7E80_8000);
    }
}
