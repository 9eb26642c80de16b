//! [`Store::apply_page`]: one page of a sync, written in one transaction.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::cursors::{CursorUpdate, save_cursor_stmt};
use crate::error::StoreError;
use crate::rows::{Rows, Table, upsert_any};
use crate::schema::{fetch_log, relation_queue};
use crate::store::{Store, with_tx};

/// Proof that the caller holds a task's lease: the task, the lease owner and the fencing token
/// handed out by [`Store::claim`]. Every write made on behalf of a task checks it, so a worker
/// whose lease was taken over cannot overwrite the new owner's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The task.
    pub task_id: i64,
    /// The lease owner given to [`Store::claim`].
    pub owner: String,
    /// The fencing token the claim produced.
    pub token: i64,
}

/// One row of the fetch log: one HTTP request made by the engine.
#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = fetch_log)]
#[diesel(treat_none_as_default_value = false)]
pub struct FetchLogEntry {
    /// When the request was made (UTC).
    pub at: NaiveDateTime,
    /// The endpoint path, for example `/v2/campus/1/users`.
    pub endpoint: String,
    /// The sync scope the request served.
    pub scope: String,
    /// The page number, for paged requests.
    pub page: Option<i64>,
    /// The final HTTP status.
    pub status: i32,
    /// Items in the response.
    pub items: i64,
    /// Retries before the final response.
    pub retries: i32,
    /// Time spent waiting for the rate limiter and retry backoff, in milliseconds.
    pub wait_ms: i64,
    /// Whether the access token was refreshed for this request.
    pub token_refreshed: bool,
    /// The task the request belonged to.
    pub task_id: Option<i64>,
    /// The API's request id header, if any.
    pub request_id: Option<String>,
}

/// Everything one fetched page changes, applied atomically by [`Store::apply_page`].
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyPage {
    /// The page's rows (duplicates allowed: the last copy of an id wins).
    pub rows: Rows,
    /// The cursor after this page.
    pub cursor: Option<CursorUpdate>,
    /// The request that fetched the page.
    pub fetch_log: Option<FetchLogEntry>,
    /// The lease the page was fetched under; the whole page is refused if it was lost.
    pub fence: Option<Fence>,
    /// Users whose relations need a refresh, with the reason.
    pub enqueue_users: Vec<(i64, String)>,
    /// Rows of a table that the API no longer has: their `deleted_at` is set.
    pub mark_deleted: Option<(Table, Vec<i64>)>,
    /// Rows of other tables that came embedded in the page (the coalitions inside blocs),
    /// written in the same transaction.
    pub also: Vec<Rows>,
    /// More cursors saved with the page: the per-campus cursors a completed campus-set pass
    /// advances.
    pub also_cursors: Vec<CursorUpdate>,
    /// A cursor (resource, scope) deleted with the page: a completed campus-set pass's own
    /// resume cursor, whose record now lives in its members' cursors.
    pub drop_cursor: Option<(String, String)>,
    /// Rows of the page that could not be decoded or mapped, set aside in `quarantine`. Rows of
    /// `rows` that were quarantined before leave it.
    pub quarantine: Vec<crate::Quarantined>,
    /// Users whose copies embedded in other rows are rewritten from their stored row once
    /// `rows` are written (anonymised users: see [`Store::refresh_embedded_users`]).
    pub refresh_embedded: Vec<i64>,
}

impl ApplyPage {
    /// A page with only rows.
    pub fn rows(rows: Rows) -> ApplyPage {
        ApplyPage {
            rows,
            cursor: None,
            fetch_log: None,
            fence: None,
            enqueue_users: Vec::new(),
            mark_deleted: None,
            also: Vec::new(),
            also_cursors: Vec::new(),
            drop_cursor: None,
            quarantine: Vec::new(),
            refresh_embedded: Vec::new(),
        }
    }
}

/// What [`Store::apply_page`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Rows in the page, duplicates included.
    pub received: usize,
    /// Duplicate ids dropped before writing (the last copy was kept).
    pub duplicates: usize,
    /// Rows inserted or updated.
    pub written: usize,
    /// Rows skipped because the stored row has a newer `updated_at`.
    pub stale: usize,
    /// Rows newly marked deleted.
    pub marked_deleted: usize,
    /// Users added to (or refreshed in) the relation queue.
    pub enqueued: usize,
    /// Rows whose embedded copy of a user was rewritten ([`ApplyPage::refresh_embedded`]).
    pub embedded_rewritten: usize,
}

