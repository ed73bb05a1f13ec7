//! One tracker connection over OpenIGTLink on its own named thread: as a
//! client of PLUS Server or 3D Slicer (reconnecting with back-off), or as a
//! server a tracker connects to. Bytes go through the sans-IO decoder
//! (`scopecast_transport::igtl`); each pose becomes a timed sample in the
//! shared pose store, which the compositor reads without locking (the store
//! is replaced whole, arc-swap). A broken or hostile peer costs counted,
//! logged errors and, at worst, its connection; never the frame loop.

use std::collections::HashMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use glam::{DMat4, DVec4};
use scopecast_transport::igtl::{Content, Decoder, IgtlError, Message, Transform};

use super::chain::canonical_name;
use super::pose_store::{Pose, PoseStore, Sample};
use super::smoothing::{PoseFilter, Smoothing};
use crate::clock::SharedClock;
use crate::shutdown::{POLL_INTERVAL, Shutdown};

/// The pose store every tracker writes and the compositor reads.
pub type SharedPoses = Arc<ArcSwap<PoseStore>>;

/// How far a received matrix may be from rigid (column lengths, dot
/// products, determinant), for it to be taken as a pose.
pub const RIGID_TOLERANCE: f64 = 1e-3;
/// Back-off between connection attempts: from the first to the last, doubling.
pub const RETRY_FIRST: Duration = Duration::from_millis(250);
/// The longest back-off.
pub const RETRY_MAX: Duration = Duration::from_secs(4);

/// Which end of the connection the station is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackerRole {
    /// Connect to `ADDR:PORT` (PLUS Server, Slicer's OpenIGTLinkIF server).
    Client(String),
    /// Listen on `ADDR:PORT` for a tracker that pushes.
    Server(String),
}

/// What a pose's time is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoseTime {
    /// Arrival on the station's clock minus `latency_ns`.
    Arrival {
        /// The tracker's own delay, ns.
        latency_ns: u64,
    },
    /// The message's timestamp (the tracker's wall clock, assumed in sync
    /// with the station's, e.g. by PTP or NTP); arrival when it has none.
    Tracker,
}

/// One tracker.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerSettings {
    /// Its name, for logs and metrics.
    pub name: String,
    /// Client or server, and the address.
    pub role: TrackerRole,
    /// How poses are timed.
    pub time: PoseTime,
    /// Smoothing of each transform's poses.
    pub smoothing: Smoothing,
}

/// What a tracker connection counted.
#[derive(Debug, Default)]
pub struct TrackerStats {
    /// Messages decoded.
    pub messages: AtomicU64,
    /// Poses put into the store.
    pub poses: AtomicU64,
    /// Poses the tracker marked invalid (kept as invalid samples).
    pub invalid: AtomicU64,
    /// Messages refused: CRC, malformed, NaN, not rigid, too large.
    pub errors: AtomicU64,
    /// Connections made.
    pub connections: AtomicU64,
}

/// Why a decoded message gave no pose.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoseError {
    /// A matrix that is not a rotation and a translation.
    #[error("{name}: not a rigid transform (scaled, sheared or mirrored)")]
    NotRigid {
        /// The transform.
        name: String,
    },
}

fn pose_of(transform: &Transform, name: &str) -> Result<Pose, PoseError> {
    let c = transform.columns.map(|col| col.map(f64::from));
    let m = DMat4::from_cols(
        DVec4::new(c[0][0], c[0][1], c[0][2], 0.0),
        DVec4::new(c[1][0], c[1][1], c[1][2], 0.0),
        DVec4::new(c[2][0], c[2][1], c[2][2], 0.0),
        DVec4::new(c[3][0], c[3][1], c[3][2], 1.0),
    );
    Pose::from_matrix(m, RIGID_TOLERANCE).ok_or_else(|| PoseError::NotRigid { name: name.to_string() })
}

