//! CPU cost of each extra viewer at 720p30 (goal: at most 1 % of a core),
//! and whether the station holds 32 of them.
//!
//! The station runs in this process (synthetic endoscope 1280x720 at 30 fps,
//! compositor off so lavapipe's cost does not blur the figure, default H.264
//! encoder, WHEP on loopback). The viewers are webrtc-rs receivers in a child
//! process (this bench run again with `--swarm`), so their own work is not
//! counted. For 0, 1, 8, 16 and 32 viewers the station's CPU time
//! (/proc/self/stat, user + system) over a 10 s window gives its share of a
//! core; (share(N) − share(0)) / N is the cost per extra viewer. The swarm
//! reports how many RTP packets each viewer received in the window.
//!
//! Run with `cargo bench -p scopecast-benches --bench viewers`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use scopecast_benches::ServedStation;
use scopecast_benches::receiver::Receiver;
use scopecast_engine::config::Config;

const TOKEN: &str = "viewer-cost-bench-token";
const WINDOW: Duration = Duration::from_secs(10);

/// User + system CPU time of this process, s.
fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the ')'; 100 ticks per second on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

// ---------------------------------------------------------------- the swarm (child process)

/// `--swarm ADDR N SECONDS`: N receivers; prints "ready" once all receive,
/// then after SECONDS the packets each received in that time.
fn swarm(addr: &str, count: usize, seconds: u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut viewers = Vec::new();
        for _ in 0..count {
            match Receiver::connect(addr, TOKEN).await {
                Ok(v) => viewers.push(v),
                Err(e) => eprintln!("viewer failed: {e}"),
            }
        }
        let packets = |v: &Receiver| v.reception.packets.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(20);
        while viewers.iter().any(|v| packets(v) == 0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let start: Vec<u64> = viewers.iter().map(packets).collect();
        println!("ready {}", viewers.len());
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let received: Vec<u64> = viewers.iter().zip(&start).map(|(v, s)| packets(v) - s).collect();
        println!("received {}", received.iter().map(u64::to_string).collect::<Vec<_>>().join(" "));
        for viewer in viewers {
            viewer.vanish().await;
        }
    });
}

// ---------------------------------------------------------------- the station (this process)

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--swarm") {
        let addr = &args[at + 1];
        let count = args[at + 2].parse().unwrap_or(1);
        let seconds = args[at + 3].parse().unwrap_or(10);
        swarm(addr, count, seconds);
        return;
    }
    let mut config = Config::default();
    config.source.width = 1280;
    config.source.height = 720;
    config.source.fps = 30;
    config.compositor.enabled = false;
    let served = ServedStation::start(&config, TOKEN, 64);
    let addr = served.server.local_addr.to_string();
    std::thread::sleep(Duration::from_secs(2));
    println!("station CPU at 720p30 (synthetic source, x264, no compositor) by viewers, {WINDOW:?} windows:");
    println!("viewers  station % of a core  extra per viewer  packets per viewer in window (min/max)");
    let mut baseline = None;
    for count in [0usize, 1, 8, 16, 32] {
        let mut child = None;
        if count > 0 {
            let mut swarm = Command::new(std::env::current_exe().expect("exe"))
                .args(["--swarm", &addr, &count.to_string(), &WINDOW.as_secs().to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("the swarm starts");
            let mut lines = BufReader::new(swarm.stdout.take().expect("stdout")).lines().map_while(Result::ok);
            let ready = lines.by_ref().find(|l| l.starts_with("ready")).unwrap_or_default();
            child = Some((swarm, lines, ready));
        }
        let (cpu0, t0) = (process_cpu_s(), Instant::now());
        std::thread::sleep(WINDOW);
        let share = (process_cpu_s() - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
        let mut packets = String::from("-");
        if let Some((mut swarm, mut lines, ready)) = child {
            let received = lines.find_map(|l| l.strip_prefix("received ").map(str::to_string)).unwrap_or_default();
            let counts: Vec<u64> = received.split_whitespace().filter_map(|v| v.parse().ok()).collect();
            packets = format!(
                "{}/{} ({}, {} answered)",
                counts.iter().min().unwrap_or(&0),
                counts.iter().max().unwrap_or(&0),
                ready,
                counts.len()
            );
            let _ = swarm.wait();
            std::thread::sleep(Duration::from_secs(2));
        }
        let base = *baseline.get_or_insert(share);
        let per_viewer = if count > 0 { format!("{:.2} %", (share - base) / count as f64) } else { "-".into() };
        println!("{count:>7}  {share:>19.1}  {per_viewer:>16}  {packets}");
    }
    served.stop();
}
