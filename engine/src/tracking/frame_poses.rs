//! Each frame's tracked poses: every tracked model's chain evaluated at the
//! frame's capture time (minus the camera-versus-tracker latency), and the
//! watchdog: a model whose chain is stale, invalid or missing is hidden or
//! drawn as not tracked (`[tracking] when_stale`), never as if it were
//! right, with the reason in the stage status (status line, HUD), a gauge
//! of models not tracked, a counter of frames drawn so, and a timeline
//! record in the session recording at each change. It recovers by
//! itself when poses return. Time comes in with the frame. Pose-to-pixel
//! latency (a pose's arrival to the readback of the first frame composited
//! with it) is a histogram on `/metrics`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use glam::Mat4;

use super::chain::{Chain, ChainAt, Link};
use super::pose_store::{Alignment, Freshness, PoseStore};
use super::tracker_link::SharedPoses;
use crate::compositor::ModelPose;
use crate::config::WhenStale;
use crate::metrics::{Counter, Gauge, LatencyHistogram, MetricsRegistry};
use scopecast_transport::protocol::{Notice, PROTOCOL_VERSION};
use scopecast_transport::room_channels::{Announcer, Topic};

use crate::recorder::Recorder;
use crate::recorder::format::{FramePosesRecord, ModelPoseRecord, TimelineRecord};
use crate::scene::Scene;
use crate::stage_status::StageStatus;

/// The stage name the watchdog reports under.
pub const STAGE: &str = "tracking";

/// The tracked models and what they are evaluated against.
pub struct FramePoses {
    poses: SharedPoses,
    /// Chains by model name.
    chains: Vec<(String, Chain)>,
    freshness: Freshness,
    /// Camera delay minus tracker delay, ns (may be negative).
    video_minus_tracker_ns: i64,
    when_stale: WhenStale,
    alignment: Alignment,
    /// Each model's last tracked pose (for drawing it "not tracked" where it was).
    last: HashMap<String, Mat4>,
    stages: Arc<StageStatus>,
    not_tracked: Arc<Gauge>,
    frames_not_tracked: Arc<Counter>,
    /// The problems last said (model, link, kind), to say each change once.
    said: Vec<(String, String, &'static str)>,
    /// Where changes are also recorded (the session recording's timeline).
    recorder: Option<Arc<Recorder>>,
    /// Where every viewer page hears the state (the first frame's, then each change).
    announcer: Option<Announcer>,
    /// The first frame's state was announced.
    announced: bool,
    /// Pose-to-pixel latency: a pose's arrival to the end of the readback of
    /// the first frame composited with it.
    pose_to_pixel: Arc<LatencyHistogram>,
    /// Per tracked link, the arrival of the newest sample a frame rested on.
    counted_arrival: HashMap<String, u64>,
    /// Frames composited but not yet read back: (capture time, arrivals of
    /// the samples they are the first to use). At most `PENDING_FRAMES`.
    pending: VecDeque<(u64, Vec<u64>)>,
}

/// Frames whose readback is awaited for pose-to-pixel latency (more are
/// dropped oldest first: a compositor that never reads back loses figures,
/// not memory).
const PENDING_FRAMES: usize = 8;

impl FramePoses {
    /// Tracking of `chains` (model name, chain) against `poses`.
    pub fn new(
        poses: SharedPoses,
        chains: Vec<(String, Chain)>,
        freshness: Freshness,
        video_minus_tracker_ms: f64,
        when_stale: WhenStale,
        stages: Arc<StageStatus>,
        registry: &MetricsRegistry,
    ) -> Self {
        Self {
            poses,
            chains,
            freshness,
            video_minus_tracker_ns: (video_minus_tracker_ms * 1e6) as i64,
            when_stale,
            alignment: Alignment::CaptureTime,
            last: HashMap::new(),
            stages,
            not_tracked: registry.gauge(
                "scopecast_models_not_tracked",
                "Tracked models whose pose is stale, invalid or missing at the newest frame.",
                &[],
            ),
            frames_not_tracked: registry.counter(
                "scopecast_frames_with_untracked_models_total",
                "Frames composited with at least one tracked model not drawn as tracked.",
                &[],
            ),
            said: Vec::new(),
            recorder: None,
            announcer: None,
            announced: false,
            pose_to_pixel: registry.latency(
                "scopecast_pose_to_pixel_seconds",
                "From a tracker pose's arrival to the end of the readback of the first frame composited with it.",
                &[],
            ),
            counted_arrival: HashMap::new(),
            pending: VecDeque::new(),
        }
    }

