//! Intrinsic calibration against references integrators trust: the calib1
//! measured set (Bouguet's toolbox; OpenCV agrees to ~1e-6), synthetic views
//! of known cameras, and OpenCV itself (`cv2.calibrateCamera`,
//! `cv2.fisheye.calibrate`) run on the same input through Python.

use std::path::Path;

use scopecast_calibration::camera::{BrownConrady, CameraModel, KannalaBrandt, LensModel, PinholeIntrinsics};
use scopecast_calibration::intrinsics::{CalibrationError, CalibrationFlags, ModelKind, View, calibrate};
use scopecast_calibration::points_file::PointsFile;

mod common;
use common::opencv;

fn calib1() -> PointsFile {
    PointsFile::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/calib1.json")).expect("calib1 loads")
}

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

#[test]
fn calib1_matches_the_reference_within_a_tenth_of_a_percent() {
    let input = calib1();
    let flags = CalibrationFlags { fix_k3: true, ..Default::default() };
    let result = calibrate(&input.views, input.image_size, ModelKind::BrownConrady, flags).expect("calibrates");
    let k = result.camera.intrinsics;
    // Reference from calib1.json (Bouguet's toolbox).
    let reference = [(k.fx, 809.9479), (k.fy, 806.55964), (k.cx, 361.99611), (k.cy, 214.39514)];
    println!(
        "calib1: fx {:.5} fy {:.5} cx {:.5} cy {:.5}, rms {:.5} px, {} iterations",
        k.fx, k.fy, k.cx, k.cy, result.rms_px, result.iterations
    );
    for (name, (got, want)) in ["fx", "fy", "cx", "cy"].iter().zip(reference) {
        println!("  {name}: {got:.5} vs {want:.5} ({:.2e} relative)", relative(got, want));
        assert!(relative(got, want) < 1e-3, "{name} {got} vs reference {want}");
    }
    let LensModel::BrownConrady(d) = result.camera.lens else { panic!("model") };
    assert_eq!(d.k3, 0.0, "k3 stays fixed");
    assert!((d.k1 - -0.12821).abs() < 0.01 && (d.k2 - -0.39441).abs() < 0.05, "{d:?}");
    assert!((result.rms_px - 0.139).abs() < 0.01, "RMS {} (OpenCV reports about 0.139)", result.rms_px);
    assert_eq!(result.per_view_rms_px.len(), 7);
    assert!(result.std_dev.intrinsics.iter().all(|s| *s > 0.0 && *s < 10.0), "{:?}", result.std_dev);
    assert_eq!(result.std_dev.distortion[4], 0.0, "a fixed parameter has no spread");
}

/// Twelve views of a 9×6 board (25 mm) seen by `camera`, with Gaussian image noise of `noise_px`.
fn synthetic_views(camera: &CameraModel, size: (u32, u32), noise_px: f64, seed: u64) -> Vec<View> {
    let views = scopecast_calibration::synthetic::board_views(camera, size, (9, 6, 25.0), 12, noise_px, seed);
    assert!(views.len() >= 8, "only {} synthetic views fit the image", views.len());
    views
}

fn strong_bc() -> CameraModel {
    CameraModel {
        intrinsics: PinholeIntrinsics { fx: 1150.0, fy: 1146.0, cx: 962.3, cy: 538.9 },
        lens: LensModel::BrownConrady(BrownConrady { k1: -0.31, k2: 0.12, p1: 0.0008, p2: -0.0006, k3: -0.02 }),
    }
}

fn fisheye() -> CameraModel {
    CameraModel {
        intrinsics: PinholeIntrinsics { fx: 620.0, fy: 621.5, cx: 958.1, cy: 541.7 },
        lens: LensModel::KannalaBrandt(KannalaBrandt { k1: 0.08, k2: -0.02, k3: 0.004, k4: -0.0006 }),
    }
}

#[test]
fn synthetic_views_recover_the_true_camera() {
    for (camera, kind) in [(strong_bc(), ModelKind::BrownConrady), (fisheye(), ModelKind::KannalaBrandt)] {
        let views = synthetic_views(&camera, (1920, 1080), 0.1, 7);
        let result = calibrate(&views, (1920, 1080), kind, CalibrationFlags::default()).expect("calibrates");
        let (got, want) = (result.camera.intrinsics, camera.intrinsics);
        for (name, g, w) in
            [("fx", got.fx, want.fx), ("fy", got.fy, want.fy), ("cx", got.cx, want.cx), ("cy", got.cy, want.cy)]
        {
            assert!(relative(g, w) < 2e-3, "{kind:?} {name}: {g} vs true {w}");
        }
        assert!(result.rms_px < 0.2, "{kind:?}: RMS {} with 0.1 px noise", result.rms_px);
    }
}

