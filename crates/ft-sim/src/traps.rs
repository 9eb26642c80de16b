//! The real API's traps (issue #16): behaviours of `api.intra.42.fr` that break a naive sync.
//! Each is behind a switch in [`Traps`], all off by default; [`Traps::real_api`] turns every one
//! on. The server calls three hooks (`before_route`, `adjust_query`, `after_route`) and drift
//! calls `drift_step`, so the rest of the simulator does not know the traps exist.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use rand::rngs::ChaCha8Rng;
use rand::seq::IndexedRandom;
use wiremock::Request;

use crate::config::DriftReport;
use crate::generate::rng_for;
use crate::model::{CampusUser, CoalitionsUser, ProjectsUser, UserData};
use crate::query::ListQuery;
use crate::server::{Resp, State, not_found_json};
use crate::store::Store;
use crate::time::Ms;

/// The real API's traps. Every switch is off by default ([`Traps::default`]);
/// [`Traps::real_api`] is the preset with all of them on.
///
/// Routes are written as paths with `*` standing for one segment
/// (`/v2/users/*/projects_users`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Traps {
    /// Routes that silently ignore `sort`: the answer comes in the route's default order
    /// (newest first), with no `Sort Error` even for unsortable fields. `range[...]` and
    /// `filter[...]` still apply. The apidoc lists no `sort` for `projects_users`.
    pub ignore_sort_on: Vec<String>,
    /// A `filter[...]` with more comma-separated values than this answers an HTML
    /// `502 Bad Gateway` page (`text/html`) instead of the listing. Counted against the budget
    /// like any other answer. `None` = no limit.
    pub filter_list_limit: Option<usize>,
    /// Anonymised users (login `3b3-<id>`) answer 404 `{}` on `GET /v2/users/:id_or_login`, and
    /// `filter[id]` on `/v2/users` leaves them out (also from `X-Total`). They stay in every
    /// other listing (`/v2/users` by `range[id]`, `/v2/campus/:id/users`, ...) and embedded in
    /// relation rows, as with the real API's application keys.
    pub hide_anonymised_users: bool,
    /// Per-route page-size limits: a larger page is a slow answer, then an HTML
    /// `504 Gateway Time-out`.
    pub page_size_limits: Vec<PageSizeLimit>,
    /// Probability (`0.0..=1.0`, drawn per 200 answer from the traps' own generator, only when
    /// above zero) that a body is cut mid-JSON and the connection closed after it
    /// (`Connection: close`). `Content-Length` matches the cut body: wiremock (hyper) cannot
    /// send fewer bytes than the header announces (see the crate docs).
    pub cut_body_rate: f64,
    /// Users whose rows in user listings (`/v2/users`, `/v2/campus/:id/users`) carry a
    /// `login` that is a number instead of a string: a row a client cannot decode, in an
    /// otherwise good page (the real API has served such rows after data migrations). Their
    /// detail route and every embedded copy stay well-formed.
    pub poison_user_ids: Vec<i64>,
    /// Users whose rows in `/v2/achievements_users` carry an `achievement_id` that is a
    /// string instead of a number (undecodable, with `user_id` still readable). That listing
    /// has no campus filter, so a mirror of some campuses meets other campuses' bad rows too.
    pub poison_achievements_of: Vec<i64>,
    /// Drift applied on top of every drift step ([`crate::SimHandle::drift`] and background
    /// drift). All zero by default.
    pub drift: TrapDrift,
}

/// A page-size limit of one route (see [`Traps::page_size_limits`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSizeLimit {
    /// Route pattern (`/v2/projects`).
    pub route: String,
    /// Largest page the route serves; a larger `per_page`/`page[size]` times out.
    pub max_per_page: usize,
    /// How long the answer takes before the 504 (keep it short in tests).
    pub delay: Duration,
}

