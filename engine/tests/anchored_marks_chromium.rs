//! A mark on the anatomy, end to end (issue 19): a station runs the tracked
//! phantom (synthetic endoscope moving at 3 mm/s, simulated tracker over
//! OpenIGTLink, the phantom's hidden surface as the registered model); one
//! page in headless Chromium (an operator's, "on anatomy") draws a circle
//! around a painted dot with the mouse; the other page (a viewer's) sees the
//! circle around that dot, and six seconds later still around it, after the
//! scope carried the dot over 60 px across the picture. Both pages list the
//! mark as on the anatomy. The session was recorded with its clean video and
//! the frames' poses: replayed with the overlays drawn afresh, the recorded
//! circle is re-projected from the recorded poses around the same dot.

mod viewer;

use std::path::Path;
use std::process::Command;

use scopecast_engine::recorder::format::TimelineRecord;
use viewer::{BIN, http_get_bytes, node_script, signal, start_command};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The magenta circle's centroid and the dark dot's inside it, px; `None`
/// unless the circle is whole (magenta in each of 32 sectors around its
/// centroid: a stroke still being drawn is not).
fn circle_and_dot(picture: &image::RgbaImage) -> Option<([f64; 2], [f64; 2])> {
    let (w, h) = picture.dimensions();
    let magenta: Vec<[f64; 2]> = picture
        .enumerate_pixels()
        .filter(|(_, _, p)| p.0[0] > 170 && p.0[2] > 170 && p.0[1] < 110)
        .map(|(x, y, _)| [f64::from(x), f64::from(y)])
        .collect();
    if magenta.len() < 100 {
        return None;
    }
    let n = magenta.len() as f64;
    let ring = [magenta.iter().map(|p| p[0]).sum::<f64>() / n, magenta.iter().map(|p| p[1]).sum::<f64>() / n];
    let mut sectors = [0u32; 32];
    for p in &magenta {
        let angle = (p[1] - ring[1]).atan2(p[0] - ring[0]) + std::f64::consts::PI;
        sectors[((angle / std::f64::consts::TAU * 32.0) as usize).min(31)] += 1;
    }
    if sectors.iter().any(|s| *s < 8) {
        return None;
    }
    let (mut dot, mut m) = ([0.0f64; 2], 0.0);
    for y in (ring[1] - 22.0).max(0.0) as u32..((ring[1] + 22.0) as u32).min(h) {
        for x in (ring[0] - 22.0).max(0.0) as u32..((ring[0] + 22.0) as u32).min(w) {
            let p = picture.get_pixel(x, y).0;
            let dark = (u32::from(p[0]) + u32::from(p[1]) + u32::from(p[2])) / 3 < 70;
            if dark && (f64::from(x) - ring[0]).hypot(f64::from(y) - ring[1]) < 22.0 {
                dot[0] += f64::from(x);
                dot[1] += f64::from(y);
                m += 1.0;
            }
        }
    }
    (m > 40.0).then(|| (ring, [dot[0] / m, dot[1] / m]))
}

