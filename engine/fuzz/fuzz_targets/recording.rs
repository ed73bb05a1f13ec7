//! The recording readers on arbitrary files: the input is cut into a
//! manifest, a timeline and one segment (two little-endian u16 lengths
//! first), written to a session folder, then read by what `verify`, `info`,
//! repair and replay use: the one segment reader (`mp4::read_segment`), the timeline reader, the
//! repair of unfinished sessions and the replay's session reader. Never a
//! panic; whatever the readers accept is within the bytes they were given.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use scopecast_engine::recorder::{mp4, repair_unfinished, timeline};
use scopecast_engine::replay::session::RecordedSession;

fn folder() -> &'static PathBuf {
    static FOLDER: OnceLock<PathBuf> = OnceLock::new();
    FOLDER.get_or_init(|| std::env::temp_dir().join(format!("scopecast-fuzz-recording-{}", std::process::id())))
}

fuzz_target!(|data: &[u8]| {
    let Some((lengths, rest)) = data.split_at_checked(4) else { return };
    let manifest_len = usize::from(u16::from_le_bytes([lengths[0], lengths[1]])).min(rest.len());
    let (manifest, rest) = rest.split_at(manifest_len);
    let timeline_len = usize::from(u16::from_le_bytes([lengths[2], lengths[3]])).min(rest.len());
    let (timeline_bytes, segment) = rest.split_at(timeline_len);

    let valid = mp4::valid_length(segment);
    assert!(valid <= segment.len());
    if let mp4::SegmentContents::Whole { samples, torn_bytes, .. } = mp4::read_segment(segment) {
        assert!(!samples.is_empty());
        assert!(samples.iter().map(|(_, s)| s.data.len()).sum::<usize>() <= segment.len());
        assert_eq!(torn_bytes, segment.len() - valid);
    }
    if let Some(contents) = timeline::read(timeline_bytes) {
        assert_eq!(contents.valid_length + contents.torn_bytes, timeline_bytes.len());
    }

    let session = folder().join("session");
    let _ = std::fs::remove_dir_all(folder());
    for (name, bytes) in
        [("manifest.json", manifest), ("timeline.bin", timeline_bytes), ("segment-000001.mp4", segment)]
    {
        let path = session.join(name);
        if let Err(error) = std::fs::create_dir_all(&session).and_then(|()| std::fs::write(&path, bytes)) {
            // Not a finding in the readers: the machine's disk or temp folder failed the harness.
            panic!("the harness could not write {} ({} bytes): {error}", path.display(), bytes.len());
        }
    }
    if let Ok(read) = RecordedSession::open(&session) {
        assert!(!read.frames.is_empty());
    }
    let _ = repair_unfinished(folder());
    let _ = RecordedSession::open(&session);
});
