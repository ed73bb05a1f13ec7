//! The station's HTTP server on `--listen ADDR:PORT`: the viewer page at `/`,
//! WHEP at `/whep` (`POST` offer, `PATCH` trickle candidates, `DELETE`,
//! `OPTIONS`/CORS, STUN/TURN servers in `Link` headers), `/viewers` for the
//! operator, `/metrics` (Prometheus text exposition) and `/healthz`. Over
//! HTTPS when a [`TlsIdentity`] is given. It runs its own small tokio runtime
//! on named threads, so nothing here can hold up the frame loop; a request
//! only reads atomics and copies a status struct.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use scopecast_transport::access::{AccessEvent, AccessSink, LeaveReason, Who};
use scopecast_transport::auth::{Caller, Denied, Role, Tokens};
use scopecast_transport::ice::parse_sdpfrag;
use scopecast_transport::whep::{Whep, WhepError};
use thiserror::Error;

use crate::clock::SharedClock;
use crate::source::supervisor::SourceStatus;
use crate::station::MetricsView;
use crate::station::snapshot_desk::{SnapshotDesk, SnapshotError};
use crate::tls::{TlsIdentity, TlsListener};

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum HttpError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The runtime or its thread could not start.
    #[error("cannot start the HTTP server: {0}")]
    Runtime(std::io::Error),
}

#[derive(Clone)]
struct AppState {
    metrics: MetricsView,
    source: Arc<Mutex<SourceStatus>>,
    clock: SharedClock,
    whep: Option<Arc<Whep>>,
    tokens: Arc<Tokens>,
    /// `/metrics` needs a bearer token (any role).
    metrics_need_token: bool,
    access: Option<Arc<dyn AccessSink>>,
    snapshots: Option<SnapshotDesk>,
}

/// How the server serves, beyond what it serves.
#[derive(Clone, Default)]
pub struct HttpOptions {
    /// HTTPS with this identity; plain HTTP without.
    pub tls: Option<TlsIdentity>,
    /// `/metrics` needs a bearer token of any role (`[http] metrics_auth`).
    pub metrics_need_token: bool,
    /// Who joins, leaves and is refused goes here (the access log).
    pub access: Option<Arc<dyn AccessSink>>,
    /// The state folder whose `revoked.json` is watched: a revoked link is
    /// refused from then on and its holder's sessions end (expired links' too).
    pub links_state_dir: Option<std::path::PathBuf>,
    /// `GET /snapshot.png` (operator): the newest composited frame.
    pub snapshots: Option<SnapshotDesk>,
}

/// How often the revocations file and the links' expiry are checked.
pub const LINK_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// After a stop, how long requests in flight may take to finish, and then
/// how long the server's remaining tasks are waited for: the station stops
/// within a second whatever its viewers' connections are doing.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_millis(300);

/// Wall-clock now, Unix s (read at the HTTP boundary; the decisions take it as input).
fn now_unix_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Who presents the `Authorization` header's token, if it allows an action needing `role`.
fn identify(state: &AppState, headers: &HeaderMap, role: Role) -> Result<Caller, Denied> {
    let header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    state.tokens.identify(header, role, now_unix_s())
}

/// Records a refused join in the access log.
fn log_refusal(state: &AppState, status: StatusCode, reason: String, who: Option<&Caller>, from: &PeerAddr) {
    if let Some(access) = &state.access {
        access.record(AccessEvent::Refused {
            status: status.as_u16(),
            reason,
            who: who.map(Who::from),
            address: Some(from.0.ip().to_string()),
        });
    }
}

/// Ends the sessions of links that were revoked or expired; reloads the
/// revocations when their file changed. Runs until the server stops.
async fn watch_links(tokens: Arc<Tokens>, whep: Option<Arc<Whep>>, state_dir: std::path::PathBuf) {
    use scopecast_transport::links::{REVOKED_FILE, Revocations};
    let path = state_dir.join(REVOKED_FILE);
    let stamp = |path: &std::path::Path| std::fs::metadata(path).ok().map(|m| (m.modified().ok(), m.len()));
    let mut seen = stamp(&path);
    let mut tick = tokio::time::interval(LINK_CHECK_INTERVAL);
    loop {
        tick.tick().await;
        let now = stamp(&path);
        if now != seen {
            seen = now;
            match Revocations::load(&state_dir) {
                Ok(revoked) => {
                    tracing::info!(links = revoked.iter().count(), "revoked links reloaded");
                    tokens.set_revocations(revoked);
                }
                Err(e) => tracing::warn!(error = %e, "the revoked links file cannot be read; the previous list stays"),
            }
        }
        let Some(whep) = &whep else { continue };
        let now_s = now_unix_s();
        let ended = whep
            .end_sessions(|caller| {
                if tokens.still_admits(caller, now_s) {
                    None
                } else if caller.expires_unix_s.is_some_and(|expires| now_s >= expires) {
                    Some(LeaveReason::Expired)
                } else {
                    Some(LeaveReason::Revoked)
                }
            })
            .await;
        if ended > 0 {
            tracing::info!(sessions = ended, "sessions of revoked or expired links ended");
        }
    }
}

