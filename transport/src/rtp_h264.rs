//! One viewer's H.264 RTP stream (RFC 6184, packetization mode 1): access
//! units into RTP packets whose timestamps are the frames' capture times on
//! the 90 kHz clock.
//!
//! webrtc-rs's sample writer advances the RTP timestamp by each sample's
//! nominal duration; when frames come slower than the nominal rate (a busy
//! compositor, a dropped frame) the timestamps fall behind the real arrival
//! times, and the browser's jitter buffer grows to absorb what looks like
//! network delay. Stamping the capture time keeps timestamp and arrival in
//! step, so the receiver's delay estimate reflects only real jitter.
//! SPS and PPS in front of an IDR are aggregated into one STAP-A with the
//! IDR's timestamp by the H.264 payloader.

use bytes::Bytes;
use rtc::rtp::codec::h264::H264Payloader;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp::packetizer::Payloader;

use crate::media::AccessUnit;

/// RTP payload bytes per packet (what webrtc-rs uses: fits any path MTU with SRTP, TURN and IPv6).
pub const RTP_PAYLOAD_MTU: usize = 1200 - 12;
/// The H.264 RTP clock, Hz (RFC 6184 §8.2.1).
pub const H264_CLOCK_HZ: u64 = 90_000;

/// The packetizer state of one RTP stream.
#[derive(Debug)]
pub struct H264RtpStream {
    payloader: H264Payloader,
    ssrc: u32,
    payload_type: u8,
    next_sequence: u16,
    /// RTP timestamp of the first access unit, and its capture time (ns).
    origin: Option<(u32, u64)>,
    initial_timestamp: u32,
}

impl H264RtpStream {
    /// A stream with random-looking start values (RFC 3550 §5.1 asks for random ones).
    pub fn new(ssrc: u32, payload_type: u8, initial_sequence: u16, initial_timestamp: u32) -> Self {
        Self {
            payloader: H264Payloader::default(),
            ssrc,
            payload_type,
            next_sequence: initial_sequence,
            origin: None,
            initial_timestamp,
        }
    }

    /// The RTP timestamp of an access unit captured at `capture_time_ns`.
    pub fn timestamp_for(&mut self, capture_time_ns: u64) -> u32 {
        let (base, first_ns) = *self.origin.get_or_insert((self.initial_timestamp, capture_time_ns));
        // Capture times before the first one (never, with a monotonic clock) count as the first.
        let ticks = u128::from(capture_time_ns.saturating_sub(first_ns)) * u128::from(H264_CLOCK_HZ) / 1_000_000_000;
        base.wrapping_add(ticks as u32)
    }

    /// The RTP packets of `au`, the last one with the marker bit.
    pub fn packetize(&mut self, au: &AccessUnit) -> Vec<Packet> {
        let timestamp = self.timestamp_for(au.capture_time_ns);
        // The payloader slices this; every viewer shares the one encoded buffer (no copy).
        let data = Bytes::from_owner(au.data.clone());
        let payloads = match self.payloader.payload(RTP_PAYLOAD_MTU, &data) {
            Ok(payloads) => payloads,
            Err(e) => {
                tracing::warn!(error = %e, "an access unit could not be packetized; skipped");
                return Vec::new();
            }
        };
        let last = payloads.len().saturating_sub(1);
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| {
                let sequence_number = self.next_sequence;
                self.next_sequence = self.next_sequence.wrapping_add(1);
                Packet {
                    header: Header {
                        version: 2,
                        marker: i == last,
                        payload_type: self.payload_type,
                        sequence_number,
                        timestamp,
                        ssrc: self.ssrc,
                        ..Default::default()
                    },
                    payload,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn au(data: Vec<u8>, capture_time_ns: u64) -> AccessUnit {
        AccessUnit {
            data: Arc::from(data),
            keyframe: false,
            sequence: 0,
            capture_time_ns,
            capture_wall_ms: 0,
            layer: Default::default(),
        }
    }

    #[test]
    fn timestamps_follow_capture_times_not_nominal_durations() {
        let mut stream = H264RtpStream::new(7, 102, 65_534, 4_294_967_000);
        // Frames at 0, 40 ms (a late one) and 50 ms: 0, 3600 and 4500 ticks later (wrapping).
        let slice = vec![0, 0, 0, 1, 0x41, 0x9a, 0x00, 0x10];
        let a = stream.packetize(&au(slice.clone(), 1_000_000_000));
        let b = stream.packetize(&au(slice.clone(), 1_040_000_000));
        let c = stream.packetize(&au(slice, 1_050_000_000));
        assert_eq!(a[0].header.timestamp, 4_294_967_000);
        assert_eq!(b[0].header.timestamp, 4_294_967_000u32.wrapping_add(3_600));
        assert_eq!(c[0].header.timestamp, 4_294_967_000u32.wrapping_add(4_500));
        // Sequence numbers continue across the wrap.
        assert_eq!(
            [a[0].header.sequence_number, b[0].header.sequence_number, c[0].header.sequence_number],
            [65_534, 65_535, 0]
        );
        assert!(a.iter().all(|p| p.header.ssrc == 7 && p.header.payload_type == 102));
    }

    #[test]
    fn sps_and_pps_share_a_stap_a_with_the_idr_timestamp_and_the_marker_ends_the_frame() {
        let mut stream = H264RtpStream::new(1, 102, 0, 0);
        let mut idr = vec![0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, 0, 0, 0, 1, 0x65];
        idr.extend(std::iter::repeat_n(0xab, 5_000));
        let packets = stream.packetize(&au(idr, 5_000_000));
        assert_eq!(packets[0].payload[0] & 0x1f, 24, "a STAP-A first");
        assert!(packets.iter().all(|p| p.header.timestamp == packets[0].header.timestamp));
        assert!(packets.len() > 4, "the IDR is fragmented (FU-A)");
        assert!(packets.iter().take(packets.len() - 1).all(|p| !p.header.marker));
        assert!(packets.last().is_some_and(|p| p.header.marker));
        assert!(packets.iter().all(|p| p.payload.len() <= RTP_PAYLOAD_MTU));
    }
}
