//! Access tokens: the source (token requests through the budget, retries, failover to the
//! next secret, a token handed back at the end of its life used to its end and then waited
//! out) and the cache (expiry computed with Doorkeeper's token reuse in mind, a proactive
//! refresh margin, single-flight refresh, 401 invalidation).

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use tokio::time::Instant;

use crate::apps::App;
use crate::client::{FtClient, Outcome};
use crate::error::ApiError;
use crate::event::{ClientEvent, Counters};
use crate::secret::AccessToken;

/// A token this close to its expiry is not used any more: a request started now could arrive
/// after the expiry.
pub(crate) const HARD_EXPIRY_BUFFER: Duration = Duration::from_secs(5);

/// A token the server handed back close to its expiry is used until this long before it:
/// `expires_in` is whole seconds, and Doorkeeper rounds the elapsed time down, so the true
/// expiry can be up to a second earlier than `expires_in` says.
pub(crate) const EXPIRES_IN_ROUNDING: Duration = Duration::from_secs(1);

/// How many tokens in a row may come back already unusable (expiring within the rounding)
/// before the token request fails: the server hands back its live token until it expires,
/// then issues a new one, so more than this means a broken server or clock.
pub(crate) const MAX_UNUSABLE_TOKENS: u32 = 3;

/// Inside the refresh margin, a refresh that handed back the same token (the server reuses a
/// live token until it expires) is not tried again sooner than this.
pub(crate) const SOFT_RETRY_INTERVAL: Duration = Duration::from_secs(60);

/// How close a client secret is to the end of its validity (`secret_valid_until` in the token
/// answer), in the steps an operator is warned at: 14 days, 7 days and 24 hours before. 42's
/// secrets are valid for a limited time; the next one is created on profile.intra.42.fr and
/// configured as the application's next secret before the current one expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretExpiry {
    /// Expires within 14 days.
    #[serde(rename = "within_14_days")]
    Within14Days,
    /// Expires within 7 days.
    #[serde(rename = "within_7_days")]
    Within7Days,
    /// Expires within 24 hours.
    #[serde(rename = "within_24_hours")]
    Within24Hours,
    /// Expired: the token endpoint will refuse it.
    Expired,
}

impl SecretExpiry {
    /// The step a secret valid until `valid_until` is at, at `now`; `None` when it has more than
    /// 14 days left.
    pub fn at(valid_until: DateTime<Utc>, now: DateTime<Utc>) -> Option<SecretExpiry> {
        let left = valid_until - now;
        if left <= TimeDelta::zero() {
            Some(SecretExpiry::Expired)
        } else if left <= TimeDelta::hours(24) {
            Some(SecretExpiry::Within24Hours)
        } else if left <= TimeDelta::days(7) {
            Some(SecretExpiry::Within7Days)
        } else if left <= TimeDelta::days(14) {
            Some(SecretExpiry::Within14Days)
        } else {
            None
        }
    }

    /// Seven days or less: time to act, not only to plan.
    pub fn is_urgent(self) -> bool {
        self >= SecretExpiry::Within7Days
    }

    /// "expired 3 hours ago", "expires in 5 days", "expires in 20 hours": how long is left.
    pub fn describe_left(valid_until: DateTime<Utc>, now: DateTime<Utc>) -> String {
        let left = valid_until - now;
        // Rounded to the nearest unit: a secret with 2 days 23 hours left "expires in 3 days".
        let past = left < TimeDelta::zero();
        let (n, unit) = match left.abs() {
            d if d >= TimeDelta::days(2) => ((d.num_hours() + 12) / 24, "days"),
            d => ((d.num_minutes() + 30) / 60, "hours"),
        };
        if past {
            format!("expired {n} {unit} ago ({valid_until})")
        } else {
            format!("expires in {n} {unit} ({valid_until})")
        }
    }
}

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
    /// The server handed this token out close to its expiry (inside the hard buffer), so it
    /// is used right up to the expiry (less the rounding of `expires_in`) instead of
    /// triggering a token request per API request; after that, a new one is asked for once
    /// it has expired (asking earlier would get the same token back).
    pub(crate) accept_until_expiry: bool,
}

