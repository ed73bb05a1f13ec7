//! Session recording: the live encoded stream (what everyone saw, the full
//! layer; no second encode) and the scene timeline, written by their own
//! thread into a session folder:
//!
//! - `segment-NNNNNN.mp4`: fragmented MP4 segments of about `segment_s`, each
//!   starting at a keyframe, fragments of at most [`FRAGMENT_NS`] written
//!   and synced whole ([`mp4`]);
//! - `clean-NNNNNN.mp4` (with `record_clean`): the same for the endoscope's
//!   frames before the overlay (one extra encode), so a replay can draw the
//!   overlays afresh ([`Track::Clean`]);
//! - `timeline.bin`: length-prefixed, checksummed records ([`timeline`]):
//!   start, each segment's first capture time, every scene change (layers,
//!   model poses, annotations) with the capture time of the first frame that
//!   showed it, gaps, stop;
//! - `manifest.json`: format, session id, start time, the calibration and
//!   models used, encoder settings, state (`recording`, `finished`,
//!   `repaired`), written atomically (temporary file + rename).
//!
//! Folder names are the UTC start time and a random suffix: no patient data
//! in names or logs. The live path only ever calls [`Recorder::offer`], a
//! non-blocking send into a bounded queue ([`QUEUE_FRAMES`]): when the disk is
//! slow the queue fills and frames are dropped and counted as a gap; when a
//! write fails (disk full) the segment is closed, a gap is recorded and the
//! recorder tries again at a keyframe a second later. A station that starts
//! finds sessions still marked `recording` (a crash or power cut) and repairs
//! them: torn tails cut at the last whole fragment and record.

pub mod format;
pub mod mp4;
pub mod sps;
pub mod timeline;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use scopecast_transport::media::AccessUnit;

use crate::clock::SharedClock;
use crate::metrics::{Counter, Gauge, MetricsRegistry};
use crate::scene::SceneStore;
pub use format::FORMAT;
use format::{
    EncoderRecord, FramePosesRecord, Manifest, RepairRecord, SceneRecord, SegmentRecord, SessionState, SetupRecord,
    TimelineRecord,
};

/// The longest stretch of video a fragment holds, ns: what a crash can lose
/// beyond the queue.
pub const FRAGMENT_NS: u64 = 500_000_000;
/// Frames the queue between the live path and the writer holds (about 4 s at 60 fps).
pub const QUEUE_FRAMES: usize = 240;
/// How long after a failed write the recorder tries again.
const RETRY_AFTER_NS: u64 = 1_000_000_000;

/// Which stream of a session a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// What the viewers saw: overlays and annotations drawn in.
    Composited,
    /// The endoscope's frames before the overlay (`record_clean`).
    Clean,
}

impl Track {
    /// Both, composited first.
    pub const ALL: [Track; 2] = [Track::Composited, Track::Clean];

    /// How its segment files' names start.
    pub fn file_prefix(self) -> &'static str {
        match self {
            Track::Composited => "segment-",
            Track::Clean => "clean-",
        }
    }

    /// The timeline record that starts one of its segments.
    pub fn segment_record(self, segment: SegmentRecord) -> TimelineRecord {
        match self {
            Track::Composited => TimelineRecord::Segment(segment),
            Track::Clean => TimelineRecord::CleanSegment(segment),
        }
    }

    /// The segment a timeline record starts on this track, if it is one.
    pub fn segment_of(self, record: &TimelineRecord) -> Option<&SegmentRecord> {
        match (self, record) {
            (Track::Composited, TimelineRecord::Segment(segment))
            | (Track::Clean, TimelineRecord::CleanSegment(segment)) => Some(segment),
            _ => None,
        }
    }

    fn index(self) -> usize {
        match self {
            Track::Composited => 0,
            Track::Clean => 1,
        }
    }
}

