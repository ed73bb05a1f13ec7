//! Camera calibration files (OpenCV FileStorage YAML or JSON; the first byte
//! picks one) on arbitrary text: never a panic, and a calibration we accept
//! we can write and read back.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use scopecast_calibration::file::CalibrationFile;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let path = Path::new("fuzz.calibration");
    if which % 2 == 0 {
        if let Ok(calibration) = CalibrationFile::parse_json(text, path) {
            CalibrationFile::parse_json(&calibration.to_json(), path).expect("what we read we write and read again");
        }
    } else if let Ok(calibration) = CalibrationFile::parse_opencv_yaml(text, path) {
        CalibrationFile::parse_opencv_yaml(&calibration.to_opencv_yaml(), path)
            .expect("what we read we write and read again");
    }
});