    /// Which pose each frame gets (the default: the pose at its capture time).
    pub fn with_alignment(mut self, alignment: Alignment) -> Self {
        self.alignment = alignment;
        self
    }

    /// The frame captured at `capture_time_ns` was read back at `now_ns`:
    /// the pose-to-pixel latency of the samples it was the first to use.
    pub fn composited(&mut self, capture_time_ns: u64, now_ns: u64) {
        while let Some((capture, arrivals)) = self.pending.front() {
            if *capture > capture_time_ns {
                break;
            }
            if *capture == capture_time_ns {
                for arrival in arrivals {
                    self.pose_to_pixel.record_ns(now_ns.saturating_sub(*arrival));
                }
            }
            self.pending.pop_front();
        }
    }

    /// The pose-to-pixel latency histogram.
    pub fn pose_to_pixel(&self) -> &Arc<LatencyHistogram> {
        &self.pose_to_pixel
    }

    /// Notes, per tracked link, the sample a frame at `at_ns` rests on (the
    /// one after it when interpolating, else the newest) when it arrived
    /// after every sample counted before.
    fn note_first_uses(&mut self, store: &PoseStore, capture_time_ns: u64, at_ns: u64) {
        let mut arrivals = Vec::new();
        for (_, chain) in &self.chains {
            for link in &chain.links {
                let Link::Tracked { name, .. } = link else { continue };
                let newest = store.samples(name).last().copied();
                let used = match self.alignment {
                    Alignment::CaptureTime => store.samples(name).find(|s| s.time_ns > at_ns).copied().or(newest),
                    Alignment::Newest => newest,
                };
                let Some(sample) = used else { continue };
                let counted = self.counted_arrival.entry(name.clone()).or_insert(0);
                if sample.arrival_ns > *counted {
                    *counted = sample.arrival_ns;
                    arrivals.push(sample.arrival_ns);
                }
            }
        }
        if !arrivals.is_empty() {
            self.pending.push_back((capture_time_ns, arrivals));
            while self.pending.len() > PENDING_FRAMES {
                self.pending.pop_front();
            }
        }
    }

    /// Every viewer page also hears the state through `announcer`.
    pub fn with_announcer(mut self, announcer: Announcer) -> Self {
        self.announcer = Some(announcer);
        self
    }

    /// Changes also go into `recorder`'s open session as timeline records.
    pub fn with_recorder(mut self, recorder: Option<Arc<Recorder>>) -> Self {
        self.recorder = recorder;
        self
    }

    /// The poses for a frame of `scene` captured at `capture_time_ns`
    /// (station clock; `capture_wall_ms` Unix ms), by model index.
    pub fn for_frame(&mut self, scene: &Scene, capture_time_ns: u64, capture_wall_ms: u64) -> Vec<ModelPose> {
        let at_ns = capture_time_ns.saturating_add_signed(-self.video_minus_tracker_ns);
        let store = self.poses.load();
        let mut problems = Vec::new();
        let mut keys = Vec::new();
        self.note_first_uses(&store, capture_time_ns, at_ns);
        let poses: Vec<ModelPose> = scene
            .models
            .iter()
            .map(|model| {
                let Some((_, chain)) = self.chains.iter().find(|(name, _)| *name == model.name) else {
                    return ModelPose::AsScene;
                };
                match chain.at(&store, at_ns, self.freshness, self.alignment) {
                    ChainAt::Tracked(pose) => {
                        let matrix = pose.matrix().as_mat4();
                        self.last.insert(model.name.clone(), matrix);
                        ModelPose::Tracked(matrix)
                    }
                    why => {
                        problems.push(format!("{}: {}", model.name, words(&why)));
                        keys.push(key(&model.name, &why));
                        match (self.when_stale, self.last.get(&model.name)) {
                            (WhenStale::NotTracked, Some(last)) => ModelPose::NotTracked(*last),
                            _ => ModelPose::Hidden,
                        }
                    }
                }
            })
            .collect();
        self.not_tracked.set(problems.len() as f64);
        let now = if problems.is_empty() { None } else { Some(problems.join("; ")) };
        if !problems.is_empty() {
            self.frames_not_tracked.inc();
        }
        // Said when which models are untracked, or why, changes (not as an age grows).
        let changed = keys != self.said;
        if let Some(announcer) = &self.announcer
            && (changed || !self.announced)
        {
            self.announced = true;
            let notice = Notice::Tracking {
                v: PROTOCOL_VERSION,
                tracked: now.is_none(),
                message: now.clone().unwrap_or_default(),
            };
            announcer.send_modify(|announced| announced.set(Topic::Tracking, notice));
        }
        if changed {
            match &now {
                Some(text) => {
                    tracing::warn!("not tracked: {text}");
                    self.stages.fail(STAGE, format!("{text} (not drawn as tracked)"));
                }
                None => {
                    tracing::info!("tracking recovered: every tracked model has a current pose");
                    self.stages.recover(STAGE);
                }
            }
            if let Some(recorder) = &self.recorder {
                recorder.note(TimelineRecord::Tracking {
                    t_ns: capture_time_ns,
                    wall_ms: capture_wall_ms,
                    tracked: now.is_none(),
                    reason: now.clone().unwrap_or_default(),
                });
            }
            self.said = keys;
        }
        self.record(scene, &poses, capture_time_ns, capture_wall_ms);
        poses
    }