/// Ids per `IN (...)` list: below SQLite's bind limit with room to spare.
pub(crate) const IDS_PER_STATEMENT: usize = 10_000;

/// Checks a fence inside a transaction; evaluates to `Result<(), StoreError>`. `$lock` adds a
/// row lock on PostgreSQL (so a concurrent claim skips the task until this transaction ends).
macro_rules! check_fence {
    ($conn:expr, $fence:expr, $now:expr, |$q:ident| $lock:expr) => {{
        use crate::error::StoreError;
        use crate::schema::tasks;
        use diesel::prelude::*;
        let fence: &crate::apply::Fence = $fence;
        let $q = tasks::table
            .filter(tasks::id.eq(fence.task_id))
            .filter(tasks::lease_owner.eq(&fence.owner))
            .filter(tasks::fencing_token.eq(fence.token))
            .filter(tasks::state.eq(crate::tasks::TaskState::Running.as_str()))
            .filter(tasks::lease_expires_at.gt($now))
            .select(tasks::id);
        let found: Option<i64> = $lock
            .first($conn)
            .optional()
            .map_err(StoreError::q("check fence", "tasks"))?;
        match found {
            Some(_) => Ok(()),
            None => Err(StoreError::LeaseLost {
                task_id: fence.task_id,
            }),
        }
    }};
}

/// Sets `deleted_at` on live rows among `$ids`; evaluates to `Result<usize, StoreError>`.
macro_rules! mark_deleted_stmt {
    ($conn:expr, $table:expr, $ids:expr, $at:expr) => {{
        use crate::error::StoreError;
        use diesel::prelude::*;
        let table: crate::rows::Table = $table;
        let ids: &[i64] = $ids;
        let at: chrono::NaiveDateTime = $at;
        let mut marked = 0usize;
        for part in ids.chunks(crate::apply::IDS_PER_STATEMENT) {
            marked += crate::rows::for_table!(table, |t, _Row| {
                diesel::update(
                    t::table
                        .filter(t::id.eq_any(part))
                        .filter(t::deleted_at.is_null()),
                )
                .set(t::deleted_at.eq(Some(at)))
                .execute($conn)
                .map_err(StoreError::q("mark deleted", table.as_str()))?
            });
        }
        Ok::<usize, StoreError>(marked)
    }};
}

#[derive(Insertable)]
#[diesel(table_name = relation_queue)]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct NewQueueEntry<'a> {
    pub(crate) user_id: i64,
    pub(crate) enqueued_at: NaiveDateTime,
    pub(crate) reason: &'a str,
    pub(crate) attempts: i32,
    pub(crate) taken_at: Option<NaiveDateTime>,
}

/// Adds users to the relation queue, or moves them to the back and clears their `taken_at`;
/// evaluates to `Result<usize, StoreError>`.
macro_rules! enqueue_users_stmt {
    ($conn:expr, $users:expr, $now:expr) => {{
        use crate::apply::NewQueueEntry;
        use crate::error::StoreError;
        use crate::schema::relation_queue as q;
        use diesel::prelude::*;
        use diesel::upsert::excluded;
        let users: &[(i64, String)] = $users;
        // The last reason given for a user wins, as with rows.
        let mut seen = std::collections::HashSet::new();
        let mut entries: Vec<NewQueueEntry<'_>> = users
            .iter()
            .rev()
            .filter(|(id, _)| seen.insert(*id))
            .map(|(user_id, reason)| NewQueueEntry {
                user_id: *user_id,
                enqueued_at: $now,
                reason,
                attempts: 0,
                taken_at: None,
            })
            .collect();
        entries.reverse();
        let mut written = 0usize;
        for part in entries.chunks(1_000) {
            written += diesel::insert_into(q::table)
                .values(part)
                .on_conflict(q::user_id)
                .do_update()
                .set((
                    q::enqueued_at.eq(excluded(q::enqueued_at)),
                    q::reason.eq(excluded(q::reason)),
                    q::taken_at.eq(None::<chrono::NaiveDateTime>),
                ))
                .execute($conn)
                .map_err(StoreError::q("enqueue users", "relation_queue"))?;
        }
        Ok::<usize, StoreError>(written)
    }};
}
pub(crate) use enqueue_users_stmt;

