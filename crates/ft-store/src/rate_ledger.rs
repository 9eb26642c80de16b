//! The rate ledger: one request budget per application shared by every process that uses the
//! same database ([`RateLedger`], an [`ft_api::SharedBudget`]).
//!
//! Each request is *reserved* before it is sent: a row `(app, at)` in `rate_reservations`,
//! where `at` is the instant the request may go. Reservations of one application are made one
//! at a time (a transaction-scoped advisory lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite)
//! and in time order, so a new one only has to respect the reservations before it:
//!
//! > `at = max(now, latest, r_s + W_s, r_h + W_h)`, where `r_s` is the `L_s`-th most recent
//! > reservation, `W_s` the short window plus the jitter margin, and likewise for the long
//! > window.
//!
//! Then any window of length `W_s` holds at most `L_s` reservations (the `L_s` before `at`
//! all lie at least `W_s` before it, and later ones are placed after it by the same rule), and
//! the same for the long window. Requests leave at their reserved instant, and the margin
//! covers the variation in delay until they reach the server, so the server never sees more
//! than the limits however many processes share the application. Reservations are persisted:
//! a restarted worker sees the previous hour and does not burst. Rows older than the long
//! window are pruned by the next reservation.
//!
//! Time is the database server's clock on PostgreSQL (`clock_timestamp()`), so processes on
//! machines with skewed clocks still agree; a reservation returns a *duration* to wait, which
//! each process measures on its own monotonic clock.
//!
//! The server's rate-limit headers stay the final word: the client's local pacer still lowers
//! its budget when `Remaining` shows another consumer, and pauses after a 429.

use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use ft_api::{ReserveFuture, SharedBudget, SharedBudgetError, SharedLimits};

use crate::error::StoreError;
use crate::store::{Backend, Store, with_tx};

diesel::table! {
    /// See the migration `rate_ledger`. Also the SQLite request log's table
    /// ([`crate::RequestLog`]).
    rate_reservations (id) {
        id -> BigInt,
        app -> Text,
        at -> Timestamp,
    }
}

/// First key of the transaction-scoped advisory lock that serialises one application's
/// reservations on PostgreSQL ("ft42" in ASCII); the second key is a hash of the client id.
/// The two-key form lives in a different key space from the migration lock's one-key form.
const PG_LEDGER_LOCK: i32 = 0x6674_3432;

/// Bounds how long one process can hold an application's ledger lock: a process that stalls
/// inside the transaction (stopped, swapped out, a frozen VM) would otherwise block every other
/// process's requests for that application until it resumes. The server ends a transaction left
/// idle that long (the stalled process then gets an error and retries), and a waiter gives up
/// rather than hang if the lock is held even longer.
fn guard_pg_transaction(conn: &mut diesel::PgConnection) -> Result<(), StoreError> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute(
        "SET LOCAL idle_in_transaction_session_timeout = '5s'; SET LOCAL lock_timeout = '15s'",
    )
    .map_err(StoreError::q("ledger timeouts", "rate_reservations"))
}

/// The database server's current UTC time, at the precision the ledger stores.
pub(crate) const PG_NOW: &str = "(clock_timestamp() AT TIME ZONE 'UTC')::timestamp(6)";

/// A duration as a chrono delta, rounded *up* to the microsecond (the precision both backends
/// store), so a rounded reservation is never earlier than the rule allows.
pub(crate) fn micros_up(d: Duration) -> TimeDelta {
    let micros = d.as_nanos().div_ceil(1_000);
    TimeDelta::microseconds(i64::try_from(micros).unwrap_or(i64::MAX / 2))
}

