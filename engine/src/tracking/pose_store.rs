//! Tracker poses kept with their times, and asked for at a frame's capture
//! time: interpolated between the two samples around it (slerp for the
//! rotation, lerp for the translation), extrapolated at most one tracker
//! period past the newest (held there beyond), and stale once the newest is
//! older than the freshness limit. Sans IO and clock-free: samples
//! carry their own times (station clock, ns) and every question says when.
//!
//! Memory is bounded: each transform keeps its newest [`SAMPLES_KEPT`]
//! samples (older ones drop first), and at most [`MAX_TRANSFORMS`] names
//! are kept (a peer inventing names cannot grow it).

use std::collections::{HashMap, VecDeque};

use glam::{DMat4, DQuat, DVec3};

/// Samples kept per transform (at 60 Hz, about a second).
pub const SAMPLES_KEPT: usize = 64;
/// Transform names kept at most.
pub const MAX_TRANSFORMS: usize = 256;

/// A rigid pose: rotation then translation (mm), mapping the `from` frame
/// into the `to` frame of its transform.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    /// Unit rotation.
    pub rotation: DQuat,
    /// Translation, mm.
    pub translation: DVec3,
}

impl Pose {
    /// The identity.
    pub const IDENTITY: Self = Self { rotation: DQuat::IDENTITY, translation: DVec3::ZERO };

    /// The 4×4 matrix.
    pub fn matrix(&self) -> DMat4 {
        DMat4::from_rotation_translation(self.rotation, self.translation)
    }

    /// The pose of a rigid 4×4 matrix (its rotation part orthonormalised);
    /// `None` when it is not finite or not rigid within `tolerance` (the
    /// columns' lengths and dot products, and a determinant of +1).
    pub fn from_matrix(m: DMat4, tolerance: f64) -> Option<Self> {
        if !m.is_finite() {
            return None;
        }
        let (x, y, z) = (m.x_axis.truncate(), m.y_axis.truncate(), m.z_axis.truncate());
        let unit = |v: DVec3| (v.length() - 1.0).abs() <= tolerance;
        let orthogonal = x.dot(y).abs() <= tolerance && y.dot(z).abs() <= tolerance && z.dot(x).abs() <= tolerance;
        let right_handed = (x.cross(y).dot(z) - 1.0).abs() <= 3.0 * tolerance;
        let bottom = m.row(3);
        if !(unit(x) && unit(y) && unit(z) && orthogonal && right_handed && bottom == glam::DVec4::W) {
            return None;
        }
        let rotation = DQuat::from_mat3(&glam::DMat3::from_cols(x, y, z)).normalize();
        Some(Self { rotation, translation: m.w_axis.truncate() })
    }

    /// As nalgebra's isometry (the calibration crate's type).
    pub fn to_isometry(&self) -> nalgebra::Isometry3<f64> {
        let (q, t) = (self.rotation, self.translation);
        nalgebra::Isometry3::from_parts(
            nalgebra::Translation3::new(t.x, t.y, t.z),
            nalgebra::UnitQuaternion::from_quaternion(nalgebra::Quaternion::new(q.w, q.x, q.y, q.z)),
        )
    }

    /// From nalgebra's isometry.
    pub fn from_isometry(iso: &nalgebra::Isometry3<f64>) -> Self {
        let q = iso.rotation.quaternion();
        Self {
            rotation: DQuat::from_xyzw(q.i, q.j, q.k, q.w).normalize(),
            translation: DVec3::new(iso.translation.x, iso.translation.y, iso.translation.z),
        }
    }

    /// The inverse pose.
    pub fn inverse(&self) -> Self {
        let rotation = self.rotation.inverse();
        Self { rotation, translation: -(rotation * self.translation) }
    }

    /// `self ∘ other` (apply `other` first).
    pub fn then_after(&self, other: &Self) -> Self {
        Self {
            rotation: self.rotation * other.rotation,
            translation: self.rotation * other.translation + self.translation,
        }
    }

