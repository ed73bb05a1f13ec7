//! The tracked phantom as the accuracy benches use it: the demo's phantom
//! file, lens and hand–eye file, its simulated tracker over a real
//! OpenIGTLink socket (60 Hz, [`TRACKER_LATENCY_MS`] + up to [`JITTER_MS`],
//! no noise) and the station's tracker connection and pose store; and the
//! dot detector that finds where things are drawn in a read-back frame.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use glam::DVec3;
use scopecast_calibration::CameraModel;
use scopecast_engine::clock::SharedClock;
use scopecast_engine::shutdown::Shutdown;
use scopecast_engine::source::phantom::{PhantomFile, PhantomPicture, ScopePath};
use scopecast_engine::tracking::chain::{Chain, Link};
use scopecast_engine::tracking::pose_store::{Pose, PoseStore};
use scopecast_engine::tracking::setup::{load_transform_file, pose_of_rows};
use scopecast_engine::tracking::simulated::{SimulatedTracker, SimulatedTrackerSettings, SimulatedTruth};
use scopecast_engine::tracking::smoothing::Smoothing;
use scopecast_engine::tracking::tracker_link::{PoseTime, SharedPoses, TrackerLink, TrackerRole, TrackerSettings};

/// The tracker's delay, ms, plus up to `JITTER_MS`.
pub const TRACKER_LATENCY_MS: f64 = 20.0;
/// Jitter on the tracker's delay, ms.
pub const JITTER_MS: f64 = 2.0;

/// The demo's phantom and where it lies.
pub struct Phantom {
    /// Its file.
    pub file: PhantomFile,
    /// Its picture, as the synthetic endoscope renders it.
    pub picture: Arc<PhantomPicture>,
    /// The hand–eye result.
    pub camera_from_scope: Pose,
    /// Where the phantom lies in the tracker's frame.
    pub tracker_from_phantom: Pose,
}

impl Phantom {
    /// The demo's (`demos/tracked-scope/phantom/`).
    pub fn demo() -> Self {
        let demo = crate::root().join("demos/tracked-scope/phantom");
        let file = PhantomFile::load(&demo.join("phantom.json")).unwrap_or_else(|e| panic!("{e}"));
        Self {
            picture: Arc::new(PhantomPicture::new(file.clone())),
            file,
            camera_from_scope: load_transform_file(&demo.join("camera_from_scope.json"))
                .unwrap_or_else(|e| panic!("{e}")),
            tracker_from_phantom: pose_of_rows(&[
                1.0, 0.0, 0.0, 40.0, 0.0, -1.0, 0.0, -20.0, 0.0, 0.0, -1.0, 900.0, 0.0, 0.0, 0.0, 1.0,
            ])
            .expect("rigid"),
        }
    }

    /// A model's chain on the phantom: camera ← scope ← tracker ← phantom.
    pub fn chain(&self) -> Chain {
        Chain {
            links: vec![
                Link::Fixed(self.camera_from_scope),
                Link::Tracked { name: "tracker_from_scope".into(), inverted: true },
                Link::Tracked { name: "tracker_from_phantom".into(), inverted: false },
            ],
        }
    }
}

/// The simulated tracker and the station's connection to it.
pub struct TrackedRig {
    /// The poses as the station receives them.
    pub poses: SharedPoses,
    shutdown: Shutdown,
    threads: Vec<JoinHandle<()>>,
}