    /// Puts the tracked models' poses of this frame into the open recording
    /// (a re-composited replay draws them, and the marks on them, from these).
    fn record(&self, scene: &Scene, poses: &[ModelPose], capture_time_ns: u64, capture_wall_ms: u64) {
        let Some(recorder) = self.recorder.as_ref().filter(|r| r.is_recording()) else { return };
        let models = scene
            .models
            .iter()
            .zip(poses)
            .filter_map(|(model, pose)| {
                let (tracked, matrix) = match pose {
                    ModelPose::AsScene => return None,
                    ModelPose::Tracked(m) => (true, Some(m.to_cols_array())),
                    ModelPose::NotTracked(m) => (false, Some(m.to_cols_array())),
                    ModelPose::Hidden => (false, None),
                };
                Some(ModelPoseRecord { name: model.name.clone(), tracked, camera_from_model: matrix })
            })
            .collect();
        recorder.note_poses(FramePosesRecord { t_ns: capture_time_ns, wall_ms: capture_wall_ms, models });
    }
}

/// What identifies a problem across frames: the model, the link, the kind.
fn key(model: &str, why: &ChainAt) -> (String, String, &'static str) {
    let (link, kind) = match why {
        ChainAt::Tracked(_) => (String::new(), "tracked"),
        ChainAt::Stale { link, .. } => (link.clone(), "stale"),
        ChainAt::Invalid { link } => (link.clone(), "invalid"),
        ChainAt::Missing { link } => (link.clone(), "missing"),
    };
    (model.to_string(), link, kind)
}

/// Why a chain is not tracked, in words for the operator.
fn words(why: &ChainAt) -> String {
    match why {
        ChainAt::Tracked(_) => "tracked".into(),
        ChainAt::Stale { link, age_ns } => format!("{link} is {} ms old", age_ns / 1_000_000),
        ChainAt::Invalid { link } => format!("{link} is out of view (the tracker marks it invalid)"),
        ChainAt::Missing { link } if link == super::chain::REGISTRATION_LINK => {
            "not registered yet (collect the fiducials and accept a registration)".into()
        }
        ChainAt::Missing { link } => format!("no {link} received"),
    }
}

#[cfg(test)]
mod tests {
    use arc_swap::ArcSwap;
    use glam::{DQuat, DVec3};

    use super::*;
    use crate::tracking::chain::Link;
    use crate::tracking::pose_store::{Pose, PoseStore, Sample};

    /// Puts a `camera_from_liver` sample into the shared store, as a tracker thread does.
    fn put(poses: &SharedPoses, sample: Sample) {
        poses.rcu(|store| {
            let mut next = PoseStore::clone(store);
            next.insert("camera_from_liver", sample);
            next
        });
    }