/// The samples a message carries, by `a_from_b` name, timed for `arrival_ns`
/// (station clock) with `wall_ns` the station's wall clock then.
pub fn samples_of(
    message: &Message,
    time: PoseTime,
    arrival_ns: u64,
    wall_ns: u64,
) -> Vec<Result<(String, Sample), PoseError>> {
    let time_ns = match (time, message.timestamp_ns) {
        (PoseTime::Arrival { latency_ns }, _) => arrival_ns.saturating_sub(latency_ns),
        // The message's age by the wall clocks, taken off its arrival (never in the future).
        (PoseTime::Tracker, Some(sent_ns)) => arrival_ns.saturating_sub(wall_ns.saturating_sub(sent_ns)),
        (PoseTime::Tracker, None) => arrival_ns,
    };
    let valid = message.marked_valid();
    let one = |name: &str, transform: &Transform| {
        let name = canonical_name(name);
        pose_of(transform, &name).map(|pose| (name, Sample { time_ns, pose, valid, arrival_ns }))
    };
    match &message.content {
        Content::Transform(t) | Content::Position(t) => vec![one(&message.device_name, t)],
        Content::TrackingData(tools) => tools.iter().map(|tool| one(&tool.name, &tool.transform)).collect(),
        Content::Status { .. } | Content::Other { .. } => Vec::new(),
    }
}

/// A running tracker connection.
pub struct TrackerLink {
    /// Its counters.
    pub stats: Arc<TrackerStats>,
    thread: JoinHandle<()>,
}

impl TrackerLink {
    /// Starts `settings`' connection thread, writing into `poses`, until `shutdown`.
    pub fn start(
        settings: TrackerSettings,
        poses: SharedPoses,
        clock: SharedClock,
        shutdown: Shutdown,
    ) -> std::io::Result<Self> {
        let stats = Arc::new(TrackerStats::default());
        let worker = Worker { settings, poses, clock, shutdown, stats: stats.clone() };
        let thread = std::thread::Builder::new().name("scopecast-tracker".into()).spawn(move || worker.run())?;
        Ok(Self { stats, thread })
    }

    /// Whether its thread ended (after the shutdown).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Its thread, for whoever joins the station's threads.
    pub fn into_thread(self) -> JoinHandle<()> {
        self.thread
    }
}

struct Worker {
    settings: TrackerSettings,
    poses: SharedPoses,
    clock: SharedClock,
    shutdown: Shutdown,
    stats: Arc<TrackerStats>,
}

impl Worker {
    fn run(self) {
        match self.settings.role.clone() {
            TrackerRole::Client(address) => self.run_client(&address),
            TrackerRole::Server(address) => self.run_server(&address),
        }
    }

    /// Sleeps `wait` in steps, returning early (false) on shutdown.
    fn pause(&self, wait: Duration) -> bool {
        let mut left = wait;
        while !left.is_zero() {
            if self.shutdown.is_triggered() {
                return false;
            }
            let step = left.min(POLL_INTERVAL);
            std::thread::sleep(step);
            left -= step;
        }
        !self.shutdown.is_triggered()
    }

