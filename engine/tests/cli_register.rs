//! `scopecast calibrate pivot|hand-eye` and `scopecast register points|surface`
//! as a user runs them: documented JSON/CSV in, figures printed, JSON out.

use std::process::{Command, Output};

use nalgebra::{Isometry3, Point3, Translation3, UnitQuaternion, Vector3};
use scopecast_calibration::registration::rows_from_isometry;

const BIN: &str = env!("CARGO_BIN_EXE_scopecast");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("scopecast runs")
}

fn ok(output: &Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn pose(t: [f64; 3], euler: [f64; 3]) -> Isometry3<f64> {
    Isometry3::from_parts(
        Translation3::new(t[0], t[1], t[2]),
        UnitQuaternion::from_euler_angles(euler[0], euler[1], euler[2]),
    )
}

fn json_rows(poses: &[Isometry3<f64>]) -> String {
    let rows: Vec<String> = poses.iter().map(|p| format!("{:?}", rows_from_isometry(p))).collect();
    format!("[{}]", rows.join(","))
}

#[test]
fn pivot_and_hand_eye_recover_known_geometry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tip = Vector3::new(0.8, -1.2, 148.0);
    let pivot = Vector3::new(20.0, -35.0, 950.0);
    let tools: Vec<_> = [(0.0, 0.0, 0.0), (0.3, 0.1, 0.0), (-0.25, 0.2, 0.5), (0.1, -0.3, 1.0), (0.2, 0.25, -0.7)]
        .iter()
        .map(|&(a, b, c)| {
            let r = UnitQuaternion::from_euler_angles(a, b, c);
            Isometry3::from_parts(Translation3::from(pivot - r * tip), r)
        })
        .collect();
    let poses_path = dir.path().join("pivot.json");
    std::fs::write(&poses_path, format!("{{\"tracker_from_tool\": {}}}", json_rows(&tools))).expect("write");
    let out_path = dir.path().join("pivot_result.json");
    let text = ok(&run(&[
        "calibrate",
        "pivot",
        "--poses",
        poses_path.to_str().expect("utf-8"),
        "--output",
        out_path.to_str().expect("utf-8"),
    ]));
    assert!(text.contains("RMS 0.0000 mm"), "{text}");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_path).expect("written")).expect("json");
    assert!((result["tip_in_tool_mm"][2].as_f64().expect("number") - 148.0).abs() < 1e-6);

    let x = pose([12.0, -6.0, 110.0], [0.1, -0.2, 1.2]);
    let target = pose([50.0, 0.0, 1100.0], [0.0, 0.1, 0.2]);
    let markers: Vec<_> = (0..6)
        .map(|i| {
            pose(
                [30.0 * i as f64, 10.0 * (i as f64).sin(), 900.0],
                [0.3 * (i as f64).sin(), 0.2 * (i as f64 * 1.7).cos(), 0.4 * i as f64],
            )
        })
        .collect();
    let cameras: Vec<_> = markers.iter().map(|m| (m * x).inverse() * target).collect();
    let he_path = dir.path().join("hand_eye.json");
    std::fs::write(
        &he_path,
        format!(
            "{{\"tracker_from_marker\": {}, \"camera_from_target\": {}}}",
            json_rows(&markers),
            json_rows(&cameras)
        ),
    )
    .expect("write");
    let text = ok(&run(&["calibrate", "hand-eye", "--poses", he_path.to_str().expect("utf-8")]));
    assert!(text.contains("translation RMS 0.0000 mm"), "{text}");
    let json_start = text.find('{').expect("JSON printed");
    let result: serde_json::Value = serde_json::from_str(&text[json_start..]).expect("json");
    let m = result["marker_from_camera"].as_array().expect("16 numbers");
    assert!(
        (m[3].as_f64().expect("n") - 12.0).abs() < 1e-6 && (m[11].as_f64().expect("n") - 110.0).abs() < 1e-6,
        "{m:?}"
    );
}

