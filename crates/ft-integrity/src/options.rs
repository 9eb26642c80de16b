//! [`Options`]: what to check, against which targets, and which maintenance to run.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ft_store::Table;

/// How old a cursor's watermark may get before its scope counts as stale: the one definition
/// the engine and `ft42 status` use too (refresh interval per resource plus the schedule's
/// grace), re-exported from ft-store.
pub use ft_store::Freshness;

/// Which database maintenance to run after the checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// Refresh the planner's statistics (`ANALYZE`).
    pub analyze: bool,
    /// Reclaim free space (`VACUUM`; on SQLite it rewrites the whole file and needs as much
    /// free disk space as the database).
    pub vacuum: bool,
    /// Rebuild every index (`REINDEX`).
    pub reindex: bool,
}

impl Maintenance {
    /// Whether any maintenance is asked for.
    pub fn any(&self) -> bool {
        self.analyze || self.vacuum || self.reindex
    }
}

/// The optional spot check: rows fetched again from the API and compared with the stored JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpotCheck {
    /// Rows per table, chosen at random among live rows. Capped at [`SpotCheck::MAX_PER_TABLE`]
    /// so that each table costs exactly one request.
    pub per_table: usize,
    /// Tables to check; tables without rows are skipped (with an Info finding).
    pub tables: Vec<Table>,
}

impl SpotCheck {
    /// The most ids one `filter[id]` request returns (the API's largest page).
    pub const MAX_PER_TABLE: usize = 100;

    /// `per_table` rows of users, cursus_users, projects_users and achievements_users.
    pub fn new(per_table: usize) -> SpotCheck {
        SpotCheck {
            per_table,
            tables: vec![
                Table::Users,
                Table::CursusUsers,
                Table::ProjectsUsers,
                Table::AchievementsUsers,
            ],
        }
    }
}

impl Default for SpotCheck {
    /// Ten rows per default table: four requests in all.
    fn default() -> Self {
        SpotCheck::new(10)
    }
}

/// Everything [`crate::run`] needs besides the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The time freshness is measured against; `None` means the system clock. Tests and
    /// simulators with their own clock set it.
    pub now: Option<DateTime<Utc>>,
    /// Freshness targets per resource (ft42 passes the same targets as `status` and the engine).
    pub freshness: Freshness,
    /// How long after its lease expired a `running` task counts as stuck (a worker that is
    /// about to renew its lease is not stuck).
    pub stale_lease_grace: Duration,
    /// How far in the future a watermark may be before it is an error (clock skew between
    /// machines).
    pub future_tolerance: Duration,
    /// The raw page archive (`<dir>/<resource>/**.ndjson.gz`) to count against; `None` skips
    /// the comparison.
    pub exports_dir: Option<PathBuf>,
    /// The spot check to run; `None` (the default) makes no request. [`crate::run`] is
    /// synchronous and never runs it: call [`crate::spot_check`] and add its findings with
    /// [`crate::Report::add`].
    pub spot_check: Option<SpotCheck>,
    /// Compare stored counts per scope with the API's `X-Total`; `None` (the default) makes no
    /// request.
    pub api_totals: Option<ApiTotals>,
    /// Maintenance to run after the checks.
    pub maintenance: Maintenance,
}

/// The `X-Total` comparison: one `per_page=1` request per scope (reference listings, then per
/// stored campus: users, campus_users, cursus_users, projects_users, blocs, locations,
/// coalitions_users), at most `max_requests` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiTotals {
    /// Requests the check may spend.
    pub max_requests: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            now: None,
            freshness: Freshness::default(),
            stale_lease_grace: Duration::from_secs(5 * 60),
            future_tolerance: Duration::from_secs(5 * 60),
            exports_dir: None,
            spot_check: None,
            api_totals: None,
            maintenance: Maintenance::default(),
        }
    }
}
