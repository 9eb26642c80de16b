//! Progress events the engine sends while it works, for the CLI to draw.

use std::time::Duration;

/// Something that happened during a run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Progress {
    /// A task was claimed and started.
    TaskStarted {
        /// Queue id of the task.
        task_id: i64,
        /// What it syncs, e.g. `users`.
        kind: String,
        /// Its scope, e.g. `campus:1`.
        scope: String,
        /// Rows to read, when known from `X-Total`.
        total: Option<u64>,
    },
    /// A page was committed.
    Page {
        /// Queue id of the task.
        task_id: i64,
        /// Rows committed by this task so far.
        rows: u64,
        /// Rows the listing holds in all (rows so far plus what `X-Total` says remains).
        total: Option<u64>,
        /// Pages committed by this task so far.
        pages_done: u64,
    },
    /// The engine is waiting for request budget (or for a server-imposed pause): not stuck.
    Waiting {
        /// How long.
        wait: Duration,
        /// Why, in a few words.
        reason: String,
    },
    /// A task ended.
    TaskFinished {
        /// Queue id of the task.
        task_id: i64,
        /// Whether it completed.
        ok: bool,
        /// The error or parking reason, if any.
        message: Option<String>,
    },
}

/// Where progress goes. Sending never blocks; a dropped receiver is ignored.
pub type ProgressTx = tokio::sync::mpsc::UnboundedSender<Progress>;

/// A sender whose events go nowhere, for callers that do not draw progress.
pub fn discard() -> ProgressTx {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    tx
}
