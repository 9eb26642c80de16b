//! The fetch log, sync runs, integrity runs and the relation queue.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use crate::error::StoreError;
use crate::schema::{fetch_log, integrity_runs, relation_queue, sync_runs};
use crate::store::{Store, with_conn, with_tx};

/// A stored fetch-log row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = fetch_log)]
pub struct FetchLogRecord {
    /// Row id (increasing).
    pub id: i64,
    /// See [`crate::FetchLogEntry::at`].
    pub at: NaiveDateTime,
    /// See [`crate::FetchLogEntry::endpoint`].
    pub endpoint: String,
    /// See [`crate::FetchLogEntry::scope`].
    pub scope: String,
    /// See [`crate::FetchLogEntry::page`].
    pub page: Option<i64>,
    /// See [`crate::FetchLogEntry::status`].
    pub status: i32,
    /// See [`crate::FetchLogEntry::items`].
    pub items: i64,
    /// See [`crate::FetchLogEntry::retries`].
    pub retries: i32,
    /// See [`crate::FetchLogEntry::wait_ms`].
    pub wait_ms: i64,
    /// See [`crate::FetchLogEntry::token_refreshed`].
    pub token_refreshed: bool,
    /// See [`crate::FetchLogEntry::task_id`].
    pub task_id: Option<i64>,
    /// See [`crate::FetchLogEntry::request_id`].
    pub request_id: Option<String>,
}

/// A sync run (one invocation of the engine).
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRun {
    /// Run id.
    pub id: i64,
    /// What ran, for example `sync` or `backfill`.
    pub kind: String,
    /// Start (UTC).
    pub started_at: NaiveDateTime,
    /// End (UTC), if finished.
    pub finished_at: Option<NaiveDateTime>,
    /// `running` until finished, then the status given to [`Store::finish_run`].
    pub status: String,
    /// Parameters given to [`Store::start_run`].
    pub params: serde_json::Value,
    /// Summary given to [`Store::finish_run`].
    pub summary: Option<serde_json::Value>,
}

/// A stored integrity report.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrityRun {
    /// Run id.
    pub id: i64,
    /// When it ran (UTC).
    pub at: NaiveDateTime,
    /// Overall status, for example `ok` or `findings`.
    pub status: String,
    /// The report.
    pub report: serde_json::Value,
}

/// How long a user taken from the relation queue stays invisible to other takers. A taker that
/// died without calling [`Store::relation_queue_done`] makes its users available again after it.
pub const RELATION_TAKE_LEASE: TimeDelta = TimeDelta::minutes(15);

pub(crate) fn parse_json(
    table: &'static str,
    id: i64,
    text: &str,
) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Json {
        table,
        id: id.to_string(),
        source,
    })
}

type RunTuple = (
    i64,
    String,
    NaiveDateTime,
    Option<NaiveDateTime>,
    String,
    String,
    Option<String>,
);

impl Store {
    /// Rows in the fetch log.
    pub fn fetch_log_count(&self) -> Result<i64, StoreError> {
        with_conn!(self, |conn| fetch_log::table
            .count()
            .get_result(conn)
            .map_err(StoreError::q("count", "fetch_log")))
    }

    /// The newest `limit` fetch-log rows, newest first.
    pub fn fetch_log(&self, limit: i64) -> Result<Vec<FetchLogRecord>, StoreError> {
        with_conn!(self, |conn| fetch_log::table
            .order(fetch_log::id.desc())
            .limit(limit)
            .select(FetchLogRecord::as_select())
            .load(conn)
            .map_err(StoreError::q("read", "fetch_log")))
    }

    /// Records the start of a run; returns its id.
    pub fn start_run(&self, kind: &str, params: &serde_json::Value) -> Result<i64, StoreError> {
        let now = crate::now();
        with_conn!(self, |conn| diesel::insert_into(sync_runs::table)
            .values((
                sync_runs::kind.eq(kind),
                sync_runs::started_at.eq(now),
                sync_runs::status.eq("running"),
                sync_runs::params.eq(params.to_string()),
            ))
            .returning(sync_runs::id)
            .get_result(conn)
            .map_err(StoreError::q("start run", "sync_runs")))
    }

