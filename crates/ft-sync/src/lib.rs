//! The sync engine: turns "mirror campus 1" into durable tasks and runs them within the
//! API budget, surviving crashes, rate limits and flaky responses.
//!
//! ```no_run
//! # async fn demo(client: ft_api::FtClient, store: ft_store::Store) -> Result<(), ft_sync::SyncError> {
//! use ft_sync::{Engine, EngineConfig, Mode, SyncRequest, What};
//! let engine = Engine::new(client, store, EngineConfig::default());
//! let summary = engine
//!     .sync(SyncRequest::new(What::Users, Mode::Auto).campuses([1]), ft_sync::progress::discard(), std::future::pending())
//!     .await?;
//! println!("{} rows in {} requests", summary.rows_written, summary.requests);
//! # Ok(()) }
//! ```
//!
//! How it stays correct:
//! - **Tasks** are rows in the store's queue (pending, running, done, error), each one listing
//!   over one scope with its window fixed when it was planned. Workers claim them with a lease
//!   and a fencing token; a worker that lost its lease cannot commit.
//! - **Pages** are read by keyset (`sort=id`, `range[id]`) so the API's newest-first order and
//!   rows changing during a read cannot shift page boundaries.
//! - **Commits** put a page's rows, the cursor advance and the fetch-log row in one transaction.
//!   A crash at any moment loses nothing and re-reads at most the page in flight.
//! - **Deltas** read `range[updated_at]=watermark - overlap, plan time`; the watermark moves to
//!   the plan time only when the whole window was read.
//! - **Campus sets**: campus-scoped listings are read for all due campuses at once (comma
//!   lists in the filters), so a quiet delta costs the same at 1 and at 50 campuses; watermarks
//!   stay per campus.

mod archive;
mod config;
mod engine;
mod error;
mod listing;
mod mapping;
mod pipeline;
mod planner;
pub mod progress;
mod relations;
mod resource;
mod scope;
mod task;
mod worker;

pub use archive::{Archive, PruneSummary, ReplaySummary, replay};
pub use config::{EngineConfig, Mode, SyncRequest, What, default_freshness, default_look_back};
pub use engine::{Clock, Engine, PlanSummary, RunSummary};
pub use error::SyncError;
pub use planner::{Backlog, backlog};
pub use progress::{Progress, ProgressTx};

/// The resource names the engine plans tasks for (task kinds and cursor resources), as used by
/// [`EngineConfig::freshness`].
pub fn resources() -> Vec<&'static str> {
    resource::RESOURCES.iter().map(|r| r.name).collect()
}

/// The resources whose deltas read a time window (`updated_at`, `begin_at`): the ones
/// [`EngineConfig::look_back`] applies to.
pub fn windowed_resources() -> Vec<&'static str> {
    resource::RESOURCES
        .iter()
        .filter(|r| r.time_field.is_some())
        .map(|r| r.name)
        .collect()
}

/// Cursor rows written by this version carry this format number.
pub(crate) const CURSOR_FORMAT: i32 = 1;

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T, F>(f: F) -> error::Result<T>
where
    F: FnOnce() -> Result<T, ft_store::StoreError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(error::SyncError::Join(e.to_string())),
    }
}
