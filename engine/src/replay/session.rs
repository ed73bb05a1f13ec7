//! A recorded session opened for replay: every frame's place on the replay
//! timeline and its recorded capture time, and the frames' bytes read a
//! segment at a time.
//!
//! Opening reads every segment once to index its frames (a one-hour session
//! at 4 Mbit/s is about 1.8 GB read); while playing, the frames' bytes are
//! read again a segment at a time ([`SegmentCache`]), so memory stays at one
//! segment.
//!
//! Read only: an unfinished session (a station that is still recording, or
//! crashed and has not restarted) is read up to its last whole fragment and
//! record, never cut, so replay can never damage a recording.
//!
//! Times: a segment's first frame has the capture time of its `segment`
//! timeline record (`t_ns`, monotonic; `wall_ms`, Unix ms); a sample's MP4
//! decode time is its capture time after that, in 90 kHz ticks. So a
//! frame's recorded capture time is `wall_ms + ticks / 90` ms, the value its
//! timecode strip shows (±1 ms of rounding). The replay timeline follows the
//! capture times, except that a gap longer than [`MAX_GAP_NS`] (the disk was
//! full, the recording was interrupted) is played as one frame interval.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::schedule::FrameTime;
use crate::recorder::format::{FORMAT, Manifest, ManifestError, SessionState, TimelineRecord};
use crate::recorder::{Track, mp4, timeline, track_files};

/// Longest pause between two frames kept on the replay timeline, ns.
pub const MAX_GAP_NS: u64 = 1_000_000_000;
/// The frame interval assumed where the recording does not say, ns (30 fps).
const DEFAULT_INTERVAL_NS: u64 = 33_333_333;

