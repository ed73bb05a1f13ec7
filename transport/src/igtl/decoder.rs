//! The stream decoder, sans IO: bytes in (any chunking), messages out.
//! Memory is bounded whatever the peer sends: a header is buffered (58
//! bytes), a body of a type we read is buffered only up to
//! [`MAX_READ_BODY_BYTES`], and a body of any other type is skipped as it
//! streams past without being kept. A body larger than
//! [`MAX_BODY_BYTES`] cannot be a tracker's and leaves the stream
//! unframeable: the decoder stops ([`Decoder::is_broken`]) and the
//! connection is to be dropped. A wrong CRC or a malformed body costs that
//! message only.

use super::IgtlError;
use super::crc64::crc64_update;
use super::header::{HEADER_BYTES, Header};
use super::message::{Message, decode};

/// Largest body of a type we read (TRANSFORM, POSITION, TDATA, STATUS): 64
/// KiB holds a TDATA of 900 tools.
pub const MAX_READ_BODY_BYTES: u64 = 64 * 1024;
/// Largest body of any type we accept to skip (an IMAGE of a 4K
/// ultrasound volume slice is far below it); beyond, the stream is broken.
pub const MAX_BODY_BYTES: u64 = 256 * 1024 * 1024;
/// Types whose bodies are read.
const READ_TYPES: [&str; 4] = ["TRANSFORM", "POSITION", "TDATA", "STATUS"];

enum State {
    /// Collecting a header.
    Header,
    /// Collecting a body to read.
    Body(Header),
    /// Skipping the body of another type: bytes left, the CRC so far.
    Skip { header: Header, left: u64, crc: u64 },
    /// Unframeable: nothing more is read.
    Broken,
}

/// What one push produced, in stream order.
pub type Decoded = Vec<Result<Message, IgtlError>>;

/// One connection's decoder.
pub struct Decoder {
    state: State,
    buffer: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self { state: State::Header, buffer: Vec::with_capacity(HEADER_BYTES) }
    }

    /// Bytes held for a header or body not yet complete (at most
    /// [`MAX_READ_BODY_BYTES`]).
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.len()
    }

    /// Whether the stream can no longer be framed (drop the connection).
    pub fn is_broken(&self) -> bool {
        matches!(self.state, State::Broken)
    }

    /// Feeds `bytes`; returns every message (or per-message error) they complete.
    pub fn push(&mut self, mut bytes: &[u8]) -> Decoded {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            self.state = match std::mem::replace(&mut self.state, State::Broken) {
                State::Broken => break,
                State::Header => {
                    let take = (HEADER_BYTES - self.buffer.len()).min(bytes.len());
                    self.buffer.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if self.buffer.len() < HEADER_BYTES {
                        State::Header
                    } else {
                        let mut raw = [0u8; HEADER_BYTES];
                        raw.copy_from_slice(&self.buffer);
                        self.buffer.clear();
                        self.after_header(Header::parse(&raw), &mut out)
                    }
                }
                State::Body(header) => {
                    let wanted = header.body_size as usize;
                    let take = (wanted - self.buffer.len()).min(bytes.len());
                    self.buffer.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if self.buffer.len() == wanted {
                        out.push(self.finish_body(header));
                        State::Header
                    } else {
                        State::Body(header)
                    }
                }
                State::Skip { header, left, crc } => {
                    let take = left.min(bytes.len() as u64) as usize;
                    let crc = crc64_update(crc, &bytes[..take]);
                    let left = left - take as u64;
                    bytes = &bytes[take..];
                    if left == 0 {
                        out.push(finish_skip(header, crc));
                        State::Header
                    } else {
                        State::Skip { header, left, crc }
                    }
                }
            };
        }
        out
    }

    /// The state after a header (a body of 0 bytes is finished at once).
    fn after_header(&mut self, parsed: Result<Header, IgtlError>, out: &mut Decoded) -> State {
        let header = match parsed {
            Ok(header) => header,
            Err(e) => {
                out.push(Err(e));
                return State::Broken;
            }
        };
        if header.body_size > MAX_BODY_BYTES {
            out.push(Err(IgtlError::TooLarge {
                type_name: header.type_name,
                body_size: header.body_size,
                limit: MAX_BODY_BYTES,
            }));
            return State::Broken;
        }
        let read = READ_TYPES.contains(&header.type_name.as_str()) && header.body_size <= MAX_READ_BODY_BYTES;
        match (read, header.body_size) {
            (true, 0) => {
                out.push(self.finish_body(header));
                State::Header
            }
            (true, _) => State::Body(header),
            (false, 0) => {
                out.push(finish_skip(header, 0));
                State::Header
            }
            (false, left) => State::Skip { header, left, crc: 0 },
        }
    }

    fn finish_body(&mut self, header: Header) -> Result<Message, IgtlError> {
        let body = std::mem::take(&mut self.buffer);
        let crc = crc64_update(0, &body);
        if crc != header.crc {
            return Err(IgtlError::Crc { type_name: header.type_name, device_name: header.device_name });
        }
        decode(&header, &body)
    }
}

/// The end of a skipped body: its CRC checked, a read type too large to read reported.
fn finish_skip(header: Header, crc: u64) -> Result<Message, IgtlError> {
    if crc != header.crc {
        return Err(IgtlError::Crc { type_name: header.type_name, device_name: header.device_name });
    }
    if READ_TYPES.contains(&header.type_name.as_str()) {
        return Err(IgtlError::TooLarge {
            type_name: header.type_name,
            body_size: header.body_size,
            limit: MAX_READ_BODY_BYTES,
        });
    }
    decode(&header, &[])
}
