//! A UDP relay on loopback that the test controls: it forwards a viewer's
//! media path to the station and back, dropping packets at random and
//! delaying each by a random 0..max_delay (so packets also arrive out of
//! order). `tc netem` is not available here; this stands in for it.

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

/// Packets the relay saw.
#[derive(Debug, Default)]
pub struct RelayCounters {
    /// Forwarded.
    pub forwarded: AtomicU64,
    /// Dropped on purpose.
    pub dropped: AtomicU64,
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
                while !receiver_stop.load(Ordering::Relaxed) {
                    if let Ok((n, _)) = control.recv_from(&mut buffer) {
                        let text = String::from_utf8_lossy(&buffer[..n]).to_string();
                        station = text.strip_prefix("target ").and_then(|a| a.trim().parse().ok());
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
                    receiver_counters.forwarded.fetch_add(1, Ordering::Relaxed);
                    let delay = impairment.max_delay.mul_f64(rng.next_f64());
                    let _ = tx.send(Delayed { due: Instant::now() + delay, to, bytes: buffer[..n].to_vec() });
                }
            })
            .expect("relay receiver thread");
        Self { data_addr, control_addr, counters, stop, threads: vec![sender, receiver] }
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
