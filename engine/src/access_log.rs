//! The station's access log: who joined and left, from where, when, and
//! what they did, as JSON lines ([`AccessRecord`], format version
//! [`ACCESS_LOG_VERSION`]) appended to a file a hospital's auditor can read
//! with any tool, rotated by size (`access.log` → `access.log.1` → … up to
//! `keep` old files). While a recording is open each record also goes into
//! its timeline (`{"kind":"access", …}`), so a replay knows who was there.
//!
//! Events come from the signalling and data-channel tasks and must never
//! wait on a disk: they go through a bounded queue ([`QUEUE_RECORDS`]) to the
//! `scopecast-access-log` thread; when it is full the newest record is
//! dropped and counted (`scopecast_access_log_dropped_total`), and the writer
//! says how many were lost in the log itself. A file that cannot be written
//! is reported once and retried on the next record; the stream never notices.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use scopecast_transport::access::{ACCESS_LOG_VERSION, AccessEvent, AccessRecord, AccessSink};

use crate::recorder::Recorder;

/// Records queued for the writer at most.
pub const QUEUE_RECORDS: usize = 4096;

/// Where and how the log is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogSettings {
    /// The current file.
    pub path: PathBuf,
    /// Rotate before a line would take the file past this, bytes.
    pub max_bytes: u64,
    /// Old files kept (`path.1` newest … `path.keep` oldest).
    pub keep: u32,
}

