//! The built-in simulated tracker of the tracked phantom: an OpenIGTLink
//! server, as PLUS Server is, that publishes the scope's and the phantom's
//! poses along the synthetic endoscope's scripted path (`ScopePath`), with a
//! rate, a latency, arrival jitter, pose noise and dropouts. The station reads
//! it like any tracker: over a real socket, through the same decoder.
//!
//! Messages: TRANSFORM, header version 2, PLUS names (`ScopeToTracker` =
//! `tracker_from_scope`, `PhantomToTracker` = `tracker_from_phantom`),
//! `TransformStatus = OK` metadata, timestamped with the sample's time on the
//! wall clock (so the station can align poses with frames), sent `latency`
//! (+ up to `jitter`) after that time. A dropped sample is not sent, as PLUS
//! sends valid transforms only.

use std::collections::VecDeque;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use glam::{DQuat, DVec3};
use scopecast_transport::igtl::message::encode;
use scopecast_transport::igtl::{Content, Message, Transform};

use super::pose_store::Pose;
use crate::clock::SharedClock;
use crate::shutdown::Shutdown;
use crate::source::phantom::ScopePath;

/// How the simulated tracker behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedTrackerSettings {
    /// `ADDR:PORT` to listen on (port 0: any free port).
    pub listen: String,
    /// Samples per second.
    pub rate_hz: f64,
    /// Delay from a sample's time to its sending, ms.
    pub latency_ms: f64,
    /// Up to this much more delay, uniformly drawn per sample, ms.
    pub jitter_ms: f64,
    /// Standard deviation of the position noise, per axis, mm.
    pub noise_mm: f64,
    /// Standard deviation of the rotation noise, degrees.
    pub noise_deg: f64,
    /// Probability that a sample is not sent.
    pub dropout: f64,
    /// Seed of the noise and the dropouts.
    pub seed: u64,
}

impl Default for SimulatedTrackerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:18944".into(),
            rate_hz: 60.0,
            latency_ms: 20.0,
            jitter_ms: 0.0,
            noise_mm: 0.0,
            noise_deg: 0.0,
            dropout: 0.0,
            seed: 1,
        }
    }
}

/// Where everything really is: the scope's path over the phantom, the
/// hand–eye transform, the phantom's place in the tracker's frame and, when
/// there is one, the tracked pointer's tour of the fiducials.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedTruth {
    /// The scope's path.
    pub path: ScopePath,
    /// The camera's frame from the scope marker's (hand–eye).
    pub camera_from_scope: Pose,
    /// The phantom's frame in the tracker's.
    pub tracker_from_phantom: Pose,
    /// A pointer touching points on the phantom in turn (`PointerToTracker`).
    pub pointer: Option<PointerTour>,
}

/// A tracked pointer's tour: its tip rests on each stop (phantom frame, mm)
/// for `dwell_ns`, then is lifted 10 mm and carried to the next in
/// `travel_ns`, from `start_ns` (station clock) on, round and round. The
/// pointer leans 20° about its `x` axis; its tip is `tip_in_pointer` (what a
/// pivot calibration finds).
#[derive(Debug, Clone, PartialEq)]
pub struct PointerTour {
    /// Where the tip rests, phantom frame, mm.
    pub stops_in_phantom: Vec<DVec3>,
    /// The tip in the pointer's frame, mm.
    pub tip_in_pointer: DVec3,
    /// Time at each stop, ns.
    pub dwell_ns: u64,
    /// Time between stops, ns.
    pub travel_ns: u64,
    /// When the tour begins (at the first stop), station clock ns.
    pub start_ns: u64,
    /// First the pointer pivots about its tip on the first stop this long
    /// (a live pivot calibration), ns; 0: none.
    pub pivot_ns: u64,
}

