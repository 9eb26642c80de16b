//! What a queued task means: the payload the planner writes and the worker reads.
//!
//! A task is one resumable unit of work: one listing over one scope (for example "users of
//! campus 12, changed since T"), or one batch re-check. Its bounds are fixed when it is planned,
//! so a task resumed after a crash reads exactly the window it was planned for.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::resource::Listing;

/// The on-disk format of [`TaskPayload`]; bump it when the meaning of a field changes.
pub(crate) const PAYLOAD_VERSION: i32 = 1;

/// How a listing pass reads its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PassMode {
    /// Every row of the scope.
    Full,
    /// Rows whose `updated_at` falls in `[since, until]`.
    Delta,
}

/// The payload of a task, stored as JSON in the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TaskPayload {
    /// Format version, see [`PAYLOAD_VERSION`].
    pub(crate) version: i32,
    /// The listing to walk.
    pub(crate) listing: Listing,
    /// The campus of a campus-scoped listing read for one campus.
    pub(crate) campus_id: Option<i64>,
    /// The campuses of a campus-scoped listing read for several campuses at once (comma lists
    /// in its filters; see [`crate::scope`]). Absent in payloads written before campus sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) campus_set: Option<Vec<i64>>,
    /// Restricts a global listing to these ids (the campuses of a `--campus` run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ids: Option<Vec<i64>>,
    /// Full or delta.
    pub(crate) mode: PassMode,
    /// Lower bound of a delta window (the scope's watermark minus the overlap).
    pub(crate) since: Option<DateTime<Utc>>,
    /// Upper bound fixed at planning time: the watermark never moves past what was fully read.
    pub(crate) until: DateTime<Utc>,
    /// Whether the users this pass brings in should be queued for a relation refresh.
    pub(crate) enqueue_changed_users: bool,
    /// Dedupe keys of tasks whose rows this one reads: it waits while any of them is pending
    /// or running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) after: Vec<String>,
    /// For the relation worker: users to take from the queue (overrides the engine's setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_users: Option<usize>,
}

impl TaskPayload {
    /// The scope string used for cursors and the queue, e.g. `campus:12`, `campuses:1-3,12`
    /// or `global`.
    pub(crate) fn scope(&self) -> String {
        match &self.campus_set {
            Some(set) => crate::scope::set_scope(set),
            None => scope_of(self.campus_id),
        }
    }

    /// The campuses a campus-scoped task covers (one, or a set), sorted; empty for global
    /// tasks.
    pub(crate) fn campuses(&self) -> Vec<i64> {
        match (&self.campus_set, self.campus_id) {
            (Some(set), _) => set.clone(),
            (None, Some(id)) => vec![id],
            (None, None) => Vec::new(),
        }
    }

    /// The per-campus scopes whose watermarks a completed pass of a campus set advances (empty
    /// for a single campus or a global task: their own cursor is the record).
    pub(crate) fn member_scopes(&self) -> Vec<String> {
        match &self.campus_set {
            Some(set) => set.iter().map(|&c| scope_of(Some(c))).collect(),
            None => Vec::new(),
        }
    }
}

/// The scope string for a campus, or `global`.
pub(crate) fn scope_of(campus_id: Option<i64>) -> String {
    match campus_id {
        Some(id) => format!("campus:{id}"),
        None => "global".to_owned(),
    }
}
