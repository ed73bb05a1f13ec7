//! The one-line live status: source, resolution, fps, drops, the encoder in
//! use, per-stage latency p50/p99, and NO SIGNAL and failing stages in plain
//! words. Rewritten in place on a terminal, printed as plain lines otherwise.

use std::collections::BTreeMap;
use std::sync::PoisonError;

use crate::clock::NS_PER_S;
use crate::metrics::HistogramSnapshot;
use crate::station::Station;

/// Stages shown, in pipeline order, as (metric label, status name).
const STAGES: [(&str, &str); 4] =
    [("source", "source"), ("compositor", "compositor"), ("encoder", "encoder"), ("sink", "total")];

/// Tracks the counters between two status lines.
pub struct StatusLine {
    last_ns: Option<u64>,
    last_frames: u64,
    last_latency: BTreeMap<&'static str, HistogramSnapshot>,
}

fn ms(ns: Option<f64>) -> String {
    ns.map_or("-".into(), |ns| format!("{:.1}", ns / 1e6))
}

impl StatusLine {
    /// A status line whose first interval starts at `start_ns` (when the station started).
    pub fn new(start_ns: u64) -> Self {
        Self { last_ns: Some(start_ns), last_frames: 0, last_latency: BTreeMap::new() }
    }

    /// The status at `now_ns`, over the interval since the previous call.
    pub fn render(&mut self, station: &Station, now_ns: u64) -> String {
        let registry = &station.registry;
        let frames = registry.stage_frames("sink").get();
        let fps = match self.last_ns {
            Some(last) if now_ns > last => {
                (frames - self.last_frames) as f64 * NS_PER_S as f64 / (now_ns - last) as f64
            }
            _ => 0.0,
        };
        self.last_ns = Some(now_ns);
        self.last_frames = frames;
        let dropped: u64 = station.slots.iter().map(|s| s.stats(now_ns).dropped).sum();
        let mut latencies = Vec::new();
        // The monitor's capture → present, when the station has one.
        let monitor = [("display", "monitor")];
        let stages = STAGES.iter().chain(if station.display { &monitor[..] } else { &[] });
        for &(label, name) in stages {
            let snapshot = registry.stage_latency(label).snapshot();
            let window = self.last_latency.get(label).map_or_else(|| snapshot.clone(), |before| snapshot.since(before));
            latencies.push(format!("{name} {}/{}", ms(window.quantile_ns(0.5)), ms(window.quantile_ns(0.99))));
            self.last_latency.insert(label, snapshot);
        }
        let source = station.source_status.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let picture = match (source.size, source.format) {
            (Some((w, h)), Some(f)) => format!("{w}x{h} {f}"),
            _ => "no picture yet".into(),
        };
        let mut line = format!("source {} {picture} | {fps:.1} fps | drops {dropped}", source.description);
        for (stage, note) in station.stages.notes() {
            line.push_str(&format!(" | {stage} {note}"));
        }
        line.push_str(&format!(" | latency p50/p99 ms: {}", latencies.join(", ")));
        if let Some(reason) = source.no_signal {
            line.push_str(&format!(" | NO SIGNAL: {reason}"));
        }
        // A stage that keeps failing says why here, where the operator looks.
        for (stage, reason) in station.stages.failures() {
            line.push_str(&format!(" | {} FAILING: {reason}", stage.to_uppercase()));
        }
        line
    }
}
