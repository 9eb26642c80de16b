//! [`Freshness`]: the one definition of how fresh each resource should be, read by the engine
//! (what a delta run may skip), `ft42 status` (what is stale, `--check`) and the integrity checks
//! (stale watermarks).
//!
//! Each resource (a cursor's `resource`: `users`, `achievements_users`, ...) has a **refresh
//! interval**: a delta run skips a scope whose last complete pass is younger than it (zero: every
//! run). A scope is **stale** once its last complete pass is older than its interval plus the
//! **grace**: the time the schedule needs to come round again (three delta intervals, or 36 h
//! when only the nightly full sync runs). So nothing the engine skips on purpose is ever called
//! stale, and status, integrity and the engine cannot disagree.
//!
//! The defaults are [`DEFAULT_REFRESH`]; the config file's `[freshness]` table overrides them
//! (applied once, by ft-cli).

use std::collections::BTreeMap;
use std::time::Duration;

/// Default refresh intervals; resources not listed are refreshed on every run.
///
/// achievements_users cost one request per 100 users of a campus when their network-wide window
/// is large, blocs (with their coalitions' scores) change slowly, and deletion checks (one
/// `X-Total` probe per scope and table when nothing was deleted) find what deltas cannot see but
/// rarely anything new from one run to the next: all at most hourly in delta runs (a full run
/// always does them).
pub const DEFAULT_REFRESH: &[(&str, Duration)] = &[
    ("achievements_users", Duration::from_secs(3600)),
    ("blocs", Duration::from_secs(3600)),
    ("cursus_users_deletions", Duration::from_secs(3600)),
    ("projects_users_deletions", Duration::from_secs(3600)),
    ("coalitions_users_deletions", Duration::from_secs(3600)),
    ("locations_deletions", Duration::from_secs(3600)),
];

/// Grace when no delta schedule is known: a nightly full sync plus half a day of slack.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(36 * 3600);

/// Per-resource refresh intervals and the staleness grace. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    /// Refresh intervals by resource (`users`) or by resource and scope (`users:campus:1`);
    /// the more specific key wins; absent means every run.
    refresh: BTreeMap<String, Duration>,
    /// Added to the refresh interval to get the age at which a scope is stale.
    grace: Duration,
}

impl Default for Freshness {
    /// [`DEFAULT_REFRESH`] and [`DEFAULT_GRACE`].
    fn default() -> Self {
        Freshness {
            refresh: DEFAULT_REFRESH
                .iter()
                .map(|(r, d)| ((*r).to_owned(), *d))
                .collect(),
            grace: DEFAULT_GRACE,
        }
    }
}

impl Freshness {
    /// The defaults with this grace.
    pub fn with_grace(grace: Duration) -> Freshness {
        Freshness {
            grace,
            ..Freshness::default()
        }
    }

    /// Sets the refresh interval of `key` (a resource, or `resource:scope`).
    pub fn set(&mut self, key: impl Into<String>, refresh: Duration) -> &mut Self {
        self.refresh.insert(key.into(), refresh);
        self
    }

    /// Replaces the grace.
    pub fn set_grace(&mut self, grace: Duration) -> &mut Self {
        self.grace = grace;
        self
    }

    /// The grace added to every refresh interval.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// How old `resource` in `scope` may get before a delta run refreshes it (zero: every run).
    pub fn refresh(&self, resource: &str, scope: &str) -> Duration {
        self.refresh
            .get(&format!("{resource}:{scope}"))
            .or_else(|| self.refresh.get(resource))
            .copied()
            .unwrap_or(Duration::ZERO)
    }

    /// The age past which `resource` in `scope` is stale: its refresh interval plus the grace.
    pub fn target(&self, resource: &str, scope: &str) -> Duration {
        self.refresh(resource, scope).saturating_add(self.grace)
    }

    /// Whether a last complete pass `age` ago (`None`: never) makes the scope stale.
    pub fn is_stale(&self, resource: &str, scope: &str, age: Option<Duration>) -> bool {
        age.is_none_or(|age| age > self.target(resource, scope))
    }

    /// The non-zero refresh intervals by key, the form the engine reads.
    pub fn refresh_intervals(&self) -> BTreeMap<String, Duration> {
        self.refresh
            .iter()
            .filter(|(_, d)| !d.is_zero())
            .map(|(k, d)| (k.clone(), *d))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);

    #[test]
    fn defaults_refresh_costly_resources_hourly_and_the_rest_every_run() {
        let f = Freshness::default();
        assert_eq!(f.refresh("achievements_users", "campus:1"), H);
        assert_eq!(f.refresh("blocs", "campus:1"), H);
        assert_eq!(f.refresh("users", "campus:1"), Duration::ZERO);
        assert_eq!(
            f.refresh_intervals().keys().collect::<Vec<_>>(),
            [
                "achievements_users",
                "blocs",
                "coalitions_users_deletions",
                "cursus_users_deletions",
                "locations_deletions",
                "projects_users_deletions"
            ]
        );
        assert_eq!(f.target("users", "campus:1"), DEFAULT_GRACE);
        assert_eq!(f.target("blocs", "campus:1"), H + DEFAULT_GRACE);
    }

    #[test]
    fn a_scope_is_stale_only_past_refresh_plus_grace() {
        let mut f = Freshness::with_grace(30 * Duration::from_secs(60));
        f.set("locations", 2 * H).set("users:campus:7", H);
        let m = Duration::from_secs(60);
        // What the engine skips on purpose (younger than its refresh interval) is never stale.
        assert!(!f.is_stale("locations", "campus:1", Some(2 * H)));
        assert!(!f.is_stale("locations", "campus:1", Some(2 * H + 30 * m)));
        assert!(f.is_stale("locations", "campus:1", Some(2 * H + 31 * m)));
        // The scope-specific key wins over the resource.
        assert!(!f.is_stale("users", "campus:7", Some(H + 20 * m)));
        assert!(f.is_stale("users", "campus:1", Some(H + 20 * m)));
        // A scope that never completed a pass is stale.
        assert!(f.is_stale("users", "campus:1", None));
        // Zero intervals are not handed to the engine: "every run" is its default.
        f.set("blocs", Duration::ZERO);
        assert!(!f.refresh_intervals().contains_key("blocs"));
    }
}
