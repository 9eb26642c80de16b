//! Events, counters and budget snapshots readable from the client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Something the client did that a user interface may want to show ("waiting for budget").
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A request waits for the shared budget (pacer or a server-imposed pause).
    RateWait {
        /// How long this wait lasts.
        wait: Duration,
    },
    /// A request is repeated after a failure or a 429.
    Retry {
        /// The endpoint being retried.
        endpoint: String,
        /// The attempt that just failed (1-based).
        attempt: u32,
        /// The wait before the next attempt.
        wait: Duration,
        /// Why (e.g. `HTTP 503`, `timeout`, `HTTP 429`).
        reason: String,
    },
    /// A new access token was obtained (or the server handed back the same one).
    TokenRefreshed {
        /// When the token expires.
        expires_at: DateTime<Utc>,
        /// Whether the server returned the token it had issued before (token reuse).
        reused: bool,
    },
    /// An application's secret was rejected and it left the rotation (several applications;
    /// the others go on).
    ApplicationRejected {
        /// The application's UID.
        client_id: String,
        /// Applications still in the rotation.
        applications_left: u32,
    },
    /// A response carried a field the models do not know (reported once per endpoint and field).
    SchemaDrift {
        /// The endpoint pattern, e.g. `/v2/campus/:id/users`.
        endpoint: String,
        /// The JSON path of the unknown field, e.g. `image.versions.huge`.
        field: String,
    },
}

/// Counters since the client was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// HTTP requests sent, token requests included.
    pub requests: u64,
    /// Token requests sent.
    pub token_requests: u64,
    /// 429 answers received.
    pub responses_429: u64,
    /// 401 answers received from API endpoints.
    pub responses_401: u64,
    /// Requests repeated after a failure or a 429.
    pub retries: u64,
    /// Tokens obtained (new or reused).
    pub token_refreshes: u64,
    /// Total time requests spent waiting (pacer, `Retry-After`, backoff).
    pub wait_time: Duration,
    /// Time spent in the pacer only (the shared budget's waits included).
    pub pacer_wait_time: Duration,
    /// Applications in the rotation (see `FtClient::applications`).
    pub applications_active: u32,
    /// Applications taken out of the rotation because their secret was rejected.
    pub applications_rejected: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) token_requests: AtomicU64,
    pub(crate) responses_429: AtomicU64,
    pub(crate) responses_401: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) token_refreshes: AtomicU64,
    pub(crate) wait_nanos: AtomicU64,
    pub(crate) pacer_wait_nanos: AtomicU64,
}

impl Counters {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_wait(counter: &AtomicU64, d: Duration) {
        counter.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn snapshot(&self) -> ClientStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientStats {
            requests: load(&self.requests),
            token_requests: load(&self.token_requests),
            responses_429: load(&self.responses_429),
            responses_401: load(&self.responses_401),
            retries: load(&self.retries),
            token_refreshes: load(&self.token_refreshes),
            wait_time: Duration::from_nanos(load(&self.wait_nanos)),
            pacer_wait_time: Duration::from_nanos(load(&self.pacer_wait_nanos)),
            applications_active: 0,
            applications_rejected: 0,
        }
    }
}

/// The budget the pacer currently works with, and what the server last said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetSnapshot {
    /// The per-second limit in force (configured, or raised/lowered by the server's headers).
    pub per_second: u32,
    /// The per-hour limit in force.
    pub per_hour: u32,
    /// `X-Hourly-RateLimit-Remaining` of the latest response that carried it.
    pub hourly_remaining_seen: Option<u32>,
    /// `X-Secondly-RateLimit-Remaining` of the latest response that carried it.
    pub secondly_remaining_seen: Option<u32>,
    /// `X-Application-Id` of the latest response that carried it.
    pub app_id: Option<String>,
}