    fn run_client(&self, address: &str) {
        let mut retry = RETRY_FIRST;
        let mut said_down = false;
        while !self.shutdown.is_triggered() {
            let connected = address
                .parse::<SocketAddr>()
                .map_err(std::io::Error::other)
                .and_then(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(1)));
            match connected {
                Ok(stream) => {
                    tracing::info!(tracker = %self.settings.name, %address, "tracker connected");
                    said_down = false;
                    retry = RETRY_FIRST;
                    self.serve(stream);
                    if self.shutdown.is_triggered() {
                        break;
                    }
                    tracing::warn!(tracker = %self.settings.name, %address, "tracker connection ended; reconnecting");
                }
                Err(e) => {
                    if !said_down {
                        tracing::warn!(tracker = %self.settings.name, %address, error = %e, "tracker unreachable; retrying");
                        said_down = true;
                    }
                    if !self.pause(retry) {
                        return;
                    }
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
    }

    fn run_server(&self, address: &str) {
        let listener = match TcpListener::bind(address).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(tracker = %self.settings.name, %address, error = %e, "cannot listen for the tracker");
                return;
            }
        };
        tracing::info!(tracker = %self.settings.name, %address, "waiting for the tracker to connect");
        while !self.shutdown.is_triggered() {
            match listener.accept() {
                Ok((stream, peer)) => {
                    tracing::info!(tracker = %self.settings.name, %peer, "tracker connected");
                    if stream.set_nonblocking(false).is_ok() {
                        self.serve(stream);
                    }
                    tracing::warn!(tracker = %self.settings.name, %peer, "tracker disconnected");
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if !self.pause(POLL_INTERVAL) {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(tracker = %self.settings.name, error = %e, "accept failed");
                    if !self.pause(RETRY_FIRST) {
                        return;
                    }
                }
            }
        }
    }

    /// Reads `stream` until it ends, breaks or the station stops.
    fn serve(&self, mut stream: TcpStream) {
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        if stream.set_read_timeout(Some(POLL_INTERVAL)).is_err() {
            return;
        }
        let mut decoder = Decoder::new();
        let mut filters: HashMap<String, PoseFilter> = HashMap::new();
        let mut buffer = vec![0u8; 64 * 1024];
        let mut errors_said = 0u64;
        while !self.shutdown.is_triggered() {
            let n = match stream.read(&mut buffer) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
                Err(_) => return,
            };
            let arrival_ns = self.clock.now_ns();
            let wall_ns = self.clock.wall_ns();
            let mut samples = Vec::new();
            for decoded in decoder.push(&buffer[..n]) {
                match decoded {
                    Ok(message) => {
                        self.stats.messages.fetch_add(1, Ordering::Relaxed);
                        for sample in samples_of(&message, self.settings.time, arrival_ns, wall_ns) {
                            match sample {
                                Ok((name, mut sample)) => {
                                    if sample.valid && self.settings.smoothing != Smoothing::Off {
                                        let filter = filters
                                            .entry(name.clone())
                                            .or_insert_with(|| PoseFilter::new(self.settings.smoothing));
                                        sample.pose = filter.apply(sample.time_ns, sample.pose);
                                    }
                                    samples.push((name, sample));
                                }
                                Err(e) => self.refused(&e.to_string(), &mut errors_said),
                            }
                        }
                    }
                    Err(e) => self.refused(&describe(&e), &mut errors_said),
                }
            }
            if !samples.is_empty() {
                let invalid = samples.iter().filter(|(_, s)| !s.valid).count() as u64;
                self.stats.poses.fetch_add(samples.len() as u64, Ordering::Relaxed);
                self.stats.invalid.fetch_add(invalid, Ordering::Relaxed);
                self.poses.rcu(|store| {
                    let mut next = PoseStore::clone(store);
                    for (name, sample) in &samples {
                        next.insert(name, *sample);
                    }
                    next
                });
            }
            if decoder.is_broken() {
                tracing::warn!(tracker = %self.settings.name, "the tracker's stream cannot be framed; dropping the connection");
                return;
            }
        }
    }

    /// Counts a refused message; logs the first ten, then every power of two.
    fn refused(&self, reason: &str, said: &mut u64) {
        let count = self.stats.errors.fetch_add(1, Ordering::Relaxed) + 1;
        if *said < 10 || count.is_power_of_two() {
            *said += 1;
            tracing::warn!(tracker = %self.settings.name, errors = count, "tracker message refused: {reason}");
        }
    }
}

fn describe(error: &IgtlError) -> String {
    error.to_string()
}

#[cfg(test)]
mod tests {
    use scopecast_transport::igtl::message::Message;

    use super::*;

    fn message(content: Content, metadata: Vec<(String, String)>) -> Message {
        Message {
            version: 2,
            device_name: "StylusToTracker".into(),
            timestamp_ns: Some(5_000_000_000),
            content,
            metadata,
        }
    }

    #[test]
    fn poses_are_named_a_from_b_timed_and_checked() {
        let moved = Transform { columns: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 2.0, 3.0]] };
        let got =
            samples_of(&message(Content::Transform(moved), Vec::new()), PoseTime::Arrival { latency_ns: 20 }, 1_000, 0);
        let (name, sample) = got[0].clone().expect("a pose");
        assert_eq!((name.as_str(), sample.time_ns, sample.valid), ("tracker_from_stylus", 980, true));
        assert_eq!(sample.pose.translation, glam::DVec3::new(1.0, 2.0, 3.0));
        // The tracker's time: sent at wall 5.000 s, arrived at wall 5.030 s → 30 ms before arrival.
        let got =
            samples_of(&message(Content::Transform(moved), Vec::new()), PoseTime::Tracker, 100_000_000, 5_030_000_000);
        assert_eq!(got[0].as_ref().expect("pose").1.time_ns, 70_000_000);
        let invalid = message(Content::Transform(moved), vec![("TransformStatus".into(), "INVALID".into())]);
        assert!(!samples_of(&invalid, PoseTime::Tracker, 1, 1)[0].as_ref().expect("kept").1.valid);
        let scaled = Transform { columns: [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0; 3]] };
        let got = samples_of(&message(Content::Transform(scaled), Vec::new()), PoseTime::Tracker, 1, 1);
        assert_eq!(got[0], Err(PoseError::NotRigid { name: "tracker_from_stylus".into() }));
    }
}
