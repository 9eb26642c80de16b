//! The budget planner's published estimate: how many requests the queued work still needs, and
//! how long that takes at the rate the budget allows.
//!
//! The planning itself lives in the queue: deltas and small re-checks are queued in the hot lane
//! (priority + 1000), full reads of large scopes in the backfill lane; workers claim by priority,
//! and a backfill task checks after every committed page whether hot work is due and steps
//! aside if so (its cursor holds its place). Freshness targets per resource
//! ([`crate::EngineConfig::freshness`]) keep delta runs from spending budget on what is fresh.

use std::time::Duration;

use chrono::Utc;
use ft_store::{Lane, Store, StoreError, TaskFilter, TaskState};
use serde::Serialize;

/// What the queued work still costs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Backlog {
    /// Pending or running tasks in the hot lane.
    pub hot_tasks: u64,
    /// Pending or running tasks in the backfill lane.
    pub backfill_tasks: u64,
    /// Requests the hot tasks still need (at least one per task).
    pub hot_requests: u64,
    /// Requests the backfill tasks still need (at least one per task).
    pub backfill_requests: u64,
    /// Tasks whose size is not known yet (they have not read a page): counted as one request.
    pub unknown_size: u64,
    /// The rate the estimate assumes, in requests per hour: the rate of the last 15 minutes of
    /// the fetch log when there is one, else the budget.
    pub requests_per_hour: f64,
    /// `(hot + backfill requests) / rate`.
    #[serde(with = "secs")]
    pub eta: Option<Duration>,
}

mod secs {
    pub(super) fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(d.as_secs()),
            None => s.serialize_none(),
        }
    }
}

impl Backlog {
    /// One line for logs and `ft42 status`.
    pub fn describe(&self) -> String {
        let total = self.hot_requests + self.backfill_requests;
        if total == 0 {
            return "nothing queued".to_owned();
        }
        let eta = self.eta.map_or_else(
            || "unknown time".to_owned(),
            |d| format!("about {}", human(d)),
        );
        let unknown = if self.unknown_size > 0 {
            format!(
                " ({} task(s) not started yet, counted as one request each)",
                self.unknown_size
            )
        } else {
            String::new()
        };
        format!(
            "backfill done in {} requests, hot work {} requests: {eta} at {:.0} requests/hour{unknown}",
            self.backfill_requests, self.hot_requests, self.requests_per_hour
        )
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=89 => format!("{s} s"),
        90..=5399 => format!("{} min", (s + 30) / 60),
        _ => format!("{:.1} h", s as f64 / 3600.0),
    }
}

/// Estimates the queued work. `budget_per_hour` is the application's hourly limit (used when
/// the fetch log has no recent rate); `per_page` the page size the engine asks for.
pub fn backlog(store: &Store, per_page: u32, budget_per_hour: u32) -> Result<Backlog, StoreError> {
    let mut out = Backlog::default();
    for state in [TaskState::Pending, TaskState::Running] {
        let tasks = store.tasks(&TaskFilter {
            state: Some(state),
            ..TaskFilter::default()
        })?;
        for task in tasks {
            let remaining = match store.cursor(&task.kind, &task.scope)? {
                Some(c) if c.pass_until.is_some() => match c.expected_rows {
                    Some(expected) => {
                        ((expected - c.rows).max(0) as u64).div_ceil(u64::from(per_page.max(1)))
                    }
                    None => {
                        out.unknown_size += 1;
                        1
                    }
                },
                _ => {
                    out.unknown_size += 1;
                    1
                }
            }
            .max(1);
            match task.lane {
                Lane::Hot => {
                    out.hot_tasks += 1;
                    out.hot_requests += remaining;
                }
                Lane::Backfill => {
                    out.backfill_tasks += 1;
                    out.backfill_requests += remaining;
                }
            }
        }
    }
    out.requests_per_hour = recent_rate(store)?.unwrap_or(f64::from(budget_per_hour));
    let total = out.hot_requests + out.backfill_requests;
    out.eta = (out.requests_per_hour > 0.0)
        .then(|| Duration::from_secs_f64(total as f64 * 3600.0 / out.requests_per_hour));
    Ok(out)
}

/// Requests per hour over the last 15 minutes of the fetch log, if it saw at least 10.
fn recent_rate(store: &Store) -> Result<Option<f64>, StoreError> {
    let window = chrono::Duration::minutes(15);
    let since = Utc::now().naive_utc() - window;
    let recent = store
        .fetch_log(5_000)?
        .into_iter()
        .filter(|e| e.at >= since)
        .count();
    Ok((recent >= 10).then_some(recent as f64 * 4.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_names_requests_and_time() {
        let b = Backlog {
            backfill_requests: 600,
            hot_requests: 12,
            requests_per_hour: 1200.0,
            eta: Some(Duration::from_secs(1836)),
            ..Backlog::default()
        };
        assert_eq!(
            b.describe(),
            "backfill done in 600 requests, hot work 12 requests: about 31 min at 1200 requests/hour"
        );
        assert_eq!(Backlog::default().describe(), "nothing queued");
    }
}
