//! The worker: claims tasks from the durable queue and runs them within the budget.
//!
//! A claimed task holds a lease that a heartbeat keeps alive. Every page it commits is fenced
//! by the lease's token, so a worker that lost its lease (it stalled, and another worker took
//! the task over) cannot commit anything. How a task ends decides what happens to it:
//! done → `done`; shutdown → parked (pending again, no attempt spent); rate limited → parked
//! until the wait is over; a retryable error → retried later with backoff, then `error` after
//! `max_attempts`; an error that retrying cannot heal (a 404 campus, a filter the API rejects,
//! a row it cannot decode) → `error` with the message, and the rest of the run goes on.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ft_api::{ApiError, PagingError};
use ft_store::{ClaimedTask, Fence, Store};
use tokio::sync::watch;

use crate::blocking;
use crate::engine::Inner;
use crate::error::{Result, SyncError};
use crate::listing;
use crate::pipeline::{PassCtx, PassEnd, PassStats};
use crate::progress::Progress;
use crate::task::TaskPayload;

/// What one worker loop did.
#[derive(Debug, Default, Clone)]
pub(crate) struct WorkerTally {
    pub(crate) done: u64,
    pub(crate) failed: u64,
    pub(crate) parked: u64,
    pub(crate) rows: u64,
    pub(crate) pages: u64,
    pub(crate) errors: Vec<String>,
    /// Claims put back because the task's inputs were still being written.
    pub(crate) waited_on_dependencies: u64,
}

impl WorkerTally {
    pub(crate) fn absorb(&mut self, other: WorkerTally) {
        self.done += other.done;
        self.failed += other.failed;
        self.parked += other.parked;
        self.rows += other.rows;
        self.pages += other.pages;
        self.errors.extend(other.errors);
        self.waited_on_dependencies += other.waited_on_dependencies;
    }
}

/// Whether a worker waits for parked or backing-off tasks before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drain {
    /// Return as soon as no task is runnable now.
    Once,
    /// Keep going until the queue holds no pending task at all.
    UntilIdle,
}

/// How long a task that stayed rate limited through the client's retries is parked.
const RATE_LIMITED_PARK: Duration = Duration::from_secs(30);

/// How soon a task waiting for the tasks it reads from is looked at again.
const DEPENDENCY_POLL_MS: i64 = 500;

/// Longest single sleep while waiting for a parked task, so shutdown stays responsive.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Runs tasks until the queue is drained (see [`Drain`]) or shutdown is asked for.
pub(crate) async fn work(
    inner: Arc<Inner>,
    shutdown: watch::Receiver<bool>,
    drain: Drain,
) -> Result<WorkerTally> {
    let mut tally = WorkerTally::default();
    loop {
        if *shutdown.borrow() {
            return Ok(tally);
        }
        // Leases and schedules are about real time, whatever clock the data windows use.
        let now = Utc::now();
        let claimed = {
            let store = inner.store.clone();
            let owner = inner.config.worker_id.clone();
            let lease = inner.config.lease;
            blocking(move || store.claim(&owner, lease, now.naive_utc())).await?
        };
        let Some(claimed) = claimed else {
            if drain == Drain::Once {
                return Ok(tally);
            }
            match next_due(&inner.store).await? {
                None => return Ok(tally),
                Some(due) => {
                    let wait = (due - now).to_std().unwrap_or_default().min(IDLE_POLL);
                    let mut stop = shutdown.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(wait.max(Duration::from_millis(20))) => {}
                        _ = stop.wait_for(|s| *s) => return Ok(tally),
                    }
                    continue;
                }
            }
        };
        run_one(&inner, claimed, shutdown.clone(), &mut tally).await?;
    }
}

/// The earliest `next_run_at` among pending tasks, if any are pending.
async fn next_due(store: &Store) -> Result<Option<DateTime<Utc>>> {
    let store = store.clone();
    let due = blocking(move || store.next_pending_at()).await?;
    Ok(due.map(|t| t.and_utc()))
}

