//! Parsing of source URIs (`synthetic`, `test:`, `v4l2://`, `file://`,
//! `rtsp://`, `tcp://`).

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

/// A parsed source URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The built-in synthetic endoscope.
    Synthetic,
    /// GStreamer `videotestsrc`, with an optional pattern nick (`ball`, `smpte`, ...).
    GstTest {
        /// Pattern nick.
        pattern: Option<String>,
    },
    /// A V4L2 capture device.
    V4l2 {
        /// Device node, e.g. `/dev/video0`.
        device: PathBuf,
    },
    /// A video file.
    File {
        /// Absolute path.
        path: PathBuf,
    },
    /// An RTSP stream (`rtsp://` or `rtsps://` URL as given).
    Rtsp {
        /// The URL.
        url: String,
    },
    /// An MPEG-TS stream read from a TCP server.
    Tcp {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
    },
}

/// Why a source URI was not understood.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SpecError {
    /// No known scheme.
    #[error(
        "unknown source {uri:?}: use synthetic, test:[PATTERN], v4l2:///dev/videoN, file:///PATH, rtsp://HOST/PATH or tcp://HOST:PORT"
    )]
    UnknownScheme {
        /// The URI given.
        uri: String,
    },
    /// The scheme is known but the rest is not usable.
    #[error("source {uri:?}: {reason}")]
    Malformed {
        /// The URI given.
        uri: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl SourceSpec {
    /// Parses a source URI.
    pub fn parse(uri: &str) -> Result<Self, SpecError> {
        let malformed = |reason| SpecError::Malformed { uri: uri.to_string(), reason };
        let uri = uri.trim();
        if uri == "synthetic" || uri == "synthetic:" {
            return Ok(SourceSpec::Synthetic);
        }
        if let Some(pattern) = uri.strip_prefix("test:") {
            if pattern.is_empty() {
                return Ok(SourceSpec::GstTest { pattern: None });
            }
            if !pattern.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(malformed("a test pattern is a videotestsrc pattern name such as ball or smpte"));
            }
            return Ok(SourceSpec::GstTest { pattern: Some(pattern.to_string()) });
        }
        if let Some(device) = uri.strip_prefix("v4l2://") {
            if !device.starts_with("/dev/") {
                return Err(malformed("a V4L2 device is an absolute path such as v4l2:///dev/video0"));
            }
            return Ok(SourceSpec::V4l2 { device: device.into() });
        }
        if let Some(path) = uri.strip_prefix("file://") {
            if !path.starts_with('/') || path.len() < 2 {
                return Err(malformed("a file source needs an absolute path such as file:///videos/case.mp4"));
            }
            return Ok(SourceSpec::File { path: path.into() });
        }
        if uri.starts_with("rtsp://") || uri.starts_with("rtsps://") {
            let rest = uri.split_once("://").map_or("", |(_, r)| r);
            if rest.is_empty() || rest.starts_with('/') || uri.chars().any(char::is_whitespace) {
                return Err(malformed("an RTSP source needs a host, as in rtsp://192.168.1.20:554/stream"));
            }
            return Ok(SourceSpec::Rtsp { url: uri.to_string() });
        }
        if let Some(rest) = uri.strip_prefix("tcp://") {
            let (host, port) = rest.rsplit_once(':').ok_or_else(|| malformed("a TCP source is tcp://HOST:PORT"))?;
            let port: u16 = port.parse().map_err(|_| malformed("the TCP port must be a number from 1 to 65535"))?;
            if host.is_empty() || port == 0 || host.contains('/') {
                return Err(malformed("a TCP source is tcp://HOST:PORT"));
            }
            return Ok(SourceSpec::Tcp { host: host.to_string(), port });
        }
        Err(SpecError::UnknownScheme { uri: uri.to_string() })
    }

    /// Whether the source produces frames at its own pace (camera, stream),
    /// as opposed to a file that must be played at its frame rate.
    pub fn is_live(&self) -> bool {
        !matches!(self, SourceSpec::File { .. })
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Synthetic => write!(f, "synthetic"),
            SourceSpec::GstTest { pattern } => write!(f, "test:{}", pattern.as_deref().unwrap_or("")),
            SourceSpec::V4l2 { device } => write!(f, "v4l2://{}", device.display()),
            SourceSpec::File { path } => write!(f, "file://{}", path.display()),
            SourceSpec::Rtsp { url } => write!(f, "{url}"),
            SourceSpec::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scheme_parses_and_prints_back() {
        for uri in [
            "synthetic",
            "test:",
            "test:ball",
            "v4l2:///dev/video0",
            "file:///videos/case 12.mp4",
            "rtsp://10.0.0.5:554/live",
            "rtsps://tower.local/stream",
            "tcp://127.0.0.1:5000",
        ] {
            let spec = SourceSpec::parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
            assert_eq!(spec.to_string(), uri);
        }
    }

    #[test]
    fn malformed_uris_say_what_is_wrong() {
        for uri in [
            "",
            "http://x",
            "v4l2://video0",
            "file://relative.mp4",
            "rtsp://",
            "tcp://host",
            "tcp://host:99999",
            "tcp://:5000",
            "test:a b",
        ] {
            let err = SourceSpec::parse(uri).expect_err(uri);
            assert!(err.to_string().contains("source"), "{uri}: {err}");
        }
    }
}
