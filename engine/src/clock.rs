//! The one monotonic clock of the pipeline, and a fake one for tests.
//!
//! Every timestamp in scopecast is `u64` nanoseconds of one monotonic clock
//! (see DESIGN.md). Decision code never reads the time itself: it takes `now_ns`
//! as a parameter, and the threads that drive it ask a [`Clock`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Nanoseconds per millisecond.
pub const NS_PER_MS: u64 = 1_000_000;
/// Nanoseconds per second.
pub const NS_PER_S: u64 = 1_000_000_000;

/// A source of time for the threads that drive the pipeline.
pub trait Clock: Send + Sync {
    /// Monotonic time in nanoseconds since an arbitrary, fixed origin.
    fn now_ns(&self) -> u64;
    /// Wall-clock time in Unix milliseconds (used for the visual timecode).
    fn wall_ms(&self) -> u64;
    /// Wall-clock time in Unix nanoseconds (tracker timestamps need better than a millisecond).
    fn wall_ns(&self) -> u64 {
        self.wall_ms().saturating_mul(NS_PER_MS)
    }
    /// Blocks until `now_ns() >= deadline_ns` (returns at once if it already is).
    fn sleep_until_ns(&self, deadline_ns: u64);
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// `clock` as transport reads it (rate limits, keyframe intervals, layer
/// choices): one clock for the whole station.
pub fn for_transport(clock: &SharedClock) -> scopecast_transport::clock::StationClock {
    let clock = clock.clone();
    scopecast_transport::clock::StationClock::new(move || clock.now_ns())
}

/// The real clock: `Instant` for monotonic time, `SystemTime` for wall time.
#[derive(Debug, Clone)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self { origin: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        // u64 nanoseconds overflow after 584 years of uptime.
        self.origin.elapsed().as_nanos() as u64
    }

    fn wall_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }

    fn wall_ns(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
    }

    fn sleep_until_ns(&self, deadline_ns: u64) {
        let now = self.now_ns();
        if deadline_ns > now {
            std::thread::sleep(Duration::from_nanos(deadline_ns - now));
        }
    }
}

/// A clock that only moves when told to. `sleep_until_ns` jumps the time
/// forward to the deadline, so paced code runs instantly and deterministically.
#[derive(Debug, Default)]
pub struct FakeClock {
    now_ns: AtomicU64,
    wall_origin_ms: u64,
}

impl FakeClock {
    /// A fake clock at `now_ns`, whose wall time is `wall_origin_ms + now_ns / 1e6`.
    pub fn new(now_ns: u64, wall_origin_ms: u64) -> Self {
        Self { now_ns: AtomicU64::new(now_ns), wall_origin_ms }
    }

    /// Moves the time forward by `delta_ns`.
    pub fn advance_ns(&self, delta_ns: u64) {
        self.now_ns.fetch_add(delta_ns, Ordering::SeqCst);
    }

    /// Sets the time; never moves it backwards.
    pub fn set_ns(&self, now_ns: u64) {
        self.now_ns.fetch_max(now_ns, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now_ns(&self) -> u64 {
        self.now_ns.load(Ordering::SeqCst)
    }

    fn wall_ms(&self) -> u64 {
        self.wall_origin_ms + self.now_ns() / NS_PER_MS
    }

    fn wall_ns(&self) -> u64 {
        self.wall_origin_ms * NS_PER_MS + self.now_ns()
    }

    fn sleep_until_ns(&self, deadline_ns: u64) {
        self.set_ns(deadline_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_monotonic() {
        let clock = SystemClock::new();
        let a = clock.now_ns();
        clock.sleep_until_ns(a + 1_000_000);
        assert!(clock.now_ns() >= a + 1_000_000);
        assert!(clock.wall_ms() > 1_600_000_000_000, "wall clock is Unix milliseconds");
    }

    #[test]
    fn fake_clock_jumps_to_deadlines_and_never_goes_back() {
        let clock = FakeClock::new(10, 1_000);
        clock.sleep_until_ns(5 * NS_PER_MS);
        assert_eq!(clock.now_ns(), 5 * NS_PER_MS);
        clock.sleep_until_ns(NS_PER_MS);
        assert_eq!(clock.now_ns(), 5 * NS_PER_MS);
        assert_eq!(clock.wall_ms(), 1_005);
        clock.advance_ns(NS_PER_S);
        assert_eq!(clock.wall_ms(), 2_005);
    }
}
