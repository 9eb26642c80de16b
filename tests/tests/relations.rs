//! Every resource against the simulator, on SQLite and PostgreSQL: a full sync of all resources
//! equals the truth; after drift (updates, new rows, deletions, closed sessions) one delta round
//! restores it, deletions included; the raw page archive replays into an empty database as the
//! same tables, without a request.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{Embedded, assert_table_matches};
use ft_sim::{Drift, SimHandle};
use ft_store::test_support::TestDb;
use ft_store::{Store, Table};
use ft_sync::{Engine, EngineConfig, Mode, SyncRequest, What, progress};

/// An engine that archives into `export_dir` and refreshes every resource on every run.
fn engine(sim: &SimHandle, store: Store, export_dir: &std::path::Path) -> Engine {
    let client = common::client_for(sim, common::test_limits());
    let config = EngineConfig {
        worker_id: format!("test-{}", std::process::id()),
        lease: Duration::from_secs(30),
        export_dir: Some(export_dir.to_owned()),
        freshness: BTreeMap::new(),
        ..EngineConfig::default()
    };
    let clock = sim.clone();
    Engine::new(client, store, config).with_clock(Arc::new(move || clock.now()))
}

fn assert_all_match(store: &Store, sim: &SimHandle, embedded: Embedded) {
    let truth = sim.truth();
    for &table in Table::ALL {
        assert_table_matches(store, &truth, table, embedded);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_resources_full_then_one_delta_round_after_drift_equal_the_truth() {
    for db in TestDb::all() {
        let sim = common::sim(21, 2, 40).await;
        let exports = tempfile::tempdir().unwrap();
        let engine = engine(&sim, db.store().clone(), exports.path());
        let full = engine
            .sync(
                SyncRequest::new(What::All, Mode::Auto),
                progress::discard(),
                std::future::pending(),
            )
            .await
            .expect("full sync of everything");
        assert_eq!(full.tasks_failed, 0, "{:?}", full.errors);
        assert_eq!(full.responses_429, 0);
        assert_all_match(db.store(), &sim, Embedded::Exact);

        let report = sim.drift(Drift {
            update_fraction: 0.1,
            new_users: 3,
            new_locations: 12,
            close_open_locations: 6,
            delete_projects_users: 5,
            delete_cursus_users: 3,
            piscine_level_changes: 4,
        });
        assert!(!report.deleted.is_empty(), "the drift deletes rows");
        let delta = engine
            .sync(
                SyncRequest::new(What::All, Mode::Auto),
                progress::discard(),
                std::future::pending(),
            )
            .await
            .expect("delta round");
        assert_eq!(delta.tasks_failed, 0, "{:?}", delta.errors);
        assert_eq!(delta.responses_429, 0);
        assert_all_match(db.store(), &sim, Embedded::Ignore);
        for (table, ids) in &report.deleted {
            let table: Table = table.parse().unwrap();
            let stored = db.store().raw_rows(table).unwrap();
            for id in ids {
                let row = stored.iter().find(|r| r.id == *id);
                assert!(
                    row.is_some_and(|r| r.deleted_at.is_some()),
                    "{table} {id} was deleted by the API and must be kept, marked deleted"
                );
            }
        }
        // The delta round costs about one request per scope plus the changes; on this small
        // dataset that is close to a full sync, so only the direction is asserted.
        assert!(
            delta.requests < full.requests,
            "a delta round ({} requests) costs less than a full sync ({})",
            delta.requests,
            full.requests
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_archive_into_an_empty_database_gives_the_same_tables() {
    let sim = common::sim(22, 2, 30).await;
    let exports = tempfile::tempdir().unwrap();
    let synced = TestDb::sqlite();
    let engine = engine(&sim, synced.store().clone(), exports.path());
    let req = SyncRequest::new(What::All, Mode::Auto);
    engine
        .sync(req.clone(), progress::discard(), std::future::pending())
        .await
        .expect("full sync");
    sim.drift(Drift {
        update_fraction: 0.1,
        new_users: 2,
        new_locations: 5,
        close_open_locations: 3,
        delete_projects_users: 4,
        delete_cursus_users: 2,
        piscine_level_changes: 0,
    });
    engine
        .sync(req, progress::discard(), std::future::pending())
        .await
        .expect("delta");
    let requests_before = sim.ledger().len();

    for target in TestDb::all() {
        let summary = ft_sync::replay(target.store(), exports.path()).expect("replay");
        assert!(summary.files > 0 && summary.rows > 0);
        assert!(summary.skipped.is_empty(), "{:?}", summary.skipped);
        assert!(summary.deleted > 0, "deletion records are replayed");
        for &table in Table::ALL {
            let want = synced.store().raw_rows(table).unwrap();
            let got = target.store().raw_rows(table).unwrap();
            let shape = |rows: &[ft_store::StoredRow]| {
                rows.iter()
                    .map(|r| (r.id, r.raw.clone(), r.deleted_at.is_some()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                shape(&got),
                shape(&want),
                "{table}: replayed rows differ from the synced ones"
            );
        }
    }
    assert_eq!(
        sim.ledger().len(),
        requests_before,
        "replay spends no API budget"
    );
}