    /// Records the end of a run.
    pub fn finish_run(
        &self,
        id: i64,
        status: &str,
        summary: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let now = crate::now();
        let changed = with_conn!(self, |conn| diesel::update(sync_runs::table.find(id))
            .set((
                sync_runs::finished_at.eq(Some(now)),
                sync_runs::status.eq(status),
                sync_runs::summary.eq(Some(summary.to_string())),
            ))
            .execute(conn)
            .map_err(StoreError::q("finish run", "sync_runs")))?;
        if changed == 0 {
            return Err(StoreError::Corrupt {
                table: "sync_runs",
                message: format!("run {id} does not exist"),
            });
        }
        Ok(())
    }

    /// The newest `limit` runs, newest first.
    pub fn runs(&self, limit: i64) -> Result<Vec<SyncRun>, StoreError> {
        let rows: Vec<RunTuple> = with_conn!(self, |conn| sync_runs::table
            .order(sync_runs::id.desc())
            .limit(limit)
            .select((
                sync_runs::id,
                sync_runs::kind,
                sync_runs::started_at,
                sync_runs::finished_at,
                sync_runs::status,
                sync_runs::params,
                sync_runs::summary,
            ))
            .load(conn)
            .map_err(StoreError::q("read", "sync_runs")))?;
        rows.into_iter()
            .map(
                |(id, kind, started_at, finished_at, status, params, summary)| {
                    Ok(SyncRun {
                        params: parse_json("sync_runs", id, &params)?,
                        summary: summary
                            .map(|s| parse_json("sync_runs", id, &s))
                            .transpose()?,
                        id,
                        kind,
                        started_at,
                        finished_at,
                        status,
                    })
                },
            )
            .collect()
    }

    /// The start of the newest run of `kind` that finished with one of `statuses` and has these
    /// string `params` (for example `[("what", "all"), ("mode", "full")]`): when the last
    /// nightly full sync happened, for the daemon's catch-up after downtime.
    pub fn last_finished_run(
        &self,
        kind: &str,
        statuses: &[&str],
        params: &[(&str, &str)],
    ) -> Result<Option<NaiveDateTime>, StoreError> {
        // Narrowed in SQL on each pair's text (serde_json writes no spaces), checked exactly on
        // the parsed JSON.
        let patterns: Vec<String> = params
            .iter()
            .map(|(k, v)| {
                let pair = format!(
                    "{}:{}",
                    serde_json::Value::from(*k),
                    serde_json::Value::from(*v)
                );
                format!("%{}%", like_escape(&pair))
            })
            .collect();
        let rows: Vec<(i64, NaiveDateTime, String)> = with_conn!(self, |conn| {
            let mut query = sync_runs::table
                .filter(sync_runs::kind.eq(kind))
                .filter(sync_runs::status.eq_any(statuses))
                .into_boxed();
            for pattern in &patterns {
                query = query.filter(sync_runs::params.like(pattern.as_str()).escape('\\'));
            }
            query
                .order(sync_runs::id.desc())
                .limit(20)
                .select((sync_runs::id, sync_runs::started_at, sync_runs::params))
                .load(conn)
                .map_err(StoreError::q("read", "sync_runs"))
        })?;
        for (id, started_at, text) in rows {
            let json = parse_json("sync_runs", id, &text)?;
            if params
                .iter()
                .all(|(k, v)| json.get(*k).and_then(serde_json::Value::as_str) == Some(*v))
            {
                return Ok(Some(started_at));
            }
        }
        Ok(None)
    }

