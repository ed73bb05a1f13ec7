//! The 58-byte OpenIGTLink header, big-endian (OpenIGTLink protocol
//! specification, "Header"): version (u16), type name (12 bytes, NUL
//! padded), device name (20 bytes), timestamp (u64: 32-bit seconds since
//! 1970 and a 32-bit binary fraction), body size (u64), CRC-64 of the body.
//! Versions 2 and 3 add a 12-byte extended header at the start of the body
//! (its size, the metadata header's size, the metadata's size, a message id)
//! and metadata after the content.

use super::IgtlError;

/// Bytes of the header.
pub const HEADER_BYTES: usize = 58;
/// Bytes of the version 2/3 extended header.
pub const EXTENDED_HEADER_BYTES: usize = 12;

/// A header as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// 1, 2 or 3.
    pub version: u16,
    /// `TRANSFORM`, `POSITION`, `TDATA`, `STATUS`, …
    pub type_name: String,
    /// The device (for poses: the transform's name, PLUS style `XToY`).
    pub device_name: String,
    /// The sender's timestamp (see [`timestamp_ns`]); 0 when it gave none.
    pub timestamp: u64,
    /// Bytes after the header.
    pub body_size: u64,
    /// CRC-64 (ECMA-182) of the body.
    pub crc: u64,
}

/// The text of a fixed-size, NUL-padded name field (bytes after the first
/// NUL ignored; anything not UTF-8 replaced).
fn name(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn put_name(out: &mut Vec<u8>, text: &str, width: usize) {
    let bytes = text.as_bytes();
    let n = bytes.len().min(width);
    out.extend_from_slice(&bytes[..n]);
    out.resize(out.len() + width - n, 0);
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(word)
}

impl Header {
    /// Reads a header from its 58 bytes.
    pub fn parse(bytes: &[u8; HEADER_BYTES]) -> Result<Self, IgtlError> {
        let version = u16::from_be_bytes([bytes[0], bytes[1]]);
        if !(1..=3).contains(&version) {
            return Err(IgtlError::Version { version });
        }
        Ok(Self {
            version,
            type_name: name(&bytes[2..14]),
            device_name: name(&bytes[14..34]),
            timestamp: be_u64(&bytes[34..42]),
            body_size: be_u64(&bytes[42..50]),
            crc: be_u64(&bytes[50..58]),
        })
    }

    /// Appends the header's 58 bytes to `out` (names longer than their
    /// field are cut).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_be_bytes());
        put_name(out, &self.type_name, 12);
        put_name(out, &self.device_name, 20);
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.body_size.to_be_bytes());
        out.extend_from_slice(&self.crc.to_be_bytes());
    }
}

/// An OpenIGTLink timestamp (upper 32 bits: seconds since 1970; lower 32
/// bits: fraction of a second in units of 2⁻³²) in ns since 1970.
pub fn timestamp_ns(timestamp: u64) -> u64 {
    let seconds = timestamp >> 32;
    let fraction = timestamp & 0xffff_ffff;
    seconds * 1_000_000_000 + ((fraction * 1_000_000_000) >> 32)
}

/// The OpenIGTLink timestamp of `ns` since 1970 (the fraction rounded down).
pub fn timestamp_from_ns(ns: u64) -> u64 {
    let seconds = ns / 1_000_000_000;
    let rest = ns % 1_000_000_000;
    (seconds << 32) | ((rest << 32) / 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_and_names_are_cut_and_padded() {
        let header = Header {
            version: 2,
            type_name: "TRANSFORM".into(),
            device_name: "StylusToTracker".into(),
            timestamp: timestamp_from_ns(1_700_000_000_123_456_789),
            body_size: 60,
            crc: 0x0123_4567_89ab_cdef,
        };
        let mut bytes = Vec::new();
        header.write(&mut bytes);
        assert_eq!(bytes.len(), HEADER_BYTES);
        assert_eq!(&bytes[2..11], b"TRANSFORM");
        assert_eq!(bytes[11], 0);
        let parsed = Header::parse(bytes.as_slice().try_into().expect("58 bytes")).expect("parses");
        assert_eq!(parsed, header);
        let ns = timestamp_ns(parsed.timestamp);
        assert!(ns.abs_diff(1_700_000_000_123_456_789) <= 1, "{ns}");
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let mut bytes = [0u8; HEADER_BYTES];
        bytes[1] = 9;
        assert_eq!(Header::parse(&bytes), Err(IgtlError::Version { version: 9 }));
    }
}
