//! Frame pacing: when the next frame of a fixed-rate source is due.
//!
//! A plain state machine with time as an input, so tests drive it with a fake
//! clock. Due times are computed from the first frame (`origin + n·10⁹/fps`),
//! so rounding never accumulates into drift. A source that falls behind skips
//! the frames it missed instead of bursting to catch up.

use crate::clock::NS_PER_S;

/// What a paced loop should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Nothing is due before `until_ns`.
    Wait {
        /// When the next frame is due, ns.
        until_ns: u64,
    },
    /// A frame is due: stamp it with `due_ns`.
    Emit {
        /// The frame's nominal capture time, ns.
        due_ns: u64,
        /// Frames not emitted: the loop was late by that many periods.
        skipped: u64,
    },
}

/// Fixed-rate pacing.
#[derive(Debug, Clone)]
pub struct Pacer {
    fps: u32,
    origin_ns: Option<u64>,
    next_index: u64,
}

impl Pacer {
    /// Paces `fps` frames per second (at least 1).
    pub fn new(fps: u32) -> Self {
        Self { fps: fps.max(1), origin_ns: None, next_index: 0 }
    }

    /// Frames per second.
    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// Nominal frame period, ns (rounded down).
    pub fn period_ns(&self) -> u64 {
        NS_PER_S / u64::from(self.fps)
    }

    fn due_ns(&self, origin: u64, index: u64) -> u64 {
        origin + (u128::from(index) * u128::from(NS_PER_S) / u128::from(self.fps)) as u64
    }

    /// Decides at `now_ns`. The first call emits at once and sets the origin.
    pub fn poll(&mut self, now_ns: u64) -> Pace {
        let origin = *self.origin_ns.get_or_insert(now_ns);
        let due = self.due_ns(origin, self.next_index);
        if now_ns < due {
            return Pace::Wait { until_ns: due };
        }
        // The latest frame index whose due time has passed.
        let latest = (u128::from(now_ns - origin) * u128::from(self.fps) / u128::from(NS_PER_S)) as u64;
        let latest = latest.max(self.next_index);
        let skipped = latest - self.next_index;
        self.next_index = latest + 1;
        Pace::Emit { due_ns: self.due_ns(origin, latest), skipped }
    }

    /// Starts over: the next poll emits at once.
    pub fn reset(&mut self) {
        self.origin_ns = None;
        self.next_index = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FakeClock};

    #[test]
    fn sixty_fps_on_a_fake_clock_is_exact_and_does_not_drift() {
        let clock = FakeClock::new(1_000, 0);
        let mut pacer = Pacer::new(60);
        let mut stamps = Vec::new();
        while stamps.len() < 601 {
            match pacer.poll(clock.now_ns()) {
                Pace::Wait { until_ns } => clock.sleep_until_ns(until_ns),
                Pace::Emit { due_ns, skipped } => {
                    assert_eq!(skipped, 0);
                    stamps.push(due_ns);
                }
            }
        }
        assert_eq!(stamps[0], 1_000);
        assert_eq!(stamps[1] - stamps[0], 16_666_666);
        assert_eq!(stamps[600] - stamps[0], 10 * NS_PER_S, "600 frames at 60 fps take exactly 10 s");
    }

    #[test]
    fn a_late_loop_skips_missed_frames_instead_of_bursting() {
        let mut pacer = Pacer::new(30);
        assert_eq!(pacer.poll(0), Pace::Emit { due_ns: 0, skipped: 0 });
        // 100 ms late: frames 1 and 2 are skipped, frame 3 (100 ms) emitted.
        assert_eq!(pacer.poll(100_000_000), Pace::Emit { due_ns: 100_000_000, skipped: 2 });
        assert_eq!(pacer.poll(100_000_001), Pace::Wait { until_ns: 133_333_333 });
    }
}
