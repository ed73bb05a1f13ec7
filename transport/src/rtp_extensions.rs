//! The RTP header extensions the station sends to a viewer, their wire formats
//! and the ids a session negotiated for them.
//!
//! - **playout-delay** (<http://www.webrtc.org/experiments/rtp-hdrext/playout-delay>):
//!   3 bytes, min and max delay as 12-bit big-endian counts of 10 ms. With min 0 and
//!   max > 0 Chrome's low-latency renderer plays each frame as it is decoded instead
//!   of smoothing (~40 ms on a LAN).
//! - **abs-capture-time** (<http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time>):
//!   8 bytes, the frame's capture time as an NTP timestamp in UQ32.32 (seconds since
//!   1900-01-01 UTC and their binary fraction), big-endian; 16 bytes when a Q32.32
//!   estimated capture clock offset follows (we send none: the station's own clock
//!   is the capture clock). A receiver reports end-to-end delay from it without
//!   reading pixels.
//!
//! The format's version is its URI; both are pinned by round-trip tests.
//!
//! **Ids come from the session's own answer**, never from webrtc-rs's sender
//! parameters: webrtc-rs 0.21 binds a track when it is added, and a WHEP answerer
//! adds it before the offer is applied, so the parameters it caches
//! (`RTCRtpSender::get_parameters`, kept in `last_returned_parameters`) number the
//! registered extensions 1, 2, … in registration order, not as negotiated.
//! `write_rtp_with_extensions` then wrote playout-delay under an id the viewer had
//! negotiated for something else (ARCHITECTURE.md, "Playout-delay").

use thiserror::Error;

/// The playout-delay extension's URI.
pub const PLAYOUT_DELAY_URI: &str = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";
/// The abs-capture-time extension's URI.
pub const ABS_CAPTURE_TIME_URI: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01), RFC 5905.
const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;
/// The largest delay playout-delay can say, in 10 ms units (12 bits).
pub const PLAYOUT_DELAY_MAX_UNITS: u16 = (1 << 12) - 1;

/// An extension's bytes that do not parse.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ExtensionError {
    /// Not one of the sizes the format allows.
    #[error("{uri}: {len} bytes (allowed: {allowed})")]
    Size {
        /// The extension.
        uri: &'static str,
        /// The bytes there were.
        len: usize,
        /// The sizes the format allows.
        allowed: &'static str,
    },
}

/// Playout-delay: how long the receiver may hold a frame before showing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayoutDelay {
    /// Minimum, 10 ms units (≤ 4095).
    pub min_10ms: u16,
    /// Maximum, 10 ms units (≤ 4095).
    pub max_10ms: u16,
}

impl PlayoutDelay {
    /// Min 0 and a max of `max_ms` rounded up to 10 ms (at most 40.95 s).
    pub fn at_once_within(max_ms: u32) -> Self {
        let max_10ms =
            u16::try_from(max_ms.div_ceil(10)).unwrap_or(PLAYOUT_DELAY_MAX_UNITS).min(PLAYOUT_DELAY_MAX_UNITS);
        Self { min_10ms: 0, max_10ms }
    }

    /// The 3 bytes on the wire.
    pub fn to_bytes(self) -> [u8; 3] {
        let min = self.min_10ms.min(PLAYOUT_DELAY_MAX_UNITS);
        let max = self.max_10ms.min(PLAYOUT_DELAY_MAX_UNITS);
        [(min >> 4) as u8, ((min & 0x0f) << 4) as u8 | (max >> 8) as u8, (max & 0xff) as u8]
    }

    /// Parses the 3 bytes of the wire.
    pub fn parse(bytes: &[u8]) -> Result<Self, ExtensionError> {
        let &[b0, b1, b2] = bytes else {
            return Err(ExtensionError::Size { uri: PLAYOUT_DELAY_URI, len: bytes.len(), allowed: "3" });
        };
        let (b0, b1, b2) = (u16::from(b0), u16::from(b1), u16::from(b2));
        Ok(Self { min_10ms: (b0 << 4) | (b1 >> 4), max_10ms: ((b1 & 0x0f) << 8) | b2 })
    }
}

