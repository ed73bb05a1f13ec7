//! Shared helpers of the scopecast benches: per-iteration timings summarised
//! as p50/p99/mean and printed one line per case, so figures can be quoted.

use std::time::{Duration, Instant};

/// Timings of one benchmark case.
#[derive(Debug, Clone)]
pub struct Timings {
    samples_ns: Vec<u64>,
}

impl Timings {
    /// Runs `body` `warmup` times untimed, then `iterations` times timed.
    pub fn measure(warmup: usize, iterations: usize, mut body: impl FnMut()) -> Self {
        for _ in 0..warmup {
            body();
        }
        let samples_ns = (0..iterations)
            .map(|_| {
                let start = Instant::now();
                body();
                start.elapsed().as_nanos() as u64
            })
            .collect();
        Self { samples_ns }
    }

    /// The `q` quantile (0..=1), nearest rank.
    pub fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.samples_ns.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        Duration::from_nanos(sorted[rank - 1])
    }

    /// Arithmetic mean.
    pub fn mean(&self) -> Duration {
        let n = self.samples_ns.len().max(1) as u64;
        Duration::from_nanos(self.samples_ns.iter().sum::<u64>() / n)
    }
}

/// Milliseconds with three decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}
