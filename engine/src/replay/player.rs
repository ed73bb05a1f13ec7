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

use scopecast_transport::access::Who;
use scopecast_transport::adapt::VideoLayer;
use scopecast_transport::broadcast::Broadcast;
use scopecast_transport::fanout::ViewerId;
use scopecast_transport::media::AccessUnit;
use scopecast_transport::protocol::{Command, Notice, PROTOCOL_VERSION};
use scopecast_transport::refused::CommandRefused;
use scopecast_transport::room::CommandSink;

use super::schedule::Playback;
use super::session::{RecordedSession, SegmentCache};
use crate::clock::SharedClock;

/// Longest the thread sleeps before looking at keyframe requests again.
const POLL: Duration = Duration::from_millis(20);

/// The playback state, shared by the data channel (the trainer's controls)
/// and whatever sends the frames (the player thread, or the source of a
/// replay that draws the overlays afresh).
pub struct Shared {
    playback: Mutex<Playback>,
    changed: Condvar,
    stop: AtomicBool,
    clock: SharedClock,
}

impl Shared {
    /// Playing `frames` from the first keyframe, now.
    pub fn new(frames: Vec<super::schedule::FrameTime>, clock: SharedClock) -> Arc<Self> {
        let playback = Playback::new(frames, clock.now_ns());
        Arc::new(Self { playback: Mutex::new(playback), changed: Condvar::new(), stop: AtomicBool::new(false), clock })
    }

    fn playback(&self) -> MutexGuard<'_, Playback> {
        self.playback.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits at most `max_wait` for the next frame due; its index. `refresh`
    /// is asked first whether a viewer needs a keyframe.
    pub fn next_due(&self, max_wait: Duration, refresh: impl FnOnce(u64) -> bool) -> Option<usize> {
        let mut playback = self.playback();
        let now = self.clock.now_ns();
        if refresh(now) {
            playback.refresh(now);
        }
        if let Some(index) = playback.take_due(now) {
            return Some(index);
        }
        let wait =
            playback.due_ns().map_or(max_wait, |due| Duration::from_nanos(due.saturating_sub(now)).min(max_wait));
        playback = self.changed.wait_timeout(playback, wait).unwrap_or_else(PoisonError::into_inner).0;
        playback.take_due(self.clock.now_ns())
    }

    /// Asks the sender to stop (wakes it).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.changed.notify_all();
    }

    /// Whether [`Shared::stop`] was called.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The state as the pages see it.
    pub fn state(&self) -> Notice {
        let now = self.clock.now_ns();
        self.notice(&self.playback(), now, false)
    }

    fn notice(&self, playback: &Playback, now_ns: u64, drawing: bool) -> Notice {
        Notice::Playback {
            v: PROTOCOL_VERSION,
            paused: playback.paused(),
            ended: playback.ended(),
            position_ms: playback.position_ns(now_ns) / 1_000_000,
            duration_ms: playback.duration_ns() / 1_000_000,
            speed: playback.speed() as f32,
            drawing,
        }
    }
}

/// A replay in progress.
pub struct Player {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// The trainer's controls, as the room's [`CommandSink`]: pause, play,
/// seek and speed; drawing and layer switches go to `drawing` when the
/// replay draws the overlays afresh, and are refused when it plays the
/// composited stream as recorded.
pub struct PlayerControls {
    shared: Arc<Shared>,
    drawing: Option<Arc<dyn CommandSink>>,
}

impl PlayerControls {
    /// Controls of `shared`, passing drawing to `drawing`.
    pub fn new(shared: Arc<Shared>, drawing: Option<Arc<dyn CommandSink>>) -> Self {
        Self { shared, drawing }
    }
}

impl Player {
    /// Starts playing `session` into `broadcast` from its first keyframe.
    pub fn start(session: RecordedSession, broadcast: Arc<Broadcast>, clock: SharedClock) -> std::io::Result<Self> {
        let shared = Shared::new(session.frame_times(), clock);
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("scopecast-replay".into())
            .spawn(move || run(&for_thread, &session, &broadcast))?;
        Ok(Self { shared, thread: Some(thread) })
    }

    /// The controls for the viewers' data channels.
    pub fn controls(&self) -> Arc<PlayerControls> {
        Arc::new(PlayerControls::new(self.shared.clone(), None))
    }

    /// The state as the pages see it.
    pub fn state(&self) -> Notice {
        self.shared.state()
    }

    /// Stops the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop();
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
    let keyframe_wanted = |now| broadcast.keyframe_due(VideoLayer::Full, now);
    while !shared.stopped() {
        let Some(index) = shared.next_due(POLL, keyframe_wanted) else { continue };
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
                broadcast.publish([&au]);
            }
            Err(e) => {
                // A segment that vanished or shrank: skip the frame; the fan-out resyncs at the next keyframe.
                failed_frames += 1;
                if failed_frames.is_power_of_two() {
                    tracing::warn!(error = %e, failed_frames, "replay frame unreadable");
                }
            }
        }
    }
}

impl CommandSink for PlayerControls {
    fn apply(&self, viewer: ViewerId, who: &Who, command: &Command) -> Result<Option<Notice>, CommandRefused> {
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
            Command::Record { .. } => return Err(CommandRefused::ReplayDoesNotRecord),
            Command::Registration { .. } => return Err(CommandRefused::NoRegistrationDesk),
            _ => {
                drop(playback);
                return match &self.drawing {
                    Some(drawing) => drawing.apply(viewer, who, command),
                    None => Err(CommandRefused::RecordedAsIs { command: command.name() }),
                };
            }
        }
        tracing::info!(viewer = viewer.0, command = command.name(), "replay control");
        let notice = self.shared.notice(&playback, now, self.drawing.is_some());
        drop(playback);
        self.shared.changed.notify_all();
        Ok(Some(notice))
    }

    fn left(&self, viewer: ViewerId) {
        if let Some(drawing) = &self.drawing {
            drawing.left(viewer);
        }
    }

    fn greeting(&self) -> Option<Notice> {
        let now = self.shared.clock.now_ns();
        Some(self.shared.notice(&self.shared.playback(), now, self.drawing.is_some()))
    }
}
