//! Read-only queries for the metrics file (`ft42 --metrics-file`): totals over the run history.

use diesel::prelude::*;

use crate::error::StoreError;
use crate::schema::sync_runs;
use crate::store::{Store, with_conn};

/// Totals over every finished run in `sync_runs`, from the summaries the engine records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunTotals {
    /// Finished runs (those with a summary).
    pub runs: u64,
    /// Requests sent by those runs (`requests` in each summary).
    pub requests: u64,
    /// 429 answers received by those runs (`responses_429` in each summary).
    pub responses_429: u64,
}

impl Store {
    /// Sums `requests` and `responses_429` over the summaries of every finished run. Only the
    /// summary column is read; a summary that is not JSON is an error naming the run.
    pub fn run_totals(&self) -> Result<RunTotals, StoreError> {
        let rows: Vec<(i64, Option<String>)> = with_conn!(self, |conn| sync_runs::table
            .filter(sync_runs::summary.is_not_null())
            .select((sync_runs::id, sync_runs::summary))
            .load(conn)
            .map_err(StoreError::q("read", "sync_runs")))?;
        let mut totals = RunTotals::default();
        for (id, summary) in rows {
            let Some(text) = summary else { continue };
            let value = crate::logs::parse_json("sync_runs", id, &text)?;
            let figure = |key: &str| value.get(key).and_then(serde_json::Value::as_u64);
            totals.runs += 1;
            totals.requests += figure("requests").unwrap_or(0);
            totals.responses_429 += figure("responses_429").unwrap_or(0);
        }
        Ok(totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_totals_sum_finished_runs_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        store.migrate().unwrap();
        assert_eq!(store.run_totals().unwrap(), RunTotals::default());
        let a = store.start_run("sync", &serde_json::json!({})).unwrap();
        store
            .finish_run(
                a,
                "ok",
                &serde_json::json!({"requests": 7, "responses_429": 1}),
            )
            .unwrap();
        let b = store.start_run("worker", &serde_json::json!({})).unwrap();
        store
            .finish_run(b, "error", &serde_json::json!({"requests": 5}))
            .unwrap();
        // Still running: no summary yet, not counted.
        store.start_run("sync", &serde_json::json!({})).unwrap();
        assert_eq!(
            store.run_totals().unwrap(),
            RunTotals {
                runs: 2,
                requests: 12,
                responses_429: 1
            }
        );
    }
}
