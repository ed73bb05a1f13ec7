//! Time of intrinsic calibration and of ICP on fixed seeded inputs, and, in
//! the same run, OpenCV's `calibrateCamera` on the same views (through the
//! Python that `.ci/test` installs into `target/pyenv`, or `SCOPECAST_PYTHON`).
//! Goal (issue 4): not slower than OpenCV.
//!
//! Run with `cargo bench -p scopecast-benches --bench calibration`.

use std::io::Write;
use std::process::{Command, Stdio};

use nalgebra::{Isometry3, Point3, Translation3, UnitQuaternion, Vector3};
use scopecast_benches::{Timings, ms};
use scopecast_calibration::camera::{BrownConrady, CameraModel, LensModel, PinholeIntrinsics};
use scopecast_calibration::intrinsics::{CalibrationFlags, ModelKind, View, calibrate};
use scopecast_calibration::points_file::PointsFile;
use scopecast_calibration::registration::icp::{IcpMetric, IcpSettings, icp};
use scopecast_calibration::synthetic::board_views;

const RUNS: usize = 20;

fn opencv_ms(views: &[View], size: (u32, u32)) -> Option<(f64, f64)> {
    let python = std::env::var("SCOPECAST_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pyenv/bin/python").to_string());
    let script = r#"
import json, sys, time
import numpy as np, cv2
d = json.load(sys.stdin)
obj = [np.array(v["object"], np.float32) for v in d["views"]]
img = [np.array(v["image"], np.float32) for v in d["views"]]
times = []
for _ in range(int(d["runs"]) + 2):
    t = time.perf_counter()
    cv2.calibrateCamera(obj, img, tuple(d["size"]), None, None)
    times.append((time.perf_counter() - t) * 1e3)
times = sorted(times[2:])
print(json.dumps([times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]]))
"#;
    let views_json: Vec<String> =
        views.iter().map(|v| format!("{{\"object\": {:?}, \"image\": {:?}}}", v.object, v.image)).collect();
    let input =
        format!("{{\"runs\": {RUNS}, \"size\": [{}, {}], \"views\": [{}]}}", size.0, size.1, views_json.join(","));
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(input.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    let v: Vec<f64> = serde_json_lite(&String::from_utf8_lossy(&out.stdout))?;
    Some((v[0], v[1]))
}

/// Parses `[a, b]`.
fn serde_json_lite(text: &str) -> Option<Vec<f64>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    inner.split(',').map(|s| s.trim().parse().ok()).collect()
}

fn calibration_case(name: &str, views: &[View], size: (u32, u32)) {
    let timings = Timings::measure(2, RUNS, || {
        let result = calibrate(views, size, ModelKind::BrownConrady, CalibrationFlags::default());
        assert!(result.is_ok(), "{result:?}");
    });
    let points: usize = views.iter().map(|v| v.object.len()).sum();
    let ours = format!("ours p50 {} ms p99 {} ms", ms(timings.quantile(0.5)), ms(timings.quantile(0.99)));
    let theirs = match opencv_ms(views, size) {
        Some((p50, p99)) => format!("OpenCV calibrateCamera p50 {p50:.3} ms p99 {p99:.3} ms"),
        None => "OpenCV not available (run .ci/test once to install it into target/pyenv)".into(),
    };
    println!("{name:<34} {} views, {points} points: {ours} | {theirs}", views.len());
}

fn main() {
    println!("intrinsic calibration (Brown-Conrady, all coefficients free), {RUNS} runs each:");
    let calib1 = PointsFile::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../calibration/tests/data/calib1.json"
    )))
    .unwrap_or_else(|e| panic!("{e}"));
    calibration_case("calib1 (640x480, measured)", &calib1.views, calib1.image_size);
    let camera = CameraModel {
        intrinsics: PinholeIntrinsics { fx: 1150.0, fy: 1146.0, cx: 962.3, cy: 538.9 },
        lens: LensModel::BrownConrady(BrownConrady { k1: -0.31, k2: 0.12, p1: 0.0008, p2: -0.0006, k3: -0.02 }),
    };
    for count in [10, 25] {
        let views = board_views(&camera, (1920, 1080), (9, 6, 25.0), count, 0.2, 99);
        calibration_case("1080p synthetic, seed 99", &views, (1920, 1080));
    }

    println!("ICP (bumpy surface, 0.5 mm grid, 32 400 fixed points; sparse noisy patch):");
    let fixed: Vec<Vector3<f64>> = (0..180 * 180)
        .map(|k| {
            let (x, y) = ((k / 180) as f64 * 0.5 - 45.0, (k % 180) as f64 * 0.5 - 45.0);
            Vector3::new(x, y, 6.0 * (x / 7.0).sin() * (y / 9.0).cos() + 0.01 * x * y)
        })
        .collect();
    let truth =
        Isometry3::from_parts(Translation3::new(2.0, -1.0, 1.0), UnitQuaternion::from_euler_angles(0.04, -0.03, 0.06));
    let moving: Vec<Vector3<f64>> = fixed
        .iter()
        .enumerate()
        .filter(|(k, p)| k % 5 == 0 && p.x.abs() < 25.0 && p.y.abs() < 25.0)
        .map(|(k, p)| {
            (truth.inverse() * Point3::from(*p)).coords
                + Vector3::new(0.0, 0.0, ((k * 7919) % 200) as f64 / 1000.0 - 0.1)
        })
        .collect();
    for metric in [IcpMetric::PointToPlane, IcpMetric::PointToPoint] {
        let mut iterations = 0;
        let timings = Timings::measure(1, 10, || {
            let result = icp(&moving, &fixed, Isometry3::identity(), IcpSettings { metric, ..Default::default() });
            iterations = result.map(|r| r.iterations).unwrap_or(0);
        });
        println!(
            "{:<34} {} moving points: p50 {} ms p99 {} ms ({iterations} iterations, k-d tree and normals included)",
            format!("{metric:?}"),
            moving.len(),
            ms(timings.quantile(0.5)),
            ms(timings.quantile(0.99))
        );
    }
}
