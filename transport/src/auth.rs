//! Bearer-token authorisation for the station's HTTP API (WHEP, `/viewers`,
//! `/metrics`; a viewer's data channel acts with the role of the credential
//! that opened its session): each token, configured or a named link,
//! carries a role, and each action needs one.
//! Tokens are compared in constant time and never logged or printed except
//! once, at start, to the operator's terminal.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use crate::links::{LinkError, LinkId, LinkKey, Revocations, TOKEN_PREFIX};

/// What a token may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Watch the stream.
    Viewer,
    /// Watch and draw (telestration), toggle layers.
    Annotator,
    /// Everything, including clearing all annotations and recording.
    Operator,
}

/// A token with its role. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    secret: String,
    /// What it may do.
    pub role: Role,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token").field("secret", &"<hidden>").field("role", &self.role).finish()
    }
}

impl Token {
    /// A token with `secret` and `role`.
    pub fn new(secret: impl Into<String>, role: Role) -> Self {
        Self { secret: secret.into(), role }
    }

    /// A fresh random token (128 bits from the OS, hex).
    pub fn generate(role: Role) -> std::io::Result<Self> {
        Ok(Self::new(random_hex_128()?, role))
    }

    /// The secret, for printing the viewer link once at start.
    pub fn reveal(&self) -> &str {
        &self.secret
    }
}

/// 128 random bits from the OS, as 32 lowercase hex digits.
pub fn random_hex_128() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Which credential a request came with: a config token (its place in
/// [`Tokens`]) or a named link. What one credential created, only it or an
/// operator may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CredentialId {
    /// The config's token at this index (`[[http.tokens]]`).
    Config(usize),
    /// A named link (`scopecast link`).
    Link(LinkId),
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialId::Config(index) => write!(f, "config:{index}"),
            CredentialId::Link(id) => write!(f, "link:{id}"),
        }
    }
}

/// Who asks: their credential, its role and, for a link, whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The credential presented.
    pub credential: CredentialId,
    /// What it may do.
    pub role: Role,
    /// The link's name (config tokens have none).
    pub name: Option<Arc<str>>,
    /// When the link stops working, Unix s (config tokens never do).
    pub expires_unix_s: Option<u64>,
}

impl Caller {
    /// A caller with a config token.
    pub fn config(index: usize, role: Role) -> Self {
        Self { credential: CredentialId::Config(index), role, name: None, expires_unix_s: None }
    }

    /// Whether this caller may change or end what `owner` created: the
    /// owner itself, or an operator.
    pub fn may_act_for(&self, owner: CredentialId) -> bool {
        self.credential == owner || self.role == Role::Operator
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No or unknown token: HTTP 401.
    Unauthenticated,
    /// A link that expired or was revoked: HTTP 401, with the reason.
    LinkRefused(String),
    /// A valid token whose role does not allow the action: HTTP 403.
    Forbidden,
}

/// Equal-length-independent constant-time comparison: the time depends only
/// on the lengths, never on where the strings differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

/// Named links' key and the revocations the station knows of.
#[derive(Debug)]
struct Links {
    key: LinkKey,
    revoked: RwLock<Revocations>,
}

/// The station's credentials: the config's tokens and, with a link key,
/// named links.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    tokens: Vec<Token>,
    links: Option<Arc<Links>>,
}

impl Tokens {
    /// A token set (no links).
    pub fn new(tokens: Vec<Token>) -> Self {
        Self { tokens, links: None }
    }

    /// Also accepts links signed with `key`, unless in `revoked`.
    pub fn with_links(mut self, key: LinkKey, revoked: Revocations) -> Self {
        self.links = Some(Arc::new(Links { key, revoked: RwLock::new(revoked) }));
        self
    }

    /// Replaces the revocations (the state file changed).
    pub fn set_revocations(&self, revoked: Revocations) {
        if let Some(links) = &self.links {
            *links.revoked.write().unwrap_or_else(PoisonError::into_inner) = revoked;
        }
    }

    /// Checks an `Authorization` header value against `needed` at `now_unix_s`.
    pub fn authorize(&self, authorization: Option<&str>, needed: Role, now_unix_s: u64) -> Result<Role, Denied> {
        self.identify(authorization, needed, now_unix_s).map(|caller| caller.role)
    }

    /// Who presents the `Authorization` header value at `now_unix_s`, if
    /// its role allows `needed`.
    pub fn identify(&self, authorization: Option<&str>, needed: Role, now_unix_s: u64) -> Result<Caller, Denied> {
        let presented = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or(Denied::Unauthenticated)?;
        let caller = match (&self.links, presented.starts_with(TOKEN_PREFIX)) {
            (Some(links), true) => {
                let revoked = links.revoked.read().unwrap_or_else(PoisonError::into_inner);
                match links.key.verify(presented, now_unix_s, &revoked) {
                    Ok(claims) => Caller {
                        credential: CredentialId::Link(claims.id),
                        role: claims.role,
                        name: Some(claims.name.into()),
                        expires_unix_s: Some(claims.expires_unix_s),
                    },
                    Err(e @ (LinkError::Expired { .. } | LinkError::Revoked { .. })) => {
                        return Err(Denied::LinkRefused(e.to_string()));
                    }
                    Err(_) => return Err(Denied::Unauthenticated),
                }
            }
            _ => self.config_caller(presented).ok_or(Denied::Unauthenticated)?,
        };
        if caller.role < needed { Err(Denied::Forbidden) } else { Ok(caller) }
    }

