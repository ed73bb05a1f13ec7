//! The network endpoints of a station, started in one place for `scopecast
//! run` and `scopecast replay`: the HTTP(S) server (viewer page, WHEP,
//! `/metrics`, `/healthz`, links) with the config's tokens (a viewer and an
//! operator token generated when none are configured) and named links, the
//! access log, and, for a live station with `[whip] url`, the WHIP publisher.
//!
//! What the operator needs to hear (the links with their tokens, the
//! certificate's fingerprint, a port taken) comes back as lines for the
//! terminal ([`Endpoints::operator_lines`]); the tokens are never logged.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use scopecast_transport::access::AccessSink;
use scopecast_transport::auth::{Role, Token, Tokens};
use scopecast_transport::broadcast::Broadcast;
use scopecast_transport::links::{LinkKey, Revocations};
use scopecast_transport::room::CommandSink;
use scopecast_transport::room_channels::Announcements;
use scopecast_transport::whep::{CONNECT_DEADLINE, Whep, WhepError, WhepSettings};
use scopecast_transport::whip::{WhipPublisher, WhipSettings};
use thiserror::Error;

use super::MetricsView;
use crate::access_log::{AccessLog, AccessLogSettings};
use crate::clock::{SharedClock, for_transport};
use crate::config::Config;
use crate::http::{HttpError, HttpOptions, HttpServer};
use crate::recorder::Recorder;
use crate::source::supervisor::SharedSourceStatus;
use crate::tls::{TlsError, TlsIdentity};

/// Why the endpoints could not start.
#[derive(Debug, Error)]
pub enum EndpointError {
    /// No random token could be generated.
    #[error("cannot generate a token: {0}")]
    Token(std::io::Error),
    /// The TLS certificate could not be loaded or made.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The HTTP server could not start.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The WHIP publisher could not start.
    #[error("cannot publish to the WHIP endpoint {url}: {source}")]
    Whip {
        /// The endpoint.
        url: String,
        /// Why.
        source: WhepError,
    },
}

/// What the endpoints serve.
pub struct EndpointParts {
    /// The encoded stream (none: the station does not encode, and there is no WHEP).
    pub broadcast: Option<Arc<Broadcast>>,
    /// Where the viewers' accepted data-channel commands go.
    pub commands: Option<Arc<dyn CommandSink>>,
    /// `/metrics` and `/healthz`.
    pub metrics: MetricsView,
    /// The source's state (`/healthz`, the page's status).
    pub source: SharedSourceStatus,
    /// The recording that access records also go into (a live station's).
    pub recorder: Option<Arc<Recorder>>,
    /// Publish to `[whip] url` when it is set (a live station; a replay never does).
    pub publish_whip: bool,
    /// What every page hears on the station's own account (tracking state).
    pub announcements: Option<Announcements>,
    /// Where `GET /snapshot.png` asks for the newest composited frame.
    pub snapshots: Option<super::snapshot_desk::SnapshotDesk>,
}

/// The running endpoints.
pub struct Endpoints {
    /// The HTTP(S) server, when `[http] listen` is an address.
    pub http: Option<HttpServer>,
    /// The WHEP endpoint the server serves, when the station encodes.
    pub whep: Option<Arc<Whep>>,
    /// The WHIP publisher, when one was asked for.
    pub whip: Option<WhipPublisher>,
    /// What to print on the operator's terminal, in order (links with their
    /// tokens: print them, never log them).
    pub operator_lines: Vec<String>,
}

