//! What to sync and how the engine behaves.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Settings of one engine instance; every field has a default that suits a single operator
/// running from cron against the real API.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Names this process in task leases. A restarted process with the same id takes its own
    /// unfinished tasks back at once instead of waiting for their leases to expire.
    pub worker_id: String,
    /// How long a claimed task stays ours without a heartbeat.
    pub lease: Duration,
    /// Delta windows start this much before the last watermark, so rows whose `updated_at`
    /// was written late by the API (or clocks that disagree) are not missed.
    pub overlap: Duration,
    /// How many users of the changed-user queue one relation-worker task takes.
    pub max_relation_users: usize,
    /// Tasks run at the same time. They share one request budget, so more only hides latency.
    pub concurrency: usize,
    /// Attempts before a task that keeps failing with retryable errors goes to `error`.
    pub max_attempts: i32,
    /// Where raw pages are archived; `None` keeps no archive.
    pub export_dir: Option<PathBuf>,
    /// Archive day folders older than this many days are deleted after each run; `None`
    /// keeps everything.
    pub archive_retention_days: Option<u32>,
    /// Freshness targets per resource (task kind, e.g. `achievements_users`, `locations`): a
    /// delta run skips a scope whose last complete pass is younger than its target, saving the
    /// budget for what is stale. Resources not listed are refreshed on every run.
    pub freshness: BTreeMap<String, Duration>,
    /// Rows per request. The API clamps to 100; endpoints that time out on large pages
    /// (`/v2/projects`) are read with smaller ones whatever this says.
    pub per_page: u32,
    /// How far before a scope's watermark a delta window starts, per resource, for rows whose
    /// time field can be recorded late (a location's `begin_at` is often written after the
    /// session started). Resources not listed use [`EngineConfig::overlap`].
    pub look_back: BTreeMap<String, Duration>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned());
        EngineConfig {
            worker_id: format!("ft42@{host}"),
            lease: Duration::from_secs(60),
            overlap: Duration::from_secs(300),
            max_relation_users: 25,
            concurrency: 1,
            max_attempts: 8,
            export_dir: None,
            archive_retention_days: Some(30),
            freshness: default_freshness(),
            per_page: 100,
            look_back: default_look_back(),
        }
    }
}

/// The default look-back per resource: locations' deltas start 6 hours before the watermark
/// (sessions are often recorded late); every other delta starts `overlap` before it.
pub fn default_look_back() -> BTreeMap<String, Duration> {
    BTreeMap::from([("locations".to_owned(), Duration::from_secs(6 * 3600))])
}

/// The default refresh intervals, from the one table all of ft42 reads
/// ([`ft_store::DEFAULT_REFRESH`]: achievements_users, blocs and the four deletion checks at
/// most hourly, everything else on every run). ft42 applies the config file's `[freshness]` overrides to the same table.
pub fn default_freshness() -> BTreeMap<String, Duration> {
    ft_store::Freshness::default().refresh_intervals()
}

/// Which resources a sync covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum What {
    /// Reference data (campus, cursus, projects, achievements), users, campus_users and
    /// cursus_users of the chosen campuses.
    Users,
    /// projects_users and achievements_users, deletions among them, missing parent users, and
    /// the relation worker over the changed-user queue.
    Relations,
    /// Blocs, coalitions and coalitions_users.
    Coalitions,
    /// Locations (windowed on `begin_at`, open sessions re-checked by id).
    Locations,
    /// Everything the engine knows how to sync.
    All,
}

/// Full listing, delta since the watermark, or whichever applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Read every row of each scope.
    Full,
    /// Read rows changed since the scope's watermark (a full read where there is none).
    Delta,
    /// Delta where a watermark exists, full elsewhere.
    Auto,
}

/// One request to bring part of the mirror up to date.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    /// The resources.
    pub what: What,
    /// Full or delta.
    pub mode: Mode,
    /// Campus ids; `None` means every campus the API lists.
    pub campuses: Option<Vec<i64>>,
    /// Start the chosen scopes again from scratch: drop their cursors and queued tasks.
    pub force: bool,
    /// Overrides [`EngineConfig::max_relation_users`] for this request.
    pub max_relation_users: Option<usize>,
}

impl SyncRequest {
    /// A request for `what` in `mode` over every campus.
    pub fn new(what: What, mode: Mode) -> Self {
        SyncRequest {
            what,
            mode,
            campuses: None,
            force: false,
            max_relation_users: None,
        }
    }

    /// Restricts the request to these campuses.
    pub fn campuses(mut self, ids: impl IntoIterator<Item = i64>) -> Self {
        self.campuses = Some(ids.into_iter().collect());
        self
    }

    /// Starts the chosen scopes from scratch.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }
}
