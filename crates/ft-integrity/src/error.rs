//! The crate's error type: a check that could not run (a finding is never an error).

use std::path::PathBuf;

/// Why a check (or the whole run) could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrityError {
    /// The store failed (unreachable database, failed query, failed write of the report).
    #[error(transparent)]
    Store(#[from] ft_store::StoreError),
    /// The API failed during a spot check.
    #[error("spot check of `{table}` failed: {source}")]
    Api {
        /// The table being checked.
        table: String,
        /// The client's error.
        #[source]
        source: ft_api::ApiError,
    },
    /// The API answered something that is not a list of objects.
    #[error("spot check of `{table}`: unexpected answer from {endpoint}: {detail}")]
    UnexpectedAnswer {
        /// The table being checked.
        table: String,
        /// The endpoint asked.
        endpoint: String,
        /// What was wrong with the answer.
        detail: String,
    },
    /// The API failed during the `X-Total` comparison.
    #[error("X-Total of {endpoint} could not be read: {source}")]
    Totals {
        /// The endpoint asked.
        endpoint: String,
        /// The client's error.
        #[source]
        source: ft_api::ApiError,
    },
    /// A spot check or `X-Total` comparison was asked for without an API client.
    #[error(
        "the spot check and the X-Total comparison need API credentials; configure them or drop --spot-check/--api-totals"
    )]
    NoClient,
    /// Reading the exports archive failed.
    #[error("cannot read the exports archive at `{}`: {source}", path.display())]
    Exports {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A blocking store call panicked or was cancelled.
    #[error("a blocking store call did not finish: {0}")]
    Join(String),
}