impl PointerTour {
    /// Where the tip is at `time_ns`, phantom frame, mm.
    pub fn tip_in_phantom(&self, time_ns: u64) -> DVec3 {
        let n = self.stops_in_phantom.len().max(1) as u64;
        let leg = (self.dwell_ns + self.travel_ns).max(1);
        let since = time_ns.saturating_sub(self.start_ns).saturating_sub(self.pivot_ns);
        let index = ((since / leg) % n) as usize;
        let within = since % leg;
        let here = self.stops_in_phantom.get(index).copied().unwrap_or(DVec3::ZERO);
        if within < self.dwell_ns {
            return here;
        }
        let next = self.stops_in_phantom.get((index + 1) % n as usize).copied().unwrap_or(here);
        let f = (within - self.dwell_ns) as f64 / self.travel_ns.max(1) as f64;
        // Lifted off the surface (towards the scope, -z) on the way.
        here.lerp(next, f) - DVec3::Z * 10.0 * (std::f64::consts::PI * f).sin()
    }

    /// `phantom_from_pointer` at `time_ns`.
    pub fn phantom_from_pointer(&self, time_ns: u64) -> Pose {
        let since = time_ns.saturating_sub(self.start_ns);
        let rotation = if since < self.pivot_ns {
            // Pivoting: the shaft sweeps a cone 15 to 35 degrees off the vertical, the tip in place.
            let t = since as f64 / 1e9;
            let lean = (25.0 + 10.0 * (std::f64::consts::TAU * 0.9 * t).sin()).to_radians();
            DQuat::from_rotation_z(std::f64::consts::TAU * 0.4 * t) * DQuat::from_rotation_x(lean)
        } else {
            DQuat::from_rotation_x(20f64.to_radians())
        };
        Pose { rotation, translation: self.tip_in_phantom(time_ns) - rotation * self.tip_in_pointer }
    }
}

impl SimulatedTruth {
    /// `tracker_from_scope` at `time_ns`: tracker ← phantom ← camera ← scope.
    pub fn tracker_from_scope(&self, time_ns: u64) -> Pose {
        self.tracker_from_phantom
            .then_after(&self.path.phantom_from_camera(time_ns))
            .then_after(&self.camera_from_scope)
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a small seeded generator.
struct Noise(u64);

impl Noise {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u = self.uniform().max(f64::MIN_POSITIVE);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
    }

    fn perturb(&mut self, pose: Pose, sigma_mm: f64, sigma_deg: f64) -> Pose {
        if sigma_mm == 0.0 && sigma_deg == 0.0 {
            return pose;
        }
        let shift = DVec3::new(self.normal(), self.normal(), self.normal()) * sigma_mm;
        let axis = DVec3::new(self.normal(), self.normal(), self.normal()).normalize_or(DVec3::X);
        let turn = DQuat::from_axis_angle(axis, self.normal() * sigma_deg.to_radians());
        Pose { rotation: (turn * pose.rotation).normalize(), translation: pose.translation + shift }
    }
}

/// A sample waiting for its sending time.
struct Pending {
    send_ns: u64,
    bytes: Vec<u8>,
}

/// The running simulated tracker.
pub struct SimulatedTracker {
    /// The address it listens on.
    pub address: SocketAddr,
    thread: JoinHandle<()>,
}

impl SimulatedTracker {
    /// Listens on `settings.listen` and publishes `truth` until `shutdown`.
    pub fn start(
        settings: SimulatedTrackerSettings,
        truth: SimulatedTruth,
        clock: SharedClock,
        shutdown: Shutdown,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(&settings.listen)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let thread = std::thread::Builder::new()
            .name("scopecast-simulated-tracker".into())
            .spawn(move || publish(listener, settings, truth, clock, shutdown))?;
        tracing::info!("simulated tracker: OpenIGTLink server on {address}");
        Ok(Self { address, thread })
    }

