//! The trickle-ICE fragment parser (`PATCH /whep/{id}` bodies) on arbitrary
//! text: it must never panic, and what it accepts holds no more candidates
//! than the body has lines, none of them empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopecast_transport::ice::parse_sdpfrag;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else { return };
    let Ok(fragment) = parse_sdpfrag(body) else { return };
    assert!(fragment.candidates.len() <= body.lines().count());
    assert!(fragment.candidates.iter().all(|(_, candidate)| !candidate.is_empty()));
});
