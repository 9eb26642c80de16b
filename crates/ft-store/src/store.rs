//! [`Store`]: the connection pool, URL handling, migrations and maintenance.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool as R2d2Pool, PooledConnection};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::StoreError;
use crate::url::{DatabaseUrl, NO_TLS_FIX};

/// Migrations for SQLite (`migrations/sqlite`).
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
/// Migrations for PostgreSQL (`migrations/postgres`).
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Per-connection SQLite settings. busy_timeout comes first so that the journal-mode switch
/// itself waits for other connections instead of failing with "database is locked". WAL with
/// synchronous=NORMAL keeps commits durable against process crashes (a power loss can lose the
/// last transactions, never corrupt the file). A 32 MiB page cache per connection (the default
/// is 2 MiB) keeps the index pages of a large mirror in memory during upserts.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 15000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY;";

/// Key of the PostgreSQL advisory lock held while migrating, so that two processes starting at
/// once do not both run the same migration. The value is arbitrary but fixed ("ft42" in ASCII).
const PG_MIGRATION_LOCK: i64 = 0x6674_3432;

/// The database backend behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// `"sqlite"` or `"postgres"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Pool settings for [`Store::open_with`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long a caller waits for a free connection before [`StoreError::Pool`].
    pub connection_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            connection_timeout: Duration::from_secs(30),
        }
    }
}

/// One typed pool per backend. Diesel's `MultiConnection` cannot express `ON CONFLICT`, so the
/// store matches on this enum and expands the same query for each backend with a macro.
#[derive(Clone)]
pub(crate) enum Pool {
    Pg(R2d2Pool<ConnectionManager<PgConnection>>),
    Sqlite(R2d2Pool<ConnectionManager<SqliteConnection>>),
}

