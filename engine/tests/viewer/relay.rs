//! A UDP relay on loopback that the test controls: it forwards a viewer's
//! media path to the station and back, dropping packets at random and
//! delaying each by a random 0..max_delay (so packets also arrive out of
//! order). `tc netem` is not available here; this stands in for it.
//!
//! `rate BPS` on the control port makes the station → viewer direction a
//! bottleneck of BPS bit/s (0: none) with a queue of at most
//! [`BOTTLENECK_QUEUE`] of data; what does not fit is dropped (tail drop),
//! as at a congested hospital uplink.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the relay does to every packet, both ways.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    /// Probability of dropping a packet, 0..=1.
    pub loss: f64,
    /// Each packet is held for a uniform random 0..max_delay.
    pub max_delay: Duration,
    /// Seed of the random generator (runs are repeatable in what they drop).
    pub seed: u64,
}

/// The most a bottleneck's queue holds, as time to drain it.
pub const BOTTLENECK_QUEUE: Duration = Duration::from_millis(200);

/// Packets the relay saw.
#[derive(Debug, Default)]
pub struct RelayCounters {
    /// Forwarded.
    pub forwarded: AtomicU64,
    /// Dropped on purpose.
    pub dropped: AtomicU64,
    /// Dropped because the bottleneck's queue was full.
    pub dropped_at_bottleneck: AtomicU64,
}

/// A running relay.
pub struct LossyRelay {
    /// Where the viewer sends its media.
    pub data_addr: SocketAddr,
    /// Where `target HOST:PORT` tells the relay the station's address.
    pub control_addr: SocketAddr,
    /// What it did.
    pub counters: Arc<RelayCounters>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// xorshift64*: enough randomness for dropping packets.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Delayed {
    due: Instant,
    to: SocketAddr,
    bytes: Vec<u8>,
}

impl LossyRelay {
    /// Starts the relay on 127.0.0.1.
    pub fn start(impairment: Impairment) -> Self {
        let data = UdpSocket::bind("127.0.0.1:0").expect("relay binds");
        let control = UdpSocket::bind("127.0.0.1:0").expect("relay control binds");
        data.set_read_timeout(Some(Duration::from_millis(20))).expect("timeout");
        control.set_nonblocking(true).expect("nonblocking");
        let data_addr = data.local_addr().expect("addr");
        let control_addr = control.local_addr().expect("addr");
        let counters = Arc::new(RelayCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Delayed>();
        let sender_socket = data.try_clone().expect("clone");
        let sender_stop = stop.clone();
        let sender = std::thread::Builder::new()
            .name("test-relay-send".into())
            .spawn(move || {
                let mut queue: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
                let mut held: std::collections::HashMap<u64, Delayed> = std::collections::HashMap::new();
                let mut next_id = 0u64;
                while !sender_stop.load(Ordering::Relaxed) {
                    let wait = queue.peek().map_or(Duration::from_millis(20), |Reverse((due, _))| {
                        due.saturating_duration_since(Instant::now())
                    });
                    if let Ok(packet) = rx.recv_timeout(wait) {
                        queue.push(Reverse((packet.due, next_id)));
                        held.insert(next_id, packet);
                        next_id += 1;
                    }
                    while let Some(Reverse((due, id))) = queue.peek().copied() {
                        if due > Instant::now() {
                            break;
                        }
                        queue.pop();
                        if let Some(packet) = held.remove(&id) {
                            let _ = sender_socket.send_to(&packet.bytes, packet.to);
                        }
                    }
                }
            })
            .expect("relay sender thread");
        let receiver_counters = counters.clone();
        let receiver_stop = stop.clone();
        let receiver = std::thread::Builder::new()
            .name("test-relay-recv".into())
            .spawn(move || {
                let mut rng = Rng(impairment.seed | 1);
                let mut station: Option<SocketAddr> = None;
                let mut viewer: Option<SocketAddr> = None;
                let mut buffer = vec![0u8; 65_536];
                let mut rate_bps = 0u64;
                let mut link_free_at = Instant::now();
                while !receiver_stop.load(Ordering::Relaxed) {
                    if let Ok((n, _)) = control.recv_from(&mut buffer) {
                        let text = String::from_utf8_lossy(&buffer[..n]).to_string();
                        if let Some(target) = text.strip_prefix("target ") {
                            station = target.trim().parse().ok();
                        } else if let Some(rate) = text.strip_prefix("rate ") {
                            rate_bps = rate.trim().parse().unwrap_or(0);
                        }
                    }
                    let Ok((n, from)) = data.recv_from(&mut buffer) else { continue };
                    let Some(station_addr) = station else { continue };
                    let to = if from == station_addr {
                        match viewer {
                            Some(v) => v,
                            None => continue,
                        }
                    } else {
                        viewer = Some(from);
                        station_addr
                    };
                    if rng.next_f64() < impairment.loss {
                        receiver_counters.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let now = Instant::now();
                    let mut due = now + impairment.max_delay.mul_f64(rng.next_f64());
                    if rate_bps > 0 && Some(to) == viewer {
                        let start = link_free_at.max(now);
                        if start.saturating_duration_since(now) > BOTTLENECK_QUEUE {
                            receiver_counters.dropped_at_bottleneck.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        link_free_at = start + Duration::from_secs_f64((n as f64 + 28.0) * 8.0 / rate_bps as f64);
                        due = due.max(link_free_at);
                    }
                    receiver_counters.forwarded.fetch_add(1, Ordering::Relaxed);
                    let _ = tx.send(Delayed { due, to, bytes: buffer[..n].to_vec() });
                }
            })
            .expect("relay receiver thread");
        Self { data_addr, control_addr, counters, stop, threads: vec![sender, receiver] }
    }
}

impl LossyRelay {
    /// Makes the station → viewer direction a bottleneck of `bps` bit/s (0: none).
    pub fn set_rate(&self, bps: u64) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("binds");
        socket.send_to(format!("rate {bps}").as_bytes(), self.control_addr).expect("relay control");
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
