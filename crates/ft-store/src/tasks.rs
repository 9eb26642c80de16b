//! The durable task queue: leases with fencing tokens.
//!
//! A task is `pending` until [`Store::claim`] hands it to a worker as `running` with a lease
//! (owner plus expiry) and a fresh fencing token. The worker renews the lease with
//! [`Store::heartbeat`] and ends it with [`Store::complete`], [`Store::park`], [`Store::retry`] or
//! [`Store::fail`]; every one of those, and [`Store::apply_page`], fails with
//! [`StoreError::LeaseLost`] once another worker has claimed the task. A running task whose lease
//! expired is claimable again, and the takeover counts as an attempt (the previous worker died
//! or stalled while running it).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use crate::apply::Fence;
use crate::error::StoreError;
use crate::schema::tasks;
use crate::store::{Store, with_conn, with_tx};

/// The scheduling lane of a task: hot work (recent changes) is kept apart from long backfills so
/// that one cannot starve the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Incremental work that should run soon.
    Hot,
    /// Long-running historical fills.
    Backfill,
}

impl Lane {
    /// `"hot"` or `"backfill"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Hot => "hot",
            Lane::Backfill => "backfill",
        }
    }
}

impl FromStr for Lane {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hot" => Ok(Lane::Hot),
            "backfill" => Ok(Lane::Backfill),
            other => Err(format!("unknown lane `{other}` (expected hot or backfill)")),
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Waiting for `next_run_at`.
    Pending,
    /// Leased to a worker.
    Running,
    /// Finished successfully.
    Done,
    /// Failed for good.
    Error,
}

impl TaskState {
    /// `"pending"`, `"running"`, `"done"` or `"error"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Done => "done",
            TaskState::Error => "error",
        }
    }
}

impl FromStr for TaskState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(TaskState::Pending),
            "running" => Ok(TaskState::Running),
            "done" => Ok(TaskState::Done),
            "error" => Ok(TaskState::Error),
            other => Err(format!(
                "unknown task state `{other}` (expected pending, running, done or error)"
            )),
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// What to do, for example `sync_users`.
    pub kind: String,
    /// Where, for example `campus:1`.
    pub scope: String,
    /// Kind-specific parameters.
    pub payload: serde_json::Value,
    /// The scheduling lane.
    pub lane: Lane,
    /// Higher runs first.
    pub priority: i32,
    /// Not before this time (UTC).
    pub next_run_at: NaiveDateTime,
    /// If set, the task is not enqueued while a pending or running task has the same key.
    pub dedupe_key: Option<String>,
}

/// A stored task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The task id.
    pub id: i64,
    /// See [`NewTask::kind`].
    pub kind: String,
    /// See [`NewTask::scope`].
    pub scope: String,
    /// See [`NewTask::payload`].
    pub payload: serde_json::Value,
    /// See [`NewTask::lane`].
    pub lane: Lane,
    /// See [`NewTask::priority`].
    pub priority: i32,
    /// The current state.
    pub state: TaskState,
    /// Failed attempts so far (retries and expired leases).
    pub attempts: i32,
    /// Not before this time (UTC).
    pub next_run_at: NaiveDateTime,
    /// The worker holding (or last holding) the lease.
    pub lease_owner: Option<String>,
    /// When the current lease ends.
    pub lease_expires_at: Option<NaiveDateTime>,
    /// Bumped by every claim; writes must present the current value.
    pub fencing_token: i64,
    /// The last error, or the reason the task was parked.
    pub last_error: Option<String>,
    /// See [`NewTask::dedupe_key`].
    pub dedupe_key: Option<String>,
    /// When the task was enqueued.
    pub created_at: NaiveDateTime,
    /// When the task last changed.
    pub updated_at: NaiveDateTime,
    /// When it reached `done` or `error`.
    pub finished_at: Option<NaiveDateTime>,
}

/// A task handed to a worker by [`Store::claim`], with the fence its writes must present.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedTask {
    /// The task, as it is after the claim.
    pub task: Task,
    /// The lease proof.
    pub fence: Fence,
}

/// Which tasks [`Store::tasks`] returns (all filters are optional and combine with AND).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this state.
    pub state: Option<TaskState>,
    /// Only this lane.
    pub lane: Option<Lane>,
    /// Only this scope.
    pub scope: Option<String>,
    /// At most this many (by id).
    pub limit: Option<i64>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = tasks)]
