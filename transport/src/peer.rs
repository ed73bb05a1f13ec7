//! The peer connection that sends the stream, shared by WHEP (a viewer's
//! session) and WHIP (the station publishing to a media server): our H.264
//! codec, webrtc-rs's NACK and report interceptors, the retransmission
//! budget, the viewer's RTCP feedback and, when asked, send-side bandwidth
//! estimation; and the task that writes the broadcast hub's access units to
//! the connection's track as RTP.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rtc::interceptor::Slot;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use thiserror::Error;
use tokio::sync::oneshot;
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceServer, Registry, StatsSelector, register_default_interceptors,
};

use crate::broadcast::{Broadcast, ViewerFeed};
use crate::clock::StationClock;
use crate::fanout::ViewerId;
use crate::feedback::{VIEWER_FEEDBACK_SLOT, ViewerFeedback, ViewerLink};
use crate::ice::IceServer;
use crate::nack_budget::{NACK_BUDGET_SLOT, NackBudget};
use crate::rtp_extensions::NegotiatedExtensions;
use crate::rtp_h264::H264RtpStream;

/// The WebRTC stack refused something while a peer connection was built or started.
#[derive(Debug, Error)]
#[error("WebRTC: {0}")]
pub struct PeerError(pub String);

fn webrtc_error(e: impl std::fmt::Display) -> PeerError {
    PeerError(e.to_string())
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The H.264 codec we offer: constrained baseline, packetization mode 1.
/// With `level-asymmetry-allowed=1` the stream may carry a higher level (3.2
/// for 720p60) than the 3.1 browsers announce for receiving.
pub(crate) const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
pub(crate) const H264_PAYLOAD_TYPE: u8 = 102;

/// How often each viewer's RTCP statistics are sampled.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// What a peer connection that sends the stream is made of.
pub(crate) struct PeerEnds<'a> {
    /// Its place in the fan-out.
    pub viewer: ViewerId,
    /// The stream.
    pub broadcast: Arc<Broadcast>,
    /// Its figures.
    pub link: Arc<Mutex<ViewerLink>>,
    /// Where ICE gathers host candidates.
    pub bind_ip: IpAddr,
    /// STUN/TURN.
    pub ice_servers: &'a [IceServer],
    /// With bandwidth estimation (TWCC + GCC) starting here, bit/s.
    pub estimate_from_bps: Option<f64>,
    /// The station's clock.
    pub clock: StationClock,
    /// The RTP header extensions the viewer's offer has and we send
    /// (registered with the media engine so the answer has them).
    pub offered_extensions: &'a [&'static str],
}

/// The H.264 codec we send.
fn h264_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "video/H264".to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: H264_FMTP.to_owned(),
        rtcp_feedback: vec![RTCPFeedback { typ: "ccm".to_owned(), parameter: "fir".to_owned() }],
    }
}

/// A peer connection sending the stream on one H.264 track (not yet added):
/// our codec, webrtc-rs's NACK and report interceptors, the retransmission
/// budget, the viewer's feedback and, when asked, bandwidth estimation.
pub(crate) async fn build_peer(
    ends: PeerEnds<'_>,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> Result<(Arc<dyn PeerConnection>, Arc<TrackLocalStaticRTP>, u32), PeerError> {
    let codec = h264_codec();
    let mut media_engine = MediaEngine::default();
    media_engine
        .register_codec(
            RTCRtpCodecParameters { rtp_codec: codec.clone(), payload_type: H264_PAYLOAD_TYPE },
            RtpCodecKind::Video,
        )
        .map_err(webrtc_error)?;
    // NACK responder and generator ("nack", "nack pli"), sender/receiver reports, then ours last.
    let feedback =
        ViewerFeedback::new(ends.viewer, ends.broadcast.clone(), ends.link.clone(), Instant::now(), ends.clock);
    let mut registry = register_default_interceptors(Registry::new(), &mut media_engine)
        .map_err(webrtc_error)?
        .with(Slot::from(VIEWER_FEEDBACK_SLOT), feedback)
        .with(Slot::from(NACK_BUDGET_SLOT), NackBudget::new(ends.link.clone()));
    if let Some(initial) = ends.estimate_from_bps {
        registry = with_bandwidth_estimation(registry, &mut media_engine, initial)?;
    }
    for uri in ends.offered_extensions {
        media_engine
            .register_header_extension(
                rtc::rtp_transceiver::rtp_sender::RTCRtpHeaderExtensionCapability { uri: (*uri).to_owned() },
                RtpCodecKind::Video,
                None,
            )
            .map_err(webrtc_error)?;
    }
    let runtime = webrtc::runtime::default_runtime().ok_or_else(|| webrtc_error("no async runtime"))?;
    let ice_servers = ends
        .ice_servers
        .iter()
        .map(|s| RTCIceServer { urls: s.urls.clone(), username: s.username.clone(), credential: s.credential.clone() })
        .collect();
    let peer = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().with_ice_servers(ice_servers).build())
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_handler(handler)
        .with_runtime(runtime)
        .with_udp_addrs(vec![format!("{}:0", ends.bind_ip)])
        .build()
        .await
        .map_err(webrtc_error)?;
    let peer: Arc<dyn PeerConnection> = Arc::new(peer);
    let ssrc = rand_ssrc(ends.viewer.0);
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "scopecast".to_owned(),
        "scopecast-video".to_owned(),
        "endoscope".to_owned(),
        RtpCodecKind::Video,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec,
            ..Default::default()
        }],
    )));
    Ok((peer, track, ssrc))
}

