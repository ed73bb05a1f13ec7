//! WHEP sessions (WebRTC-HTTP Egress Protocol, draft-ietf-wish-whep): an SDP
//! offer in, an SDP answer out, and a sender task that writes the fan-out's
//! access units for this viewer to its H.264 track. The `webrtc` crate does
//! ICE, DTLS, SRTP and RTP packetisation (SPS/PPS are aggregated into a
//! STAP-A in front of each IDR by its H.264 payloader).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::media::Sample;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use thiserror::Error;
use tokio::sync::{Notify, oneshot};
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription, Registry, register_default_interceptors,
};

use crate::fanout::{FanOut, ViewerId};

/// The H.264 codec we offer: constrained baseline, packetization mode 1.
/// With `level-asymmetry-allowed=1` the stream may carry a higher level (3.2
/// for 720p60) than the 3.1 browsers announce for receiving.
const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
const H264_PAYLOAD_TYPE: u8 = 102;

/// Why a WHEP session could not be set up.
#[derive(Debug, Error)]
pub enum WhepError {
    /// The offer is not usable SDP.
    #[error("malformed SDP offer: {0}")]
    BadOffer(String),
    /// WebRTC refused the session.
    #[error("WebRTC: {0}")]
    WebRtc(String),
    /// The viewer limit is reached.
    #[error("the station already serves {limit} viewers")]
    Full {
        /// The limit.
        limit: usize,
    },
}

fn webrtc_error(e: impl std::fmt::Display) -> WhepError {
    WhepError::WebRtc(e.to_string())
}

/// Shared between the station's fan-out stage and the sessions.
pub struct Broadcast {
    /// The fan-out state.
    pub fanout: Mutex<FanOut>,
    /// Woken when new access units were pushed.
    pub pushed: Notify,
}

struct Session {
    peer: Arc<dyn PeerConnection>,
    stop: Option<oneshot::Sender<()>>,
}

type Sessions = Arc<Mutex<HashMap<u64, Session>>>;

/// The WHEP endpoint's sessions.
pub struct Whep {
    broadcast: Arc<Broadcast>,
    sessions: Sessions,
    next_id: AtomicU64,
    bind_ip: IpAddr,
    max_viewers: usize,
    frame_duration: Duration,
}

#[derive(Clone)]
struct Events {
    gathered: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    broadcast: Arc<Broadcast>,
    sessions: Sessions,
    viewer: ViewerId,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete
            && let Some(tx) = self.gathered.lock().unwrap_or_else(PoisonError::into_inner).take()
        {
            let _ = tx.send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::info!(viewer = self.viewer.0, %state, "viewer connection");
        if matches!(state, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) {
            // A viewer that vanished without DELETE frees its place and its queue.
            self.broadcast.fanout.lock().unwrap_or_else(PoisonError::into_inner).remove_viewer(self.viewer);
            let session = self.sessions.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.viewer.0);
            if let Some(mut session) = session
                && let Some(stop) = session.stop.take()
            {
                let _ = stop.send(());
            }
        }
    }
}

impl Whep {
    /// Sessions fed by `broadcast`, bound to `bind_ip`, at most `max_viewers`.
    pub fn new(broadcast: Arc<Broadcast>, bind_ip: IpAddr, max_viewers: usize, fps: u32) -> Self {
        Self {
            broadcast,
            sessions: Arc::new(Mutex::new(HashMap::new())),
            next_id: AtomicU64::new(1),
            bind_ip,
            max_viewers,
            frame_duration: Duration::from_secs_f64(1.0 / f64::from(fps.max(1))),
        }
    }

