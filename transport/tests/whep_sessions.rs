//! WHEP sessions as a hostile viewer meets them, in-process with real
//! webrtc-rs offers: concurrent offers cannot pass the seat limit, a seat
//! reserve lets staff in during a viewer flood, resource names are random
//! and bound to the credential that created them (anyone else gets "not
//! found"), one address cannot hold many setups, and sessions that never
//! connect are dropped after the deadline.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use scopecast_transport::auth::{Caller, Role};
use scopecast_transport::broadcast::Broadcast;
use scopecast_transport::fanout::FanOutPolicy;
use scopecast_transport::ice::parse_sdpfrag;
use scopecast_transport::whep::{Whep, WhepError, WhepSettings};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder, Registry,
    register_default_interceptors,
};

struct Quiet;

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Quiet {}

/// A receive-only H.264 offer from a real webrtc-rs peer (which never takes
/// the answer, so the station's side never connects).
async fn offer() -> (Arc<dyn PeerConnection>, String) {
    let mut media_engine = MediaEngine::default();
    let codec = RTCRtpCodec {
        mime_type: "video/H264".into(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".into(),
        rtcp_feedback: vec![],
    };
    media_engine
        .register_codec(RTCRtpCodecParameters { rtp_codec: codec, payload_type: 102 }, RtpCodecKind::Video)
        .expect("codec");
    let registry = register_default_interceptors(Registry::new(), &mut media_engine).expect("interceptors");
    let peer = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Quiet))
        .with_runtime(webrtc::runtime::default_runtime().expect("runtime"))
        .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
        .build()
        .await
        .expect("peer");
    let peer: Arc<dyn PeerConnection> = Arc::new(peer);
    peer.add_transceiver_from_kind(
        RtpCodecKind::Video,
        Some(RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Recvonly, ..Default::default() }),
    )
    .await
    .expect("transceiver");
    let offer = peer.create_offer(None).await.expect("offer");
    peer.set_local_description(offer.clone()).await.expect("local description");
    (peer, offer.sdp)
}

fn whep(max_viewers: usize, connect_deadline: Duration) -> Arc<Whep> {
    let broadcast = Arc::new(Broadcast::new(FanOutPolicy::default()));
    let settings = WhepSettings {
        bind_ip: IpAddr::from([127, 0, 0, 1]),
        max_viewers,
        ice_servers: Vec::new(),
        initial_estimate_bps: 1e6,
        connect_deadline,
        playout_delay_max_ms: 100,
    };
    Arc::new(Whep::new(broadcast, settings, None, scopecast_transport::clock::StationClock::from_now()))
}

fn caller(credential: usize, role: Role) -> Caller {
    Caller::config(credential, role)
}

fn address(third: u8, fourth: u8) -> Option<IpAddr> {
    Some(IpAddr::from([10, 0, third, fourth]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_offers_cannot_pass_the_limit_and_staff_still_get_in() {
    let whep = whep(8, Duration::from_secs(60));
    let (_peer, sdp) = offer().await;
    // 20 offers at once with the viewer token, each from its own address.
    let attempts: Vec<_> = (0..20u8)
        .map(|i| {
            let (whep, sdp) = (whep.clone(), sdp.clone());
            tokio::spawn(async move { whep.create(sdp, caller(0, Role::Viewer), address(1, i)).await })
        })
        .collect();
    let (mut created, mut full) = (0, 0);
    for attempt in attempts {
        match attempt.await.expect("task") {
            Ok(_) => created += 1,
            Err(WhepError::Full { limit }) => {
                assert_eq!(limit, 7, "viewer seats: 8 less 1 kept for staff");
                full += 1;
            }
            Err(e) => panic!("unexpected refusal: {e}"),
        }
    }
    println!("20 concurrent viewer offers: {created} created, {full} refused as full");
    assert_eq!(created, 7, "exactly the viewer seats, never more");
    assert_eq!(whep.viewer_count(), 7);
    // The surgeon (an annotator) joins during the flood, on the reserved seat.
    whep.create(sdp, caller(1, Role::Annotator), address(2, 1)).await.expect("staff get the reserved seat");
    assert_eq!(whep.viewer_count(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_unguessable_and_only_their_creator_or_an_operator_may_touch_them() {
    let whep = whep(32, Duration::from_secs(60));
    let (_peer, sdp) = offer().await;
    let (first, second, operator) = (caller(0, Role::Viewer), caller(1, Role::Viewer), caller(2, Role::Operator));
    let (mine, _) = whep.create(sdp.clone(), first.clone(), None).await.expect("first viewer");
    let (theirs, _) = whep.create(sdp, second.clone(), None).await.expect("second viewer");
    for id in [&mine, &theirs] {
        assert_eq!(id.as_str().len(), 32, "128 random bits, hex");
        assert!(id.as_str().chars().all(|c| c.is_ascii_hexdigit()));
    }
    assert_ne!(mine, theirs);
    // The second viewer tries to end and to patch the first one's session.
    assert!(!whep.delete(mine.as_str(), &second).await, "another viewer cannot end it");
    let fragment = parse_sdpfrag("a=ice-ufrag:abcd\r\na=ice-pwd:efghijklmnopqrstuvwxyz12\r\n").expect("fragment");
    assert!(matches!(whep.patch(mine.as_str(), &second, &fragment).await, Err(WhepError::NotFound)));
    assert!(!whep.delete("1", &second).await, "sequential numbers name nothing");
    assert_eq!(whep.viewer_count(), 2, "both sessions are still there");
    // Its creator and an operator may.
    assert!(whep.delete(mine.as_str(), &first).await, "the creator ends its own");
    assert!(whep.delete(theirs.as_str(), &operator).await, "an operator ends anyone's");
    assert_eq!(whep.viewer_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_that_never_connect_are_dropped_and_free_their_seats() {
    let whep = whep(4, Duration::from_millis(1500));
    let (_peer, sdp) = offer().await;
    for i in 0..3u8 {
        whep.create(sdp.clone(), caller(0, Role::Viewer), address(3, i)).await.expect("a seat");
    }
    let refused = whep.create(sdp.clone(), caller(0, Role::Viewer), address(3, 9)).await;
    assert!(matches!(refused, Err(WhepError::Full { .. })), "{refused:?}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(whep.viewer_count(), 0, "never-connected sessions dropped after the deadline");
    whep.create(sdp, caller(0, Role::Viewer), address(3, 9)).await.expect("seats free again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_more_than_four_setups() {
    let whep = whep(32, Duration::from_secs(60));
    let (_peer, sdp) = offer().await;
    for _ in 0..4 {
        whep.create(sdp.clone(), caller(0, Role::Viewer), address(4, 66)).await.expect("within the limit");
    }
    let refused = whep.create(sdp.clone(), caller(0, Role::Viewer), address(4, 66)).await;
    assert!(matches!(refused, Err(WhepError::Busy(_))), "{refused:?}");
    whep.create(sdp, caller(0, Role::Viewer), address(4, 7)).await.expect("another address");
}
