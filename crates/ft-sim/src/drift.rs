//! Change over time: updates that bump `updated_at`, new users and locations, closed sessions,
//! deletions without tombstones, and piscine levels that move silently.

use std::sync::Arc;

use rand::RngExt;
use rand::seq::IndexedRandom;

use crate::config::{Drift, DriftReport};
use crate::generate::{PISCINE, add_user};
use crate::model::{Location, Record, UserData, UserRow};
use crate::server::State;
use crate::store::Table;
use crate::time::{HOUR, to_datetime};

fn sample_ids<R: Record>(
    table: &Table<R>,
    rng: &mut rand::rngs::ChaCha8Rng,
    fraction: f64,
) -> Vec<i64> {
    let count = ((table.len() as f64) * fraction.clamp(0.0, 1.0)).round() as usize;
    if count == 0 {
        return Vec::new();
    }
    let ids: Vec<i64> = table.rows.keys().copied().collect();
    let mut picked: Vec<i64> = ids.sample(rng, count).copied().collect();
    picked.sort_unstable();
    picked
}

fn pick(ids: &[i64], rng: &mut rand::rngs::ChaCha8Rng, count: usize) -> Vec<i64> {
    let mut picked: Vec<i64> = ids.sample(rng, count.min(ids.len())).copied().collect();
    picked.sort_unstable();
    picked
}

