//! Smoothing of one transform's poses, off by default: a first-order
//! low-pass (SlicerIGT's transform smoothing, cut-off 7.5 Hz by default) or
//! the 1€ filter (Casiez, Roussel, Vogel, "1€ Filter: A Simple Speed-based
//! Low-pass Filter for Noisy Input in Interactive Systems", CHI 2012): little
//! jitter at rest, little lag in motion. Both take the sample's time as an
//! input; the rotation is smoothed by slerp, the translation (mm) by lerp.

use std::f64::consts::TAU;

use super::pose_store::Pose;

/// The smoothing factor of a first-order low-pass with cut-off `cutoff_hz`
/// for a step of `dt_s`: α = 1 / (1 + τ/dt), τ = 1/(2π f_c) (Casiez 2012, eq. 3).
fn alpha(cutoff_hz: f64, dt_s: f64) -> f64 {
    let tau = 1.0 / (TAU * cutoff_hz);
    1.0 / (1.0 + tau / dt_s)
}

/// Which smoothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Smoothing {
    /// None: poses as received.
    Off,
    /// First-order low-pass.
    LowPass {
        /// Cut-off, Hz (SlicerIGT: 7.5).
        cutoff_hz: f64,
    },
    /// The 1€ filter.
    OneEuro {
        /// Cut-off at rest, Hz (1.0).
        min_cutoff_hz: f64,
        /// How fast the cut-off rises with speed, per mm/s (0.05).
        beta: f64,
        /// Cut-off of the speed estimate, Hz (1.0).
        speed_cutoff_hz: f64,
    },
}

/// A smoothing filter's state for one transform.
#[derive(Debug, Clone)]
pub struct PoseFilter {
    smoothing: Smoothing,
    /// The last output and its time, ns.
    last: Option<(u64, Pose)>,
    /// The 1€ filter's smoothed speeds: translation (mm/s) and rotation (rad/s).
    speeds: (f64, f64),
}

impl PoseFilter {
    /// A filter that has seen nothing yet.
    pub fn new(smoothing: Smoothing) -> Self {
        Self { smoothing, last: None, speeds: (0.0, 0.0) }
    }

    /// The smoothed pose for `pose` at `time_ns`. The first sample, and one
    /// not after the last, pass through (and restart the filter).
    pub fn apply(&mut self, time_ns: u64, pose: Pose) -> Pose {
        let out = match (self.smoothing, self.last) {
            (Smoothing::Off, _) | (_, None) => pose,
            (_, Some((t0, _))) if time_ns <= t0 => pose,
            (Smoothing::LowPass { cutoff_hz }, Some((t0, previous))) => {
                let dt = (time_ns - t0) as f64 / 1e9;
                previous.blend(&pose, alpha(cutoff_hz, dt))
            }
            (Smoothing::OneEuro { min_cutoff_hz, beta, speed_cutoff_hz }, Some((t0, previous))) => {
                let dt = (time_ns - t0) as f64 / 1e9;
                let speed = (pose.translation - previous.translation).length() / dt;
                let turn = previous.rotation.angle_between(pose.rotation) / dt;
                let a = alpha(speed_cutoff_hz, dt);
                self.speeds = (self.speeds.0 + a * (speed - self.speeds.0), self.speeds.1 + a * (turn - self.speeds.1));
                // The translation's speed drives the cut-off; a turn counts as the
                // arc it sweeps 100 mm out (an endoscope's working distance).
                let cutoff = min_cutoff_hz + beta * (self.speeds.0 + 100.0 * self.speeds.1);
                previous.blend(&pose, alpha(cutoff, dt))
            }
        };
        self.last = Some((time_ns, out));
        out
    }
}

#[cfg(test)]
mod tests {
    use glam::{DQuat, DVec3};

    use super::*;

    fn at(x: f64) -> Pose {
        Pose { rotation: DQuat::IDENTITY, translation: DVec3::new(x, 0.0, 0.0) }
    }

    /// Deterministic noise in ±amplitude (a fixed LCG, no dependency).
    fn noise(seed: &mut u64, amplitude: f64) -> f64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * amplitude
    }

    /// Jitter (standard deviation at rest, mm) and lag (mm behind a 50 mm/s
    /// motion after 1 s) of a filter, at 60 Hz with ±0.5 mm noise.
    fn jitter_and_lag(smoothing: Smoothing) -> (f64, f64) {
        let mut filter = PoseFilter::new(smoothing);
        let mut seed = 7;
        let period = 1_000_000_000 / 60;
        let mut rest = Vec::new();
        for i in 0..120u64 {
            let out = filter.apply(i * period, at(noise(&mut seed, 0.5)));
            if i >= 60 {
                rest.push(out.translation.x);
            }
        }
        let mean = rest.iter().sum::<f64>() / rest.len() as f64;
        let jitter = (rest.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / rest.len() as f64).sqrt();
        let mut lag = 0.0;
        for i in 120..180u64 {
            let truth = 50.0 * (i - 119) as f64 / 60.0;
            lag = truth - filter.apply(i * period, at(truth)).translation.x;
        }
        (jitter, lag)
    }

    #[test]
    fn the_filters_trade_jitter_for_lag_as_published() {
        let (raw_jitter, raw_lag) = jitter_and_lag(Smoothing::Off);
        let (lp_jitter, lp_lag) = jitter_and_lag(Smoothing::LowPass { cutoff_hz: 7.5 });
        let (euro_jitter, euro_lag) =
            jitter_and_lag(Smoothing::OneEuro { min_cutoff_hz: 1.0, beta: 0.05, speed_cutoff_hz: 1.0 });
        println!(
            "jitter at rest / lag at 50 mm/s (mm): off {raw_jitter:.3}/{raw_lag:.3}, low-pass {lp_jitter:.3}/{lp_lag:.3}, 1€ {euro_jitter:.3}/{euro_lag:.3}"
        );
        assert!(raw_lag.abs() < 1e-9 && raw_jitter > 0.25, "off passes through: {raw_jitter} {raw_lag}");
        // A 7.5 Hz low-pass at 60 Hz: less jitter, a lag of about v·τ = 50 mm/s × 21 ms ≈ 1 mm.
        assert!(lp_jitter < 0.8 * raw_jitter, "low-pass jitter {lp_jitter} vs {raw_jitter}");
        assert!((0.3..2.0).contains(&lp_lag), "low-pass lag {lp_lag} mm");
        // The 1€ filter: far less jitter at rest than the low-pass, and a bounded lag in motion.
        assert!(euro_jitter < 0.6 * lp_jitter, "1€ jitter {euro_jitter} vs low-pass {lp_jitter}");
        assert!(euro_lag < 3.0, "1€ lag {euro_lag} mm");
    }

    #[test]
    fn rotations_are_smoothed_on_the_sphere() {
        let mut filter = PoseFilter::new(Smoothing::LowPass { cutoff_hz: 7.5 });
        filter.apply(0, Pose::IDENTITY);
        let turned = Pose { rotation: DQuat::from_rotation_y(0.5), translation: DVec3::ZERO };
        let out = filter.apply(16_666_667, turned);
        let angle = out.rotation.angle_between(DQuat::IDENTITY);
        assert!(angle > 0.0 && angle < 0.5 && (out.rotation.length() - 1.0).abs() < 1e-12, "{angle}");
    }
}
