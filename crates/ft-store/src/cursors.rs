//! Cursors: per (resource, scope), where the last complete pass ended and where the current one
//! stands. Saved in the same transaction as the page they describe (see [`crate::ApplyPage`]).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::error::StoreError;
use crate::schema::cursors;
use crate::store::{Store, with_conn};

/// A full replacement of a cursor row (upserted by resource and scope).
#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = cursors)]
#[diesel(treat_none_as_default_value = false)]
pub struct CursorUpdate {
    /// The resource, for example `users` or `projects_users`.
    pub resource: String,
    /// The scope, for example `campus:1` or `all`.
    pub scope: String,
    /// End of the last fully read pass: the next pass reads from here.
    pub watermark: Option<NaiveDateTime>,
    /// Lower bound of the in-flight pass, fixed when it was planned.
    pub pass_since: Option<NaiveDateTime>,
    /// Upper bound of the in-flight pass, fixed when it was planned.
    pub pass_until: Option<NaiveDateTime>,
    /// Keyset position of the in-flight pass (last id committed).
    pub last_id: Option<i64>,
    /// Pages committed in the in-flight pass.
    pub page: i64,
    /// Rows committed in the in-flight pass.
    pub rows: i64,
    /// Version of the cursor's meaning; a reader that does not know it starts over.
    pub format_version: i32,
    /// Rows the in-flight pass expects in all (rows read plus the last page's `X-Total`), for
    /// the backlog estimate; `None` when unknown or no pass is in flight.
    pub expected_rows: Option<i64>,
}

/// A stored cursor.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = cursors)]
pub struct Cursor {
    /// See [`CursorUpdate::resource`].
    pub resource: String,
    /// See [`CursorUpdate::scope`].
    pub scope: String,
    /// See [`CursorUpdate::watermark`].
    pub watermark: Option<NaiveDateTime>,
    /// See [`CursorUpdate::pass_since`].
    pub pass_since: Option<NaiveDateTime>,
    /// See [`CursorUpdate::pass_until`].
    pub pass_until: Option<NaiveDateTime>,
    /// See [`CursorUpdate::last_id`].
    pub last_id: Option<i64>,
    /// See [`CursorUpdate::page`].
    pub page: i64,
    /// See [`CursorUpdate::rows`].
    pub rows: i64,
    /// See [`CursorUpdate::format_version`].
    pub format_version: i32,
    /// When the row was last written (UTC).
    pub updated_at: NaiveDateTime,
    /// See [`CursorUpdate::expected_rows`].
    pub expected_rows: Option<i64>,
}

/// Upserts a cursor row; evaluates to `Result<usize, StoreError>`.
macro_rules! save_cursor_stmt {
    ($conn:expr, $update:expr, $now:expr) => {{
        use crate::schema::cursors as c;
        use diesel::prelude::*;
        use diesel::upsert::excluded;
        diesel::insert_into(c::table)
            .values(($update, c::updated_at.eq($now)))
            .on_conflict((c::resource, c::scope))
            .do_update()
            .set((
                c::watermark.eq(excluded(c::watermark)),
                c::pass_since.eq(excluded(c::pass_since)),
                c::pass_until.eq(excluded(c::pass_until)),
                c::last_id.eq(excluded(c::last_id)),
                c::page.eq(excluded(c::page)),
                c::rows.eq(excluded(c::rows)),
                c::format_version.eq(excluded(c::format_version)),
                c::expected_rows.eq(excluded(c::expected_rows)),
                c::updated_at.eq(excluded(c::updated_at)),
            ))
            .execute($conn)
            .map_err(crate::error::StoreError::q("save cursor", "cursors"))
    }};
}
pub(crate) use save_cursor_stmt;

impl Store {
    /// The cursor of `resource` in `scope`, if any.
    pub fn cursor(&self, resource: &str, scope: &str) -> Result<Option<Cursor>, StoreError> {
        with_conn!(self, |conn| cursors::table
            .filter(cursors::resource.eq(resource))
            .filter(cursors::scope.eq(scope))
            .select(Cursor::as_select())
            .first(conn)
            .optional()
            .map_err(StoreError::q("read cursor", "cursors")))
    }

    /// All cursors, ordered by resource then scope.
    pub fn cursors(&self) -> Result<Vec<Cursor>, StoreError> {
        with_conn!(self, |conn| cursors::table
            .order((cursors::resource, cursors::scope))
            .select(Cursor::as_select())
            .load(conn)
            .map_err(StoreError::q("list cursors", "cursors")))
    }

    /// Replaces (or creates) a cursor outside a page transaction, for example when planning a
    /// pass.
    pub fn save_cursor(&self, update: &CursorUpdate) -> Result<(), StoreError> {
        let now = crate::now();
        with_conn!(self, |conn| save_cursor_stmt!(conn, update, now)
            .map(|_| ()))
    }

    /// Deletes a cursor; returns whether it existed.
    pub fn delete_cursor(&self, resource: &str, scope: &str) -> Result<bool, StoreError> {
        with_conn!(self, |conn| diesel::delete(
            cursors::table
                .filter(cursors::resource.eq(resource))
                .filter(cursors::scope.eq(scope))
        )
        .execute(conn)
        .map(|n| n > 0)
        .map_err(StoreError::q("delete cursor", "cursors")))
    }
}
