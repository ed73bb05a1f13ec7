//! WHEP sessions (WebRTC-HTTP Egress Protocol, draft-ietf-wish-whep): an SDP
//! offer in, an SDP answer out, trickle candidates patched in, and per viewer
//! a task that writes the fan-out's access units to its H.264 track, turns
//! the viewer's PLI/FIR into a keyframe request and samples its RTCP
//! statistics (RTT, loss) once a second. The `webrtc` crate does ICE, DTLS,
//! SRTP, NACK retransmission and RTP packetisation (SPS/PPS are aggregated
//! into a STAP-A in front of each IDR by its H.264 payloader).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::oneshot;
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCIceGatheringState, RTCPeerConnectionState,
    RTCSessionDescription,
};

use crate::access::{AccessEvent, AccessSink, LeaveReason, Who};
use crate::admission::{Admission, Limits, Refusal};
use crate::auth::Caller;
use crate::broadcast::Broadcast;
use crate::clock::StationClock;
use crate::fanout::ViewerId;
pub use crate::feedback::ViewerLink;
use crate::ice::{IceServer, SdpFragment};
use crate::peer::{PeerEnds, PeerError, Sending, build_peer};
use crate::room::CommandSink;
use crate::room_channels::RoomChannels;
use crate::rtp_extensions::NegotiatedExtensions;

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
    /// Too many sessions of this credential or address are setting up.
    #[error("{0}")]
    Busy(Refusal),
    /// No such session, or not the caller's (the same answer, so a session
    /// cannot be found out by trying).
    #[error("no such WHEP session")]
    NotFound,
    /// A `PATCH` with new ICE credentials: restarts are not supported.
    #[error("ICE restart is not supported: DELETE this session and POST a new offer")]
    IceRestart,
    /// A trickled candidate that ICE refused.
    #[error("bad ICE candidate: {0}")]
    BadCandidate(String),
}

fn webrtc_error(e: impl std::fmt::Display) -> WhepError {
    WhepError::WebRtc(e.to_string())
}

impl From<PeerError> for WhepError {
    fn from(e: PeerError) -> Self {
        WhepError::WebRtc(e.0)
    }
}

/// How the endpoint runs.
#[derive(Debug, Clone, PartialEq)]
pub struct WhepSettings {
    /// The address ICE gathers host candidates on.
    pub bind_ip: IpAddr,
    /// Sessions at once; more are refused with [`WhepError::Full`].
    pub max_viewers: usize,
    /// STUN/TURN servers for the station's own gathering, announced to viewers too.
    pub ice_servers: Vec<IceServer>,
    /// Where each viewer's bandwidth estimate starts, bit/s (about the full
    /// layer's bitrate: the stream is sent unpaced from the start, and a
    /// low start would move every new viewer to the reduced layer).
    pub initial_estimate_bps: f64,
    /// A session not connected this long after its answer is ended (its seat
    /// freed): offers whose peer never completes ICE must not hold seats.
    pub connect_deadline: Duration,
    /// The playout-delay extension's max, ms (min is 0), for viewers that
    /// offer the extension; 0: not negotiated.
    pub playout_delay_max_ms: u32,
}

/// The default [`WhepSettings::connect_deadline`]: ICE and DTLS take well
/// under a second on a LAN and a few over TURN.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(8);

/// A WHEP session's resource name (`/whep/{id}`): 128 random bits, so that
/// nobody can name a session they were not given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh one from the OS's random source.
    pub fn generate() -> std::io::Result<Self> {
        crate::auth::random_hex_128().map(Self)
    }

    /// The resource as the URL path names it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

struct Session {
    /// Its resource name.
    resource: SessionId,
    /// Who created it: only their credential (or an operator) may change it.
    owner: Caller,
    peer: Arc<dyn PeerConnection>,
    stop: Option<oneshot::Sender<()>>,
    /// The viewer's `a=ice-ufrag` (a different one in a PATCH means an ICE restart).
    remote_ufrag: Option<String>,
    link: Arc<Mutex<ViewerLink>>,
}

type Sessions = Arc<Mutex<HashMap<u64, Session>>>;

