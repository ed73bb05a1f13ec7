//! Running OpenCV (Python, opencv-python-headless) from the tests. The README's
//! test command installs it into `target/pyenv` and sets `SCOPECAST_PYTHON`;
//! without it these tests fail with that instruction, never skip.

#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

use scopecast_calibration::intrinsics::{ModelKind, View};

/// Runs `script` with `input` on stdin through the test Python; returns stdout.
pub fn python(script: &str, input: &str) -> Vec<u8> {
    let python = std::env::var("SCOPECAST_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} ({e}): the README's test command installs Python and OpenCV"));
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write input");
    let output = child.wait_with_output().expect("python finishes");
    assert!(
        output.status.success(),
        "OpenCV via {python} failed (the README's test command installs opencv-python-headless into target/pyenv and sets SCOPECAST_PYTHON): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Runs OpenCV on the views; returns (fx, fy, cx, cy, rms).
pub fn opencv(views: &[View], size: (u32, u32), kind: ModelKind) -> [f64; 5] {
    let script = r#"
import json, sys
import numpy as np
import cv2
d = json.load(sys.stdin)
obj = [np.array(v["object"], np.float64).reshape(-1, 1, 3) for v in d["views"]]
img = [np.array(v["image"], np.float64).reshape(-1, 1, 2) for v in d["views"]]
size = tuple(d["size"])
if d["kind"] == "bc":
    rms, K, dist, _, _ = cv2.calibrateCamera([o.reshape(-1, 3).astype(np.float32) for o in obj],
        [i.reshape(-1, 2).astype(np.float32) for i in img], size, None, None,
        criteria=(cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 200, 1e-15))
else:
    K = np.zeros((3, 3)); D = np.zeros((4, 1))
    rms, K, D, _, _ = cv2.fisheye.calibrate(obj, img, size, K, D,
        flags=getattr(cv2.fisheye, "CALIB_RECOMPUTE_EXTRINSIC", getattr(cv2, "CALIB_RECOMPUTE_EXTRINSIC", 0))
            | getattr(cv2.fisheye, "CALIB_FIX_SKEW", getattr(cv2, "CALIB_FIX_SKEW", 0)),
        criteria=(cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 200, 1e-15))
print(json.dumps([K[0, 0], K[1, 1], K[0, 2], K[1, 2], rms]))
"#;
    let input = format!(
        "{{\"size\": [{}, {}], \"kind\": \"{}\", \"views\": [{}]}}",
        size.0,
        size.1,
        if kind == ModelKind::BrownConrady { "bc" } else { "kb" },
        views
            .iter()
            .map(|v| format!("{{\"object\": {:?}, \"image\": {:?}}}", v.object, v.image))
            .collect::<Vec<_>>()
            .join(",")
    );
    serde_json::from_slice(&python(script, &input)).expect("five numbers from OpenCV")
}
