//! Read-only queries for ft-integrity: orphans, duplicates, all ids and random samples.
//!
//! The mirror tables have no foreign-key constraints (relations may arrive before their
//! parents), so these queries are how the mirror's consistency is measured. Table names come
//! from [`Table::as_str`] and column names are checked against [`Table::columns`] before they are
//! spliced into SQL; values are always bound.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::error::StoreError;
use crate::reads::StoredRow;
use crate::rows::{Table, for_table};
use crate::store::{Backend, Store, with_conn};

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct KeyIdRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    key: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

/// Checks that `column` is a typed column of `table`, so it can be spliced into SQL; returns it
/// quoted.
fn typed_column(table: Table, column: &str) -> Result<String, StoreError> {
    if table.columns().contains(&column) {
        Ok(format!("\"{column}\""))
    } else {
        Err(StoreError::UnknownColumn {
            table: table.as_str(),
            column: column.to_owned(),
        })
    }
}

impl Store {
    /// Live rows of `child` whose `column` is set but names no live row of `parent`: returns
    /// how many there are and the smallest `sample` of their ids. For example
    /// `orphans(Table::ProjectsUsers, "user_id", Table::Users, 10)`.
    pub fn orphans(
        &self,
        child: Table,
        column: &str,
        parent: Table,
        sample: i64,
    ) -> Result<(i64, Vec<i64>), StoreError> {
        let column = typed_column(child, column)?;
        let (c, p) = (child.as_str(), parent.as_str());
        let condition = format!(
            "FROM {c} c WHERE c.deleted_at IS NULL AND c.{column} IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM {p} p WHERE p.id = c.{column} AND p.deleted_at IS NULL)"
        );
        let count_sql = format!("SELECT COUNT(*) AS n {condition}");
        let sample_sql = format!(
            "SELECT c.id AS id {condition} ORDER BY c.id LIMIT {}",
            self.integrity_placeholder(1)
        );
        let count: CountRow = with_conn!(self, |conn| diesel::sql_query(&count_sql)
            .get_result(conn)
            .map_err(StoreError::q("count orphans", child.as_str())))?;
        let ids: Vec<IdRow> = with_conn!(self, |conn| diesel::sql_query(&sample_sql)
            .bind::<diesel::sql_types::BigInt, _>(sample.max(0))
            .load(conn)
            .map_err(StoreError::q("list orphans", child.as_str())))?;
        Ok((count.n, ids.into_iter().map(|r| r.id).collect()))
    }

    /// Values of the text `column` shared by more than one live row of `table`, each with the
    /// ids holding it (sorted), ordered by value. With `fold_case` values are compared in lower
    /// case (e-mail addresses). NULL and empty values are ignored.
    pub fn duplicates(
        &self,
        table: Table,
        column: &str,
        fold_case: bool,
    ) -> Result<Vec<(String, Vec<i64>)>, StoreError> {
        let column = typed_column(table, column)?;
        let t = table.as_str();
        let key = if fold_case {
            format!("LOWER({column})")
        } else {
            column.clone()
        };
        let sql = format!(
            "SELECT {key} AS key, id FROM {t} WHERE deleted_at IS NULL AND {key} IN \
             (SELECT {key} FROM {t} WHERE deleted_at IS NULL AND {column} IS NOT NULL \
              AND {column} <> '' GROUP BY {key} HAVING COUNT(*) > 1) \
             ORDER BY key, id"
        );
        let rows: Vec<KeyIdRow> = with_conn!(self, |conn| diesel::sql_query(&sql)
            .load(conn)
            .map_err(StoreError::q("find duplicates", table.as_str())))?;
        let mut groups: Vec<(String, Vec<i64>)> = Vec::new();
        for row in rows {
            match groups.last_mut() {
                Some((key, ids)) if *key == row.key => ids.push(row.id),
                _ => groups.push((row.key, vec![row.id])),
            }
        }
        Ok(groups)
    }

    /// Every id of `table`, rows marked deleted included, sorted.
    pub fn all_ids(&self, table: Table) -> Result<Vec<i64>, StoreError> {
        with_conn!(self, |conn| for_table!(table, |t, _R| {
            t::table
                .select(t::id)
                .order(t::id.asc())
                .load(conn)
                .map_err(StoreError::q("list all ids", table.as_str()))
        }))
    }

    /// Up to `n` live rows of `table` chosen at random, with their raw JSON, sorted by id.
    pub fn sample_rows(&self, table: Table, n: i64) -> Result<Vec<StoredRow>, StoreError> {
        let rows: Vec<(i64, String, Option<NaiveDateTime>)> =
            with_conn!(self, |conn| for_table!(table, |t, _R| {
                t::table
                    .filter(t::deleted_at.is_null())
                    .select((t::id, t::raw, t::deleted_at))
                    // RANDOM() exists on both backends; the declared type only matters to Diesel.
                    .order(diesel::dsl::sql::<diesel::sql_types::Double>("RANDOM()"))
                    .limit(n.max(0))
                    .load(conn)
                    .map_err(StoreError::q("sample", table.as_str()))
            }))?;
        let mut out = rows
            .into_iter()
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
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    fn integrity_placeholder(&self, n: usize) -> String {
        match self.backend() {
            Backend::Postgres => format!("${n}"),
            Backend::Sqlite => "?".to_owned(),
        }
    }
}