/// The HTTP answer to a refused token.
fn denial(denied: Denied) -> Response {
    match denied {
        Denied::Unauthenticated => {
            (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "a valid bearer token is needed\n")
                .into_response()
        }
        Denied::LinkRefused(reason) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            format!("{reason}; ask the station's operator for a new link\n"),
        )
            .into_response(),
        Denied::Forbidden => (StatusCode::FORBIDDEN, "this token's role does not allow that\n").into_response(),
    }
}

/// The refusal of an action needing `role`, if the `Authorization` header does not allow it.
fn refusal(state: &AppState, headers: &HeaderMap, role: Role) -> Option<Response> {
    identify(state, headers, role).err().map(denial)
}

async fn serve_viewer() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], scopecast_transport::VIEWER_PAGE)
}

/// WHEP: `POST /whep` with an SDP offer → `201 Created`, `Location`, SDP answer.
async fn whep_offer(
    State(state): State<AppState>,
    ConnectInfo(from): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let caller = match identify(&state, &headers, Role::Viewer) {
        Ok(caller) => caller,
        Err(denied) => {
            let reason = match &denied {
                Denied::Unauthenticated => "no valid token".to_string(),
                Denied::LinkRefused(reason) => reason.clone(),
                Denied::Forbidden => "role not allowed".to_string(),
            };
            let response = denial(denied);
            log_refusal(&state, response.status(), reason, None, &from);
            return response;
        }
    };
    let Some(whep) = state.whep.clone() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "the station is not encoding (encoder.enabled = false)\n")
            .into_response();
    };
    if !content_type_is(&headers, "application/sdp") {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "WHEP offers are application/sdp\n").into_response();
    }
    match whep.create(body, caller.clone(), Some(from.0.ip())).await {
        Ok((id, answer)) => {
            let mut response = (
                StatusCode::CREATED,
                CORS,
                [(header::LOCATION, format!("/whep/{id}")), (header::CONTENT_TYPE, "application/sdp".to_string())],
                answer,
            )
                .into_response();
            add_ice_links(&mut response, &whep);
            response
        }
        Err(WhepError::BadOffer(reason)) => {
            (StatusCode::BAD_REQUEST, format!("malformed SDP offer: {reason}\n")).into_response()
        }
        Err(e @ WhepError::Full { .. }) => {
            log_refusal(&state, StatusCode::SERVICE_UNAVAILABLE, e.to_string(), Some(&caller), &from);
            (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "5")], format!("{e}\n")).into_response()
        }
        Err(e @ WhepError::Busy(_)) => {
            log_refusal(&state, StatusCode::TOO_MANY_REQUESTS, e.to_string(), Some(&caller), &from);
            (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "2")], format!("{e}\n")).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "WHEP session failed");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
    }
}

/// Whether the request's `Content-Type` is `wanted` (parameters ignored).
fn content_type_is(headers: &HeaderMap, wanted: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case(wanted)))
}

/// The STUN/TURN servers as `Link: <url>; rel="ice-server"` headers (WHEP
/// draft §4.4; RFC 9725 §4.6).
fn add_ice_links(response: &mut Response, whep: &Whep) {
    for server in whep.ice_servers() {
        for value in server.link_values() {
            if let Ok(value) = header::HeaderValue::from_str(&value) {
                response.headers_mut().append(header::LINK, value);
            }
        }
    }
}