/// Drift kinds the ordinary [`crate::Drift`] does not make. Counts are upper bounds (a step
/// cannot anonymise more users than are due).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrapDrift {
    /// Users whose `anonymize_date` has passed and whose login is not yet `3b3-<id>` get
    /// anonymised: login `3b3-<id>`, email `3b3-<id>@student.42.fr`, first_name `3b3`,
    /// last_name `<id>`, no usual first name, all-null image, no location, not active, and a
    /// new `updated_at`. Every relation row embedding the user (cursus_users, projects_users,
    /// achievements_users, locations) shows the anonymised user at once WITHOUT its own
    /// `updated_at` moving, as the real API renders embedded users live.
    pub anonymise_users: usize,
    /// coalitions_users rows to delete (no tombstone).
    pub delete_coalitions_users: usize,
    /// Closed locations to delete (no tombstone; open sessions are left alone).
    pub delete_locations: usize,
    /// projects_users rows replaced: the row is deleted and a new row with a new (higher) id
    /// is created for the same user and project (`in_progress`, no mark, same occurrence).
    pub replace_projects_users: usize,
    /// Users whose primary campus changes (needs two campuses): the old primary campus_user
    /// becomes `is_primary: false`, a campus_user of the new campus becomes (or is created)
    /// primary, the user gets a new `updated_at`, a coalition membership moves to a coalition
    /// of the new campus (old row deleted, new row created), and the user's relation rows
    /// move scope (`filter[campus_id]` on cursus_users, `filter[campus]` on projects_users,
    /// `filter[primary_campus_id]` on users) and show the new user embedded, without their
    /// own `updated_at` moving. Past locations keep their campus.
    pub campus_transfers: usize,
}

impl TrapDrift {
    /// Whether this drift changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Traps {
    /// Every trap on, with the values seen on the real API: `sort` ignored on every
    /// projects_users route, filter lists capped at 100 values, anonymised users hidden from
    /// show and `filter[id]`, `/v2/projects` (and `/v2/cursus/*/projects`, which renders the
    /// same heavy objects) limited to 30 per page with a 200 ms stall before the 504, 2 % of
    /// bodies cut short, and each drift step anonymising one user, deleting one
    /// coalitions_user and two closed locations, replacing one projects_user and moving one
    /// user to another campus. [`crate::SimBuilder::with_real_api_traps`] also drops
    /// `Retry-After` from 429s.
    pub fn real_api() -> Self {
        Self {
            ignore_sort_on: vec![
                "/v2/projects_users".to_owned(),
                "/v2/users/*/projects_users".to_owned(),
                "/v2/projects/*/projects_users".to_owned(),
            ],
            filter_list_limit: Some(100),
            hide_anonymised_users: true,
            page_size_limits: vec![
                PageSizeLimit {
                    route: "/v2/projects".to_owned(),
                    max_per_page: 30,
                    delay: Duration::from_millis(200),
                },
                PageSizeLimit {
                    route: "/v2/cursus/*/projects".to_owned(),
                    max_per_page: 30,
                    delay: Duration::from_millis(200),
                },
            ],
            cut_body_rate: 0.02,
            poison_user_ids: Vec::new(),
            poison_achievements_of: Vec::new(),
            drift: TrapDrift {
                anonymise_users: 1,
                delete_coalitions_users: 1,
                delete_locations: 2,
                replace_projects_users: 1,
                campus_transfers: 1,
            },
        }
    }
}

/// The traps' configuration and their own random stream (so turning a trap on never shifts
/// the fault or drift sequences of a seed).
pub(crate) struct TrapState {
    pub(crate) config: Traps,
    rng: ChaCha8Rng,
}

impl TrapState {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            config: Traps::default(),
            rng: rng_for(seed, u64::MAX - 4),
        }
    }
}

/// Whether `path` matches `pattern` (`*` = any one segment).
fn route_matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.trim_end_matches('/').split('/').collect();
    let path: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    pattern.len() == path.len()
        && pattern
            .iter()
            .zip(&path)
            .all(|(want, got)| *want == "*" || want == got)
}

