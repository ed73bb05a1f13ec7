//! The stage-to-stage handoff: a latest-wins slot holding at most one frame.
//!
//! Drop policy: when the producer puts a new item while an older one still
//! waits, the older one is dropped and counted. So a slow consumer costs
//! frames, never latency, and nothing grows without bound (DESIGN.md, "the
//! live path never queues more than one frame between two stages").
//!
//! Built on a crossbeam channel of capacity one; the producer keeps a receiver
//! handle to evict the waiting item. One producer per slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError, bounded};

/// Anything that carries the monotonic time it was captured at.
pub trait Timestamped {
    /// Capture time, ns on the pipeline clock.
    fn capture_time_ns(&self) -> u64;
}

impl Timestamped for crate::frame::Frame {
    fn capture_time_ns(&self) -> u64 {
        self.capture_time_ns
    }
}

impl Timestamped for scopecast_transport::media::AccessUnit {
    fn capture_time_ns(&self) -> u64 {
        self.capture_time_ns
    }
}

/// A slot's figures, whatever it carries (for metrics and the status line).
pub trait SlotReport: Send + Sync {
    /// Slot name.
    fn name(&self) -> &'static str;
    /// Depth, counters and age at `now_ns`.
    fn stats(&self, now_ns: u64) -> SlotStats;
}

impl<T: Send> SlotReport for SlotMonitor<T> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn stats(&self, now_ns: u64) -> SlotStats {
        SlotMonitor::stats(self, now_ns)
    }
}

/// Counters shared by both ends of a slot.
#[derive(Debug)]
struct SlotCounters {
    pushed: AtomicU64,
    dropped: AtomicU64,
    /// Capture time of the item put last (valid while depth is 1).
    last_capture_ns: AtomicU64,
    /// Cleared when the consumer end is dropped.
    consumer_alive: AtomicBool,
}

/// What a slot reports for metrics and the status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotStats {
    /// Items waiting: 0 or 1.
    pub depth: usize,
    /// Items put since creation.
    pub pushed: u64,
    /// Items dropped because a newer one replaced them.
    pub dropped: u64,
    /// Age of the waiting item at `now_ns` (0 when empty), ns.
    pub age_ns: u64,
}

/// Creates a slot; returns its producer and consumer ends.
pub fn latest_slot<T: Timestamped>(name: &'static str) -> (SlotProducer<T>, SlotConsumer<T>) {
    let (tx, rx) = bounded(1);
    let counters = Arc::new(SlotCounters {
        pushed: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        last_capture_ns: AtomicU64::new(0),
        consumer_alive: AtomicBool::new(true),
    });
    let monitor = SlotMonitor { name, rx: rx.clone(), counters: counters.clone() };
    (SlotProducer { tx, evict_rx: rx.clone(), monitor: monitor.clone() }, SlotConsumer { rx, monitor })
}

/// Reads a slot's depth, drops and age from any thread.
#[derive(Debug)]
pub struct SlotMonitor<T> {
    name: &'static str,
    rx: Receiver<T>,
    counters: Arc<SlotCounters>,
}

impl<T> Clone for SlotMonitor<T> {
    fn clone(&self) -> Self {
        Self { name: self.name, rx: self.rx.clone(), counters: self.counters.clone() }
    }
}

impl<T> SlotMonitor<T> {
    /// Slot name, e.g. `source_to_sink`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Depth, counters and the waiting item's age at `now_ns`.
    pub fn stats(&self, now_ns: u64) -> SlotStats {
        let depth = self.rx.len();
        let age_ns =
            if depth > 0 { now_ns.saturating_sub(self.counters.last_capture_ns.load(Ordering::Acquire)) } else { 0 };
        SlotStats {
            depth,
            pushed: self.counters.pushed.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            age_ns,
        }
    }
}

/// The producing end.
#[derive(Debug)]
pub struct SlotProducer<T> {
    tx: Sender<T>,
    evict_rx: Receiver<T>,
    monitor: SlotMonitor<T>,
}

/// The outcome of [`SlotProducer::put`].
#[derive(Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// The slot was empty.
    Stored,
    /// An older item was waiting and was dropped.
    ReplacedOlder,
    /// The consumer is gone; the item was discarded.
    ConsumerGone,
}

