//! The station's config (TOML) on arbitrary text: parsing and range checks
//! never panic, and a config that passes them writes back to TOML that
//! parses to the same value. (The calibration path is pinned to "synthetic"
//! before the checks, so the fuzzer does not make them read this machine's
//! files.)
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use scopecast_engine::config::{CalibrationSource, Config};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("fuzz.toml");
    let Ok(mut config) = Config::from_toml_str(text, path) else { return };
    config.compositor.calibration = CalibrationSource::Synthetic;
    if config.validate(path).is_err() {
        return;
    }
    let written = toml::to_string(&config).expect("a valid config serialises");
    let again = Config::from_toml_str(&written, path).expect("what we write we read");
    assert_eq!(again, config, "a config survives writing and reading:\n{written}");
});
