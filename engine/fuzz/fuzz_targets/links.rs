//! Link tokens (any bearer starting `sc1.`) and the revocations file on
//! arbitrary bytes: never a panic; no token is accepted without this
//! station's signature (the fuzzer cannot forge an HMAC-SHA-256, so any
//! accepted input is a bug), and a revocations file that parses writes back
//! to the same list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopecast_transport::links::{LinkKey, Revocations, parse_duration_s};

fuzz_target!(|data: &[u8]| {
    let key = LinkKey::from_secret(&[0x5c; 32]);
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(key.open(text).is_err(), "an unsigned token was accepted: {text:?}");
        let _ = parse_duration_s(text);
    }
    if let Ok(revoked) = Revocations::parse(data) {
        assert_eq!(Revocations::parse(&revoked.to_bytes()), Ok(revoked));
    }
});
