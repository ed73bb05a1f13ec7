//! Chessboard detection on images rendered through a known, strongly
//! distorted camera with blur, noise, uneven lighting and perspective: the
//! detected corners against the true projections, in px.

use scopecast_calibration::camera::{BrownConrady, CameraModel, LensModel, PinholeIntrinsics};
use scopecast_calibration::detect::DetectError;
use scopecast_calibration::detect::chessboard::find_chessboard;
use scopecast_calibration::intrinsics::{CalibrationFlags, ModelKind, View, calibrate};
use scopecast_calibration::synthetic::{RenderQuality, render_board};

fn camera() -> CameraModel {
    CameraModel {
        intrinsics: PinholeIntrinsics { fx: 720.0, fy: 718.0, cx: 641.5, cy: 358.2 },
        lens: LensModel::BrownConrady(BrownConrady { k1: -0.28, k2: 0.09, p1: 0.0005, p2: -0.0004, k3: 0.0 }),
    }
}

const BOARD: (usize, usize, f64) = (9, 6, 20.0);

fn poses() -> Vec<([f64; 3], [f64; 3])> {
    vec![
        ([0.0, 0.0, 0.0], [-80.0, -50.0, 330.0]),
        ([0.35, -0.3, 0.1], [-90.0, -40.0, 300.0]),
        ([-0.4, 0.25, -0.2], [-60.0, -60.0, 320.0]),
        ([0.2, 0.45, 0.3], [-100.0, -30.0, 340.0]),
        ([-0.3, -0.4, 0.5], [-50.0, -80.0, 310.0]),
        ([0.5, 0.1, -0.4], [-70.0, -45.0, 290.0]),
    ]
}

#[test]
fn detected_corners_are_within_a_fraction_of_a_pixel() {
    let quality = RenderQuality { blur_px: 1.2, noise: 3.0, lighting_falloff: 0.5 };
    let (mut sum, mut count, mut max) = (0.0, 0usize, 0.0f64);
    let mut views = Vec::new();
    let object: Vec<[f64; 3]> =
        (0..BOARD.1).flat_map(|r| (0..BOARD.0).map(move |c| [c as f64 * BOARD.2, r as f64 * BOARD.2, 0.0])).collect();
    for (k, pose) in poses().into_iter().enumerate() {
        let (image, truth) = render_board(&camera(), (1280, 720), BOARD, pose, quality, 17 + k as u64);
        assert_eq!(truth.len(), BOARD.0 * BOARD.1, "pose {k}: the whole board is in view");
        let found = find_chessboard(&image, BOARD.0, BOARD.1).unwrap_or_else(|e| panic!("pose {k}: {e}"));
        for (f, t) in found.iter().zip(&truth) {
            let e = (f[0] - t[0]).hypot(f[1] - t[1]);
            sum += e;
            count += 1;
            max = max.max(e);
        }
        views.push(View { object: object.clone(), image: found });
    }
    let mean = sum / count as f64;
    println!(
        "chessboard corners on rendered images (blur 1.2 px, noise 3, lighting 50 %): mean {mean:.3} px, max {max:.3} px over {count} corners"
    );
    assert!(mean < 0.1 && max < 0.35, "mean {mean} px, max {max} px");
    // The detected corners calibrate the camera they were rendered with.
    let result = calibrate(
        &views,
        (1280, 720),
        ModelKind::BrownConrady,
        CalibrationFlags { fix_k3: true, ..Default::default() },
    )
    .expect("calibrates");
    let k = result.camera.intrinsics;
    println!(
        "calibrated from detections: fx {:.2} fy {:.2} cx {:.2} cy {:.2}, RMS {:.3} px",
        k.fx, k.fy, k.cx, k.cy, result.rms_px
    );
    assert!((k.fx / 720.0 - 1.0).abs() < 0.01 && (k.cx - 641.5).abs() < 5.0, "{k:?}");
}

#[test]
fn a_board_not_fully_in_view_is_reported_not_guessed() {
    let quality = RenderQuality { blur_px: 0.8, noise: 2.0, lighting_falloff: 0.2 };
    // Shifted so that part of the board leaves the image.
    let (image, truth) =
        render_board(&camera(), (1280, 720), BOARD, ([0.0, 0.0, 0.0], [250.0, -50.0, 330.0]), quality, 5);
    assert!(truth.iter().any(|p| p[0] > 1280.0) || truth.len() < BOARD.0 * BOARD.1);
    let err = find_chessboard(&image, BOARD.0, BOARD.1).expect_err("incomplete board");
    println!("{err}");
    // A blank image.
    let blank = scopecast_calibration::detect::GrayImage::new(320, 240, vec![128.0; 320 * 240]).expect("image");
    assert!(matches!(find_chessboard(&blank, 9, 6), Err(DetectError::TooFewCorners { .. })));
}

#[test]
fn asymmetric_circle_grids_are_found_in_layout_order() {
    use scopecast_calibration::detect::circles::find_asymmetric_circles;
    use scopecast_calibration::synthetic::render_circles;
    let quality = RenderQuality { blur_px: 1.0, noise: 3.0, lighting_falloff: 0.4 };
    let grid = (4, 11, 12.0);
    let (mut sum, mut count, mut max) = (0.0, 0usize, 0.0f64);
    for (k, pose) in [
        ([0.0, 0.0, 0.2], [-50.0, -60.0, 330.0]),
        ([0.3, -0.25, 0.1], [-40.0, -70.0, 320.0]),
        ([-0.35, 0.3, -0.3], [-60.0, -50.0, 340.0]),
    ]
    .into_iter()
    .enumerate()
    {
        let (image, truth) = render_circles(&camera(), (1280, 720), grid, pose, quality, 40 + k as u64);
        let found = find_asymmetric_circles(&image, grid.0, grid.1).unwrap_or_else(|e| panic!("pose {k}: {e}"));
        for (f, t) in found.iter().zip(&truth) {
            let e = (f[0] - t[0]).hypot(f[1] - t[1]);
            sum += e;
            count += 1;
            max = max.max(e);
        }
    }
    let mean = sum / count as f64;
    // Blob centroids carry the perspective bias of projected discs (as OpenCV's do).
    println!("asymmetric circles on rendered images: mean {mean:.3} px, max {max:.3} px over {count} centres");
    assert!(mean < 0.25 && max < 0.8, "mean {mean} px, max {max} px");
}
