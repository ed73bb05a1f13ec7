//! The little HTTP/1.1 client WHIP publishing needs: one request per
//! connection (`Connection: close`), `http://` URLs, bounded sizes and a
//! deadline on the whole exchange. An endpoint that answers garbage gets a
//! [`HttpClientError`], never a panic.

use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest response accepted (an SDP answer is a few kB), bytes.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Why a request failed.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum HttpClientError {
    /// Not an `http://host[:port]/path` URL.
    #[error("unusable URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Connecting, sending or receiving failed.
    #[error("{0}")]
    Io(String),
    /// No complete answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer is not HTTP/1.x or too large.
    #[error("malformed response: {0}")]
    Malformed(&'static str),
}

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (80 by default).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl HttpUrl {
    /// Parses `http://host[:port][/path]`.
    pub fn parse(url: &str) -> Result<Self, HttpClientError> {
        let bad = |reason| HttpClientError::Url { url: url.to_string(), reason };
        let rest = url.strip_prefix("http://").ok_or_else(|| bad("only http:// endpoints are supported"))?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("needs a host (and no user info)"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed [ in the host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("the port is not a number 1..=65535"))?,
            None => 80,
        };
        if host.is_empty() || port == 0 || !path.chars().all(|c| c.is_ascii_graphic()) {
            return Err(bad("needs a host, a port above 0 and a printable path"));
        }
        Ok(Self { host: host.to_string(), port, path: path.to_string() })
    }

    /// `location` (absolute, or a path on this host) as a URL.
    pub fn join(&self, location: &str) -> Result<Self, HttpClientError> {
        if location.starts_with("http://") {
            return Self::parse(location);
        }
        if !location.starts_with('/') {
            return Err(HttpClientError::Url {
                url: location.to_string(),
                reason: "a relative Location must start with /",
            });
        }
        Ok(Self { path: location.to_string(), ..self.clone() })
    }
}

/// A response: status, headers (names lower-case), body.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names (lower-case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Parses a complete HTTP/1.x response (status line, headers, body up to
/// `Content-Length` or the end).
pub fn parse_response(bytes: &[u8]) -> Result<HttpResponse, HttpClientError> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").ok_or(HttpClientError::Malformed("no end of headers"))?;
    let head = std::str::from_utf8(&bytes[..end]).map_err(|_| HttpClientError::Malformed("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(HttpClientError::Malformed("not an HTTP/1.x status line"));
    }
    let status = parts.next().and_then(|c| c.parse().ok()).ok_or(HttpClientError::Malformed("no status code"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = bytes[end + 4..].to_vec();
    if let Some(length) = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse::<usize>().ok())
    {
        if body.len() < length {
            return Err(HttpClientError::Malformed("body shorter than Content-Length"));
        }
        body.truncate(length);
    }
    Ok(HttpResponse { status, headers, body })
}

/// Sends one request and reads the whole response within `deadline`.
pub async fn request(
    method: &str,
    url: &HttpUrl,
    headers: &[(&str, &str)],
    body: &[u8],
    deadline: Duration,
) -> Result<HttpResponse, HttpClientError> {
    let exchange = async {
        let io = |e: std::io::Error| HttpClientError::Io(format!("{}:{}: {e}", url.host, url.port));
        let mut stream = tokio::net::TcpStream::connect((url.host.as_str(), url.port)).await.map_err(io)?;
        let host = if url.host.contains(':') { format!("[{}]", url.host) } else { url.host.clone() };
        let mut head = format!(
            "{method} {} HTTP/1.1\r\nHost: {host}:{}\r\nContent-Length: {}\r\nConnection: close\r\n",
            url.path,
            url.port,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.map_err(io)?;
        stream.write_all(body).await.map_err(io)?;
        let mut response = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = stream.read(&mut chunk).await.map_err(io)?;
            if n == 0 {
                break;
            }
            response.extend_from_slice(&chunk[..n]);
            if response.len() > MAX_RESPONSE_BYTES {
                return Err(HttpClientError::Malformed("response larger than 256 KiB"));
            }
        }
        parse_response(&response)
    };
    tokio::time::timeout(deadline, exchange).await.map_err(|_| HttpClientError::Timeout(deadline))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_locations_resolve() {
        let url = HttpUrl::parse("http://sfu.example:8088/whip/endpoint?room=3").expect("valid");
        assert_eq!((url.host.as_str(), url.port, url.path.as_str()), ("sfu.example", 8088, "/whip/endpoint?room=3"));
        assert_eq!(HttpUrl::parse("http://10.0.0.2").expect("valid").port, 80);
        assert_eq!(HttpUrl::parse("http://[::1]:9/x").expect("v6").host, "::1");
        assert_eq!(url.join("/whip/resource/7").expect("path").path, "/whip/resource/7");
        assert_eq!(url.join("http://other:1/r").expect("absolute").host, "other");
        for bad in
            ["https://x/", "http://", "http://h:0/", "http://h:99999/", "http://u@h/", "ftp://h/", "http://h/a b"]
        {
            assert!(HttpUrl::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(url.join("relative").is_err());
    }

    #[test]
    fn responses_parse_and_garbage_is_an_error() {
        let ok = parse_response(b"HTTP/1.1 201 Created\r\nLocation: /r/1\r\nContent-Length: 3\r\n\r\nv=0extra")
            .expect("valid");
        assert_eq!((ok.status, ok.header("location"), ok.body.as_slice()), (201, Some("/r/1"), b"v=0".as_slice()));
        for bad in [
            &b"garbage"[..],
            b"SIP/2.0 200 OK\r\n\r\n",
            b"HTTP/1.1 abc\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
        ] {
            assert!(parse_response(bad).is_err(), "{:?} accepted", String::from_utf8_lossy(bad));
        }
    }
}
