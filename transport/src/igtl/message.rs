//! The message types a tracker sends, decoded from a whole body: TRANSFORM
//! (12 f32: the rotation's columns, then the translation in mm), POSITION
//! (position in mm, then a quaternion x, y, z, w; the 12-, 24- and 28-byte
//! forms), TDATA (tracking data: several tools per message, 70 bytes each)
//! and STATUS; any other type is kept as its name and size only. Numbers are
//! big-endian (OpenIGTLink protocol specification, "Message types").

use super::IgtlError;
use super::header::{EXTENDED_HEADER_BYTES, Header, timestamp_ns};

/// Bytes of a TRANSFORM's content.
pub const TRANSFORM_BYTES: usize = 48;
/// Bytes of one TDATA element: name (20), type (1), reserved (1), matrix (48).
pub const TDATA_ELEMENT_BYTES: usize = 70;
/// Bytes of a STATUS's fixed part: code (2), subcode (8), error name (20).
pub const STATUS_FIXED_BYTES: usize = 30;

/// A rigid transform as OpenIGTLink sends it: `matrix[c]` is column `c` of
/// the 3×4 matrix `[R | t]` (columns 0..3 the rotation, column 3 the
/// translation in mm), mapping the frame `X` of a transform named `XToY` into
/// `Y`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    /// Columns of `[R | t]`.
    pub columns: [[f32; 3]; 4],
}

impl Transform {
    /// The identity.
    pub const IDENTITY: Self = Self { columns: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]] };

    fn from_floats(f: &[f32; 12]) -> Self {
        Self { columns: [[f[0], f[1], f[2]], [f[3], f[4], f[5]], [f[6], f[7], f[8]], [f[9], f[10], f[11]]] }
    }

    /// The rotation of unit quaternion `(x, y, z, w)` (normalised here) and
    /// translation `t` (mm).
    pub fn from_quaternion(t: [f32; 3], q: [f32; 4]) -> Self {
        let n = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]).sqrt();
        let [x, y, z, w] = if n > 0.0 { q.map(|v| v / n) } else { [0.0, 0.0, 0.0, 1.0] };
        Self {
            columns: [
                [1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y + z * w), 2.0 * (x * z - y * w)],
                [2.0 * (x * y - z * w), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z + x * w)],
                [2.0 * (x * z + y * w), 2.0 * (y * z - x * w), 1.0 - 2.0 * (x * x + y * y)],
                t,
            ],
        }
    }

    fn is_finite(&self) -> bool {
        self.columns.iter().flatten().all(|v| v.is_finite())
    }

    fn write(&self, out: &mut Vec<u8>) {
        for v in self.columns.iter().flatten() {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// One tool of a TDATA message.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedTool {
    /// The tool's name (PLUS: a transform name).
    pub name: String,
    /// 1 tracker, 2 6-DoF, 3 3-DoF (tip only), 4 5-DoF.
    pub kind: u8,
    /// Its pose.
    pub transform: Transform,
}

/// What a message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// TRANSFORM.
    Transform(Transform),
    /// POSITION (as a transform).
    Position(Transform),
    /// TDATA.
    TrackingData(Vec<TrackedTool>),
    /// STATUS.
    Status {
        /// 1 OK; others are errors (spec: 0 invalid, 2 unknown error, …, 13 not ready).
        code: u16,
        /// Device-specific.
        subcode: i64,
        /// Short error name.
        error_name: String,
        /// The message in words.
        message: String,
    },
    /// A type we do not read (its body was skipped).
    Other {
        /// Its type name.
        type_name: String,
        /// Bytes skipped.
        body_size: u64,
    },
}

/// One message, as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// 1, 2 or 3.
    pub version: u16,
    /// The device (transform) name.
    pub device_name: String,
    /// The sender's time, ns since 1970; `None` when it sent 0.
    pub timestamp_ns: Option<u64>,
    /// The content.
    pub content: Content,
    /// Version 2/3 metadata, in order (PLUS: `TransformStatus` = `OK` or `INVALID`).
    pub metadata: Metadata,
}

impl Message {
    /// Whether the sender marked the pose valid: not when its metadata says
    /// `TransformStatus` is anything but `OK` or `TransformValid` is false.
    pub fn marked_valid(&self) -> bool {
        self.metadata.iter().all(|(key, value)| match key.as_str() {
            "TransformStatus" => value.eq_ignore_ascii_case("OK"),
            "TransformValid" => !(value.eq_ignore_ascii_case("false") || value == "0"),
            _ => true,
        })
    }
}