async fn run_one(
    inner: &Arc<Inner>,
    claimed: ClaimedTask,
    shutdown: watch::Receiver<bool>,
    tally: &mut WorkerTally,
) -> Result<()> {
    let ClaimedTask { task, fence } = claimed;
    let payload: TaskPayload = match serde_json::from_value(task.payload.clone()) {
        Ok(p) => p,
        Err(e) => {
            let msg = format!(
                "task {} ({} {}) has a payload this version cannot read: {e}",
                task.id, task.kind, task.scope
            );
            settle(inner, &fence, Settle::Fail(msg.clone())).await?;
            tally.failed += 1;
            tally.errors.push(msg);
            return Ok(());
        }
    };
    if !payload.after.is_empty() {
        let store = inner.store.clone();
        let keys = payload.after.clone();
        let waiting_for = blocking(move || store.live_keys(&keys)).await?;
        if !waiting_for.is_empty() {
            // It reads rows those tasks write: put it back, without spending an attempt, and
            // look again shortly.
            let at = Utc::now() + chrono::Duration::milliseconds(DEPENDENCY_POLL_MS);
            let why = format!("waiting for {}", waiting_for.join(", "));
            settle(inner, &fence, Settle::Park(at, why)).await?;
            tally.waited_on_dependencies += 1;
            return Ok(());
        }
    }
    tracing::info!(task_id = task.id, kind = %task.kind, scope = %task.scope, attempt = task.attempts + 1, "task started");
    let _ = inner.progress.send(Progress::TaskStarted {
        task_id: task.id,
        kind: task.kind.clone(),
        scope: task.scope.clone(),
        total: None,
    });

    let heartbeat = spawn_heartbeat(inner.store.clone(), fence.clone(), inner.config.lease);
    let mut ctx = PassCtx {
        client: &inner.client,
        store: &inner.store,
        fence: &fence,
        progress: &inner.progress,
        shutdown,
        per_page: inner.config.per_page,
        archive: inner.config.archive.as_ref(),
        priority: task.priority,
        lane: task.lane,
        max_relation_users: payload.max_users.unwrap_or(inner.config.max_relation_users),
        scope: payload.scope(),
        members: payload.member_scopes(),
        stats: PassStats::default(),
    };
    let result = listing::run_pass(&mut ctx, &payload).await;
    heartbeat.abort();

    let now = Utc::now();
    let (settle_as, message) = match result {
        Ok((end, stats)) => {
            tally.rows += stats.rows;
            tally.pages += stats.pages;
            match end {
                PassEnd::Complete => (Settle::Done, None),
                PassEnd::Interrupted => (
                    Settle::Park(now, "interrupted by shutdown".to_owned()),
                    Some("interrupted".to_owned()),
                ),
                PassEnd::Yielded => (
                    Settle::Park(now, "yielded to more urgent work".to_owned()),
                    Some("yielded".to_owned()),
                ),
            }
        }
        Err(SyncError::LeaseLost { task_id }) => {
            tracing::warn!(
                task_id,
                "lease lost to another worker; nothing was committed"
            );
            let _ = inner.progress.send(Progress::TaskFinished {
                task_id,
                ok: false,
                message: Some("lease lost".to_owned()),
            });
            return Ok(());
        }
        Err(e) => match classify(&e) {
            Class::Fatal => {
                // Credentials rejected or the database failing: every other task would fail
                // the same way. Put this one back untouched and stop the run.
                let _ = settle(inner, &fence, Settle::Park(now, e.to_string())).await;
                return Err(e);
            }
            Class::Wait(wait) => {
                let at = now + chrono::Duration::from_std(wait).unwrap_or_default();
                let _ = inner.progress.send(Progress::Waiting {
                    wait,
                    reason: format!("{}: {e}", task.kind),
                });
                (Settle::Park(at, e.to_string()), Some(e.to_string()))
            }
            Class::Retry if task.attempts + 1 < inner.config.max_attempts => {
                let backoff = retry_backoff(task.attempts);
                let at = now + chrono::Duration::from_std(backoff).unwrap_or_default();
                tracing::warn!(task_id = task.id, error = %e, retry_in_s = backoff.as_secs(), "task will be retried");
                (Settle::Retry(at, e.to_string()), Some(e.to_string()))
            }
            Class::Retry | Class::Permanent => {
                let msg = format!("{} {}: {e}", task.kind, task.scope);
                tracing::error!(task_id = task.id, error = %e, "task failed");
                tally.errors.push(msg.clone());
                (Settle::Fail(msg), Some(e.to_string()))
            }
        },
    };
    let ok = matches!(settle_as, Settle::Done);
    match &settle_as {
        Settle::Done => tally.done += 1,
        Settle::Fail(_) => tally.failed += 1,
        Settle::Park(..) | Settle::Retry(..) => tally.parked += 1,
    }
    match settle(inner, &fence, settle_as).await {
        Ok(()) => {}
        Err(SyncError::LeaseLost { .. })
        | Err(SyncError::Store(ft_store::StoreError::LeaseLost { .. })) => {
            tracing::warn!(
                task_id = task.id,
                "lease lost before the task could be settled"
            );
        }
        Err(e) => return Err(e),
    }
    tracing::info!(task_id = task.id, ok, "task finished");
    let _ = inner.progress.send(Progress::TaskFinished {
        task_id: task.id,
        ok,
        message,
    });
    Ok(())
}

enum Settle {
    Done,
    Park(DateTime<Utc>, String),
    Retry(DateTime<Utc>, String),
    Fail(String),
}

