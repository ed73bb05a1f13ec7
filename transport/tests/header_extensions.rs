//! The RTP header extensions a viewer gets, end to end in-process: a real
//! webrtc-rs receiver offers playout-delay and abs-capture-time under ids of
//! its own choosing (not the ones the station's media engine would number
//! them with), takes the answer, and reads every packet of the stream.
//!
//! Each packet must carry each extension under the id the answer gave it,
//! playout-delay must say min 0 / max 100 ms, abs-capture-time must be the
//! capture time of the frame the packet belongs to, and no packet may carry an
//! id the answer does not name (a receiver would read it as another
//! extension: webrtc-rs 0.21's `write_rtp_with_extensions` did exactly that,
//! see `rtp_extensions.rs`). A receiver that offers neither gets neither.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use scopecast_transport::adapt::VideoLayer;
use scopecast_transport::auth::{Caller, Role};
use scopecast_transport::broadcast::Broadcast;
use scopecast_transport::fanout::FanOutPolicy;
use scopecast_transport::media::AccessUnit;
use scopecast_transport::rtp_extensions::{
    ABS_CAPTURE_TIME_URI, AbsCaptureTime, PLAYOUT_DELAY_URI, PlayoutDelay, extmap_id,
};
use scopecast_transport::whep::{Whep, WhepSettings};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCSessionDescription, Registry, register_default_interceptors,
};

/// Every received packet's header extensions: (RTP timestamp, id → bytes).
type Seen = Arc<Mutex<Vec<(u32, HashMap<u8, Vec<u8>>)>>>;

#[derive(Clone)]
struct Receiver {
    seen: Seen,
    gathered: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Receiver {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.notify_one();
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let seen = self.seen.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                    let extensions =
                        packet.header.extensions.iter().map(|e| (e.id, e.payload.to_vec())).collect::<HashMap<_, _>>();
                    seen.lock().expect("seen").push((packet.header.timestamp, extensions));
                }
            }
        });
    }
}

/// A receive-only webrtc-rs viewer offering `extensions` first, so they get
/// ids 1, 2, … in that order, ahead of webrtc-rs's defaults.
async fn viewer(extensions: &[&str]) -> (Arc<dyn PeerConnection>, Receiver, String) {
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
    for uri in extensions {
        media_engine
            .register_header_extension(
                RTCRtpHeaderExtensionCapability { uri: (*uri).to_owned() },
                RtpCodecKind::Video,
                None,
            )
            .expect("extension");
    }
    let registry = register_default_interceptors(Registry::new(), &mut media_engine).expect("interceptors");
    let receiver = Receiver { seen: Arc::default(), gathered: Arc::new(tokio::sync::Notify::new()) };
    let peer = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(receiver.clone()))
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
    peer.set_local_description(offer).await.expect("local description");
    let _ = tokio::time::timeout(Duration::from_secs(3), receiver.gathered.notified()).await;
    let sdp = peer.local_description().await.expect("offer with candidates").sdp;
    (peer, receiver, sdp)
}

/// A keyframe access unit (SPS, PPS, IDR of filler bytes) of `size` bytes.
fn keyframe(sequence: u64, capture_wall_ms: u64, size: usize) -> AccessUnit {
    let mut data = vec![0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, 0, 0, 0, 1, 0x65];
    data.resize(size, 0x5a);
    AccessUnit {
        data: data.into(),
        keyframe: true,
        sequence,
        capture_time_ns: sequence * 33_333_333,
        capture_wall_ms,
        layer: VideoLayer::Full,
    }
}

