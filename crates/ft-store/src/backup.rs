//! Store-level helpers for backups and restores: is a database empty, which schema version it
//! has, a consistent online copy of an SQLite file, the PostgreSQL server version, and dropping
//! ft42's own tables before a restore.
//!
//! The dump and restore tools themselves (`pg_dump`, `pg_restore`) are processes run by the CLI;
//! only the SQL they need lives here.

use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::ALL_TABLE_NAMES;
use crate::error::StoreError;
use crate::store::{Backend, Pool, Store, with_conn};

/// The table where Diesel records applied migrations.
pub const MIGRATIONS_TABLE: &str = "__diesel_schema_migrations";

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Nullable<Text>)]
    version: Option<String>,
}

#[derive(QueryableByName)]
struct ServerVersion {
    #[diesel(sql_type = Text)]
    server_version_num: String,
}

/// The newest migration this binary knows for `backend` (for example `20261128000002`):
/// a backup whose schema is newer came from a newer ft42 and is refused before a restore.
pub fn latest_schema_version(backend: Backend) -> Option<String> {
    use diesel::migration::MigrationSource;
    let versions = match backend {
        Backend::Sqlite => {
            MigrationSource::<diesel::sqlite::Sqlite>::migrations(&crate::SQLITE_MIGRATIONS)
                .ok()?
                .iter()
                .map(|m| m.name().version().to_string())
                .collect::<Vec<_>>()
        }
        Backend::Postgres => {
            MigrationSource::<diesel::pg::Pg>::migrations(&crate::POSTGRES_MIGRATIONS)
                .ok()?
                .iter()
                .map(|m| m.name().version().to_string())
                .collect::<Vec<_>>()
        }
    };
    versions.into_iter().max()
}

impl Store {
    /// The ft42 tables (and the migrations table) that exist in this database, in
    /// [`ALL_TABLE_NAMES`] order, migrations table last.
    pub fn existing_tables(&self) -> Result<Vec<&'static str>, StoreError> {
        let mut found = Vec::new();
        for table in ALL_TABLE_NAMES.iter().copied().chain([MIGRATIONS_TABLE]) {
            let sql = match self.backend() {
                Backend::Sqlite => format!(
                    "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = '{table}'"
                ),
                // to_regclass follows the search path, like every other query of the store.
                Backend::Postgres => format!(
                    "SELECT COUNT(*)::bigint AS n FROM (SELECT to_regclass('{table}') AS c) t \
                     WHERE c IS NOT NULL"
                ),
            };
            let n = with_conn!(self, |conn| diesel::sql_query(&sql)
                .get_result::<Count>(conn)
                .map(|c| c.n)
                .map_err(StoreError::q("list tables", "*")))?;
            if n > 0 {
                found.push(table);
            }
        }
        Ok(found)
    }

    /// Whether no ft42 table holds a row: true for a database that was never migrated and for a
    /// freshly migrated one. Restores refuse a database where this is false (unless forced), so
    /// a mirror is never overwritten by accident. Tables that are not ft42's are ignored.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        for table in self.existing_tables()? {
            if table == MIGRATIONS_TABLE {
                continue;
            }
            let sql = format!("SELECT COUNT(*) AS n FROM (SELECT 1 FROM {table} LIMIT 1) t");
            let n = with_conn!(self, |conn| diesel::sql_query(&sql)
                .get_result::<Count>(conn)
                .map(|c| c.n)
                .map_err(StoreError::q("count rows", table)))?;
            if n > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The newest applied migration (for example `20261128000002`), or `None` when the database
    /// was never migrated.
    pub fn schema_version(&self) -> Result<Option<String>, StoreError> {
        if !self.existing_tables()?.contains(&MIGRATIONS_TABLE) {
            return Ok(None);
        }
        let sql = format!("SELECT MAX(version) AS version FROM {MIGRATIONS_TABLE}");
        with_conn!(self, |conn| diesel::sql_query(&sql)
            .get_result::<Version>(conn)
            .map(|v| v.version)
            .map_err(StoreError::q("schema version", MIGRATIONS_TABLE)))
    }

    /// Writes a consistent copy of the SQLite database to `path` with `VACUUM INTO`, while other
    /// connections keep reading and writing (the copy is one read transaction). `path` must not
    /// exist. An error on PostgreSQL (use `pg_dump`).
    pub fn vacuum_into(&self, path: &Path) -> Result<(), StoreError> {
        let Pool::Sqlite(pool) = &self.pool else {
            return Err(StoreError::Migrate {
                message: "VACUUM INTO is only for SQLite databases; PostgreSQL is backed up \
                          with pg_dump"
                    .into(),
            });
        };
        let target = path.to_string_lossy().replace('\'', "''");
        self.sqlite(pool)?
            .batch_execute(&format!("VACUUM INTO '{target}'"))
            .map_err(StoreError::q("vacuum into", "*"))
    }

    /// `SHOW server_version_num` of a PostgreSQL server (for example 150018), to check that
    /// `pg_dump` is recent enough; `None` on SQLite.
    pub fn server_version_num(&self) -> Result<Option<u32>, StoreError> {
        let Pool::Pg(pool) = &self.pool else {
            return Ok(None);
        };
        let mut conn = self.pg(pool)?;
        let v = diesel::sql_query("SHOW server_version_num")
            .get_result::<ServerVersion>(&mut *conn)
            .map_err(StoreError::q("server version", "*"))?;
        Ok(v.server_version_num.trim().parse().ok())
    }

    /// Creates the database `name` on this PostgreSQL server (for `ft42 backup verify`'s
    /// scratch database). `name` must be lowercase letters, digits and `_`. Needs the CREATEDB
    /// privilege.
    pub fn create_database(&self, name: &str) -> Result<(), StoreError> {
        self.database_ddl(
            "create database",
            &format!("CREATE DATABASE {}", checked_name(name)?),
        )
    }

    /// Drops the database `name` on this PostgreSQL server, ending its connections first.
    pub fn drop_database(&self, name: &str) -> Result<(), StoreError> {
        self.database_ddl(
            "drop database",
            &format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                checked_name(name)?
            ),
        )
    }

    fn database_ddl(&self, op: &'static str, sql: &str) -> Result<(), StoreError> {
        let Pool::Pg(pool) = &self.pool else {
            return Err(StoreError::Migrate {
                message: format!("{op} is only for PostgreSQL"),
            });
        };
        // Outside a transaction: CREATE and DROP DATABASE cannot run inside one.
        self.pg(pool)?
            .batch_execute(sql)
            .map_err(StoreError::q(op, "*"))
    }

    /// Drops every ft42 table and the migrations table in one transaction (PostgreSQL) so that
    /// `pg_restore` can recreate them; other tables of the database are left alone. On SQLite a
    /// restore replaces the whole file instead, so this is an error there.
    pub fn drop_ft42_tables(&self) -> Result<(), StoreError> {
        let Pool::Pg(pool) = &self.pool else {
            return Err(StoreError::Migrate {
                message: "dropping tables is only used for PostgreSQL restores".into(),
            });
        };
        let tables = self.existing_tables()?;
        if tables.is_empty() {
            return Ok(());
        }
        let mut conn = self.pg(pool)?;
        conn.transaction(|conn| {
            conn.batch_execute(&format!(
                "DROP TABLE IF EXISTS {} CASCADE",
                tables.join(", ")
            ))
        })
        .map_err(StoreError::q("drop tables", "*"))
    }
}

