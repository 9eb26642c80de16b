//! A request budget shared by several processes (a rate ledger), taken on top of the local pacer.
//!
//! The local pacer ([`crate::pacer`]) proves that *one process* never exceeds an application's
//! limits. When several processes (workers on one or many machines) use the same application,
//! each of them would spend the whole budget. A [`SharedBudget`] is asked for a reservation
//! before every request, after the local pacer granted its token: it returns how long the caller
//! must wait before sending, and it has recorded the send at that future instant, so every other
//! process sees it. An implementation must guarantee that the reserved instants of one
//! application never hold more than `per_second` in any window of `second + margin`, nor more
//! than `per_hour` in any window of `hour + margin`; the margin covers the variation in delay
//! between the reserved instant and the request reaching the server (the same jitter margin as
//! the local pacer's proof).
//!
//! The local pacer stays in force: it still follows the server's rate-limit headers (which stay
//! the final word: another consumer seen in `Remaining` lowers the budget) and pauses every
//! request after a 429; the 429's pause is also passed to [`SharedBudget::pause`] so that the
//! other processes wait too. Without a shared budget a client behaves exactly as before.
//!
//! A shared budget also remembers: [`SharedBudget::history`] returns the requests of an
//! application sent in the last window (by earlier processes, or other processes on a shared
//! ledger), and a new process's pacer starts from that real spend instead of a guess, so its
//! first request is safe even when the hour is saturated.
//!
//! `ft-store` implements this trait on PostgreSQL (`ft_store::RateLedger`, shared by every
//! process) and as a request log on SQLite (`ft_store::RequestLog`, one process at a time,
//! remembered across restarts).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The limits a reservation must respect: the application's server limits in force (configured,
/// or replaced by the server's `X-*-RateLimit-Limit` headers) and the window lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedLimits {
    /// Requests allowed in any window of `second`.
    pub per_second: u32,
    /// Requests allowed in any window of `hour`.
    pub per_hour: u32,
    /// The length of the short window (one second on the real API).
    pub second: Duration,
    /// The length of the long window (one hour on the real API; tests compress it).
    pub hour: Duration,
    /// Added to both windows: the allowance for variation in request latency.
    pub margin: Duration,
}

/// Why a shared reservation could not be made (the database is unreachable, for example).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedBudgetError {
    /// What went wrong, in words an operator can act on. Never holds a secret.
    pub message: String,
}

impl fmt::Display for SharedBudgetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SharedBudgetError {}

/// The future a [`SharedBudget`] returns.
pub type ReserveFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Duration, SharedBudgetError>> + Send + 'a>>;

/// The future [`SharedBudget::history`] returns: each request's instant as an offset from now
/// (negative: in the past; positive: a reservation not sent yet).
pub type HistoryFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<chrono::TimeDelta>, SharedBudgetError>> + Send + 'a>>;

/// A budget shared by every process that uses the same applications.
///
/// Set it with [`crate::FtClientBuilder::shared_budget`]. `app` is the application's client id
/// (its UID, never its secret), so processes that share an application share its budget.
pub trait SharedBudget: Send + Sync + fmt::Debug {
    /// Records one request of `app` at the earliest instant that keeps `limits`, and returns
    /// how long from now that instant is (zero when the request may go at once). The caller
    /// sleeps that long and then sends.
    fn reserve<'a>(&'a self, app: &'a str, limits: SharedLimits) -> ReserveFuture<'a>;

    /// The server answered 429 for `app` and asked for `wait`: no process should send for
    /// `app` before then. The default does nothing (the local pacer pauses this process
    /// anyway); the returned duration is ignored.
    fn pause<'a>(&'a self, app: &'a str, wait: Duration) -> ReserveFuture<'a> {
        let _ = (app, wait);
        Box::pin(async { Ok(Duration::ZERO) })
    }

    /// The requests of `app` recorded within `within` of now (each as an offset from now),
    /// read once by a new client before its first request of `app`. The default remembers
    /// nothing.
    fn history<'a>(&'a self, app: &'a str, within: Duration) -> HistoryFuture<'a> {
        let _ = (app, within);
        Box::pin(async { Ok(Vec::new()) })
    }
}