/// The WHEP endpoint's sessions.
pub struct Whep {
    broadcast: Arc<Broadcast>,
    sessions: Sessions,
    room: Arc<RoomChannels>,
    next_id: AtomicU64,
    settings: WhepSettings,
    admission: Arc<Mutex<Admission>>,
    access: Option<Arc<dyn AccessSink>>,
    clock: StationClock,
}

#[derive(Clone)]
struct Events {
    gathered: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    broadcast: Arc<Broadcast>,
    sessions: Sessions,
    room: Arc<RoomChannels>,
    viewer: ViewerId,
    link: Arc<Mutex<ViewerLink>>,
    admission: Arc<Mutex<Admission>>,
    access: Option<Arc<dyn AccessSink>>,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete
            && let Some(tx) = locked(&self.gathered).take()
        {
            let _ = tx.send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::info!(viewer = self.viewer.0, %state, "viewer connection");
        locked(&self.link).connected = state == RTCPeerConnectionState::Connected;
        if state == RTCPeerConnectionState::Connected {
            locked(&self.admission).connected(self.viewer.0);
        }
        if matches!(state, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) {
            locked(&self.admission).release(self.viewer.0);
            // A viewer that vanished without DELETE frees its place and its queue.
            self.broadcast.leave(self.viewer);
            let session = locked(&self.sessions).remove(&self.viewer.0);
            if let Some(mut session) = session {
                if let Some(stop) = session.stop.take() {
                    let _ = stop.send(());
                }
                if let Some(access) = &self.access {
                    let who = Who::from(&session.owner);
                    access.record(AccessEvent::Left { session: self.viewer.0, who, reason: LeaveReason::Closed });
                }
                // Its sockets and tasks end only when the peer is closed (a
                // failed peer is not closed by itself: the soak measured one
                // descriptor and 0.6 MB kept per vanished viewer). Not from
                // inside the peer's own event handler: on a task of its own.
                let peer = session.peer.clone();
                tokio::spawn(async move {
                    let _ = peer.close().await;
                });
            }
            self.room.leave(self.viewer).await;
        }
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        tokio::spawn(self.room.clone().serve(self.viewer, channel));
    }
}

/// The `a=ice-ufrag` of an SDP (session or first media level).
fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines().find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:")).map(str::to_string)
}

/// A WHEP offer checked and parsed, before any peer connection exists.
pub struct CheckedOffer {
    /// The description for the peer connection (its SDP parsed by the
    /// WebRTC stack).
    pub description: RTCSessionDescription,
    /// The viewer's `a=ice-ufrag`.
    pub remote_ufrag: Option<String>,
}

/// Checks a `POST /whep` body: an SDP offer with a video section that the
/// WebRTC stack's SDP parser accepts. Everything a viewer sends in an offer
/// passes here first (fuzzed: `engine/fuzz`, target `whep_offer`).
pub fn check_offer(offer_sdp: String) -> Result<CheckedOffer, WhepError> {
    if !offer_sdp.starts_with("v=0") || !offer_sdp.contains("m=video") {
        return Err(WhepError::BadOffer("expected an SDP offer with a video section".into()));
    }
    let remote_ufrag = ice_ufrag(&offer_sdp);
    let description = RTCSessionDescription::offer(offer_sdp).map_err(|e| WhepError::BadOffer(e.to_string()))?;
    Ok(CheckedOffer { description, remote_ufrag })
}

impl Whep {
    /// Sessions fed by `broadcast`; the viewers' drawing and layer commands
    /// go to `commands` (without one they are refused); decisions read `clock`
    /// (the station's).
    pub fn new(
        broadcast: Arc<Broadcast>,
        settings: WhepSettings,
        commands: Option<Arc<dyn CommandSink>>,
        clock: StationClock,
    ) -> Self {
        Self {
            broadcast,
            sessions: Arc::new(Mutex::new(HashMap::new())),
            room: Arc::new(RoomChannels::new(commands, clock.clone())),
            clock,
            next_id: AtomicU64::new(1),
            admission: Arc::new(Mutex::new(Admission::new(Limits::for_sessions(settings.max_viewers)))),
            settings,
            access: None,
        }
    }

    /// Every page also hears the station's `announcements` (tracking state).
    pub fn with_announcements(self, announcements: crate::room_channels::Announcements) -> Self {
        self.room.set_announcements(announcements);
        self
    }

