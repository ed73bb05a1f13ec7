//! Stage metrics: latency histograms with p50/p99, counters and gauges, kept
//! in a registry that renders the Prometheus text exposition format (0.0.4).
//!
//! Recording is lock-free (atomics) so the frame loop never waits on a reader;
//! only registering a new series takes a lock, and that happens at start-up.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Smallest latency with its own bucket: 1.024 µs (2¹⁰ ns).
const FIRST_BUCKET_NS: f64 = 1024.0;
/// Buckets per doubling: bucket edges grow by 2^(1/4) ≈ 1.19, so an
/// interpolated quantile is within about ±10 % of the true value.
const BUCKETS_PER_OCTAVE: f64 = 4.0;
/// 1 µs · 2^(100/4) ≈ 34 s: anything slower lands in the last bucket.
const BUCKET_COUNT: usize = 100;

/// Upper edge of bucket `i`, ns.
fn bucket_upper_ns(i: usize) -> f64 {
    FIRST_BUCKET_NS * 2f64.powf(i as f64 / BUCKETS_PER_OCTAVE)
}

fn bucket_index(value_ns: u64) -> usize {
    let v = value_ns as f64;
    if v <= FIRST_BUCKET_NS {
        return 0;
    }
    let index = ((v / FIRST_BUCKET_NS).log2() * BUCKETS_PER_OCTAVE).ceil() as usize;
    index.min(BUCKET_COUNT - 1)
}

/// A latency histogram with logarithmic buckets.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: Vec<AtomicU64>,
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKET_COUNT).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

/// A point-in-time copy of a histogram; differences of two snapshots give the
/// distribution over the interval between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    buckets: Vec<u64>,
    /// Sum of all values, ns.
    pub sum_ns: u64,
    /// Number of values.
    pub count: u64,
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn record_ns(&self, value_ns: u64) {
        self.buckets[bucket_index(value_ns)].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(value_ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the current counts.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

impl HistogramSnapshot {
    /// The distribution recorded since `earlier`.
    pub fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self.buckets.iter().zip(&earlier.buckets).map(|(a, b)| a.saturating_sub(*b)).collect(),
            sum_ns: self.sum_ns.saturating_sub(earlier.sum_ns),
            count: self.count.saturating_sub(earlier.count),
        }
    }

    /// The `q` quantile (0..=1) in ns, interpolated geometrically inside its
    /// bucket; `None` when empty.
    pub fn quantile_ns(&self, q: f64) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if (below + n) as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { bucket_upper_ns(i - 1) };
                let upper = bucket_upper_ns(i);
                let fraction = (rank - below as f64) / n as f64;
                return Some(if lower == 0.0 { upper * fraction } else { lower * (upper / lower).powf(fraction) });
            }
            below += n;
        }
        Some(bucket_upper_ns(BUCKET_COUNT - 1))
    }
}

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Raises the value to `total` if it is higher (for counters kept elsewhere).
    pub fn raise_to(&self, total: u64) {
        self.0.fetch_max(total, Ordering::Relaxed);
    }
}

/// A value that goes up and down (stored as f64 bits).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    /// Current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Frames per second over windows of at least one second, published to a gauge.
/// Time is passed in, so tests drive it with any clock.
#[derive(Debug)]
pub struct FpsMeter {
    gauge: Arc<Gauge>,
    window_start_ns: Option<u64>,
    frames: u64,
}

impl FpsMeter {
    /// Length of one measuring window, ns.
    pub const WINDOW_NS: u64 = 1_000_000_000;

    /// A meter publishing to `gauge`.
    pub fn new(gauge: Arc<Gauge>) -> Self {
        Self { gauge, window_start_ns: None, frames: 0 }
    }

    /// Counts one frame at `now_ns`; publishes the rate when a window closes.
    pub fn tick(&mut self, now_ns: u64) {
        let start = *self.window_start_ns.get_or_insert(now_ns);
        self.frames += 1;
        let elapsed = now_ns.saturating_sub(start);
        if elapsed >= Self::WINDOW_NS {
            // Frames after the first one in the window, over the time they spanned.
            self.gauge.set((self.frames - 1) as f64 * 1e9 / elapsed as f64);
            self.window_start_ns = Some(now_ns);
            self.frames = 1;
        }
    }
}

#[derive(Debug, Clone)]
enum Series {
    Latency(Arc<LatencyHistogram>),
    Counter(Arc<Counter>),
    Gauge(Arc<Gauge>),
}