/// Applies one drift step and reports what changed.
pub(crate) fn apply(state: &mut State, drift: &Drift) -> DriftReport {
    let at = state.stamp();
    let seed = state.config.seed;
    let mut report = DriftReport {
        at: to_datetime(at),
        ..DriftReport::default()
    };
    // Take the generator out of the state so the store can be borrowed mutably beside it.
    let mut rng = std::mem::replace(&mut state.drift_rng, crate::generate::rng_for(0, 0));
    let store = &mut state.store;
    let fraction = drift.update_fraction;

    // Users first, so the relation rows bumped below embed the new version.
    let ids = sample_ids(&store.users, &mut rng, fraction);
    for &id in &ids {
        if let Some(row) = store.users.rows.get_mut(&id) {
            let mut data: UserData = (*row.data).clone();
            data.wallet += rng.random_range(1..40);
            data.correction_point = (data.correction_point + rng.random_range(-2..4)).max(0);
            data.updated_at = at;
            row.data = Arc::new(data);
        }
    }
    report.updated.insert("users".to_owned(), ids);
    let current_user = |users: &Table<UserRow>, old: &Arc<UserData>| {
        users
            .rows
            .get(&old.id)
            .map_or_else(|| Arc::clone(old), |row| Arc::clone(&row.data))
    };

    let ids = sample_ids(&store.campus_users, &mut rng, fraction);
    for id in &ids {
        if let Some(row) = store.campus_users.rows.get_mut(id) {
            row.updated_at = at;
        }
    }
    report.updated.insert("campus_users".to_owned(), ids);

    let ids = sample_ids(&store.cursus_users, &mut rng, fraction);
    for id in &ids {
        if let Some(row) = store.cursus_users.rows.get_mut(id) {
            row.level_centi += rng.random_range(1..60);
            row.updated_at = at;
            row.user = current_user(&store.users, &row.user);
        }
    }
    report.updated.insert("cursus_users".to_owned(), ids);

    let ids = sample_ids(&store.projects_users, &mut rng, fraction);
    for id in &ids {
        if let Some(row) = store.projects_users.rows.get_mut(id) {
            if row.status == 6 {
                // A parent project only changes its timestamp.
            } else if row.marked_at.is_none() {
                let mark = rng.random_range(0..=125);
                row.status = 0;
                row.final_mark = Some(mark);
                row.validated = Some(mark >= 50);
                row.marked_at = Some(at);
                row.current_team_id = row.current_team_id.or(Some(3_000_000 + row.id));
            } else {
                row.final_mark = Some(rng.random_range(0..=125));
                row.validated = row.final_mark.map(|m| m >= 50);
            }
            row.updated_at = at;
            row.user = current_user(&store.users, &row.user);
        }
    }
    report.updated.insert("projects_users".to_owned(), ids);

    let ids = sample_ids(&store.achievements_users, &mut rng, fraction);
    for id in &ids {
        if let Some(row) = store.achievements_users.rows.get_mut(id) {
            row.nbr_of_success = row.nbr_of_success.map(|n| n + 1);
            row.updated_at = at;
            row.user = current_user(&store.users, &row.user);
        }
    }
    report.updated.insert("achievements_users".to_owned(), ids);

    let ids = sample_ids(&store.coalitions_users, &mut rng, fraction);
    for id in &ids {
        if let Some(row) = store.coalitions_users.rows.get_mut(id) {
            row.score += rng.random_range(1..200);
            row.updated_at = at;
        }
    }
    report.updated.insert("coalitions_users".to_owned(), ids);

    // New users, each with its campus_users and piscine cursus_user.
    let campus_ids: Vec<i64> = store.campuses.rows.keys().copied().collect();
    for _ in 0..drift.new_users {
        let Some(&campus_id) = campus_ids.choose(&mut rng) else {
            break;
        };
        let before = (store.campus_users.next_id, store.cursus_users.next_id);
        let id = add_user(store, seed, campus_id, at, Some(at));
        report
            .created
            .entry("users".to_owned())
            .or_default()
            .push(id);
        report
            .created
            .entry("campus_users".to_owned())
            .or_default()
            .extend(before.0..store.campus_users.next_id);
        report
            .created
            .entry("cursus_users".to_owned())
            .or_default()
            .extend(before.1..store.cursus_users.next_id);
    }

    // Close open sessions (locations have no updated_at: only `end_at` changes).
    let open: Vec<i64> = store
        .locations
        .rows
        .values()
        .filter(|l| l.end_at.is_none())
        .map(|l| l.id)
        .collect();
    let closing = pick(&open, &mut rng, drift.close_open_locations);
    for id in &closing {
        if let Some(row) = store.locations.rows.get_mut(id) {
            row.end_at = Some(at);
        }
    }
    report.closed_locations = closing;

    // New sessions: open for a user without one, closed otherwise.
    let user_ids: Vec<i64> = store
        .users
        .rows
        .values()
        .filter(|u| u.data.active)
        .map(|u| u.data.id)
        .collect();
    for _ in 0..drift.new_locations {
        let Some(&user_id) = user_ids.choose(&mut rng) else {
            break;
        };
        let Some(user) = store.users.rows.get(&user_id).map(|u| Arc::clone(&u.data)) else {
            continue;
        };
        let has_open = store.locations.ids_of_user(user_id).iter().any(|id| {
            store
                .locations
                .rows
                .get(id)
                .is_some_and(|l| l.end_at.is_none())
        });
        let campus_id = user.primary_campus_id;
        let Some(campus) = store.campuses.rows.get(&campus_id) else {
            continue;
        };
        let host = crate::generate::host(campus, &mut rng);
        let id = store.locations.allocate_id();
        let (begin_at, end_at) = if has_open {
            (at - 2 * HOUR, Some(at))
        } else {
            (at, None)
        };
        store.locations.insert(Location {
            id,
            user,
            campus_id,
            begin_at,
            end_at,
            primary: true,
            host,
            legacy_keys: false,
        });
        report
            .created
            .entry("locations".to_owned())
            .or_default()
            .push(id);
    }

    // Deletions leave no tombstone.
    let all: Vec<i64> = store.projects_users.rows.keys().copied().collect();
    let deleted = pick(&all, &mut rng, drift.delete_projects_users);
    for id in &deleted {
        store.projects_users.remove(*id);
    }
    if !deleted.is_empty() {
        report.deleted.insert("projects_users".to_owned(), deleted);
    }
    let all: Vec<i64> = store.cursus_users.rows.keys().copied().collect();
    let deleted = pick(&all, &mut rng, drift.delete_cursus_users);
    for id in &deleted {
        store.cursus_users.remove(*id);
    }
    if !deleted.is_empty() {
        report.deleted.insert("cursus_users".to_owned(), deleted);
    }

    // Piscine levels move while `updated_at` stays put, and only during the piscine: a level
    // is computed while the piscine runs and is final once it ended (so a mirror that re-reads
    // the ongoing ones catches every silent change). Fewer change when fewer are ongoing.
    if drift.piscine_level_changes > 0 {
        let ongoing: Vec<i64> = store
            .cursus_users
            .rows
            .values()
            .filter(|cu| {
                cu.cursus_id == PISCINE
                    && cu.begin_at <= at
                    && cu.end_at.is_some_and(|end| end > at)
            })
            .map(|cu| cu.id)
            .collect();
        let changed = pick(&ongoing, &mut rng, drift.piscine_level_changes);
        for id in &changed {
            if let Some(row) = store.cursus_users.rows.get_mut(id) {
                row.level_centi += rng.random_range(1..80);
            }
        }
        report.silent_level_changes = changed;
    }

    for list in report.created.values_mut() {
        list.sort_unstable();
        list.dedup();
    }
    state.drift_rng = rng;
    crate::traps::drift_step(state, at, &mut report);
    report
}