    /// The pose a fraction `t` (0..=1, or a little beyond to extrapolate) of
    /// the way from `self` to `other`: slerp and lerp.
    pub fn blend(&self, other: &Self, t: f64) -> Self {
        let rotation = if t <= 1.0 {
            self.rotation.slerp(other.rotation, t)
        } else {
            // Beyond the newest sample: the same rotation rate continued.
            let step = other.rotation * self.rotation.inverse();
            let (axis, angle) = step.to_axis_angle();
            (DQuat::from_axis_angle(axis, angle * (t - 1.0)) * other.rotation).normalize()
        };
        Self { rotation, translation: self.translation.lerp(other.translation, t) }
    }
}

/// One received pose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When the pose was true, station clock, ns (the tracker's time, or
    /// arrival minus its configured latency).
    pub time_ns: u64,
    /// The pose.
    pub pose: Pose,
    /// The tracker said it is valid (in view, tracking).
    pub valid: bool,
    /// When it reached the station (station clock, ns): for pose-to-pixel latency.
    pub arrival_ns: u64,
}

/// A transform at a moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PoseAt {
    /// Interpolated between samples, or extrapolated within one period.
    Tracked(Pose),
    /// The newest sample is older than allowed at that moment.
    Stale {
        /// How old the newest sample was, ns.
        age_ns: u64,
    },
    /// The tracker reports it invalid (out of view) at that moment.
    Invalid,
    /// Nothing was ever received under that name.
    Missing,
}

/// How far poses may be stretched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// A transform whose newest sample is older than this at the asked time
    /// is stale, ns (default 200 ms).
    pub stale_after_ns: u64,
}

/// Which pose a frame gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Alignment {
    /// The pose at the frame's capture time: interpolated between the two
    /// samples around it, extrapolated at most one period (the default).
    #[default]
    CaptureTime,
    /// The newest pose received, whatever its time (what a station without
    /// time alignment shows; for comparison).
    Newest,
}

/// Poses by transform name (`a_from_b`).
#[derive(Debug, Clone, Default)]
pub struct PoseStore {
    transforms: HashMap<String, VecDeque<Sample>>,
    /// Transforms set at the station, not by a tracker (an accepted
    /// registration): true at every time, never stale; a tracker sending the
    /// same name does not change them.
    fixed: HashMap<String, Pose>,
    /// Samples refused: the store was full of other names.
    pub refused_names: u64,
}