    /// Stores an integrity report; returns its id.
    pub fn record_integrity_run(
        &self,
        status: &str,
        report: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        let now = crate::now();
        with_conn!(self, |conn| diesel::insert_into(integrity_runs::table)
            .values((
                integrity_runs::at.eq(now),
                integrity_runs::status.eq(status),
                integrity_runs::report.eq(report.to_string()),
            ))
            .returning(integrity_runs::id)
            .get_result(conn)
            .map_err(StoreError::q("record", "integrity_runs")))
    }

    /// The newest `limit` integrity reports, newest first.
    pub fn integrity_runs(&self, limit: i64) -> Result<Vec<IntegrityRun>, StoreError> {
        let rows: Vec<(i64, NaiveDateTime, String, String)> = with_conn!(self, |conn| {
            integrity_runs::table
                .order(integrity_runs::id.desc())
                .limit(limit)
                .select((
                    integrity_runs::id,
                    integrity_runs::at,
                    integrity_runs::status,
                    integrity_runs::report,
                ))
                .load(conn)
                .map_err(StoreError::q("read", "integrity_runs"))
        })?;
        rows.into_iter()
            .map(|(id, at, status, report)| {
                Ok(IntegrityRun {
                    report: parse_json("integrity_runs", id, &report)?,
                    id,
                    at,
                    status,
                })
            })
            .collect()
    }

    /// Takes up to `limit` users from the relation queue, oldest request first. Taken users
    /// are hidden from other takers for [`RELATION_TAKE_LEASE`]; confirm them with
    /// [`Store::relation_queue_done`].
    pub fn relation_queue_take(&self, limit: i64) -> Result<Vec<i64>, StoreError> {
        let now = crate::now();
        let stale = now - RELATION_TAKE_LEASE;
        with_tx!(self, |conn| {
            let ids: Vec<i64> = relation_queue::table
                .filter(
                    relation_queue::taken_at
                        .is_null()
                        .or(relation_queue::taken_at.lt(stale)),
                )
                .order((relation_queue::enqueued_at, relation_queue::user_id))
                .limit(limit)
                .select(relation_queue::user_id)
                .load(conn)
                .map_err(StoreError::q("take", "relation_queue"))?;
            for part in ids.chunks(crate::apply::IDS_PER_STATEMENT) {
                diesel::update(relation_queue::table.filter(relation_queue::user_id.eq_any(part)))
                    .set((
                        relation_queue::taken_at.eq(Some(now)),
                        relation_queue::attempts.eq(relation_queue::attempts + 1),
                    ))
                    .execute(conn)
                    .map_err(StoreError::q("take", "relation_queue"))?;
            }
            Ok(ids)
        })
    }

    /// Removes taken users whose relations were refreshed. A user re-enqueued since it was
    /// taken stays queued, so the newer request is not lost. Returns how many were removed.
    pub fn relation_queue_done(&self, user_ids: &[i64]) -> Result<usize, StoreError> {
        with_tx!(self, |conn| {
            let mut removed = 0;
            for part in user_ids.chunks(crate::apply::IDS_PER_STATEMENT) {
                removed += diesel::delete(
                    relation_queue::table
                        .filter(relation_queue::user_id.eq_any(part))
                        .filter(relation_queue::taken_at.is_not_null()),
                )
                .execute(conn)
                .map_err(StoreError::q("done", "relation_queue"))?;
            }
            Ok(removed)
        })
    }

    /// Adds users to the relation queue outside a page (see [`crate::ApplyPage::enqueue_users`]).
    pub fn relation_queue_add(&self, users: &[(i64, String)]) -> Result<usize, StoreError> {
        let now = crate::now();
        with_tx!(self, |conn| crate::apply::enqueue_users_stmt!(
            conn, users, now
        ))
    }

    /// Users in the relation queue, taken or not.
    pub fn relation_queue_len(&self) -> Result<i64, StoreError> {
        with_conn!(self, |conn| relation_queue::table
            .count()
            .get_result(conn)
            .map_err(StoreError::q("count", "relation_queue")))
    }
}

/// `text` with LIKE's wildcards and escape character escaped (escape character `\`).
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