/// Streams until `viewer` has seen `packets` packets (or 10 s pass); each
/// packet's extensions and the capture wall ms published per RTP timestamp.
async fn stream_to(offered: &[&str], packets: usize) -> (String, Vec<(u32, HashMap<u8, Vec<u8>>)>, BTreeSet<u64>) {
    let broadcast = Arc::new(Broadcast::new(FanOutPolicy::default()));
    let settings = WhepSettings {
        bind_ip: IpAddr::from([127, 0, 0, 1]),
        max_viewers: 4,
        ice_servers: Vec::new(),
        initial_estimate_bps: 1e6,
        connect_deadline: Duration::from_secs(30),
        playout_delay_max_ms: 100,
    };
    let whep = Whep::new(broadcast.clone(), settings, None, scopecast_transport::clock::StationClock::from_now());
    let (peer, receiver, offer) = viewer(offered).await;
    let (_, answer) =
        whep.create(offer, Caller::config(0, Role::Viewer), None).await.expect("the station answers the offer");
    peer.set_remote_description(RTCSessionDescription::answer(answer.clone()).expect("answer"))
        .await
        .expect("the answer applies");
    let mut published = BTreeSet::new();
    let first_wall_ms = 1_796_342_400_000;
    for sequence in 0..300u64 {
        // Frames of 3 packets, capture times 33 ms apart, a millisecond pattern that is never round.
        let capture_wall_ms = first_wall_ms + sequence * 33 + sequence % 7;
        published.insert(capture_wall_ms);
        broadcast.publish([&keyframe(sequence, capture_wall_ms, 3000)]);
        tokio::time::sleep(Duration::from_millis(33)).await;
        if receiver.seen.lock().expect("seen").len() >= packets {
            break;
        }
    }
    let _ = peer.close().await;
    let seen = receiver.seen.lock().expect("seen").clone();
    (answer, seen, published)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_packet_carries_playout_delay_and_capture_time_under_the_answers_ids() {
    // A dummy first, so the viewer's ids are not the ones the station would number them with.
    let offered = ["urn:ietf:params:rtp-hdrext:toffset", ABS_CAPTURE_TIME_URI, PLAYOUT_DELAY_URI];
    let (answer, seen, published) = stream_to(&offered, 60).await;
    let playout_id = extmap_id(&answer, PLAYOUT_DELAY_URI).expect("the answer has playout-delay");
    let capture_id = extmap_id(&answer, ABS_CAPTURE_TIME_URI).expect("the answer has abs-capture-time");
    let answered = answered_ids(&answer);
    println!("answer's ids: playout-delay {playout_id}, abs-capture-time {capture_id}, all {answered:?}");
    for line in answer.lines().filter(|l| l.starts_with("a=extmap:")) {
        println!("  {line}");
    }
    println!("{} packets received", seen.len());
    assert!(seen.len() >= 60, "the viewer received only {} packets", seen.len());
    let mut capture_by_timestamp: HashMap<u32, u64> = HashMap::new();
    for (timestamp, extensions) in &seen {
        let ids: BTreeSet<u8> = extensions.keys().copied().collect();
        assert!(ids.is_subset(&answered), "a packet carries ids {ids:?}; the answer names {answered:?}");
        let delay = extensions.get(&playout_id).map(|b| PlayoutDelay::parse(b));
        assert_eq!(delay, Some(Ok(PlayoutDelay { min_10ms: 0, max_10ms: 10 })), "packet {timestamp}: {extensions:?}");
        let capture = extensions.get(&capture_id).map(|b| AbsCaptureTime::parse(b));
        let Some(Ok(capture)) = capture else { panic!("packet {timestamp} lacks abs-capture-time: {extensions:?}") };
        assert!(published.contains(&capture.unix_ms()), "{} was never a capture time", capture.unix_ms());
        // Every packet of one frame (one RTP timestamp) names the same capture time.
        let first = *capture_by_timestamp.entry(*timestamp).or_insert(capture.unix_ms());
        assert_eq!(first, capture.unix_ms(), "two capture times in the frame of RTP timestamp {timestamp}");
    }
    println!("{} frames, each with one capture time that was published", capture_by_timestamp.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_offers_neither_gets_neither_and_still_plays() {
    let (answer, seen, _) = stream_to(&[], 30).await;
    assert_eq!(extmap_id(&answer, PLAYOUT_DELAY_URI), None);
    assert_eq!(extmap_id(&answer, ABS_CAPTURE_TIME_URI), None);
    assert!(seen.len() >= 30, "the viewer received only {} packets", seen.len());
    let answered = answered_ids(&answer);
    for (timestamp, extensions) in &seen {
        let ids: BTreeSet<u8> = extensions.keys().copied().collect();
        assert!(ids.is_subset(&answered), "packet {timestamp} carries ids {ids:?}; the answer names {answered:?}");
    }
    println!("{} packets, extension ids only among the answer's {answered:?}", seen.len());
}

/// Every extension id the answer's `a=extmap:` lines name.
fn answered_ids(answer: &str) -> BTreeSet<u8> {
    answer
        .lines()
        .filter_map(|l| l.strip_prefix("a=extmap:"))
        .filter_map(|l| l.split([' ', '/']).next()?.parse().ok())
        .collect()
}