    /// Tells `access` who joins and leaves, and what they do on the data channel.
    pub fn with_access(mut self, access: Arc<dyn AccessSink>) -> Self {
        self.room.set_access(access.clone());
        self.access = Some(access);
        self
    }

    fn ender(&self) -> Ender {
        Ender {
            sessions: self.sessions.clone(),
            broadcast: self.broadcast.clone(),
            room: self.room.clone(),
            access: self.access.clone(),
        }
    }

    /// Who is watching (names from their `hello`), by session id.
    pub fn participants(&self) -> Vec<crate::protocol::Participant> {
        self.room.participants()
    }

    /// The STUN/TURN servers to announce in `Link` headers.
    pub fn ice_servers(&self) -> &[IceServer] {
        &self.settings.ice_servers
    }

    /// Viewers connected or connecting.
    pub fn viewer_count(&self) -> usize {
        locked(&self.sessions).len()
    }

    /// Every session's id and network path, by id.
    pub fn viewer_links(&self) -> Vec<(u64, ViewerLink)> {
        let mut links: Vec<(u64, ViewerLink)> =
            locked(&self.sessions).iter().map(|(id, s)| (*id, locked(&s.link).clone())).collect();
        links.sort_by_key(|(id, _)| *id);
        links
    }

    /// Per-viewer figures in Prometheus text format (appended to `/metrics`).
    pub fn render_metrics(&self, out: &mut String) {
        let links = self.viewer_links();
        type Field = fn(&ViewerLink) -> Option<f64>;
        let families: [(&str, &str, &str, Field); 11] = [
            ("scopecast_viewer_connected", "gauge", "1 while the viewer's ICE/DTLS is up.", |l| {
                Some(if l.connected { 1.0 } else { 0.0 })
            }),
            (
                "scopecast_viewer_rtt_seconds",
                "gauge",
                "Round-trip time from the viewer's RTCP receiver reports.",
                |l| l.rtt_s,
            ),
            (
                "scopecast_viewer_fraction_lost",
                "gauge",
                "Fraction of packets lost in the viewer's last RTCP interval.",
                |l| Some(l.fraction_lost),
            ),
            ("scopecast_viewer_packets_lost_total", "counter", "Packets the viewer reported lost.", |l| {
                Some(f64::from(l.packets_lost))
            }),
            ("scopecast_viewer_packets_sent_total", "counter", "RTP packets sent to the viewer.", |l| {
                Some(l.packets_sent as f64)
            }),
            ("scopecast_viewer_bytes_sent_total", "counter", "RTP payload bytes sent to the viewer.", |l| {
                Some(l.bytes_sent as f64)
            }),
            ("scopecast_viewer_nacked_packets_total", "counter", "Packets the viewer asked to be resent.", |l| {
                Some(l.nacked_packets as f64)
            }),
            ("scopecast_viewer_keyframe_requests_total", "counter", "PLI and FIR received from the viewer.", |l| {
                Some((l.plis + l.firs) as f64)
            }),
            (
                "scopecast_viewer_estimate_bps",
                "gauge",
                "Send-side bandwidth estimate (GCC over the viewer's TWCC feedback), bit/s.",
                |l| l.estimate_bps,
            ),
            ("scopecast_viewer_layer", "gauge", "The layer the viewer receives: 0 full, 1 reduced.", |l| {
                Some(l.layer.index() as f64)
            }),
            (
                "scopecast_viewer_resends_refused_total",
                "counter",
                "NACKed packets not resent: over the viewer's retransmission budget.",
                |l| Some(l.resends_refused as f64),
            ),
        ];
        for (name, kind, help, field) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (id, link) in &links {
                if let Some(value) = field(link) {
                    let _ = writeln!(out, "{name}{{viewer=\"{id}\"}} {value}");
                }
            }
        }
    }

    /// Answers an SDP offer from `caller` (at `address`, when known);
    /// returns the session's resource name and the SDP answer. The seat is
    /// taken before anything slow starts, so concurrent offers cannot pass
    /// the limits together.
    pub async fn create(
        &self,
        offer_sdp: String,
        caller: Caller,
        address: Option<IpAddr>,
    ) -> Result<(SessionId, String), WhepError> {
        // Only extensions the viewer offers are registered (and so answered): see
        // rtp_extensions.rs for what they are and why we number them from the answer.
        let offered_extensions: Vec<&'static str> = [
            (crate::rtp_extensions::PLAYOUT_DELAY_URI, self.settings.playout_delay_max_ms > 0),
            (crate::rtp_extensions::ABS_CAPTURE_TIME_URI, true),
        ]
        .into_iter()
        .filter(|(uri, wanted)| *wanted && crate::rtp_extensions::extmap_id(&offer_sdp, uri).is_some())
        .map(|(uri, _)| uri)
        .collect();
        let CheckedOffer { description: offer, remote_ufrag } = check_offer(offer_sdp)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        locked(&self.admission).admit(id, &caller, address).map_err(|refusal| match refusal {
            Refusal::Full { limit } => WhepError::Full { limit },
            busy => WhepError::Busy(busy),
        })?;
        // Frees the seat unless the session was set up (a failure, or the
        // request dropped half-way).
        let mut seat = SeatGuard { admission: self.admission.clone(), id, keep: false };
        let resource = SessionId::generate().map_err(webrtc_error)?;
        let viewer = ViewerId(id);
        let link = Arc::new(Mutex::new(ViewerLink::default()));
        let (gathered_tx, gathered_rx) = oneshot::channel();
        let events = Events {
            gathered: Arc::new(Mutex::new(Some(gathered_tx))),
            broadcast: self.broadcast.clone(),
            sessions: self.sessions.clone(),
            room: self.room.clone(),
            viewer,
            link: link.clone(),
            admission: self.admission.clone(),
            access: self.access.clone(),
        };
        let ends = PeerEnds {
            viewer,
            broadcast: self.broadcast.clone(),
            link: link.clone(),
            bind_ip: self.settings.bind_ip,
            ice_servers: &self.settings.ice_servers,
            estimate_from_bps: Some(self.settings.initial_estimate_bps),
            clock: self.clock.clone(),
            offered_extensions: &offered_extensions,
        };
        let (peer, track, ssrc) = build_peer(ends, Arc::new(events)).await?;
        let sender = peer.add_track(Arc::clone(&track) as Arc<dyn TrackLocal>).await.map_err(webrtc_error)?;
        if let Err(e) = peer.set_remote_description(offer).await {
            let _ = peer.close().await;
            return Err(WhepError::BadOffer(e.to_string()));
        }
        let answer = peer.create_answer(None).await.map_err(webrtc_error)?;
        peer.set_local_description(answer).await.map_err(webrtc_error)?;
        // The answer carries every candidate gathered within this time (host
        // candidates at once; STUN/TURN ones need a round trip); later ones
        // are not trickled to the viewer.
        let _ = tokio::time::timeout(Duration::from_secs(3), gathered_rx).await;
        let local = peer.local_description().await.ok_or_else(|| webrtc_error("no local description"))?;
        let feed = self.broadcast.join(viewer);
        self.room.join(viewer, &caller);
        let extensions = NegotiatedExtensions::from_sdp(&local.sdp, self.settings.playout_delay_max_ms);
        let sending = Sending {
            feed,
            broadcast: self.broadcast.clone(),
            peer: peer.clone(),
            track,
            ssrc,
            link: link.clone(),
            extensions,
        };
        let stop_tx = match sending.start(sender.as_ref()).await {
            Ok(stop) => stop,
            Err(e) => {
                self.broadcast.leave(viewer);
                self.room.leave(viewer).await;
                let _ = peer.close().await;
                return Err(e.into());
            }
        };
        let session = Session {
            resource: resource.clone(),
            owner: caller.clone(),
            peer,
            stop: Some(stop_tx),
            remote_ufrag,
            link,
        };
        locked(&self.sessions).insert(id, session);
        seat.keep = true;
        if let Some(access) = &self.access {
            access.record(AccessEvent::Joined {
                session: id,
                who: Who::from(&caller),
                address: address.map(|a| a.to_string()),
            });
        }
        self.end_unless_connected(id);
        Ok((resource, local.sdp))
    }

    /// Ends session `id` if it has not connected within the deadline.
    fn end_unless_connected(&self, id: u64) {
        let ender = self.ender();
        let admission = self.admission.clone();
        let deadline = self.settings.connect_deadline;
        tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            if !locked(&admission).is_connected(id) && ender.end(id, LeaveReason::NeverConnected).await {
                locked(&admission).release(id);
                tracing::info!(viewer = id, ?deadline, "a viewer that never connected was dropped");
            }
        });
    }

    /// The number of `caller`'s session named `resource` (anyone else's, or
    /// none: `NotFound`, the same answer).
    fn find(&self, resource: &str, caller: &Caller) -> Result<u64, WhepError> {
        locked(&self.sessions)
            .iter()
            .find(|(_, s)| s.resource.as_str() == resource && caller.may_act_for(s.owner.credential))
            .map(|(id, _)| *id)
            .ok_or(WhepError::NotFound)
    }

    /// Adds the viewer's trickled candidates (`PATCH` with an SDP fragment)
    /// to `caller`'s session `resource`.
    pub async fn patch(&self, resource: &str, caller: &Caller, fragment: &SdpFragment) -> Result<(), WhepError> {
        let id = self.find(resource, caller)?;
        let (peer, ufrag) = {
            let sessions = locked(&self.sessions);
            let session = sessions.get(&id).ok_or(WhepError::NotFound)?;
            (session.peer.clone(), session.remote_ufrag.clone())
        };
        if fragment.ufrag.is_some() && ufrag.is_some() && fragment.ufrag != ufrag {
            return Err(WhepError::IceRestart);
        }
        for (mid, candidate) in &fragment.candidates {
            let init = RTCIceCandidateInit {
                candidate: candidate.clone(),
                sdp_mid: mid.clone(),
                sdp_mline_index: if mid.is_none() { Some(0) } else { None },
                username_fragment: fragment.ufrag.clone(),
                ..Default::default()
            };
            peer.add_ice_candidate(init).await.map_err(|e| WhepError::BadCandidate(e.to_string()))?;
        }
        Ok(())
    }

    /// Ends `caller`'s session `resource`; false if there is none of theirs.
    pub async fn delete(&self, resource: &str, caller: &Caller) -> bool {
        let Ok(id) = self.find(resource, caller) else { return false };
        let ended = self.ender().end(id, LeaveReason::Deleted).await;
        locked(&self.admission).release(id);
        ended
    }

    /// Ends every session whose owner `reason_to_end` gives a reason for
    /// (a revoked or expired link); returns how many ended.
    pub async fn end_sessions(&self, reason_to_end: impl Fn(&Caller) -> Option<LeaveReason>) -> usize {
        let doomed: Vec<(u64, LeaveReason)> = locked(&self.sessions)
            .iter()
            .filter_map(|(id, session)| reason_to_end(&session.owner).map(|reason| (*id, reason)))
            .collect();
        let ender = self.ender();
        let mut ended = 0;
        for (id, reason) in doomed {
            if ender.end(id, reason).await {
                ended += 1;
            }
            locked(&self.admission).release(id);
        }
        ended
    }
}

/// Frees a seat when dropped, unless told to keep it.
struct SeatGuard {
    admission: Arc<Mutex<Admission>>,
    id: u64,
    keep: bool,
}

impl Drop for SeatGuard {
    fn drop(&mut self) {
        if !self.keep {
            locked(&self.admission).release(self.id);
        }
    }
}

/// What ending a session touches.
struct Ender {
    sessions: Sessions,
    broadcast: Arc<Broadcast>,
    room: Arc<RoomChannels>,
    access: Option<Arc<dyn AccessSink>>,
}

impl Ender {
    /// Ends session `id` for `reason`: its sending task, its fan-out queue,
    /// its place in the room and its peer connection. False if there was none.
    async fn end(&self, id: u64, reason: LeaveReason) -> bool {
        let session = locked(&self.sessions).remove(&id);
        let Some(mut session) = session else { return false };
        if let Some(access) = &self.access {
            access.record(AccessEvent::Left { session: id, who: Who::from(&session.owner), reason });
        }
        if let Some(stop) = session.stop.take() {
            let _ = stop.send(());
        }
        self.broadcast.leave(ViewerId(id));
        self.room.leave(ViewerId(id)).await;
        let _ = session.peer.close().await;
        true
    }
}