    /// Viewers connected or connecting.
    pub fn viewer_count(&self) -> usize {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Answers an SDP offer; returns the session id and the SDP answer.
    pub async fn create(&self, offer_sdp: String) -> Result<(u64, String), WhepError> {
        if self.viewer_count() >= self.max_viewers {
            return Err(WhepError::Full { limit: self.max_viewers });
        }
        if !offer_sdp.starts_with("v=0") || !offer_sdp.contains("m=video") {
            return Err(WhepError::BadOffer("expected an SDP offer with a video section".into()));
        }
        let offer = RTCSessionDescription::offer(offer_sdp).map_err(|e| WhepError::BadOffer(e.to_string()))?;
        let codec = RTCRtpCodec {
            mime_type: "video/H264".to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: H264_FMTP.to_owned(),
            rtcp_feedback: vec![],
        };
        let mut media_engine = MediaEngine::default();
        media_engine
            .register_codec(
                RTCRtpCodecParameters { rtp_codec: codec.clone(), payload_type: H264_PAYLOAD_TYPE },
                RtpCodecKind::Video,
            )
            .map_err(webrtc_error)?;
        let registry = register_default_interceptors(Registry::new(), &mut media_engine).map_err(webrtc_error)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let viewer = ViewerId(id);
        let (gathered_tx, gathered_rx) = oneshot::channel();
        let events = Events {
            gathered: Arc::new(Mutex::new(Some(gathered_tx))),
            broadcast: self.broadcast.clone(),
            sessions: self.sessions.clone(),
            viewer,
        };
        let runtime = webrtc::runtime::default_runtime().ok_or_else(|| webrtc_error("no async runtime"))?;
        let peer = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(events))
            .with_runtime(runtime)
            .with_udp_addrs(vec![format!("{}:0", self.bind_ip)])
            .build()
            .await
            .map_err(webrtc_error)?;
        let peer: Arc<dyn PeerConnection> = Arc::new(peer);
        let ssrc = rand_ssrc(id);
        let track = Arc::new(
            TrackLocalStaticSample::new(
                Instant::now(),
                MediaStreamTrack::new(
                    "scopecast".to_owned(),
                    "scopecast-video".to_owned(),
                    "endoscope".to_owned(),
                    RtpCodecKind::Video,
                    vec![RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                        codec,
                        ..Default::default()
                    }],
                ),
            )
            .map_err(webrtc_error)?,
        );
        let sender = peer.add_track(Arc::clone(&track) as Arc<dyn TrackLocal>).await.map_err(webrtc_error)?;
        peer.set_remote_description(offer).await.map_err(|e| WhepError::BadOffer(e.to_string()))?;
        let answer = peer.create_answer(None).await.map_err(webrtc_error)?;
        peer.set_local_description(answer).await.map_err(webrtc_error)?;
        // Non-trickle: the answer carries every (host) candidate.
        let _ = tokio::time::timeout(Duration::from_secs(3), gathered_rx).await;
        let local = peer.local_description().await.ok_or_else(|| webrtc_error("no local description"))?;
        let payload_type = sender
            .get_parameters()
            .await
            .map_err(webrtc_error)?
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.payload_type)
            .unwrap_or(H264_PAYLOAD_TYPE);

        self.broadcast.fanout.lock().unwrap_or_else(PoisonError::into_inner).add_viewer(viewer);
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let broadcast = self.broadcast.clone();
        let duration = self.frame_duration;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    _ = broadcast.pushed.notified() => {}
                }
                loop {
                    let next = broadcast.fanout.lock().unwrap_or_else(PoisonError::into_inner).pop(viewer);
                    let Some(au) = next else { break };
                    let sample = Sample {
                        data: Bytes::from_owner(au.data),
                        timestamp: Instant::now(),
                        duration,
                        packet_timestamp: 0,
                        prev_dropped_packets: 0,
                        prev_padding_packets: 0,
                    };
                    if let Err(e) = track.sample_writer(ssrc, payload_type).write_sample(&sample).await {
                        tracing::debug!(viewer = viewer.0, error = %e, "write failed (not connected yet?)");
                    }
                }
            }
        });
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner).insert(id, Session { peer, stop: Some(stop_tx) });
        Ok((id, local.sdp))
    }

    /// Ends a session; false if there was none.
    pub async fn delete(&self, id: u64) -> bool {
        let session = self.sessions.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        let Some(mut session) = session else { return false };
        if let Some(stop) = session.stop.take() {
            let _ = stop.send(());
        }
        self.broadcast.fanout.lock().unwrap_or_else(PoisonError::into_inner).remove_viewer(ViewerId(id));
        let _ = session.peer.close().await;
        true
    }
}

/// An SSRC derived from the session id and the time (unique per station run).
fn rand_ssrc(id: u64) -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    (id as u32).wrapping_mul(0x9e37_79b9) ^ nanos
}
