//! Phantom files (`scopecast-phantom/1` JSON) on arbitrary bytes: never a
//! panic, and a phantom we accept has every value in range and reads back
//! the same from the JSON we write.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopecast_engine::source::phantom::{MAX_FIDUCIALS, MAX_SIDE_MM, PhantomFile};

fuzz_target!(|data: &[u8]| {
    let Ok(phantom) = PhantomFile::parse(data) else { return };
    assert!(phantom.width_mm <= MAX_SIDE_MM && phantom.height_mm <= MAX_SIDE_MM);
    assert!(!phantom.fiducials_mm.is_empty() && phantom.fiducials_mm.len() <= MAX_FIDUCIALS);
    assert!(phantom.dot_radius_mm > 0.0 && phantom.ring_radius_mm > phantom.dot_radius_mm);
    let again = PhantomFile::parse(phantom.to_json().as_bytes()).expect("what we read we write and read again");
    assert_eq!(again, phantom);
});
