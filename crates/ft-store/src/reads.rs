//! Generic reads over the mirror tables, for tests, integrity checks and deletion detection.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::error::StoreError;
use crate::rows::{Rows, Table, for_table};
use crate::store::{Backend, Store, with_conn};

/// A mirror row as stored: its id, its raw JSON and its deletion mark.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    /// The 42 id.
    pub id: i64,
    /// The item as received.
    pub raw: serde_json::Value,
    /// When the row was marked deleted.
    pub deleted_at: Option<NaiveDateTime>,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

impl Store {
    /// Rows in `table`; with `include_deleted = false` only rows not marked deleted.
    pub fn count(&self, table: Table, include_deleted: bool) -> Result<i64, StoreError> {
        with_conn!(self, |conn| for_table!(table, |t, _R| {
            let result = if include_deleted {
                t::table.count().get_result(conn)
            } else {
                t::table
                    .filter(t::deleted_at.is_null())
                    .count()
                    .get_result(conn)
            };
            result.map_err(StoreError::q("count", table.as_str()))
        }))
    }

    /// Every row of `table` (deleted ones included) with its raw JSON, sorted by id. Loads the
    /// whole table: meant for tests and small tables.
    pub fn raw_rows(&self, table: Table) -> Result<Vec<StoredRow>, StoreError> {
        let rows: Vec<(i64, String, Option<NaiveDateTime>)> =
            with_conn!(self, |conn| for_table!(table, |t, _R| {
                t::table
                    .select((t::id, t::raw, t::deleted_at))
                    .order(t::id.asc())
                    .load(conn)
                    .map_err(StoreError::q("read raw", table.as_str()))
            }))?;
        rows.into_iter()
            .map(|(id, raw, deleted_at)| {
                Ok(StoredRow {
                    raw: serde_json::from_str(&raw).map_err(|source| StoreError::Json {
                        table: table.as_str(),
                        id: id.to_string(),
                        source,
                    })?,
                    id,
                    deleted_at,
                })
            })
            .collect()
    }

    /// Every row of `table` (deleted ones included) as typed rows, sorted by id. Loads the whole
    /// table: meant for tests and small tables.
    pub fn load_rows(&self, table: Table) -> Result<Rows, StoreError> {
        with_conn!(self, |conn| for_table!(table, |t, R| {
            t::table
                .select(R::as_select())
                .order(t::id.asc())
                .load::<R>(conn)
                .map(Rows::from)
                .map_err(StoreError::q("load", table.as_str()))
        }))
    }

    /// Ids of live rows (not marked deleted) of `table`, sorted.
    pub fn ids(&self, table: Table) -> Result<Vec<i64>, StoreError> {
        with_conn!(self, |conn| for_table!(table, |t, _R| {
            t::table
                .filter(t::deleted_at.is_null())
                .select(t::id)
                .order(t::id.asc())
                .load(conn)
                .map_err(StoreError::q("list ids", table.as_str()))
        }))
    }

    /// Ids of live rows of `table` whose integer `column` equals `value`, sorted; for example
    /// the users of a campus (`Table::CampusUsers`, `"campus_id"`) when detecting deletions.
    pub fn live_ids(&self, table: Table, column: &str, value: i64) -> Result<Vec<i64>, StoreError> {
        let column = checked_column(table, column)?;
        let sql = format!(
            "SELECT id FROM {table} WHERE {column} = {} AND deleted_at IS NULL ORDER BY id",
            self.placeholder(1)
        );
        self.load_ids(&sql, Some(value), table)
    }

    /// Ids of live rows of `table` where `column` is NULL, sorted; for example open sessions
    /// (`Table::Locations`, `"end_at"`).
    pub fn ids_where_null(&self, table: Table, column: &str) -> Result<Vec<i64>, StoreError> {
        let column = checked_column(table, column)?;
        let sql = format!(
            "SELECT id FROM {table} WHERE {column} IS NULL AND deleted_at IS NULL ORDER BY id"
        );
        self.load_ids(&sql, None, table)
    }

    fn placeholder(&self, n: usize) -> String {
        match self.backend() {
            Backend::Postgres => format!("${n}"),
            Backend::Sqlite => "?".to_owned(),
        }
    }

    fn load_ids(&self, sql: &str, bind: Option<i64>, table: Table) -> Result<Vec<i64>, StoreError> {
        let ids: Vec<Id> = with_conn!(self, |conn| match bind {
            Some(value) => diesel::sql_query(sql)
                .bind::<diesel::sql_types::BigInt, _>(value)
                .load(conn),
            None => diesel::sql_query(sql).load(conn),
        }
        .map_err(StoreError::q("list ids", table.as_str())))?;
        Ok(ids.into_iter().map(|row| row.id).collect())
    }
}

/// Checks `column` against the table's declared columns, so it can be spliced into SQL; returns
/// it quoted.
pub(crate) fn checked_column(table: Table, column: &str) -> Result<String, StoreError> {
    let known = column == "id"
        || column == "ingested_at"
        || column == "deleted_at"
        || table.columns().contains(&column);
    if known {
        Ok(format!("\"{column}\""))
    } else {
        Err(StoreError::UnknownColumn {
            table: table.as_str(),
            column: column.to_owned(),
        })
    }
}