async fn settle(inner: &Inner, fence: &Fence, how: Settle) -> Result<()> {
    let store = inner.store.clone();
    let fence = fence.clone();
    blocking(move || match how {
        Settle::Done => store.complete(&fence),
        Settle::Park(at, why) => store.park(&fence, at.naive_utc(), &why),
        Settle::Retry(at, why) => store.retry(&fence, at.naive_utc(), &why),
        Settle::Fail(why) => store.fail(&fence, &why),
    })
    .await
}

enum Class {
    /// Nothing else can work either; stop the run.
    Fatal,
    /// The API asked us to wait (rate limit): park without spending an attempt.
    Wait(Duration),
    /// Transient: try again later.
    Retry,
    /// Retrying cannot help.
    Permanent,
}

fn classify(e: &SyncError) -> Class {
    match e {
        // The credentials themselves were refused: no task can work until an operator acts.
        SyncError::Api(ApiError::SecretRejected { .. } | ApiError::Token { .. }) => Class::Fatal,
        // The client already waited as long as its retry budget allows: park, don't fail.
        SyncError::Api(ApiError::RateLimited { .. }) => Class::Wait(RATE_LIMITED_PARK),
        SyncError::Api(api) if api.is_retryable() => Class::Retry,
        // A body that is not JSON at all (path `.`) was most likely cut off in transit; a
        // re-read heals it. A well-formed page with a bad item will not heal.
        SyncError::Api(ApiError::Decode { path, .. }) if path == "." => Class::Retry,
        SyncError::Api(_) => Class::Permanent,
        SyncError::Store(_) | SyncError::Join(_) => Class::Fatal,
        // The archive folder is unwritable or full: every task would fail the same way.
        SyncError::Archive { .. } => Class::Fatal,
        // An inconsistent page (X-Total says more, the page is empty) may heal on a re-read.
        SyncError::Data { .. } => Class::Retry,
        // A server that ignores `range[id]` inside an id window, or says one id holds more
        // rows than a page, answers the same on every re-read: retrying would spend requests
        // for minutes (8 attempts) before failing. The task ends now; the next run plans it
        // again.
        SyncError::Paging {
            source: PagingError::OutsideWindow { .. } | PagingError::WindowCannotSplit { .. },
            ..
        } => Class::Permanent,
        // A page that breaks keyset paging (empty while rows remain, ids out of order) may
        // be a passing glitch (rows deleted mid-walk); one that keeps failing ends the task.
        SyncError::Paging { .. } => Class::Retry,
        SyncError::LeaseLost { .. }
        | SyncError::Invalid { .. }
        | SyncError::TasksFailed { .. }
        | SyncError::UnknownCampuses { .. } => Class::Permanent,
    }
}

/// Task-level backoff, on top of the client's own per-request retries: 2 s, 4 s, 8 s … 5 min.
fn retry_backoff(attempts: i32) -> Duration {
    let exp = attempts.clamp(0, 8) as u32;
    Duration::from_secs((2u64 << exp).min(300))
}

/// Keeps the lease alive while the task runs: a heartbeat every third of the lease.
fn spawn_heartbeat(store: Store, fence: Fence, lease: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let period = (lease / 3).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(period).await;
            let (s, f) = (store.clone(), fence.clone());
            match blocking(move || s.heartbeat(&f, lease)).await {
                Ok(()) => {}
                Err(e) => {
                    // The fence check at commit time is what protects the data; the heartbeat
                    // failing only means the next commit will be refused.
                    tracing::warn!(task_id = fence.task_id, error = %e, "heartbeat failed");
                    return;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_errors_no_re_read_heals_end_the_task_at_once() {
        let paging = |source| SyncError::Paging {
            endpoint: "/v2/users".to_owned(),
            source,
        };
        for source in [
            PagingError::OutsideWindow {
                lo: 1,
                hi: 9,
                id: 42,
            },
            PagingError::WindowCannotSplit { lo: 7, total: 500 },
        ] {
            assert!(matches!(classify(&paging(source)), Class::Permanent));
        }
        for source in [
            PagingError::EmptyPage { remaining: 3 },
            PagingError::NotAscending { previous: 5, id: 4 },
            PagingError::BelowCursor { after: 5, id: 5 },
        ] {
            assert!(matches!(classify(&paging(source)), Class::Retry));
        }
    }

    #[test]
    fn retry_backoff_grows_and_is_capped() {
        assert_eq!(retry_backoff(0), Duration::from_secs(2));
        assert_eq!(retry_backoff(1), Duration::from_secs(4));
        assert_eq!(retry_backoff(3), Duration::from_secs(16));
        assert_eq!(retry_backoff(20), Duration::from_secs(300));
    }
}
