//! The source thread's loop: drives a [`FrameSource`] by the decisions of
//! [`SourceHealth`], puts live frames into the pipeline, and fills any gap
//! with NO SIGNAL frames at the configured rate, so the stages after it never
//! starve, whatever the input does.

use std::sync::{Arc, Mutex, PoisonError};

use super::health::{Action, HealthPolicy, SourceHealth};
use super::no_signal::NoSignalCard;
use super::{FrameSource, SourceError};
use crate::clock::SharedClock;
use crate::frame::{Frame, FrameStamp, PixelFormat};
use crate::metrics::{Counter, FpsMeter, Gauge, LatencyHistogram, MetricsRegistry};
use crate::pacing::{Pace, Pacer};
use crate::shutdown::{POLL_INTERVAL, Shutdown};
use crate::slot::SlotProducer;

/// What the status line and metrics know about the source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStatus {
    /// The source, as configured (`synthetic`, `v4l2:///dev/video0`, ...).
    pub description: String,
    /// Size of the last live frame, px.
    pub size: Option<(u32, u32)>,
    /// Format of the last live frame.
    pub format: Option<PixelFormat>,
    /// Why NO SIGNAL is shown, while it is.
    pub no_signal: Option<String>,
    /// Failures since start.
    pub failures: u64,
    /// Live frames since start.
    pub live_frames: u64,
}

/// Shared, read by the status line.
pub type SharedSourceStatus = Arc<Mutex<SourceStatus>>;

struct SourceMetrics {
    latency: Arc<LatencyHistogram>,
    frames: Arc<Counter>,
    no_signal_frames: Arc<Counter>,
    failures: Arc<Counter>,
    up: Arc<Gauge>,
    fps: FpsMeter,
}

impl SourceMetrics {
    fn new(registry: &MetricsRegistry) -> Self {
        Self {
            latency: registry.stage_latency("source"),
            frames: registry.stage_frames("source"),
            no_signal_frames: registry.counter(
                "scopecast_source_no_signal_frames_total",
                "NO SIGNAL frames sent while the source was down.",
                &[],
            ),
            failures: registry.counter(
                "scopecast_source_failures_total",
                "Source failures (each followed by a retry).",
                &[],
            ),
            up: registry.gauge("scopecast_source_up", "1 while the source delivers live frames, else 0.", &[]),
            fps: FpsMeter::new(registry.stage_fps("source")),
        }
    }
}

/// Settings of the supervisor.
#[derive(Debug, Clone, Copy)]
pub struct SupervisorSettings {
    /// Health timing.
    pub policy: HealthPolicy,
    /// NO SIGNAL frame rate (the configured source rate).
    pub fps: u32,
    /// NO SIGNAL frame size until the source reports its own, px.
    pub size: (u32, u32),
}

/// Runs a source on the current thread until shutdown.
pub struct Supervisor {
    source: Box<dyn FrameSource>,
    description: String,
    health: SourceHealth,
    card: NoSignalCard,
    no_signal_pacer: Pacer,
    clock: SharedClock,
    output: SlotProducer<Frame>,
    status: SharedSourceStatus,
    metrics: SourceMetrics,
    size: (u32, u32),
    next_sequence: u64,
}

impl Supervisor {
    /// A supervisor for `source` putting frames into `output`.
    pub fn new(
        source: Box<dyn FrameSource>,
        settings: SupervisorSettings,
        clock: SharedClock,
        output: SlotProducer<Frame>,
        registry: &MetricsRegistry,
    ) -> Self {
        let description = source.describe();
        let status = Arc::new(Mutex::new(SourceStatus { description: description.clone(), ..Default::default() }));
        Self {
            source,
            description,
            health: SourceHealth::new(settings.policy),
            card: NoSignalCard::new(),
            no_signal_pacer: Pacer::new(settings.fps),
            clock,
            output,
            status,
            metrics: SourceMetrics::new(registry),
            size: settings.size,
            next_sequence: 0,
        }
    }

    /// The status shared with the status line.
    pub fn status(&self) -> SharedSourceStatus {
        self.status.clone()
    }

    /// Loops until `shutdown` is triggered, then stops the source.
    pub fn run(mut self, shutdown: &Shutdown) {
        while !shutdown.is_triggered() {
            self.step();
        }
        self.source.stop();
    }

