//! The one clock transport decisions read: rate limits, keyframe intervals
//! and layer choices all take `now_ns` from the station's pipeline clock
//! (monotonic, ns), handed in by whoever starts the endpoints.

use std::sync::Arc;
use std::time::Instant;

/// A monotonic clock, ns.
#[derive(Clone)]
pub struct StationClock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl StationClock {
    /// The clock `now_ns` reads (the station's pipeline clock).
    pub fn new(now_ns: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self(Arc::new(now_ns))
    }

    /// A monotonic clock of its own, from now (tools and tests without a station).
    pub fn from_now() -> Self {
        let epoch = Instant::now();
        Self::new(move || u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// Now, ns.
    pub fn now_ns(&self) -> u64 {
        (self.0)()
    }
}

impl std::fmt::Debug for StationClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StationClock({} ns)", self.now_ns())
    }
}
