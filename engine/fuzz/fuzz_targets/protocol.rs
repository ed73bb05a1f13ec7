//! The data-channel parser on arbitrary bytes: it must never panic, and what
//! it accepts must survive a round trip (serialise, add the version, parse
//! again) unchanged, so the station never holds a command it could not have
//! been sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopecast_transport::protocol::{PROTOCOL_VERSION, parse_command};

fuzz_target!(|data: &[u8]| {
    let Ok(command) = parse_command(data) else { return };
    let mut value = serde_json::to_value(&command).expect("a parsed command serialises");
    value.as_object_mut().expect("commands are objects").insert("v".into(), PROTOCOL_VERSION.into());
    let again = parse_command(value.to_string().as_bytes()).expect("a parsed command parses again");
    assert_eq!(again, command);
});
