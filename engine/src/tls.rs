//! HTTPS for the station's server when it listens off loopback: rustls with a
//! certificate from the config, or a self-signed one generated at start whose
//! SHA-256 fingerprint the station prints (so a viewer can check what the
//! browser shows before accepting it). Handshakes run on their own tasks with
//! a deadline, so a client that stalls mid-handshake holds up nobody.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Why no TLS identity could be set up.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("cannot read {what} from {path}: {reason}")]
    Pem {
        /// Certificate or key.
        what: &'static str,
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the certificate and key.
    #[error("certificate and key do not make a TLS identity: {0}")]
    Config(String),
    /// The self-signed certificate could not be generated.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
}

/// A server certificate, its key as a rustls config, and its fingerprint.
#[derive(Clone)]
pub struct TlsIdentity {
    config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate's DER, as `AB:CD:…`.
    pub fingerprint_sha256: String,
    /// Generated at start rather than loaded.
    pub self_signed: bool,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("fingerprint_sha256", &self.fingerprint_sha256)
            .field("self_signed", &self.self_signed)
            .finish_non_exhaustive()
    }
}

/// `AB:CD:…` of SHA-256 over `der`.
pub fn sha256_fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

impl TlsIdentity {
    fn from_parts(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        self_signed: bool,
    ) -> Result<Self, TlsError> {
        let fingerprint_sha256 = chain.first().map(|c| sha256_fingerprint(c)).unwrap_or_default();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { config: Arc::new(config), fingerprint_sha256, self_signed })
    }

    /// Loads a PEM certificate chain and private key.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let pem_error =
            |what, path: &Path, reason: String| TlsError::Pem { what, path: path.display().to_string(), reason };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| pem_error("certificates", cert, e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error("certificates", cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(pem_error("certificates", cert, "no CERTIFICATE block".into()));
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error("a private key", key, e.to_string()))?;
        Self::from_parts(chain, key_der, false)
    }

    /// A fresh self-signed certificate for `names` (host names or IP addresses).
    pub fn self_signed(names: Vec<String>) -> Result<Self, TlsError> {
        let certified = rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
        Self::from_parts(vec![certified.cert.der().clone()], key, true)
    }
}

/// How long a client may take for its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the HTTP server; more wait in the accept loop.
const READY_QUEUE: usize = 64;

/// An [`axum::serve::Listener`] that accepts TCP and serves TLS over it.
pub struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Accepts on `listener` and hands over connections whose handshake
    /// completed; must be called inside a tokio runtime.
    pub fn new(listener: TcpListener, identity: &TlsIdentity) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(identity.config.clone());
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    break;
                }
                let acceptor = acceptor.clone();
                let ready = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = ready.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { local_addr, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accept loop only ends when this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_identity_has_a_sha256_fingerprint() {
        let identity = TlsIdentity::self_signed(vec!["localhost".into(), "192.0.2.7".into()]).expect("generates");
        assert!(identity.self_signed);
        assert_eq!(identity.fingerprint_sha256.len(), 32 * 3 - 1, "{}", identity.fingerprint_sha256);
        assert_eq!(sha256_fingerprint(b"abc").split(':').next(), Some("BA"), "SHA-256(\"abc\") starts with BA");
    }

    #[test]
    fn a_missing_or_broken_pem_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let missing = TlsIdentity::load(&cert, &key).expect_err("missing files");
        assert!(missing.to_string().contains("cert.pem"), "{missing}");
        std::fs::write(&cert, "not a certificate").expect("write");
        std::fs::write(&key, "not a key").expect("write");
        let broken = TlsIdentity::load(&cert, &key).expect_err("broken files");
        assert!(broken.to_string().contains("no CERTIFICATE"), "{broken}");
    }
}
