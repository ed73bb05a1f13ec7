//! Bearer-token authorisation for the station's HTTP API (WHEP and, later,
//! the data channel): each token carries a role, and each action needs one.
//! Tokens are compared in constant time and never logged or printed except
//! once, at start, to the operator's terminal.

use std::fmt;

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

/// Which of the station's credentials a request came with (its place in
/// [`Tokens`]); what one credential created, only it or an operator may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialId(pub usize);

/// Who asks: their credential and its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The credential presented.
    pub credential: CredentialId,
    /// What it may do.
    pub role: Role,
}

impl Caller {
    /// Whether this caller may change or end what `owner` created: the
    /// owner itself, or an operator.
    pub fn may_act_for(&self, owner: CredentialId) -> bool {
        self.credential == owner || self.role == Role::Operator
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No or unknown token: HTTP 401.
    Unauthenticated,
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

/// The station's tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    tokens: Vec<Token>,
}

impl Tokens {
    /// A token set.
    pub fn new(tokens: Vec<Token>) -> Self {
        Self { tokens }
    }

    /// Checks an `Authorization` header value against `needed`.
    pub fn authorize(&self, authorization: Option<&str>, needed: Role) -> Result<Role, Denied> {
        self.identify(authorization, needed).map(|caller| caller.role)
    }

    /// Who presents the `Authorization` header value, if its role allows `needed`.
    pub fn identify(&self, authorization: Option<&str>, needed: Role) -> Result<Caller, Denied> {
        let presented = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or(Denied::Unauthenticated)?;
        // Check every token, so the time does not reveal which one matched.
        let mut found = None;
        for (index, token) in self.tokens.iter().enumerate() {
            if constant_time_eq(token.secret.as_bytes(), presented.as_bytes()) {
                found = Some(Caller { credential: CredentialId(index), role: token.role });
            }
        }
        match found {
            None => Err(Denied::Unauthenticated),
            Some(caller) if caller.role < needed => Err(Denied::Forbidden),
            Some(caller) => Ok(caller),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_tokens_decide() {
        let tokens = Tokens::new(vec![Token::new("v-secret", Role::Viewer), Token::new("op-secret", Role::Operator)]);
        assert_eq!(tokens.authorize(Some("Bearer v-secret"), Role::Viewer), Ok(Role::Viewer));
        assert_eq!(tokens.authorize(Some("Bearer v-secret"), Role::Annotator), Err(Denied::Forbidden));
        assert_eq!(tokens.authorize(Some("Bearer op-secret"), Role::Annotator), Ok(Role::Operator));
        assert_eq!(tokens.authorize(Some("Bearer nope"), Role::Viewer), Err(Denied::Unauthenticated));
        assert_eq!(tokens.authorize(Some("v-secret"), Role::Viewer), Err(Denied::Unauthenticated));
        assert_eq!(tokens.authorize(None, Role::Viewer), Err(Denied::Unauthenticated));
        assert_eq!(tokens.authorize(Some("Bearer v-secre"), Role::Viewer), Err(Denied::Unauthenticated));
        assert_eq!(tokens.authorize(Some("Bearer v-secretx"), Role::Viewer), Err(Denied::Unauthenticated));
    }

    #[test]
    fn callers_are_told_apart_by_credential() {
        let tokens = Tokens::new(vec![
            Token::new("viewer-one", Role::Viewer),
            Token::new("viewer-two", Role::Viewer),
            Token::new("op-secret", Role::Operator),
        ]);
        let one = tokens.identify(Some("Bearer viewer-one"), Role::Viewer).expect("known");
        let two = tokens.identify(Some("Bearer viewer-two"), Role::Viewer).expect("known");
        let operator = tokens.identify(Some("Bearer op-secret"), Role::Viewer).expect("known");
        assert_ne!(one.credential, two.credential);
        assert!(one.may_act_for(one.credential));
        assert!(!two.may_act_for(one.credential), "a viewer never acts for another");
        assert!(operator.may_act_for(one.credential), "an operator may");
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
