//! Batched `INSERT ... ON CONFLICT (id) DO UPDATE` for the mirror tables.
//!
//! Rules, for every mirror table:
//! * duplicates within one batch are dropped, the last copy wins (PostgreSQL rejects a statement
//!   that updates the same row twice, and 42 pagination repeats rows when data shifts);
//! * every typed column, `raw` and `ingested_at` are replaced and `deleted_at` is cleared;
//! * on tables with `updated_at`, an incoming row whose `updated_at` is older than the stored one
//!   is skipped; equal or missing timestamps overwrite (piscine levels change without touching
//!   `updated_at`);
//! * statements are chunked below the backend's bind-parameter limit.

use std::collections::HashSet;

use diesel::{PgConnection, SqliteConnection};

/// A row of a mirror table.
pub(crate) trait MirrorRow {
    /// The 42 id.
    fn id(&self) -> i64;
}

/// The bind-parameter limit of a backend.
pub(crate) trait BindLimit {
    /// The most bind parameters one statement may carry.
    const MAX_PARAMS: usize;
}

impl BindLimit for PgConnection {
    // The wire protocol counts parameters in an unsigned 16-bit integer.
    const MAX_PARAMS: usize = 65_535;
}

impl BindLimit for SqliteConnection {
    // SQLITE_MAX_VARIABLE_NUMBER of the bundled SQLite (Debian's system build allows more).
    const MAX_PARAMS: usize = 32_766;
}

/// Rows per statement never exceed this, even for narrow tables: beyond it, statements get
/// larger without getting faster, and memory per statement grows.
pub(crate) const MAX_CHUNK_ROWS: usize = 1_000;

/// The bind-parameter limit of the connection's backend.
pub(crate) fn max_params<C: BindLimit>(_conn: &C) -> usize {
    C::MAX_PARAMS
}

/// Rows per statement for a table with `columns` bound columns.
pub(crate) fn chunk_len(max_params: usize, columns: usize) -> usize {
    (max_params / columns.max(1)).clamp(1, MAX_CHUNK_ROWS)
}

/// Keeps the last copy of each id, in the order of those last copies. Returns the kept rows and
/// how many were dropped.
pub(crate) fn dedupe_last<T: MirrorRow>(rows: Vec<T>) -> (Vec<T>, usize) {
    let received = rows.len();
    let mut seen = HashSet::with_capacity(received);
    let mut kept: Vec<T> = rows
        .into_iter()
        .rev()
        .filter(|r| seen.insert(r.id()))
        .collect();
    kept.reverse();
    let dropped = received - kept.len();
    (kept, dropped)
}

/// What one upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct UpsertCount {
    /// Rows left after dropping duplicate ids.
    pub(crate) unique: usize,
    /// Duplicate ids dropped.
    pub(crate) duplicates: usize,
    /// Rows inserted or updated (the rest were older than what is stored).
    pub(crate) written: usize,
}

impl UpsertCount {
    /// The counts of two upserts together.
    pub(crate) fn plus(self, other: UpsertCount) -> UpsertCount {
        UpsertCount {
            unique: self.unique + other.unique,
            duplicates: self.duplicates + other.duplicates,
            written: self.written + other.written,
        }
    }
}

/// The PostgreSQL type of a row field, for the array parameters of the `unnest` upsert.
pub(crate) trait PgColumn {
    /// Diesel's SQL type of one element.
    type ST: diesel::sql_types::SqlType + diesel::sql_types::SingleValue;
    /// The PostgreSQL type name of one element.
    const PG_TYPE: &'static str;
}

macro_rules! pg_column {
    ($($rust:ty => $st:ty, $name:literal;)*) => {
        $(impl PgColumn for $rust {
            type ST = $st;
            const PG_TYPE: &'static str = $name;
        })*
    };
}

pg_column! {
    i64 => diesel::sql_types::BigInt, "bigint";
    String => diesel::sql_types::Text, "text";
    Option<i64> => diesel::sql_types::Nullable<diesel::sql_types::BigInt>, "bigint";
    Option<String> => diesel::sql_types::Nullable<diesel::sql_types::Text>, "text";
    Option<bool> => diesel::sql_types::Nullable<diesel::sql_types::Bool>, "boolean";
    Option<f64> => diesel::sql_types::Nullable<diesel::sql_types::Double>, "double precision";
    Option<chrono::NaiveDateTime> => diesel::sql_types::Nullable<diesel::sql_types::Timestamp>, "timestamp";
}