impl PoseStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `sample` of `name`. Samples arriving out of order are put in
    /// place; one at the same time as a kept one replaces it.
    pub fn insert(&mut self, name: &str, sample: Sample) {
        if !self.transforms.contains_key(name) && self.transforms.len() >= MAX_TRANSFORMS {
            self.refused_names += 1;
            return;
        }
        let samples = self.transforms.entry(name.to_string()).or_default();
        let at = samples.partition_point(|s| s.time_ns < sample.time_ns);
        if samples.get(at).is_some_and(|s| s.time_ns == sample.time_ns) {
            samples[at] = sample;
        } else {
            samples.insert(at, sample);
        }
        while samples.len() > SAMPLES_KEPT {
            samples.pop_front();
        }
    }

    /// Sets `name` to `pose` at every time (an accepted registration).
    pub fn set_fixed(&mut self, name: &str, pose: Pose) {
        self.fixed.insert(name.to_string(), pose);
    }

    /// `name`'s fixed pose, if it was set.
    pub fn fixed(&self, name: &str) -> Option<Pose> {
        self.fixed.get(name).copied()
    }

    /// The names received so far.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.transforms.keys().map(String::as_str)
    }

    /// `name`'s kept samples, oldest first.
    pub fn samples(&self, name: &str) -> impl Iterator<Item = &Sample> {
        self.transforms.get(name).into_iter().flatten()
    }

    /// `name` for a frame at `time_ns`, as `alignment` says.
    pub fn aligned(&self, name: &str, time_ns: u64, freshness: Freshness, alignment: Alignment) -> PoseAt {
        match alignment {
            Alignment::CaptureTime => self.at(name, time_ns, freshness),
            Alignment::Newest => self.newest(name, time_ns, freshness),
        }
    }

    /// `name`'s newest sample as it is, whatever its time (stale when older
    /// than `freshness` allows at `time_ns`).
    pub fn newest(&self, name: &str, time_ns: u64, freshness: Freshness) -> PoseAt {
        if let Some(pose) = self.fixed(name) {
            return PoseAt::Tracked(pose);
        }
        let Some(newest) = self.transforms.get(name).and_then(|s| s.back()) else { return PoseAt::Missing };
        let age_ns = time_ns.saturating_sub(newest.time_ns);
        match (age_ns > freshness.stale_after_ns, newest.valid) {
            (true, _) => PoseAt::Stale { age_ns },
            (false, false) => PoseAt::Invalid,
            (false, true) => PoseAt::Tracked(newest.pose),
        }
    }

    /// `name` at `time_ns`.
    pub fn at(&self, name: &str, time_ns: u64, freshness: Freshness) -> PoseAt {
        if let Some(pose) = self.fixed(name) {
            return PoseAt::Tracked(pose);
        }
        let Some(samples) = self.transforms.get(name) else { return PoseAt::Missing };
        let Some(newest) = samples.back() else { return PoseAt::Missing };
        let age_ns = time_ns.saturating_sub(newest.time_ns);
        if age_ns > freshness.stale_after_ns {
            return PoseAt::Stale { age_ns };
        }
        let after = samples.partition_point(|s| s.time_ns <= time_ns);
        match (after.checked_sub(1).and_then(|i| samples.get(i)), samples.get(after)) {
            // Between two samples (or exactly on one).
            (Some(before), Some(next)) => {
                if !(before.valid && next.valid) {
                    return PoseAt::Invalid;
                }
                let span = (next.time_ns - before.time_ns) as f64;
                let t = if span > 0.0 { (time_ns - before.time_ns) as f64 / span } else { 0.0 };
                PoseAt::Tracked(before.pose.blend(&next.pose, t))
            }
            // Past the newest: extrapolate at most one period (the last interval).
            (Some(newest), None) => {
                if !newest.valid {
                    return PoseAt::Invalid;
                }
                let Some(previous) = after.checked_sub(2).and_then(|i| samples.get(i)) else {
                    return PoseAt::Tracked(newest.pose);
                };
                let period = newest.time_ns - previous.time_ns;
                if time_ns == newest.time_ns || !previous.valid || period == 0 {
                    return PoseAt::Tracked(newest.pose);
                }
                // At most one period ahead; later (a late sample, still within
                // `stale_after_ns`) the pose holds there rather than flying on.
                let ahead = (time_ns - newest.time_ns).min(period);
                let t = 1.0 + ahead as f64 / period as f64;
                PoseAt::Tracked(previous.pose.blend(&newest.pose, t))
            }
            // Before the oldest kept sample: a frame older than the history.
            (None, Some(oldest)) => {
                if oldest.valid {
                    PoseAt::Tracked(oldest.pose)
                } else {
                    PoseAt::Invalid
                }
            }
            (None, None) => PoseAt::Missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRESH: Freshness = Freshness { stale_after_ns: 200_000_000 };

    fn pose(x_mm: f64, degrees_about_z: f64) -> Pose {
        Pose { rotation: DQuat::from_rotation_z(degrees_about_z.to_radians()), translation: DVec3::new(x_mm, 0.0, 0.0) }
    }

    fn sample(ms: u64, x_mm: f64, degrees: f64) -> Sample {
        Sample { time_ns: ms * 1_000_000, pose: pose(x_mm, degrees), valid: true, arrival_ns: ms * 1_000_000 }
    }

    #[test]
    fn a_fixed_pose_holds_at_every_time_and_a_tracker_cannot_change_it() {
        let mut store = PoseStore::new();
        assert_eq!(store.at("reference_from_model", 5, FRESH), PoseAt::Missing);
        store.set_fixed("reference_from_model", pose(7.0, 30.0));
        store.insert("reference_from_model", sample(10, 99.0, 0.0));
        for time_ns in [0, 10_000_000, 3_600_000_000_000] {
            assert_eq!(store.at("reference_from_model", time_ns, FRESH), PoseAt::Tracked(pose(7.0, 30.0)));
            assert_eq!(store.newest("reference_from_model", time_ns, FRESH), PoseAt::Tracked(pose(7.0, 30.0)));
        }
    }

    fn tracked(at: PoseAt) -> Pose {
        match at {
            PoseAt::Tracked(p) => p,
            other => panic!("not tracked: {other:?}"),
        }
    }

    #[test]
    fn a_frame_between_two_samples_gets_the_interpolated_pose() {
        let mut store = PoseStore::new();
        store.insert("scope_from_tracker", sample(100, 0.0, 0.0));
        store.insert("scope_from_tracker", sample(116, 16.0, 32.0));
        let p = tracked(store.at("scope_from_tracker", 104_000_000, FRESH));
        assert!((p.translation.x - 4.0).abs() < 1e-9);
        assert!((p.rotation.to_euler(glam::EulerRot::ZYX).0.to_degrees() - 8.0).abs() < 1e-9);
    }

    #[test]
    fn extrapolation_is_one_period_at_most_then_held_until_stale() {
        let mut store = PoseStore::new();
        store.insert("t", sample(100, 0.0, 0.0));
        store.insert("t", sample(116, 16.0, 10.0));
        let p = tracked(store.at("t", 124_000_000, FRESH));
        assert!((p.translation.x - 24.0).abs() < 1e-9, "{p:?}");
        assert!((p.rotation.to_euler(glam::EulerRot::ZYX).0.to_degrees() - 15.0).abs() < 1e-6);
        // A late sample (40 ms after the newest, a 16 ms period): held one period ahead.
        let held = tracked(store.at("t", 156_000_000, FRESH));
        assert!((held.translation.x - 32.0).abs() < 1e-9, "{held:?}");
        assert!(matches!(store.at("t", 400_000_000, FRESH), PoseAt::Stale { age_ns: 284_000_000 }));
        assert_eq!(store.at("other", 100_000_000, FRESH), PoseAt::Missing);
    }

    #[test]
    fn invalid_samples_and_out_of_order_arrivals() {
        let mut store = PoseStore::new();
        store.insert("t", sample(116, 16.0, 0.0));
        store.insert("t", sample(100, 0.0, 0.0));
        assert!((tracked(store.at("t", 108_000_000, FRESH)).translation.x - 8.0).abs() < 1e-9, "sorted");
        store.insert("t", Sample { valid: false, ..sample(132, 32.0, 0.0) });
        assert_eq!(store.at("t", 120_000_000, FRESH), PoseAt::Invalid);
        assert_eq!(store.at("t", 132_000_000, FRESH), PoseAt::Invalid);
    }

    #[test]
    fn memory_is_bounded_whatever_arrives() {
        let mut store = PoseStore::new();
        for i in 0..1000 {
            store.insert("t", sample(i, 0.0, 0.0));
            store.insert(&format!("name{i}"), sample(i, 0.0, 0.0));
        }
        assert_eq!(store.transforms["t"].len(), SAMPLES_KEPT);
        assert_eq!(store.transforms.len(), MAX_TRANSFORMS);
        assert!(store.refused_names > 0);
    }

    #[test]
    fn rigid_matrices_only() {
        let p = pose(5.0, 30.0);
        let back = Pose::from_matrix(p.matrix(), 1e-6).expect("rigid");
        assert!((back.translation - p.translation).length() < 1e-9 && back.rotation.angle_between(p.rotation) < 1e-9);
        let scaled = p.matrix() * DMat4::from_scale(DVec3::splat(1.1));
        assert_eq!(Pose::from_matrix(scaled, 1e-3), None, "a scaled matrix is not a pose");
        let mirrored = DMat4::from_scale(DVec3::new(1.0, 1.0, -1.0));
        assert_eq!(Pose::from_matrix(mirrored, 1e-3), None, "a reflection is not a pose");
        let composed = p.then_after(&p.inverse());
        assert!(composed.translation.length() < 1e-9 && composed.rotation.angle_between(DQuat::IDENTITY) < 1e-9);
    }
}
