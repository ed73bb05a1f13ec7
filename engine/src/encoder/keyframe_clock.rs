//! Keyframes by capture time (issue 20): a keyframe is due when
//! `keyframe_interval_s` of capture time has passed since the last one, so a
//! station that reaches 20 of its nominal 60 fps still sends one every
//! second (counted in nominal frames, 60 frames took 2.7–2.9 s there, and a
//! joining or recovering viewer waited that long). The encoders' own GOP is
//! set to [`BACKSTOP`] times the nominal interval, only a backstop: the
//! keyframes come from here. Any keyframe (a viewer's request, a scene cut)
//! restarts the interval. Sans IO: capture times come in with the frames.

/// The encoder's own GOP, in nominal keyframe intervals (a backstop should
/// the clock never be asked).
pub const BACKSTOP: u32 = 4;

/// When the next keyframe of one layer is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyframeClock {
    interval_ns: u64,
    /// Capture time of the last keyframe, ns; `None` before the first.
    last_ns: Option<u64>,
}

impl KeyframeClock {
    /// A keyframe every `interval_s` of capture time (at least 1 ms).
    pub fn new(interval_s: f64) -> Self {
        let interval_ns = (interval_s * 1e9).clamp(1e6, u64::MAX as f64) as u64;
        Self { interval_ns, last_ns: None }
    }

    /// Whether the frame captured at `capture_ns` must be a keyframe.
    pub fn due(&self, capture_ns: u64) -> bool {
        self.last_ns.is_none_or(|last| capture_ns.saturating_sub(last) >= self.interval_ns)
    }

    /// The frame captured at `capture_ns` was encoded, a keyframe or not.
    pub fn encoded(&mut self, capture_ns: u64, keyframe: bool) {
        if keyframe {
            self.last_ns = Some(capture_ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keyframe capture times (s) of `frames` frames at `fps`, a keyframe forced when due.
    fn keyframes(clock: &mut KeyframeClock, fps: f64, frames: u32, extra: &[u32]) -> Vec<f64> {
        let mut out = Vec::new();
        for i in 0..frames {
            let t = (f64::from(i) / fps * 1e9) as u64;
            let keyframe = clock.due(t) || extra.contains(&i);
            clock.encoded(t, keyframe);
            if keyframe {
                out.push(t as f64 / 1e9);
            }
        }
        out
    }

    #[test]
    fn a_keyframe_every_interval_of_capture_time_whatever_the_frame_rate() {
        // Nominal 60 fps, reached 20: still one a second (frame counting gave one every 3 s).
        for fps in [20.0, 60.0] {
            let times = keyframes(&mut KeyframeClock::new(1.0), fps, (fps * 5.0) as u32, &[]);
            assert_eq!(times.len(), 5, "{fps} fps: {times:?}");
            assert!(times.windows(2).all(|w| (w[1] - w[0] - 1.0).abs() < 1.0 / fps + 1e-9), "{times:?}");
        }
        // A viewer's keyframe at 0.5 s restarts the interval: the next at 1.5 s, not 1 s.
        let times = keyframes(&mut KeyframeClock::new(1.0), 20.0, 40, &[10]);
        assert_eq!(times, vec![0.0, 0.5, 1.5]);
    }
}