/// The store: a pool of connections to one SQLite file or PostgreSQL database.
///
/// Cheap to clone; all methods are blocking (call them from async code through
/// `tokio::task::spawn_blocking`).
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    /// The URL with its password replaced, for messages.
    pub(crate) url: Arc<str>,
    /// The password, kept only to scrub it out of driver messages.
    secret: Option<Arc<str>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn scrub(message: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() => {
            let decoded = url::form_urlencoded::parse(format!("p={secret}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let mut out = message.replace(secret, "***");
            if !decoded.is_empty() {
                out = out.replace(&decoded, "***");
            }
            out
        }
        _ => message.to_owned(),
    }
}

/// libpq's TLS errors, with what to do: its refusal of a TLS setting the URL check cannot see
/// (`PGSSLMODE=require` in the environment, a service file) in a build without TLS, and a
/// server certificate that the given CA did not sign.
fn tls_hint(message: String) -> String {
    let message = message.trim_end();
    if message.contains("SSL support is not compiled in") {
        format!("{message}: {NO_TLS_FIX}")
    } else if message.contains("certificate verify failed") {
        format!(
            "{message} (the server's certificate is not signed by the CA that sslrootcert names; \
             point sslrootcert at the CA file your PostgreSQL provider publishes, or use \
             sslrootcert=system for a certificate from a public CA)"
        )
    } else {
        message.to_owned()
    }
}

#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(SQLITE_PRAGMAS)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

impl Store {
    /// Opens a pool to `url` (`postgres://`, `postgresql://`, `sqlite://PATH` or a path) and
    /// checks that one connection works. Does not migrate; see [`Store::migrate`] and
    /// [`Store::schema_check`].
    pub fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, &StoreOptions::default())
    }

    /// [`Store::open`] with pool settings.
    pub fn open_with(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        Store::connect(&DatabaseUrl::parse(url)?, options)
    }

    /// Opens a pool to an already parsed address, with pool settings.
    pub fn connect(url: &DatabaseUrl, options: &StoreOptions) -> Result<Store, StoreError> {
        let redacted: Arc<str> = url.redacted().into();
        let secret: Option<Arc<str>> = url.password().map(Into::into);
        let connect_error = |message: String| StoreError::Connect {
            url: redacted.to_string(),
            message: tls_hint(scrub(&message, secret.as_deref())),
        };
        fn builder<M: diesel::r2d2::ManageConnection>(
            options: &StoreOptions,
        ) -> diesel::r2d2::Builder<M> {
            R2d2Pool::builder()
                .max_size(options.max_connections.max(1))
                .min_idle(Some(1))
                .connection_timeout(options.connection_timeout)
        }
        let pool = match url.sqlite_path() {
            None => {
                let conn_str = url.expose_secret().to_owned();
                // Connect once directly: r2d2 retries until its timeout and then reports only a
                // generic error, while this gives the real reason at once.
                PgConnection::establish(&conn_str).map_err(|e| connect_error(e.to_string()))?;
                let manager = ConnectionManager::<PgConnection>::new(conn_str);
                Pool::Pg(builder(options).build_unchecked(manager))
            }
            Some(path) => {
                let path = path.to_string_lossy().into_owned();
                let mut conn = SqliteConnection::establish(&path).map_err(|e| {
                    connect_error(format!(
                        "{e} (check that the directory exists and is writable)"
                    ))
                })?;
                conn.batch_execute(SQLITE_PRAGMAS)
                    .map_err(|e| connect_error(e.to_string()))?;
                let manager = ConnectionManager::<SqliteConnection>::new(path);
                Pool::Sqlite(
                    builder(options)
                        .connection_customizer(Box::new(SqlitePragmas))
                        .build_unchecked(manager),
                )
            }
        };
        Ok(Store {
            pool,
            url: redacted,
            secret,
        })
    }

    /// The backend this store talks to.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Pg(_) => Backend::Postgres,
            Pool::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The database URL with its password redacted.
    pub fn redacted_url(&self) -> &str {
        &self.url
    }

    pub(crate) fn pool_error(&self, error: diesel::r2d2::PoolError) -> StoreError {
        StoreError::Pool {
            url: self.url.to_string(),
            message: scrub(&error.to_string(), self.secret.as_deref()),
        }
    }

    pub(crate) fn pg(
        &self,
        pool: &R2d2Pool<ConnectionManager<PgConnection>>,
    ) -> Result<PooledConnection<ConnectionManager<PgConnection>>, StoreError> {
        pool.get().map_err(|e| self.pool_error(e))
    }

    pub(crate) fn sqlite(
        &self,
        pool: &R2d2Pool<ConnectionManager<SqliteConnection>>,
    ) -> Result<PooledConnection<ConnectionManager<SqliteConnection>>, StoreError> {
        pool.get().map_err(|e| self.pool_error(e))
    }

    /// Applies the pending embedded migrations and returns how many ran. Refuses a database
    /// that has migrations this binary does not know ([`StoreError::NewerSchema`]).
    pub fn migrate(&self) -> Result<usize, StoreError> {
        let migrate_error = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Migrate {
            message: scrub(&e.to_string(), self.secret.as_deref()),
        };
        match &self.pool {
            Pool::Pg(pool) => {
                let mut conn = self.pg(pool)?;
                diesel::sql_query(format!("SELECT pg_advisory_lock({PG_MIGRATION_LOCK})"))
                    .execute(&mut *conn)
                    .map_err(StoreError::q(
                        "migration lock",
                        "__diesel_schema_migrations",
                    ))?;
                let result = (|| {
                    check_not_newer(&mut *conn, POSTGRES_MIGRATIONS, &migrate_error)?;
                    conn.run_pending_migrations(POSTGRES_MIGRATIONS)
                        .map(|applied| applied.len())
                        .map_err(migrate_error)
                })();
                let unlock =
                    diesel::sql_query(format!("SELECT pg_advisory_unlock({PG_MIGRATION_LOCK})"))
                        .execute(&mut *conn);
                let applied = result?;
                unlock.map_err(StoreError::q(
                    "migration unlock",
                    "__diesel_schema_migrations",
                ))?;
                Ok(applied)
            }
            Pool::Sqlite(pool) => {
                let mut conn = self.sqlite(pool)?;
                check_not_newer(&mut *conn, SQLITE_MIGRATIONS, &migrate_error)?;
                conn.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|applied| applied.len())
                    .map_err(migrate_error)
            }
        }
    }

    /// Checks that the database schema is exactly what this binary expects: no unknown (newer)
    /// migrations ([`StoreError::NewerSchema`]) and no pending ones
    /// ([`StoreError::PendingMigrations`]).
    pub fn schema_check(&self) -> Result<(), StoreError> {
        let migrate_error = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Migrate {
            message: scrub(&e.to_string(), self.secret.as_deref()),
        };
        let pending = match &self.pool {
            Pool::Pg(pool) => {
                let mut conn = self.pg(pool)?;
                check_not_newer(&mut *conn, POSTGRES_MIGRATIONS, &migrate_error)?;
                pending_versions(&mut *conn, POSTGRES_MIGRATIONS, &migrate_error)?
            }
            Pool::Sqlite(pool) => {
                let mut conn = self.sqlite(pool)?;
                check_not_newer(&mut *conn, SQLITE_MIGRATIONS, &migrate_error)?;
                pending_versions(&mut *conn, SQLITE_MIGRATIONS, &migrate_error)?
            }
        };
        if pending.is_empty() {
            Ok(())
        } else {
            Err(StoreError::PendingMigrations { pending })
        }
    }

    /// Updates the planner's statistics (`ANALYZE`).
    pub fn analyze(&self) -> Result<(), StoreError> {
        with_conn!(self, |conn| conn
            .batch_execute("ANALYZE")
            .map_err(StoreError::q("analyze", "*")))
    }

    /// Reclaims free space (`VACUUM`; on PostgreSQL also refreshes statistics). Needs no other
    /// transaction open on the same connection, which the pool guarantees.
    pub fn vacuum(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Pg(pool) => self
                .pg(pool)?
                .batch_execute("VACUUM (ANALYZE)")
                .map_err(StoreError::q("vacuum", "*")),
            Pool::Sqlite(pool) => {
                let mut conn = self.sqlite(pool)?;
                conn.batch_execute("VACUUM")
                    .map_err(StoreError::q("vacuum", "*"))?;
                // Fold the WAL back into the main file so size_bytes and backups see it.
                conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    .map_err(StoreError::q("wal checkpoint", "*"))
            }
        }
    }

    /// Rebuilds the indexes of every mirror and sync-state table.
    pub fn reindex(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Pg(pool) => {
                let mut conn = self.pg(pool)?;
                // REINDEX DATABASE needs the database name and ownership of system catalogs;
                // per-table REINDEX only needs ownership of our tables.
                for table in crate::ALL_TABLE_NAMES {
                    conn.batch_execute(&format!("REINDEX TABLE {table}"))
                        .map_err(StoreError::q("reindex", table))?;
                }
                Ok(())
            }
            Pool::Sqlite(pool) => self
                .sqlite(pool)?
                .batch_execute("REINDEX")
                .map_err(StoreError::q("reindex", "*")),
        }
    }

    /// The database's size on disk in bytes (SQLite: the main file's pages, WAL excluded;
    /// PostgreSQL: `pg_database_size`).
    pub fn size_bytes(&self) -> Result<i64, StoreError> {
        #[derive(QueryableByName)]
        struct Size {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            size: i64,
        }
        let sql = match self.backend() {
            Backend::Postgres => "SELECT pg_database_size(current_database())::bigint AS size",
            Backend::Sqlite => {
                "SELECT page_count * page_size AS size FROM pragma_page_count(), pragma_page_size()"
            }
        };
        with_conn!(self, |conn| diesel::sql_query(sql)
            .get_result::<Size>(conn)
            .map(|s| s.size)
            .map_err(StoreError::q("size", "*")))
    }
}

