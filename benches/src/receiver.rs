//! A WHEP viewer on webrtc-rs for harnesses: it posts an offer with a bearer
//! token (recvonly H.264 and the `scopecast` data channel), counts the
//! packets and frames it receives (RTP packets with the marker bit) and keeps the
//! longest time between two of them (its longest freeze), and can send on
//! the data channel, `DELETE` its session, or vanish without one.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCSessionDescription, Registry, register_default_interceptors,
};

/// What a receiver saw.
#[derive(Debug, Default)]
pub struct Reception {
    /// RTP packets received.
    pub packets: AtomicU64,
    /// Frames received (marker-bit packets).
    pub frames: AtomicU64,
    /// The longest time between two frames, ns.
    pub longest_gap_ns: AtomicU64,
    last_frame: Mutex<Option<Instant>>,
    /// The data channel opened.
    pub channel_open: AtomicBool,
}

impl Reception {
    fn frame(&self, now: Instant) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_frame.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(before) = *last {
            let gap = u64::try_from(now.duration_since(before).as_nanos()).unwrap_or(u64::MAX);
            self.longest_gap_ns.fetch_max(gap, Ordering::Relaxed);
        }
        *last = Some(now);
    }
}

#[derive(Clone)]
struct Events {
    reception: Arc<Reception>,
    gathered: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.notify_one();
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let reception = self.reception.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                    reception.packets.fetch_add(1, Ordering::Relaxed);
                    if packet.header.marker {
                        reception.frame(Instant::now());
                    }
                }
            }
        });
    }
}

/// One connected viewer.
pub struct Receiver {
    /// Its peer connection.
    pub peer: Arc<dyn PeerConnection>,
    /// Its data channel.
    pub channel: Arc<dyn DataChannel>,
    /// What it received.
    pub reception: Arc<Reception>,
    /// The session's resource (`/whep/…`).
    pub location: String,
    addr: String,
    token: String,
}

/// One HTTP/1.1 request to `addr`; the whole response.
pub fn http_request(addr: &str, head: &str, body: &str) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    write!(stream, "{head}\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

impl Receiver {
    /// Connects to the station's WHEP endpoint at `addr` with `token`.
    pub async fn connect(addr: &str, token: &str) -> Result<Self, String> {
        let error = |e: &dyn std::fmt::Display| e.to_string();
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
            .map_err(|e| error(&e))?;
        let registry = register_default_interceptors(Registry::new(), &mut media_engine).map_err(|e| error(&e))?;
        let events =
            Events { reception: Arc::new(Reception::default()), gathered: Arc::new(tokio::sync::Notify::new()) };
        let runtime = webrtc::runtime::default_runtime().ok_or("no runtime")?;
        let peer = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(events.clone()))
            .with_runtime(runtime)
            .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
            .build()
            .await
            .map_err(|e| error(&e))?;
        let peer: Arc<dyn PeerConnection> = Arc::new(peer);
        peer.add_transceiver_from_kind(
            RtpCodecKind::Video,
            Some(RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Recvonly, ..Default::default() }),
        )
        .await
        .map_err(|e| error(&e))?;
        let channel = peer.create_data_channel("scopecast", None).await.map_err(|e| error(&e))?;
        let offer = peer.create_offer(None).await.map_err(|e| error(&e))?;
        peer.set_local_description(offer).await.map_err(|e| error(&e))?;
        let _ = tokio::time::timeout(Duration::from_secs(3), events.gathered.notified()).await;
        let sdp = peer.local_description().await.ok_or("no local description")?.sdp;
        let (post_addr, post_token) = (addr.to_string(), token.to_string());
        let response = tokio::task::spawn_blocking(move || {
            http_request(
                &post_addr,
                &format!("POST /whep HTTP/1.1\r\nAuthorization: Bearer {post_token}\r\nContent-Type: application/sdp"),
                &sdp,
            )
        })
        .await
        .map_err(|e| error(&e))?
        .map_err(|e| error(&e))?;
        let Some((head, answer)) = response.split_once("\r\n\r\n") else { return Err("no HTTP answer".into()) };
        if !head.starts_with("HTTP/1.1 201") {
            let _ = peer.close().await;
            return Err(format!("WHEP refused: {}", head.lines().next().unwrap_or("")));
        }
        let location = head
            .lines()
            .find_map(|l| l.strip_prefix("location: ").or_else(|| l.strip_prefix("Location: ")))
            .unwrap_or_default()
            .trim()
            .to_string();
        let answer = RTCSessionDescription::answer(answer.to_string()).map_err(|e| error(&e))?;
        peer.set_remote_description(answer).await.map_err(|e| error(&e))?;
        let reception = events.reception.clone();
        let polled = channel.clone();
        tokio::spawn(async move {
            while let Some(event) = polled.poll().await {
                match event {
                    DataChannelEvent::OnOpen => reception.channel_open.store(true, Ordering::Relaxed),
                    DataChannelEvent::OnClose => break,
                    _ => {}
                }
            }
        });
        Ok(Self {
            peer,
            channel,
            reception: events.reception,
            location,
            addr: addr.to_string(),
            token: token.to_string(),
        })
    }

    /// Sends `text` on the data channel (once it is open).
    pub async fn send(&self, text: &str) -> bool {
        self.reception.channel_open.load(Ordering::Relaxed) && self.channel.send_text(text).await.is_ok()
    }

    /// Ends the session with `DELETE`, then closes the peer.
    pub async fn leave(self) {
        let (addr, head) =
            (self.addr.clone(), format!("DELETE {} HTTP/1.1\r\nAuthorization: Bearer {}", self.location, self.token));
        let _ = tokio::task::spawn_blocking(move || http_request(&addr, &head, "")).await;
        let _ = self.peer.close().await;
    }

    /// Closes the peer without `DELETE` (a tab closed, a network gone).
    pub async fn vanish(self) {
        let _ = self.peer.close().await;
    }
}