/// The PostgreSQL upsert of one chunk: every column is bound as ONE array and the rows come from
/// `unnest(...)`. A multi-row VALUES list with one parameter per cell costs the server more to
/// parse and plan than to execute; this statement has a parameter per column whatever the chunk
/// size. `raw` travels as text and is cast to JSONB, which validates it.
pub(crate) fn pg_unnest_sql(table: &str, columns: &[(&str, &str)], guarded: bool) -> String {
    let names: Vec<String> = columns
        .iter()
        .map(|(name, _)| format!("\"{name}\""))
        .collect();
    let names = names.join(", ");
    let params: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| format!("${}::{ty}[]", i + 2))
        .collect();
    let selected: Vec<String> = columns
        .iter()
        .map(|(name, _)| format!("u.\"{name}\""))
        .collect();
    let sets: Vec<String> = columns
        .iter()
        .map(|(name, _)| format!("\"{name}\" = excluded.\"{name}\""))
        .collect();
    let raw_param = columns.len() + 2;
    let mut sql = format!(
        "INSERT INTO {table} (id, {names}, raw) \
         SELECT u.id, {selected}, u.raw::jsonb \
         FROM unnest($1::bigint[], {params}, ${raw_param}::text[]) AS u(id, {names}, raw) \
         ON CONFLICT (id) DO UPDATE SET {sets}, raw = excluded.raw, \
         ingested_at = excluded.ingested_at, deleted_at = NULL",
        selected = selected.join(", "),
        params = params.join(", "),
        sets = sets.join(", "),
    );
    if guarded {
        // An older incoming updated_at never overwrites a newer one; equal or missing ones do.
        sql.push_str(&format!(
            " WHERE {table}.updated_at IS NULL OR excluded.updated_at IS NULL \
             OR excluded.updated_at >= {table}.updated_at"
        ));
    }
    sql
}

/// One upsert statement for a chunk (a `Vec` of rows) of `$table`; evaluates to
/// `QueryResult<usize>` (rows inserted or updated).
macro_rules! upsert_stmt {
    ($conn:expr, pg, $table:ident, $part:expr, $guard:ident, [$($field:ident : $ty:ty),*]) => {{
        use diesel::RunQueryDsl;
        use diesel::sql_types::{Array, BigInt, Text};
        use crate::upsert::PgColumn;
        let part = $part;
        let sql = crate::upsert::pg_unnest_sql(
            stringify!($table),
            &[$((stringify!($field), <$ty as PgColumn>::PG_TYPE)),*],
            stringify!($guard) == "guarded",
        );
        diesel::sql_query(sql)
            .bind::<Array<BigInt>, _>(part.iter().map(|row| row.id).collect::<Vec<i64>>())
            $(.bind::<Array<<$ty as PgColumn>::ST>, _>(
                part.iter().map(|row| &row.$field).collect::<Vec<&$ty>>()
            ))*
            .bind::<Array<Text>, _>(part.iter().map(|row| row.raw.as_str()).collect::<Vec<&str>>())
            .execute($conn)
    }};
    ($conn:expr, sqlite, $table:ident, $part:expr, unguarded, [$($field:ident : $ty:ty),*]) => {{
        // Statements of a fixed row count have a static query id, so Diesel caches them as
        // prepared statements; a chunk is split into runs of 1000, 100, 10 and 1 rows, which
        // saves SQLite from parsing a statement of thousands of parameters for every page.
        let part: Vec<_> = $part;
        // A closure keeps `?` local: errors come back as this statement's QueryResult.
        (|| -> diesel::QueryResult<usize> {
            let mut left = part.len();
            let mut rows = part.into_iter();
            let mut written = 0usize;
            crate::upsert::upsert_fixed!($conn, $table, rows, left, written, 1000, [$($field),*]);
            crate::upsert::upsert_fixed!($conn, $table, rows, left, written, 100, [$($field),*]);
            crate::upsert::upsert_fixed!($conn, $table, rows, left, written, 10, [$($field),*]);
            crate::upsert::upsert_fixed!($conn, $table, rows, left, written, 1, [$($field),*]);
            Ok(written)
        })()
    }};
    // Diesel 2.3 has no SQLite batch upsert with a `DO UPDATE ... WHERE` clause, so on SQLite the
    // stale rows are dropped first by reading the stored updated_at of the chunk's ids. This is
    // race-free because the caller holds SQLite's single write lock (BEGIN IMMEDIATE).
    ($conn:expr, sqlite, $table:ident, $part:expr, guarded, [$($field:ident : $ty:ty),*]) => {{
        use diesel::prelude::*;
        use crate::schema::$table as t;
        let mut part: Vec<_> = $part;
        let ids: Vec<i64> = part.iter().map(|row| row.id).collect();
        match t::table
            .filter(t::id.eq_any(&ids))
            .select((t::id, t::updated_at))
            .load::<(i64, Option<chrono::NaiveDateTime>)>($conn)
        {
            Err(error) => Err(error),
            Ok(stored) => {
                let stored: std::collections::HashMap<i64, Option<chrono::NaiveDateTime>> =
                    stored.into_iter().collect();
                part.retain(|row| match (stored.get(&row.id), row.updated_at) {
                    (Some(Some(old)), Some(new)) => new >= *old,
                    _ => true,
                });
                crate::upsert::upsert_stmt!($conn, sqlite, $table, part, unguarded, [$($field : $ty),*])
            }
        }
    }};
}
pub(crate) use upsert_stmt;

