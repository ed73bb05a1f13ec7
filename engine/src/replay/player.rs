//! The replay's player thread (`scopecast-replay`): sends each recorded
//! frame into the fan-out when the [`Playback`] schedule says, as the same
//! access units the live station sends (so the same WHEP sessions and
//! viewer page play it), and takes the trainer's pause, seek and speed from
//! the data channel. Every viewer watches the one stream, so every trainee
//! follows the trainer; each change is announced to all pages.
//!
//! RTP timestamps come from the send time, not the recorded time: a seek
//! backwards or a speed change must not look like a jump in the stream to
//! the viewers' jitter buffers. The recorded capture time travels in the
//! picture (the timecode strip) and in `capture_wall_ms`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use scopecast_transport::adapt::VideoLayer;
use scopecast_transport::media::AccessUnit;
use scopecast_transport::protocol::{Command, Notice, PROTOCOL_VERSION};
use scopecast_transport::room::CommandSink;
use scopecast_transport::whep::Broadcast;

use super::schedule::Playback;
use super::session::{RecordedSession, SegmentCache};
use crate::clock::SharedClock;

/// Longest the thread sleeps before looking at keyframe requests again.
const POLL: Duration = Duration::from_millis(20);

/// What the data channel and the thread share.
struct Shared {
    playback: Mutex<Playback>,
    changed: Condvar,
    stop: AtomicBool,
    clock: SharedClock,
}

impl Shared {
    fn playback(&self) -> MutexGuard<'_, Playback> {
        self.playback.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notice(&self, playback: &Playback, now_ns: u64) -> Notice {
        Notice::Playback {
            v: PROTOCOL_VERSION,
            paused: playback.paused(),
            ended: playback.ended(),
            position_ms: playback.position_ns(now_ns) / 1_000_000,
            duration_ms: playback.duration_ns() / 1_000_000,
            speed: playback.speed() as f32,
        }
    }
}

/// A replay in progress.
pub struct Player {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// The trainer's controls, as the room's [`CommandSink`].
pub struct PlayerControls {
    shared: Arc<Shared>,
}

impl Player {
    /// Starts playing `session` into `broadcast` from its first keyframe.
    pub fn start(session: RecordedSession, broadcast: Arc<Broadcast>, clock: SharedClock) -> std::io::Result<Self> {
        let playback = Playback::new(session.frame_times(), clock.now_ns());
        let shared = Arc::new(Shared {
            playback: Mutex::new(playback),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            clock,
        });
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("scopecast-replay".into())
            .spawn(move || run(&for_thread, &session, &broadcast))?;
        Ok(Self { shared, thread: Some(thread) })
    }

    /// The controls for the viewers' data channels.
    pub fn controls(&self) -> Arc<PlayerControls> {
        Arc::new(PlayerControls { shared: self.shared.clone() })
    }

    /// The state as the pages see it.
    pub fn state(&self) -> Notice {
        let now = self.shared.clock.now_ns();
        self.shared.notice(&self.shared.playback(), now)
    }

    /// Stops the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(shared: &Shared, session: &RecordedSession, broadcast: &Broadcast) {
    let mut cache = SegmentCache::default();
    let mut sequence = 0u64;
    let mut failed_frames = 0u64;
    let mut playback = shared.playback();
    while !shared.stop.load(Ordering::Relaxed) {
        let now = shared.clock.now_ns();
        let wanted = broadcast
            .fanout
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take_keyframe_request(VideoLayer::Full, now);
        if wanted {
            playback.refresh(now);
        }
        let Some(index) = playback.take_due(now) else {
            let wait = playback.due_ns().map_or(POLL, |due| Duration::from_nanos(due.saturating_sub(now)).min(POLL));
            playback = shared.changed.wait_timeout(playback, wait).unwrap_or_else(PoisonError::into_inner).0;
            continue;
        };
        drop(playback);
        let frame = session.frames[index];
        match cache.annex_b(session, &frame) {
            Ok(data) => {
                sequence += 1;
                let au = AccessUnit {
                    data: data.into(),
                    keyframe: frame.keyframe,
                    sequence,
                    capture_time_ns: shared.clock.now_ns(),
                    capture_wall_ms: frame.wall_ms,
                    layer: VideoLayer::Full,
                };
                broadcast.fanout.lock().unwrap_or_else(PoisonError::into_inner).push(&au);
                broadcast.pushed.notify_waiters();
            }
            Err(e) => {
                // A segment that vanished or shrank: skip the frame; the fan-out resyncs at the next keyframe.
                failed_frames += 1;
                if failed_frames.is_power_of_two() {
                    tracing::warn!(error = %e, failed_frames, "replay frame unreadable");
                }
            }
        }
        playback = shared.playback();
    }
}

impl CommandSink for PlayerControls {
    fn apply(&self, viewer: u64, command: &Command) -> Result<Option<Notice>, String> {
        let now = self.shared.clock.now_ns();
        let mut playback = self.shared.playback();
        match command {
            Command::Pause {} => playback.pause(now),
            Command::Play {} => playback.play(now),
            Command::Seek { to_ms } => {
                playback.seek(to_ms.saturating_mul(1_000_000), now);
            }
            Command::Speed { factor } => playback.set_speed(f64::from(*factor), now),
            Command::Hello { .. } => return Ok(None),
            Command::Record { .. } => return Err("a replay does not record".into()),
            _ => {
                return Err(format!(
                    "{} is refused: this replay plays the composited stream as recorded, which is never altered",
                    command.name()
                ));
            }
        }
        tracing::info!(viewer, command = command.name(), "replay control");
        let notice = self.shared.notice(&playback, now);
        drop(playback);
        self.shared.changed.notify_all();
        Ok(Some(notice))
    }

    fn left(&self, _viewer: u64) {}

    fn greeting(&self) -> Option<Notice> {
        let now = self.shared.clock.now_ns();
        Some(self.shared.notice(&self.shared.playback(), now))
    }
}