    /// Its thread, for whoever joins the station's threads.
    pub fn into_thread(self) -> JoinHandle<()> {
        self.thread
    }
}

/// The TRANSFORM message of `name` = `pose` at `time_ns` (station clock),
/// stamped on the wall clock (`wall_minus_station_ns` apart).
fn transform_message(name: &str, pose: &Pose, time_ns: u64, wall_minus_station_ns: i128) -> Vec<u8> {
    let m = pose.matrix();
    let column = |c: usize| [m.col(c).x as f32, m.col(c).y as f32, m.col(c).z as f32];
    let wall_ns = (i128::from(time_ns) + wall_minus_station_ns).max(0) as u64;
    encode(&Message {
        version: 2,
        device_name: name.into(),
        timestamp_ns: Some(wall_ns),
        content: Content::Transform(Transform { columns: [column(0), column(1), column(2), column(3)] }),
        metadata: vec![("TransformStatus".into(), "OK".into())],
    })
}

fn publish(
    listener: TcpListener,
    settings: SimulatedTrackerSettings,
    truth: SimulatedTruth,
    clock: SharedClock,
    shutdown: Shutdown,
) {
    let period_ns = (1e9 / settings.rate_hz.clamp(1.0, 1000.0)) as u64;
    let latency_ns = (settings.latency_ms.max(0.0) * 1e6) as u64;
    let jitter_ns = settings.jitter_ms.max(0.0) * 1e6;
    let mut noise = Noise(settings.seed);
    let mut clients: Vec<TcpStream> = Vec::new();
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut next_sample_ns = clock.now_ns();
    while !shutdown.is_triggered() {
        while let Ok((stream, peer)) = listener.accept() {
            tracing::info!("simulated tracker: {peer} connected");
            let _ = stream.set_nodelay(true);
            let _ = stream.set_write_timeout(Some(Duration::from_millis(50)));
            clients.push(stream);
        }
        let now_ns = clock.now_ns();
        while next_sample_ns <= now_ns {
            let t = next_sample_ns;
            next_sample_ns += period_ns;
            if noise.uniform() < settings.dropout {
                continue;
            }
            let wall_minus_station_ns = i128::from(clock.wall_ns()) - i128::from(clock.now_ns());
            let scope = noise.perturb(truth.tracker_from_scope(t), settings.noise_mm, settings.noise_deg);
            let phantom = noise.perturb(truth.tracker_from_phantom, settings.noise_mm, settings.noise_deg);
            let mut bytes = transform_message("ScopeToTracker", &scope, t, wall_minus_station_ns);
            bytes.extend(transform_message("PhantomToTracker", &phantom, t, wall_minus_station_ns));
            if let Some(tour) = &truth.pointer {
                let pointer = truth.tracker_from_phantom.then_after(&tour.phantom_from_pointer(t));
                let pointer = noise.perturb(pointer, settings.noise_mm, settings.noise_deg);
                bytes.extend(transform_message("PointerToTracker", &pointer, t, wall_minus_station_ns));
            }
            let send_ns = t + latency_ns + (noise.uniform() * jitter_ns) as u64;
            // Jitter may reorder samples in flight, as a network would.
            let at = pending.partition_point(|p| p.send_ns <= send_ns);
            pending.insert(at, Pending { send_ns, bytes });
            // Bounded: a second of samples at most (a station that stopped reading loses the oldest).
            while pending.len() > settings.rate_hz as usize + 1 {
                pending.pop_front();
            }
        }
        while pending.front().is_some_and(|p| p.send_ns <= now_ns) {
            let Some(due) = pending.pop_front() else { break };
            clients.retain_mut(|client| client.write_all(&due.bytes).is_ok());
        }
        let next_ns = pending.front().map_or(next_sample_ns, |p| p.send_ns.min(next_sample_ns));
        let wake_ns = next_ns.min(clock.now_ns() + 5_000_000);
        clock.sleep_until_ns(wake_ns);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::source::phantom::PathShape;

    #[test]
    fn the_scope_seen_from_the_phantom_is_the_path() {
        let truth = SimulatedTruth {
            path: ScopePath { speed_mm_s: 50.0, radius_mm: 15.0, distance_mm: 90.0, shape: PathShape::Circle },
            camera_from_scope: Pose {
                rotation: DQuat::from_rotation_z(0.4),
                translation: DVec3::new(4.0, -2.0, -180.0),
            },
            tracker_from_phantom: Pose {
                rotation: DQuat::from_rotation_x(std::f64::consts::PI),
                translation: DVec3::new(40.0, -20.0, 900.0),
            },
            pointer: None,
        };
        let t = 2_345_000_000;
        // What the station composes: camera ← scope ← tracker ← phantom.
        let camera_from_phantom = truth
            .camera_from_scope
            .then_after(&truth.tracker_from_scope(t).inverse())
            .then_after(&truth.tracker_from_phantom);
        let expected = truth.path.camera_from_phantom(t);
        assert!((camera_from_phantom.translation - expected.translation).length() < 1e-9);
        assert!(camera_from_phantom.matrix().abs_diff_eq(expected.matrix(), 1e-9));
    }

    #[test]
    fn it_publishes_over_a_socket_at_its_rate_with_its_dropouts_and_noise() {
        use std::io::Read;

        use crate::clock::SystemClock;
        use scopecast_transport::igtl::Decoder;

        let clock: SharedClock = Arc::new(SystemClock::new());
        let shutdown = Shutdown::new();
        let truth = SimulatedTruth {
            // A scope at rest: at 0 mm/s it stays at (15, 0, -90) over the phantom.
            path: ScopePath { speed_mm_s: 0.0, radius_mm: 15.0, distance_mm: 90.0, shape: PathShape::Circle },
            camera_from_scope: Pose::IDENTITY,
            tracker_from_phantom: Pose::IDENTITY,
            pointer: None,
        };
        let settings = SimulatedTrackerSettings {
            listen: "127.0.0.1:0".into(),
            rate_hz: 200.0,
            latency_ms: 5.0,
            jitter_ms: 0.0,
            noise_mm: 0.5,
            noise_deg: 0.0,
            dropout: 0.5,
            seed: 3,
        };
        let tracker = SimulatedTracker::start(settings, truth, clock.clone(), shutdown.clone()).expect("listens");
        let mut stream = TcpStream::connect(tracker.address).expect("connects");
        stream.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
        let mut decoder = Decoder::new();
        let mut messages = Vec::new();
        let mut buffer = [0u8; 4096];
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(1) {
            if let Ok(n) = stream.read(&mut buffer) {
                messages.extend(decoder.push(&buffer[..n]).into_iter().map(|m| m.expect("a well-formed message")));
            }
        }
        shutdown.trigger();
        let _ = tracker.into_thread().join();
        let scope: Vec<&Message> = messages.iter().filter(|m| m.device_name == "ScopeToTracker").collect();
        let phantom = messages.iter().filter(|m| m.device_name == "PhantomToTracker").count();
        // 200 Hz for about a second, half of the samples lost.
        assert!((60..=140).contains(&scope.len()), "{} scope poses", scope.len());
        assert_eq!(scope.len(), phantom, "both poses of a sample travel together");
        assert!(scope.iter().all(|m| m.version == 2 && m.marked_valid()));
        assert!(scope.windows(2).all(|w| w[0].timestamp_ns < w[1].timestamp_ns), "timestamps in order");
        let x: Vec<f64> = scope
            .iter()
            .map(|m| match &m.content {
                Content::Transform(t) => f64::from(t.columns[3][0]),
                other => panic!("not a TRANSFORM: {other:?}"),
            })
            .collect();
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let sd = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
        assert!((mean - 15.0).abs() < 0.3 && (0.3..0.7).contains(&sd), "x: mean {mean} mm, sd {sd} mm");
    }

    #[test]
    fn noise_has_its_standard_deviation() {
        let mut noise = Noise(7);
        let samples: Vec<f64> = (0..20_000).map(|_| noise.normal()).collect();
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        let sd = (samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / samples.len() as f64).sqrt();
        assert!(mean.abs() < 0.03 && (sd - 1.0).abs() < 0.03, "mean {mean}, sd {sd}");
    }
}
