//! The engine's error type.

use ft_api::{ApiError, PagingError};
use ft_store::StoreError;

/// Why a sync could not go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The API refused our credentials, or could not be reached at all.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking database call panicked or was cancelled.
    #[error("database worker thread failed: {0}")]
    Join(String),
    /// A page that is inconsistent as a whole (no `X-Total` where one is needed, a count that
    /// disagrees with the rows): a re-read may heal it, so the task is retried. A single row
    /// that cannot be stored is not an error: it is quarantined and its page commits.
    #[error("{what}: {detail}")]
    Data {
        /// What the engine was doing.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// Something no re-read can heal: a task payload or an archive line this version cannot
    /// read, an endpoint that needs a campus the task lacks. The task ends in `error`.
    #[error("{what}: {detail}")]
    Invalid {
        /// What the engine was doing.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// A page broke keyset paging: empty while `X-Total` says rows remain, or ids not
    /// ascending above the cursor (the server ignored `sort` or `range[id]`). Nothing of it was
    /// committed.
    #[error("{endpoint}: {source}")]
    Paging {
        /// The endpoint.
        endpoint: String,
        /// What is wrong with the page.
        source: PagingError,
    },
    /// Another worker took over our task; nothing was written.
    #[error("lease on task {task_id} was lost to another worker; its work was not committed")]
    LeaseLost {
        /// The task.
        task_id: i64,
    },
    /// The raw page archive could not be written or read. A page that cannot be archived is
    /// not committed either (the archive must hold everything the database holds).
    #[error(
        "archive {path}: {detail} (check that the folder exists, is writable and has free space, or unset FT42_EXPORT_DIR to sync without an archive)"
    )]
    Archive {
        /// The file or folder.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// Campuses asked for by id that `/v2/campus` does not return.
    #[error(
        "campus id(s) {ids:?} not found: /v2/campus does not return them; check the ids given to --campus or FT42_CAMPUSES (`ft42 status` lists the campuses known)"
    )]
    UnknownCampuses {
        /// The ids not found.
        ids: Vec<i64>,
    },
    /// Some tasks ended in `error`; the rest of the run went on.
    #[error("{failed} task(s) failed: {first}")]
    TasksFailed {
        /// How many.
        failed: usize,
        /// The first failure's message.
        first: String,
    },
}

impl SyncError {
    /// The client credentials were rejected: nothing will work until an operator fixes them.
    pub fn is_auth(&self) -> bool {
        matches!(self, SyncError::Api(e) if e.is_auth())
    }

    /// The API could not be reached or kept failing.
    pub fn is_api_unavailable(&self) -> bool {
        matches!(self, SyncError::Api(e) if !e.is_auth())
    }

    /// The database failed.
    pub fn is_database(&self) -> bool {
        matches!(self, SyncError::Store(_) | SyncError::Join(_))
    }
}

/// Shorthand used across the crate.
pub(crate) type Result<T, E = SyncError> = std::result::Result<T, E>;
