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

/// A mirror-table column that id reads filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Column {
    /// `user_id`.
    UserId,
    /// `campus_id`.
    CampusId,
    /// `coalition_id`.
    CoalitionId,
    /// `end_at` (locations).
    EndAt,
}

impl Column {
    /// The column's SQL name.
    pub fn as_str(self) -> &'static str {
        match self {
            Column::UserId => "user_id",
            Column::CampusId => "campus_id",
            Column::CoalitionId => "coalition_id",
            Column::EndAt => "end_at",
        }
    }
}

/// Which live rows [`Store::live_ids`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdsWhere<'a> {
    /// Every live row.
    All,
    /// Rows whose integer column equals the value.
    Eq(Column, i64),
    /// Rows whose integer column is one of the values.
    In(Column, &'a [i64]),
    /// Rows whose column is NULL.
    Null(Column),
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

    /// Ids of live rows (not marked deleted) of `table` that match `filter`, sorted: the one
    /// id read the engine and the checks use, e.g. the members of a campus
    /// (`Table::CampusUsers`, `IdsWhere::Eq(Column::CampusId, 12)`), the rows of some users
    /// (`IdsWhere::In(Column::UserId, &users)`) or open sessions
    /// (`IdsWhere::Null(Column::EndAt)`). A column the table does not have is an error.
    pub fn live_ids(&self, table: Table, filter: IdsWhere<'_>) -> Result<Vec<i64>, StoreError> {
        let condition = match filter {
            IdsWhere::All => return self.all_live_ids(table),
            IdsWhere::Eq(column, _) => format!(
                "{} = {}",
                checked_column(table, column.as_str())?,
                self.placeholder(1)
            ),
            IdsWhere::Null(column) => {
                format!("{} IS NULL", checked_column(table, column.as_str())?)
            }
            IdsWhere::In(column, values) => {
                let column = checked_column(table, column.as_str())?;
                let mut ids = Vec::new();
                for chunk in values.chunks(crate::apply::IDS_PER_STATEMENT) {
                    // Integers are written into the statement: binding them one by one could
                    // exceed SQLite's parameter limit.
                    let list: Vec<String> = chunk.iter().map(i64::to_string).collect();
                    let sql = format!(
                        "SELECT id FROM {table} WHERE {column} IN ({}) AND deleted_at IS NULL",
                        list.join(",")
                    );
                    ids.extend(self.load_ids(&sql, None, table)?);
                }
                ids.sort_unstable();
                ids.dedup();
                return Ok(ids);
            }
        };
        let sql =
            format!("SELECT id FROM {table} WHERE {condition} AND deleted_at IS NULL ORDER BY id");
        let bind = match filter {
            IdsWhere::Eq(_, value) => Some(value),
            _ => None,
        };
        self.load_ids(&sql, bind, table)
    }

    /// The largest live id of `table` that is not in `ids`, if any: a row the API is expected
    /// to still have, asked for beside ids that all came back missing, to tell a real "gone"
    /// from an answer that lost everything.
    pub fn live_id_outside(&self, table: Table, ids: &[i64]) -> Result<Option<i64>, StoreError> {
        let outside = if ids.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            format!(" AND id NOT IN ({})", list.join(","))
        };
        let sql = format!(
            "SELECT id FROM {table} WHERE deleted_at IS NULL{outside} ORDER BY id DESC LIMIT 1"
        );
        Ok(self.load_ids(&sql, None, table)?.into_iter().next())
    }

    fn all_live_ids(&self, table: Table) -> Result<Vec<i64>, StoreError> {
        with_conn!(self, |conn| for_table!(table, |t, _R| {
            t::table
                .filter(t::deleted_at.is_null())
                .select(t::id)
                .order(t::id.asc())
                .load(conn)
                .map_err(StoreError::q("list ids", table.as_str()))
        }))
    }

    fn placeholder(&self, n: usize) -> String {
        match self.backend() {
            Backend::Postgres => format!("${n}"),
            Backend::Sqlite => "?".to_owned(),
        }
    }

    /// Runs `sql` (which selects an integer `id` column), optionally with one integer bind.
    pub(crate) fn load_ids(
        &self,
        sql: &str,
        bind: Option<i64>,
        table: Table,
    ) -> Result<Vec<i64>, StoreError> {
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