/// The page nginx answers when the application behind it fails.
fn gateway_page(status: u16, title: &str) -> Resp {
    Resp::text(
        status,
        "text/html",
        format!(
            "<html>\r\n<head><title>{status} {title}</title></head>\r\n<body>\r\n<center><h1>{status} {title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        ),
    )
}

/// Answers a GET `/v2` request before routing when a trap applies.
pub(crate) fn before_route(state: &State, request: &Request, path: &str) -> Option<Resp> {
    let traps = &state.traps.config;
    if let Some(limit) = traps.filter_list_limit {
        let too_long = request.url.query_pairs().any(|(key, value)| {
            key.starts_with("filter[")
                && value.split(',').filter(|v| !v.trim().is_empty()).count() > limit
        });
        if too_long {
            return Some(gateway_page(502, "Bad Gateway"));
        }
    }
    if let Some(limit) = traps
        .page_size_limits
        .iter()
        .find(|limit| route_matches(&limit.route, path))
        && ListQuery::parse(&request.url).per_page > limit.max_per_page
    {
        let mut resp = gateway_page(504, "Gateway Time-out");
        resp.delay = Some(limit.delay);
        return Some(resp);
    }
    if traps.hide_anonymised_users
        && let ["", "v2", "users", key] = path.split('/').collect::<Vec<_>>().as_slice()
    {
        let store = &state.store;
        let id = match key.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => store.logins.get(*key).copied(),
        };
        if id.is_some_and(|id| is_anonymised(store, id)) {
            return Some(not_found_json());
        }
    }
    None
}

fn is_anonymised(store: &Store, id: i64) -> bool {
    store
        .users
        .rows
        .get(&id)
        .is_some_and(|row| row.data.is_anonymised())
}

/// Spoils the rows of [`Traps::poison_user_ids`] in a user listing's page, and those of
/// [`Traps::poison_achievements_of`] in an achievements_users page.
pub(crate) fn poison_items(state: &State, path: &str, items: &mut [serde_json::Value]) {
    let traps = &state.traps.config;
    let (poisoned, key, field, bad) =
        if route_matches("/v2/users", path) || route_matches("/v2/campus/*/users", path) {
            (
                &traps.poison_user_ids,
                "id",
                "login",
                serde_json::json!(4242),
            )
        } else if route_matches("/v2/achievements_users", path) {
            (
                &traps.poison_achievements_of,
                "user_id",
                "achievement_id",
                serde_json::json!("forty-two"),
            )
        } else {
            return;
        };
    if poisoned.is_empty() {
        return;
    }
    for item in items {
        if item[key].as_i64().is_some_and(|id| poisoned.contains(&id)) {
            item[field] = bad.clone();
        }
    }
}

/// Changes a list query the way a trap of its route does.
pub(crate) fn adjust_query(state: &State, path: &str, query: &mut ListQuery) {
    let traps = &state.traps.config;
    if traps
        .ignore_sort_on
        .iter()
        .any(|pattern| route_matches(pattern, path))
    {
        query.sort = None;
    }
    if traps.hide_anonymised_users && route_matches("/v2/users", path) {
        for (field, values) in &mut query.filters {
            if field == "id" {
                values.retain(|value| {
                    value
                        .parse::<i64>()
                        .map_or(true, |id| !is_anonymised(&state.store, id))
                });
            }
        }
    }
}

/// Changes a finished answer (a cut body).
pub(crate) fn after_route(state: &mut State, resp: &mut Resp) {
    let rate = state.traps.config.cut_body_rate;
    // Drawn only when on and only for 200s, so other answers never move the stream.
    if rate <= 0.0 || resp.status != 200 || resp.body.len() < 2 {
        return;
    }
    let roll: f64 = state.traps.rng.random();
    if roll < rate {
        let cut = state.traps.rng.random_range(1..resp.body.len());
        resp.body.truncate(cut);
        resp.headers.push(("connection", "close".to_owned()));
    }
}

fn pick(ids: &[i64], rng: &mut ChaCha8Rng, count: usize) -> Vec<i64> {
    let mut picked: Vec<i64> = ids.sample(rng, count.min(ids.len())).copied().collect();
    picked.sort_unstable();
    picked
}

fn push(map: &mut BTreeMap<String, Vec<i64>>, table: &str, id: i64) {
    map.entry(table.to_owned()).or_default().push(id);
}

/// The configured trap drift, applied at the end of every drift step.
pub(crate) fn drift_step(state: &mut State, at: Ms, report: &mut DriftReport) {
    let drift = state.traps.config.drift.clone();
    if !drift.is_empty() {
        apply(state, &drift, at, report);
    }
}

