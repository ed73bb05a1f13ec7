//! What the stages say about themselves, in words, for the places the
//! operator looks: the status line, the monitor's HUD and `/healthz`. A
//! stage that keeps failing leaves its reason here (not only in a log line
//! that scrolls away) until it works again; notes say what a stage chose
//! (`encoder embedded (x264enc not installed)`); the sink marks when an
//! encoded frame last reached the viewers' fan-out.
//!
//! Writers are the stage threads; readers copy. The maps are tiny (one entry
//! per stage) and touched only when something changes, never per frame.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::clock::NS_PER_MS;

/// `/healthz` answers 503 when no encoded frame reached the fan-out for this
/// long (a NO SIGNAL card is encoded like any frame, so it counts).
pub const STALL_AFTER_NS: u64 = 2_000 * NS_PER_MS;

/// The stages' notes, failures and the last delivery.
#[derive(Debug)]
pub struct StageStatus {
    notes: Mutex<BTreeMap<&'static str, String>>,
    failures: Mutex<BTreeMap<&'static str, String>>,
    /// When an encoded frame last reached the fan-out (or the station
    /// started), clock ns.
    last_delivered_ns: AtomicU64,
}

impl StageStatus {
    /// A station that started at `started_ns` and has delivered nothing yet.
    pub fn new(started_ns: u64) -> Self {
        Self {
            notes: Mutex::new(BTreeMap::new()),
            failures: Mutex::new(BTreeMap::new()),
            last_delivered_ns: AtomicU64::new(started_ns),
        }
    }

    /// Sets what `stage` says about its choice (replacing the last note).
    pub fn note(&self, stage: &'static str, text: impl Into<String>) {
        self.notes.lock().unwrap_or_else(PoisonError::into_inner).insert(stage, text.into());
    }

    /// `stage` is failing because of `reason` (until [`StageStatus::recover`]).
    pub fn fail(&self, stage: &'static str, reason: impl Into<String>) {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner).insert(stage, reason.into());
    }

    /// `stage` works again.
    pub fn recover(&self, stage: &'static str) {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner).remove(stage);
    }

    /// (stage, note), in stage-name order.
    pub fn notes(&self) -> Vec<(&'static str, String)> {
        self.notes.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// (stage, reason) of every failing stage, in stage-name order.
    pub fn failures(&self) -> Vec<(&'static str, String)> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// An encoded frame reached the fan-out at `now_ns`.
    pub fn delivered(&self, now_ns: u64) {
        self.last_delivered_ns.fetch_max(now_ns, Ordering::Relaxed);
    }

    /// The station's health at `now_ns`: `Ok(summary)` while encoded frames
    /// reach the fan-out, `Err(reason)` once none has for [`STALL_AFTER_NS`].
    pub fn health(&self, now_ns: u64) -> Result<String, String> {
        let silent_ns = now_ns.saturating_sub(self.last_delivered_ns.load(Ordering::Relaxed));
        let failures = self.failures();
        let failing = failures.iter().map(|(stage, reason)| format!("{stage} failing: {reason}")).collect::<Vec<_>>();
        if silent_ns >= STALL_AFTER_NS {
            let mut reason = format!("no encoded frame reached the viewers for {:.1} s", silent_ns as f64 / 1e9);
            if !failing.is_empty() {
                reason = format!("{reason}; {}", failing.join("; "));
            }
            return Err(reason);
        }
        Ok(if failing.is_empty() { "frames flowing".into() } else { format!("frames flowing; {}", failing.join("; ")) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn health_fails_two_seconds_after_the_last_delivery() {
        let status = StageStatus::new(10 * S);
        assert_eq!(status.health(11 * S), Ok("frames flowing".into()), "grace after the start");
        assert!(status.health(12 * S).is_err(), "nothing delivered for 2 s");
        status.delivered(12 * S);
        assert!(status.health(13 * S).is_ok());
        status.delivered(11 * S);
        assert!(status.health(14 * S + 1).is_err(), "an older time never moves the mark back");
    }

    #[test]
    fn failures_are_named_until_the_stage_recovers() {
        let status = StageStatus::new(0);
        status.fail("encoder", "x264enc crashed");
        assert_eq!(status.health(S), Ok("frames flowing; encoder failing: x264enc crashed".into()));
        let stalled = status.health(3 * S).expect_err("stalled");
        assert!(stalled.contains("for 3.0 s") && stalled.contains("encoder failing: x264enc crashed"), "{stalled}");
        status.recover("encoder");
        assert!(status.failures().is_empty());
        status.note("encoder", "embedded (x264enc not installed)");
        status.note("encoder", "x264");
        assert_eq!(status.notes(), vec![("encoder", "x264".to_string())]);
    }
}