#[derive(Debug)]
struct Family {
    help: &'static str,
    kind: &'static str,
    /// Rendered label set (`{stage="source"}`) → series.
    series: BTreeMap<String, Series>,
}

/// Labels of one series, as `(name, value)` pairs.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// The set of metrics of one station.
#[derive(Debug, Default)]
pub struct MetricsRegistry {
    families: Mutex<BTreeMap<&'static str, Family>>,
}

fn render_labels(labels: Labels<'_>, extra: Option<(&str, &str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = labels.to_vec();
    pairs.extend(extra);
    if pairs.is_empty() {
        return String::new();
    }
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let escaped = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            format!("{k}=\"{escaped}\"")
        })
        .collect();
    format!("{{{}}}", body.join(","))
}

/// Formats a float the way Prometheus reads it.
fn prom_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn register(
        &self,
        name: &'static str,
        help: &'static str,
        kind: &'static str,
        labels: Labels<'_>,
        make: impl FnOnce() -> Series,
    ) -> Series {
        let mut families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        let family = families.entry(name).or_insert_with(|| Family { help, kind, series: BTreeMap::new() });
        family.series.entry(render_labels(labels, None)).or_insert_with(make).clone()
    }

    /// The latency summary `name{labels}`, created on first use. Rendered in
    /// seconds as a Prometheus summary with quantiles 0.5 and 0.99.
    pub fn latency(&self, name: &'static str, help: &'static str, labels: Labels<'_>) -> Arc<LatencyHistogram> {
        match self.register(name, help, "summary", labels, || Series::Latency(Arc::default())) {
            Series::Latency(h) => h,
            // A name is registered with one kind only; a mismatch is a programming error caught by tests.
            other => panic!("metric {name} registered as {other:?}, not a latency"),
        }
    }

    /// The counter `name{labels}`, created on first use.
    pub fn counter(&self, name: &'static str, help: &'static str, labels: Labels<'_>) -> Arc<Counter> {
        match self.register(name, help, "counter", labels, || Series::Counter(Arc::default())) {
            Series::Counter(c) => c,
            other => panic!("metric {name} registered as {other:?}, not a counter"),
        }
    }

    /// The gauge `name{labels}`, created on first use.
    pub fn gauge(&self, name: &'static str, help: &'static str, labels: Labels<'_>) -> Arc<Gauge> {
        match self.register(name, help, "gauge", labels, || Series::Gauge(Arc::default())) {
            Series::Gauge(g) => g,
            other => panic!("metric {name} registered as {other:?}, not a gauge"),
        }
    }

    /// `scopecast_stage_latency_seconds{stage}`: capture to the end of `stage`.
    pub fn stage_latency(&self, stage: &str) -> Arc<LatencyHistogram> {
        self.latency(
            "scopecast_stage_latency_seconds",
            "Time from a frame's capture to the end of each stage.",
            &[("stage", stage)],
        )
    }

    /// `scopecast_stage_frames_total{stage}`: frames `stage` passed on.
    pub fn stage_frames(&self, stage: &str) -> Arc<Counter> {
        self.counter("scopecast_stage_frames_total", "Frames each stage passed on.", &[("stage", stage)])
    }

    /// `scopecast_stage_fps{stage}`: the rate `stage` passed frames on, over the last second.
    pub fn stage_fps(&self, stage: &str) -> Arc<Gauge> {
        self.gauge(
            "scopecast_stage_fps",
            "Frames per second each stage passed on, over the last second.",
            &[("stage", stage)],
        )
    }

    /// Renders every series in the Prometheus text exposition format.
    pub fn render_prometheus(&self) -> String {
        let families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        for (name, family) in families.iter() {
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {}", family.kind);
            for (labels, series) in &family.series {
                match series {
                    Series::Counter(c) => {
                        let _ = writeln!(out, "{name}{labels} {}", c.get());
                    }
                    Series::Gauge(g) => {
                        let _ = writeln!(out, "{name}{labels} {}", prom_float(g.get()));
                    }
                    Series::Latency(h) => {
                        let snap = h.snapshot();
                        let inner = labels.trim_start_matches('{').trim_end_matches('}');
                        for q in ["0.5", "0.99"] {
                            let value = snap.quantile_ns(q.parse().unwrap_or(0.5)).map_or(f64::NAN, |ns| ns / 1e9);
                            let sep = if inner.is_empty() { "" } else { "," };
                            let _ = writeln!(out, "{name}{{{inner}{sep}quantile=\"{q}\"}} {}", prom_float(value));
                        }
                        let _ = writeln!(out, "{name}_sum{labels} {}", prom_float(snap.sum_ns as f64 / 1e9));
                        let _ = writeln!(out, "{name}_count{labels} {}", snap.count);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_bucket_resolution() {
        let h = LatencyHistogram::default();
        // 1..=1000 µs uniformly: p50 = 500 µs, p99 = 990 µs.
        for us in 1..=1000u64 {
            h.record_ns(us * 1000);
        }
        let snap = h.snapshot();
        let p50 = snap.quantile_ns(0.5).expect("not empty");
        let p99 = snap.quantile_ns(0.99).expect("not empty");
        assert!((p50 / 500_000.0 - 1.0).abs() < 0.10, "p50 {p50}");
        assert!((p99 / 990_000.0 - 1.0).abs() < 0.10, "p99 {p99}");
        assert_eq!(snap.count, 1000);
        assert_eq!(snap.sum_ns, 500_500_000);
    }

    #[test]
    fn snapshots_subtract_to_the_recent_window() {
        let h = LatencyHistogram::default();
        for _ in 0..100 {
            h.record_ns(1_000_000);
        }
        let before = h.snapshot();
        for _ in 0..10 {
            h.record_ns(50_000_000);
        }
        let window = h.snapshot().since(&before);
        assert_eq!(window.count, 10);
        let p50 = window.quantile_ns(0.5).expect("not empty");
        assert!((p50 / 50e6 - 1.0).abs() < 0.2, "recent p50 {p50} reflects only the window");
        assert_eq!(LatencyHistogram::default().snapshot().quantile_ns(0.5), None);
    }

    #[test]
    fn extreme_values_stay_in_range() {
        let h = LatencyHistogram::default();
        h.record_ns(0);
        h.record_ns(u64::MAX / 4);
        let snap = h.snapshot();
        assert!(snap.quantile_ns(1.0).expect("not empty").is_finite());
    }

    #[test]
    fn renders_prometheus_text_exposition() {
        let registry = MetricsRegistry::new();
        let latency =
            registry.latency("scopecast_stage_latency_seconds", "Capture to stage end.", &[("stage", "source")]);
        latency.record_ns(2_000_000);
        registry.counter("scopecast_frames_total", "Frames.", &[("stage", "sink")]).add(3);
        registry.gauge("scopecast_slot_depth", "Waiting frames.", &[("slot", "a\"b")]).set(1.0);
        let text = registry.render_prometheus();
        assert!(text.contains("# TYPE scopecast_stage_latency_seconds summary\n"), "{text}");
        assert!(text.contains("scopecast_stage_latency_seconds{stage=\"source\",quantile=\"0.5\"} 0.00"), "{text}");
        assert!(text.contains("scopecast_stage_latency_seconds_sum{stage=\"source\"} 0.002\n"), "{text}");
        assert!(text.contains("scopecast_stage_latency_seconds_count{stage=\"source\"} 1\n"), "{text}");
        assert!(
            text.contains("# TYPE scopecast_frames_total counter\nscopecast_frames_total{stage=\"sink\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("scopecast_slot_depth{slot=\"a\\\"b\"} 1\n"), "{text}");
        // Every non-comment line is `name{labels} value` with a parseable value.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().expect("value");
            assert!(value.parse::<f64>().is_ok() || value == "NaN", "bad sample line {line}");
        }
    }

    #[test]
    fn fps_meter_publishes_the_rate_of_each_window() {
        let gauge = Arc::new(Gauge::default());
        let mut meter = FpsMeter::new(gauge.clone());
        for i in 0..=60u64 {
            meter.tick(i * 1_000_000_000 / 60);
        }
        assert!((gauge.get() - 60.0).abs() < 0.01, "{}", gauge.get());
        for i in 1..=30u64 {
            meter.tick(1_000_000_000 + i * 1_000_000_000 / 30);
        }
        assert!((gauge.get() - 30.0).abs() < 0.01, "{}", gauge.get());
    }

    #[test]
    fn the_same_series_is_shared() {
        let registry = MetricsRegistry::new();
        registry.counter("c_total", "h", &[("k", "v")]).inc();
        registry.counter("c_total", "h", &[("k", "v")]).inc();
        assert_eq!(registry.counter("c_total", "h", &[("k", "v")]).get(), 2);
    }
}