/// Abs-capture-time: when the frame was captured, on the sender's wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbsCaptureTime {
    /// NTP timestamp, UQ32.32 seconds since 1900-01-01 UTC.
    pub ntp: u64,
    /// The capture clock's estimated offset from the sender's, Q32.32 s (not sent when `None`).
    pub clock_offset: Option<i64>,
}

impl AbsCaptureTime {
    /// The capture time `unix_ms` (ms since 1970-01-01 UTC), no clock offset.
    pub fn from_unix_ms(unix_ms: u64) -> Self {
        let seconds = unix_ms / 1000 + NTP_UNIX_OFFSET_S;
        // Fraction of a second in 2^-32 s: ms × 2^32 / 1000, exact to below a nanosecond.
        let fraction = ((unix_ms % 1000) << 32) / 1000;
        Self { ntp: (seconds << 32) | fraction, clock_offset: None }
    }

    /// The capture time in Unix ms (rounded to the nearest ms).
    pub fn unix_ms(self) -> u64 {
        let seconds = (self.ntp >> 32).saturating_sub(NTP_UNIX_OFFSET_S);
        let fraction_ms = ((self.ntp & 0xffff_ffff) * 1000 + (1 << 31)) >> 32;
        seconds * 1000 + fraction_ms
    }

    /// The 8 (or 16, with an offset) bytes on the wire.
    pub fn to_bytes(self) -> Vec<u8> {
        let mut bytes = self.ntp.to_be_bytes().to_vec();
        if let Some(offset) = self.clock_offset {
            bytes.extend_from_slice(&offset.to_be_bytes());
        }
        bytes
    }

    /// Parses the 8 or 16 bytes of the wire.
    pub fn parse(bytes: &[u8]) -> Result<Self, ExtensionError> {
        let size = || ExtensionError::Size { uri: ABS_CAPTURE_TIME_URI, len: bytes.len(), allowed: "8 or 16" };
        let (ntp, rest) = bytes.split_first_chunk::<8>().ok_or_else(size)?;
        let clock_offset = match rest.len() {
            0 => None,
            8 => rest.first_chunk::<8>().map(|offset| i64::from_be_bytes(*offset)),
            _ => return Err(size()),
        };
        Ok(Self { ntp: u64::from_be_bytes(*ntp), clock_offset })
    }
}

/// The ids one session's SDP (our answer) gives the extensions we send; `None`
/// where not negotiated or where the id does not fit RFC 8285's one-byte form
/// (1–14), the only one these small extensions need.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NegotiatedExtensions {
    /// Playout-delay's id and the value sent.
    pub playout_delay: Option<(u8, PlayoutDelay)>,
    /// Abs-capture-time's id.
    pub abs_capture_time: Option<u8>,
}

impl NegotiatedExtensions {
    /// Reads the `a=extmap:` lines of the video section of `sdp`; playout-delay is
    /// sent with min 0 and `playout_delay_max_ms` (0: not sent).
    pub fn from_sdp(sdp: &str, playout_delay_max_ms: u32) -> Self {
        let playout_delay = (playout_delay_max_ms > 0)
            .then(|| extmap_id(sdp, PLAYOUT_DELAY_URI))
            .flatten()
            .map(|id| (id, PlayoutDelay::at_once_within(playout_delay_max_ms)));
        Self { playout_delay, abs_capture_time: extmap_id(sdp, ABS_CAPTURE_TIME_URI) }
    }

    /// Each extension's (id, bytes) for a packet of the frame captured at `capture_wall_ms`.
    pub fn for_frame(&self, capture_wall_ms: u64) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::with_capacity(2);
        if let Some((id, delay)) = self.playout_delay {
            out.push((id, delay.to_bytes().to_vec()));
        }
        if let Some(id) = self.abs_capture_time {
            out.push((id, AbsCaptureTime::from_unix_ms(capture_wall_ms).to_bytes()));
        }
        out
    }
}