    fn take_sequence(&mut self) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        sequence
    }

    /// One turn: NO SIGNAL frames if due, then one source action, bounded by
    /// [`POLL_INTERVAL`] and by the next NO SIGNAL frame.
    pub fn step(&mut self) {
        let now = self.clock.now_ns();
        let mut deadline = now + POLL_INTERVAL.as_nanos() as u64;
        match self.health.no_signal_reason(now) {
            Some(reason) => {
                match self.no_signal_pacer.poll(now) {
                    Pace::Emit { due_ns, .. } => self.emit_no_signal(&reason, due_ns),
                    Pace::Wait { until_ns } => deadline = deadline.min(until_ns),
                }
                if let Pace::Wait { until_ns } = self.no_signal_pacer.clone().poll(self.clock.now_ns()) {
                    deadline = deadline.min(until_ns);
                }
                self.set_no_signal(Some(reason));
            }
            None => {
                self.no_signal_pacer.reset();
                self.set_no_signal(None);
            }
        }
        let now = self.clock.now_ns();
        match self.health.poll(now) {
            Action::Start => match self.source.start() {
                Ok(()) => {
                    tracing::info!(source = %self.description, "source started");
                    self.health.on_started(self.clock.now_ns());
                }
                Err(e) => self.fail(e),
            },
            Action::Pull => match self.source.next_frame(deadline.saturating_sub(now)) {
                Ok(Some(frame)) => self.emit_live(frame),
                Ok(None) => {}
                Err(SourceError::EndOfFile) => {
                    tracing::info!(source = %self.description, "end of file");
                    self.source.stop();
                    self.health.on_end();
                }
                Err(e) => self.fail(e),
            },
            Action::StopStalled => {
                tracing::warn!(source = %self.description, "source stalled; restarting");
                self.source.stop();
                self.count_failure();
            }
            Action::Idle { until_ns } => self.clock.sleep_until_ns(deadline.min(until_ns)),
        }
    }

    fn fail(&mut self, error: SourceError) {
        tracing::warn!(source = %self.description, %error, "source failed");
        self.source.stop();
        self.health.on_failure(self.clock.now_ns(), error.to_string());
        self.count_failure();
    }

    fn count_failure(&mut self) {
        self.metrics.failures.inc();
        self.metrics.up.set(0.0);
        self.status.lock().unwrap_or_else(PoisonError::into_inner).failures = self.health.failures();
    }

    fn set_no_signal(&self, reason: Option<String>) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        if status.no_signal != reason {
            if let Some(reason) = &reason {
                if status.no_signal.is_none() {
                    tracing::warn!(source = %self.description, %reason, "NO SIGNAL");
                }
            } else {
                tracing::info!(source = %self.description, "signal back");
            }
            status.no_signal = reason;
        }
    }

    fn emit_live(&mut self, mut frame: Frame) {
        let now = self.clock.now_ns();
        self.health.on_frame(now);
        frame.sequence = self.take_sequence();
        self.size = (frame.width(), frame.height());
        self.metrics.latency.record_ns(now.saturating_sub(frame.capture_time_ns));
        self.metrics.frames.inc();
        self.metrics.fps.tick(now);
        self.metrics.up.set(1.0);
        {
            let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
            status.size = Some(self.size);
            status.format = Some(frame.format());
            status.live_frames += 1;
        }
        self.output.put(frame);
    }

    fn emit_no_signal(&mut self, reason: &str, due_ns: u64) {
        let now = self.clock.now_ns();
        let wall_ms = self.clock.wall_ms().saturating_sub(now.saturating_sub(due_ns) / 1_000_000);
        let stamp = FrameStamp { sequence: self.take_sequence(), capture_time_ns: due_ns, capture_wall_ms: wall_ms };
        let (w, h) = self.size;
        let frame = self.card.frame(w, h, &self.description, reason, stamp);
        self.metrics.no_signal_frames.inc();
        self.metrics.frames.inc();
        self.metrics.fps.tick(now);
        self.output.put(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FakeClock, NS_PER_MS, NS_PER_S};
    use crate::frame::{FrameBytes, FrameContent, Plane};
    use crate::slot::latest_slot;
    use std::collections::VecDeque;

    /// A source that plays a script of outcomes, on a fake clock. Real inputs
    /// are exercised in tests/gst_source.rs; this pins the supervisor's timing.
    struct Scripted {
        clock: Arc<FakeClock>,
        starts: VecDeque<Result<(), SourceError>>,
        frames_per_start: VecDeque<usize>,
        remaining: usize,
    }

    impl FrameSource for Scripted {
        fn describe(&self) -> String {
            "scripted".into()
        }
        fn start(&mut self) -> Result<(), SourceError> {
            let result = self.starts.pop_front().unwrap_or(Ok(()));
            if result.is_ok() {
                self.remaining = self.frames_per_start.pop_front().unwrap_or(usize::MAX);
            }
            result
        }
        fn next_frame(&mut self, timeout_ns: u64) -> Result<Option<Frame>, SourceError> {
            if self.remaining == 0 {
                self.clock.advance_ns(timeout_ns);
                return Err(SourceError::StreamEnded);
            }
            self.remaining -= 1;
            self.clock.advance_ns(10 * NS_PER_MS);
            let bytes: Arc<dyn FrameBytes> = Arc::new(vec![0u8; 8 * 8 * 4]);
            let stamp = FrameStamp { sequence: 99, capture_time_ns: self.clock.now_ns(), capture_wall_ms: 0 };
            let planes = vec![Plane { offset: 0, stride: 32 }];
            Ok(Some(Frame::new(PixelFormat::Rgba8, 8, 8, planes, bytes, stamp, FrameContent::Live)?))
        }
        fn stop(&mut self) {}
    }

    #[test]
    fn a_failing_source_is_replaced_by_no_signal_frames_and_recovers() {
        let clock = Arc::new(FakeClock::new(0, 0));
        let source = Scripted {
            clock: clock.clone(),
            starts: VecDeque::from([
                Ok(()),
                Err(SourceError::Pipeline { element: "src".into(), message: "device gone".into() }),
                Ok(()),
            ]),
            frames_per_start: VecDeque::from([20, usize::MAX]),
            remaining: 0,
        };
        let settings = SupervisorSettings {
            policy: HealthPolicy {
                no_signal_after_ns: 100 * NS_PER_MS,
                restart_after_ns: 1000 * NS_PER_MS,
                retry_initial_ns: 300 * NS_PER_MS,
                retry_max_ns: NS_PER_S,
            },
            fps: 30,
            size: (64, 48),
        };
        let (producer, consumer) = latest_slot("test");
        let registry = MetricsRegistry::new();
        let mut supervisor = Supervisor::new(Box::new(source), settings, clock.clone(), producer, &registry);
        let status = supervisor.status();
        let mut received = Vec::new();
        while clock.now_ns() < 3 * NS_PER_S {
            supervisor.step();
            if let Ok(frame) = consumer.take(std::time::Duration::ZERO) {
                received.push(frame);
            }
        }
        let kinds: Vec<bool> = received.iter().map(Frame::is_no_signal).collect();
        let first_gap = kinds.iter().position(|&n| n).expect("NO SIGNAL after the stream ended");
        let recovered = kinds[first_gap..].iter().position(|&n| !n).expect("live frames after the retry") + first_gap;
        assert_eq!(first_gap, 20, "20 live frames, then NO SIGNAL");
        assert!(kinds[recovered..].iter().all(|&n| !n), "live for good after recovery");
        // NO SIGNAL frames came at 30 fps while the source was down.
        let gap: Vec<&Frame> = received[first_gap..recovered].iter().collect();
        let span_ns = gap.last().expect("gap").capture_time_ns - gap[0].capture_time_ns;
        let expected = span_ns * 30 / NS_PER_S + 1;
        assert!((gap.len() as i64 - expected as i64).abs() <= 1, "{} NO SIGNAL frames over {span_ns} ns", gap.len());
        assert!(gap.iter().all(|f| f.width() == 8 && f.height() == 8), "NO SIGNAL keeps the last live size");
        // Sequence numbers run on across live and NO SIGNAL frames.
        assert!(received.windows(2).all(|w| w[1].sequence > w[0].sequence));
        let status = status.lock().expect("status").clone();
        assert_eq!((status.failures, status.no_signal), (2, None));
        let text = registry.render_prometheus();
        assert!(text.contains("scopecast_source_failures_total 2"), "{text}");
        assert!(text.contains("scopecast_source_up 1"), "{text}");
    }
}
