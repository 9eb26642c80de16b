//! The access-token cache: expiry, proactive refresh, single flight, 401 invalidation.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use tokio::time::Instant;

use crate::secret::AccessToken;

/// A token this close to its expiry is not used any more: a request started now could arrive
/// after the expiry.
pub(crate) const HARD_EXPIRY_BUFFER: Duration = Duration::from_secs(5);

/// Inside the refresh margin, a refresh that handed back the same token (the server reuses a
/// live token until it expires) is not tried again sooner than this.
pub(crate) const SOFT_RETRY_INTERVAL: Duration = Duration::from_secs(60);

/// A secret this close to the end of its validity triggers a warning on every token request.
pub(crate) const SECRET_WARNING: TimeDelta = TimeDelta::days(7);

/// What `ensure_token` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStatus {
    /// When the cached token expires.
    pub expires_at: DateTime<Utc>,
    /// When the client secret in use stops working, if the server said.
    pub secret_valid_until: Option<DateTime<Utc>>,
}

/// The token endpoint's answer (`42-api.md` §1.3).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) token_type: Option<String>,
    pub(crate) expires_in: i64,
    #[serde(default)]
    pub(crate) created_at: Option<i64>,
    #[serde(default)]
    pub(crate) secret_valid_until: Option<i64>,
}

/// A token error body (`{"error":"invalid_client","error_description":"…"}`).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenErrorBody {
    #[serde(default)]
    pub(crate) error: Option<String>,
}

/// A token in the cache.
#[derive(Debug, Clone)]
pub(crate) struct CachedToken {
    pub(crate) token: AccessToken,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) secret_valid_until: Option<DateTime<Utc>>,
    /// The server handed this token out again close to its expiry, so it is used right up to
    /// the expiry instead of triggering a token request per API request.
    pub(crate) accept_until_expiry: bool,
}

impl CachedToken {
    /// Whether the token may still be sent.
    pub(crate) fn usable(&self, now: DateTime<Utc>) -> bool {
        let buffer = if self.accept_until_expiry {
            TimeDelta::zero()
        } else {
            to_delta(HARD_EXPIRY_BUFFER)
        };
        now < self.expires_at - buffer
    }

    /// Whether the token is inside the proactive refresh margin.
    pub(crate) fn wants_refresh(&self, now: DateTime<Utc>, margin: Duration) -> bool {
        now >= self.expires_at - to_delta(margin)
    }
}

/// Computes a token's expiry.
///
/// 42's server is Doorkeeper, whose `expires_in` is the *remaining* lifetime and whose
/// `created_at` stays at the original issue time when a live token is handed out again. So
/// `created_at + expires_in` is exact for a fresh token but too early for a reused one, and
/// `sent_at + expires_in` is never later than the truth (the server computed `expires_in` after
/// we sent the request). We take the earlier of the two, unless `created_at + expires_in` lies
/// before the request (a token reused late in its life, or a skewed clock), in which case only
/// the request-time bound is meaningful.
pub(crate) fn compute_expiry(
    created_at: Option<i64>,
    expires_in: i64,
    sent_at: DateTime<Utc>,
) -> DateTime<Utc> {
    let lifetime = TimeDelta::seconds(expires_in.max(0));
    let local = sent_at + lifetime;
    match created_at.and_then(|c| DateTime::<Utc>::from_timestamp(c, 0)) {
        Some(created) if created + lifetime > sent_at => (created + lifetime).min(local),
        _ => local,
    }
}

pub(crate) fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// Mutable refresh bookkeeping, guarded by the single-flight lock.
#[derive(Debug, Default)]
pub(crate) struct RefreshState {
    /// Index of the secret in use (0 = current, 1 = next).
    pub(crate) secret_index: usize,
    /// When a proactive refresh was last attempted.
    pub(crate) last_soft_attempt: Option<Instant>,
    /// The last `secret_valid_until` the server reported.
    pub(crate) secret_valid_until: Option<DateTime<Utc>>,
}

/// The shared cache: a fast read path and a single-flight refresh path.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    pub(crate) current: Mutex<Option<CachedToken>>,
    /// Held while a token request is in flight, so exactly one runs at a time; waiters re-check
    /// the cache after acquiring it.
    pub(crate) refresh: tokio::sync::Mutex<RefreshState>,
}

impl TokenCache {
    pub(crate) fn get(&self) -> Option<CachedToken> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set(&self, token: CachedToken) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(token);
    }

    /// Drops `token` after a 401, unless another task already replaced it.
    pub(crate) fn invalidate(&self, token: &AccessToken) {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if cur.as_ref().is_some_and(|c| &c.token == token) {
            *cur = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn fresh_token_expires_at_created_plus_lifetime() {
        let e = compute_expiry(Some(1_700_000_000), 7200, t(1));
        assert_eq!(e, t(7200));
    }

    #[test]
    fn reused_token_uses_request_time_plus_remaining() {
        // Issued at t0, handed out again 6000 s later with 1200 s left.
        let e = compute_expiry(Some(1_700_000_000), 1200, t(6000));
        assert_eq!(e, t(7200));
        // Reused early: the created-at bound is earlier and wins (never late).
        let e = compute_expiry(Some(1_700_000_000), 7168, t(32));
        assert_eq!(e, t(7168));
    }

    #[test]
    fn usable_and_refresh_edges() {
        let tok = CachedToken {
            token: AccessToken::new("x"),
            expires_at: t(7200),
            secret_valid_until: None,
            accept_until_expiry: false,
        };
        let margin = Duration::from_secs(600);
        assert!(tok.usable(t(7194)));
        assert!(!tok.usable(t(7195)));
        assert!(!tok.wants_refresh(t(6599), margin));
        assert!(tok.wants_refresh(t(6600), margin));
        let reused = CachedToken {
            accept_until_expiry: true,
            ..tok
        };
        assert!(reused.usable(t(7199)));
        assert!(!reused.usable(t(7200)));
    }
}