fn known_versions<DB: diesel::backend::Backend>(
    source: &impl diesel::migration::MigrationSource<DB>,
) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    Ok(source
        .migrations()?
        .iter()
        .map(|m| m.name().version().to_string())
        .collect())
}

fn check_not_newer<C, DB>(
    conn: &mut C,
    source: EmbeddedMigrations,
    migrate_error: &impl Fn(Box<dyn std::error::Error + Send + Sync>) -> StoreError,
) -> Result<(), StoreError>
where
    DB: diesel::backend::Backend,
    C: MigrationHarness<DB>,
    EmbeddedMigrations: diesel::migration::MigrationSource<DB>,
{
    let known = known_versions::<DB>(&source).map_err(migrate_error)?;
    let applied = conn.applied_migrations().map_err(migrate_error)?;
    let mut unknown: Vec<String> = applied
        .iter()
        .map(|v| v.to_string())
        .filter(|v| !known.contains(v))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        unknown.sort();
        Err(StoreError::NewerSchema { unknown })
    }
}

fn pending_versions<C, DB>(
    conn: &mut C,
    source: EmbeddedMigrations,
    migrate_error: &impl Fn(Box<dyn std::error::Error + Send + Sync>) -> StoreError,
) -> Result<Vec<String>, StoreError>
where
    DB: diesel::backend::Backend,
    C: MigrationHarness<DB>,
    EmbeddedMigrations: diesel::migration::MigrationSource<DB>,
{
    let pending = conn.pending_migrations(source).map_err(migrate_error)?;
    Ok(pending
        .iter()
        .map(|m| m.name().version().to_string())
        .collect())
}

