//! The session's timeline: an append-only file of records, each a 4-byte
//! little-endian length, the CRC-32 (IEEE) of the payload, and the payload (one
//! JSON object), after an 8-byte magic. A record is synced when written, so a
//! cut file holds every record up to a torn tail; [`read`] stops at the first
//! record whose length or checksum does not hold and says where. What the
//! records say is [`super::format::TimelineRecord`].

use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::format::TimelineRecord;

/// The file's first bytes.
pub const MAGIC: &[u8; 8] = b"SCTL0001";
/// Largest record accepted, bytes.
pub const MAX_RECORD_BYTES: usize = 4 << 20;

/// Appends records.
pub struct TimelineWriter {
    file: File,
    /// Bytes that are whole records (a failed append is cut back to here).
    length: u64,
}

impl TimelineWriter {
    /// Creates `path` with the magic.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let mut file = File::options().create_new(true).append(true).open(path)?;
        file.write_all(MAGIC)?;
        file.sync_data()?;
        Ok(Self { file, length: MAGIC.len() as u64 })
    }

    /// Appends one record and syncs it.
    pub fn append(&mut self, record: &TimelineRecord) -> std::io::Result<()> {
        let payload = record.to_json().into_bytes();
        if payload.len() > MAX_RECORD_BYTES {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "timeline record over 4 MiB"));
        }
        let mut bytes = Vec::with_capacity(8 + payload.len());
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        if let Err(e) = self.file.write_all(&bytes).and_then(|()| self.file.sync_data()) {
            let _ = self.file.set_len(self.length);
            return Err(e);
        }
        self.length += bytes.len() as u64;
        Ok(())
    }
}

/// What [`read`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineContents {
    /// The whole records, in order (a kind this build does not know, or a
    /// record it cannot read, as [`TimelineRecord::Other`]).
    pub records: Vec<TimelineRecord>,
    /// Bytes up to the end of the last whole record.
    pub valid_length: usize,
    /// Bytes after it (a torn or damaged tail).
    pub torn_bytes: usize,
}

/// Reads a timeline file's bytes; `None` when it is not one (no magic).
pub fn read(bytes: &[u8]) -> Option<TimelineContents> {
    if bytes.get(..8) != Some(MAGIC.as_slice()) {
        return None;
    }
    let mut at = 8;
    let mut records = Vec::new();
    while let Some(header) = bytes.get(at..at + 8) {
        let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if length > MAX_RECORD_BYTES {
            break;
        }
        let Some(payload) = bytes.get(at + 8..at + 8 + length) else { break };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Ok(record) = serde_json::from_slice::<serde_json::Value>(payload) else { break };
        records.push(TimelineRecord::from_json(record));
        at += 8 + length;
    }
    Some(TimelineContents { records, valid_length: at, torn_bytes: bytes.len() - at })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_and_a_torn_or_flipped_tail_is_found() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("timeline.bin");
        let mut writer = TimelineWriter::create(&path).expect("create");
        for i in 0..3 {
            writer.append(&TimelineRecord::Gap { t_ns: i, reason: "queue full".into() }).expect("append");
        }
        let bytes = std::fs::read(&path).expect("read");
        let whole = read(&bytes).expect("a timeline");
        assert_eq!(whole.records.len(), 3);
        assert_eq!(whole.records[2], TimelineRecord::Gap { t_ns: 2, reason: "queue full".into() });
        assert_eq!((whole.valid_length, whole.torn_bytes), (bytes.len(), 0));
        let cut = read(&bytes[..bytes.len() - 3]).expect("a timeline");
        assert_eq!(cut.records.len(), 2);
        assert_eq!(cut.torn_bytes, bytes.len() - 3 - cut.valid_length);
        let mut flipped = bytes.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 0x40;
        assert_eq!(read(&flipped).expect("a timeline").records.len(), 2, "a checksum catches a flipped bit");
        assert_eq!(read(b"not a timeline"), None);
    }
}