/// The id of `uri` in the first video section's `a=extmap:<id>[/<direction>] <uri>` lines.
pub fn extmap_id(sdp: &str, uri: &str) -> Option<u8> {
    let mut in_video = false;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(media) = line.strip_prefix("m=") {
            if in_video {
                return None;
            }
            in_video = media.starts_with("video ");
            continue;
        }
        let Some(map) = line.strip_prefix("a=extmap:").filter(|_| in_video) else { continue };
        let mut fields = map.split_whitespace();
        let (Some(id), Some(line_uri)) = (fields.next(), fields.next()) else { continue };
        if line_uri != uri {
            continue;
        }
        let id = id.split('/').next().and_then(|id| id.parse::<u8>().ok());
        return id.filter(|id| (1..=14).contains(id));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playout_delay_round_trips_and_matches_the_drafts_layout() {
        for (min, max) in [(0, 10), (0, 4095), (4095, 0), (123, 2345)] {
            let delay = PlayoutDelay { min_10ms: min, max_10ms: max };
            assert_eq!(PlayoutDelay::parse(&delay.to_bytes()), Ok(delay));
        }
        // min 0, max 100 ms = 10 units: 0x000 | 0x00a.
        assert_eq!(PlayoutDelay::at_once_within(100).to_bytes(), [0x00, 0x00, 0x0a]);
        assert_eq!(PlayoutDelay::at_once_within(95).max_10ms, 10);
        assert_eq!(PlayoutDelay::at_once_within(u32::MAX).max_10ms, 4095);
        assert!(PlayoutDelay::parse(&[0, 0]).is_err());
    }

    #[test]
    fn abs_capture_time_is_ntp_uq32_32_and_round_trips_to_the_ms() {
        // 2026-12-04T00:00:00.250Z: NTP seconds = Unix + 2,208,988,800; 0.25 s = 2^30.
        let unix_ms = 1_796_342_400_250;
        let time = AbsCaptureTime::from_unix_ms(unix_ms);
        assert_eq!(time.ntp >> 32, 1_796_342_400 + NTP_UNIX_OFFSET_S);
        assert_eq!(time.ntp & 0xffff_ffff, 1 << 30);
        assert_eq!(time.to_bytes().len(), 8);
        assert_eq!(AbsCaptureTime::parse(&time.to_bytes()), Ok(time));
        for ms in [0, 1, 999, 1_000, 1_796_342_400_001, 1_796_342_400_999] {
            assert_eq!(AbsCaptureTime::from_unix_ms(ms).unix_ms(), ms, "{ms}");
        }
        let with_offset = AbsCaptureTime { clock_offset: Some(-(1 << 32)), ..time };
        assert_eq!(with_offset.to_bytes().len(), 16);
        assert_eq!(AbsCaptureTime::parse(&with_offset.to_bytes()), Ok(with_offset));
        assert!(AbsCaptureTime::parse(&[0; 12]).is_err());
        assert!(AbsCaptureTime::parse(&[0; 4]).is_err());
    }

    #[test]
    fn ids_come_from_the_video_sections_extmap_lines() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=extmap:5 http://www.webrtc.org/experiments/rtp-hdrext/playout-delay\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
                   a=extmap:12/sendonly http://www.webrtc.org/experiments/rtp-hdrext/playout-delay\r\n\
                   a=extmap:7 http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time\r\n\
                   m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=extmap:9 x\r\n";
        let negotiated = NegotiatedExtensions::from_sdp(sdp, 100);
        assert_eq!(negotiated.playout_delay, Some((12, PlayoutDelay { min_10ms: 0, max_10ms: 10 })));
        assert_eq!(negotiated.abs_capture_time, Some(7));
        assert_eq!(NegotiatedExtensions::from_sdp(sdp, 0).playout_delay, None);
        let frame = negotiated.for_frame(1_000);
        assert_eq!(frame[0], (12, vec![0, 0, 10]));
        assert_eq!(AbsCaptureTime::parse(&frame[1].1).map(AbsCaptureTime::unix_ms), Ok(1_000));
        // Not negotiated, or an id only the two-byte form can carry: not sent.
        assert_eq!(NegotiatedExtensions::from_sdp("m=video 9 x 102\r\n", 100), NegotiatedExtensions::default());
        assert_eq!(
            extmap_id(
                "m=video 9 x 1\r\na=extmap:15 http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time\r\n",
                ABS_CAPTURE_TIME_URI
            ),
            None
        );
    }
}