#[test]
fn point_and_surface_registration_print_fre_tre_and_rms() {
    let dir = tempfile::tempdir().expect("temp dir");
    let truth = pose([5.0, -3.0, 80.0], [0.05, 0.1, -0.2]);
    let moving = [[0.0, 0.0, 0.0], [60.0, 0.0, 5.0], [0.0, 50.0, -5.0], [40.0, 40.0, 25.0], [-10.0, 20.0, 10.0]];
    let fixed: Vec<[f64; 3]> = moving
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let q = truth * Point3::new(p[0], p[1], p[2]);
            // 0.2 mm of localisation error on each fiducial.
            [q.x + 0.2 * (i as f64).sin(), q.y + 0.2 * (i as f64).cos(), q.z - 0.1]
        })
        .collect();
    let pairs = dir.path().join("pairs.json");
    std::fs::write(
        &pairs,
        format!("{{\"moving\": {moving:?}, \"fixed\": {fixed:?}, \"targets\": [[20.0, 20.0, 60.0]]}}"),
    )
    .expect("write");
    let text = ok(&run(&["register", "points", "--pairs", pairs.to_str().expect("utf-8")]));
    assert!(text.starts_with("FRE 0.1"), "{text}");
    assert!(text.contains("predicted TRE at targets: [0."), "{text}");

    // A dense bumpy surface and a sparse, moved patch of it, as CSV.
    let surface: Vec<[f64; 3]> = (0..120 * 120)
        .map(|k| {
            let (x, y) = ((k / 120) as f64 * 0.75 - 45.0, (k % 120) as f64 * 0.75 - 45.0);
            [x, y, 6.0 * (x / 7.0).sin() * (y / 9.0).cos() + 0.01 * x * y]
        })
        .collect();
    let small = pose([1.5, -1.0, 0.8], [0.03, -0.02, 0.05]);
    let patch: Vec<[f64; 3]> = surface
        .iter()
        .enumerate()
        .filter(|(k, p)| k % 5 == 0 && p[0].abs() < 25.0 && p[1].abs() < 25.0)
        .map(|(_, p)| {
            let q = small.inverse() * Point3::new(p[0], p[1], p[2]);
            [q.x, q.y, q.z]
        })
        .collect();
    let csv = |points: &[[f64; 3]]| {
        points.iter().map(|p| format!("{},{},{}", p[0], p[1], p[2])).collect::<Vec<_>>().join("\n")
    };
    let (fixed_path, moving_path) = (dir.path().join("model.csv"), dir.path().join("scan.csv"));
    std::fs::write(&fixed_path, format!("x,y,z\n{}", csv(&surface))).expect("write");
    std::fs::write(&moving_path, csv(&patch)).expect("write");
    let text = ok(&run(&[
        "register",
        "surface",
        "--moving",
        moving_path.to_str().expect("utf-8"),
        "--fixed",
        fixed_path.to_str().expect("utf-8"),
    ]));
    assert!(text.contains("converged"), "{text}");
    let json_start = text.find('{').expect("JSON printed");
    let result: serde_json::Value = serde_json::from_str(&text[json_start..]).expect("json");
    let rows = result["fixed_from_moving"].as_array().expect("16 numbers");
    assert!((rows[3].as_f64().expect("n") - 1.5).abs() < 0.05, "{rows:?}");
    assert!(result["rms_mm"].as_f64().expect("n") < 0.05, "{result}");
}

#[test]
fn bad_inputs_are_errors_that_name_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{ nope").expect("write");
    let not_rigid = dir.path().join("scaled.json");
    std::fs::write(
        &not_rigid,
        format!("{{\"tracker_from_tool\": [{:?}]}}", [2.0, 0., 0., 0., 0., 2., 0., 0., 0., 0., 2., 0., 0., 0., 0., 1.]),
    )
    .expect("write");
    let collinear = dir.path().join("line.json");
    std::fs::write(&collinear, "{\"moving\": [[0,0,0],[1,0,0],[2,0,0]], \"fixed\": [[0,0,0],[1,0,0],[2,0,0]]}")
        .expect("write");
    for (args, needle) in [
        (vec!["calibrate", "pivot", "--poses", garbage.to_str().expect("utf-8")], "garbage.json"),
        (vec!["calibrate", "pivot", "--poses", not_rigid.to_str().expect("utf-8")], "not a rigid transform"),
        (vec!["register", "points", "--pairs", collinear.to_str().expect("utf-8")], "collinear"),
    ] {
        let output = run(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(needle) && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
}
