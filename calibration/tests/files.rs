//! Calibration files written by us open in OpenCV's `cv2.FileStorage` with
//! the same values, and OpenCV's own files read back here.

use std::path::Path;

use scopecast_calibration::camera::{BrownConrady, CameraModel, LensModel, PinholeIntrinsics};
use scopecast_calibration::file::CalibrationFile;

mod common;

#[test]
fn opencv_filestorage_reads_our_yaml_and_we_read_its() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ours = dir.path().join("ours.yaml");
    let written = CalibrationFile {
        camera: CameraModel {
            intrinsics: PinholeIntrinsics { fx: 1149.9203, fy: 1145.9251, cx: 962.1281, cy: 538.3974 },
            lens: LensModel::BrownConrady(BrownConrady { k1: -0.31, k2: 0.12, p1: 0.0008, p2: -0.0006, k3: -0.02 }),
        },
        image_width: 1920,
        image_height: 1080,
        avg_reprojection_error: 0.2726,
    };
    written.save(&ours).expect("written");
    let theirs = dir.path().join("theirs.yaml");
    let script = r#"
import sys, json, cv2
import numpy as np
src, dst = sys.stdin.read().split()
fs = cv2.FileStorage(src, cv2.FILE_STORAGE_READ)
K = fs.getNode("camera_matrix").mat(); D = fs.getNode("distortion_coefficients").mat()
out = [K[0, 0], K[1, 1], K[0, 2], K[1, 2]] + list(D.ravel()) + [fs.getNode("image_width").real(), fs.getNode("avg_reprojection_error").real()]
fs.release()
w = cv2.FileStorage(dst, cv2.FILE_STORAGE_WRITE)
w.write("camera_model", "brown_conrady"); w.write("image_width", 1920); w.write("image_height", 1080)
w.write("camera_matrix", K); w.write("distortion_coefficients", D); w.write("avg_reprojection_error", 0.2726)
w.release()
print(json.dumps(out))
"#;
    let stdout = common::python(script, &format!("{} {}", ours.display(), theirs.display()));
    let values: Vec<f64> = serde_json::from_slice(&stdout).expect("numbers");
    assert_eq!(&values[..4], &[1149.9203, 1145.9251, 962.1281, 538.3974]);
    assert_eq!(&values[4..9], &[-0.31, 0.12, 0.0008, -0.0006, -0.02]);
    assert_eq!(&values[9..], &[1920.0, 0.2726]);
    let read = CalibrationFile::load(&theirs).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read, written, "OpenCV's own file reads back to the same calibration");
    assert!(CalibrationFile::load(Path::new("/nonexistent.yaml")).is_err());
}
