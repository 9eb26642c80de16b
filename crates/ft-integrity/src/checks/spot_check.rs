//! Rows fetched again from the API by id and compared field by field with the stored JSON.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ft_api::{FtClient, Query};
use ft_store::{Store, StoredRow, Table};
use serde_json::Value;

use crate::error::IntegrityError;
use crate::finding::{Finding, Severity};
use crate::options::SpotCheck;

/// The check's name.
pub(crate) const NAME: &str = "spot_check";

/// Differences quoted in a finding's detail.
const DIFFS_SHOWN: usize = 3;

/// Embedded copies of other objects: the API does not re-date a row when the embedded object
/// changes, so they are not compared.
const IGNORED_FIELDS: &[&str] = &["user"];

/// The list endpoint that serves `table` and accepts `filter[id]`.
fn endpoint(table: Table) -> &'static str {
    use ft_api::endpoints as ep;
    match table {
        Table::Campuses => ep::CAMPUSES.path(),
        Table::Users => ep::USERS.path(),
        Table::CampusUsers => ep::CAMPUS_USERS.path(),
        Table::Cursus => ep::CURSUS.path(),
        Table::CursusUsers => ep::CURSUS_USERS.path(),
        Table::Projects => ep::PROJECTS.path(),
        Table::ProjectsUsers => ep::PROJECTS_USERS.path(),
        Table::Achievements => ep::ACHIEVEMENTS.path(),
        Table::AchievementsUsers => ep::ACHIEVEMENTS_USERS.path(),
        Table::Locations => ep::LOCATIONS.path(),
        Table::Coalitions => ep::COALITIONS.path(),
        Table::Blocs => ep::BLOCS.path(),
        Table::CoalitionsUsers => ep::COALITIONS_USERS.path(),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ft_store::StoreError> + Send + 'static,
) -> Result<T, IntegrityError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(IntegrityError::Join(e.to_string())),
    }
}

/// See [`crate::spot_check`].
pub(crate) async fn run(
    store: &Store,
    client: &FtClient,
    spot: &SpotCheck,
) -> Result<Vec<Finding>, IntegrityError> {
    let per_table = spot.per_table.min(SpotCheck::MAX_PER_TABLE) as i64;
    let mut findings = Vec::new();
    if per_table == 0 {
        return Ok(findings);
    }
    for &table in &spot.tables {
        let sampler = store.clone();
        let stored = blocking(move || sampler.sample_rows(table, per_table)).await?;
        if stored.is_empty() {
            findings.push(Finding::new(
                NAME,
                Severity::Info,
                Some(table.as_str()),
                0,
                "no live rows; nothing to compare",
            ));
            continue;
        }
        let ids: Vec<i64> = stored.iter().map(|r| r.id).collect();
        let path = endpoint(table);
        let query = Query::new()
            .filter("id", ids.iter().copied())
            .per_page(ids.len() as u32)
            .page(1);
        let answer = client
            .get_json(path, &query)
            .await
            .map_err(|source| IntegrityError::Api {
                table: table.as_str().to_owned(),
                source,
            })?;
        let Value::Array(items) = answer else {
            return Err(IntegrityError::UnexpectedAnswer {
                table: table.as_str().to_owned(),
                endpoint: path.to_owned(),
                detail: "expected a JSON array".to_owned(),
            });
        };
        let fetched: BTreeMap<i64, Value> = items
            .into_iter()
            .filter_map(|item| Some((item.get("id")?.as_i64()?, item)))
            .collect();
        findings.extend(compare(table, &stored, &fetched));
    }
    Ok(findings)
}

fn updated_at(v: &Value) -> Option<DateTime<Utc>> {
    let text = v.get("updated_at")?.as_str()?;
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.to_utc())
}

/// Short text of a JSON value for a detail line.
fn short(v: Option<&Value>) -> String {
    let text = v.map_or_else(|| "(absent)".to_owned(), Value::to_string);
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

/// The fields of `stored` and `fetched` that differ, with both values.
fn differences(stored: &Value, fetched: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let a = stored.as_object().unwrap_or(&empty);
    let b = fetched.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !IGNORED_FIELDS.contains(&k.as_str()))
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {} -> {}", short(a.get(k)), short(b.get(k))))
        .collect()
}

