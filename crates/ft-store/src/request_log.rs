//! The request log: what an application spent in the last hour, remembered across restarts
//! on SQLite ([`RequestLog`], an [`ft_api::SharedBudget`]).
//!
//! An SQLite database has at most one syncing process (see [`Store::writer_lock`]), whose
//! pacer keeps the limits by itself, but a fresh process would not know what the one before it
//! sent: after a crash or between cron runs it would either guess (and go slowly) or spend an
//! hour that is already spent (and earn 429s). So every request is logged, *before* it is sent,
//! as a row `(app, at)` in `rate_reservations` (the PostgreSQL rate ledger's table: a request
//! at an instant means the same in both), and a new client reads the last hour back before its
//! first request ([`ft_api::SharedBudget::history`]). Rows older than the hour are pruned as new
//! ones are written. Unlike the [`crate::RateLedger`], logging never makes a request wait.

use std::time::Duration;

use diesel::prelude::*;
use ft_api::{HistoryFuture, ReserveFuture, SharedBudget, SharedBudgetError, SharedLimits};

use crate::error::StoreError;
use crate::rate_ledger::{micros_up, rate_reservations};
use crate::store::{Store, with_tx};

impl Store {
    /// Logs one request of `app` sent now and forgets the requests older than `keep`.
    pub fn log_request(&self, app: &str, keep: Duration) -> Result<(), StoreError> {
        let keep = micros_up(keep);
        with_tx!(self, |conn| {
            let now = crate::now();
            diesel::insert_into(rate_reservations::table)
                .values((
                    rate_reservations::app.eq(app),
                    rate_reservations::at.eq(now),
                ))
                .execute(conn)
                .map_err(StoreError::q("log request", "rate_reservations"))?;
            diesel::delete(
                rate_reservations::table
                    .filter(rate_reservations::app.eq(app))
                    .filter(rate_reservations::at.lt(now - keep)),
            )
            .execute(conn)
            .map_err(StoreError::q("prune", "rate_reservations"))?;
            Ok(())
        })
    }
}

/// The request log as an [`ft_api::SharedBudget`]: give it to
/// [`ft_api::FtClientBuilder::shared_budget`] in the one process that syncs an SQLite
/// database. (On PostgreSQL use the [`crate::RateLedger`], which also serves many processes.)
#[derive(Debug, Clone)]
pub struct RequestLog {
    store: Store,
}

impl RequestLog {
    /// A log in `store` (migrated: the table comes with the `rate_ledger` migration).
    pub fn new(store: Store) -> RequestLog {
        RequestLog { store }
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> SharedBudgetError {
    SharedBudgetError {
        message: format!("{what} the request log in the database failed: {e}"),
    }
}

impl SharedBudget for RequestLog {
    fn reserve<'a>(&'a self, app: &'a str, limits: SharedLimits) -> ReserveFuture<'a> {
        let store = self.store.clone();
        let app = app.to_owned();
        let keep = limits.hour + limits.margin;
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.log_request(&app, keep))
                .await
                .map_err(|e| failed("writing", e))?
                .map_err(|e| failed("writing", e))?;
            Ok(Duration::ZERO)
        })
    }

    fn history<'a>(&'a self, app: &'a str, within: Duration) -> HistoryFuture<'a> {
        let store = self.store.clone();
        let app = app.to_owned();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.request_history(&app, within))
                .await
                .map_err(|e| failed("reading", e))?
                .map_err(|e| failed("reading", e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TestDb;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn logged_requests_come_back_to_a_new_process_and_old_ones_are_pruned() {
        let db = TestDb::sqlite();
        let log = RequestLog::new(db.store().clone());
        let limits = SharedLimits {
            per_second: 2,
            per_hour: 10,
            second: Duration::from_secs(1),
            hour: Duration::from_millis(300),
            margin: Duration::from_millis(50),
        };
        for _ in 0..3 {
            assert_eq!(log.reserve("u-app", limits).await.unwrap(), Duration::ZERO);
        }
        log.reserve("u-other", limits).await.unwrap();
        // A restarted process opens the database again and reads its last window back.
        let fresh = RequestLog::new(crate::Store::open(db.url()).unwrap());
        let history = fresh
            .history("u-app", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(history.len(), 3);
        assert!(history.iter().all(|o| *o <= chrono::TimeDelta::zero()));
        assert!(history.windows(2).all(|w| w[0] <= w[1]));
        // Older than the window plus margin: pruned by the next request.
        tokio::time::sleep(Duration::from_millis(400)).await;
        fresh.reserve("u-app", limits).await.unwrap();
        assert_eq!(db.store().reservations("u-app").unwrap().len(), 1);
        assert_eq!(
            fresh
                .history("u-app", Duration::from_secs(60))
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_rate_ledger_history_holds_reservations_not_sent_yet() {
        let db = TestDb::postgres();
        let ledger = crate::RateLedger::new(db.store().clone());
        let limits = SharedLimits {
            per_second: 1,
            per_hour: 100,
            second: Duration::from_secs(1),
            hour: Duration::from_secs(60),
            margin: Duration::from_millis(50),
        };
        for _ in 0..3 {
            ledger.reserve("u-app", limits).await.unwrap();
        }
        let history = ledger
            .history("u-app", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(history.len(), 3);
        // The third reservation lies about two seconds ahead.
        assert!(history[2] > chrono::TimeDelta::seconds(1), "{history:?}");
    }
}
