//! What `/metrics` and `/healthz` read of a station: its metrics registry,
//! the handoff slots' depth, drops and age, and the live path's health.

use std::sync::Arc;

use crate::metrics::MetricsRegistry;
use crate::slot::SlotReport;

/// The station's metrics, slots and live-path health, cloneable into the HTTP server.
#[derive(Clone)]
pub struct MetricsView {
    pub(super) registry: Arc<MetricsRegistry>,
    pub(super) slots: Arc<Vec<Box<dyn SlotReport>>>,
    pub(super) stages: Option<Arc<crate::stage_status::StageStatus>>,
}

impl MetricsView {
    /// A view of `registry` alone (no pipeline slots and no live path to judge: a replay).
    pub fn of_registry(registry: Arc<MetricsRegistry>) -> Self {
        Self { registry, slots: Arc::new(Vec::new()), stages: None }
    }

    /// The same view, with `/healthz` judged by `stages` (see [`crate::stage_status::StageStatus::health`]).
    pub fn with_health(mut self, stages: Arc<crate::stage_status::StageStatus>) -> Self {
        self.stages = Some(stages);
        self
    }

    /// The live path's health at `now_ns`; `None` when there is none to judge.
    pub fn health(&self, now_ns: u64) -> Option<Result<String, String>> {
        self.stages.as_ref().map(|s| s.health(now_ns))
    }

    /// Prometheus text with the slots' depth, drops and waiting age at `now_ns`.
    pub fn render(&self, now_ns: u64) -> String {
        for slot in self.slots.iter() {
            let labels = [("slot", slot.name())];
            let stats = slot.stats(now_ns);
            let r = &self.registry;
            r.gauge("scopecast_slot_depth", "Frames waiting between two stages (0 or 1).", &labels)
                .set(stats.depth as f64);
            r.counter(
                "scopecast_slot_dropped_total",
                "Frames replaced by a newer one before the next stage took them.",
                &labels,
            )
            .raise_to(stats.dropped);
            r.gauge("scopecast_slot_age_seconds", "Age of the frame waiting in the slot, 0 when empty.", &labels)
                .set(stats.age_ns as f64 / 1e9);
        }
        self.registry.render_prometheus()
    }
}
