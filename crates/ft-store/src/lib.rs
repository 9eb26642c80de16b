//! The Diesel store: schema, migrations, upserts, cursors and the durable task queue, on SQLite
//! and PostgreSQL.
//!
//! One [`Store`] (a connection pool) serves both backends; every query is written once and
//! expanded for each backend's connection type, because Diesel's `MultiConnection` cannot express
//! `ON CONFLICT`. SQLite is the embedded default (`sqlite://PATH` or a plain path); PostgreSQL
//! (`postgres://...`) serves production and several workers.
//!
//! * Mirror tables ([`Table`], rows in [`rows`]) hold one row per 42 object, keyed by its id, with
//!   typed columns, the item's `raw` JSON (JSONB on PostgreSQL), `ingested_at` and `deleted_at`.
//! * [`Store::apply_page`] writes a page's rows, its cursor, its fetch-log row and its
//!   relation-queue entries in one transaction, after checking the task's [`Fence`].
//! * The task queue ([`Store::enqueue`], [`Store::claim`], ...) hands out leases with fencing
//!   tokens.
//!
//! ```no_run
//! use ft_store::{ApplyPage, Rows, Store, rows::CampusRow};
//!
//! let store = Store::open("sqlite://ft42.db")?;
//! store.migrate()?;
//! let campus = CampusRow {
//!     id: 1,
//!     name: "Paris".into(),
//!     time_zone: Some("Europe/Paris".into()),
//!     country: Some("France".into()),
//!     city: Some("Paris".into()),
//!     active: Some(true),
//!     public: Some(true),
//!     users_count: Some(1),
//!     raw: r#"{"id":1,"name":"Paris"}"#.into(),
//! };
//! store.apply_page(ApplyPage::rows(Rows::Campuses(vec![campus])))?;
//! # Ok::<(), ft_store::StoreError>(())
//! ```

mod apply;
mod backup;
mod cursors;
mod embedded;
mod engine_support;
mod error;
mod freshness;
mod integrity_queries;
mod lock;
mod logs;
mod metrics;
mod ops;
mod quarantine;
mod rate_ledger;
mod raw_json;
mod reads;
mod request_log;
pub mod rows;
pub mod schema;
mod store;
mod tasks;
#[cfg(feature = "test-support")]
pub mod test_support;
mod upsert;
mod url;

pub use apply::{ApplyOutcome, ApplyPage, Fence, FetchLogEntry};
pub use backup::{MIGRATIONS_TABLE, latest_schema_version};
pub use cursors::{Cursor, CursorUpdate};
pub use error::StoreError;
pub use freshness::{DEFAULT_GRACE, DEFAULT_REFRESH, Freshness};
pub use lock::{LockWait, WriterLock};
pub use logs::{FetchLogRecord, IntegrityRun, RELATION_TAKE_LEASE, SyncRun};
pub use metrics::RunTotals;
pub use ops::HourlyRequests;
pub use quarantine::{Quarantined, QuarantinedRow};
pub use rate_ledger::RateLedger;
pub use reads::{Column, IdsWhere, StoredRow};
pub use request_log::RequestLog;
pub use rows::{Rows, Table, UnknownTable};
pub use store::{Backend, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, Store, StoreOptions};
pub use tasks::{ClaimedTask, Lane, NewTask, Task, TaskFilter, TaskState};
pub use url::{DatabaseUrl, PG_TLS, redact_url};

/// Every table the migrations create, mirror tables first.
pub const ALL_TABLE_NAMES: &[&str] = &[
    "campuses",
    "users",
    "campus_users",
    "cursus",
    "cursus_users",
    "projects",
    "projects_users",
    "achievements",
    "achievements_users",
    "locations",
    "coalitions",
    "blocs",
    "coalitions_users",
    "cursors",
    "tasks",
    "fetch_log",
    "sync_runs",
    "relation_queue",
    "integrity_runs",
    "rate_reservations",
    "quarantine",
];

/// The current UTC time without a zone, as every timestamp column stores it. Truncated to
/// microseconds, the precision both backends keep, so values read back compare equal.
pub(crate) fn now() -> chrono::NaiveDateTime {
    use chrono::{DurationRound, TimeDelta};
    let now = chrono::Utc::now().naive_utc();
    now.duration_trunc(TimeDelta::microseconds(1))
        .unwrap_or(now)
}
