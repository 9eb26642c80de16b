//! The store's error type.

/// Everything that can go wrong in the store. Messages never contain a database password: URLs
/// are redacted and connection errors are scrubbed before they are stored here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL is not one the store understands.
    #[error("unsupported database url `{url}`: {reason}")]
    BadUrl {
        /// The URL, password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Connecting failed.
    #[error("cannot connect to the database at `{url}`: {message}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// The driver's message, password scrubbed.
        message: String,
    },
    /// No pooled connection became available.
    #[error("no database connection available from the pool for `{url}`: {message}")]
    Pool {
        /// The URL, password redacted.
        url: String,
        /// The pool's message, password scrubbed.
        message: String,
    },
    /// Applying or listing migrations failed.
    #[error("database migration failed: {message}")]
    Migrate {
        /// What failed.
        message: String,
    },
    /// The database has migrations this binary does not know: it was migrated by a newer ft42.
    #[error(
        "the database schema is newer than this ft42 binary (unknown migrations: {}); upgrade ft42 before using this database",
        unknown.join(", ")
    )]
    NewerSchema {
        /// Versions applied in the database but unknown to this binary.
        unknown: Vec<String>,
    },
    /// The database lacks migrations this binary needs.
    #[error(
        "the database schema is out of date (pending migrations: {}); run `ft42 migrate` first",
        pending.join(", ")
    )]
    PendingMigrations {
        /// Versions this binary has that the database has not applied.
        pending: Vec<String>,
    },
    /// A query failed.
    #[error("{op} on `{table}` failed: {source}")]
    Query {
        /// The operation, for example `upsert` or `claim`.
        op: &'static str,
        /// The table it ran on.
        table: &'static str,
        /// Diesel's error.
        #[source]
        source: diesel::result::Error,
    },
    /// Beginning or committing a transaction failed.
    #[error("database transaction failed: {source}")]
    Transaction {
        /// Diesel's error.
        #[source]
        source: diesel::result::Error,
    },
    /// Another process holds the SQLite database's one-writer lock.
    #[error(
        "the SQLite database is in use by another ft42 process: {holder} (lock file {}, waited {waited:?}); \
         SQLite serves one syncing process at a time: wait for it to finish, or use PostgreSQL to run several workers",
        path.display()
    )]
    Locked {
        /// The lock file.
        path: std::path::PathBuf,
        /// What the holder wrote in the lock file (command, pid, host, since when).
        holder: String,
        /// How long this process waited.
        waited: std::time::Duration,
    },
    /// The lock file beside an SQLite database cannot be created or locked.
    #[error("cannot use the lock file {}: {message}; check that its directory is writable", path.display())]
    LockFile {
        /// The lock file.
        path: std::path::PathBuf,
        /// The I/O error.
        message: String,
    },
    /// The task's lease was taken over (or expired, or the task finished): the caller must stop
    /// working on it and write nothing.
    #[error("lease lost for task {task_id}: another worker owns it, it expired, or it is finished")]
    LeaseLost {
        /// The task.
        task_id: i64,
    },
    /// A column name is not a column of the table.
    #[error("`{column}` is not a column of `{table}`")]
    UnknownColumn {
        /// The table.
        table: &'static str,
        /// The rejected column name.
        column: String,
    },
    /// A stored JSON value could not be parsed.
    #[error("invalid JSON in `{table}` row {id}: {source}")]
    Json {
        /// The table.
        table: &'static str,
        /// The row (or task, or run) id.
        id: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value is not one the store writes (for example an unknown task state).
    #[error("unexpected value in `{table}`: {message}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What was found.
        message: String,
    },
}

impl StoreError {
    pub(crate) fn query(
        op: &'static str,
        table: &'static str,
        source: diesel::result::Error,
    ) -> StoreError {
        StoreError::Query { op, table, source }
    }

    /// A closure for `map_err` that wraps a Diesel error as [`StoreError::Query`].
    pub(crate) fn q(
        op: &'static str,
        table: &'static str,
    ) -> impl FnOnce(diesel::result::Error) -> StoreError {
        move |source| StoreError::Query { op, table, source }
    }

    /// Whether this is [`StoreError::LeaseLost`].
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, StoreError::LeaseLost { .. })
    }
}

impl From<diesel::result::Error> for StoreError {
    /// Errors raised by Diesel's transaction machinery itself (BEGIN, COMMIT, ROLLBACK).
    fn from(source: diesel::result::Error) -> StoreError {
        StoreError::Transaction { source }
    }
}