/// The reservation rule of the module docs, on one backend's connection; evaluates to
/// `Result<NaiveDateTime, StoreError>` (the reserved instant). `$now` is the current time.
macro_rules! reserve_body {
    ($conn:expr, $app:expr, $limits:expr, $now:expr) => {{
        let conn = &mut *$conn;
        let app: &str = $app;
        let limits: &SharedLimits = $limits;
        let now: NaiveDateTime = $now;
        let short = micros_up(limits.second + limits.margin);
        let long = micros_up(limits.hour + limits.margin);
        // The k-th most recent reservation (1-based), if there are k.
        let mut kth = |k: u32| -> Result<Option<NaiveDateTime>, StoreError> {
            rate_reservations::table
                .filter(rate_reservations::app.eq(app))
                .order(rate_reservations::at.desc())
                .offset(i64::from(k.max(1) - 1))
                .select(rate_reservations::at)
                .first::<NaiveDateTime>(conn)
                .optional()
                .map_err(StoreError::q("reserve", "rate_reservations"))
        };
        let latest = kth(1)?;
        let short_bound = kth(limits.per_second)?.map(|r| r + short);
        let long_bound = kth(limits.per_hour)?.map(|r| r + long);
        let at = [Some(now), latest, short_bound, long_bound]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(now);
        diesel::insert_into(rate_reservations::table)
            .values((rate_reservations::app.eq(app), rate_reservations::at.eq(at)))
            .execute(conn)
            .map_err(StoreError::q("reserve", "rate_reservations"))?;
        // Nothing older than the long window can bound a reservation at or after `now`.
        diesel::delete(
            rate_reservations::table
                .filter(rate_reservations::app.eq(app))
                .filter(rate_reservations::at.lt(now - long)),
        )
        .execute(conn)
        .map_err(StoreError::q("prune", "rate_reservations"))?;
        Ok::<NaiveDateTime, StoreError>(at)
    }};
}

impl Store {
    /// Reserves one request of `app` under `limits` (see the module docs) and returns how long
    /// from now the caller must wait before sending it.
    pub fn reserve_request(
        &self,
        app: &str,
        limits: &SharedLimits,
    ) -> Result<Duration, StoreError> {
        let (at, now) = with_tx!(self,
            pg: |conn| {
                guard_pg_transaction(conn)?;
                diesel::sql_query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                    .bind::<diesel::sql_types::Integer, _>(PG_LEDGER_LOCK)
                    .bind::<diesel::sql_types::Text, _>(app)
                    .execute(conn)
                    .map_err(StoreError::q("ledger lock", "rate_reservations"))?;
                // The database's clock, shared by every process whatever their own clocks say.
                let now: NaiveDateTime = diesel::select(diesel::dsl::sql::<
                    diesel::sql_types::Timestamp,
                >(PG_NOW))
                .get_result(conn)
                .map_err(StoreError::q("ledger clock", "rate_reservations"))?;
                let at = reserve_body!(conn, app, limits, now)?;
                Ok((at, now))
            },
            sqlite: |conn| {
                let now = crate::now();
                let at = reserve_body!(conn, app, limits, now)?;
                Ok((at, now))
            }
        )?;
        Ok((at - now).to_std().unwrap_or_default())
    }

    /// Blocks every process's requests for `app` until `wait` from now (the server answered
    /// 429 with this `Retry-After`): a reservation at that instant, which every later one must
    /// follow (reservations are made in time order). It costs one request of the budget in the
    /// ledger's accounting, which only errs on the safe side.
    pub fn pause_requests(&self, app: &str, wait: Duration) -> Result<(), StoreError> {
        let wait = micros_up(wait);
        with_tx!(self,
            pg: |conn| {
                guard_pg_transaction(conn)?;
                diesel::sql_query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                    .bind::<diesel::sql_types::Integer, _>(PG_LEDGER_LOCK)
                    .bind::<diesel::sql_types::Text, _>(app)
                    .execute(conn)
                    .map_err(StoreError::q("ledger lock", "rate_reservations"))?;
                let now: NaiveDateTime = diesel::select(diesel::dsl::sql::<
                    diesel::sql_types::Timestamp,
                >(PG_NOW))
                .get_result(conn)
                .map_err(StoreError::q("ledger clock", "rate_reservations"))?;
                diesel::insert_into(rate_reservations::table)
                    .values((rate_reservations::app.eq(app), rate_reservations::at.eq(now + wait)))
                    .execute(conn)
                    .map_err(StoreError::q("pause", "rate_reservations"))?;
                Ok(())
            },
            sqlite: |conn| {
                diesel::insert_into(rate_reservations::table)
                    .values((
                        rate_reservations::app.eq(app),
                        rate_reservations::at.eq(crate::now() + wait),
                    ))
                    .execute(conn)
                    .map_err(StoreError::q("pause", "rate_reservations"))?;
                Ok(())
            }
        )
    }