/// Upserts runs of exactly `$n` rows from `$rows` while at least `$n` are `$left` (SQLite).
macro_rules! upsert_fixed {
    ($conn:expr, $table:ident, $rows:ident, $left:ident, $written:ident, $n:literal, [$($field:ident),*]) => {
        while $left >= $n {
            use diesel::prelude::*;
            use diesel::upsert::excluded;
            use crate::schema::$table as t;
            let run: Box<[_; $n]> = match $rows
                .by_ref()
                .take($n)
                .collect::<Vec<_>>()
                .into_boxed_slice()
                .try_into()
            {
                Ok(run) => run,
                Err(_) => unreachable!("{} rows were left", $left),
            };
            $written += diesel::insert_into(t::table)
                .values(run)
                .on_conflict(t::id)
                .do_update()
                .set((
                    $(t::$field.eq(excluded(t::$field)),)*
                    t::raw.eq(excluded(t::raw)),
                    t::ingested_at.eq(excluded(t::ingested_at)),
                    t::deleted_at.eq(None::<chrono::NaiveDateTime>),
                ))
                .execute($conn)?;
            $left -= $n;
        }
    };
}
pub(crate) use upsert_fixed;

/// Dedupes `$rows` and upserts them in chunks; evaluates to
/// `Result<UpsertCount, StoreError>`.
macro_rules! upsert_chunks {
    ($conn:expr, $backend:ident, $table:ident, $rows:expr, $guard:ident, [$($field:ident : $ty:ty),*]) => {{
        let (rows, duplicates) = crate::upsert::dedupe_last($rows);
        // id and raw are bound besides the typed columns.
        let columns = 2 + [$(stringify!($field)),*].len();
        let chunk = crate::upsert::chunk_len(crate::upsert::max_params(&*$conn), columns);
        let unique = rows.len();
        let mut written = 0usize;
        let mut failed = None;
        // Diesel's SQLite insert takes the `raw` wrapper by value, so chunks are moved out.
        let mut remaining = rows.into_iter();
        loop {
            let part: Vec<_> = remaining.by_ref().take(chunk).collect();
            if part.is_empty() {
                break;
            }
            match crate::upsert::upsert_stmt!($conn, $backend, $table, part, $guard, [$($field : $ty),*]) {
                Ok(n) => written += n,
                Err(source) => {
                    failed = Some(crate::error::StoreError::query("upsert", stringify!($table), source));
                    break;
                }
            }
        }
        match failed {
            Some(error) => Err(error),
            None => Ok(crate::upsert::UpsertCount { unique, duplicates, written }),
        }
    }};
}
pub(crate) use upsert_chunks;

#[cfg(test)]
mod tests {
    use super::*;

    struct R(i64, &'static str);
    impl MirrorRow for R {
        fn id(&self) -> i64 {
            self.0
        }
    }

    #[test]
    fn dedupe_keeps_the_last_copy_in_order() {
        let rows = vec![R(1, "a"), R(2, "b"), R(1, "c"), R(3, "d"), R(2, "e")];
        let (kept, dropped) = dedupe_last(rows);
        let kept: Vec<_> = kept.iter().map(|r| (r.0, r.1)).collect();
        assert_eq!(kept, vec![(1, "c"), (3, "d"), (2, "e")]);
        assert_eq!(dropped, 2);
    }

    #[test]
    fn postgres_upsert_sql_binds_one_array_per_column() {
        let sql = pg_unnest_sql(
            "blocs",
            &[("campus_id", "bigint"), ("updated_at", "timestamp")],
            true,
        );
        assert_eq!(
            sql,
            "INSERT INTO blocs (id, \"campus_id\", \"updated_at\", raw) \
             SELECT u.id, u.\"campus_id\", u.\"updated_at\", u.raw::jsonb \
             FROM unnest($1::bigint[], $2::bigint[], $3::timestamp[], $4::text[]) \
             AS u(id, \"campus_id\", \"updated_at\", raw) \
             ON CONFLICT (id) DO UPDATE SET \"campus_id\" = excluded.\"campus_id\", \
             \"updated_at\" = excluded.\"updated_at\", raw = excluded.raw, \
             ingested_at = excluded.ingested_at, deleted_at = NULL \
             WHERE blocs.updated_at IS NULL OR excluded.updated_at IS NULL \
             OR excluded.updated_at >= blocs.updated_at"
        );
        let unguarded = pg_unnest_sql("cursus", &[("name", "text")], false);
        assert!(unguarded.ends_with("deleted_at = NULL"), "{unguarded}");
    }

    #[test]
    fn chunks_stay_under_the_bind_limit() {
        // users: 21 typed columns + id + raw.
        assert_eq!(chunk_len(SqliteConnection::MAX_PARAMS, 23), 1_000);
        assert!(chunk_len(SqliteConnection::MAX_PARAMS, 40) * 40 <= 32_766);
        assert!(chunk_len(PgConnection::MAX_PARAMS, 100) * 100 <= 65_535);
        assert_eq!(chunk_len(10, 100), 1);
    }
}