impl TrackedRig {
    /// The tracker sends the scope on `path` over `phantom`; returns once 20 poses arrived.
    pub fn start(phantom: &Phantom, path: ScopePath, clock: &SharedClock) -> Self {
        let shutdown = Shutdown::new();
        let truth = SimulatedTruth {
            path,
            camera_from_scope: phantom.camera_from_scope,
            tracker_from_phantom: phantom.tracker_from_phantom,
            pointer: None,
        };
        let tracker = SimulatedTracker::start(
            SimulatedTrackerSettings {
                listen: "127.0.0.1:0".into(),
                latency_ms: TRACKER_LATENCY_MS,
                jitter_ms: JITTER_MS,
                ..Default::default()
            },
            truth,
            clock.clone(),
            shutdown.clone(),
        )
        .expect("the simulated tracker listens");
        let poses: SharedPoses = Arc::new(arc_swap::ArcSwap::from_pointee(PoseStore::new()));
        let link = TrackerLink::start(
            TrackerSettings {
                name: "simulated".into(),
                role: TrackerRole::Client(tracker.address.to_string()),
                time: PoseTime::Tracker,
                smoothing: Smoothing::Off,
            },
            poses.clone(),
            clock.clone(),
            shutdown.clone(),
        )
        .expect("the tracker connection starts");
        while link.stats.poses.load(Ordering::Relaxed) < 20 {
            std::thread::sleep(Duration::from_millis(10));
        }
        Self { poses, shutdown, threads: vec![link.into_thread(), tracker.into_thread()] }
    }

    /// Stops the tracker and the connection.
    pub fn stop(self) {
        self.shutdown.trigger();
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Where the phantom point `p` (mm) lands in OpenCV pixels through `camera`.
pub fn project(camera: &CameraModel, camera_from_phantom: &Pose, p: [f64; 3]) -> Option<[f64; 2]> {
    let q = camera_from_phantom.matrix().transform_point3(DVec3::from_array(p));
    camera.project(q.to_array()).ok()
}

/// Intensity-weighted centroid (OpenCV pixel coordinates) of `weight` over
/// the pixels within `radius` px of `around`; `None` when nothing weighs.
/// `weight` gets the pixel and the window's mid luminance.
pub fn centroid(
    rgba: &[u8],
    width: u32,
    height: u32,
    around: [f64; 2],
    radius: f64,
    weight: impl Fn(&[u8], f64) -> f64,
) -> Option<[f64; 2]> {
    let (x0, x1) =
        ((around[0] - radius).floor().max(0.0) as u32, ((around[0] + radius).ceil().max(0.0) as u32).min(width - 1));
    let (y0, y1) =
        ((around[1] - radius).floor().max(0.0) as u32, ((around[1] + radius).ceil().max(0.0) as u32).min(height - 1));
    let pixel = |x: u32, y: u32| &rgba[((y * width + x) * 4) as usize..][..4];
    // The window's brightest and darkest luminance set the dot's threshold.
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let l = luminance(pixel(x, y));
            (lo, hi) = (lo.min(l), hi.max(l));
        }
    }
    let middle = (lo + hi) / 2.0;
    let (mut sum, mut sx, mut sy) = (0.0, 0.0, 0.0);
    for y in y0..=y1 {
        for x in x0..=x1 {
            if (f64::from(x) - around[0]).hypot(f64::from(y) - around[1]) > radius {
                continue;
            }
            let w = weight(pixel(x, y), middle);
            sum += w;
            sx += w * f64::from(x);
            sy += w * f64::from(y);
        }
    }
    (sum > 0.0).then(|| [sx / sum, sy / sum])
}

fn luminance(p: &[u8]) -> f64 {
    0.2126 * f64::from(p[0]) + 0.7152 * f64::from(p[1]) + 0.0722 * f64::from(p[2])
}

/// Weight of a painted (dark) dot's pixel.
pub fn dark(p: &[u8], middle: f64) -> f64 {
    (middle - luminance(p)).max(0.0)
}

/// Weight of a green overlay pixel.
pub fn green(p: &[u8], _: f64) -> f64 {
    let g = f64::from(p[1]) - f64::from(p[0]).max(f64::from(p[2]));
    if g > 60.0 { g } else { 0.0 }
}

/// Weight of a magenta mark's pixel.
pub fn magenta(p: &[u8], _: f64) -> f64 {
    let m = f64::from(p[0]).min(f64::from(p[2])) - f64::from(p[1]);
    if m > 60.0 { m } else { 0.0 }
}