#[test]
fn a_mark_drawn_on_a_dot_on_one_page_follows_the_dot_on_the_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let folder = root.join("demos/tracked-scope/phantom");
    let dir = tempfile::tempdir().expect("dir");
    let (tracker_port, http_port) = (free_port(), free_port());
    let chain = |hand_eye: &Path| {
        format!(
            r#"[{{ file = "{}" }}, {{ tracked = "ScopeToTracker", inverse = true }}, {{ tracked = "PhantomToTracker" }}]"#,
            hand_eye.display()
        )
    };
    let config = format!(
        r#"
[source]
width = 1280
height = 720
fps = 15
[source.synthetic]
lens = "brown_conrady"
focal_per_width = 0.55
distortion = [-0.32, 0.12, 0.001, -0.0005, -0.02]
instrument = false
[source.synthetic.tracked]
phantom = "{phantom}"
camera_from_scope = "{hand_eye}"
listen = "127.0.0.1:{tracker_port}"
speed_mm_s = 3.0
path_radius_mm = 15.0
distance_mm = 90.0
[[tracking.trackers]]
name = "simulated"
connect = "127.0.0.1:{tracker_port}"
tracker_timestamps = true
[compositor]
output_mode = "distorted"
msaa = 1
demo_anatomy = false
[[compositor.models]]
path = "{surface}"
colour = [0.8, 0.8, 0.8]
opacity = 0.3
style = "wireframe"
visible = false
pose = {chain}
[recording]
enabled = true
record_clean = true
folder = "{recordings}"
[http]
listen = "127.0.0.1:{http_port}"
"#,
        recordings = dir.path().join("recordings").display(),
        phantom = folder.join("phantom.json").display(),
        hand_eye = folder.join("camera_from_scope.json").display(),
        surface = folder.join("surface.obj").display(),
        chain = chain(&folder.join("camera_from_scope.json")),
    );
    let config_path = dir.path().join("station.toml");
    std::fs::write(&config_path, config).expect("write config");
    let mut station = start_command(Command::new(BIN).arg("run").arg("--config").arg(&config_path));
    let origin = format!("http://127.0.0.1:{http_port}");
    let (before, after) = (dir.path().join("before.png"), dir.path().join("after.png"));
    let report = node_script(
        "anchor.mjs",
        &[
            &origin,
            &station.operator_token,
            &station.viewer_url,
            before.to_str().expect("utf-8 path"),
            after.to_str().expect("utf-8 path"),
            "6000",
        ],
    );
    signal(station.child.id(), "INT");
    let _ = station.child.wait();
    println!("{report:#}");
    if let Ok(to) = std::env::var("SCOPECAST_KEEP_SCREENSHOTS") {
        std::fs::copy(&before, format!("{to}-before.png")).expect("copy");
        std::fs::copy(&after, format!("{to}-after.png")).expect("copy");
    }
    assert_eq!(report["roles"], serde_json::json!(["operator", "viewer"]));
    let marks = report["watcher_marks"].as_array().expect("the viewer's page lists the marks");
    assert_eq!(marks.len(), 1, "{marks:?}");
    assert_eq!(marks[0]["anchor"], "anatomy");
    assert_eq!(marks[0]["on_screen"], 0, "every point of the circle is on the surface: {:?}", marks[0]);
    let panel = report["watcher_panel"].as_str().unwrap_or_default();
    assert!(panel.contains("on anatomy (surface)"), "the viewer's page says where the mark stays: {panel}");
    assert!(report["drawer_panel"].as_str().unwrap_or_default().contains("on anatomy"));
    let read = |path: &Path| image::open(path).expect("a screenshot").to_rgba8();
    let (ring_before, dot_before) = circle_and_dot(&read(&before)).expect("the circle around a dot, before");
    let (ring_after, dot_after) = circle_and_dot(&read(&after)).expect("the circle around a dot, after");
    let off = |ring: [f64; 2], dot: [f64; 2]| (ring[0] - dot[0]).hypot(ring[1] - dot[1]);
    let moved = (dot_after[0] - dot_before[0]).hypot(dot_after[1] - dot_before[1]);
    println!(
        "circle centre from the dot: {:.2} px before, {:.2} px after; the dot moved {moved:.1} px; circle {ring_before:.1?} → {ring_after:.1?}",
        off(ring_before, dot_before),
        off(ring_after, dot_after)
    );
    assert!(moved > 60.0, "the scope moved the dot across the picture: {moved:.1} px");
    assert!(off(ring_before, dot_before) < 3.0, "the circle is around the dot: {:.2} px", off(ring_before, dot_before));
    assert!(off(ring_after, dot_after) < 3.0, "the circle followed the dot: {:.2} px", off(ring_after, dot_after));

    // The recording: every frame's pose of the surface, and the mark on it.
    let session = scopecast_engine::recorder::sessions(&dir.path().join("recordings")).pop().expect("a session");
    let timeline = std::fs::read(session.join("timeline.bin")).expect("timeline");
    let records = scopecast_engine::recorder::timeline::read(&timeline).expect("a timeline").records;
    let posed: usize = records
        .iter()
        .map(|r| match r {
            TimelineRecord::Poses { frames } => frames.len(),
            _ => 0,
        })
        .sum();
    assert!(posed > 100, "the frames' poses are recorded: {posed}");
    // Replayed with the overlays drawn afresh: the recorded circle around the same dot, wherever the scope took it.
    let replay_port = free_port();
    let mut replay = start_command(
        Command::new(BIN)
            .arg("replay")
            .arg(&session)
            .arg("--config")
            .arg(&config_path)
            .args(["--listen", &format!("127.0.0.1:{replay_port}")]),
    );
    assert!(replay.startup.iter().any(|l| l.contains("overlays drawn afresh")), "{:?}", replay.startup);
    let mut replayed = Vec::new();
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let (head, png) =
            http_get_bytes(&format!("127.0.0.1:{replay_port}"), "/snapshot.png", Some(&replay.operator_token));
        if !head.starts_with("HTTP/1.1 200") {
            continue;
        }
        if let Some(found) = circle_and_dot(&image::load_from_memory(&png).expect("a PNG").to_rgba8()) {
            replayed.push(found);
        }
        if replayed.len() >= 12 {
            break;
        }
    }
    signal(replay.child.id(), "INT");
    let _ = replay.child.wait();
    let offsets: Vec<f64> = replayed.iter().map(|(ring, dot)| off(*ring, *dot)).collect();
    let spread = replayed
        .iter()
        .map(|(_, dot)| (dot[0] - replayed[0].1[0]).hypot(dot[1] - replayed[0].1[1]))
        .fold(0.0, f64::max);
    println!(
        "replayed: {} frames with the circle, its centre from the dot {offsets:.2?} px, the dot travelled {spread:.1} px",
        replayed.len()
    );
    assert!(replayed.len() >= 12, "the replay shows the recorded circle: {} frames", replayed.len());
    assert!(spread > 20.0, "the replayed frames span the scope's motion: {spread:.1} px");
    assert!(offsets.iter().all(|o| *o < 3.0), "re-projected from the recorded poses: {offsets:.2?} px");
}