/// What the recorder is doing, for the status line, the HUD and `/metrics`.
pub struct RecorderStatus {
    /// A session is open (or opening).
    pub recording: AtomicBool,
    /// Frames written.
    pub frames: Arc<Counter>,
    /// Bytes of video written.
    pub bytes: Arc<Counter>,
    /// Frames not recorded (queue full, write failures, waiting for a keyframe after either).
    pub dropped: Arc<Counter>,
    /// Gaps recorded.
    pub gaps: Arc<Counter>,
    recording_gauge: Arc<Gauge>,
    error_gauge: Arc<Gauge>,
    /// The queue overflowed: the writer records a gap and waits for a keyframe.
    gap_pending: AtomicBool,
    /// A session started: its first segment waits for a keyframe, which the
    /// live path is asked for ([`Recorder::take_keyframe_wish`]).
    keyframe_wished: AtomicBool,
    /// The last write error, in words (no paths), until writing works again.
    pub last_error: Mutex<Option<String>>,
    /// The open session's folder name.
    pub session: Mutex<Option<String>>,
}

impl RecorderStatus {
    fn new(registry: &MetricsRegistry) -> Self {
        Self {
            recording: AtomicBool::new(false),
            frames: registry.counter("scopecast_recording_frames_total", "Frames written to recordings.", &[]),
            bytes: registry.counter("scopecast_recording_bytes_total", "Bytes of video written to recordings.", &[]),
            dropped: registry.counter(
                "scopecast_recording_dropped_frames_total",
                "Frames not recorded: the disk was too slow or refused them.",
                &[],
            ),
            gaps: registry.counter("scopecast_recording_gaps_total", "Gaps marked in recordings.", &[]),
            recording_gauge: registry.gauge("scopecast_recording", "1 while a session is being recorded.", &[]),
            error_gauge: registry.gauge(
                "scopecast_recording_error",
                "1 while recording fails (disk full or slow): an alarm.",
                &[],
            ),
            gap_pending: AtomicBool::new(false),
            keyframe_wished: AtomicBool::new(false),
            last_error: Mutex::new(None),
            session: Mutex::new(None),
        }
    }

    fn set_error(&self, error: Option<String>) {
        self.error_gauge.set(if error.is_some() { 1.0 } else { 0.0 });
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = error;
    }

    fn set_recording(&self, on: bool) {
        self.recording.store(on, Ordering::Relaxed);
        self.recording_gauge.set(if on { 1.0 } else { 0.0 });
    }

    /// The alarm, if any: why recording is failing.
    pub fn alarm(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// What the writer is given with the video, in the video's bounded queue.
enum Message {
    Frame(Track, AccessUnit),
    /// A timeline record from elsewhere in the station (the access log's).
    Note(TimelineRecord),
    /// One frame's tracked poses (written in batches: `poses` records).
    Poses(FramePosesRecord),
}

/// Sessions started and stopped: a channel of their own, so a switch never
/// waits behind a queue full of frames (and never blocks its caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Start,
    Stop,
}

/// Switches that may wait for the writer; more are refused as busy.
const CONTROL_QUEUE: usize = 16;

/// The writer has [`CONTROL_QUEUE`] switches waiting (a disk so slow that
/// opening and closing sessions lags): try again in a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the recorder is busy; try again in a second")]
pub struct RecorderBusy;

/// The recorder: a writer thread fed through a bounded queue.
pub struct Recorder {
    tx: Sender<Message>,
    control: Sender<Control>,
    /// Its figures.
    pub status: Arc<RecorderStatus>,
    thread: Option<JoinHandle<()>>,
}

/// What the session records besides the video.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Station name for the manifest (from the config; no patient data).
    pub station: String,
    /// The calibration and models, for the manifest.
    pub setup: SetupRecord,
    /// Encoder settings.
    pub encoder: EncoderRecord,
}

impl Recorder {
    /// Starts the writer thread for sessions under `folder` (created if
    /// needed; unfinished sessions in it are repaired first).
    pub fn start(
        folder: PathBuf,
        segment_s: f64,
        scene: Arc<SceneStore>,
        clock: SharedClock,
        info: SessionInfo,
        registry: &MetricsRegistry,
    ) -> std::io::Result<Self> {
        // The folder is made when the first session starts; sessions a crash left open are repaired now.
        for report in repair_unfinished(&folder) {
            tracing::warn!(session = %report.session, cut_bytes = report.cut_bytes, "repaired an unfinished recording");
        }
        let (tx, rx) = bounded(QUEUE_FRAMES);
        let (control, control_rx) = bounded(CONTROL_QUEUE);
        let status = Arc::new(RecorderStatus::new(registry));
        let writer = Writer {
            folder,
            segment_ns: (segment_s * 1e9) as u64,
            scene,
            clock,
            info,
            status: status.clone(),
            session: None,
        };
        let thread =
            std::thread::Builder::new().name("scopecast-recorder".into()).spawn(move || writer.run(rx, control_rx))?;
        Ok(Self { tx, control, status, thread: Some(thread) })
    }