/// CORS for WHEP players served from another origin (the WHEP draft's
/// `OPTIONS` preflight): any origin may ask, the bearer token still decides.
const CORS: [(header::HeaderName, &str); 4] = [
    (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
    (header::ACCESS_CONTROL_ALLOW_METHODS, "POST, PATCH, DELETE, OPTIONS"),
    (header::ACCESS_CONTROL_ALLOW_HEADERS, "Authorization, Content-Type, If-Match"),
    (header::ACCESS_CONTROL_EXPOSE_HEADERS, "Location, Link"),
];

/// `OPTIONS`: the CORS preflight, and the ICE servers before an offer (WHEP draft §4.4).
async fn whep_options(State(state): State<AppState>) -> Response {
    let mut response = (StatusCode::NO_CONTENT, CORS).into_response();
    if let Some(whep) = &state.whep {
        add_ice_links(&mut response, whep);
    }
    response
}

/// WHEP trickle ICE: `PATCH /whep/{id}` with `application/trickle-ice-sdpfrag` → `204`.
async fn whep_patch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let caller = match identify(&state, &headers, Role::Viewer) {
        Ok(caller) => caller,
        Err(denied) => return denial(denied),
    };
    if !content_type_is(&headers, "application/trickle-ice-sdpfrag") {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "trickle ICE is application/trickle-ice-sdpfrag\n")
            .into_response();
    }
    let Some(whep) = state.whep else { return StatusCode::NOT_FOUND.into_response() };
    let fragment = match parse_sdpfrag(&body) {
        Ok(fragment) => fragment,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    match whep.patch(&id, &caller, &fragment).await {
        Ok(()) => (StatusCode::NO_CONTENT, CORS).into_response(),
        Err(WhepError::NotFound) => StatusCode::NOT_FOUND.into_response(),
        Err(e @ WhepError::IceRestart) => (StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n")).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

/// How long `GET /snapshot.png` waits for the next composited frame.
const SNAPSHOT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /snapshot.png` (operator): the next composited frame as PNG, exact
/// pixels (for documentation, the patient record, and tests that must see
/// pixels). 503 without a compositor or a frame in 2 s; 429 while another
/// snapshot is being taken.
async fn serve_snapshot(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(refused) = refusal(&state, &headers, Role::Operator) {
        return refused;
    }
    let Some(desk) = state.snapshots.clone() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "this station does not composite\n").into_response();
    };
    let encoded = tokio::task::spawn_blocking(move || {
        // This runtime's threads start on the frame path (the feeds); a PNG is not on it.
        crate::thread_priority::leave_frame_path();
        let snapshot = desk.take(SNAPSHOT_WAIT)?;
        let mut png = Vec::new();
        let encoder = image::codecs::png::PngEncoder::new(&mut png);
        image::ImageEncoder::write_image(
            encoder,
            &snapshot.rgba,
            snapshot.width,
            snapshot.height,
            image::ExtendedColorType::Rgba8,
        )
        .map_err(|_| SnapshotError::NoFrame { waited_ms: 0 })?;
        Ok::<_, SnapshotError>((png, snapshot.capture_wall_ms))
    })
    .await;
    match encoded {
        Ok(Ok((png, capture_wall_ms))) => (
            [
                (header::CONTENT_TYPE, "image/png".to_string()),
                (header::CACHE_CONTROL, "no-store".to_string()),
                (header::HeaderName::from_static("x-capture-wall-ms"), capture_wall_ms.to_string()),
            ],
            png,
        )
            .into_response(),
        Ok(Err(SnapshotError::Busy)) => {
            (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")], "a snapshot is being taken\n").into_response()
        }
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /viewers` (operator): who is watching, with each viewer's RTT and loss.
async fn list_viewers(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(refused) = refusal(&state, &headers, Role::Operator) {
        return refused;
    }
    let participants = state.whep.iter().flat_map(|w| w.participants()).collect::<Vec<_>>();
    let viewers: Vec<serde_json::Value> = state
        .whep
        .iter()
        .flat_map(|w| w.viewer_links())
        .map(|(id, l)| {
            let who = participants.iter().find(|p| p.id == id);
            serde_json::json!({
                "id": id, "name": who.map(|p| p.name.clone()), "role": who.map(|p| p.role),
                "connected": l.connected, "rtt_ms": l.rtt_s.map(|s| s * 1e3),
                "fraction_lost": l.fraction_lost, "packets_lost": l.packets_lost, "packets_sent": l.packets_sent,
                "bytes_sent": l.bytes_sent, "nacked_packets": l.nacked_packets, "plis": l.plis, "firs": l.firs,
                "estimate_kbps": l.estimate_bps.map(|b| b / 1e3), "layer": l.layer.name(),
                "resends_refused": l.resends_refused,
            })
        })
        .collect();
    let body = serde_json::json!({ "viewers": viewers }).to_string();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// WHEP: `DELETE /whep/{id}` ends the session: the caller's own, or any for
/// an operator; anyone else gets 404, as for a session that does not exist.
async fn whep_delete(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let caller = match identify(&state, &headers, Role::Viewer) {
        Ok(caller) => caller,
        Err(denied) => return denial(denied),
    };
    match state.whep {
        Some(whep) if whep.delete(&id, &caller).await => StatusCode::OK.into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn serve_metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.metrics_need_token
        && let Some(refused) = refusal(&state, &headers, Role::Viewer)
    {
        return refused;
    }
    let mut text = state.metrics.render(state.clock.now_ns());
    if let Some(whep) = &state.whep {
        whep.render_metrics(&mut text);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// `200` while encoded frames reach the viewers (NO SIGNAL cards count: the
/// station is up and says what is wrong with its input), `503` with the
/// reason once none has for 2 s, so monitoring sees a dead station.
async fn serve_healthz(State(state): State<AppState>) -> impl IntoResponse {
    let source = state.source.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let source_words = match &source.no_signal {
        None => format!("source {} live", source.description),
        Some(reason) => format!("source {} NO SIGNAL ({reason})", source.description),
    };
    let health = state.metrics.health(state.clock.now_ns()).unwrap_or_else(|| Ok(String::new()));
    let (code, body) = match health {
        Ok(flow) if flow.is_empty() => (StatusCode::OK, format!("ok: {source_words}\n")),
        Ok(flow) => (StatusCode::OK, format!("ok: {source_words}; {flow}\n")),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("unavailable: {reason}; {source_words}\n")),
    };
    (code, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body)
}

/// The address a request came from, over plain TCP or TLS.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>> for PeerAddr {
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for PeerAddr {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// A running HTTP server.
pub struct HttpServer {
    /// The address actually bound (port 0 picks a free one).
    pub local_addr: SocketAddr,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` and serves until [`HttpServer::stop`] or drop.
    pub fn start(
        addr: SocketAddr,
        metrics: MetricsView,
        source: Arc<Mutex<SourceStatus>>,
        clock: SharedClock,
        whep: Option<Arc<Whep>>,
        tokens: Tokens,
        options: HttpOptions,
    ) -> Result<Self, HttpError> {
        let HttpOptions { tls, metrics_need_token, access, links_state_dir, snapshots } = options;
        let tokens = Arc::new(tokens);
        // Each viewer's feed is written to its track (RTP, SRTP, the socket)
        // on this runtime: its threads are on the frame path (its blocking
        // tasks, the snapshot's PNG, step off it).
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("scopecast-http")
            .on_thread_start(crate::thread_priority::enter_frame_path)
            .enable_io()
            .enable_time()
            .build()
            .map_err(HttpError::Runtime)?;
        let listener =
            runtime.block_on(tokio::net::TcpListener::bind(addr)).map_err(|source| HttpError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| HttpError::Bind { addr, source })?;
        let app = Router::new()
            .route("/", get(serve_viewer))
            .route("/metrics", get(serve_metrics))
            .route("/healthz", get(serve_healthz))
            .route("/viewers", get(list_viewers))
            .route("/snapshot.png", get(serve_snapshot))
            .route("/whep", post(whep_offer).options(whep_options))
            .route("/whep/{id}", axum::routing::patch(whep_patch).delete(whep_delete).options(whep_options))
            .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
            .with_state(AppState {
                metrics,
                source,
                clock,
                whep: whep.clone(),
                tokens: tokens.clone(),
                metrics_need_token,
                access,
                snapshots,
            });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("scopecast-http-main".into())
            .spawn(move || {
                if let Some(state_dir) = links_state_dir {
                    runtime.spawn(watch_links(tokens, whep, state_dir));
                }
                let served = runtime.block_on(async move {
                    let asked = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
                        // A dropped sender is a stop too.
                        let _ = stopped.wait_for(|stop| *stop).await;
                    };
                    // The peer's address: WHEP setups are limited per address.
                    let app = app.into_make_service_with_connect_info::<PeerAddr>();
                    let serving = async {
                        match tls {
                            None => axum::serve(listener, app).with_graceful_shutdown(asked(stopped.clone())).await,
                            Some(identity) => {
                                let listener = TlsListener::new(listener, &identity)?;
                                axum::serve(listener, app).with_graceful_shutdown(asked(stopped.clone())).await
                            }
                        }
                    };
                    // Requests in flight get STOP_GRACE to finish (a WHEP offer
                    // waits up to 3 s for ICE gathering); then the server goes.
                    let grace = async {
                        asked(stopped.clone()).await;
                        tokio::time::sleep(STOP_GRACE).await;
                        Ok(())
                    };
                    tokio::select! {
                        served = serving => served,
                        over = grace => over,
                    }
                });
                if let Err(e) = served {
                    tracing::error!(error = %e, "HTTP server stopped");
                }
                // Tasks still running (peer connections' drivers, a blocking
                // lookup) are left after STOP_GRACE rather than waited for.
                runtime.shutdown_timeout(STOP_GRACE);
            })
            .map_err(HttpError::Runtime)?;
        Ok(Self { local_addr, stop: Some(stop), thread: Some(thread) })
    }

    /// Stops serving and waits for the server thread.
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

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