/// Applies trap drift stamped `at` and adds what changed to `report`.
pub(crate) fn apply(state: &mut State, drift: &TrapDrift, at: Ms, report: &mut DriftReport) {
    let mut rng = std::mem::replace(&mut state.traps.rng, rng_for(0, 0));
    let store = &mut state.store;

    // Anonymisation of users whose date has come.
    let due: Vec<i64> = store
        .users
        .rows
        .values()
        .filter(|u| !u.data.is_anonymised() && u.data.anonymize_date.is_some_and(|d| d <= at))
        .map(|u| u.data.id)
        .collect();
    for id in pick(&due, &mut rng, drift.anonymise_users) {
        let Some(row) = store.users.rows.get(&id) else {
            continue;
        };
        let mut data: UserData = (*row.data).clone();
        store.logins.remove(&data.login);
        data.login = format!("3b3-{id}");
        data.email = format!("3b3-{id}@student.42.fr");
        data.first_name = "3b3".to_owned();
        data.last_name = id.to_string();
        data.usual_first_name = None;
        data.image_hash = None;
        data.location = None;
        data.pronoun = None;
        data.active = false;
        data.updated_at = at;
        store.logins.insert(data.login.clone(), id);
        replace_user(store, data, report);
        push(&mut report.updated, "users", id);
        report.anonymised_users.push(id);
    }

    let all: Vec<i64> = store.coalitions_users.rows.keys().copied().collect();
    for id in pick(&all, &mut rng, drift.delete_coalitions_users) {
        store.coalitions_users.remove(id);
        push(&mut report.deleted, "coalitions_users", id);
    }

    let closed: Vec<i64> = store
        .locations
        .rows
        .values()
        .filter(|l| l.end_at.is_some())
        .map(|l| l.id)
        .collect();
    for id in pick(&closed, &mut rng, drift.delete_locations) {
        store.locations.remove(id);
        push(&mut report.deleted, "locations", id);
    }

    let all: Vec<i64> = store.projects_users.rows.keys().copied().collect();
    for old_id in pick(&all, &mut rng, drift.replace_projects_users) {
        let Some(old) = store.projects_users.remove(old_id) else {
            continue;
        };
        let id = store.projects_users.allocate_id();
        let user = store
            .users
            .rows
            .get(&old.user.id)
            .map_or_else(|| Arc::clone(&old.user), |row| Arc::clone(&row.data));
        store.projects_users.insert(ProjectsUser {
            id,
            user,
            project_id: old.project_id,
            cursus_id: old.cursus_id,
            occurrence: old.occurrence,
            final_mark: None,
            status: 1,
            validated: None,
            current_team_id: Some(3_000_000 + id),
            marked_at: None,
            retriable_at: None,
            created_at: at,
            updated_at: at,
        });
        push(&mut report.deleted, "projects_users", old_id);
        push(&mut report.created, "projects_users", id);
        report.replaced_projects_users.push((old_id, id));
    }

    let campus_ids: Vec<i64> = store.campuses.rows.keys().copied().collect();
    if campus_ids.len() > 1 {
        let users: Vec<i64> = store.users.rows.keys().copied().collect();
        for id in pick(&users, &mut rng, drift.campus_transfers) {
            transfer(store, &mut rng, id, &campus_ids, at, report);
        }
    }

    for map in [
        &mut report.created,
        &mut report.deleted,
        &mut report.updated,
    ] {
        for list in map.values_mut() {
            list.sort_unstable();
            list.dedup();
        }
    }
    state.traps.rng = rng;
}

