//! The source's health as a plain state machine with time as an input: when
//! to (re)start the input, when to show NO SIGNAL, and the retry backoff.
//!
//! The supervisor feeds it events (started, frame, failure, end) and asks it
//! what to do at `now_ns`; it never reads a clock or touches GStreamer.

use crate::clock::NS_PER_MS;

/// Timing policy, all in ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Without a live frame for this long, NO SIGNAL is shown.
    pub no_signal_after_ns: u64,
    /// Without a live frame for this long, the source counts as failed and restarts.
    pub restart_after_ns: u64,
    /// First retry delay after a failure.
    pub retry_initial_ns: u64,
    /// Longest retry delay.
    pub retry_max_ns: u64,
}

/// Where the source stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// The input must be started now.
    NeedsStart,
    /// The input is running since `since_ns`.
    Running {
        /// When it started, ns.
        since_ns: u64,
    },
    /// The input failed; retry at `retry_at_ns`.
    Failed {
        /// Plain-words reason.
        reason: String,
        /// When to try again, ns.
        retry_at_ns: u64,
    },
    /// A file ended and is not looped: nothing to retry.
    Ended,
}

/// What the supervisor should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Call `start` on the source.
    Start,
    /// Pull frames from the running source.
    Pull,
    /// Stop the source: it stalled. A `Start` follows after the backoff.
    StopStalled,
    /// Nothing to do with the source before `until_ns` (NO SIGNAL frames may still be due).
    Idle {
        /// When to ask again, ns.
        until_ns: u64,
    },
}

/// The source health state machine.
#[derive(Debug, Clone)]
pub struct SourceHealth {
    policy: HealthPolicy,
    phase: Phase,
    last_frame_ns: Option<u64>,
    retry_delay_ns: u64,
    failures: u64,
}

