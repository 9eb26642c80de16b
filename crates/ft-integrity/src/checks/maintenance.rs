//! ANALYZE, REINDEX and VACUUM through the store, with time taken and size before and after.

use std::time::Instant;

use ft_store::{Store, StoreError};

use crate::error::IntegrityError;
use crate::finding::{Finding, Severity};
use crate::options::Maintenance;

/// The check's name.
pub(crate) const NAME: &str = "maintenance";

/// A maintenance call on the store.
type Operation = fn(&Store) -> Result<(), StoreError>;

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// One Info finding per operation run, in the order analyze, reindex, vacuum (vacuum last, so
/// it reclaims what the others freed). The finding's count is the size after, in bytes.
pub(crate) fn run(store: &Store, what: Maintenance) -> Result<Vec<Finding>, IntegrityError> {
    let ops: [(&str, bool, Operation); 3] = [
        ("analyze", what.analyze, Store::analyze),
        ("reindex", what.reindex, Store::reindex),
        ("vacuum", what.vacuum, Store::vacuum),
    ];
    let mut findings = Vec::new();
    for (name, wanted, op) in ops {
        if !wanted {
            continue;
        }
        let before = store.size_bytes()?;
        let started = Instant::now();
        op(store)?;
        let took = started.elapsed();
        let after = store.size_bytes()?;
        findings.push(Finding::new(
            NAME,
            Severity::Info,
            None,
            after,
            format!(
                "{name} took {:.2} s; size {} -> {}",
                took.as_secs_f64(),
                mib(before),
                mib(after)
            ),
        ));
    }
    Ok(findings)
}