/// The access log: an [`AccessSink`] whose writer runs on its own thread.
pub struct AccessLog {
    tx: Option<Sender<AccessRecord>>,
    dropped: Arc<AtomicU64>,
    recorder: Option<Arc<Recorder>>,
    thread: Option<JoinHandle<()>>,
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl AccessLog {
    /// Starts the writer for `settings`; records also go to `recorder`'s
    /// open session, if any.
    pub fn start(settings: AccessLogSettings, recorder: Option<Arc<Recorder>>) -> std::io::Result<Self> {
        let (tx, rx) = bounded(QUEUE_RECORDS);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = Writer { settings, file: None, size: 0, failing: false, dropped: dropped.clone(), reported: 0 };
        let thread = std::thread::Builder::new().name("scopecast-access-log".into()).spawn(move || writer.run(rx))?;
        Ok(Self { tx: Some(tx), dropped, recorder, thread: Some(thread) })
    }

    /// Records dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records `event` at `t_unix_ms` (what [`AccessSink::record`] does with now).
    pub fn record_at(&self, event: AccessEvent, t_unix_ms: u64) {
        let record = AccessRecord { v: ACCESS_LOG_VERSION, t_unix_ms, event };
        if let Some(recorder) = &self.recorder {
            recorder.note(crate::recorder::format::TimelineRecord::Access(record.clone()));
        }
        let Some(tx) = &self.tx else { return };
        if let Err(TrySendError::Full(_)) = tx.try_send(record) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes what is queued and ends the writer.
    pub fn close(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.finish();
    }
}

impl AccessSink for AccessLog {
    fn record(&self, event: AccessEvent) {
        self.record_at(event, wall_ms());
    }
}

struct Writer {
    settings: AccessLogSettings,
    file: Option<File>,
    size: u64,
    /// The last write failed (said once until one succeeds).
    failing: bool,
    dropped: Arc<AtomicU64>,
    /// Drops already written into the log.
    reported: u64,
}

impl Writer {
    fn run(mut self, rx: Receiver<AccessRecord>) {
        while let Ok(record) = rx.recv() {
            let dropped = self.dropped.load(Ordering::Relaxed);
            let mut line = record.to_line();
            if dropped > self.reported {
                // Said in the log itself, so an auditor sees that lines are missing.
                line = format!(
                    "{{\"v\":{ACCESS_LOG_VERSION},\"t_unix_ms\":{},\"event\":\"lost\",\"records\":{}}}\n{line}",
                    record.t_unix_ms,
                    dropped - self.reported
                );
            }
            line.push('\n');
            match self.write(line.as_bytes()) {
                Ok(()) => {
                    self.reported = dropped;
                    if self.failing {
                        tracing::info!(path = %self.settings.path.display(), "the access log is written again");
                    }
                    self.failing = false;
                }
                Err(e) => {
                    if !self.failing {
                        tracing::error!(path = %self.settings.path.display(), error = %e, "the access log cannot be written");
                    }
                    self.failing = true;
                    self.file = None;
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if let Some(file) = &self.file {
            let _ = file.sync_all();
        }
    }

    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.file.is_none() {
            if let Some(dir) = self.settings.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new().create(true).append(true).open(&self.settings.path)?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
        }
        if self.size > 0 && self.size + line.len() as u64 > self.settings.max_bytes {
            self.file = None;
            rotate(&self.settings.path, self.settings.keep)?;
            self.file = Some(OpenOptions::new().create(true).append(true).open(&self.settings.path)?);
            self.size = 0;
        }
        let file = self.file.as_mut().ok_or_else(|| std::io::Error::other("no file"))?;
        file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }
}

/// `path.N` for rotation `n`.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Shifts `path.1 … path.(keep-1)` up by one (the oldest, `path.keep`, is
/// replaced) and moves `path` to `path.1`.
pub fn rotate(path: &Path, keep: u32) -> std::io::Result<()> {
    for n in (1..keep).rev() {
        let from = rotated(path, n);
        if from.exists() {
            std::fs::rename(&from, rotated(path, n + 1))?;
        }
    }
    std::fs::rename(path, rotated(path, 1))
}

/// The records of the log at `path` and its rotated files, oldest first
/// (lines that are not records of this version are skipped).
pub fn read_all(path: &Path, keep: u32) -> Vec<AccessRecord> {
    let mut files: Vec<PathBuf> = (1..=keep).rev().map(|n| rotated(path, n)).collect();
    files.push(path.to_path_buf());
    files
        .iter()
        .filter_map(|file| std::fs::read_to_string(file).ok())
        .flat_map(|text| text.lines().filter_map(AccessRecord::parse).collect::<Vec<_>>())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use scopecast_transport::access::{Action, LeaveReason, Who};
    use scopecast_transport::auth::Role;

    fn who() -> Who {
        Who { credential: "link:0000000000000001".into(), name: Some("Dr A".into()), role: Role::Annotator }
    }

    #[test]
    fn records_are_appended_as_lines_and_rotated_by_size() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("logs").join("access.log");
        let settings = AccessLogSettings { path: path.clone(), max_bytes: 1000, keep: 3 };
        let log = AccessLog::start(settings.clone(), None).expect("writer");
        for session in 0..40u64 {
            log.record_at(
                AccessEvent::Joined { session, who: who(), address: Some("10.1.2.3".into()) },
                1000 + session,
            );
            log.record_at(AccessEvent::Acted { session, who: who(), action: Action::Drew }, 2000 + session);
        }
        log.close();
        let current = std::fs::metadata(&path).expect("current file").len();
        assert!(current <= 1000, "{current} bytes");
        assert!(rotated(&path, 3).exists() && !rotated(&path, 4).exists(), "three old files kept, no more");
        // What the four files hold is the newest part of what was written, in order.
        let written: Vec<u64> = (0..40u64).flat_map(|s| [1000 + s, 2000 + s]).collect();
        let kept: Vec<u64> = read_all(&path, 3).iter().map(|r| r.t_unix_ms).collect();
        assert!(kept.len() > 8 && kept.len() < written.len(), "{} records kept", kept.len());
        assert_eq!(kept[..], written[written.len() - kept.len()..]);
        // Reopened: appended, not truncated.
        let log = AccessLog::start(settings, None).expect("writer");
        log.record_at(AccessEvent::Left { session: 39, who: who(), reason: LeaveReason::Deleted }, 3000);
        log.close();
        let after: Vec<u64> = read_all(&path, 3).iter().map(|r| r.t_unix_ms).collect();
        assert_eq!(after.last(), Some(&3000));
        assert_eq!(after[after.len() - 2], 2039, "the line before is still there");
        for text in (1..=3).map(|n| std::fs::read_to_string(rotated(&path, n)).expect("rotated")) {
            assert!(text.lines().all(|l| AccessRecord::parse(l).is_some()), "every line a record: {text}");
            assert!(!text.contains("sc1.") && !text.contains("token"), "no token in the log");
        }
    }

    #[test]
    fn an_unwritable_log_harms_nobody() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A folder where the file should be: every write fails.
        let path = dir.path().join("access.log");
        std::fs::create_dir(&path).expect("folder");
        let log = AccessLog::start(AccessLogSettings { path, max_bytes: 1 << 20, keep: 2 }, None).expect("writer");
        for session in 0..10 {
            log.record_at(AccessEvent::Joined { session, who: who(), address: None }, 1);
        }
        log.close();
    }
}