struct TaskRecord {
    id: i64,
    kind: String,
    scope: String,
    payload: String,
    lane: String,
    priority: i32,
    state: String,
    attempts: i32,
    next_run_at: NaiveDateTime,
    lease_owner: Option<String>,
    lease_expires_at: Option<NaiveDateTime>,
    fencing_token: i64,
    last_error: Option<String>,
    dedupe_key: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    finished_at: Option<NaiveDateTime>,
}

impl TryFrom<TaskRecord> for Task {
    type Error = StoreError;
    fn try_from(r: TaskRecord) -> Result<Task, StoreError> {
        let corrupt = |message: String| StoreError::Corrupt {
            table: "tasks",
            message: format!("task {}: {message}", r.id),
        };
        Ok(Task {
            payload: serde_json::from_str(&r.payload).map_err(|source| StoreError::Json {
                table: "tasks",
                id: r.id.to_string(),
                source,
            })?,
            lane: r.lane.parse().map_err(corrupt)?,
            state: r.state.parse().map_err(corrupt)?,
            id: r.id,
            kind: r.kind,
            scope: r.scope,
            priority: r.priority,
            attempts: r.attempts,
            next_run_at: r.next_run_at,
            lease_owner: r.lease_owner,
            lease_expires_at: r.lease_expires_at,
            fencing_token: r.fencing_token,
            last_error: r.last_error,
            dedupe_key: r.dedupe_key,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = tasks)]
#[diesel(treat_none_as_default_value = false)]
struct NewTaskRecord<'a> {
    kind: &'a str,
    scope: &'a str,
    payload: String,
    lane: &'static str,
    priority: i32,
    state: &'static str,
    attempts: i32,
    next_run_at: NaiveDateTime,
    fencing_token: i64,
    dedupe_key: Option<&'a str>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

const LIVE_STATES: [&str; 2] = ["pending", "running"];

fn lease_delta(lease: Duration) -> TimeDelta {
    // Leases longer than chrono can represent are clamped to a century, which is "forever".
    TimeDelta::from_std(lease).unwrap_or_else(|_| TimeDelta::days(36_500))
}

fn is_unique_violation(error: &diesel::result::Error) -> bool {
    matches!(
        error,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// Enqueues one task on `$conn`; evaluates to `Result<Option<i64>, StoreError>` (`None` when a
/// live task has the same dedupe key).
macro_rules! enqueue_body {
    ($conn:expr, $task:expr, $now:expr) => {{
        let conn = &mut *$conn;
        let task: &NewTask = $task;
        let now: NaiveDateTime = $now;
        let record = NewTaskRecord {
            kind: &task.kind,
            scope: &task.scope,
            payload: task.payload.to_string(),
            lane: task.lane.as_str(),
            priority: task.priority,
            state: TaskState::Pending.as_str(),
            attempts: 0,
            next_run_at: task.next_run_at,
            fencing_token: 0,
            dedupe_key: task.dedupe_key.as_deref(),
            created_at: now,
            updated_at: now,
        };
        (|| {
            if let Some(key) = &task.dedupe_key {
                let live: Option<i64> = tasks::table
                    .filter(tasks::dedupe_key.eq(key))
                    .filter(tasks::state.eq_any(LIVE_STATES))
                    .select(tasks::id)
                    .first(conn)
                    .optional()
                    .map_err(StoreError::q("enqueue", "tasks"))?;
                if live.is_some() {
                    return Ok(None);
                }
            }
            // The partial unique index settles races between concurrent enqueuers.
            match diesel::insert_into(tasks::table)
                .values(&record)
                .returning(tasks::id)
                .get_result::<i64>(conn)
            {
                Ok(id) => Ok(Some(id)),
                Err(e) if is_unique_violation(&e) => Ok(None),
                Err(e) => Err(StoreError::query("enqueue", "tasks", e)),
            }
        })()
    }};
}

/// The claim: pick the next runnable task and lease it; evaluates to
/// `Result<Option<ClaimedTask>, StoreError>`. `$lock` adds `FOR UPDATE SKIP LOCKED` on
/// PostgreSQL so concurrent claimers never wait for, or get, the same task.
macro_rules! claim_body {
    ($conn:expr, $owner:expr, $until:expr, $now:expr, |$q:ident| $lock:expr) => {{
        let now: NaiveDateTime = $now;
        let $q = tasks::table
            .filter(
                tasks::state
                    .eq(TaskState::Pending.as_str())
                    .and(tasks::next_run_at.le(now))
                    .or(tasks::state
                        .eq(TaskState::Running.as_str())
                        .and(tasks::lease_expires_at.lt(now))),
            )
            .order((
                tasks::priority.desc(),
                tasks::next_run_at.asc(),
                tasks::id.asc(),
            ))
            .select((tasks::id, tasks::state, tasks::lease_owner))
            .limit(1);
        let picked: Option<(i64, String, Option<String>)> = $lock
            .first($conn)
            .optional()
            .map_err(StoreError::q("claim", "tasks"))?;
        match picked {
            None => Ok(None),
            Some((id, state, previous_owner)) => {
                let taken_over = state == TaskState::Running.as_str();
                let record: TaskRecord = if taken_over {
                    diesel::update(tasks::table.find(id))
                        .set((
                            tasks::state.eq(TaskState::Running.as_str()),
                            tasks::lease_owner.eq($owner),
                            tasks::lease_expires_at.eq(Some($until)),
                            tasks::fencing_token.eq(tasks::fencing_token + 1),
                            tasks::attempts.eq(tasks::attempts + 1),
                            tasks::last_error.eq(Some(format!(
                                "lease of {} expired",
                                previous_owner.as_deref().unwrap_or("an unknown worker")
                            ))),
                            tasks::updated_at.eq(now),
                        ))
                        .returning(TaskRecord::as_returning())
                        .get_result($conn)
                } else {
                    diesel::update(tasks::table.find(id))
                        .set((
                            tasks::state.eq(TaskState::Running.as_str()),
                            tasks::lease_owner.eq($owner),
                            tasks::lease_expires_at.eq(Some($until)),
                            tasks::fencing_token.eq(tasks::fencing_token + 1),
                            tasks::updated_at.eq(now),
                        ))
                        .returning(TaskRecord::as_returning())
                        .get_result($conn)
                }
                .map_err(StoreError::q("claim", "tasks"))?;
                let task = Task::try_from(record)?;
                let fence = Fence {
                    task_id: task.id,
                    owner: $owner.to_owned(),
                    token: task.fencing_token,
                };
                Ok(Some(ClaimedTask { task, fence }))
            }
        }
    }};
}

/// Updates the task behind a fence; evaluates to `Result<(), StoreError>`, with LeaseLost when
/// the fence no longer matches a running task.
macro_rules! fenced_update {
    ($store:expr, $fence:expr, $op:expr, $set:expr) => {{
        let fence: &Fence = $fence;
        let changed = with_conn!($store, |conn| diesel::update(
            tasks::table
                .filter(tasks::id.eq(fence.task_id))
                .filter(tasks::lease_owner.eq(&fence.owner))
                .filter(tasks::fencing_token.eq(fence.token))
                .filter(tasks::state.eq(TaskState::Running.as_str()))
        )
        .set($set)
        .execute(conn)
        .map_err(StoreError::q($op, "tasks")))?;
        if changed == 0 {
            Err(StoreError::LeaseLost {
                task_id: fence.task_id,
            })
        } else {
            Ok(())
        }
    }};
}

impl Store {
    /// Enqueues a task. Returns its id, or `None` when a pending or running task has the same
    /// dedupe key.
    pub fn enqueue(&self, task: &NewTask) -> Result<Option<i64>, StoreError> {
        let now = crate::now();
        with_conn!(self, |conn| enqueue_body!(conn, task, now))
    }

    /// Enqueues several tasks in one transaction: all of them are queued (or found already
    /// queued, `None`) or, on any error, none is. A plan interrupted by a crash therefore never
    /// leaves half of its tasks behind.
    pub fn enqueue_all(&self, tasks: &[NewTask]) -> Result<Vec<Option<i64>>, StoreError> {
        let now = crate::now();
        with_tx!(self, |conn| {
            let mut ids = Vec::with_capacity(tasks.len());
            for task in tasks {
                ids.push(enqueue_body!(conn, task, now)?);
            }
            Ok(ids)
        })
    }

    /// Leases the next runnable task to `owner` for `lease`: a pending task due at `now`, or a
    /// running one whose lease expired before `now`; highest priority first, then earliest
    /// `next_run_at`, then lowest id. Bumps the fencing token.
    pub fn claim(
        &self,
        owner: &str,
        lease: Duration,
        now: NaiveDateTime,
    ) -> Result<Option<ClaimedTask>, StoreError> {
        let until = now + lease_delta(lease);
        with_tx!(self,
            pg: |conn| claim_body!(conn, owner, until, now, |q| q.for_update().skip_locked()),
            sqlite: |conn| claim_body!(conn, owner, until, now, |q| q)
        )
    }

    /// Extends the lease to now + `lease` (this process's UTC time). Succeeds while the task is
    /// still running under this fence, even if the lease ran out but nobody claimed the task yet;
    /// [`StoreError::LeaseLost`] once another worker has claimed it or it finished.
    pub fn heartbeat(&self, fence: &Fence, lease: Duration) -> Result<(), StoreError> {
        let now = crate::now();
        fenced_update!(
            self,
            fence,
            "heartbeat",
            (
                tasks::lease_expires_at.eq(Some(now + lease_delta(lease))),
                tasks::updated_at.eq(now),
            )
        )
    }

    /// Marks the task done.
    pub fn complete(&self, fence: &Fence) -> Result<(), StoreError> {
        let now = crate::now();
        fenced_update!(
            self,
            fence,
            "complete",
            (
                tasks::state.eq(TaskState::Done.as_str()),
                tasks::lease_expires_at.eq(None::<NaiveDateTime>),
                tasks::finished_at.eq(Some(now)),
                tasks::updated_at.eq(now),
            )
        )
    }

    /// Puts the task back to pending until `next_run_at` without counting an attempt (for
    /// example when the rate limit is exhausted or the engine shuts down). `reason` is kept in
    /// `last_error`.
    pub fn park(
        &self,
        fence: &Fence,
        next_run_at: NaiveDateTime,
        reason: &str,
    ) -> Result<(), StoreError> {
        let now = crate::now();
        fenced_update!(
            self,
            fence,
            "park",
            (
                tasks::state.eq(TaskState::Pending.as_str()),
                tasks::next_run_at.eq(next_run_at),
                tasks::lease_owner.eq(None::<String>),
                tasks::lease_expires_at.eq(None::<NaiveDateTime>),
                tasks::last_error.eq(Some(reason)),
                tasks::updated_at.eq(now),
            )
        )
    }

    /// Counts a failed attempt and puts the task back to pending until `next_run_at`.
    pub fn retry(
        &self,
        fence: &Fence,
        next_run_at: NaiveDateTime,
        error: &str,
    ) -> Result<(), StoreError> {
        let now = crate::now();
        fenced_update!(
            self,
            fence,
            "retry",
            (
                tasks::state.eq(TaskState::Pending.as_str()),
                tasks::attempts.eq(tasks::attempts + 1),
                tasks::next_run_at.eq(next_run_at),
                tasks::lease_owner.eq(None::<String>),
                tasks::lease_expires_at.eq(None::<NaiveDateTime>),
                tasks::last_error.eq(Some(error)),
                tasks::updated_at.eq(now),
            )
        )
    }

    /// Marks the task failed for good (state `error`). Does not count another attempt: call it
    /// instead of [`Store::retry`] once the attempts are used up.
    pub fn fail(&self, fence: &Fence, error: &str) -> Result<(), StoreError> {
        let now = crate::now();
        fenced_update!(
            self,
            fence,
            "fail",
            (
                tasks::state.eq(TaskState::Error.as_str()),
                tasks::lease_expires_at.eq(None::<NaiveDateTime>),
                tasks::last_error.eq(Some(error)),
                tasks::finished_at.eq(Some(now)),
                tasks::updated_at.eq(now),
            )
        )
    }

    /// One task by id.
    pub fn task(&self, id: i64) -> Result<Option<Task>, StoreError> {
        let record: Option<TaskRecord> = with_conn!(self, |conn| tasks::table
            .find(id)
            .select(TaskRecord::as_select())
            .first(conn)
            .optional()
            .map_err(StoreError::q("read task", "tasks")))?;
        record.map(Task::try_from).transpose()
    }

    /// Tasks matching `filter`, by id.
    pub fn tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, StoreError> {
        let records: Vec<TaskRecord> = with_conn!(self, |conn| {
            let mut query = tasks::table
                .select(TaskRecord::as_select())
                .order(tasks::id.asc())
                .into_boxed();
            if let Some(kind) = &filter.kind {
                query = query.filter(tasks::kind.eq(kind.clone()));
            }
            if let Some(state) = filter.state {
                query = query.filter(tasks::state.eq(state.as_str()));
            }
            if let Some(lane) = filter.lane {
                query = query.filter(tasks::lane.eq(lane.as_str()));
            }
            if let Some(scope) = &filter.scope {
                query = query.filter(tasks::scope.eq(scope.clone()));
            }
            if let Some(limit) = filter.limit {
                query = query.limit(limit);
            }
            query
                .load(conn)
                .map_err(StoreError::q("list tasks", "tasks"))
        })?;
        records.into_iter().map(Task::try_from).collect()
    }

    /// Task counts by kind and state, sorted by kind then state.
    pub fn task_counts(&self) -> Result<Vec<(String, TaskState, i64)>, StoreError> {
        let counts: Vec<(String, String, i64)> = with_conn!(self, |conn| tasks::table
            .group_by((tasks::kind, tasks::state))
            .select((tasks::kind, tasks::state, diesel::dsl::count_star()))
            .order((tasks::kind, tasks::state))
            .load(conn)
            .map_err(StoreError::q("count tasks", "tasks")))?;
        counts
            .into_iter()
            .map(|(kind, state, n)| {
                let state = state.parse().map_err(|message| StoreError::Corrupt {
                    table: "tasks",
                    message,
                })?;
                Ok((kind, state, n))
            })
            .collect()
    }

    /// Puts failed tasks (of `kind`, or all) back to pending at `now` with their attempts reset.
    /// A failed task whose dedupe key is held by a live task stays failed. Returns how many were
    /// requeued.
    pub fn requeue_errors(
        &self,
        kind: Option<&str>,
        now: NaiveDateTime,
    ) -> Result<usize, StoreError> {
        with_tx!(self, |conn| {
            let mut failed = tasks::table
                .filter(tasks::state.eq(TaskState::Error.as_str()))
                .select((tasks::id, tasks::dedupe_key))
                .order(tasks::id.asc())
                .into_boxed();
            if let Some(kind) = kind {
                failed = failed.filter(tasks::kind.eq(kind.to_owned()));
            }
            let failed: Vec<(i64, Option<String>)> = failed
                .load(conn)
                .map_err(StoreError::q("requeue errors", "tasks"))?;
            let mut held: std::collections::HashSet<String> = tasks::table
                .filter(tasks::state.eq_any(LIVE_STATES))
                .filter(tasks::dedupe_key.is_not_null())
                .select(tasks::dedupe_key.assume_not_null())
                .load::<String>(conn)
                .map_err(StoreError::q("requeue errors", "tasks"))?
                .into_iter()
                .collect();
            // Two failed tasks with one key: only the first goes back.
            let ids: Vec<i64> = failed
                .into_iter()
                .filter(|(_, key)| key.as_ref().is_none_or(|k| held.insert(k.clone())))
                .map(|(id, _)| id)
                .collect();
            let mut requeued = 0;
            for part in ids.chunks(crate::apply::IDS_PER_STATEMENT) {
                requeued += diesel::update(tasks::table.filter(tasks::id.eq_any(part)))
                    .set((
                        tasks::state.eq(TaskState::Pending.as_str()),
                        tasks::attempts.eq(0),
                        tasks::next_run_at.eq(now),
                        tasks::lease_owner.eq(None::<String>),
                        tasks::lease_expires_at.eq(None::<NaiveDateTime>),
                        tasks::finished_at.eq(None::<NaiveDateTime>),
                        tasks::updated_at.eq(now),
                    ))
                    .execute(conn)
                    .map_err(StoreError::q("requeue errors", "tasks"))?;
            }
            Ok(requeued)
        })
    }

    /// Deletes `done` tasks finished before `before`; returns how many.
    pub fn purge_done_tasks(&self, before: NaiveDateTime) -> Result<usize, StoreError> {
        with_conn!(self, |conn| diesel::delete(
            tasks::table
                .filter(tasks::state.eq(TaskState::Done.as_str()))
                .filter(tasks::finished_at.lt(before))
        )
        .execute(conn)
        .map_err(StoreError::q("purge done tasks", "tasks")))
    }
}
