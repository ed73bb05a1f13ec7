//! The station's HTTP server: `/metrics` (Prometheus text exposition) and
//! `/healthz`, on `--listen ADDR:PORT`. It runs its own small tokio runtime
//! on named threads, so nothing here can hold up the frame loop; a request
//! only reads atomics and copies a status struct.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use thiserror::Error;

use crate::clock::SharedClock;
use crate::source::supervisor::SourceStatus;
use crate::station::MetricsView;

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
}

async fn serve_metrics(State(state): State<AppState>) -> impl IntoResponse {
    let text = state.metrics.render(state.clock.now_ns());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

async fn serve_healthz(State(state): State<AppState>) -> impl IntoResponse {
    let source = state.source.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let body = match &source.no_signal {
        None => format!("ok: source {} live\n", source.description),
        Some(reason) => format!("ok: source {} NO SIGNAL ({reason})\n", source.description),
    };
    // The station itself is up either way; NO SIGNAL is reported, not an outage of the service.
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body)
}

/// A running HTTP server.
pub struct HttpServer {
    /// The address actually bound (port 0 picks a free one).
    pub local_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` and serves until [`HttpServer::stop`] or drop.
    pub fn start(
        addr: SocketAddr,
        metrics: MetricsView,
        source: Arc<Mutex<SourceStatus>>,
        clock: SharedClock,
    ) -> Result<Self, HttpError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("scopecast-http")
            .enable_io()
            .enable_time()
            .build()
            .map_err(HttpError::Runtime)?;
        let listener =
            runtime.block_on(tokio::net::TcpListener::bind(addr)).map_err(|source| HttpError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| HttpError::Bind { addr, source })?;
        let app = Router::new()
            .route("/metrics", get(serve_metrics))
            .route("/healthz", get(serve_healthz))
            .with_state(AppState { metrics, source, clock });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("scopecast-http-main".into())
            .spawn(move || {
                let served = runtime.block_on(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await
                });
                if let Err(e) = served {
                    tracing::error!(error = %e, "HTTP server stopped");
                }
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
            let _ = stop.send(());
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