impl SourceHealth {
    /// A source that has not been started yet.
    pub fn new(policy: HealthPolicy) -> Self {
        Self {
            policy,
            phase: Phase::NeedsStart,
            last_frame_ns: None,
            retry_delay_ns: policy.retry_initial_ns,
            failures: 0,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Failures since creation (each leads to a restart unless the input ended).
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// The input started at `now_ns`.
    pub fn on_started(&mut self, now_ns: u64) {
        self.phase = Phase::Running { since_ns: now_ns };
    }

    /// A live frame arrived at `now_ns`: the input works, so the backoff resets.
    pub fn on_frame(&mut self, now_ns: u64) {
        self.last_frame_ns = Some(now_ns);
        self.retry_delay_ns = self.policy.retry_initial_ns;
        if !matches!(self.phase, Phase::Running { .. }) {
            self.phase = Phase::Running { since_ns: now_ns };
        }
    }

    /// The input failed at `now_ns`; it is retried after the current backoff,
    /// which then doubles up to the maximum.
    pub fn on_failure(&mut self, now_ns: u64, reason: String) {
        self.failures += 1;
        let retry_at_ns = now_ns.saturating_add(self.retry_delay_ns);
        self.retry_delay_ns = (self.retry_delay_ns.saturating_mul(2)).min(self.policy.retry_max_ns);
        self.phase = Phase::Failed { reason, retry_at_ns };
    }

    /// A file ended and is not looped.
    pub fn on_end(&mut self) {
        self.phase = Phase::Ended;
    }

    /// Time since the last live frame (or since the input started, if none came yet).
    fn silence_ns(&self, now_ns: u64, since_ns: u64) -> u64 {
        let reference = self.last_frame_ns.map_or(since_ns, |last| last.max(since_ns));
        now_ns.saturating_sub(reference)
    }

    /// What to do at `now_ns`.
    pub fn poll(&mut self, now_ns: u64) -> Action {
        match &self.phase {
            Phase::NeedsStart => Action::Start,
            Phase::Running { since_ns } => {
                let silence_ns = self.silence_ns(now_ns, *since_ns);
                if silence_ns >= self.policy.restart_after_ns {
                    let reason = format!("no frames for {} ms", silence_ns / NS_PER_MS);
                    self.on_failure(now_ns, reason);
                    Action::StopStalled
                } else {
                    Action::Pull
                }
            }
            Phase::Failed { retry_at_ns, .. } => {
                if now_ns >= *retry_at_ns {
                    self.phase = Phase::NeedsStart;
                    Action::Start
                } else {
                    Action::Idle { until_ns: *retry_at_ns }
                }
            }
            Phase::Ended => Action::Idle { until_ns: u64::MAX },
        }
    }

    /// Why NO SIGNAL frames should be shown at `now_ns`, or `None` while the picture is live.
    pub fn no_signal_reason(&self, now_ns: u64) -> Option<String> {
        match &self.phase {
            Phase::NeedsStart => None,
            Phase::Running { since_ns } => {
                let silence_ns = self.silence_ns(now_ns, *since_ns);
                (silence_ns >= self.policy.no_signal_after_ns).then(|| {
                    if self.last_frame_ns.is_none() {
                        "waiting for the first frame".to_string()
                    } else {
                        format!("no frames for {} ms", silence_ns / NS_PER_MS)
                    }
                })
            }
            Phase::Failed { reason, retry_at_ns } => {
                let retry_in_ms = retry_at_ns.saturating_sub(now_ns) / NS_PER_MS;
                Some(format!("{reason} (retry in {:.1} s)", retry_in_ms as f64 / 1000.0))
            }
            Phase::Ended => Some("end of file".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = NS_PER_MS;

    fn policy() -> HealthPolicy {
        HealthPolicy {
            no_signal_after_ns: 500 * MS,
            restart_after_ns: 2000 * MS,
            retry_initial_ns: 250 * MS,
            retry_max_ns: 1000 * MS,
        }
    }

    #[test]
    fn a_healthy_source_is_started_once_and_pulled() {
        let mut health = SourceHealth::new(policy());
        assert_eq!(health.poll(0), Action::Start);
        health.on_started(0);
        for t in (10..5000).step_by(16) {
            health.on_frame(t * MS);
            assert_eq!(health.poll(t * MS + MS), Action::Pull);
            assert_eq!(health.no_signal_reason(t * MS + MS), None);
        }
    }

    #[test]
    fn silence_shows_no_signal_then_restarts() {
        let mut health = SourceHealth::new(policy());
        health.poll(0);
        health.on_started(0);
        assert_eq!(health.no_signal_reason(499 * MS), None);
        assert_eq!(health.no_signal_reason(500 * MS).as_deref(), Some("waiting for the first frame"));
        health.on_frame(600 * MS);
        assert_eq!(health.no_signal_reason(1000 * MS), None);
        assert_eq!(health.no_signal_reason(1100 * MS).as_deref(), Some("no frames for 500 ms"));
        assert_eq!(health.poll(2599 * MS), Action::Pull);
        assert_eq!(health.poll(2600 * MS), Action::StopStalled);
        assert!(matches!(health.phase(), Phase::Failed { retry_at_ns, .. } if *retry_at_ns == 2850 * MS));
        assert_eq!(health.failures(), 1);
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_maximum_and_reset_on_frames() {
        let mut health = SourceHealth::new(policy());
        let mut now = 0;
        let mut delays = Vec::new();
        for _ in 0..5 {
            assert_eq!(health.poll(now), Action::Start);
            health.on_failure(now, "device gone".into());
            let Phase::Failed { retry_at_ns, .. } = health.phase().clone() else { panic!("failed") };
            delays.push((retry_at_ns - now) / MS);
            assert_eq!(health.poll(retry_at_ns - 1), Action::Idle { until_ns: retry_at_ns });
            assert!(health.no_signal_reason(now).expect("no signal").starts_with("device gone (retry in"));
            now = retry_at_ns;
        }
        assert_eq!(delays, vec![250, 500, 1000, 1000, 1000]);
        assert_eq!(health.poll(now), Action::Start);
        health.on_started(now);
        health.on_frame(now + MS);
        health.on_failure(now + 2 * MS, "again".into());
        assert!(matches!(health.phase(), Phase::Failed { retry_at_ns, .. } if *retry_at_ns == now + 252 * MS));
    }

    #[test]
    fn an_ended_file_stays_ended() {
        let mut health = SourceHealth::new(policy());
        health.on_started(0);
        health.on_end();
        assert_eq!(health.poll(10_000 * MS), Action::Idle { until_ns: u64::MAX });
        assert_eq!(health.no_signal_reason(10_000 * MS).as_deref(), Some("end of file"));
    }
}
