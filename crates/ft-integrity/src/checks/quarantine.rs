//! Rows the API sent that could not be stored (issue #16): the mirror lacks them until the API
//! sends them in a form that stores, so each table with quarantined rows is a finding.

use std::collections::BTreeMap;

use ft_store::{QuarantinedRow, Store};

use crate::error::IntegrityError;
use crate::finding::{Finding, Severity};

/// The check's name.
pub(crate) const NAME: &str = "quarantine";

/// Rows read to build the findings (the table normally holds none or a few).
const ROWS_READ: i64 = 10_000;

/// One Warning per table with quarantined rows: how many, since when, the latest reason, and
/// sample ids.
pub(crate) fn run(store: &Store) -> Result<Vec<Finding>, IntegrityError> {
    let mut by_table: BTreeMap<String, Vec<QuarantinedRow>> = BTreeMap::new();
    for row in store.quarantined(ROWS_READ)? {
        by_table.entry(row.resource.clone()).or_default().push(row);
    }
    Ok(by_table
        .into_iter()
        .map(|(table, rows)| {
            let since = rows.iter().map(|r| r.first_seen).min();
            let latest = &rows[0];
            Finding::new(
                NAME,
                Severity::Warning,
                Some(&table),
                rows.len() as i64,
                format!(
                    "{} row(s) the API sent cannot be stored and are missing from the mirror \
                     (quarantined since {}; latest: id {}: {}); they leave the quarantine when \
                     the API sends them in a form that stores (`ft42 status` lists them)",
                    rows.len(),
                    since.map_or_else(String::new, |s| format!("{s} UTC")),
                    latest.item_key,
                    latest.reason
                ),
            )
            .with_ids(rows.iter().filter_map(|r| r.item_id))
        })
        .collect())
}
