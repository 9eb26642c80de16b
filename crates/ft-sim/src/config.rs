//! Plain configuration and report types shared by the builder, the handle and the server.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Rate limits of one application: a per-second and a per-hour sliding window.
///
/// The window lengths are configurable so that a test can compress "an hour" into seconds; the
/// names keep the real API's vocabulary (`X-Secondly-*`, `X-Hourly-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests allowed in any window of `second_window` (the real default is 2).
    pub per_second: u32,
    /// Requests allowed in any window of `hour_window` (the real default is 1200).
    pub per_hour: u32,
    /// Length of the "secondly" window (normally one second).
    pub second_window: Duration,
    /// Length of the "hourly" window (normally one hour).
    pub hour_window: Duration,
}

impl Default for Limits {
    /// The real API's default budget: 2 requests per second and 1200 per hour.
    fn default() -> Self {
        Self {
            per_second: 2,
            per_hour: 1200,
            second_window: Duration::from_secs(1),
            hour_window: Duration::from_secs(3600),
        }
    }
}

/// Fault injection settings. Every rate is a probability in `0.0..=1.0` drawn per `/v2` request
/// from a random generator seeded by the simulator's seed, so a given request sequence always
/// meets the same faults. All faults are off by default.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Probability of a 5xx answer (500, 502 or 503; half of them with an HTML body, the others
    /// with a JSON body). The request still counts against the budget.
    pub error_5xx_rate: f64,
    /// Probability of a slow answer (delayed by `slow_delay`).
    pub slow_rate: f64,
    /// Delay of a slow answer.
    pub slow_delay: Duration,
    /// Probability of a hang (an answer delayed by `hang_delay`, long enough to hit a client
    /// timeout).
    pub hang_rate: f64,
    /// Delay of a hung answer.
    pub hang_delay: Duration,
    /// Probability of a 429 that the budget did not call for (not counted, like any 429).
    pub spontaneous_429_rate: f64,
    /// Revoke every live token after each N-th `/v2` request, so the next request gets a 401.
    pub revoke_token_every: Option<u64>,
    /// Probability that a 200 JSON body is truncated or otherwise invalid JSON.
    pub malformed_rate: f64,
    /// Probability that `POST /oauth/token` answers an HTML 503 instead of a token.
    pub token_error_rate: f64,
    /// Every `/v2` answer is delayed by a random time below this (latency jitter).
    pub jitter_max: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            error_5xx_rate: 0.0,
            slow_rate: 0.0,
            slow_delay: Duration::from_secs(2),
            hang_rate: 0.0,
            hang_delay: Duration::from_secs(300),
            spontaneous_429_rate: 0.0,
            revoke_token_every: None,
            malformed_rate: 0.0,
            token_error_rate: 0.0,
            jitter_max: Duration::ZERO,
        }
    }
}

/// OAuth credentials of one simulated application.
///
/// `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AppCredentials {
    /// The application's UID (`u-s4t2ud-<64 hex>`), sent as `client_id`.
    pub client_id: String,
    /// The application's secret (`s-s4t2ud-<64 hex>`), sent as `client_secret`.
    pub client_secret: String,
}

impl fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

/// One request seen by the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// When the request reached the server, measured from the simulator's start: when it was
    /// handled, plus the simulated network's forward delay if one is set
    /// ([`crate::SimBuilder::network_delay`]; then entries are not in `at` order).
    pub at: Duration,
    /// HTTP method (`GET`, `POST`, ...).
    pub method: String,
    /// Path without the query (`/v2/campus/1/users`).
    pub path: String,
    /// Raw query string, empty when there was none.
    pub query: String,
    /// Status code of the answer.
    pub status: u16,
    /// Whether the request was counted against the application's rate-limit budget: every
    /// `/v2` request that passed authentication and was not itself answered with a 429.
    pub counted: bool,
    /// Internal id of the application the token belonged to (`None` when unauthenticated).
    /// The default application has id 1; [`crate::SimHandle::add_application`] hands out 2, 3, ...
    pub app_id: Option<u64>,
}

/// The current dataset, exactly as the canonical listing endpoints serve it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Truth {
    /// Rows per table name (`users`, `cursus_users`, ...), each sorted by `id` ascending.
    pub tables: BTreeMap<String, Vec<serde_json::Value>>,
}

impl Truth {
    /// The rows of one table, or an empty slice for an unknown name.
    pub fn table(&self, name: &str) -> &[serde_json::Value] {
        self.tables.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    /// The ids of one table, ascending.
    pub fn ids(&self, name: &str) -> Vec<i64> {
        self.table(name)
            .iter()
            .filter_map(|row| row.get("id").and_then(serde_json::Value::as_i64))
            .collect()
    }
}

/// What one drift step should change. Counts are upper bounds (a step cannot close more open
/// locations than exist).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Drift {
    /// Fraction (`0.0..=1.0`) of rows with an `updated_at` (users, campus_users, cursus_users,
    /// projects_users, achievements_users, coalitions_users) that get a change and a new
    /// `updated_at`.
    pub update_fraction: f64,
    /// Users to add, each with a full set of relations.
    pub new_users: usize,
    /// Locations to add (an open session for a user without one, else a closed session).
    pub new_locations: usize,
    /// Open locations (`end_at` null) to close. Locations have no `updated_at`.
    pub close_open_locations: usize,
    /// projects_users rows to delete (no tombstone, as in the real API).
    pub delete_projects_users: usize,
    /// cursus_users rows to delete.
    pub delete_cursus_users: usize,
    /// Piscine (cursus 9) cursus_users of ongoing piscines whose `level` changes WITHOUT
    /// touching `updated_at` (at most this many: fewer when fewer piscines are ongoing).
    pub piscine_level_changes: usize,
}

/// What one drift step changed, by table name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DriftReport {
    /// The simulated time of the step; every new `updated_at` is at or after it.
    pub at: DateTime<Utc>,
    /// Rows whose content and `updated_at` changed.
    pub updated: BTreeMap<String, Vec<i64>>,
    /// Rows created.
    pub created: BTreeMap<String, Vec<i64>>,
    /// Rows deleted.
    pub deleted: BTreeMap<String, Vec<i64>>,
    /// Locations whose `end_at` was set.
    pub closed_locations: Vec<i64>,
    /// cursus_users whose `level` changed while `updated_at` stayed the same.
    pub silent_level_changes: Vec<i64>,
    /// Users anonymised by trap drift ([`crate::TrapDrift::anonymise_users`]); also in
    /// `updated["users"]`.
    pub anonymised_users: Vec<i64>,
    /// Campus transfers of trap drift: `(user id, old primary campus, new primary campus)`.
    pub campus_transfers: Vec<(i64, i64, i64)>,
    /// projects_users replaced by trap drift: `(deleted id, new id)`; also in `deleted` and
    /// `created`.
    pub replaced_projects_users: Vec<(i64, i64)>,
    /// Relation rows whose embedded user changed while their own `updated_at` stayed the same
    /// (trap drift: anonymisations and campus transfers), by table.
    pub refreshed_embedded_users: BTreeMap<String, Vec<i64>>,
}
