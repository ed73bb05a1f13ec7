//! Encoded media as the transport sees it: H.264 access units in Annex B
//! byte-stream form, with the capture times they carry to the viewers, and
//! the NAL-unit parsing the packetiser and the tests need.

use std::sync::Arc;

/// One encoded picture (an H.264 access unit, Annex B start codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// The bytes, shared between every viewer (one encode, N peers).
    pub data: Arc<[u8]>,
    /// An IDR picture (with its SPS and PPS in front).
    pub keyframe: bool,
    /// Sequence number of the source frame.
    pub sequence: u64,
    /// Capture time on the station's monotonic clock, ns.
    pub capture_time_ns: u64,
    /// Capture time, Unix ms (the timecode strip carries it too).
    pub capture_wall_ms: u64,
    /// Which encoded layer it belongs to.
    pub layer: crate::adapt::VideoLayer,
}

/// H.264 NAL unit types (ITU-T H.264 table 7-1) the station cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NalType {
    /// Coded slice of a non-IDR picture (1).
    Slice,
    /// Coded slice of an IDR picture (5).
    Idr,
    /// Supplemental enhancement information (6).
    Sei,
    /// Sequence parameter set (7).
    Sps,
    /// Picture parameter set (8).
    Pps,
    /// Access unit delimiter (9).
    Aud,
    /// Anything else, with its number.
    Other(u8),
}

impl NalType {
    /// From the low five bits of a NAL header byte.
    pub fn from_header(byte: u8) -> Self {
        match byte & 0x1f {
            1 => NalType::Slice,
            5 => NalType::Idr,
            6 => NalType::Sei,
            7 => NalType::Sps,
            8 => NalType::Pps,
            9 => NalType::Aud,
            other => NalType::Other(other),
        }
    }
}

/// The NAL units of an Annex B byte stream (start codes 00 00 01 or 00 00 00 01
/// removed); bytes before the first start code are ignored.
pub fn nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 2 < stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(k, &start)| {
            let mut end = starts.get(k + 1).map_or(stream.len(), |next| next - 3);
            // A four-byte start code leaves a zero at the end of the previous unit.
            while end > start && k + 1 < starts.len() && stream[end - 1] == 0 {
                end -= 1;
            }
            &stream[start..end]
        })
        .filter(|nal| !nal.is_empty())
        .collect()
}

/// The types of the NAL units in an access unit.
pub fn nal_types(stream: &[u8]) -> Vec<NalType> {
    nal_units(stream).iter().map(|nal| NalType::from_header(nal[0])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let stream = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5];
        let units = nal_units(&stream);
        assert_eq!(units, vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]);
        assert_eq!(nal_types(&stream), vec![NalType::Sps, NalType::Pps, NalType::Idr]);
        assert!(nal_units(&[1, 2, 3]).is_empty());
        assert!(nal_units(&[]).is_empty());
    }
}
