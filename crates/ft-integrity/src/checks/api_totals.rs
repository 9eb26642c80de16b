//! Stored row counts per scope against the API's `X-Total` (one `per_page=1` request per scope),
//! within a request budget.

use ft_api::endpoints as ep;
use ft_api::{FtClient, Query};
use ft_store::{Column, IdsWhere, Store, Table};

use crate::error::IntegrityError;
use crate::finding::{Finding, Severity};
use crate::options::ApiTotals;

/// The check's name.
pub(crate) const NAME: &str = "api_totals";

/// One scope to compare: the listing that defines it and how to count it locally.
struct Scope {
    table: Table,
    label: String,
    endpoint: String,
    query: Query,
    local: i64,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ft_store::StoreError> + Send + 'static,
) -> Result<T, IntegrityError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(IntegrityError::Join(e.to_string())),
    }
}

/// The scopes the engine syncs, with their stored counts: the reference listings, then per
/// stored campus its users, campus_users, cursus_users, projects_users, blocs, locations and
/// coalitions_users (the API's campus filter on cursus_users and projects_users means the
/// user's primary campus, so the stored side counts the rows of the campus's primary users).
fn scopes(store: &Store) -> Result<Vec<Scope>, ft_store::StoreError> {
    let mut out = Vec::new();
    for (table, endpoint) in [
        (Table::Cursus, ep::CURSUS.path()),
        (Table::Projects, ep::PROJECTS.path()),
        (Table::Achievements, ep::ACHIEVEMENTS.path()),
    ] {
        out.push(Scope {
            table,
            label: "global".to_owned(),
            endpoint: endpoint.to_owned(),
            query: Query::new(),
            local: store.count(table, false)?,
        });
    }
    for campus in store.live_ids(Table::Campuses, IdsWhere::All)? {
        let label = format!("campus:{campus}");
        let members = store.campus_user_ids(campus, false)?;
        let primary = store.campus_user_ids(campus, true)?;
        let coalitions = store.campus_coalition_ids(campus)?;
        out.push(Scope {
            table: Table::Users,
            label: label.clone(),
            endpoint: ep::USERS_OF_CAMPUS
                .path_for(Some(campus))
                .expect("a campus path with a campus"),
            query: Query::new(),
            local: members.len() as i64,
        });
        let campus_filtered: [(Table, &str, &str, i64); 5] = [
            (
                Table::CampusUsers,
                ep::CAMPUS_USERS.path(),
                "campus_id",
                store
                    .live_ids(Table::CampusUsers, IdsWhere::Eq(Column::CampusId, campus))?
                    .len() as i64,
            ),
            (
                Table::CursusUsers,
                ep::CURSUS_USERS.path(),
                "campus_id",
                store
                    .live_ids(Table::CursusUsers, IdsWhere::In(Column::UserId, &primary))?
                    .len() as i64,
            ),
            (
                Table::ProjectsUsers,
                ep::PROJECTS_USERS.path(),
                "campus",
                store
                    .live_ids(Table::ProjectsUsers, IdsWhere::In(Column::UserId, &primary))?
                    .len() as i64,
            ),
            (
                Table::Blocs,
                ep::BLOCS.path(),
                "campus_id",
                store
                    .live_ids(Table::Blocs, IdsWhere::Eq(Column::CampusId, campus))?
                    .len() as i64,
            ),
            (
                Table::Locations,
                ep::LOCATIONS.path(),
                "campus_id",
                store
                    .live_ids(Table::Locations, IdsWhere::Eq(Column::CampusId, campus))?
                    .len() as i64,
            ),
        ];
        for (table, endpoint, filter, local) in campus_filtered {
            out.push(Scope {
                table,
                label: label.clone(),
                endpoint: endpoint.to_owned(),
                query: Query::new().filter(filter, [campus]),
                local,
            });
        }
        if !coalitions.is_empty() {
            out.push(Scope {
                table: Table::CoalitionsUsers,
                label,
                endpoint: ep::COALITIONS_USERS.path().to_owned(),
                query: ep::COALITIONS_USERS.filter(
                    Query::new(),
                    "coalition_id",
                    coalitions.iter().copied(),
                ),
                local: store
                    .live_ids(
                        Table::CoalitionsUsers,
                        IdsWhere::In(Column::CoalitionId, &coalitions),
                    )?
                    .len() as i64,
            });
        }
    }
    Ok(out)
}

/// See [`crate::api_totals`].
pub(crate) async fn run(
    store: &Store,
    client: &FtClient,
    probe: &ApiTotals,
) -> Result<Vec<Finding>, IntegrityError> {
    let reader = store.clone();
    let scopes = blocking(move || scopes(&reader)).await?;
    let mut findings = Vec::new();
    let mut spent = 0u32;
    let mut skipped = 0usize;
    for scope in &scopes {
        if spent >= probe.max_requests {
            skipped += 1;
            continue;
        }
        let total = client
            .probe_total(&scope.endpoint, &scope.query)
            .await
            .map_err(|source| IntegrityError::Totals {
                endpoint: scope.endpoint.clone(),
                source,
            })?;
        spent += 1;
        let api = total as i64;
        if api == scope.local {
            findings.push(Finding::new(
                NAME,
                Severity::Info,
                Some(scope.table.as_str()),
                api,
                format!("{}: {api} rows in the API and in the store", scope.label),
            ));
        } else {
            let diff = scope.local - api;
            findings.push(Finding::new(
                NAME,
                Severity::Warning,
                Some(scope.table.as_str()),
                diff.abs(),
                format!(
                    "{}: the API counts {api} rows, the store {} ({:+}); a delta sync (`ft42 sync all`) brings changes and deletions in",
                    scope.label, scope.local, diff
                ),
            ));
        }
    }
    if skipped > 0 {
        findings.push(Finding::new(
            NAME,
            Severity::Info,
            None,
            skipped as i64,
            format!(
                "request budget of {} spent; {skipped} of {} scopes not compared (raise --api-totals)",
                probe.max_requests,
                scopes.len()
            ),
        ));
    }
    Ok(findings)
}