impl Store {
    /// Applies one page in ONE transaction: checks the fence, upserts the rows, marks deletions,
    /// replaces the cursor, appends the fetch-log row and enqueues users. If any step fails,
    /// nothing is written; a lost lease is [`StoreError::LeaseLost`].
    ///
    /// The fence holds if the task is still running under the fence's owner and token and its
    /// lease ends after this process's current UTC time (so give [`Store::claim`] the real time,
    /// not a simulated one, when the page will be applied with a fence). On PostgreSQL the task
    /// row stays share-locked until commit, so no claim can take the task over mid-page.
    pub fn apply_page(&self, page: ApplyPage) -> Result<ApplyOutcome, StoreError> {
        let now = crate::now();
        let ApplyPage {
            rows,
            cursor,
            fetch_log,
            fence,
            enqueue_users,
            mark_deleted,
            also,
            also_cursors,
            drop_cursor,
            quarantine,
            refresh_embedded,
        } = page;
        let table = rows.table();
        let stored = rows.ids();
        let received = rows.len() + also.iter().map(Rows::len).sum::<usize>();
        with_tx!(self,
            pg: |conn| {
                if let Some(fence) = &fence {
                    check_fence!(conn, fence, now, |q| q.for_share())?;
                }
                let mut count = upsert_any!(conn, rows, pg)?;
                for extra in also {
                    count = count.plus(upsert_any!(conn, extra, pg)?);
                }
                crate::quarantine::quarantine_stmt!(conn, &quarantine, table, &stored, now)?;
                let embedded_rewritten = crate::embedded::refresh_embedded_pg(conn, &refresh_embedded)?;
                apply_rest!(conn, count, received, cursor, also_cursors, drop_cursor, fetch_log, enqueue_users, mark_deleted, embedded_rewritten, now)
            },
            sqlite: |conn| {
                if let Some(fence) = &fence {
                    check_fence!(conn, fence, now, |q| q)?;
                }
                let mut count = upsert_any!(conn, rows, sqlite)?;
                for extra in also {
                    count = count.plus(upsert_any!(conn, extra, sqlite)?);
                }
                crate::quarantine::quarantine_stmt!(conn, &quarantine, table, &stored, now)?;
                let embedded_rewritten = crate::embedded::refresh_embedded_sqlite(conn, &refresh_embedded)?;
                apply_rest!(conn, count, received, cursor, also_cursors, drop_cursor, fetch_log, enqueue_users, mark_deleted, embedded_rewritten, now)
            }
        )
    }

    /// Marks live rows of `table` deleted at `at`; returns how many changed.
    pub fn mark_deleted(
        &self,
        table: Table,
        ids: &[i64],
        at: NaiveDateTime,
    ) -> Result<usize, StoreError> {
        with_tx!(self, |conn| mark_deleted_stmt!(conn, table, ids, at))
    }
}

/// The part of apply_page after the upsert, shared by both backends.
macro_rules! apply_rest {
    ($conn:expr, $count:expr, $received:expr, $cursor:expr, $also_cursors:expr, $drop_cursor:expr, $fetch_log:expr, $enqueue:expr, $mark:expr, $embedded:expr, $now:expr) => {{
        let count: crate::upsert::UpsertCount = $count;
        let marked_deleted = match &$mark {
            Some((table, ids)) => mark_deleted_stmt!($conn, *table, ids, $now)?,
            None => 0,
        };
        if let Some(cursor) = &$cursor {
            save_cursor_stmt!($conn, cursor, $now)?;
        }
        for cursor in &$also_cursors {
            save_cursor_stmt!($conn, cursor, $now)?;
        }
        if let Some((resource, scope)) = &$drop_cursor {
            use crate::schema::cursors as c;
            diesel::delete(
                c::table
                    .filter(c::resource.eq(resource))
                    .filter(c::scope.eq(scope)),
            )
            .execute($conn)
            .map_err(StoreError::q("delete cursor", "cursors"))?;
        }
        if let Some(entry) = &$fetch_log {
            diesel::insert_into(fetch_log::table)
                .values(entry)
                .execute($conn)
                .map_err(StoreError::q("append", "fetch_log"))?;
        }
        let enqueued = if $enqueue.is_empty() {
            0
        } else {
            enqueue_users_stmt!($conn, &$enqueue, $now)?
        };
        Ok(ApplyOutcome {
            received: $received,
            duplicates: count.duplicates,
            written: count.written,
            stale: count.unique - count.written,
            marked_deleted,
            enqueued,
            embedded_rewritten: $embedded,
        })
    }};
}
use apply_rest;