    fn config_caller(&self, presented: &str) -> Option<Caller> {
        // Check every token, so the time does not reveal which one matched.
        let mut found = None;
        for (index, token) in self.tokens.iter().enumerate() {
            if constant_time_eq(token.secret.as_bytes(), presented.as_bytes()) {
                found = Some(Caller::config(index, token.role));
            }
        }
        found
    }

    /// Whether `caller`'s credential still lets them in at `now_unix_s`: a
    /// link not expired and not revoked (config tokens always do).
    pub fn still_admits(&self, caller: &Caller, now_unix_s: u64) -> bool {
        let CredentialId::Link(id) = caller.credential else { return true };
        let expired = caller.expires_unix_s.is_some_and(|expires| now_unix_s >= expires);
        let revoked = self
            .links
            .as_ref()
            .is_none_or(|links| links.revoked.read().unwrap_or_else(PoisonError::into_inner).contains(id));
        !expired && !revoked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_tokens_decide() {
        let tokens = Tokens::new(vec![Token::new("v-secret", Role::Viewer), Token::new("op-secret", Role::Operator)]);
        assert_eq!(tokens.authorize(Some("Bearer v-secret"), Role::Viewer, 0), Ok(Role::Viewer));
        assert_eq!(tokens.authorize(Some("Bearer v-secret"), Role::Annotator, 0), Err(Denied::Forbidden));
        assert_eq!(tokens.authorize(Some("Bearer op-secret"), Role::Annotator, 0), Ok(Role::Operator));
        assert_eq!(tokens.authorize(Some("Bearer nope"), Role::Viewer, 0), Err(Denied::Unauthenticated));
        assert_eq!(tokens.authorize(Some("v-secret"), Role::Viewer, 0), Err(Denied::Unauthenticated));
        assert_eq!(tokens.authorize(None, Role::Viewer, 0), Err(Denied::Unauthenticated));
        assert_eq!(tokens.authorize(Some("Bearer v-secre"), Role::Viewer, 0), Err(Denied::Unauthenticated));
        assert_eq!(tokens.authorize(Some("Bearer v-secretx"), Role::Viewer, 0), Err(Denied::Unauthenticated));
    }

    #[test]
    fn callers_are_told_apart_by_credential() {
        let tokens = Tokens::new(vec![
            Token::new("viewer-one", Role::Viewer),
            Token::new("viewer-two", Role::Viewer),
            Token::new("op-secret", Role::Operator),
        ]);
        let one = tokens.identify(Some("Bearer viewer-one"), Role::Viewer, 0).expect("known");
        let two = tokens.identify(Some("Bearer viewer-two"), Role::Viewer, 0).expect("known");
        let operator = tokens.identify(Some("Bearer op-secret"), Role::Viewer, 0).expect("known");
        assert_ne!(one.credential, two.credential);
        assert!(one.may_act_for(one.credential));
        assert!(!two.may_act_for(one.credential), "a viewer never acts for another");
        assert!(operator.may_act_for(one.credential), "an operator may");
    }

    #[test]
    fn links_name_their_holder_and_stop_at_expiry_or_revocation() {
        use crate::links::{LinkClaims, Revoked};
        let key = LinkKey::from_secret(&[1u8; 32]);
        let claims = LinkClaims { id: LinkId(42), name: "Dr A".into(), role: Role::Annotator, expires_unix_s: 100 };
        let token = format!("Bearer {}", key.sign(&claims));
        let tokens = Tokens::new(vec![Token::new("v-secret", Role::Viewer)])
            .with_links(LinkKey::from_secret(&[1u8; 32]), Revocations::default());
        let caller = tokens.identify(Some(&token), Role::Annotator, 50).expect("a valid link");
        assert_eq!(caller.credential, CredentialId::Link(LinkId(42)));
        assert_eq!(caller.name.as_deref(), Some("Dr A"));
        assert!(tokens.still_admits(&caller, 99));
        assert!(!tokens.still_admits(&caller, 100), "expired");
        assert_eq!(tokens.identify(Some(&token), Role::Operator, 50), Err(Denied::Forbidden));
        assert!(matches!(tokens.identify(Some(&token), Role::Viewer, 100), Err(Denied::LinkRefused(_))));
        let mut revoked = Revocations::default();
        revoked.revoke(LinkId(42), Revoked { name: "Dr A".into(), at_unix_s: 60 });
        tokens.set_revocations(revoked);
        assert!(!tokens.still_admits(&caller, 61), "revoked");
        assert!(matches!(tokens.identify(Some(&token), Role::Viewer, 61), Err(Denied::LinkRefused(_))));
        assert!(tokens.identify(Some("Bearer v-secret"), Role::Viewer, 61).is_ok(), "config tokens keep working");
        let other_station = LinkKey::from_secret(&[2u8; 32]).sign(&claims);
        assert_eq!(
            tokens.identify(Some(&format!("Bearer {other_station}")), Role::Viewer, 50),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(Tokens::new(vec![]).identify(Some(&token), Role::Viewer, 50), Err(Denied::Unauthenticated));
    }

    #[test]
    fn secrets_never_show_in_debug_and_generated_ones_differ() {
        let a = Token::generate(Role::Viewer).expect("urandom");
        let b = Token::generate(Role::Viewer).expect("urandom");
        assert_ne!(a.reveal(), b.reveal());
        assert_eq!(a.reveal().len(), 32);
        assert!(!format!("{a:?}").contains(a.reveal()));
    }

    #[test]
    fn comparison_handles_any_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