fn floats<const N: usize>(bytes: &[u8]) -> [f32; N] {
    let mut out = [0.0f32; N];
    for (i, chunk) in bytes.chunks_exact(4).take(N).enumerate() {
        out[i] = f32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    out
}

fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn finite(transform: Transform, type_name: &str) -> Result<Transform, IgtlError> {
    if transform.is_finite() { Ok(transform) } else { Err(IgtlError::NotFinite { type_name: type_name.to_string() }) }
}

/// Metadata entries, key and value, in order.
pub type Metadata = Vec<(String, String)>;

/// Splits a version 2/3 body into its content and metadata.
fn split_body<'b>(header: &Header, body: &'b [u8]) -> Result<(&'b [u8], Metadata), IgtlError> {
    if header.version < 2 {
        return Ok((body, Vec::new()));
    }
    let malformed = |reason: &'static str| IgtlError::Malformed { type_name: header.type_name.clone(), reason };
    if body.len() < EXTENDED_HEADER_BYTES {
        return Err(malformed("shorter than its extended header"));
    }
    let ext_size = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let meta_header_size = usize::from(u16::from_be_bytes([body[2], body[3]]));
    let meta_size = u32::from_be_bytes([body[4], body[5], body[6], body[7]]) as usize;
    if ext_size < EXTENDED_HEADER_BYTES || ext_size > body.len() {
        return Err(malformed("extended header size out of range"));
    }
    let content_end = body
        .len()
        .checked_sub(meta_header_size)
        .and_then(|n| n.checked_sub(meta_size))
        .filter(|&end| end >= ext_size)
        .ok_or_else(|| malformed("metadata larger than the body"))?;
    let content = &body[ext_size..content_end];
    let meta_header = &body[content_end..content_end + meta_header_size];
    let mut meta_body = &body[content_end + meta_header_size..];
    let mut metadata = Vec::new();
    if meta_header_size >= 2 {
        let count = usize::from(u16::from_be_bytes([meta_header[0], meta_header[1]]));
        if 2 + count * 8 > meta_header_size {
            return Err(malformed("metadata index larger than its header"));
        }
        for entry in meta_header[2..2 + count * 8].chunks_exact(8) {
            let key_size = usize::from(u16::from_be_bytes([entry[0], entry[1]]));
            let value_size = u32::from_be_bytes([entry[4], entry[5], entry[6], entry[7]]) as usize;
            if key_size + value_size > meta_body.len() {
                return Err(malformed("metadata entry past the body"));
            }
            let (key, rest) = meta_body.split_at(key_size);
            let (value, rest) = rest.split_at(value_size);
            metadata.push((String::from_utf8_lossy(key).into_owned(), String::from_utf8_lossy(value).into_owned()));
            meta_body = rest;
        }
    }
    Ok((content, metadata))
}

/// Decodes a message whose whole body (CRC already checked) is `body`.
pub fn decode(header: &Header, body: &[u8]) -> Result<Message, IgtlError> {
    let (content_bytes, metadata) = split_body(header, body)?;
    let type_name = header.type_name.as_str();
    let malformed = |reason: &'static str| IgtlError::Malformed { type_name: type_name.to_string(), reason };
    let content = match type_name {
        "TRANSFORM" => {
            if content_bytes.len() < TRANSFORM_BYTES {
                return Err(malformed("a TRANSFORM has 48 bytes of content"));
            }
            Content::Transform(finite(Transform::from_floats(&floats::<12>(content_bytes)), type_name)?)
        }
        "POSITION" => {
            let transform = match content_bytes.len() {
                12 => Transform::from_quaternion(floats::<3>(content_bytes), [0.0, 0.0, 0.0, 1.0]),
                24 => {
                    let f = floats::<6>(content_bytes);
                    let w = (1.0 - f[3] * f[3] - f[4] * f[4] - f[5] * f[5]).max(0.0).sqrt();
                    Transform::from_quaternion([f[0], f[1], f[2]], [f[3], f[4], f[5], w])
                }
                28 => {
                    let f = floats::<7>(content_bytes);
                    Transform::from_quaternion([f[0], f[1], f[2]], [f[3], f[4], f[5], f[6]])
                }
                _ => return Err(malformed("a POSITION has 12, 24 or 28 bytes of content")),
            };
            Content::Position(finite(transform, type_name)?)
        }
        "TDATA" => {
            if content_bytes.len() % TDATA_ELEMENT_BYTES != 0 {
                return Err(malformed("TDATA content is not a whole number of 70-byte elements"));
            }
            let tools = content_bytes
                .chunks_exact(TDATA_ELEMENT_BYTES)
                .map(|element| {
                    let transform = Transform::from_floats(&floats::<12>(&element[22..70]));
                    Ok(TrackedTool {
                        name: text(&element[..20]),
                        kind: element[20],
                        transform: finite(transform, type_name)?,
                    })
                })
                .collect::<Result<Vec<_>, IgtlError>>()?;
            Content::TrackingData(tools)
        }
        "STATUS" => {
            if content_bytes.len() < STATUS_FIXED_BYTES {
                return Err(malformed("a STATUS has at least 30 bytes of content"));
            }
            let c = content_bytes;
            Content::Status {
                code: u16::from_be_bytes([c[0], c[1]]),
                subcode: i64::from_be_bytes([c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9]]),
                error_name: text(&c[10..30]),
                message: text(&c[30..]),
            }
        }
        _ => Content::Other { type_name: type_name.to_string(), body_size: header.body_size },
    };
    Ok(Message {
        version: header.version,
        device_name: header.device_name.clone(),
        timestamp_ns: (header.timestamp != 0).then(|| timestamp_ns(header.timestamp)),
        content,
        metadata,
    })
}

