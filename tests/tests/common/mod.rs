//! Shared set-up for the end-to-end tests: a simulator, a client paced for it, an engine that
//! reads the simulator's clock, and table-by-table comparison with the simulator's truth.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use ft_api::{ClientSecret, FtClient, RateConfig};
use ft_sim::{Limits, SimHandle};
use ft_store::{Store, Table};
use ft_sync::{Engine, EngineConfig};

/// The tables part 1 of the engine fills.
pub const PART_ONE_TABLES: [Table; 7] = [
    Table::Campuses,
    Table::Cursus,
    Table::Projects,
    Table::Achievements,
    Table::Users,
    Table::CampusUsers,
    Table::CursusUsers,
];

/// Limits generous enough to keep tests quick, tight enough that pacing matters.
pub fn test_limits() -> Limits {
    Limits {
        per_second: 40,
        per_hour: 100_000,
        second_window: Duration::from_secs(1),
        hour_window: Duration::from_secs(3600),
    }
}

/// A simulator with `campuses` campuses of `users` users each.
pub async fn sim(seed: u64, campuses: u32, users: u32) -> SimHandle {
    ft_sim::Sim::builder()
        .seed(seed)
        .campuses(campuses)
        .users_per_campus(users)
        .limits(test_limits())
        .start()
        .await
}

/// A client for the simulator's default application, paced to `limits`.
pub fn client_for(sim: &SimHandle, limits: Limits) -> FtClient {
    let creds = sim.credentials();
    FtClient::builder()
        .base_url(sim.base_url())
        .client_id(creds.client_id.clone())
        .client_secret(ClientSecret::new(creds.client_secret.clone()))
        .rate(RateConfig {
            per_second: limits.per_second,
            per_hour: limits.per_hour,
            hour: limits.hour_window,
        })
        .build()
        .expect("client builds")
}

/// An engine over `store` that reads the simulator's clock.
pub fn engine(sim: &SimHandle, client: FtClient, store: Store) -> Engine {
    engine_with(sim, client, store, EngineConfig::default())
}

/// [`engine`] with `config`'s settings, but this process's worker id and a 30 s lease.
pub fn engine_with(
    sim: &SimHandle,
    client: FtClient,
    store: Store,
    config: EngineConfig,
) -> Engine {
    let config = EngineConfig {
        worker_id: format!("test-{}", std::process::id()),
        lease: Duration::from_secs(30),
        ..config
    };
    let clock = sim.clone();
    Engine::new(client, store, config).with_clock(Arc::new(move || clock.now()))
}

/// The ids of a table's stored rows (deleted ones included), in the store's order.
pub fn stored_ids(store: &Store, table: Table) -> Vec<i64> {
    store
        .raw_rows(table)
        .expect("reading stored rows")
        .iter()
        .map(|r| r.id)
        .collect()
}

/// Embedded copies of other rows (a cursus_user's `user`) are snapshots the API does not
/// re-date when the embedded row changes; after drift they are compared without them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Embedded {
    Exact,
    Ignore,
}

/// Asserts that the live rows of `table` equal the simulator's truth, id for id and field for
/// field (the stored `raw` JSON against the JSON the API serves now).
pub fn assert_table_matches(
    store: &Store,
    truth: &ft_sim::Truth,
    table: Table,
    embedded: Embedded,
) {
    let name = table.as_str();
    let stored: Vec<_> = store
        .raw_rows(table)
        .expect("read stored rows")
        .into_iter()
        .filter(|r| r.deleted_at.is_none())
        .collect();
    let want = truth.table(name);
    let stored_ids: Vec<i64> = stored.iter().map(|r| r.id).collect();
    let want_ids = truth.ids(name);
    assert!(
        !want_ids.is_empty(),
        "{name}: the simulator has no rows; the test proves nothing"
    );
    if stored_ids != want_ids {
        let missing: Vec<_> = want_ids
            .iter()
            .filter(|id| !stored_ids.contains(id))
            .take(10)
            .collect();
        let extra: Vec<_> = stored_ids
            .iter()
            .filter(|id| !want_ids.contains(id))
            .take(10)
            .collect();
        panic!(
            "{name}: {} stored vs {} in the API; missing {missing:?}, extra {extra:?}",
            stored_ids.len(),
            want_ids.len()
        );
    }
    for (row, want) in stored.iter().zip(want) {
        let (mut got, mut want) = (row.raw.clone(), want.clone());
        if embedded == Embedded::Ignore {
            for v in [&mut got, &mut want] {
                if let Some(obj) = v.as_object_mut() {
                    obj.remove("user");
                }
            }
        }
        assert_eq!(
            got, want,
            "{name} id {}: stored row differs from the API",
            row.id
        );
    }
}

/// [`assert_table_matches`] over every part-one table.
pub fn assert_part_one_matches(store: &Store, sim: &SimHandle, embedded: Embedded) {
    let truth = sim.truth();
    for table in PART_ONE_TABLES {
        assert_table_matches(store, &truth, table, embedded);
    }
}

/// Sum over scopes of ceil(rows / 100), at least one request per scope, for `What::Users`.
pub fn lower_bound_requests(sim: &ft_sim::SimHandle) -> u64 {
    let truth = sim.truth();
    let pages = |n: usize| (n.div_ceil(100)).max(1) as u64;
    let projects = truth
        .table("projects")
        .len()
        .div_ceil(ft_api::endpoints::PROJECTS.max_per_page() as usize)
        .max(1) as u64;
    let global: u64 = ["campuses", "cursus", "achievements"]
        .iter()
        .map(|t| pages(truth.table(t).len()))
        .sum::<u64>()
        + projects;
    let users = pages(truth.table("users").len());
    let campus_users = pages(truth.table("campus_users").len());
    let cursus_users = pages(truth.table("cursus_users").len());
    // No deletion check: a first sync has nothing stale to find (it runs with the next sync).
    global + users + campus_users + cursus_users
}

/// [`lower_bound_requests`] for a full sync of a mirror that was synced before: plus one
/// `X-Total` probe (the campus set's cursus_users deletion check) telling that nothing was
/// deleted.
pub fn lower_bound_requests_again(sim: &ft_sim::SimHandle) -> u64 {
    lower_bound_requests(sim) + 1
}

/// Active piscine cursus_users in the simulator now (cursus kind `piscine`, begun, not ended).
pub fn active_piscine_cursus_users(sim: &ft_sim::SimHandle) -> usize {
    let truth = sim.truth();
    let now = sim.now();
    let piscines: Vec<i64> = truth
        .table("cursus")
        .iter()
        .filter(|c| c["kind"] == "piscine")
        .filter_map(|c| c["id"].as_i64())
        .collect();
    let time = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.to_utc())
    };
    truth
        .table("cursus_users")
        .iter()
        .filter(|cu| {
            cu["cursus_id"]
                .as_i64()
                .is_some_and(|id| piscines.contains(&id))
        })
        .filter(|cu| time(&cu["begin_at"]).is_none_or(|b| b <= now))
        .filter(|cu| time(&cu["end_at"]).is_none_or(|e| e > now))
        .count()
}