    /// The requests of `app` recorded (reserved, or logged by [`crate::RequestLog`]) within
    /// `within` of now, each as an offset from now (negative: in the past; positive: reserved
    /// but not sent yet), oldest first. "Now" is the database server's clock on PostgreSQL,
    /// like the reservations.
    pub fn request_history(
        &self,
        app: &str,
        within: Duration,
    ) -> Result<Vec<TimeDelta>, StoreError> {
        let within = micros_up(within);
        macro_rules! load {
            ($conn:expr, $now:expr) => {{
                let now: NaiveDateTime = $now;
                rate_reservations::table
                    .filter(rate_reservations::app.eq(app))
                    .filter(rate_reservations::at.gt(now - within))
                    .order(rate_reservations::at.asc())
                    .select(rate_reservations::at)
                    .load::<NaiveDateTime>($conn)
                    .map_err(StoreError::q("history", "rate_reservations"))
                    .map(|times| (times, now))
            }};
        }
        let (times, now) = match &self.pool {
            crate::store::Pool::Pg(pool) => {
                let mut conn = self.pg(pool)?;
                // The database's clock, as for reservations.
                let now: NaiveDateTime =
                    diesel::select(diesel::dsl::sql::<diesel::sql_types::Timestamp>(PG_NOW))
                        .get_result(&mut *conn)
                        .map_err(StoreError::q("ledger clock", "rate_reservations"))?;
                load!(&mut *conn, now)?
            }
            crate::store::Pool::Sqlite(pool) => {
                let mut conn = self.sqlite(pool)?;
                load!(&mut *conn, crate::now())?
            }
        };
        Ok(times.into_iter().map(|t| t - now).collect())
    }

    /// The reserved instants of `app` still in the ledger, oldest first (for tests and
    /// diagnostics).
    pub fn reservations(&self, app: &str) -> Result<Vec<NaiveDateTime>, StoreError> {
        crate::store::with_conn!(self, |conn| rate_reservations::table
            .filter(rate_reservations::app.eq(app))
            .order(rate_reservations::at.asc())
            .select(rate_reservations::at)
            .load(conn)
            .map_err(StoreError::q("read", "rate_reservations")))
    }
}

/// The rate ledger as an [`ft_api::SharedBudget`]: give it to
/// [`ft_api::FtClientBuilder::shared_budget`] in every process that shares the database.
///
/// It works on both backends, but only PostgreSQL serves several processes: an SQLite database
/// is held by one process at a time (see [`Store::writer_lock`]), whose own pacer already keeps
/// the limits, so [`RateLedger::needed`] says no there.
#[derive(Debug, Clone)]
pub struct RateLedger {
    store: Store,
}

impl RateLedger {
    /// A ledger in `store` (migrated: the table comes with the `rate_ledger` migration).
    pub fn new(store: Store) -> RateLedger {
        RateLedger { store }
    }

    /// Whether a shared budget is needed for this backend: true for PostgreSQL (any number of
    /// workers), false for SQLite (one process at a time).
    pub fn needed(backend: Backend) -> bool {
        backend == Backend::Postgres
    }