/// Why a session cannot be replayed.
#[derive(Debug, Error)]
pub enum ReplayError {
    /// No manifest: not a session folder.
    #[error("{path} is not a scopecast recording (no readable manifest.json): {reason}")]
    NotASession {
        /// The folder.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A manifest of another format.
    #[error("{path}: a foreign manifest (format {found}, expected {FORMAT})")]
    Foreign {
        /// The manifest.
        path: PathBuf,
        /// Its format field.
        found: String,
    },
    /// Not one whole frame.
    #[error("{path}: no playable frames (no segment starts with a keyframe and its SPS/PPS)")]
    Empty {
        /// The session folder.
        path: PathBuf,
    },
    /// A segment could not be read while playing.
    #[error("cannot read {path}: {reason}")]
    Segment {
        /// The segment file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// One recorded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedFrame {
    /// Where it plays, ns from the first frame.
    pub play_ns: u64,
    /// Its capture time, Unix ms (what its timecode strip shows).
    pub wall_ms: u64,
    /// Its capture time on the recording station's monotonic clock, ns
    /// (what the timeline's scene records are stamped with).
    pub capture_ns: u64,
    /// An IDR picture.
    pub keyframe: bool,
    /// Which segment (index into [`RecordedSession::segments`]).
    pub segment: usize,
    /// Which sample of that segment.
    pub sample: usize,
}

/// One segment file and its parameter sets.
#[derive(Debug, Clone)]
pub struct SegmentFile {
    /// The file.
    pub path: PathBuf,
    /// Its SPS and PPS (from `avcC`), put in front of each of its keyframes.
    pub sps: Vec<u8>,
    /// See `sps`.
    pub pps: Vec<u8>,
}

/// A session ready to replay.
#[derive(Debug, Clone)]
pub struct RecordedSession {
    /// The folder's name (a UTC stamp and a random suffix: no patient data).
    pub name: String,
    /// Finished, repaired or still `recording` (unfinished).
    pub state: SessionState,
    /// Every frame, in order.
    pub frames: Vec<RecordedFrame>,
    /// The segment files the frames are in.
    pub segments: Vec<SegmentFile>,
    /// Segments left out because they were unreadable, with the reason.
    pub skipped: Vec<String>,
}

/// The timeline's whole records (none when it is missing or foreign).
pub fn timeline_records(dir: &Path) -> Vec<TimelineRecord> {
    let bytes = std::fs::read(dir.join("timeline.bin")).unwrap_or_default();
    timeline::read(&bytes).map(|c| c.records).unwrap_or_default()
}

/// The timeline's segment records of `track` by segment number: (t_ns, wall_ms).
fn segment_starts(dir: &Path, track: Track) -> HashMap<u64, (u64, u64)> {
    timeline_records(dir)
        .iter()
        .filter_map(|r| track.segment_of(r))
        .map(|segment| (segment.index, (segment.t_ns, segment.wall_ms)))
        .collect()
}

/// The number in `segment-000042.mp4` (`clean-000042.mp4` for the clean track).
fn segment_number(path: &Path, track: Track) -> Option<u64> {
    path.file_name()?.to_str()?.strip_prefix(track.file_prefix())?.strip_suffix(".mp4")?.parse().ok()
}

/// The manifest of session folder `dir`, checked to be ours: what every
/// reader of recordings (replay, `recordings list|info|verify|export`) opens first.
pub fn read_manifest(dir: &Path) -> Result<Manifest, ReplayError> {
    let manifest_path = dir.join("manifest.json");
    let not_a_session = |reason: String| ReplayError::NotASession { path: dir.to_path_buf(), reason };
    let bytes = std::fs::read(&manifest_path).map_err(|e| not_a_session(e.to_string()))?;
    Manifest::parse(&bytes).map_err(|e| match e {
        ManifestError::Foreign { found } => ReplayError::Foreign { path: manifest_path, found },
        unreadable @ ManifestError::Unreadable(_) => not_a_session(unreadable.to_string()),
    })
}

impl RecordedSession {
    /// Reads the session folder `dir`: what the viewers saw.
    pub fn open(dir: &Path) -> Result<Self, ReplayError> {
        Self::open_track(dir, Track::Composited)
    }

    /// Whether `dir` holds clean video (`record_clean`).
    pub fn has_clean_video(dir: &Path) -> bool {
        !track_files(dir, Track::Clean).is_empty()
    }

    /// Reads one track of the session folder `dir`.
    pub fn open_track(dir: &Path, track: Track) -> Result<Self, ReplayError> {
        let manifest = read_manifest(dir)?;
        let starts = segment_starts(dir, track);
        let mut session = Self {
            name: dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
            state: manifest.state,
            frames: Vec::new(),
            segments: Vec::new(),
            skipped: Vec::new(),
        };
        // (capture t_ns, wall_ms) of the previous frame, and the interval before it.
        let mut previous: Option<(u64, u64)> = None;
        let mut interval_ns = DEFAULT_INTERVAL_NS;
        let mut play_ns = 0u64;
        for path in track_files(dir, track) {
            let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let contents = std::fs::read(&path)
                .map_or_else(|e| mp4::SegmentContents::Broken(e.to_string()), |bytes| mp4::read_segment(&bytes));
            let (sps, pps, samples) = match contents {
                mp4::SegmentContents::Whole { sps, pps, samples, .. } => (sps, pps, samples),
                mp4::SegmentContents::NoWholeFragment => {
                    session.skipped.push(format!("{name}: no whole fragment"));
                    continue;
                }
                mp4::SegmentContents::Broken(reason) => {
                    session.skipped.push(format!("{name}: {reason}"));
                    continue;
                }
            };
            // Without its timeline record (a torn timeline), the segment follows the previous one.
            let start = segment_number(&path, track).and_then(|n| starts.get(&n).copied()).unwrap_or_else(|| {
                previous.map_or((0, 0), |(t, wall)| {
                    (t.saturating_add(interval_ns), wall.saturating_add(interval_ns / 1_000_000))
                })
            });
            let segment = session.segments.len();
            for (sample_index, (ticks, sample)) in samples.iter().enumerate() {
                // Saturating: a crafted file's absurd decode times must not overflow.
                let offset_ns = ticks.saturating_mul(1_000_000_000) / mp4::TIMESCALE;
                let t_ns = start.0.saturating_add(offset_ns);
                let wall_ms = start
                    .1
                    .saturating_add(ticks.saturating_mul(1000).saturating_add(mp4::TIMESCALE / 2) / mp4::TIMESCALE);
                if let Some((before, _)) = previous {
                    let step = t_ns.saturating_sub(before);
                    if step > 0 && step <= MAX_GAP_NS {
                        interval_ns = step;
                    }
                    play_ns = play_ns.saturating_add(if step > 0 && step <= MAX_GAP_NS { step } else { interval_ns });
                }
                previous = Some((t_ns, wall_ms));
                session.frames.push(RecordedFrame {
                    play_ns,
                    wall_ms,
                    capture_ns: t_ns,
                    keyframe: sample.keyframe,
                    segment,
                    sample: sample_index,
                });
            }
            session.segments.push(SegmentFile { path, sps, pps });
        }
        if !session.frames.iter().any(|f| f.keyframe) {
            return Err(ReplayError::Empty { path: dir.to_path_buf() });
        }
        Ok(session)
    }

    /// The frames' places for the schedule.
    pub fn frame_times(&self) -> Vec<FrameTime> {
        self.frames.iter().map(|f| FrameTime { play_ns: f.play_ns, keyframe: f.keyframe }).collect()
    }
}

/// The samples of the segment last read, so a frame costs a file read only
/// at each segment's start (or a seek into another one).
#[derive(Debug, Default)]
pub struct SegmentCache {
    loaded: Option<(usize, Vec<mp4::Sample>)>,
}

impl SegmentCache {
    /// Frame `frame` of `session` as Annex B (SPS/PPS in front of a keyframe).
    pub fn annex_b(&mut self, session: &RecordedSession, frame: &RecordedFrame) -> Result<Vec<u8>, ReplayError> {
        let file = session.segments.get(frame.segment).ok_or_else(|| ReplayError::Segment {
            path: PathBuf::from(format!("segment {}", frame.segment)),
            reason: "no such segment".into(),
        })?;
        if self.loaded.as_ref().is_none_or(|(index, _)| *index != frame.segment) {
            let fail = |reason: String| ReplayError::Segment { path: file.path.clone(), reason };
            let bytes = std::fs::read(&file.path).map_err(|e| fail(e.to_string()))?;
            let samples = mp4::read_samples(&bytes).map_err(|e| fail(e.to_string()))?;
            self.loaded = Some((frame.segment, samples.into_iter().map(|(_, s)| s).collect()));
        }
        let samples = self.loaded.as_ref().map(|(_, s)| s.as_slice()).unwrap_or_default();
        let sample = samples.get(frame.sample).ok_or_else(|| ReplayError::Segment {
            path: file.path.clone(),
            reason: format!("sample {} is gone (the file shrank)", frame.sample),
        })?;
        Ok(mp4::annex_b(sample, &file.sps, &file.pps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::timeline::TimelineWriter;

    /// A segment of `count` samples 3000 ticks (33.3 ms) apart, the first a keyframe.
    fn write_segment(dir: &Path, name: &str, count: usize) {
        let samples: Vec<mp4::Sample> = (0..count)
            .map(|i| mp4::Sample {
                data: vec![0, 0, 0, 1, if i == 0 { 0x65 } else { 0x41 }],
                duration: 3000,
                keyframe: i == 0,
            })
            .collect();
        let mut bytes = mp4::init_segment(64, 48, &[0x67, 0x42, 0xc0, 0x1f], &[0x68, 0xce, 0x3c, 0x80]);
        bytes.extend(mp4::fragment(1, 0, &samples));
        std::fs::write(dir.join(name), bytes).expect("segment");
    }

    #[test]
    fn frames_get_their_recorded_times_long_gaps_shrink_and_a_lost_segment_record_is_bridged() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path();
        std::fs::write(path.join("manifest.json"), format!(r#"{{"format":"{FORMAT}","state":"repaired"}}"#))
            .expect("manifest");
        let mut timeline = TimelineWriter::create(&path.join("timeline.bin")).expect("timeline");
        let segment = |index: u64, t_ns: u64, wall_ms: u64| {
            TimelineRecord::from_json(
                serde_json::json!({ "kind": "segment", "index": index, "t_ns": t_ns, "wall_ms": wall_ms }),
            )
        };
        timeline.append(&segment(1, 1_000_000_000, 5_000)).expect("record");
        // Segment 2 starts 5 s after segment 1 ended (a full disk); segment 3's record was lost.
        timeline.append(&segment(2, 6_100_000_000, 10_100)).expect("record");
        write_segment(path, "segment-000001.mp4", 3);
        write_segment(path, "segment-000002.mp4", 2);
        write_segment(path, "segment-000003.mp4", 2);
        std::fs::write(path.join("segment-000004.mp4"), b"torn beyond repair").expect("broken");

        let session = RecordedSession::open(path).expect("opens");
        assert_eq!(session.state, SessionState::Repaired);
        let walls: Vec<u64> = session.frames.iter().map(|f| f.wall_ms).collect();
        assert_eq!(walls, [5_000, 5_033, 5_067, 10_100, 10_133, 10_166, 10_199], "recorded capture times, ms");
        let plays: Vec<u64> = session.frames.iter().map(|f| f.play_ns / 1_000_000).collect();
        assert_eq!(plays, [0, 33, 66, 99, 133, 166, 199], "the 5 s gap plays as one frame interval");
        let keys: Vec<usize> = (0..7).filter(|&i| session.frames[i].keyframe).collect();
        assert_eq!(keys, [0, 3, 5]);
        assert_eq!(session.skipped.len(), 1, "the broken segment is left out: {:?}", session.skipped);
        let mut cache = SegmentCache::default();
        let annex_b = cache.annex_b(&session, &session.frames[3]).expect("frame bytes");
        assert_eq!(&annex_b[..8], &[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f], "SPS/PPS in front of a keyframe");

        // A crafted segment whose decode times are absurd is read without overflowing.
        let mut crafted = mp4::init_segment(64, 48, &[0x67], &[0x68]);
        let key = mp4::Sample { data: vec![0, 0, 0, 1, 0x65], duration: u32::MAX, keyframe: true };
        crafted.extend(mp4::fragment(1, u64::MAX - 5, &[key.clone(), key]));
        std::fs::write(path.join("segment-000005.mp4"), crafted).expect("crafted");
        let with_crafted = RecordedSession::open(path).expect("still opens");
        assert_eq!(with_crafted.frames.len(), 9);
        assert!(with_crafted.frames.windows(2).all(|w| w[0].play_ns <= w[1].play_ns), "the timeline never runs back");

        std::fs::write(path.join("manifest.json"), r#"{"format":"other/1"}"#).expect("manifest");
        assert!(matches!(RecordedSession::open(path), Err(ReplayError::Foreign { .. })));
    }
}
