//! Credential newtypes whose `Debug` and `Display` never reveal a secret.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// The public UID of a 42 application (`u-s4t2ud-…`).
///
/// The client id is not a secret, but it is still shortened in `Display` so that logs identify the
/// application without printing the whole credential pair next to each other.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    /// Wraps a client id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// Returns the full client id, as sent to the token endpoint.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short form for logs: the first 12 characters followed by an ellipsis.
    pub fn short(&self) -> String {
        let shown: String = self.0.chars().take(12).collect();
        if shown.len() < self.0.len() {
            format!("{shown}…")
        } else {
            shown
        }
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({})", self.short())
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

impl From<&str> for ClientId {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for ClientId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&String> for ClientId {
    fn from(s: &String) -> Self {
        Self(s.clone())
    }
}

/// The secret of a 42 application (`s-s4t2ud-…`).
///
/// `Debug` prints `ClientSecret([redacted])` and `Display` prints `[redacted]`, so a secret cannot
/// reach a log line, an error message or a panic by accident. Use [`ClientSecret::expose`] only to
/// build the token request.
#[derive(Clone)]
pub struct ClientSecret(SecretString);

impl ClientSecret {
    /// Wraps a client secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(SecretString::from(secret.into()))
    }

    /// Returns the secret itself. Never log or format the result.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether two secrets are equal, without exposing either to the caller.
    pub(crate) fn same_as(&self, other: &ClientSecret) -> bool {
        self.expose() == other.expose()
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

impl fmt::Display for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<SecretString> for ClientSecret {
    fn from(s: SecretString) -> Self {
        Self(s)
    }
}

/// A bearer token issued by the token endpoint. Redacted like [`ClientSecret`].
#[derive(Clone)]
pub struct AccessToken(SecretString);

impl AccessToken {
    /// Wraps an access token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(SecretString::from(token.into()))
    }

    /// Returns the token itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for AccessToken {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for AccessToken {}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = ClientSecret::new("s-s4t2ud-supersecretvalue");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{s:?}"), "ClientSecret([redacted])");
        assert!(!format!("{:?}", Some(&s)).contains("supersecret"));
        let t = AccessToken::new("abcdef0123");
        assert!(!format!("{t} {t:?}").contains("abcdef"));
        assert_eq!(s.expose(), "s-s4t2ud-supersecretvalue");
    }

    #[test]
    fn client_id_is_shortened() {
        let id = ClientId::from("u-s4t2ud-0123456789abcdef");
        assert_eq!(id.to_string(), "u-s4t2ud-012…");
        assert_eq!(id.as_str(), "u-s4t2ud-0123456789abcdef");
    }
}
