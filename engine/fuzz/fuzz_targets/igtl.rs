//! The OpenIGTLink decoder (tracker connections) on arbitrary bytes: it
//! never panics, holds at most a readable body's worth of bytes, decodes the
//! same whatever the chunking (the first byte picks the chunk size), and
//! every TRANSFORM or TDATA it accepts encodes back to bytes that decode to
//! the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopecast_transport::igtl::decoder::MAX_READ_BODY_BYTES;
use scopecast_transport::igtl::message::encode;
use scopecast_transport::igtl::{Content, Decoder};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else { return };
    let mut whole = Decoder::new();
    let all = whole.push(stream);
    let mut chunked = Decoder::new();
    let mut pieces = Vec::new();
    for part in stream.chunks(usize::from(chunk).max(1)) {
        pieces.extend(chunked.push(part));
        assert!(chunked.buffered_bytes() as u64 <= MAX_READ_BODY_BYTES.max(58));
    }
    assert_eq!(pieces, all, "chunking changes nothing");
    for message in all.into_iter().flatten() {
        if matches!(message.content, Content::Transform(_) | Content::TrackingData(_)) {
            let again = Decoder::new().push(&encode(&message));
            assert_eq!(again.len(), 1);
            let again = again.into_iter().next().and_then(Result::ok).expect("what we encode we decode");
            assert_eq!(again.content, message.content);
            assert_eq!(again.metadata, message.metadata);
        }
    }
});