    /// Hands a frame of what viewers saw to the writer without ever
    /// blocking; drops it (counted) when the queue is full.
    pub fn offer(&self, au: &AccessUnit) {
        self.offer_on(Track::Composited, au);
    }

    /// [`Recorder::offer`] for the clean video (the frame before the overlay).
    pub fn offer_clean(&self, au: &AccessUnit) {
        self.offer_on(Track::Clean, au);
    }

    fn offer_on(&self, track: Track, au: &AccessUnit) {
        if !self.status.recording.load(Ordering::Relaxed) {
            return;
        }
        match self.tx.try_send(Message::Frame(track, au.clone())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.status.dropped.inc();
                self.status.gap_pending.store(true, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Adds `record` to the open session's timeline; without a session it
    /// is not kept. Never blocks: dropped, counted, when the queue is full.
    pub fn note(&self, record: TimelineRecord) {
        if !self.status.recording.load(Ordering::Relaxed) {
            return;
        }
        if let Err(TrySendError::Full(_)) = self.tx.try_send(Message::Note(record)) {
            self.status.dropped.inc();
        }
    }

    /// Adds one frame's tracked poses to the open session (kept in `poses`
    /// records of up to [`format::POSES_PER_RECORD_NS`] of frames each, the
    /// last written when the session closes). Never blocks, as [`Recorder::note`].
    pub fn note_poses(&self, frame: FramePosesRecord) {
        if !self.status.recording.load(Ordering::Relaxed) {
            return;
        }
        if let Err(TrySendError::Full(_)) = self.tx.try_send(Message::Poses(frame)) {
            self.status.dropped.inc();
        }
    }

    /// Opens a new session (no-op while one is open). Never blocks.
    pub fn start_session(&self) -> Result<(), RecorderBusy> {
        // The flag first: frames offered from now on belong to the session (the
        // writer clears it if the session cannot open; a busy refusal leaves it
        // to the switches already waiting).
        self.status.set_recording(true);
        self.status.keyframe_wished.store(true, Ordering::Relaxed);
        self.control.try_send(Control::Start).map_err(|_| RecorderBusy)
    }

    /// Whether a session just started and wants a keyframe soon (then
    /// cleared): the live path asks the encoder for one, so a recording
    /// starts at once rather than at the next GOP.
    pub fn take_keyframe_wish(&self) -> bool {
        self.status.keyframe_wished.swap(false, Ordering::Relaxed)
    }

    /// Closes the session.
    pub fn stop_session(&self) -> Result<(), RecorderBusy> {
        self.control.try_send(Control::Stop).map_err(|_| RecorderBusy)
    }

    /// Whether a session is open.
    pub fn is_recording(&self) -> bool {
        self.status.recording.load(Ordering::Relaxed)
    }

    /// Closes the session and ends the thread.
    pub fn shutdown(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        let _ = self.control.send_timeout(Control::Stop, Duration::from_secs(1));
        let (tx, _) = bounded(1);
        drop(std::mem::replace(&mut self.tx, tx));
        let (control, _) = bounded(1);
        drop(std::mem::replace(&mut self.control, control));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.finish();
    }
}

/// One open segment.
struct Segment {
    file: File,
    first_capture_ns: u64,
    sequence: u32,
    /// Samples with their capture times; the last one's duration is not known yet.
    pending: Vec<(u64, mp4::Sample)>,
    /// Bytes in the file that are whole (a failed write is cut back to here).
    written: u64,
    /// The init segment, for filling in the duration when closing.
    init: Vec<u8>,
    /// Ticks of the samples written.
    ticks: u64,
}

/// One track's open segment and counters.
struct TrackState {
    segment: Option<Segment>,
    segments: u32,
    /// After a gap: frames are skipped until a keyframe.
    need_keyframe: bool,
    last_interval_ns: u64,
}

impl TrackState {
    fn new() -> Self {
        Self { segment: None, segments: 0, need_keyframe: false, last_interval_ns: 16_666_667 }
    }
}

struct Session {
    dir: PathBuf,
    name: String,
    timeline: timeline::TimelineWriter,
    /// By [`Track::index`].
    tracks: [TrackState; 2],
    scene_version: Option<u64>,
    /// After a failure: no writing before this capture time.
    retry_at_ns: Option<u64>,
    started_wall_ms: u64,
    /// Frames' tracked poses not yet written (at most [`format::POSES_PER_RECORD_NS`] of them).
    poses: Vec<FramePosesRecord>,
}

struct Writer {
    folder: PathBuf,
    segment_ns: u64,
    scene: Arc<SceneStore>,
    clock: SharedClock,
    info: SessionInfo,
    status: Arc<RecorderStatus>,
    session: Option<Session>,
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `YYYYMMDDTHHMMSSZ` for Unix ms (civil from days, H. Hinnant's algorithm).
pub fn utc_stamp(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Writes `manifest` to `path` atomically (temporary file, sync, rename).
fn write_manifest(path: &Path, manifest: &Manifest) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let written = File::create(&tmp).and_then(|mut file| {
        std::io::Write::write_all(&mut file, manifest.to_json().as_bytes())?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn ticks(ns: u64) -> u64 {
    ns * mp4::TIMESCALE / 1_000_000_000
}

impl Writer {
    fn run(mut self, data: Receiver<Message>, control: Receiver<Control>) {
        loop {
            // Switches first: a start or stop takes effect before frames queued after it.
            if let Ok(switch) = control.try_recv() {
                self.switch(switch, &data);
                continue;
            }
            crossbeam_channel::select! {
                recv(control) -> switch => match switch {
                    Ok(switch) => self.switch(switch, &data),
                    Err(_) => break,
                },
                recv(data) -> message => match message {
                    Ok(message) => self.message(message),
                    Err(_) => break,
                },
            }
        }
        self.close_session();
    }

    fn switch(&mut self, switch: Control, data: &Receiver<Message>) {
        match switch {
            Control::Start if self.session.is_none() => match self.open_session() {
                Ok(session) => {
                    tracing::info!(session = %session.name, "recording started");
                    *self.status.session.lock().unwrap_or_else(PoisonError::into_inner) = Some(session.name.clone());
                    self.session = Some(session);
                }
                Err(e) => {
                    self.failed(&format!("cannot start a recording: {}", e.kind()));
                    self.status.set_recording(false);
                }
            },
            Control::Start => {}
            Control::Stop => {
                // What was offered before the stop is part of the session.
                while let Ok(message) = data.try_recv() {
                    self.message(message);
                }
                self.close_session();
            }
        }
    }

    fn message(&mut self, message: Message) {
        match message {
            Message::Frame(track, au) => self.frame(track, &au),
            Message::Note(record) => {
                if let Some(session) = &mut self.session
                    && let Err(e) = session.timeline.append(&record)
                {
                    tracing::warn!(error = %e, "a timeline note was not kept");
                }
            }
            Message::Poses(frame) => {
                let Some(session) = &mut self.session else { return };
                let span = session.poses.first().map_or(0, |first| frame.t_ns.saturating_sub(first.t_ns));
                session.poses.push(frame);
                if span >= format::POSES_PER_RECORD_NS {
                    Self::write_poses(session);
                }
            }
        }
    }

    /// Writes the frames' poses gathered so far as one `poses` record.
    fn write_poses(session: &mut Session) {
        if session.poses.is_empty() {
            return;
        }
        let record = TimelineRecord::Poses { frames: std::mem::take(&mut session.poses) };
        if let Err(e) = session.timeline.append(&record) {
            tracing::warn!(error = %e, "tracked poses were not kept");
        }
    }

    fn failed(&self, message: &str) {
        tracing::error!(error = message, "recording");
        self.status.set_error(Some(message.to_string()));
    }

    fn open_session(&self) -> std::io::Result<Session> {
        let started = wall_ms();
        let mut suffix = [0u8; 3];
        std::io::Read::read_exact(&mut File::open("/dev/urandom")?, &mut suffix)?;
        let name = format!("{}-{:02x}{:02x}{:02x}", utc_stamp(started), suffix[0], suffix[1], suffix[2]);
        std::fs::create_dir_all(&self.folder)?;
        let dir = self.folder.join(&name);
        std::fs::create_dir(&dir)?;
        let manifest = Manifest::started(
            name.clone(),
            started,
            self.info.station.clone(),
            self.info.setup.clone(),
            self.info.encoder.clone(),
        );
        write_manifest(&dir.join("manifest.json"), &manifest)?;
        let mut timeline = timeline::TimelineWriter::create(&dir.join("timeline.bin"))?;
        timeline.append(&TimelineRecord::Start { wall_ms: started, t_ns: self.clock.now_ns() })?;
        Ok(Session {
            dir,
            name,
            timeline,
            tracks: [TrackState::new(), TrackState::new()],
            scene_version: None,
            retry_at_ns: None,
            started_wall_ms: started,
            poses: Vec::new(),
        })
    }

    fn frame(&mut self, track: Track, au: &AccessUnit) {
        let Some(session) = self.session.as_mut() else { return };
        if self.status.gap_pending.swap(false, Ordering::Relaxed) {
            // Frames were dropped before the queue: each track resumes at a keyframe.
            self.status.gaps.inc();
            session.tracks.iter_mut().for_each(|t| t.need_keyframe = true);
            let gap = TimelineRecord::Gap { t_ns: au.capture_time_ns, reason: "queue full".into() };
            let _ = session.timeline.append(&gap);
        }
        let state = &mut session.tracks[track.index()];
        let waiting =
            session.retry_at_ns.is_some_and(|t| au.capture_time_ns < t) || (state.need_keyframe && !au.keyframe);
        if waiting {
            self.status.dropped.inc();
            return;
        }
        state.need_keyframe = false;
        if let Err(e) = Self::write_frame(session, track, au, self.segment_ns, &self.scene, &self.status) {
            let message = format!("recording write failed ({}): gap until the disk takes data again", e.kind());
            self.status.gaps.inc();
            self.status.dropped.inc();
            self.failed(&message);
            if let Some(session) = self.session.as_mut() {
                // The segment keeps what was synced; the next one starts at a keyframe.
                session.tracks[track.index()].segment = None;
                session.retry_at_ns = Some(au.capture_time_ns + RETRY_AFTER_NS);
                let gap = TimelineRecord::Gap { t_ns: au.capture_time_ns, reason: e.kind().to_string() };
                let _ = session.timeline.append(&gap);
            }
        } else if session.retry_at_ns.take().is_some() {
            self.status.set_error(None);
        }
    }

    fn write_frame(
        session: &mut Session,
        track: Track,
        au: &AccessUnit,
        segment_ns: u64,
        scene: &SceneStore,
        status: &RecorderStatus,
    ) -> std::io::Result<()> {
        let state = &mut session.tracks[track.index()];
        let starts_segment = match &state.segment {
            None => true,
            Some(s) => au.keyframe && au.capture_time_ns.saturating_sub(s.first_capture_ns) >= segment_ns,
        };
        if starts_segment {
            if !au.keyframe {
                // A segment starts at a keyframe; wait for one.
                status.dropped.inc();
                return Ok(());
            }
            if track == Track::Composited {
                Self::close_segment(state)?;
            } else if let Err(e) = Self::close_segment(state) {
                // The clean video is a bonus: its failure never costs a frame of what viewers saw.
                tracing::warn!(error = %e, "closing a clean-video segment failed");
            }
            let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidData, "keyframe without SPS/PPS");
            let (sps, pps) = mp4::parameter_sets(&au.data).ok_or_else(invalid)?;
            let (width, height) = sps::picture_size(&sps).ok_or_else(invalid)?;
            state.segments += 1;
            let path = session.dir.join(format!("{}{:06}.mp4", track.file_prefix(), state.segments));
            let mut file = File::options().create_new(true).write(true).open(&path)?;
            let init = mp4::init_segment(width, height, &sps, &pps);
            if let Err(e) = mp4::write_durably(&mut file, &init) {
                drop(file);
                let _ = std::fs::remove_file(&path);
                state.segments -= 1;
                return Err(e);
            }
            session.timeline.append(&track.segment_record(SegmentRecord {
                index: u64::from(state.segments),
                t_ns: au.capture_time_ns,
                wall_ms: au.capture_wall_ms,
                width,
                height,
            }))?;
            state.segment = Some(Segment {
                file,
                first_capture_ns: au.capture_time_ns,
                sequence: 0,
                pending: Vec::new(),
                written: init.len() as u64,
                init,
                ticks: 0,
            });
        }
        let current = scene.load();
        if track == Track::Composited && session.scene_version != Some(current.version) {
            session.timeline.append(&TimelineRecord::Scene {
                t_ns: au.capture_time_ns,
                wall_ms: au.capture_wall_ms,
                version: current.version,
                scene: SceneRecord::from(&*current.scene),
            })?;
            session.scene_version = Some(current.version);
        }
        let state = &mut session.tracks[track.index()];
        let Some(segment) = state.segment.as_mut() else { return Ok(()) };
        if let Some((last_time, last)) = segment.pending.last_mut() {
            let interval = au.capture_time_ns.saturating_sub(*last_time).max(1);
            last.duration = ticks(interval).max(1) as u32;
            state.last_interval_ns = interval;
        }
        segment.pending.push((
            au.capture_time_ns,
            mp4::Sample { data: mp4::avcc_sample(&au.data), duration: 0, keyframe: au.keyframe },
        ));
        let span = au.capture_time_ns.saturating_sub(segment.pending[0].0);
        if span >= FRAGMENT_NS {
            let (frames, bytes) = Self::flush(segment, false)?;
            if track == Track::Composited {
                status.frames.add(frames);
            }
            status.bytes.add(bytes);
        }
        Ok(())
    }

    /// Writes the pending samples as one fragment (all but the last unless
    /// `all`, whose duration is not known yet); returns (frames, bytes).
    fn flush(segment: &mut Segment, all: bool) -> std::io::Result<(u64, u64)> {
        let keep = usize::from(!all).min(segment.pending.len());
        let count = segment.pending.len() - keep;
        if count == 0 {
            return Ok((0, 0));
        }
        let taken: Vec<(u64, mp4::Sample)> = segment.pending.drain(..count).collect();
        let base = ticks(taken[0].0.saturating_sub(segment.first_capture_ns));
        let samples: Vec<mp4::Sample> = taken.into_iter().map(|(_, s)| s).collect();
        segment.sequence += 1;
        let bytes = mp4::fragment(segment.sequence, base, &samples);
        if let Err(e) = mp4::write_durably(&mut segment.file, &bytes) {
            // Cut a partly written fragment off, so the file stays whole (and the space comes back).
            let _ = segment.file.set_len(segment.written);
            let _ = segment.file.sync_data();
            return Err(e);
        }
        segment.written += bytes.len() as u64;
        segment.ticks += samples.iter().map(|s| u64::from(s.duration)).sum::<u64>();
        Ok((samples.len() as u64, bytes.len() as u64))
    }

    fn close_segment(state: &mut TrackState) -> std::io::Result<(u64, u64)> {
        let Some(mut segment) = state.segment.take() else { return Ok((0, 0)) };
        if let Some((_, last)) = segment.pending.last_mut() {
            last.duration = ticks(state.last_interval_ns).max(1) as u32;
        }
        let written = Self::flush(&mut segment, true)?;
        use std::os::unix::fs::FileExt;
        for (offset, bytes) in mp4::duration_patches(&segment.init, segment.ticks) {
            segment.file.write_all_at(&bytes, offset)?;
        }
        segment.file.sync_data()?;
        Ok(written)
    }

    fn close_session(&mut self) {
        let Some(mut session) = self.session.take() else {
            self.status.set_recording(false);
            return;
        };
        let closed = Self::close_segment(&mut session.tracks[Track::Composited.index()]);
        if let Ok((frames, bytes)) = closed {
            self.status.frames.add(frames);
            self.status.bytes.add(bytes);
        }
        if let Ok((_, bytes)) = Self::close_segment(&mut session.tracks[Track::Clean.index()]) {
            self.status.bytes.add(bytes);
        }
        Self::write_poses(&mut session);
        let stopped = wall_ms();
        let _ = session.timeline.append(&TimelineRecord::Stop { wall_ms: stopped, t_ns: self.clock.now_ns() });
        let manifest_path = session.dir.join("manifest.json");
        let mut manifest = std::fs::read(&manifest_path)
            .ok()
            .and_then(|b| Manifest::parse(&b).ok())
            .unwrap_or_else(|| Manifest::bare(session.name.clone()));
        manifest.state = SessionState::Finished;
        manifest.finished_wall_ms = Some(stopped);
        manifest.duration_ms = Some(stopped.saturating_sub(session.started_wall_ms));
        manifest.segments = Some(session.tracks[Track::Composited.index()].segments);
        manifest.clean_segments = Some(session.tracks[Track::Clean.index()].segments);
        manifest.dropped_frames = Some(self.status.dropped.get());
        manifest.gaps = Some(self.status.gaps.get());
        if closed.is_err() || write_manifest(&manifest_path, &manifest).is_err() {
            self.failed("could not finish the recording's last segment or manifest");
        }
        tracing::info!(session = %session.name, "recording stopped");
        *self.status.session.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.status.set_recording(false);
    }
}

/// What repairing one unfinished session did.
#[derive(Debug, Clone, PartialEq)]
pub struct RepairReport {
    /// The session folder's name.
    pub session: String,
    /// Bytes cut from torn tails (segments and timeline).
    pub cut_bytes: u64,
    /// Segments removed because not even their header was whole.
    pub removed_segments: u32,
}

/// The session folders under `folder`, by name.
pub fn sessions(folder: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("manifest.json").is_file())
        .collect();
    out.sort();
    out
}

/// The segment files of a session (what viewers saw), in order.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    track_files(dir, Track::Composited)
}

/// The segment files of one track of a session, in order.
pub fn track_files(dir: &Path, track: Track) -> Vec<PathBuf> {
    let prefix = track.file_prefix();
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix) && n.ends_with(".mp4"))
        })
        .collect();
    out.sort();
    out
}

fn truncate(path: &Path, length: usize) -> std::io::Result<u64> {
    let file = File::options().write(true).open(path)?;
    let before = file.metadata()?.len();
    file.set_len(length as u64)?;
    file.sync_all()?;
    Ok(before.saturating_sub(length as u64))
}

/// Repairs every session under `folder` still marked `recording`.
pub fn repair_unfinished(folder: &Path) -> Vec<RepairReport> {
    let mut reports = Vec::new();
    for dir in sessions(folder) {
        let manifest_path = dir.join("manifest.json");
        let Ok(mut manifest) =
            std::fs::read(&manifest_path).map_err(|_| ()).and_then(|b| Manifest::parse(&b).map_err(|_| ()))
        else {
            continue;
        };
        if manifest.state != SessionState::Recording {
            continue;
        }
        let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let mut report = RepairReport { session: name, cut_bytes: 0, removed_segments: 0 };
        let mut segments = [0u32; 2];
        for (track, segment) in Track::ALL.iter().flat_map(|t| track_files(&dir, *t).into_iter().map(move |f| (*t, f)))
        {
            let bytes = std::fs::read(&segment).unwrap_or_default();
            let valid = mp4::valid_length(&bytes);
            if valid == 0 {
                let _ = std::fs::remove_file(&segment);
                report.removed_segments += 1;
                report.cut_bytes += bytes.len() as u64;
            } else {
                report.cut_bytes += truncate(&segment, valid).unwrap_or(0);
                segments[track.index()] += 1;
            }
        }
        let timeline_path = dir.join("timeline.bin");
        let bytes = std::fs::read(&timeline_path).unwrap_or_default();
        if let Some(contents) = timeline::read(&bytes) {
            report.cut_bytes += truncate(&timeline_path, contents.valid_length).unwrap_or(0);
        }
        manifest.state = SessionState::Repaired;
        manifest.repaired_wall_ms = Some(wall_ms());
        manifest.repair = Some(RepairRecord { cut_bytes: report.cut_bytes, removed_segments: report.removed_segments });
        manifest.segments = Some(segments[Track::Composited.index()]);
        manifest.clean_segments = Some(segments[Track::Clean.index()]);
        if write_manifest(&manifest_path, &manifest).is_ok() {
            reports.push(report);
        }
    }
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_follow_the_civil_calendar() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(1_764_158_400_123), "20251126T120000Z");
        assert_eq!(utc_stamp(951_782_400_000), "20000229T000000Z");
    }
}
