//! Named, expiring, revocable links: one token per invited person, so an
//! operator never edits the config to let a consultant in.
//!
//! A link token is signed, not stored: `sc1.<payload>.<tag>`, where
//! `payload` is the base64url (no padding) of a JSON object
//! `{"v":1,"id":"<16 hex>","name":"Dr A","role":"annotator","exp":<Unix s>}`
//! and `tag` the base64url of HMAC-SHA-256 (RFC 2104, FIPS 180-4) over
//! `sc1.<payload>` with the station's link secret (32 random bytes in
//! `link-secret` in the station's state folder, mode 0600). Any station with
//! that secret accepts the link until `exp`; a revocation (`revoked.json`,
//! same folder, by link id) refuses it from then on, and the running station
//! ends that person's sessions when it sees the file change.
//!
//! The secret never leaves the state folder; the token is printed once, to
//! whoever ran `scopecast link`, and never logged.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::auth::Role;

/// What a link token starts with (and its format version).
pub const TOKEN_PREFIX: &str = "sc1.";
/// The payload's format version.
pub const PAYLOAD_VERSION: u32 = 1;
/// Longest link name, characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest token we look at, bytes (a longer bearer is no link).
pub const MAX_TOKEN_BYTES: usize = 1024;
/// The secret's file in the state folder.
pub const SECRET_FILE: &str = "link-secret";
/// The revocations' file in the state folder.
pub const REVOKED_FILE: &str = "revoked.json";
/// The revocations file's format version.
pub const REVOKED_VERSION: u32 = 1;

/// A link's id: 64 random bits, shown as 16 hex digits (what `scopecast
/// link revoke` takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

impl LinkId {
    /// A fresh random id.
    pub fn generate() -> std::io::Result<Self> {
        let mut bytes = [0u8; 8];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
        Ok(Self(u64::from_be_bytes(bytes)))
    }

    /// Parses 16 hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u64::from_str_radix(text, 16).ok().map(Self))
            .flatten()
    }
}

impl std::fmt::Display for LinkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Who a link is for and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClaims {
    /// Its id.
    pub id: LinkId,
    /// The person's name as the operator gave it (no patient data).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// It is refused from this Unix time on, s.
    pub expires_unix_s: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    v: u32,
    id: String,
    name: String,
    role: Role,
    exp: u64,
}

/// Why a link token or a link file is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LinkError {
    /// Not `sc1.<payload>.<tag>` in base64url, or a payload that is not ours.
    #[error("not a scopecast link token")]
    Malformed,
    /// The tag does not match: another station's link, or altered.
    #[error("the link's signature does not match this station's secret")]
    BadSignature,
    /// Past its expiry.
    #[error("the link {id} for {name:?} expired at Unix time {expires_unix_s}")]
    Expired {
        /// Its id.
        id: LinkId,
        /// Its name.
        name: String,
        /// When it expired, Unix s.
        expires_unix_s: u64,
    },
    /// Revoked by the operator.
    #[error("the link {id} for {name:?} was revoked")]
    Revoked {
        /// Its id.
        id: LinkId,
        /// Its name.
        name: String,
    },
    /// A name that is empty, too long or has control characters.
    #[error("a link name must be 1 to {MAX_NAME_CHARS} printable characters, not {0:?}")]
    BadName(String),
    /// The state folder's files could not be read or written.
    #[error("{path}: {message}")]
    State {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Checks a link name: 1 to [`MAX_NAME_CHARS`] characters, none a control.
pub fn check_name(name: &str) -> Result<&str, LinkError> {
    let trimmed = name.trim();
    let count = trimmed.chars().count();
    if count == 0 || count > MAX_NAME_CHARS || trimmed.chars().any(char::is_control) {
        return Err(LinkError::BadName(name.to_string()));
    }
    Ok(trimmed)
}

/// The station's link secret: signs and checks link tokens.
pub struct LinkKey {
    key: ring::hmac::Key,
}

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(<hidden>)")
    }
}

fn state_error(path: &Path, e: impl std::fmt::Display) -> LinkError {
    LinkError::State { path: path.to_path_buf(), message: e.to_string() }
}