    /// The store the ledger lives in.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl SharedBudget for RateLedger {
    fn history<'a>(&'a self, app: &'a str, within: Duration) -> ft_api::HistoryFuture<'a> {
        let store = self.store.clone();
        let app = app.to_owned();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.request_history(&app, within))
                .await
                .map_err(|e| SharedBudgetError {
                    message: format!("the rate ledger task failed: {e}"),
                })?
                .map_err(|e| SharedBudgetError {
                    message: format!("reading the rate ledger in the database failed: {e}"),
                })
        })
    }

    fn pause<'a>(&'a self, app: &'a str, wait: Duration) -> ReserveFuture<'a> {
        let store = self.store.clone();
        let app = app.to_owned();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.pause_requests(&app, wait))
                .await
                .map_err(|e| SharedBudgetError {
                    message: format!("the rate ledger task failed: {e}"),
                })?
                .map_err(|e| SharedBudgetError {
                    message: format!("the rate ledger in the database failed: {e}"),
                })?;
            Ok(Duration::ZERO)
        })
    }

    fn reserve<'a>(&'a self, app: &'a str, limits: SharedLimits) -> ReserveFuture<'a> {
        let store = self.store.clone();
        let app = app.to_owned();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.reserve_request(&app, &limits))
                .await
                .map_err(|e| SharedBudgetError {
                    message: format!("the rate ledger task failed: {e}"),
                })?
                .map_err(|e| SharedBudgetError {
                    message: format!("the rate ledger in the database failed: {e}"),
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TestDb;

    fn limits(per_second: u32, per_hour: u32, hour_ms: u64) -> SharedLimits {
        SharedLimits {
            per_second,
            per_hour,
            second: Duration::from_secs(1),
            hour: Duration::from_millis(hour_ms),
            margin: Duration::from_millis(50),
        }
    }

    /// The most reservations inside any window of length `w` (two instants share a window
    /// when they differ by less than `w`, as the simulator counts).
    fn max_in(times: &[NaiveDateTime], w: Duration) -> usize {
        let w = TimeDelta::from_std(w).unwrap();
        let (mut best, mut start) = (0, 0);
        for end in 0..times.len() {
            while times[end] - times[start] >= w {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }

    #[test]
    fn reservations_keep_both_windows_on_both_backends() {
        for db in TestDb::all() {
            let store = db.store();
            let l = limits(3, 7, 4_000);
            let mut waits = Vec::new();
            for _ in 0..20 {
                waits.push(store.reserve_request("u-app", &l).unwrap());
            }
            let times = store.reservations("u-app").unwrap();
            assert_eq!(times.len(), 20, "{}", db.backend());
            assert!(max_in(&times, l.second + l.margin) <= 3, "{}", db.backend());
            assert!(max_in(&times, l.hour + l.margin) <= 7, "{}", db.backend());
            // The first three go at once; the fourth waits for the short window, the eighth
            // for the long one.
            assert!(waits[..3].iter().all(|w| *w < Duration::from_millis(200)));
            assert!(waits[3] >= Duration::from_millis(900), "{waits:?}");
            assert!(waits[7] >= Duration::from_millis(3_500), "{waits:?}");
            // Another application has its own budget.
            assert!(store.reserve_request("u-other", &l).unwrap() < Duration::from_millis(200));
        }
    }

    #[test]
    fn a_new_process_sees_the_reservations_of_the_one_before() {
        let db = TestDb::postgres();
        let l = limits(2, 4, 60_000);
        for _ in 0..4 {
            db.store().reserve_request("u-app", &l).unwrap();
        }
        // A restarted worker opens a new pool: the hourly budget is still spent.
        let fresh = crate::Store::open(db.url()).unwrap();
        let wait = fresh.reserve_request("u-app", &l).unwrap();
        assert!(wait >= Duration::from_secs(59), "{wait:?}");
    }

    #[test]
    fn concurrent_reservers_never_share_a_slot() {
        let db = TestDb::postgres();
        let l = limits(5, 1_000, 60_000);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let store = crate::Store::open(db.url()).unwrap();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        store.reserve_request("u-app", &l).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let times = db.store().reservations("u-app").unwrap();
        assert_eq!(times.len(), 40);
        assert!(max_in(&times, l.second + l.margin) <= 5);
    }

    #[test]
    fn a_pause_holds_back_every_later_reservation() {
        for db in TestDb::all() {
            let l = limits(100, 10_000, 60_000);
            db.store()
                .pause_requests("u-app", Duration::from_millis(1_500))
                .unwrap();
            let wait = db.store().reserve_request("u-app", &l).unwrap();
            assert!(wait >= Duration::from_millis(1_400), "{wait:?}");
            assert!(
                db.store().reserve_request("u-other", &l).unwrap() < Duration::from_millis(200)
            );
        }
    }

    #[test]
    fn old_reservations_are_pruned() {
        let db = TestDb::sqlite();
        let l = limits(100, 100, 10);
        for _ in 0..5 {
            db.store().reserve_request("u-app", &l).unwrap();
        }
        std::thread::sleep(Duration::from_millis(120));
        db.store().reserve_request("u-app", &l).unwrap();
        assert_eq!(db.store().reservations("u-app").unwrap().len(), 1);
    }
}