impl<T: Timestamped> SlotProducer<T> {
    /// Puts `item`, dropping (and counting) any item still waiting. Never blocks.
    pub fn put(&self, item: T) -> PutOutcome {
        let counters = &self.monitor.counters;
        if !counters.consumer_alive.load(Ordering::Acquire) {
            return PutOutcome::ConsumerGone;
        }
        counters.pushed.fetch_add(1, Ordering::Relaxed);
        let capture_ns = item.capture_time_ns();
        let mut item = item;
        let mut replaced = false;
        loop {
            counters.last_capture_ns.store(capture_ns, Ordering::Release);
            match self.tx.try_send(item) {
                Ok(()) => return if replaced { PutOutcome::ReplacedOlder } else { PutOutcome::Stored },
                Err(TrySendError::Disconnected(_)) => return PutOutcome::ConsumerGone,
                Err(TrySendError::Full(back)) => {
                    item = back;
                    // The consumer may take the waiting item first; then nothing is dropped.
                    match self.evict_rx.try_recv() {
                        Ok(_older) => {
                            counters.dropped.fetch_add(1, Ordering::Relaxed);
                            replaced = true;
                        }
                        Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => {}
                    }
                }
            }
        }
    }

    /// A monitor for metrics.
    pub fn monitor(&self) -> SlotMonitor<T> {
        self.monitor.clone()
    }
}

/// The consuming end.
#[derive(Debug)]
pub struct SlotConsumer<T> {
    rx: Receiver<T>,
    monitor: SlotMonitor<T>,
}

/// Why [`SlotConsumer::take`] returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum TakeError {
    /// Nothing arrived within the timeout.
    Timeout,
    /// The producer is gone and the slot is empty.
    ProducerGone,
}

impl<T> SlotConsumer<T> {
    /// Waits up to `timeout` for the next item.
    pub fn take(&self, timeout: Duration) -> Result<T, TakeError> {
        self.rx.recv_timeout(timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => TakeError::Timeout,
            RecvTimeoutError::Disconnected => TakeError::ProducerGone,
        })
    }

    /// A monitor for metrics.
    pub fn monitor(&self) -> SlotMonitor<T> {
        self.monitor.clone()
    }
}

impl<T> Drop for SlotConsumer<T> {
    fn drop(&mut self) {
        self.monitor.counters.consumer_alive.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Item(u64);

    impl Timestamped for Item {
        fn capture_time_ns(&self) -> u64 {
            self.0
        }
    }

    const NO_WAIT: Duration = Duration::from_millis(0);

    #[test]
    fn the_newest_item_wins_and_every_drop_is_counted() {
        let (producer, consumer) = latest_slot::<Item>("test");
        assert_eq!(producer.put(Item(1)), PutOutcome::Stored);
        assert_eq!(producer.put(Item(2)), PutOutcome::ReplacedOlder);
        assert_eq!(producer.put(Item(3)), PutOutcome::ReplacedOlder);
        assert_eq!(consumer.take(NO_WAIT), Ok(Item(3)));
        assert_eq!(consumer.take(NO_WAIT), Err(TakeError::Timeout));
        let stats = consumer.monitor().stats(10);
        assert_eq!((stats.depth, stats.pushed, stats.dropped), (0, 3, 2));
    }

    #[test]
    fn depth_never_exceeds_one_however_fast_the_producer() {
        let (producer, consumer) = latest_slot::<Item>("test");
        let monitor = producer.monitor();
        for i in 0..10_000 {
            producer.put(Item(i));
            assert!(monitor.stats(i).depth <= 1);
        }
        assert_eq!(monitor.stats(0).dropped, 9_999);
        assert_eq!(consumer.take(NO_WAIT), Ok(Item(9_999)));
    }

    #[test]
    fn age_is_measured_from_the_waiting_items_capture_time() {
        let (producer, consumer) = latest_slot::<Item>("test");
        producer.put(Item(1_000));
        assert_eq!(consumer.monitor().stats(4_000).age_ns, 3_000);
        consumer.take(NO_WAIT).expect("an item waits");
        assert_eq!(consumer.monitor().stats(9_000).age_ns, 0);
    }

    #[test]
    fn a_concurrent_consumer_sees_items_in_order_and_counts_add_up() {
        let (producer, consumer) = latest_slot::<Item>("test");
        let reader = std::thread::Builder::new()
            .name("slot-test-consumer".into())
            .spawn(move || {
                let mut seen = Vec::new();
                while let Ok(item) = consumer.take(Duration::from_millis(200)) {
                    seen.push(item.0);
                }
                seen
            })
            .expect("spawn");
        let monitor = producer.monitor();
        for i in 0..50_000 {
            producer.put(Item(i));
        }
        drop(producer);
        let seen = reader.join().expect("consumer thread");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "items arrive in order");
        assert_eq!(seen.last(), Some(&49_999), "the last item is never lost");
        let stats = monitor.stats(0);
        assert_eq!(stats.dropped + seen.len() as u64, 50_000, "every item is delivered or counted as dropped");
    }

    #[test]
    fn a_gone_consumer_is_reported() {
        let (producer, consumer) = latest_slot::<Item>("test");
        drop(consumer);
        assert_eq!(producer.put(Item(1)), PutOutcome::ConsumerGone);
    }
}