impl LinkKey {
    /// A key from secret bytes.
    pub fn from_secret(secret: &[u8]) -> Self {
        Self { key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret) }
    }

    /// The key in `state_dir` (made, with a fresh secret, when there is none).
    pub fn load_or_create(state_dir: &Path) -> Result<Self, LinkError> {
        let path = state_dir.join(SECRET_FILE);
        match std::fs::read(&path) {
            Ok(secret) if secret.len() >= 32 => return Ok(Self::from_secret(&secret)),
            Ok(secret) => {
                return Err(state_error(&path, format!("a link secret of {} bytes (expected 32)", secret.len())));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(state_error(&path, e)),
        }
        std::fs::create_dir_all(state_dir).map_err(|e| state_error(state_dir, e))?;
        let mut secret = [0u8; 32];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").map_err(|e| state_error(&path, e))?,
            &mut secret,
        )
        .map_err(|e| state_error(&path, e))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => {
                file.write_all(&secret).and_then(|()| file.sync_all()).map_err(|e| state_error(&path, e))?;
                Ok(Self::from_secret(&secret))
            }
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let secret = std::fs::read(&path).map_err(|e| state_error(&path, e))?;
                Ok(Self::from_secret(&secret))
            }
            Err(e) => Err(state_error(&path, e)),
        }
    }

    /// The token for `claims`.
    pub fn sign(&self, claims: &LinkClaims) -> String {
        let payload = Payload {
            v: PAYLOAD_VERSION,
            id: claims.id.to_string(),
            name: claims.name.clone(),
            role: claims.role,
            exp: claims.expires_unix_s,
        };
        let json = serde_json::to_vec(&payload).unwrap_or_default();
        let signed = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(json));
        let tag = ring::hmac::sign(&self.key, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The claims of a token this key signed, whatever its expiry (checked
    /// in constant time by `ring`).
    pub fn open(&self, token: &str) -> Result<LinkClaims, LinkError> {
        if token.len() > MAX_TOKEN_BYTES || !token.starts_with(TOKEN_PREFIX) {
            return Err(LinkError::Malformed);
        }
        let (signed, tag) = token.rsplit_once('.').ok_or(LinkError::Malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| LinkError::Malformed)?;
        ring::hmac::verify(&self.key, signed.as_bytes(), &tag).map_err(|_| LinkError::BadSignature)?;
        let payload = signed.strip_prefix(TOKEN_PREFIX).ok_or(LinkError::Malformed)?;
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| LinkError::Malformed)?;
        let payload: Payload = serde_json::from_slice(&json).map_err(|_| LinkError::Malformed)?;
        if payload.v != PAYLOAD_VERSION {
            return Err(LinkError::Malformed);
        }
        let id = LinkId::parse(&payload.id).ok_or(LinkError::Malformed)?;
        let name = check_name(&payload.name).map_err(|_| LinkError::Malformed)?.to_string();
        Ok(LinkClaims { id, name, role: payload.role, expires_unix_s: payload.exp })
    }

    /// The claims of a token that is ours, unexpired at `now_unix_s` and not
    /// in `revoked`.
    pub fn verify(&self, token: &str, now_unix_s: u64, revoked: &Revocations) -> Result<LinkClaims, LinkError> {
        let claims = self.open(token)?;
        if now_unix_s >= claims.expires_unix_s {
            return Err(LinkError::Expired { id: claims.id, name: claims.name, expires_unix_s: claims.expires_unix_s });
        }
        if revoked.contains(claims.id) {
            return Err(LinkError::Revoked { id: claims.id, name: claims.name });
        }
        Ok(claims)
    }
}

/// One revoked link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// Its name when it was revoked (for the operator reading the file).
    pub name: String,
    /// When, Unix s.
    pub at_unix_s: u64,
}

/// The revoked links (`revoked.json`): `{"v":1,"revoked":{"<id>":{"name":…,"at_unix_s":…}}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revocations {
    links: BTreeMap<LinkId, Revoked>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokedFile {
    v: u32,
    revoked: BTreeMap<String, Revoked>,
}

impl Revocations {
    /// Whether link `id` is revoked.
    pub fn contains(&self, id: LinkId) -> bool {
        self.links.contains_key(&id)
    }

    /// The revoked links.
    pub fn iter(&self) -> impl Iterator<Item = (&LinkId, &Revoked)> {
        self.links.iter()
    }

    /// Adds `id`; false when it was already revoked.
    pub fn revoke(&mut self, id: LinkId, revoked: Revoked) -> bool {
        self.links.insert(id, revoked).is_none()
    }

