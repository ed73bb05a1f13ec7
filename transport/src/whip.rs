//! WHIP publishing (RFC 9725): the station pushes its encoded stream (the
//! full layer) to a WHIP endpoint — an SFU or a media server — as one more
//! peer of the fan-out: an SDP offer `POST`ed with the bearer token, the
//! `201 Created` answer and its `Location`, media until the connection ends,
//! `DELETE` of the resource on the way out. When the endpoint is unreachable,
//! refuses, or the connection fails, it tries again after a back-off of 1 s
//! doubling to 30 s; nothing else in the station notices.
//!
//! It runs on its own named thread with a small tokio runtime.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::{
    PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

use crate::broadcast::Broadcast;
use crate::clock::StationClock;
use crate::fanout::ViewerId;
use crate::feedback::ViewerLink;
use crate::http_client::{HttpUrl, request};
use crate::ice::IceServer;
use crate::peer::{PeerEnds, Sending, build_peer};
use crate::whep::WhepError;

/// Fan-out ids of publishers start here (WHEP sessions count up from 1).
const PUBLISHER_IDS: u64 = 1 << 62;
/// First and longest wait before trying again.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// Deadline of each HTTP exchange.
const HTTP_DEADLINE: Duration = Duration::from_secs(10);
/// A connection that does not come up within this is given up.
const CONNECT_DEADLINE: Duration = Duration::from_secs(15);

/// Where and how to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct WhipSettings {
    /// The endpoint, `http://host:port/path`.
    pub url: String,
    /// Bearer token, if the endpoint wants one.
    pub token: Option<String>,
    /// The address ICE gathers host candidates on.
    pub bind_ip: IpAddr,
    /// STUN/TURN servers.
    pub ice_servers: Vec<IceServer>,
}

/// What the publisher is doing, for metrics and the status line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WhipStatus {
    /// Media is flowing to the endpoint.
    pub connected: bool,
    /// Sessions the endpoint accepted.
    pub sessions: u64,
    /// Attempts that failed.
    pub failures: u64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The network path's figures of the current session.
    pub link: ViewerLink,
}

/// A running publisher; dropping it stops it (and `DELETE`s the session).
pub struct WhipPublisher {
    status: Arc<Mutex<WhipStatus>>,
    stop: Option<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Clone)]
struct Events {
    gathered: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    state: watch::Sender<RTCPeerConnectionState>,
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
        let _ = self.state.send(state);
    }
}

fn status_of(status: &Mutex<WhipStatus>) -> std::sync::MutexGuard<'_, WhipStatus> {
    status.lock().unwrap_or_else(PoisonError::into_inner)
}

impl WhipPublisher {
    /// Starts publishing `broadcast` to `settings.url` (feedback timed by
    /// `clock`, the station's); an unusable URL is refused at once.
    pub fn start(settings: WhipSettings, broadcast: Arc<Broadcast>, clock: StationClock) -> Result<Self, WhepError> {
        let url = HttpUrl::parse(&settings.url).map_err(|e| WhepError::WebRtc(e.to_string()))?;
        let status = Arc::new(Mutex::new(WhipStatus::default()));
        let (stop, stopped) = watch::channel(false);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("scopecast-whip-io")
            .enable_all()
            .build()
            .map_err(|e| WhepError::WebRtc(e.to_string()))?;
        let task_status = status.clone();
        let thread = std::thread::Builder::new()
            .name("scopecast-whip".into())
            .spawn(move || runtime.block_on(publish_forever(settings, url, broadcast, clock, task_status, stopped)))
            .map_err(|e| WhepError::WebRtc(e.to_string()))?;
        Ok(Self { status, stop: Some(stop), thread: Some(thread) })
    }

    /// What it is doing now.
    pub fn status(&self) -> WhipStatus {
        status_of(&self.status).clone()
    }

    /// Stops publishing and waits for the `DELETE`.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for WhipPublisher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn publish_forever(
    settings: WhipSettings,
    url: HttpUrl,
    broadcast: Arc<Broadcast>,
    clock: StationClock,
    status: Arc<Mutex<WhipStatus>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = FIRST_RETRY;
    let mut attempt = 0u64;
    while !*stopped.borrow() {
        attempt += 1;
        let viewer = ViewerId(PUBLISHER_IDS + attempt);
        match publish_once(&settings, &url, (&broadcast, &clock), &status, viewer, &mut stopped).await {
            Ok(()) => backoff = FIRST_RETRY,
            Err(e) => {
                tracing::warn!(endpoint = %settings.url, error = %e, retry_in = ?backoff, "WHIP publishing failed");
                let mut s = status_of(&status);
                s.failures += 1;
                s.last_error = Some(e);
            }
        }
        status_of(&status).connected = false;
        if *stopped.borrow() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped.changed() => {}
        }
        backoff = (backoff * 2).min(MAX_RETRY);
    }
}

