//! The one error type of this crate.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How many characters of a response body an error keeps.
pub(crate) const BODY_SNIPPET_CHARS: usize = 300;

/// Everything that can go wrong while talking to the 42 API.
///
/// Every variant names the endpoint (path without the host) so a failure in a long run says where
/// it happened; HTTP failures also carry the status, the attempt number and a truncated body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The client could not be built: a setting is missing or invalid.
    #[error("invalid client configuration: {0}")]
    Config(String),

    /// The request never got an HTTP answer (connection refused, reset, DNS, TLS …).
    #[error("{endpoint}: transport error on attempt {attempt}: {message}")]
    Transport {
        /// The endpoint that was requested.
        endpoint: String,
        /// The attempt (1-based) that failed last.
        attempt: u32,
        /// What the transport reported (no URL query with credentials is ever included).
        message: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// The request timed out (connect or total request timeout).
    #[error("{endpoint}: timed out on attempt {attempt}")]
    Timeout {
        /// The endpoint that was requested.
        endpoint: String,
        /// The attempt (1-based) that failed last.
        attempt: u32,
    },

    /// The server answered with an error status that is not retried, or retries ran out.
    #[error("{endpoint}: HTTP {status} on attempt {attempt}: {body}")]
    Status {
        /// The endpoint that was requested.
        endpoint: String,
        /// The HTTP status code.
        status: u16,
        /// The attempt (1-based) that failed last.
        attempt: u32,
        /// The start of the response body (at most 300 characters).
        body: String,
        /// The server's `X-Request-Id`, if any, to quote in a bug report.
        request_id: Option<String>,
    },

    /// Cloudflare answered with an HTML challenge page (HTTP 403) until retries ran out.
    #[error(
        "{endpoint}: blocked by an HTML challenge page (HTTP 403) after {attempt} attempts; \
         check the User-Agent and try again later"
    )]
    Challenge {
        /// The endpoint that was requested.
        endpoint: String,
        /// The number of attempts made.
        attempt: u32,
    },

    /// The server kept answering 429 for longer than `RetryConfig::max_elapsed`.
    #[error(
        "{endpoint}: still rate limited (HTTP 429) after waiting {waited:?}; another consumer may share this application's budget"
    )]
    RateLimited {
        /// The endpoint that was requested.
        endpoint: String,
        /// The time spent waiting for this request.
        waited: Duration,
    },

    /// The request was answered 401 again after the token had been dropped and refreshed.
    #[error(
        "{endpoint}: unauthorized (HTTP 401) even with a freshly issued token; \
         the application may lack access to this endpoint or its token was revoked again"
    )]
    Unauthorized {
        /// The endpoint that was requested.
        endpoint: String,
        /// The attempt (1-based) that failed last.
        attempt: u32,
    },

    /// The token endpoint rejected the client secret (`invalid_client`), after trying the next
    /// secret too when one was configured.
    #[error(
        "client secret rejected by the token endpoint (invalid_client){}; \
         create a new secret on profile.intra.42.fr and configure it{}",
        match secret_valid_until { Some(t) => format!(", the secret was valid until {t}"), None => String::new() },
        if *tried_next_secret { " (the next secret was rejected too)" } else { "" }
    )]
    SecretRejected {
        /// When the (last known) secret stopped being valid, from an earlier token response.
        secret_valid_until: Option<DateTime<Utc>>,
        /// Whether a configured next secret was tried as well.
        tried_next_secret: bool,
    },

    /// The token endpoint answered with an error other than `invalid_client`.
    #[error("token request failed with HTTP {status}: {body}")]
    Token {
        /// The HTTP status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },

    /// A response body did not match the expected shape.
    #[error("{endpoint}: cannot decode the response at `{path}`: {message}; near: {snippet}")]
    Decode {
        /// The endpoint that was requested.
        endpoint: String,
        /// The JSON path of the failure, e.g. `[3].id` or `.` for the whole body.
        path: String,
        /// What serde reported.
        message: String,
        /// The offending item (or the body start), truncated.
        snippet: String,
    },

    /// A list endpoint answered without the `X-Total` header that `probe_total` needs.
    #[error("{endpoint}: the response has no X-Total header, so the total is unknown")]
    MissingTotal {
        /// The endpoint that was requested.
        endpoint: String,
    },

    /// The budget shared with other processes (a rate ledger in the database) could not be
    /// reserved; no request was sent.
    #[error(
        "cannot reserve the shared request budget: {message}; check that the database is \
         reachable"
    )]
    SharedBudget {
        /// What the shared budget reported.
        message: String,
    },

    /// A path or URL could not be turned into a request URL.
    #[error("invalid URL {url:?}: {message}")]
    Url {
        /// The URL or path as given.
        url: String,
        /// What was wrong with it.
        message: String,
    },
}

impl ApiError {
    /// Whether repeating the same request later may succeed (transport errors, timeouts, 5xx,
    /// 429 and challenge pages).
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Transport { .. }
            | ApiError::Timeout { .. }
            | ApiError::Challenge { .. }
            | ApiError::RateLimited { .. }
            | ApiError::SharedBudget { .. } => true,
            ApiError::Status { status, .. } => *status >= 500 || *status == 429,
            ApiError::Token { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// Whether this is an authentication or authorisation failure (bad secret, token refused,
    /// 401/403 from the API).
    pub fn is_auth(&self) -> bool {
        match self {
            ApiError::Unauthorized { .. } | ApiError::SecretRejected { .. } => true,
            ApiError::Status { status, .. } => *status == 401 || *status == 403,
            ApiError::Token { status, .. } => *status == 400 || *status == 401,
            _ => false,
        }
    }

    /// The HTTP status the failure is about, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } | ApiError::Token { status, .. } => Some(*status),
            ApiError::Unauthorized { .. } | ApiError::SecretRejected { .. } => Some(401),
            ApiError::Challenge { .. } => Some(403),
            ApiError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// The endpoint the failure is about, if it concerns one request.
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            ApiError::Transport { endpoint, .. }
            | ApiError::Timeout { endpoint, .. }
            | ApiError::Status { endpoint, .. }
            | ApiError::Challenge { endpoint, .. }
            | ApiError::RateLimited { endpoint, .. }
            | ApiError::Unauthorized { endpoint, .. }
            | ApiError::Decode { endpoint, .. }
            | ApiError::MissingTotal { endpoint } => Some(endpoint),
            _ => None,
        }
    }
}

/// Truncates `s` to at most `max` characters (on a char boundary), marking the cut with `…`.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_marks_the_cut() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("ééé", 2), "éé…");
    }

    #[test]
    fn classification() {
        let e = ApiError::Status {
            endpoint: "/v2/x".into(),
            status: 503,
            attempt: 3,
            body: String::new(),
            request_id: None,
        };
        assert!(e.is_retryable());
        assert!(!e.is_auth());
        assert_eq!(e.status(), Some(503));
        let e = ApiError::SecretRejected {
            secret_valid_until: None,
            tried_next_secret: true,
        };
        assert!(e.is_auth());
        let msg = e.to_string();
        assert!(msg.contains("client secret rejected"), "{msg}");
        assert!(msg.contains("next secret was rejected too"), "{msg}");
    }
}
