//! OpenIGTLink, the protocol PLUS Server, 3D Slicer and surgical trackers
//! speak (TCP, port 18944 by default), as a sans-IO codec: the station's
//! tracker connections (engine) feed it bytes and get messages. Header
//! versions 1, 2 and 3 (the extended header and metadata, where PLUS puts
//! `TransformStatus`), CRC-64 checked, timestamps kept; TRANSFORM,
//! POSITION, TDATA and STATUS read, other types skipped by their size.
//!
//! Our own codec rather than the `openigtlink-rust` crate: see
//! ARCHITECTURE.md ("Tracker poses") for the comparison.

pub mod crc64;
pub mod decoder;
pub mod header;
pub mod message;

use thiserror::Error;

pub use decoder::Decoder;
pub use message::{Content, Message, TrackedTool, Transform};

/// OpenIGTLink's default TCP port.
pub const DEFAULT_PORT: u16 = 18944;

/// Why bytes from a peer did not become a message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IgtlError {
    /// A header version other than 1, 2 or 3 (the stream cannot be framed).
    #[error("header version {version} is not OpenIGTLink 1, 2 or 3")]
    Version {
        /// What was sent.
        version: u16,
    },
    /// A body larger than we accept.
    #[error("a {type_name} body of {body_size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The message type.
        type_name: String,
        /// Its declared size.
        body_size: u64,
        /// The limit.
        limit: u64,
    },
    /// The body's CRC-64 does not match the header's.
    #[error("{type_name} from {device_name:?}: CRC-64 mismatch")]
    Crc {
        /// The message type.
        type_name: String,
        /// Its device.
        device_name: String,
    },
    /// A body that does not have the shape its type needs.
    #[error("malformed {type_name}: {reason}")]
    Malformed {
        /// The message type.
        type_name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A pose with NaN or infinite numbers.
    #[error("{type_name} with a NaN or infinite number")]
    NotFinite {
        /// The message type.
        type_name: String,
    },
}

#[cfg(test)]
mod tests;
