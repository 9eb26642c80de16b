//! Every resource against the simulator, on SQLite and PostgreSQL: a full sync of all resources
//! equals the truth; after drift (updates, new rows, deletions, closed sessions) one delta round
//! restores it, deletions included; the raw page archive replays into an empty database as the
//! same tables, without a request.

use crate::common;

use std::collections::BTreeMap;

use common::{Embedded, assert_table_matches};
use ft_sim::{Drift, SimHandle};
use ft_store::test_support::TestDb;
use ft_store::{Store, Table};
use ft_sync::{Engine, EngineConfig, Mode, SyncRequest, What, progress};

/// An engine that archives into `export_dir` and refreshes every resource on every run.
fn engine(sim: &SimHandle, store: Store, export_dir: &std::path::Path) -> Engine {
    let config = EngineConfig {
        export_dir: Some(export_dir.to_owned()),
        freshness: BTreeMap::new(),
        ..EngineConfig::default()
    };
    common::engine_with(
        sim,
        common::client_for(sim, common::test_limits()),
        store,
        config,
    )
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relation_rows_of_unknown_users_bring_their_users_in_by_id() {
    let sim = common::sim(23, 1, 30).await;
    let db = TestDb::sqlite();
    let exports = tempfile::tempdir().unwrap();
    let engine = engine(&sim, db.store().clone(), exports.path());
    // Relations alone, into an empty database: every projects_user refers to a missing user.
    let summary = engine
        .sync(
            SyncRequest::new(What::Relations, Mode::Full).campuses([1]),
            progress::discard(),
            std::future::pending(),
        )
        .await
        .expect("relations sync");
    assert_eq!(summary.tasks_failed, 0, "{:?}", summary.errors);
    let store = db.store();
    assert!(store.count(Table::ProjectsUsers, false).unwrap() > 0);
    assert!(
        store.missing_user_ids(10).unwrap().is_empty(),
        "every user a relation row refers to was fetched"
    );
    let users = store.count(Table::Users, false).unwrap();
    assert!(users > 0);
    // Fetched by id, 100 per request.
    let by_id = sim
        .ledger()
        .iter()
        .filter(|e| e.path == "/v2/users" && e.query.contains("filter%5Bid%5D"))
        .count();
    assert_eq!(by_id as i64, (users + 99) / 100);
    // And queued for the relation worker, which reads their other relations.
    assert!(
        sim.ledger()
            .iter()
            .any(|e| e.path == "/v2/achievements_users" && e.query.contains("filter%5Buser_id%5D")),
        "the relation worker ran for the fetched users"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_yields_to_hot_work_after_a_page_and_resumes_from_its_cursor() {
    let sim = common::sim(24, 1, 450).await;
    let db = TestDb::sqlite();
    let exports = tempfile::tempdir().unwrap();
    let engine = engine(&sim, db.store().clone(), exports.path());
    let planner = engine.clone();
    // When the users backfill (5 pages) has committed its second page, hot work arrives: the
    // campus's blocs (a small re-read, planned in the hot lane).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let hot = tokio::spawn(async move {
        let mut pages = 0;
        while let Some(event) = rx.recv().await {
            if matches!(event, ft_sync::Progress::Page { .. }) {
                pages += 1;
                // Four reference listings take one page each; then the users listing.
                if pages == 6 {
                    planner
                        .plan(&SyncRequest::new(What::Coalitions, Mode::Auto).campuses([1]))
                        .await
                        .expect("hot work planned");
                }
            }
        }
    });
    let summary = engine
        .sync(
            SyncRequest::new(What::Users, Mode::Full).campuses([1]),
            tx,
            std::future::pending(),
        )
        .await
        .expect("sync");
    hot.abort();
    assert_eq!(summary.tasks_failed, 0, "{:?}", summary.errors);
    let ledger = sim.ledger();
    let users_pages: Vec<usize> = ledger
        .iter()
        .enumerate()
        .filter(|(_, e)| e.path == "/v2/campus/1/users")
        .map(|(i, _)| i)
        .collect();
    let blocs = ledger
        .iter()
        .position(|e| e.path == "/v2/blocs")
        .expect("the hot work ran");
    assert_eq!(users_pages.len(), 5, "the backfill read each page once");
    assert!(
        blocs < *users_pages.last().unwrap(),
        "the hot work ran before the backfill finished (blocs at {blocs}, users pages at {users_pages:?})"
    );
    let truth = sim.truth();
    assert_table_matches(db.store(), &truth, Table::Users, Embedded::Exact);
    assert_table_matches(db.store(), &truth, Table::Blocs, Embedded::Exact);
}