impl Endpoints {
    /// Starts what `config` asks for on `parts`.
    pub fn start(config: &Config, parts: EndpointParts, clock: &SharedClock) -> Result<Self, EndpointError> {
        let mut operator_lines = Vec::new();
        let (mut http, mut whep) = (None, None);
        if let Some(Ok(addr)) = config.http.listen.as_deref().map(str::parse::<SocketAddr>) {
            let access = start_access_log(config, parts.recorder.clone());
            whep = parts.broadcast.clone().map(|broadcast| {
                let mut endpoint = Whep::new(
                    broadcast,
                    whep_settings(config, addr.ip()),
                    parts.commands.clone(),
                    for_transport(clock),
                );
                if let Some(announcements) = &parts.announcements {
                    endpoint = endpoint.with_announcements(announcements.clone());
                }
                Arc::new(match &access {
                    Some(log) => endpoint.with_access(log.clone()),
                    None => endpoint,
                })
            });
            let server = start_http(config, addr, &parts, clock, whep.clone(), access, &mut operator_lines)?;
            http = Some(server);
        }
        let url = config.whip.url.as_ref().filter(|_| parts.publish_whip);
        let whip = match (&parts.broadcast, url) {
            (Some(broadcast), Some(url)) => {
                let settings = WhipSettings {
                    url: url.clone(),
                    token: config.whip.token.clone(),
                    // All interfaces: the endpoint may be reachable on any of them.
                    bind_ip: Ipv4Addr::UNSPECIFIED.into(),
                    ice_servers: config.http.ice_servers.clone(),
                };
                operator_lines.push(format!("publishing to WHIP endpoint {url}"));
                let publisher = WhipPublisher::start(settings, broadcast.clone(), for_transport(clock))
                    .map_err(|source| EndpointError::Whip { url: url.clone(), source })?;
                Some(publisher)
            }
            (None, Some(_)) => {
                tracing::warn!("whip.url is set but the encoder is off: nothing to publish");
                None
            }
            _ => None,
        };
        Ok(Self { http, whep, whip, operator_lines })
    }

    /// Viewers watching over WHEP now.
    pub fn viewer_count(&self) -> usize {
        self.whep.as_ref().map_or(0, |w| w.viewer_count())
    }

    /// Stops the WHIP publisher, then the server (each within its own bound).
    pub fn stop(self) {
        if let Some(publisher) = self.whip {
            publisher.stop();
        }
        if let Some(server) = self.http {
            server.stop();
        }
    }
}

fn whep_settings(config: &Config, bind_ip: IpAddr) -> WhepSettings {
    WhepSettings {
        bind_ip,
        max_viewers: config.http.max_viewers,
        ice_servers: config.http.ice_servers.clone(),
        initial_estimate_bps: f64::from(config.encoder.bitrate_kbps) * 1e3,
        connect_deadline: CONNECT_DEADLINE,
        playout_delay_max_ms: config.http.playout_delay_max_ms,
    }
}

/// HTTPS off loopback: the configured certificate, or a self-signed one for
/// the listening address (and `localhost`).
fn tls_identity(config: &Config, addr: SocketAddr) -> Result<Option<TlsIdentity>, TlsError> {
    if addr.ip().is_loopback() {
        return Ok(None);
    }
    let identity = match (&config.http.tls_cert, &config.http.tls_key) {
        (Some(cert), Some(key)) => TlsIdentity::load(cert, key)?,
        // `Config::validate` refuses a certificate without its key and the other way round.
        _ => {
            let mut names = vec!["localhost".to_string()];
            if !addr.ip().is_unspecified() {
                names.push(addr.ip().to_string());
            }
            TlsIdentity::self_signed(names)?
        }
    };
    Ok(Some(identity))
}

/// Starts the access log of `[access]` (records also go to `recorder`'s
/// open session); `None`, with a warning, when its thread cannot start.
fn start_access_log(config: &Config, recorder: Option<Arc<Recorder>>) -> Option<Arc<AccessLog>> {
    let settings = AccessLogSettings {
        path: config.access.log_path(),
        max_bytes: config.access.log_max_mib * 1024 * 1024,
        keep: config.access.log_keep,
    };
    let path = settings.path.clone();
    match AccessLog::start(settings, recorder) {
        Ok(log) => {
            tracing::info!(path = %path.display(), "access log");
            Some(Arc::new(log))
        }
        Err(e) => {
            tracing::warn!(error = %e, "no access log: its thread cannot start");
            None
        }
    }
}