/// One session: offer, answer, media until it ends. `Ok` when it was up and ended.
async fn publish_once(
    settings: &WhipSettings,
    url: &HttpUrl,
    (broadcast, clock): (&Arc<Broadcast>, &StationClock),
    status: &Arc<Mutex<WhipStatus>>,
    viewer: ViewerId,
    stopped: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let link = Arc::new(Mutex::new(ViewerLink::default()));
    // The `Authorization` value for the POST and the DELETE.
    let bearer = settings.token.as_ref().map(|t| format!("Bearer {t}"));
    let (gathered_tx, gathered_rx) = oneshot::channel();
    let (state_tx, mut state) = watch::channel(RTCPeerConnectionState::New);
    let events = Events { gathered: Arc::new(Mutex::new(Some(gathered_tx))), state: state_tx };
    let ends = PeerEnds {
        viewer,
        broadcast: broadcast.clone(),
        link: link.clone(),
        bind_ip: settings.bind_ip,
        ice_servers: &settings.ice_servers,
        estimate_from_bps: None,
        clock: clock.clone(),
        offered_extensions: &[],
    };
    let (peer, track, ssrc) = build_peer(ends, Arc::new(events)).await.map_err(|e| e.to_string())?;
    let init = RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Sendonly, ..Default::default() };
    let result = async {
        let transceiver = peer
            .add_transceiver_from_track(Arc::clone(&track) as Arc<dyn TrackLocal>, Some(init))
            .await
            .map_err(|e| e.to_string())?;
        let offer = peer.create_offer(None).await.map_err(|e| e.to_string())?;
        peer.set_local_description(offer).await.map_err(|e| e.to_string())?;
        // Non-trickle: the offer carries what was gathered within 3 s.
        let _ = tokio::time::timeout(Duration::from_secs(3), gathered_rx).await;
        let offer = peer.local_description().await.ok_or("no local description")?;
        let mut headers = vec![("Content-Type", "application/sdp")];
        if let Some(bearer) = &bearer {
            headers.push(("Authorization", bearer));
        }
        let response =
            request("POST", url, &headers, offer.sdp.as_bytes(), HTTP_DEADLINE).await.map_err(|e| e.to_string())?;
        if response.status != 201 {
            let text = String::from_utf8_lossy(&response.body);
            return Err(format!("the endpoint answered {}: {}", response.status, text.trim()));
        }
        let resource = match response.header("location") {
            Some(location) => Some(url.join(location).map_err(|e| e.to_string())?),
            None => None,
        };
        let answer = String::from_utf8(response.body).map_err(|_| "the SDP answer is not UTF-8")?;
        let answer = RTCSessionDescription::answer(answer).map_err(|e| format!("malformed SDP answer: {e}"))?;
        peer.set_remote_description(answer).await.map_err(|e| format!("SDP answer refused: {e}"))?;
        Ok::<_, String>((transceiver, resource))
    }
    .await;
    let (transceiver, resource) = match result {
        Ok(ok) => ok,
        Err(e) => {
            let _ = peer.close().await;
            return Err(e);
        }
    };
    let feed = broadcast.join(viewer);
    let sending = Sending {
        feed,
        broadcast: broadcast.clone(),
        peer: peer.clone(),
        track,
        ssrc,
        link: link.clone(),
        extensions: crate::rtp_extensions::NegotiatedExtensions::default(),
    };
    let sender =
        transceiver.sender().await.map_err(|e| e.to_string()).and_then(|s| s.ok_or_else(|| "no sender".to_string()));
    let outcome = match sender {
        Ok(sender) => match sending.start(sender.as_ref()).await {
            Ok(stop_sending) => {
                let outcome = watch_session(&mut state, stopped, status, &link).await;
                let _ = stop_sending.send(());
                outcome
            }
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e),
    };
    broadcast.leave(viewer);
    if let Some(resource) = resource {
        let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("Authorization", b.as_str())).collect();
        if let Err(e) = request("DELETE", &resource, &headers, b"", HTTP_DEADLINE).await {
            tracing::debug!(error = %e, "WHIP DELETE failed");
        }
    }
    let _ = peer.close().await;
    outcome
}

/// Waits while the session is up; `Ok` when it was connected and then ended
/// (or the publisher was stopped), `Err` when it never came up.
async fn watch_session(
    state: &mut watch::Receiver<RTCPeerConnectionState>,
    stopped: &mut watch::Receiver<bool>,
    status: &Arc<Mutex<WhipStatus>>,
    link: &Arc<Mutex<ViewerLink>>,
) -> Result<(), String> {
    let connect_by = tokio::time::Instant::now() + CONNECT_DEADLINE;
    let mut was_connected = false;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        let now_state = *state.borrow();
        match now_state {
            RTCPeerConnectionState::Connected if !was_connected => {
                was_connected = true;
                let mut s = status_of(status);
                s.connected = true;
                s.sessions += 1;
                s.last_error = None;
                tracing::info!("WHIP: publishing");
            }
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed | RTCPeerConnectionState::Disconnected => {
                return if was_connected { Ok(()) } else { Err(format!("the connection went {now_state}")) };
            }
            _ => {}
        }
        if !was_connected && tokio::time::Instant::now() > connect_by {
            return Err(format!("not connected within {CONNECT_DEADLINE:?}"));
        }
        tokio::select! {
            changed = state.changed() => if changed.is_err() { return Err("the connection vanished".into()) },
            _ = stopped.changed() => return Ok(()),
            _ = tick.tick() => {
                status_of(status).link = link.lock().unwrap_or_else(PoisonError::into_inner).clone();
            }
        }
    }
}
