//! Orphans: live relation rows whose parent is not a live row.

use ft_store::{Store, Table};

use crate::error::IntegrityError;
use crate::finding::{Finding, MAX_SAMPLE_IDS, Severity};

/// The check's name.
pub(crate) const NAME: &str = "foreign_keys";

/// Every relation the mirror holds: (child table, column, parent table).
pub const RELATIONS: &[(Table, &str, Table)] = &[
    (Table::CampusUsers, "user_id", Table::Users),
    (Table::CampusUsers, "campus_id", Table::Campuses),
    (Table::CursusUsers, "user_id", Table::Users),
    (Table::CursusUsers, "cursus_id", Table::Cursus),
    (Table::ProjectsUsers, "user_id", Table::Users),
    (Table::ProjectsUsers, "project_id", Table::Projects),
    (Table::AchievementsUsers, "user_id", Table::Users),
    (
        Table::AchievementsUsers,
        "achievement_id",
        Table::Achievements,
    ),
    (Table::Locations, "user_id", Table::Users),
    (Table::CoalitionsUsers, "user_id", Table::Users),
    (Table::CoalitionsUsers, "coalition_id", Table::Coalitions),
    (Table::Blocs, "campus_id", Table::Campuses),
];

/// One finding per relation with orphans: an Error, or a Warning when the parent table has no
/// live row at all (it was never synced, which is a gap in coverage rather than an
/// inconsistency).
pub(crate) fn run(store: &Store) -> Result<Vec<Finding>, IntegrityError> {
    let mut findings = Vec::new();
    for &(child, column, parent) in RELATIONS {
        let (count, sample) = store.orphans(child, column, parent, MAX_SAMPLE_IDS as i64)?;
        if count == 0 {
            continue;
        }
        let parent_empty = store.count(parent, false)? == 0;
        let (severity, hint) = if parent_empty {
            (
                Severity::Warning,
                format!("; `{parent}` has no live rows: sync it before trusting these relations"),
            )
        } else {
            (Severity::Error, String::new())
        };
        findings.push(
            Finding::new(
                NAME,
                severity,
                Some(child.as_str()),
                count,
                format!("{column} -> {parent}: {count} live rows name no live {parent} row{hint}"),
            )
            .with_ids(sample),
        );
    }
    Ok(findings)
}