    /// Parses the file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let file: RevokedFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if file.v != REVOKED_VERSION {
            return Err(format!("format version {} (this station reads {REVOKED_VERSION})", file.v));
        }
        let mut links = BTreeMap::new();
        for (id, revoked) in file.revoked {
            let id = LinkId::parse(&id).ok_or_else(|| format!("{id:?} is not a link id (16 hex digits)"))?;
            links.insert(id, revoked);
        }
        Ok(Self { links })
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let file = RevokedFile {
            v: REVOKED_VERSION,
            revoked: self.links.iter().map(|(id, r)| (id.to_string(), r.clone())).collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// The revocations in `state_dir` (none when there is no file).
    pub fn load(state_dir: &Path) -> Result<Self, LinkError> {
        let path = state_dir.join(REVOKED_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Self::parse(&bytes).map_err(|e| state_error(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(state_error(&path, e)),
        }
    }

    /// Writes them to `state_dir` (atomically: a temporary file renamed).
    pub fn store(&self, state_dir: &Path) -> Result<(), LinkError> {
        std::fs::create_dir_all(state_dir).map_err(|e| state_error(state_dir, e))?;
        let path = state_dir.join(REVOKED_FILE);
        let temporary = state_dir.join(format!("{REVOKED_FILE}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&self.to_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)
        };
        write().map_err(|e| state_error(&path, e))
    }
}

/// Parses a duration such as `8h`, `90m`, `2d`, `45s` (one number, one unit).
pub fn parse_duration_s(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let unit_s = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    number.checked_mul(unit_s).filter(|s| *s > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> LinkClaims {
        LinkClaims {
            id: LinkId(0x0123_4567_89ab_cdef),
            name: "Dr A".into(),
            role: Role::Annotator,
            expires_unix_s: 1000,
        }
    }

    #[test]
    fn a_signed_link_opens_to_its_claims_until_it_expires() {
        let key = LinkKey::from_secret(&[7u8; 32]);
        let token = key.sign(&claims());
        assert!(token.starts_with(TOKEN_PREFIX));
        assert_eq!(key.verify(&token, 999, &Revocations::default()), Ok(claims()));
        assert!(matches!(key.verify(&token, 1000, &Revocations::default()), Err(LinkError::Expired { .. })));
    }

    #[test]
    fn another_key_or_an_altered_token_is_refused() {
        let key = LinkKey::from_secret(&[7u8; 32]);
        let token = key.sign(&claims());
        assert_eq!(LinkKey::from_secret(&[8u8; 32]).open(&token), Err(LinkError::BadSignature));
        // Raise the role in the payload, keep the tag.
        let (signed, tag) = token.rsplit_once('.').expect("tag");
        let payload = URL_SAFE_NO_PAD.decode(signed.strip_prefix(TOKEN_PREFIX).expect("prefix")).expect("b64");
        let forged = String::from_utf8(payload).expect("utf8").replace("annotator", "operator");
        let forged = format!("{TOKEN_PREFIX}{}.{tag}", URL_SAFE_NO_PAD.encode(forged));
        assert_eq!(key.open(&forged), Err(LinkError::BadSignature));
        for garbage in ["", "sc1.", "sc1..", "sc1.!!.??", "abc", "sc1.e30.e30"] {
            assert!(key.open(garbage).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn a_revoked_link_is_refused_and_the_file_round_trips() {
        let key = LinkKey::from_secret(&[7u8; 32]);
        let token = key.sign(&claims());
        let mut revoked = Revocations::default();
        assert!(revoked.revoke(claims().id, Revoked { name: "Dr A".into(), at_unix_s: 5 }));
        assert!(matches!(key.verify(&token, 10, &revoked), Err(LinkError::Revoked { .. })));
        assert_eq!(Revocations::parse(&revoked.to_bytes()), Ok(revoked));
        assert!(Revocations::parse(br#"{"v":2,"revoked":{}}"#).is_err());
        assert!(Revocations::parse(br#"{"v":1,"revoked":{"xyz":{"name":"a","at_unix_s":1}}}"#).is_err());
        assert!(Revocations::parse(b"not json").is_err());
    }

    #[test]
    fn the_secret_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("scopecast-links-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let token = LinkKey::load_or_create(&dir).expect("made").sign(&claims());
        assert_eq!(LinkKey::load_or_create(&dir).expect("read").open(&token), Ok(claims()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(SECRET_FILE)).expect("file").permissions().mode();
            assert_eq!(mode & 0o077, 0, "only the owner reads the secret");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_and_durations_are_checked() {
        assert_eq!(check_name(" Dr A "), Ok("Dr A"));
        assert!(check_name("").is_err());
        assert!(check_name("a\nb").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        assert_eq!(parse_duration_s("8h"), Some(28_800));
        assert_eq!(parse_duration_s("90m"), Some(5400));
        assert_eq!(parse_duration_s("2d"), Some(172_800));
        assert_eq!(parse_duration_s("0h"), None);
        assert_eq!(parse_duration_s("8"), None);
        assert_eq!(parse_duration_s("h"), None);
        assert_eq!(parse_duration_s("8w"), None);
        assert_eq!(parse_duration_s(&format!("{}d", u64::MAX)), None);
    }
}