/// Moves one user's primary campus to another campus.
fn transfer(
    store: &mut Store,
    rng: &mut ChaCha8Rng,
    id: i64,
    campus_ids: &[i64],
    at: Ms,
    report: &mut DriftReport,
) {
    let Some(row) = store.users.rows.get(&id) else {
        return;
    };
    let mut data: UserData = (*row.data).clone();
    let from = data.primary_campus_id;
    let others: Vec<i64> = campus_ids.iter().copied().filter(|&c| c != from).collect();
    let Some(&to) = others.choose(rng) else {
        return;
    };
    let Some(offset) = store.campuses.rows.get(&to).map(|c| c.offset_minutes) else {
        return;
    };

    // campus_users: the old primary steps down, the new campus becomes primary.
    let mut target = None;
    for cu_id in store.campus_users.ids_of_user(id).to_vec() {
        if let Some(cu) = store.campus_users.rows.get_mut(&cu_id) {
            if cu.is_primary && cu.campus_id != to {
                cu.is_primary = false;
                cu.updated_at = at;
                push(&mut report.updated, "campus_users", cu_id);
            } else if cu.campus_id == to {
                cu.is_primary = true;
                cu.updated_at = at;
                target = Some(cu_id);
                push(&mut report.updated, "campus_users", cu_id);
            }
        }
    }
    if target.is_none() {
        let cu_id = store.campus_users.allocate_id();
        store.insert_campus_user(CampusUser {
            id: cu_id,
            user_id: id,
            campus_id: to,
            is_primary: true,
            created_at: at,
            updated_at: at,
        });
        push(&mut report.created, "campus_users", cu_id);
    }

    // A coalition membership moves to a coalition of the new campus.
    let coalitions_of = |store: &Store, campus: i64| -> Vec<i64> {
        store
            .blocs
            .rows
            .values()
            .filter(|b| b.campus_id == campus)
            .flat_map(|b| b.coalition_ids.iter().copied())
            .collect()
    };
    let old_coalitions = coalitions_of(store, from);
    let new_coalitions = coalitions_of(store, to);
    for cu_id in store.coalitions_users.ids_of_user(id).to_vec() {
        let Some(old) = store.coalitions_users.rows.get(&cu_id).cloned() else {
            continue;
        };
        if !old_coalitions.contains(&old.coalition_id) {
            continue;
        }
        store.coalitions_users.remove(cu_id);
        push(&mut report.deleted, "coalitions_users", cu_id);
        if let Some(&coalition_id) = new_coalitions.choose(rng) {
            let new_id = store.coalitions_users.allocate_id();
            store.coalitions_users.insert(CoalitionsUser {
                id: new_id,
                user_id: id,
                coalition_id,
                score: 0,
                rank: rng.random_range(1..400),
                created_at: at,
                updated_at: at,
            });
            push(&mut report.created, "coalitions_users", new_id);
        }
    }

    data.primary_campus_id = to;
    data.offset_minutes = offset;
    data.updated_at = at;
    replace_user(store, data, report);
    push(&mut report.updated, "users", id);
    report.campus_transfers.push((id, from, to));
}

/// Stores a new version of a user and shows it in every relation row that embeds the user,
/// without moving those rows' `updated_at` (the real API renders embedded users live).
fn replace_user(store: &mut Store, data: UserData, report: &mut DriftReport) {
    let id = data.id;
    let user = Arc::new(data);
    if let Some(row) = store.users.rows.get_mut(&id) {
        row.data = Arc::clone(&user);
    }
    let refreshed = &mut report.refreshed_embedded_users;
    for row_id in store.cursus_users.ids_of_user(id).to_vec() {
        if let Some(row) = store.cursus_users.rows.get_mut(&row_id) {
            row.user = Arc::clone(&user);
            push(refreshed, "cursus_users", row_id);
        }
    }
    for row_id in store.projects_users.ids_of_user(id).to_vec() {
        if let Some(row) = store.projects_users.rows.get_mut(&row_id) {
            row.user = Arc::clone(&user);
            push(refreshed, "projects_users", row_id);
        }
    }
    for row_id in store.achievements_users.ids_of_user(id).to_vec() {
        if let Some(row) = store.achievements_users.rows.get_mut(&row_id) {
            row.user = Arc::clone(&user);
            push(refreshed, "achievements_users", row_id);
        }
    }
    for row_id in store.locations.ids_of_user(id).to_vec() {
        if let Some(row) = store.locations.rows.get_mut(&row_id) {
            row.user = Arc::clone(&user);
            push(refreshed, "locations", row_id);
        }
    }
    for list in refreshed.values_mut() {
        list.sort_unstable();
        list.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_patterns_match_one_segment_per_star() {
        assert!(route_matches("/v2/projects", "/v2/projects"));
        assert!(route_matches("/v2/projects", "/v2/projects/"));
        assert!(!route_matches("/v2/projects", "/v2/projects_users"));
        assert!(!route_matches("/v2/projects", "/v2/projects/1"));
        assert!(route_matches(
            "/v2/users/*/projects_users",
            "/v2/users/42/projects_users"
        ));
        assert!(!route_matches(
            "/v2/users/*/projects_users",
            "/v2/users/projects_users"
        ));
    }
}
