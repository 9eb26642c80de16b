//! Duplicate logins and e-mail addresses among live users.
//!
//! The API keeps both unique, so a duplicate in the mirror means a stale row: typically a user
//! renamed or anonymised upstream whose old row was not refreshed while another user took the
//! value. Anonymised users (`3b3-<id>`, `3b3-<id>@student.42.fr`) carry their own id and are
//! unique by construction, so they need no exception: when one shows up here, two rows really
//! hold the same value.

use ft_store::{Store, Table};

use crate::error::IntegrityError;
use crate::finding::{Finding, Severity};

/// The check's name.
pub(crate) const NAME: &str = "uniqueness";

/// Groups shown in a finding's detail.
const GROUPS_SHOWN: usize = 5;

/// One Error per column with duplicates (logins compared exactly, e-mails without case).
pub(crate) fn run(store: &Store) -> Result<Vec<Finding>, IntegrityError> {
    let mut findings = Vec::new();
    for (column, fold_case) in [("login", false), ("email", true)] {
        let groups = store.duplicates(Table::Users, column, fold_case)?;
        if groups.is_empty() {
            continue;
        }
        let rows: usize = groups.iter().map(|(_, ids)| ids.len()).sum();
        let shown: Vec<String> = groups
            .iter()
            .take(GROUPS_SHOWN)
            .map(|(value, ids)| {
                let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
                format!("`{value}` on ids {}", ids.join(", "))
            })
            .collect();
        let more = groups.len().saturating_sub(GROUPS_SHOWN);
        let more = if more > 0 {
            format!("; {more} more")
        } else {
            String::new()
        };
        findings.push(
            Finding::new(
                NAME,
                Severity::Error,
                Some(Table::Users.as_str()),
                groups.len() as i64,
                format!(
                    "{} {column} values held by {rows} live users: {}{more}",
                    groups.len(),
                    shown.join("; ")
                ),
            )
            .with_ids(groups.iter().flat_map(|(_, ids)| ids.iter().copied())),
        );
    }
    Ok(findings)
}
