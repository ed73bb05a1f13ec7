//! ICE for WHEP: the STUN/TURN servers a station announces and uses, as
//! `Link` headers (draft-ietf-wish-whep §4.4, RFC 9725 §4.6 / RFC 8288), and
//! the trickle-ICE SDP fragments viewers `PATCH` in
//! (`application/trickle-ice-sdpfrag`, RFC 8840).

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A STUN or TURN server.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp`, `turns:…`.
    pub urls: Vec<String>,
    /// TURN user name (empty for STUN).
    pub username: String,
    /// TURN password (empty for STUN).
    pub credential: String,
}

/// Why an ICE server entry is unusable.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IceServerError {
    /// A URL that is not `stun:`, `stuns:`, `turn:` or `turns:`.
    #[error("ICE server URL {0:?} must start with stun:, stuns:, turn: or turns:")]
    Scheme(String),
    /// A TURN server without a user name or password.
    #[error("TURN server {0:?} needs a username and a credential")]
    TurnCredentials(String),
    /// A character that would break the `Link` header.
    #[error("ICE server entry {0:?} contains a quote, angle bracket, comma or control character")]
    Unquotable(String),
    /// An entry without URLs.
    #[error("an ICE server entry has no urls")]
    NoUrls,
}

fn quotable(s: &str) -> bool {
    !s.chars().any(|c| matches!(c, '"' | '<' | '>' | ',' | '\\') || c.is_control())
}

impl IceServer {
    /// Checks schemes, TURN credentials and header safety.
    pub fn validate(&self) -> Result<(), IceServerError> {
        if self.urls.is_empty() {
            return Err(IceServerError::NoUrls);
        }
        for url in &self.urls {
            let scheme = url.split(':').next().unwrap_or_default();
            if !matches!(scheme, "stun" | "stuns" | "turn" | "turns") {
                return Err(IceServerError::Scheme(url.clone()));
            }
            if !quotable(url) {
                return Err(IceServerError::Unquotable(url.clone()));
            }
            if scheme.starts_with("turn") && (self.username.is_empty() || self.credential.is_empty()) {
                return Err(IceServerError::TurnCredentials(url.clone()));
            }
        }
        for s in [&self.username, &self.credential] {
            if !quotable(s) {
                return Err(IceServerError::Unquotable("(credentials)".into()));
            }
        }
        Ok(())
    }

    /// The `Link` header values announcing this server, one per URL:
    /// `<stun:stun.example.net>; rel="ice-server"`, plus `username`,
    /// `credential` and `credential-type="password"` for TURN.
    pub fn link_values(&self) -> Vec<String> {
        self.urls
            .iter()
            .map(|url| {
                if url.starts_with("turn") {
                    format!(
                        "<{url}>; rel=\"ice-server\"; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                        self.username, self.credential
                    )
                } else {
                    format!("<{url}>; rel=\"ice-server\"")
                }
            })
            .collect()
    }
}

/// What a trickle-ICE `PATCH` carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SdpFragment {
    /// `a=ice-ufrag`, if given.
    pub ufrag: Option<String>,
    /// `a=ice-pwd`, if given.
    pub pwd: Option<String>,
    /// `(mid, candidate attribute without "a=")` for each `a=candidate` line.
    pub candidates: Vec<(Option<String>, String)>,
    /// `a=end-of-candidates` was present.
    pub end_of_candidates: bool,
}

/// Why a fragment was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SdpFragmentError {
    /// A line that is not `x=…`.
    #[error("line {line} is not an SDP line: {text:?}")]
    NotSdp {
        /// 1-based line number.
        line: usize,
        /// The line, cut to 80 characters.
        text: String,
    },
    /// More candidates than any browser sends.
    #[error("more than {0} candidates in one fragment")]
    TooManyCandidates(usize),
}

/// Candidates one `PATCH` may carry.
pub const MAX_FRAGMENT_CANDIDATES: usize = 64;

/// Parses an `application/trickle-ice-sdpfrag` body (RFC 8840 §9): session
/// lines, then `m=` sections with `a=mid`, `a=candidate` and
/// `a=end-of-candidates`.
pub fn parse_sdpfrag(body: &str) -> Result<SdpFragment, SdpFragmentError> {
    let mut fragment = SdpFragment::default();
    let mut mid: Option<String> = None;
    for (index, raw) in body.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let bytes = line.as_bytes();
        if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
            return Err(SdpFragmentError::NotSdp { line: index + 1, text: line.chars().take(80).collect() });
        }
        if line.starts_with("m=") {
            mid = None;
        } else if let Some(value) = line.strip_prefix("a=mid:") {
            mid = Some(value.trim().to_string());
        } else if let Some(value) = line.strip_prefix("a=ice-ufrag:") {
            fragment.ufrag = Some(value.trim().to_string());
        } else if let Some(value) = line.strip_prefix("a=ice-pwd:") {
            fragment.pwd = Some(value.trim().to_string());
        } else if let Some(value) = line.strip_prefix("a=") {
            if value.starts_with("candidate:") {
                if fragment.candidates.len() == MAX_FRAGMENT_CANDIDATES {
                    return Err(SdpFragmentError::TooManyCandidates(MAX_FRAGMENT_CANDIDATES));
                }
                fragment.candidates.push((mid.clone(), value.to_string()));
            } else if value == "end-of-candidates" {
                fragment.end_of_candidates = true;
            }
        }
    }
    Ok(fragment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_and_turn_servers_become_link_headers() {
        let stun = IceServer { urls: vec!["stun:stun.example.net:3478".into()], ..Default::default() };
        assert_eq!(stun.validate(), Ok(()));
        assert_eq!(stun.link_values(), vec!["<stun:stun.example.net:3478>; rel=\"ice-server\"".to_string()]);
        let turn = IceServer {
            urls: vec!["turn:turn.example.net?transport=udp".into()],
            username: "or7".into(),
            credential: "s3cret".into(),
        };
        assert_eq!(turn.validate(), Ok(()));
        assert_eq!(
            turn.link_values()[0],
            "<turn:turn.example.net?transport=udp>; rel=\"ice-server\"; username=\"or7\"; credential=\"s3cret\"; credential-type=\"password\""
        );
    }

    #[test]
    fn bad_ice_servers_are_refused_with_the_reason() {
        let http = IceServer { urls: vec!["http://x".into()], ..Default::default() };
        assert_eq!(http.validate(), Err(IceServerError::Scheme("http://x".into())));
        let turn = IceServer { urls: vec!["turn:x".into()], ..Default::default() };
        assert_eq!(turn.validate(), Err(IceServerError::TurnCredentials("turn:x".into())));
        let injected = IceServer { urls: vec!["stun:x>; rel=\"evil\"".into()], ..Default::default() };
        assert!(matches!(injected.validate(), Err(IceServerError::Unquotable(_))));
        assert_eq!(IceServer::default().validate(), Err(IceServerError::NoUrls));
    }

    #[test]
    fn a_trickle_fragment_yields_its_candidates_with_their_mid() {
        let body = "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n\
                    a=mid:0\r\na=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0\r\n\
                    a=end-of-candidates\r\n";
        let fragment = parse_sdpfrag(body).expect("parses");
        assert_eq!(fragment.ufrag.as_deref(), Some("EsAw"));
        assert_eq!(fragment.candidates.len(), 1);
        assert_eq!(fragment.candidates[0].0.as_deref(), Some("0"));
        assert!(fragment.candidates[0].1.starts_with("candidate:1387637174 1 udp"));
        assert!(fragment.end_of_candidates);
    }

    #[test]
    fn garbage_fragments_are_refused() {
        assert!(matches!(parse_sdpfrag("hello world"), Err(SdpFragmentError::NotSdp { line: 1, .. })));
        let flood = "a=candidate:1 1 udp 1 192.0.2.1 1 typ host\n".repeat(MAX_FRAGMENT_CANDIDATES + 1);
        assert_eq!(parse_sdpfrag(&flood), Err(SdpFragmentError::TooManyCandidates(MAX_FRAGMENT_CANDIDATES)));
    }
}
