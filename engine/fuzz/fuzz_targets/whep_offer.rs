//! `POST /whep` bodies through our offer checks into the WebRTC stack's SDP
//! parser (webrtc-rs): never a panic, whatever a viewer sends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopecast_transport::whep::check_offer;

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data).into_owned();
    if let Ok(offer) = check_offer(body) {
        assert!(offer.description.sdp.starts_with("v=0"));
    }
});