#[test]
fn intrinsics_agree_with_opencv_within_a_tenth_of_a_percent() {
    let input = calib1();
    let mut cases = vec![("calib1 (k3 free)", input.views.clone(), input.image_size, ModelKind::BrownConrady)];
    cases.push((
        "1080p strong Brown-Conrady",
        synthetic_views(&strong_bc(), (1920, 1080), 0.2, 11),
        (1920, 1080),
        ModelKind::BrownConrady,
    ));
    cases.push((
        "1080p Kannala-Brandt fisheye",
        synthetic_views(&fisheye(), (1920, 1080), 0.2, 13),
        (1920, 1080),
        ModelKind::KannalaBrandt,
    ));
    for (name, views, size, kind) in cases {
        let ours = calibrate(&views, size, kind, CalibrationFlags::default()).expect("calibrates");
        let theirs = opencv(&views, size, kind);
        let k = ours.camera.intrinsics;
        println!(
            "{name}: ours fx {:.4} fy {:.4} cx {:.4} cy {:.4} rms {:.4}; OpenCV {:.4} {:.4} {:.4} {:.4} rms {:.4}",
            k.fx, k.fy, k.cx, k.cy, ours.rms_px, theirs[0], theirs[1], theirs[2], theirs[3], theirs[4]
        );
        for (i, got) in [k.fx, k.fy, k.cx, k.cy].iter().enumerate() {
            assert!(relative(*got, theirs[i]) < 1e-3, "{name}: parameter {i}: {got} vs OpenCV {}", theirs[i]);
        }
    }
}

#[test]
fn degenerate_input_is_refused_with_a_reason() {
    let input = calib1();
    let flags = CalibrationFlags::default();
    let err = calibrate(&input.views[..2], input.image_size, ModelKind::BrownConrady, flags).expect_err("two views");
    assert_eq!(err, CalibrationError::TooFewViews { views: 2 });
    let mut views = input.views.clone();
    views[1].image.pop();
    assert!(matches!(
        calibrate(&views, input.image_size, ModelKind::BrownConrady, flags),
        Err(CalibrationError::BadView { view: 1, .. })
    ));
    let mut views = input.views.clone();
    views[0].object[3][2] = 1.0;
    assert!(matches!(
        calibrate(&views, input.image_size, ModelKind::BrownConrady, flags),
        Err(CalibrationError::NotPlanar { view: 0, point: 3, .. })
    ));
    // Every view identical: the intrinsics are not determined.
    let same = vec![input.views[0].clone(); 4];
    let err = calibrate(&same, input.image_size, ModelKind::BrownConrady, flags).expect_err("repeated views");
    println!("repeated views: {err}");
    // Collinear points.
    let line = View {
        object: (0..8).map(|i| [i as f64, 0.0, 0.0]).collect(),
        image: (0..8).map(|i| [i as f64 * 10.0, 5.0]).collect(),
    };
    assert!(calibrate(&[line.clone(), line.clone(), line], (640, 480), ModelKind::BrownConrady, flags).is_err());
}

#[test]
fn standard_deviations_agree_with_calibrate_camera_extended() {
    let input = calib1();
    let flags = CalibrationFlags { fix_k3: true, ..Default::default() };
    let ours = calibrate(&input.views, input.image_size, ModelKind::BrownConrady, flags).expect("calibrates");
    let script = r#"
import json, sys, numpy as np, cv2
d = json.load(sys.stdin)
obj = [np.array(v["object"], np.float32) for v in d["views"]]
img = [np.array(v["image"], np.float32) for v in d["views"]]
r = cv2.calibrateCameraExtended(obj, img, (640, 480), None, None, flags=cv2.CALIB_FIX_K3)
print(json.dumps(list(r[5].ravel()[:9])))
"#;
    let views: Vec<String> =
        input.views.iter().map(|v| format!("{{\"object\": {:?}, \"image\": {:?}}}", v.object, v.image)).collect();
    let stdout = common::python(script, &format!("{{\"views\": [{}]}}", views.join(",")));
    let theirs: Vec<f64> = serde_json::from_slice(&stdout).expect("nine numbers");
    let mine: Vec<f64> = ours.std_dev.intrinsics.iter().chain(&ours.std_dev.distortion).copied().collect();
    println!("σ ours {mine:?}\nσ OpenCV {theirs:?}");
    for (i, (a, b)) in mine.iter().zip(&theirs).enumerate() {
        assert!((a - b).abs() <= 0.01 * b.abs() + 1e-12, "σ[{i}]: {a} vs OpenCV {b}");
    }
}
