//! What `sync all` costs as the campus count grows with the dataset held constant (issue #15).
//!
//! `cargo bench -p ft-sync --bench network -- [total_users] [campus counts...]`
//! (default: 1000 users over 1, 10 and 50 campuses).
//!
//! For each campus count: a full sync of every campus, two quiet deltas right after it, and a delta
//! after a batch of changes, against the in-process simulator into a temporary SQLite file with
//! the rate limits raised (requests are counted, not timed). Prints, per campus count: requests
//! of the full sync against the lower bound (sum over tables of `ceil(rows / page size)`), the
//! requests of the first quiet delta (it also runs the deletion checks the first sync left to
//! it) and of a second one (the steady state), and the changed rows and requests of the change
//! delta. Also checks
//! that the mirror holds as many live rows as the simulator after each phase.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ft_api::{ClientSecret, FtClient, RateConfig};
use ft_sim::{Drift, Limits, Sim, SimHandle};
use ft_store::{Store, Table};
use ft_sync::{Engine, EngineConfig, Mode, SyncRequest, What, progress};

/// Tables `sync all` reads, with the simulator's name for each; coalitions come embedded in
/// blocs and cost no request of their own.
const TABLES: &[(&str, Table)] = &[
    ("campuses", Table::Campuses),
    ("cursus", Table::Cursus),
    ("projects", Table::Projects),
    ("achievements", Table::Achievements),
    ("users", Table::Users),
    ("campus_users", Table::CampusUsers),
    ("cursus_users", Table::CursusUsers),
    ("projects_users", Table::ProjectsUsers),
    ("achievements_users", Table::AchievementsUsers),
    ("blocs", Table::Blocs),
    ("coalitions_users", Table::CoalitionsUsers),
    ("locations", Table::Locations),
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let total_users = args.first().copied().unwrap_or(1000);
    let counts: Vec<u32> = match args.get(1..) {
        Some(rest) if !rest.is_empty() => rest.to_vec(),
        _ => vec![1, 10, 50],
    };
    println!(
        "{:>8} {:>6} {:>8} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8} {:>9}",
        "campuses",
        "rows",
        "full_req",
        "bound",
        "ratio",
        "quiet1",
        "quiet",
        "changed",
        "delta",
        "req/chg"
    );
    for campuses in counts {
        run(campuses, (total_users / campuses).max(1)).await;
    }
}

async fn run(campuses: u32, users_per_campus: u32) {
    let limits = Limits {
        per_second: 1000,
        per_hour: 1_000_000,
        second_window: Duration::from_secs(1),
        hour_window: Duration::from_secs(3600),
    };
    let sim = Sim::builder()
        .seed(15)
        .campuses(campuses)
        .users_per_campus(users_per_campus)
        .limits(limits)
        .start()
        .await;
    let creds = sim.credentials();
    let client = FtClient::builder()
        .base_url(sim.base_url())
        .client_id(creds.client_id.clone())
        .client_secret(ClientSecret::new(creds.client_secret.clone()))
        .rate(RateConfig {
            per_second: limits.per_second,
            per_hour: limits.per_hour,
            hour: limits.hour_window,
        })
        .build()
        .expect("client");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().join("bench.db").to_str().expect("utf-8")).expect("store");
    store.migrate().expect("migrate");
    let clock = sim.clone();
    let engine = Engine::new(client, store.clone(), EngineConfig::default())
        .with_clock(Arc::new(move || clock.now()));

    let counts = sim.counts();
    let rows: usize = TABLES.iter().map(|(t, _)| counts[*t]).sum();
    let bound: u64 = TABLES
        .iter()
        .map(|(t, _)| {
            let per_page = if *t == "projects" {
                ft_api::endpoints::PROJECTS_PER_PAGE as usize
            } else {
                100
            };
            counts[*t].div_ceil(per_page).max(1) as u64
        })
        .sum();

    let full = sync(&engine, &sim, Mode::Full).await;
    check(&store, &sim, "full");
    // The first delta after a first full sync also runs the deletion checks that sync left to
    // it (nothing could be stale yet); the second is the steady state.
    let first_quiet = sync(&engine, &sim, Mode::Auto).await;
    let quiet = sync(&engine, &sim, Mode::Auto).await;
    check(&store, &sim, "quiet delta");
    let report = sim.drift(Drift {
        update_fraction: 0.01,
        new_users: 5,
        new_locations: 20,
        close_open_locations: 10,
        delete_projects_users: 0,
        delete_cursus_users: 0,
        piscine_level_changes: 5,
    });
    let changed: usize = report.updated.values().map(Vec::len).sum::<usize>()
        + report.created.values().map(Vec::len).sum::<usize>()
        + report.closed_locations.len()
        + report.silent_level_changes.len();
    let delta = sync(&engine, &sim, Mode::Auto).await;
    check(&store, &sim, "change delta");
    println!(
        "{campuses:>8} {rows:>6} {full:>8} {bound:>6} {:>6.3} {first_quiet:>6} {quiet:>6} {changed:>8} {delta:>8} {:>9.3}",
        full as f64 / bound as f64,
        delta as f64 / changed.max(1) as f64,
    );
}

/// One `sync all` of every campus; returns the API requests it made (`/v2`, as the simulator
/// counted them: token requests left out).
async fn sync(engine: &Engine, sim: &SimHandle, mode: Mode) -> u64 {
    let v2 = || {
        sim.ledger()
            .iter()
            .filter(|e| e.counted && e.path.starts_with("/v2"))
            .count() as u64
    };
    let before = v2();
    let summary = engine
        .sync(
            SyncRequest::new(What::All, mode),
            progress::discard(),
            std::future::pending(),
        )
        .await
        .expect("sync");
    assert_eq!(summary.responses_429, 0, "no 429 at these limits");
    v2() - before
}

/// The mirror's live rows per table equal the simulator's (a count check; the e2e tests compare
/// row contents).
fn check(store: &Store, sim: &SimHandle, phase: &str) {
    let counts = sim.counts();
    let mut wrong = BTreeMap::new();
    for (name, table) in TABLES {
        let live = store
            .raw_rows(*table)
            .expect("read rows")
            .iter()
            .filter(|r| r.deleted_at.is_none())
            .count();
        if live != counts[*name] {
            wrong.insert(*name, (live, counts[*name]));
        }
    }
    assert!(
        wrong.is_empty(),
        "after the {phase}: live rows (mirror, simulator) differ: {wrong:?}"
    );
}
