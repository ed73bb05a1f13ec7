//! `GET /snapshot.png` (operator): the newest composited frame, exact
//! pixels. The HTTP handler leaves a request at the desk; the compositor
//! stage, after its next frame, reads that frame back (blocking for one
//! readback, only when asked) and hands it over. One request at a time: a
//! second while one waits is refused as busy, so snapshots cannot pile up
//! on the frame loop.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

/// A composited frame, RGBA8, rows packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Width, px.
    pub width: u32,
    /// Height, px.
    pub height: u32,
    /// Pixels, 4 bytes each.
    pub rgba: Vec<u8>,
    /// The frame's capture time, Unix ms.
    pub capture_wall_ms: u64,
}

/// Why no snapshot came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Another snapshot is being taken.
    #[error("a snapshot is being taken; try again")]
    Busy,
    /// No frame was composited in time (or the compositor is off).
    #[error("no composited frame within {waited_ms} ms")]
    NoFrame {
        /// How long it waited.
        waited_ms: u64,
    },
}

/// The HTTP side: asks for snapshots.
#[derive(Debug, Clone)]
pub struct SnapshotDesk {
    requests: SyncSender<SyncSender<Snapshot>>,
}

/// The compositor's side: answers them.
#[derive(Debug)]
pub struct SnapshotWindow {
    requests: Receiver<SyncSender<Snapshot>>,
}

/// A desk and its window.
pub fn snapshot_desk() -> (SnapshotDesk, SnapshotWindow) {
    let (requests, window) = sync_channel(1);
    (SnapshotDesk { requests }, SnapshotWindow { requests: window })
}

impl SnapshotDesk {
    /// The next composited frame, waiting at most `timeout`.
    pub fn take(&self, timeout: Duration) -> Result<Snapshot, SnapshotError> {
        let (reply, answer) = sync_channel(1);
        match self.requests.try_send(reply) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(SnapshotError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(SnapshotError::NoFrame { waited_ms: 0 }),
        }
        answer.recv_timeout(timeout).map_err(|_| SnapshotError::NoFrame { waited_ms: timeout.as_millis() as u64 })
    }
}

impl SnapshotWindow {
    /// Where to send the next frame, if someone asked (never blocks).
    pub fn asked(&self) -> Option<SyncSender<Snapshot>> {
        self.requests.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_at_a_time_and_a_timeout_without_frames() {
        let (desk, window) = snapshot_desk();
        let waiting = {
            let desk = desk.clone();
            std::thread::spawn(move || desk.take(Duration::from_secs(5)))
        };
        let reply = loop {
            if let Some(reply) = window.asked() {
                break reply;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let snapshot = Snapshot { width: 1, height: 1, rgba: vec![1, 2, 3, 255], capture_wall_ms: 7 };
        reply.send(snapshot.clone()).expect("sent");
        assert_eq!(waiting.join().expect("joined"), Ok(snapshot));
        assert_eq!(desk.take(Duration::from_millis(20)), Err(SnapshotError::NoFrame { waited_ms: 20 }));
        // That request is still at the window: the next one is refused as busy until it is taken.
        assert_eq!(desk.take(Duration::from_millis(20)), Err(SnapshotError::Busy));
        assert!(window.asked().is_some());
    }
}
