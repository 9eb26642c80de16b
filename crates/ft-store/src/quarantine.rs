//! Rows the API sent that could not be decoded or mapped (issue #16): kept as received with
//! the reason, so their page commits without them and the task does not retry forever. A row
//! leaves the quarantine when a later page of its table stores it.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::error::StoreError;
use crate::schema::quarantine;
use crate::store::{Store, with_conn};

/// A row to quarantine, written with its page by [`crate::Store::apply_page`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The mirror table the row belongs to (`users`, `projects_users`, ...).
    pub resource: String,
    /// Its id, when the raw JSON has an integer one.
    pub item_id: Option<i64>,
    /// What is wrong with it (the field's path and the decoder's or mapper's message).
    pub reason: String,
    /// The row's JSON exactly as received.
    pub raw: String,
}

impl Quarantined {
    /// The key that identifies the row in its resource: its id, or a stable hash of its JSON.
    pub fn item_key(&self) -> String {
        match self.item_id {
            Some(id) => id.to_string(),
            None => {
                // FNV-1a: stable across builds, unlike the standard library's hasher.
                let hash = self.raw.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
                format!("raw:{hash:016x}")
            }
        }
    }
}

/// A quarantined row as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Queryable)]
pub struct QuarantinedRow {
    /// See [`Quarantined::resource`].
    pub resource: String,
    /// See [`Quarantined::item_key`].
    pub item_key: String,
    /// See [`Quarantined::item_id`].
    pub item_id: Option<i64>,
    /// The reason at the last sighting.
    pub reason: String,
    /// The JSON at the last sighting.
    pub raw: String,
    /// When it was first set aside (UTC).
    pub first_seen: NaiveDateTime,
    /// When a page last brought it in a form that does not store (UTC).
    pub last_seen: NaiveDateTime,
    /// How many pages brought it so.
    pub times: i32,
}

/// Inserts or refreshes quarantined rows, then lets go of the ids `stored` of `table` (rows
/// that now stored): the tail of a page's transaction.
macro_rules! quarantine_stmt {
    ($conn:expr, $items:expr, $table:expr, $stored:expr, $now:expr) => {{
        use crate::schema::quarantine as q;
        use diesel::upsert::excluded;
        for item in $items {
            diesel::insert_into(q::table)
                .values((
                    q::resource.eq(&item.resource),
                    q::item_key.eq(item.item_key()),
                    q::item_id.eq(item.item_id),
                    q::reason.eq(&item.reason),
                    q::raw.eq(&item.raw),
                    q::first_seen.eq($now),
                    q::last_seen.eq($now),
                    q::times.eq(1),
                ))
                .on_conflict((q::resource, q::item_key))
                .do_update()
                .set((
                    q::reason.eq(excluded(q::reason)),
                    q::raw.eq(excluded(q::raw)),
                    q::item_id.eq(excluded(q::item_id)),
                    q::last_seen.eq($now),
                    q::times.eq(q::times + 1),
                ))
                .execute($conn)
                .map_err(StoreError::q("quarantine", "quarantine"))?;
        }
        let stored: &[i64] = $stored;
        let mut released = 0;
        for chunk in stored.chunks(crate::apply::IDS_PER_STATEMENT) {
            released += diesel::delete(
                q::table
                    .filter(q::resource.eq($table.as_str()))
                    .filter(q::item_id.eq_any(chunk)),
            )
            .execute($conn)
            .map_err(StoreError::q("release", "quarantine"))?;
        }
        Ok::<usize, StoreError>(released)
    }};
}
pub(crate) use quarantine_stmt;

impl Store {
    /// The quarantined rows, newest sighting first, at most `limit`.
    pub fn quarantined(&self, limit: i64) -> Result<Vec<QuarantinedRow>, StoreError> {
        with_conn!(self, |conn| quarantine::table
            .order((quarantine::last_seen.desc(), quarantine::item_key))
            .limit(limit)
            .select((
                quarantine::resource,
                quarantine::item_key,
                quarantine::item_id,
                quarantine::reason,
                quarantine::raw,
                quarantine::first_seen,
                quarantine::last_seen,
                quarantine::times,
            ))
            .load(conn)
            .map_err(StoreError::q("read", "quarantine")))
    }

    /// How many rows are quarantined.
    pub fn quarantine_count(&self) -> Result<i64, StoreError> {
        with_conn!(self, |conn| quarantine::table
            .count()
            .get_result(conn)
            .map_err(StoreError::q("count", "quarantine")))
    }
}