/// `name` when it is a plain lowercase identifier, so it can be spliced into DDL.
fn checked_name(name: &str) -> Result<&str, StoreError> {
    let plain = !name.is_empty()
        && name.len() < 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        Ok(name)
    } else {
        Err(StoreError::Migrate {
            message: format!("{name:?} is not a plain database name (a-z, 0-9, _)"),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::TestDb;
    use crate::{ApplyPage, Backend, Rows, Store, rows::CampusRow};

    fn campus() -> Rows {
        Rows::Campuses(vec![CampusRow {
            id: 1,
            name: "Paris".into(),
            time_zone: None,
            country: None,
            city: None,
            active: Some(true),
            public: Some(true),
            users_count: Some(1),
            raw: r#"{"id":1,"name":"Paris"}"#.into(),
        }])
    }

    #[test]
    fn empty_until_a_row_is_written_on_both_backends() {
        for db in [TestDb::sqlite_unmigrated(), TestDb::postgres_unmigrated()] {
            let store = db.store();
            assert!(store.is_empty().unwrap(), "{:?}", db.backend());
            assert_eq!(store.schema_version().unwrap(), None);
            store.migrate().unwrap();
            assert!(store.is_empty().unwrap(), "migrated but empty");
            assert_eq!(
                store.schema_version().unwrap(),
                super::latest_schema_version(db.backend())
            );
            store.apply_page(ApplyPage::rows(campus())).unwrap();
            assert!(!store.is_empty().unwrap());
        }
    }

    #[test]
    fn vacuum_into_copies_a_consistent_sqlite_file() {
        let db = TestDb::sqlite();
        db.store().apply_page(ApplyPage::rows(campus())).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("copy.db");
        db.store().vacuum_into(&copy).unwrap();
        let restored = Store::open(copy.to_str().unwrap()).unwrap();
        assert_eq!(
            restored.raw_rows(crate::Table::Campuses).unwrap(),
            db.store().raw_rows(crate::Table::Campuses).unwrap()
        );
        assert_eq!(
            restored.schema_version().unwrap(),
            db.store().schema_version().unwrap()
        );
    }

    #[test]
    fn postgres_reports_its_version_and_drops_only_ft42_tables() {
        let db = TestDb::postgres();
        let store = db.store();
        assert_eq!(store.backend(), Backend::Postgres);
        assert!(store.server_version_num().unwrap().unwrap() >= 100_000);
        use diesel::connection::SimpleConnection;
        let mut conn = diesel::PgConnection::establish(db.url()).unwrap();
        conn.batch_execute("CREATE TABLE not_ours (x int); INSERT INTO not_ours VALUES (1)")
            .unwrap();
        store.apply_page(ApplyPage::rows(campus())).unwrap();
        store.drop_ft42_tables().unwrap();
        assert!(store.existing_tables().unwrap().is_empty());
        assert!(store.is_empty().unwrap());
        conn.batch_execute("SELECT x FROM not_ours").unwrap();
        assert!(TestDb::sqlite().store().drop_ft42_tables().is_err());
    }

    #[test]
    fn scratch_databases_are_created_and_dropped() {
        let db = TestDb::postgres();
        let name = format!("ft42_t_scratch_{}", std::process::id());
        db.store().create_database(&name).unwrap();
        let mut url = url::Url::parse(db.url()).unwrap();
        url.set_path(&format!("/{name}"));
        let scratch = Store::open(url.as_str()).unwrap();
        drop(scratch);
        db.store().drop_database(&name).unwrap();
        assert!(Store::open(url.as_str()).is_err());
        assert!(db.store().create_database("x; DROP TABLE users").is_err());
    }

    use diesel::Connection;
}
