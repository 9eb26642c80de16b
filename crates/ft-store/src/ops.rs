//! Reads for operations (metrics, the status page): requests per hour from the fetch log.

use chrono::{DurationRound, NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use crate::error::StoreError;
use crate::schema::fetch_log;
use crate::store::{Store, with_conn};

/// Requests sent in one clock hour (UTC), from the fetch log: each logged page counts once plus
/// its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HourlyRequests {
    /// Start of the hour (UTC).
    pub hour: NaiveDateTime,
    /// Requests in that hour.
    pub requests: i64,
}

impl Store {
    /// Requests per clock hour for the `hours` hours up to and including the one holding `now`,
    /// oldest first; hours without requests are listed with zero, so a chart has no gaps.
    pub fn hourly_requests(
        &self,
        now: NaiveDateTime,
        hours: u32,
    ) -> Result<Vec<HourlyRequests>, StoreError> {
        let current = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now);
        let first = current - TimeDelta::hours(i64::from(hours.max(1)) - 1);
        let rows: Vec<(NaiveDateTime, i32)> = with_conn!(self, |conn| fetch_log::table
            .filter(fetch_log::at.ge(first))
            .select((fetch_log::at, fetch_log::retries))
            .load(conn)
            .map_err(StoreError::q("read", "fetch_log")))?;
        let mut out: Vec<HourlyRequests> = (0..i64::from(hours.max(1)))
            .map(|i| HourlyRequests {
                hour: first + TimeDelta::hours(i),
                requests: 0,
            })
            .collect();
        for (at, retries) in rows {
            let index = (at - first).num_hours();
            if let Some(slot) = usize::try_from(index).ok().and_then(|i| out.get_mut(i)) {
                slot.requests += 1 + i64::from(retries.max(0));
            }
        }
        Ok(out)
    }
}