/// Runs `$body` with `$conn` bound to a pooled `&mut PgConnection` or `&mut SqliteConnection`.
/// The body is expanded once per backend, so backend-specific query types are fine. Evaluates
/// to the body's `Result<_, StoreError>`.
macro_rules! with_conn {
    ($store:expr, |$conn:ident| $body:expr) => {
        match &$store.pool {
            crate::store::Pool::Pg(pool) => {
                let mut pooled = $store.pg(pool)?;
                let $conn: &mut diesel::PgConnection = &mut pooled;
                $body
            }
            crate::store::Pool::Sqlite(pool) => {
                let mut pooled = $store.sqlite(pool)?;
                let $conn: &mut diesel::SqliteConnection = &mut pooled;
                $body
            }
        }
    };
}
pub(crate) use with_conn;

/// Like [`with_conn`], inside one transaction: a plain one on PostgreSQL, `BEGIN IMMEDIATE` on
/// SQLite (it takes the write lock up front, so busy_timeout applies instead of a deadlock-prone
/// lock upgrade). Any `Err` rolls everything back. The split form takes one body per backend.
macro_rules! with_tx {
    ($store:expr, |$conn:ident| $body:expr) => {
        crate::store::with_tx!($store, pg: |$conn| $body, sqlite: |$conn| $body)
    };
    ($store:expr, pg: |$pc:ident| $pg_body:expr, sqlite: |$sc:ident| $sqlite_body:expr) => {
        match &$store.pool {
            crate::store::Pool::Pg(pool) => {
                let mut pooled = $store.pg(pool)?;
                diesel::Connection::transaction::<_, crate::error::StoreError, _>(
                    &mut *pooled,
                    |$pc: &mut diesel::PgConnection| $pg_body,
                )
            }
            crate::store::Pool::Sqlite(pool) => {
                let mut pooled = $store.sqlite(pool)?;
                pooled.immediate_transaction::<_, crate::error::StoreError, _>(
                    |$sc: &mut diesel::SqliteConnection| $sqlite_body,
                )
            }
        }
    };
}
pub(crate) use with_tx;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_and_scrubbed() {
        let url = DatabaseUrl::parse("postgres://alice:s3cr%40t@db.example:5432/ft42").unwrap();
        assert!(!url.redacted().contains("s3cr"), "{url}");
        assert!(url.redacted().contains("alice"), "{url}");
        let secret = url.password();
        let message = "failed for s3cr%40t and s3cr@t";
        assert_eq!(scrub(message, secret.as_deref()), "failed for *** and ***");
    }

    #[test]
    fn libpq_tls_errors_get_the_fix() {
        let libpq = "sslmode value \"require\" invalid when SSL support is not compiled in\n";
        let message = tls_hint(libpq.to_owned());
        assert!(
            message.starts_with("sslmode value \"require\" invalid"),
            "{message}"
        );
        assert!(message.ends_with(NO_TLS_FIX), "{message}");
        let libpq = "connection to server at \"h\", port 5432 failed: SSL error: certificate verify failed\n";
        let message = tls_hint(libpq.to_owned());
        assert!(message.contains("certificate verify failed (the server's certificate is not signed by the CA that sslrootcert names"), "{message}");
        assert_eq!(
            tls_hint("connection refused\n".to_owned()),
            "connection refused"
        );
    }
}