/// Send-side bandwidth estimation for one viewer: transport-wide sequence
/// numbers on every packet (`transport-cc` header extension and RTCP
/// feedback negotiated), and webrtc-rs's GCC over the viewer's TWCC reports.
/// No pacer: frames leave as they are encoded (pacing would add queueing
/// delay to every frame); the estimate only chooses the viewer's layer.
fn with_bandwidth_estimation(
    registry: Registry,
    media_engine: &mut MediaEngine,
    initial_bps: f64,
) -> Result<Registry, PeerError> {
    use rtc::interceptor::{CongestionControlBuilder, GCC_MIN_BITRATE, Gcc, TwccSenderBuilder};
    use rtc::rtp_transceiver::rtp_sender::RTCRtpHeaderExtensionCapability;
    use rtc::rtp_transceiver::rtp_sender::TYPE_RTCP_FB_TRANSPORT_CC;
    media_engine.register_feedback(
        RTCPFeedback { typ: TYPE_RTCP_FB_TRANSPORT_CC.to_owned(), parameter: String::new() },
        RtpCodecKind::Video,
    );
    media_engine
        .register_header_extension(
            RTCRtpHeaderExtensionCapability { uri: rtc::sdp::extmap::TRANSPORT_CC_URI.to_owned() },
            RtpCodecKind::Video,
            None,
        )
        .map_err(webrtc_error)?;
    let initial = initial_bps.max(GCC_MIN_BITRATE);
    let gcc = Gcc::new(initial, GCC_MIN_BITRATE, (initial * 20.0).max(GCC_MIN_BITRATE));
    Ok(registry
        .with(Slot::CongestionControl, CongestionControlBuilder::new(gcc).build())
        .with(Slot::TwccSender, TwccSenderBuilder::new().build()))
}

/// What [`Sending::start`] needs: a negotiated peer and its track.
pub(crate) struct Sending {
    /// Its place in the hub (already joined).
    pub feed: ViewerFeed,
    /// The stream.
    pub broadcast: Arc<Broadcast>,
    /// The connection.
    pub peer: Arc<dyn PeerConnection>,
    /// Its H.264 track.
    pub track: Arc<TrackLocalStaticRTP>,
    /// The track's SSRC.
    pub ssrc: u32,
    /// Its figures.
    pub link: Arc<Mutex<ViewerLink>>,
    /// The header extensions on every packet, with the ids our answer gave them.
    pub extensions: NegotiatedExtensions,
}

impl Sending {
    /// Starts the task that sends the fan-out's access units on the track
    /// (with the payload type negotiated for `sender`); the returned sender
    /// stops it.
    pub async fn start(
        self,
        sender: &dyn webrtc::rtp_transceiver::RtpSender,
    ) -> Result<oneshot::Sender<()>, PeerError> {
        let payload_type = sender
            .get_parameters()
            .await
            .map_err(webrtc_error)?
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.payload_type)
            .unwrap_or(H264_PAYLOAD_TYPE);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let start = rand_ssrc(self.feed.viewer().0.wrapping_add(0x5c0e));
        let task = SessionTask {
            feed: self.feed,
            broadcast: self.broadcast,
            peer: self.peer,
            track: self.track,
            stream: H264RtpStream::new(self.ssrc, payload_type, start as u16, start.rotate_left(16)),
            link: self.link,
            extensions: self.extensions,
        };
        tokio::spawn(task.run(stop_rx));
        Ok(stop_tx)
    }
}

/// One viewer's task: media out, keyframe requests and statistics in.
struct SessionTask {
    feed: ViewerFeed,
    broadcast: Arc<Broadcast>,
    peer: Arc<dyn PeerConnection>,
    track: Arc<TrackLocalStaticRTP>,
    stream: H264RtpStream,
    link: Arc<Mutex<ViewerLink>>,
    extensions: NegotiatedExtensions,
}

impl SessionTask {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut stats_tick = tokio::time::interval(STATS_INTERVAL);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = self.feed.published() => self.send_pending().await,
                _ = stats_tick.tick() => self.sample_stats().await,
            }
        }
    }

    async fn send_pending(&mut self) {
        loop {
            let next = self.broadcast.next_for(self.feed.viewer());
            let Some(au) = next else { break };
            let extensions: Vec<(u8, bytes::Bytes)> = (self.extensions.for_frame(au.capture_wall_ms).into_iter())
                .map(|(id, bytes)| (id, bytes::Bytes::from(bytes)))
                .collect();
            for mut packet in self.stream.packetize(&au) {
                // Our own ids from the answer, not `write_rtp_with_extensions`'s (rtp_extensions.rs).
                for (id, bytes) in &extensions {
                    if let Err(e) = packet.header.set_extension(*id, bytes.clone()) {
                        tracing::debug!(viewer = self.feed.viewer().0, id, error = %e, "header extension not set");
                    }
                }
                if let Err(e) = self.track.write_rtp(packet).await {
                    tracing::debug!(viewer = self.feed.viewer().0, error = %e, "write failed (not connected yet?)");
                    break;
                }
            }
        }
    }

    async fn sample_stats(&self) {
        let report = self.peer.get_stats(Instant::now(), StatsSelector::None).await;
        let mut link = locked(&self.link);
        for outbound in report.outbound_rtp_streams() {
            link.packets_sent = outbound.sent_rtp_stream_stats.packets_sent;
            link.bytes_sent = outbound.sent_rtp_stream_stats.bytes_sent;
        }
    }
}

/// An SSRC derived from the session id and the time (unique per station run).
fn rand_ssrc(id: u64) -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    (id as u32).wrapping_mul(0x9e37_79b9) ^ nanos
}