    #[test]
    fn a_stale_pose_hides_the_model_says_why_and_recovers() {
        let poses: SharedPoses = Arc::new(ArcSwap::from_pointee(PoseStore::new()));
        let stages = Arc::new(StageStatus::new(0));
        let registry = MetricsRegistry::new();
        let chain = Chain { links: vec![Link::Tracked { name: "camera_from_liver".into(), inverted: false }] };
        let (announcer, announcements) = scopecast_transport::room_channels::announcements();
        let mut frame_poses = FramePoses::new(
            poses.clone(),
            vec![("liver".into(), chain)],
            Freshness { stale_after_ns: 200_000_000 },
            0.0,
            WhenStale::NotTracked,
            stages.clone(),
            &registry,
        )
        .with_announcer(announcer);
        let mut announcements = announcements;
        let heard = |a: &mut scopecast_transport::room_channels::Announcements| {
            a.borrow_and_update().get(Topic::Tracking).cloned()
        };
        let mut scene = Scene::default();
        scene.models = crate::scene::anatomy::demo_models();
        scene.models[0].name = "liver".into();
        // Nothing received: hidden, said.
        assert_eq!(frame_poses.for_frame(&scene, 1_000_000_000, 0)[0], ModelPose::Hidden);
        assert!(stages.failures().iter().any(|(s, text)| *s == STAGE && text.contains("no camera_from_liver")));
        assert!(
            matches!(heard(&mut announcements), Some(Notice::Tracking { tracked: false, message, .. }) if message.contains("liver"))
        );
        // A pose: tracked, recovered.
        let pose = Pose { rotation: DQuat::IDENTITY, translation: DVec3::new(0.0, 0.0, 90.0) };
        put(&poses, Sample { time_ns: 1_000_000_000, pose, valid: true, arrival_ns: 1_000_000_000 });
        let ModelPose::Tracked(m) = frame_poses.for_frame(&scene, 1_010_000_000, 0)[0] else { panic!("tracked") };
        assert_eq!(m.w_axis.z, 90.0);
        assert!(stages.failures().is_empty());
        assert!(
            matches!(heard(&mut announcements), Some(Notice::Tracking { tracked: true, .. })),
            "every page hears the recovery"
        );
        assert_eq!(
            frame_poses.for_frame(&scene, 1_010_000_000, 0)[1],
            ModelPose::AsScene,
            "untracked models as the scene says"
        );
        // Too old: drawn grey where it was, and said.
        assert_eq!(frame_poses.for_frame(&scene, 1_300_000_000, 0)[0], ModelPose::NotTracked(m));
        assert!(stages.failures()[0].1.contains("camera_from_liver is 300 ms old"), "{:?}", stages.failures());
        assert_eq!(
            registry.render_prometheus().lines().find(|l| l.starts_with("scopecast_models_not_tracked ")),
            Some("scopecast_models_not_tracked 1")
        );
    }

    #[test]
    fn pose_to_pixel_counts_each_sample_once_from_its_arrival_to_its_first_readback() {
        let poses: SharedPoses = Arc::new(ArcSwap::from_pointee(PoseStore::new()));
        let registry = MetricsRegistry::new();
        let chain = Chain { links: vec![Link::Tracked { name: "camera_from_liver".into(), inverted: false }] };
        let mut frame_poses = FramePoses::new(
            poses.clone(),
            vec![("liver".into(), chain)],
            Freshness { stale_after_ns: 200_000_000 },
            0.0,
            WhenStale::Hide,
            Arc::new(StageStatus::new(0)),
            &registry,
        );
        let mut scene = Scene::default();
        scene.models = crate::scene::anatomy::demo_models();
        scene.models[0].name = "liver".into();
        let pose = Pose { rotation: DQuat::IDENTITY, translation: DVec3::new(0.0, 0.0, 90.0) };
        let ms = 1_000_000;
        // Samples at 0 and 16 ms, arriving 20 ms after their time.
        for t in [1_000, 1_016] {
            put(&poses, Sample { time_ns: t * ms, pose, valid: true, arrival_ns: (t + 20) * ms });
        }
        // A frame captured at 1010 ms rests on the 1016 ms sample (arrived at 1036 ms), read back at 1050 ms.
        frame_poses.for_frame(&scene, 1_010 * ms, 0);
        frame_poses.composited(1_010 * ms, 1_050 * ms);
        // The next frame uses the same sample: not counted again.
        frame_poses.for_frame(&scene, 1_012 * ms, 0);
        frame_poses.composited(1_012 * ms, 1_060 * ms);
        let figures = frame_poses.pose_to_pixel().snapshot();
        assert_eq!(figures.count, 1);
        assert_eq!(figures.sum_ns, 14 * ms);
        // Readbacks that never come do not pile up.
        for i in 0..100u64 {
            let t = 1_100 + i;
            put(&poses, Sample { time_ns: t * ms, pose, valid: true, arrival_ns: t * ms });
            frame_poses.for_frame(&scene, (1_099 + i) * ms, 0);
        }
        assert!(frame_poses.pending.len() <= PENDING_FRAMES);
    }
}