/// The type name and content bytes of `content` (`Other` has none).
fn content_bytes(content: &Content) -> (&str, Vec<u8>) {
    let mut out = Vec::new();
    let name = match content {
        Content::Transform(t) => {
            t.write(&mut out);
            "TRANSFORM"
        }
        Content::Position(t) => {
            // The 28-byte form: position, then the quaternion (x, y, z, w) of the rotation.
            let [c0, c1, c2, p] = t.columns;
            let m = |r: usize, c: usize| [c0, c1, c2][c][r];
            let w = (1.0 + m(0, 0) + m(1, 1) + m(2, 2)).max(0.0).sqrt() / 2.0;
            let (x, y, z) = if w > 1e-4 {
                ((m(2, 1) - m(1, 2)) / (4.0 * w), (m(0, 2) - m(2, 0)) / (4.0 * w), (m(1, 0) - m(0, 1)) / (4.0 * w))
            } else {
                // A half turn: the axis from the diagonal (signs from the off-diagonal terms).
                let x = ((1.0 + m(0, 0) - m(1, 1) - m(2, 2)).max(0.0)).sqrt() / 2.0;
                let y = ((1.0 - m(0, 0) + m(1, 1) - m(2, 2)).max(0.0)).sqrt() / 2.0;
                let z = ((1.0 - m(0, 0) - m(1, 1) + m(2, 2)).max(0.0)).sqrt() / 2.0;
                (x, y.copysign(m(0, 1) + m(1, 0)), z.copysign(m(0, 2) + m(2, 0)))
            };
            for v in [p[0], p[1], p[2], x, y, z, w] {
                out.extend_from_slice(&v.to_be_bytes());
            }
            "POSITION"
        }
        Content::TrackingData(tools) => {
            for tool in tools {
                let bytes = tool.name.as_bytes();
                let n = bytes.len().min(20);
                out.extend_from_slice(&bytes[..n]);
                out.resize(out.len() + 20 - n, 0);
                out.extend_from_slice(&[tool.kind, 0]);
                tool.transform.write(&mut out);
            }
            "TDATA"
        }
        Content::Status { code, subcode, error_name, message } => {
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(&subcode.to_be_bytes());
            let bytes = error_name.as_bytes();
            let n = bytes.len().min(20);
            out.extend_from_slice(&bytes[..n]);
            out.resize(out.len() + 20 - n, 0);
            out.extend_from_slice(message.as_bytes());
            out.push(0);
            "STATUS"
        }
        Content::Other { type_name, .. } => type_name.as_str(),
    };
    (name, out)
}

/// Encodes `message` as header version `message.version` (metadata only in
/// versions 2 and 3), with the CRC.
pub fn encode(message: &Message) -> Vec<u8> {
    let (type_name, content) = content_bytes(&message.content);
    let mut body = Vec::new();
    if message.version >= 2 {
        let index_bytes = 2 + 8 * message.metadata.len();
        let values: usize = message.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        body.extend_from_slice(&(EXTENDED_HEADER_BYTES as u16).to_be_bytes());
        body.extend_from_slice(&(index_bytes as u16).to_be_bytes());
        body.extend_from_slice(&(values as u32).to_be_bytes());
        body.extend_from_slice(&0u32.to_be_bytes());
        body.extend_from_slice(&content);
        body.extend_from_slice(&(message.metadata.len() as u16).to_be_bytes());
        for (key, value) in &message.metadata {
            body.extend_from_slice(&(key.len() as u16).to_be_bytes());
            body.extend_from_slice(&3u16.to_be_bytes()); // value encoding: US-ASCII (IANA MIBenum 3)
            body.extend_from_slice(&(value.len() as u32).to_be_bytes());
        }
        for (key, value) in &message.metadata {
            body.extend_from_slice(key.as_bytes());
            body.extend_from_slice(value.as_bytes());
        }
    } else {
        body = content;
    }
    let header = Header {
        version: message.version,
        type_name: type_name.to_string(),
        device_name: message.device_name.clone(),
        timestamp: message.timestamp_ns.map_or(0, super::header::timestamp_from_ns),
        body_size: body.len() as u64,
        crc: super::crc64::crc64(&body),
    };
    let mut out = Vec::with_capacity(super::header::HEADER_BYTES + body.len());
    header.write(&mut out);
    out.extend_from_slice(&body);
    out
}
