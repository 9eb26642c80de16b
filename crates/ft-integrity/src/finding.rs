//! [`Finding`] and [`Severity`]: what a check reports.

use serde::{Deserialize, Serialize};

/// How serious a finding is. Ordered: `Info < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A figure worth knowing (row counts, maintenance timings).
    Info,
    /// Something to look at that does not make the mirror wrong (a stale scope, a failed task).
    Warning,
    /// The mirror is inconsistent or differs from the API; the CLI exits with code 6.
    Error,
}

impl Severity {
    /// `"info"`, `"warning"` or `"error"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Most sample ids a finding carries.
pub const MAX_SAMPLE_IDS: usize = 10;

/// One thing a check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The check that found it, for example `foreign_keys`.
    pub check: String,
    /// How serious it is.
    pub severity: Severity,
    /// The table (or cursor resource) concerned, if any.
    pub table: Option<String>,
    /// Up to [`MAX_SAMPLE_IDS`] ids of affected rows (or tasks), smallest first where known.
    pub ids: Vec<i64>,
    /// How many rows (or scopes, or tasks) are affected; for counts, the figure itself.
    pub count: i64,
    /// What was found, in one line.
    pub detail: String,
}

impl Finding {
    /// A finding with no ids; add them with [`Finding::with_ids`].
    pub fn new(
        check: &str,
        severity: Severity,
        table: Option<&str>,
        count: i64,
        detail: impl Into<String>,
    ) -> Finding {
        Finding {
            check: check.to_owned(),
            severity,
            table: table.map(str::to_owned),
            ids: Vec::new(),
            count,
            detail: detail.into(),
        }
    }

    /// Sets the sample ids, keeping at most [`MAX_SAMPLE_IDS`].
    pub fn with_ids(mut self, ids: impl IntoIterator<Item = i64>) -> Finding {
        self.ids = ids.into_iter().take(MAX_SAMPLE_IDS).collect();
        self
    }
}