impl CachedToken {
    /// Whether the token may still be sent.
    pub(crate) fn usable(&self, now: DateTime<Utc>) -> bool {
        let buffer = if self.accept_until_expiry {
            to_delta(EXPIRES_IN_ROUNDING)
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
    /// The last `secret_valid_until` the server reported (kept when the token is dropped).
    pub(crate) secret_valid_until: Mutex<Option<DateTime<Utc>>>,
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

// ---------------------------------------------------------------------------------------------
// The token source

impl FtClient {
    /// Returns a usable token, fetching one when needed. The flag says whether this call sent a
    /// token request itself.
    pub(crate) async fn token(&self, app: &App) -> Result<(CachedToken, bool), ApiError> {
        let inner = &self.inner;
        let now = inner.clock.utc();
        if let Some(tok) = app.token.get()
            && tok.usable(now)
        {
            // A token already used to its end would only be handed back again.
            if tok.wants_refresh(now, inner.refresh_margin)
                && !tok.accept_until_expiry
                && let Ok(mut st) = app.token.refresh.try_lock()
            {
                let due = st.last_soft_attempt.is_none_or(|t| {
                    inner.clock.now().saturating_duration_since(t) >= SOFT_RETRY_INTERVAL
                });
                // Another task may have refreshed while we looked.
                let current = app.token.get();
                let still_old = current.as_ref().is_some_and(|c| c.token == tok.token);
                if due && still_old {
                    st.last_soft_attempt = Some(inner.clock.now());
                    match self.fetch_token(app, &mut st, Some(&tok)).await {
                        Ok(new) => return Ok((new, true)),
                        Err(e) => {
                            tracing::warn!(error = %e, "proactive token refresh failed; the current token is still valid");
                        }
                    }
                } else if let Some(c) = current
                    && c.usable(now)
                {
                    return Ok((c, false));
                }
            }
            return Ok((
                app.token.get().filter(|c| c.usable(now)).unwrap_or(tok),
                false,
            ));
        }
        // No usable token: single flight. Whoever holds the lock fetches; the others wait and
        // then find the new token in the cache.
        let mut st = app.token.refresh.lock().await;
        let now = inner.clock.utc();
        if let Some(tok) = app.token.get()
            && tok.usable(now)
        {
            return Ok((tok, false));
        }
        let previous = app.token.get();
        if let Some(p) = previous.as_ref().filter(|p| p.accept_until_expiry) {
            // The server handed this token back near its end and would hand it back again
            // until it expires: wait for that, then a new one is issued.
            let wait = (p.expires_at + to_delta(EXPIRES_IN_ROUNDING) - now)
                .to_std()
                .unwrap_or_default();
            if !wait.is_zero() {
                tracing::debug!(
                    ?wait,
                    "waiting for the token to expire before asking for a new one"
                );
                self.backoff(wait).await;
            }
        }
        let tok = self.fetch_token(app, &mut st, previous.as_ref()).await?;
        Ok((tok, true))
    }

    /// Sends token requests (with secret failover and retries) and caches the result.
    pub(crate) async fn fetch_token(
        &self,
        app: &App,
        st: &mut crate::token::RefreshState,
        previous: Option<&CachedToken>,
    ) -> Result<CachedToken, ApiError> {
        let inner = &self.inner;
        let endpoint = "/oauth/token";
        let started = inner.clock.now();
        let mut failures = 0u32;
        let mut attempt = 0u32;
        let mut tried_next = false;
        let mut unusable = 0u32;
        loop {
            let (_, ticket) = self.pace(app).await?;
            attempt += 1;
            Counters::inc(&inner.counters.requests);
            Counters::inc(&inner.counters.token_requests);
            app.count_request();
            let secret = &app.secrets[st.secret_index.min(app.secrets.len() - 1)];
            let sent_at = inner.clock.utc();
            let req = inner.http.post(&inner.token_url).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", app.client_id.as_str()),
                ("client_secret", secret.expose()),
            ]);
            let outcome = self.exchange(ticket, req, endpoint, attempt, false).await;
            match outcome {
                Outcome::Ok(resp) => {
                    let parsed: TokenResponse =
                        serde_json::from_slice(&resp.body).map_err(|e| ApiError::Decode {
                            endpoint: endpoint.to_string(),
                            path: ".".into(),
                            message: e.to_string(),
                            // The body holds the token itself: never quote it.
                            snippet: "[token response withheld]".into(),
                        })?;
                    if let Some(tt) = &parsed.token_type
                        && !tt.eq_ignore_ascii_case("bearer")
                    {
                        tracing::warn!(token_type = %tt, "unexpected token type; using it as a bearer token");
                    }
                    let token = AccessToken::new(parsed.access_token);
                    let expires_at = compute_expiry(parsed.created_at, parsed.expires_in, sent_at);
                    let secret_valid_until = parsed
                        .secret_valid_until
                        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0));
                    if secret_valid_until.is_some() {
                        st.secret_valid_until = secret_valid_until;
                        *app.token
                            .secret_valid_until
                            .lock()
                            .unwrap_or_else(|e| e.into_inner()) = secret_valid_until;
                    }
                    let reused = previous.is_some_and(|p| p.token == token);
                    let now = inner.clock.utc();
                    let mut cached = CachedToken {
                        token,
                        expires_at,
                        secret_valid_until,
                        accept_until_expiry: false,
                    };
                    if !cached.usable(now) {
                        // The server hands back its live token until it expires (Doorkeeper's
                        // reuse), so it can come back with little life left: use it to the end
                        // rather than asking again for every request.
                        cached.accept_until_expiry = true;
                    }
                    if !cached.usable(now) {
                        // Not even that (`expires_in` 0 or 1): wait until it has surely expired,
                        // then ask again for a new one.
                        unusable += 1;
                        let wait = (expires_at + to_delta(EXPIRES_IN_ROUNDING) - now)
                            .to_std()
                            .unwrap_or_default()
                            .max(EXPIRES_IN_ROUNDING);
                        if unusable > MAX_UNUSABLE_TOKENS
                            || inner.clock.now().saturating_duration_since(started) + wait
                                > inner.retry.max_elapsed
                        {
                            return Err(ApiError::Token {
                                status: resp.status,
                                body: format!(
                                    "the token endpoint returned {unusable} tokens in a row that expire at once (the last at {expires_at}); check the system clock"
                                ),
                            });
                        }
                        tracing::info!(
                            %expires_at,
                            ?wait,
                            "the token endpoint handed back a token at the end of its life; asking again once it expired"
                        );
                        self.backoff(wait).await;
                        continue;
                    }
                    if let Some(until) = secret_valid_until
                        && let Some(step) = SecretExpiry::at(until, now)
                    {
                        let left = SecretExpiry::describe_left(until, now);
                        // Info up to the last day: a token is fetched every two hours, and an
                        // embedding program (ft42: `status`, the nightly sync) decides how often
                        // to tell people; the last day warns on every fetch.
                        if step >= SecretExpiry::Within24Hours {
                            tracing::warn!(secret_valid_until = %until, step = ?step, "the client secret {left}; create the next secret on profile.intra.42.fr and configure it as the next secret");
                        } else {
                            tracing::info!(secret_valid_until = %until, step = ?step, "the client secret {left}; create the next secret on profile.intra.42.fr and configure it as the next secret");
                        }
                    }
                    // Any fetch counts as a refresh attempt, so a token just handed back is not
                    // asked for again by the proactive path a moment later.
                    st.last_soft_attempt = Some(inner.clock.now());
                    Counters::inc(&inner.counters.token_refreshes);
                    tracing::info!(%expires_at, reused, "access token obtained");
                    self.emit(ClientEvent::TokenRefreshed { expires_at, reused });
                    app.token.set(cached.clone());
                    return Ok(cached);
                }
                Outcome::TooMany { retry_after } => {
                    let wait = self.too_many(app, retry_after);
                    self.share_pause(app, wait).await;
                    if inner.clock.now().saturating_duration_since(started) + wait
                        > inner.retry.max_elapsed
                    {
                        return Err(ApiError::RateLimited {
                            endpoint: endpoint.to_string(),
                            waited: inner.clock.now().saturating_duration_since(started),
                        });
                    }
                }
                Outcome::Retryable { reason, error } => {
                    failures += 1;
                    let delay = self.backoff_delay(failures);
                    if failures >= inner.retry.max_attempts
                        || inner.clock.now().saturating_duration_since(started) + delay
                            > inner.retry.max_elapsed
                    {
                        return Err(self.redact(error));
                    }
                    tracing::warn!(attempt, ?delay, %reason, "retrying the token request");
                    Counters::inc(&inner.counters.retries);
                    self.emit(ClientEvent::Retry {
                        endpoint: endpoint.to_string(),
                        attempt,
                        wait: delay,
                        reason,
                    });
                    self.backoff(delay).await;
                }
                Outcome::Unauthorized => {
                    unreachable!("token requests are classified with api = false")
                }
                Outcome::Fatal(ApiError::Status { status, body, .. }) => {
                    let invalid_client = serde_json::from_str::<TokenErrorBody>(&body)
                        .ok()
                        .and_then(|b| b.error)
                        .is_some_and(|e| e == "invalid_client");
                    if invalid_client {
                        if st.secret_index + 1 < app.secrets.len() {
                            st.secret_index += 1;
                            tried_next = true;
                            tracing::warn!(
                                "the client secret was rejected (invalid_client); failing over to the next secret"
                            );
                            continue;
                        }
                        return Err(ApiError::SecretRejected {
                            secret_valid_until: st.secret_valid_until,
                            tried_next_secret: tried_next || st.secret_index > 0,
                        });
                    }
                    return Err(self.redact(ApiError::Token { status, body }));
                }
                Outcome::Fatal(e) => return Err(self.redact(e)),
            }
        }
    }

    /// Removes any configured secret from an error's quoted body: a proxy or a broken server
    /// could echo the token request's form body, and errors must never carry a secret.
    pub(crate) fn redact(&self, e: ApiError) -> ApiError {
        let scrub = |mut body: String| {
            for secret in self.inner.apps.iter().flat_map(|a| &a.secrets) {
                if !secret.expose().is_empty() {
                    let encoded: String =
                        url::form_urlencoded::byte_serialize(secret.expose().as_bytes()).collect();
                    body = body
                        .replace(secret.expose(), "[redacted]")
                        .replace(&encoded, "[redacted]");
                }
            }
            body
        };
        match e {
            ApiError::Status {
                endpoint,
                status,
                attempt,
                body,
                request_id,
            } => ApiError::Status {
                endpoint,
                status,
                attempt,
                body: scrub(body),
                request_id,
            },
            ApiError::Token { status, body } => ApiError::Token {
                status,
                body: scrub(body),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_expiry_steps_at_14_days_7_days_and_24_hours() {
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let at = |d: TimeDelta| SecretExpiry::at(now + d, now);
        assert_eq!(at(TimeDelta::days(30)), None);
        assert_eq!(at(TimeDelta::days(14) + TimeDelta::seconds(1)), None);
        assert_eq!(at(TimeDelta::days(14)), Some(SecretExpiry::Within14Days));
        assert_eq!(at(TimeDelta::days(8)), Some(SecretExpiry::Within14Days));
        assert_eq!(at(TimeDelta::days(7)), Some(SecretExpiry::Within7Days));
        assert_eq!(at(TimeDelta::hours(25)), Some(SecretExpiry::Within7Days));
        assert_eq!(at(TimeDelta::hours(24)), Some(SecretExpiry::Within24Hours));
        assert_eq!(at(TimeDelta::seconds(1)), Some(SecretExpiry::Within24Hours));
        assert_eq!(at(TimeDelta::zero()), Some(SecretExpiry::Expired));
        assert_eq!(at(-TimeDelta::days(3)), Some(SecretExpiry::Expired));
        assert!(!SecretExpiry::Within14Days.is_urgent());
        assert!(SecretExpiry::Within7Days.is_urgent() && SecretExpiry::Expired.is_urgent());
        let left = |d: TimeDelta| SecretExpiry::describe_left(now + d, now);
        assert!(left(TimeDelta::days(5)).starts_with("expires in 5 days"));
        assert!(left(TimeDelta::days(3) - TimeDelta::seconds(2)).starts_with("expires in 3 days"));
        assert!(left(TimeDelta::hours(20)).starts_with("expires in 20 hours"));
        assert!(left(-TimeDelta::hours(3)).starts_with("expired 3 hours ago"));
    }
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
        assert!(reused.usable(t(7198)));
        assert!(!reused.usable(t(7199)));
    }
}
