//! A mark on the anatomy, end to end (issue 19): a station runs the tracked
//! phantom (synthetic endoscope moving at 3 mm/s, simulated tracker over
//! OpenIGTLink, the phantom's hidden surface as the registered model); one
//! page in headless Chromium (an operator's, "on anatomy") draws a circle
//! around a painted dot with the mouse; the other page (a viewer's) sees the
//! circle around that dot, and six seconds later still around it, after the
//! scope carried the dot over 60 px across the picture. Both pages list the
//! mark as on the anatomy.

mod viewer;

use std::path::Path;
use std::process::Command;

use viewer::{BIN, node_script, signal, start_command};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The magenta circle's centroid and the dark dot's inside it, px.
fn circle_and_dot(picture: &image::RgbaImage) -> Option<([f64; 2], [f64; 2])> {
    let (w, h) = picture.dimensions();
    let (mut ring, mut n) = ([0.0f64; 2], 0.0);
    for (x, y, p) in picture.enumerate_pixels() {
        let [r, g, b, _] = p.0;
        if r > 170 && b > 170 && g < 110 {
            ring[0] += f64::from(x);
            ring[1] += f64::from(y);
            n += 1.0;
        }
    }
    if n < 100.0 {
        return None;
    }
    let ring = [ring[0] / n, ring[1] / n];
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
[http]
listen = "127.0.0.1:{http_port}"
"#,
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
}
