//! A cooperative shutdown signal that every stage polls at least every
//! [`POLL_INTERVAL`], so the whole station stops within a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The longest any stage may block before looking at the shutdown flag again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A cloneable flag: once triggered, every holder sees it.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// A fresh, untriggered signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every stage to stop.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown was requested.
    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