/// Compares stored rows with what the API returned for the same ids. A row that differs while
/// the API's `updated_at` is newer was changed upstream since the last sync (Warning: the next
/// delta brings it); one that differs with the same `updated_at` (or none) cannot be caught by
/// a delta (Error). Rows the API did not return may have been deleted upstream (Warning).
pub(crate) fn compare(
    table: Table,
    stored: &[StoredRow],
    fetched: &BTreeMap<i64, Value>,
) -> Vec<Finding> {
    let mut missing = Vec::new();
    let mut newer: Vec<(i64, Vec<String>)> = Vec::new();
    let mut same: Vec<(i64, Vec<String>)> = Vec::new();
    for row in stored {
        let Some(api) = fetched.get(&row.id) else {
            missing.push(row.id);
            continue;
        };
        let diffs = differences(&row.raw, api);
        if diffs.is_empty() {
            continue;
        }
        match (updated_at(&row.raw), updated_at(api)) {
            (Some(mine), Some(theirs)) if theirs > mine => newer.push((row.id, diffs)),
            _ => same.push((row.id, diffs)),
        }
    }
    let name = table.as_str();
    let mut findings = vec![Finding::new(
        NAME,
        Severity::Info,
        Some(name),
        stored.len() as i64,
        format!(
            "{} rows compared: {} equal, {} changed upstream since the last sync, {} differ \
             with the same updated_at, {} not returned by the API",
            stored.len(),
            stored.len() - missing.len() - newer.len() - same.len(),
            newer.len(),
            same.len(),
            missing.len()
        ),
    )];
    let describe = |rows: &[(i64, Vec<String>)]| {
        rows.iter()
            .take(DIFFS_SHOWN)
            .map(|(id, diffs)| format!("id {id}: {}", diffs.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    };
    if !same.is_empty() {
        findings.push(
            Finding::new(
                NAME,
                Severity::Error,
                Some(name),
                same.len() as i64,
                format!(
                    "{} rows differ from the API although their updated_at is the same (a delta \
                     will not repair them; run a full sync of this table): {}",
                    same.len(),
                    describe(&same)
                ),
            )
            .with_ids(same.iter().map(|(id, _)| *id)),
        );
    }
    if !newer.is_empty() {
        findings.push(
            Finding::new(
                NAME,
                Severity::Warning,
                Some(name),
                newer.len() as i64,
                format!(
                    "{} rows changed upstream since the last sync (the next delta brings them): {}",
                    newer.len(),
                    describe(&newer)
                ),
            )
            .with_ids(newer.iter().map(|(id, _)| *id)),
        );
    }
    if !missing.is_empty() {
        findings.push(
            Finding::new(
                NAME,
                Severity::Warning,
                Some(name),
                missing.len() as i64,
                format!(
                    "{} stored rows were not returned by the API (deleted upstream, or not \
                     visible to this application)",
                    missing.len()
                ),
            )
            .with_ids(missing),
        );
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(id: i64, raw: Value) -> StoredRow {
        StoredRow {
            id,
            raw,
            deleted_at: None,
        }
    }

    #[test]
    fn differences_ignore_embedded_users_and_classify_by_updated_at() {
        let stored = vec![
            row(
                1,
                json!({"id": 1, "level": 3.5, "updated_at": "2026-11-01T00:00:00Z", "user": {"login": "a"}}),
            ),
            row(
                2,
                json!({"id": 2, "level": 1.0, "updated_at": "2026-11-01T00:00:00Z"}),
            ),
            row(
                3,
                json!({"id": 3, "level": 1.0, "updated_at": "2026-11-01T00:00:00Z"}),
            ),
            row(4, json!({"id": 4})),
        ];
        let fetched: BTreeMap<i64, Value> = [
            (1, json!({"id": 1, "level": 3.5, "updated_at": "2026-11-01T00:00:00Z", "user": {"login": "b"}})),
            (2, json!({"id": 2, "level": 2.0, "updated_at": "2026-11-01T00:00:00Z"})),
            (3, json!({"id": 3, "level": 2.0, "updated_at": "2026-11-02T00:00:00Z"})),
        ]
        .into_iter()
        .collect();
        let findings = compare(Table::CursusUsers, &stored, &fetched);
        let by = |s: Severity| {
            findings
                .iter()
                .filter(|f| f.severity == s)
                .collect::<Vec<_>>()
        };
        let errors = by(Severity::Error);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].ids, vec![2]);
        assert!(
            errors[0].detail.contains("id 2: level: 1.0 -> 2.0"),
            "{}",
            errors[0].detail
        );
        let warnings = by(Severity::Warning);
        assert_eq!(warnings.len(), 2);
        assert_eq!(warnings[0].ids, vec![3], "changed upstream");
        assert_eq!(warnings[1].ids, vec![4], "not returned");
        assert!(
            by(Severity::Info)[0]
                .detail
                .starts_with("4 rows compared: 1 equal")
        );
    }
}