/// Starts the HTTP(S) server on `addr` (on a free port of the same address
/// when that port is taken, saying so) and adds the links to watch with to
/// `lines`.
fn start_http(
    config: &Config,
    addr: SocketAddr,
    parts: &EndpointParts,
    clock: &SharedClock,
    whep: Option<Arc<Whep>>,
    access: Option<Arc<AccessLog>>,
    lines: &mut Vec<String>,
) -> Result<HttpServer, EndpointError> {
    let mut tokens: Vec<Token> = config.http.tokens.iter().map(|t| Token::new(t.token.clone(), t.role)).collect();
    if tokens.is_empty() {
        tokens.push(Token::generate(Role::Viewer).map_err(EndpointError::Token)?);
        tokens.push(Token::generate(Role::Operator).map_err(EndpointError::Token)?);
    }
    let state_dir = config.access.state_dir();
    let mut credentials = Tokens::new(tokens.clone());
    let mut links_state_dir = None;
    match (LinkKey::load_or_create(&state_dir), Revocations::load(&state_dir)) {
        (Ok(key), Ok(revoked)) => {
            credentials = credentials.with_links(key, revoked);
            links_state_dir = Some(state_dir);
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "named links (scopecast link) are refused: the state folder is not usable");
        }
    }
    let viewer_token = tokens.iter().find(|t| t.role == Role::Viewer).map(|t| t.reveal().to_string());
    let operator_token = tokens.iter().find(|t| t.role == Role::Operator).map(|t| t.reveal().to_string());
    let tls = tls_identity(config, addr)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    if let Some(identity) = &tls {
        let origin = if identity.self_signed { "self-signed, generated now" } else { "from the config" };
        lines.push(format!("TLS certificate ({origin}) SHA-256 fingerprint: {}", identity.fingerprint_sha256));
    }
    let start = |addr| {
        HttpServer::start(
            addr,
            parts.metrics.clone(),
            parts.source.clone(),
            clock.clone(),
            whep.clone(),
            credentials.clone(),
            HttpOptions {
                tls: tls.clone(),
                metrics_need_token: config.http.metrics_auth.needs_token(addr),
                access: access.clone().map(|a| a as Arc<dyn AccessSink>),
                links_state_dir: links_state_dir.clone(),
                snapshots: parts.snapshots.clone(),
            },
        )
    };
    let server = match start(addr) {
        Err(HttpError::Bind { source, .. }) if source.kind() == std::io::ErrorKind::AddrInUse && addr.port() != 0 => {
            let server = start(SocketAddr::new(addr.ip(), 0))?;
            lines.push(format!(
                "port {} is taken (another station or program); serving on port {} instead",
                addr.port(),
                server.local_addr.port()
            ));
            server
        }
        other => other?,
    };
    let base = format!("{scheme}://{}", server.local_addr);
    match &viewer_token {
        Some(token) => {
            lines.push(
                "open a link in a browser to watch (the operator's may also draw, record and switch layers):".into(),
            );
            lines.push(format!("viewer: {base}/#token={token}"));
            if let Some(operator) = &operator_token {
                lines.push(format!("operator: {base}/#token={operator}&name=Operator"));
            }
            lines.push(format!("WHEP endpoint for players: {base}/whep token={token}"));
        }
        None => lines.push(format!("{base}/whep (no viewer token configured)")),
    }
    let needs_token = config.http.metrics_auth.needs_token(server.local_addr);
    lines.push(format!("metrics: {base}/metrics{}", if needs_token { " (with a bearer token)" } else { "" }));
    lines.push(format!("health: {base}/healthz"));
    if let Some(token) = &operator_token {
        lines.push(format!("operator token: {token}"));
    }
    Ok(server)
}
