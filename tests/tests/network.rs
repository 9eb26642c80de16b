//! Network-scale sync (issue #15): campus-scoped listings are read for sets of campuses, so what
//! a sync costs grows with the rows, not with the number of campuses; filter lists stay within
//! the real API's limit; watermarks stay per campus.

use crate::common;

use common::{Embedded, assert_table_matches};
use ft_sim::{SimHandle, Traps};
use ft_store::test_support::TestDb;
use ft_store::{Store, Table, TaskFilter};
use ft_sync::{Mode, SyncRequest, What, progress};

/// A simulator whose gateway answers an HTML 502 to a filter list of more than 100 values, as
/// the real one does.
async fn sim_with_list_limit(seed: u64, campuses: u32, users: u32) -> SimHandle {
    ft_sim::Sim::builder()
        .seed(seed)
        .campuses(campuses)
        .users_per_campus(users)
        .limits(common::test_limits())
        .traps(Traps {
            filter_list_limit: Some(100),
            ..Traps::default()
        })
        .start()
        .await
}

/// `/v2` requests the simulator counted so far.
fn v2_requests(sim: &SimHandle) -> usize {
    sim.ledger()
        .iter()
        .filter(|e| e.counted && e.path.starts_with("/v2"))
        .count()
}

fn assert_everything_matches(store: &Store, sim: &SimHandle, embedded: Embedded) {
    let truth = sim.truth();
    // Every mirror table: `sync all` fills them all.
    for &table in Table::ALL {
        assert_table_matches(store, &truth, table, embedded);
    }
}

async fn sync_all(engine: &ft_sync::Engine, mode: Mode) -> ft_sync::RunSummary {
    engine
        .sync(
            SyncRequest::new(What::All, mode),
            progress::discard(),
            std::future::pending(),
        )
        .await
        .expect("sync all")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_campuses_cost_what_one_costs_and_no_filter_list_exceeds_the_gateway_limit() {
    for db in TestDb::all() {
        // 30 campuses of 4 coalitions: one coalition filter for all of them would list 120.
        let sim = sim_with_list_limit(41, 30, 3).await;
        let client = common::client_for(&sim, common::test_limits());
        let engine = common::engine(&sim, client, db.store().clone());

        let full = sync_all(&engine, Mode::Full).await;
        assert_eq!(full.tasks_failed, 0, "{:?}", full.errors);
        assert_everything_matches(db.store(), &sim, Embedded::Exact);
        let after_full = v2_requests(&sim);

        let quiet = sync_all(&engine, Mode::Auto).await;
        assert_eq!(quiet.tasks_failed, 0, "{:?}", quiet.errors);
        let quiet_requests = v2_requests(&sim) - after_full;
        // Four reference listings, one request per campus-set listing (users, campus_users,
        // cursus_users, projects_users, locations; coalitions_users in two sets of at most 100
        // coalitions), the re-reads of active piscines and open sessions: per campus, a
        // one-campus-at-a-time plan would spend at least 7 x 30.
        assert!(
            quiet_requests <= 20,
            "a quiet delta of 30 campuses cost {quiet_requests} requests"
        );

        let ledger = sim.ledger();
        let too_long: Vec<String> = ledger
            .iter()
            .filter(|e| {
                let query = e
                    .query
                    .replace("%5B", "[")
                    .replace("%5D", "]")
                    .replace("%2C", ",");
                query.split('&').any(|kv| {
                    kv.split_once('=').is_some_and(|(key, values)| {
                        key.starts_with("filter[") && values.split(',').count() > 100
                    })
                })
            })
            .map(|e| format!("{} {}", e.path, e.query))
            .collect();
        assert!(too_long.is_empty(), "filter lists over 100: {too_long:?}");
        assert!(
            ledger.iter().all(|e| e.status != 502),
            "the gateway refused a request"
        );

        // Watermarks are per campus: every campus has its users cursor, no set cursor is left.
        let cursors = db.store().cursors().expect("cursors");
        for campus in 1..=30 {
            let scope = format!("campus:{campus}");
            assert!(
                cursors
                    .iter()
                    .any(|c| c.resource == "users" && c.scope == scope && c.watermark.is_some()),
                "no users watermark for {scope}"
            );
        }
        let sets: Vec<_> = cursors
            .iter()
            .filter(|c| c.scope.starts_with("campuses:"))
            .map(|c| format!("{} {}", c.resource, c.scope))
            .collect();
        assert!(sets.is_empty(), "set cursors left behind: {sets:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campus_added_later_is_read_whole_while_the_others_get_one_delta() {
    for db in TestDb::all() {
        let sim = common::sim(43, 4, 12).await;
        let client = common::client_for(&sim, common::test_limits());
        let engine = common::engine(&sim, client, db.store().clone());
        engine
            .sync(
                SyncRequest::new(What::Users, Mode::Full).campuses([1, 2, 3]),
                progress::discard(),
                std::future::pending(),
            )
            .await
            .expect("first sync");
        sim.drift(ft_sim::Drift {
            update_fraction: 0.2,
            new_users: 3,
            ..ft_sim::Drift::default()
        });
        engine
            .sync(
                SyncRequest::new(What::Users, Mode::Auto).campuses([1, 2, 3, 4]),
                progress::discard(),
                std::future::pending(),
            )
            .await
            .expect("second sync");
        common::assert_part_one_matches(db.store(), &sim, Embedded::Ignore);

        let users_tasks: Vec<String> = db
            .store()
            .tasks(&TaskFilter {
                kind: Some("users".to_owned()),
                ..TaskFilter::default()
            })
            .expect("tasks")
            .into_iter()
            .map(|t| t.scope)
            .collect();
        assert_eq!(
            users_tasks,
            ["campuses:1-3", "campus:4", "campuses:1-3"],
            "first: one full set; then campus 4 whole and one delta for the set of the others"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_full_sync_replaces_a_queued_delta_of_the_same_campus_set() {
    for db in TestDb::all() {
        let sim = common::sim(47, 3, 10).await;
        let client = common::client_for(&sim, common::test_limits());
        let engine = common::engine(&sim, client, db.store().clone());
        let users = |mode| SyncRequest::new(What::Users, mode).campuses([1, 2, 3]);
        engine
            .sync(
                users(Mode::Full),
                progress::discard(),
                std::future::pending(),
            )
            .await
            .expect("first sync");
        // A delta of the set is planned (by a cron run, say) but not run yet.
        let planned = engine
            .plan(&users(Mode::Delta))
            .await
            .expect("plan a delta");
        assert!(planned.delta >= 1, "{planned:?}");

        // `--force`: the whole set is read again, not deduplicated into the queued delta.
        let forced = engine
            .sync(
                users(Mode::Full).force(true),
                progress::discard(),
                std::future::pending(),
            )
            .await
            .expect("forced sync");
        assert_eq!(forced.tasks_failed, 0, "{:?}", forced.errors);
        let tasks = db
            .store()
            .tasks(&TaskFilter {
                kind: Some("users".to_owned()),
                ..TaskFilter::default()
            })
            .expect("tasks");
        let seen: Vec<(&str, &str, &str)> = tasks
            .iter()
            .map(|t| {
                (
                    t.scope.as_str(),
                    t.state.as_str(),
                    t.payload["mode"].as_str().unwrap_or("?"),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("campuses:1-3", "done", "full"),
                ("campuses:1-3", "error", "delta"),
                ("campuses:1-3", "done", "full"),
            ],
            "the queued delta is cancelled and a full read of the set runs"
        );
        common::assert_part_one_matches(db.store(), &sim, Embedded::Ignore);
    }
}
