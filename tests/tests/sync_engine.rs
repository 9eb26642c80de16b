//! The engine against the simulator, on SQLite and PostgreSQL: full sync equals the truth,
//! deltas bring drift back, interruptions resume without loss, faults cost no rows.

use crate::common;

use std::time::Duration;

use common::{Embedded, assert_part_one_matches};
use ft_sim::{Drift, Faults};
use ft_store::Table;
use ft_store::test_support::TestDb;
use ft_sync::{Mode, SyncRequest, What, progress};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_of_two_campuses_equals_the_truth_on_both_backends() {
    let sim = common::sim(7, 2, 60).await;
    for db in TestDb::all() {
        let client = common::client_for(&sim, common::test_limits());
        let engine = common::engine(&sim, client, db.store().clone());
        let summary = engine
            .sync(
                SyncRequest::new(What::Users, Mode::Full).campuses([1, 2]),
                progress::discard(),
                std::future::pending(),
            )
            .await
            .expect("full sync succeeds");
        assert_eq!(summary.tasks_failed, 0);
        assert_eq!(summary.responses_429, 0);
        assert!(summary.rows_written > 0);
        assert_part_one_matches(db.store(), &sim, Embedded::Exact);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_after_drift_restores_the_truth_and_costs_one_request_per_quiet_scope() {
    for db in TestDb::all() {
        // A simulator per backend: drift from one round would fall inside the next round's
        // overlap window and be read again, rightly.
        let sim = common::sim(11, 2, 50).await;
        let client = common::client_for(&sim, common::test_limits());
        let engine = common::engine(&sim, client, db.store().clone());
        let req = SyncRequest::new(What::Users, Mode::Auto).campuses([1, 2]);
        engine
            .sync(req.clone(), progress::discard(), std::future::pending())
            .await
            .expect("first sync");

        // Nothing changed: every scope costs exactly one request.
        let quiet = engine
            .sync(req.clone(), progress::discard(), std::future::pending())
            .await
            .expect("quiet delta");
        // Listings without `updated_at` (campuses, cursus, achievements) are re-read whole, and
        // so are active piscine cursus_users (by id); every other scope reads nothing.
        let truth = sim.truth();
        let unwindowed = ["campuses", "cursus", "achievements"]
            .iter()
            .map(|t| truth.table(t).len())
            .sum::<usize>();
        let piscine = common::active_piscine_cursus_users(&sim);
        assert_eq!(
            quiet.rows_written as usize,
            unwindowed + piscine,
            "only unwindowed listings re-read rows"
        );
        // 4 global listings (campuses, cursus, projects, achievements) + 3 for the set of both
        // campuses (users, campus_users, cursus_users: comma lists, not one request per
        // campus), plus the re-read of active piscine cursus_users by id (100 per request),
        // plus the cursus_users deletion check: the first sync left it to this one (there was
        // nothing stale to find yet); from now on it is fresh for an hour.
        assert_eq!(
            quiet.pages,
            4 + 3 + 1 + (piscine as u64).div_ceil(100),
            "one page per scope"
        );

        sim.drift(Drift {
            update_fraction: 0.2,
            new_users: 5,
            ..Drift::default()
        });
        let delta = engine
            .sync(req.clone(), progress::discard(), std::future::pending())
            .await
            .expect("delta after drift");
        assert!(delta.rows_written > 0, "the delta brought the changes in");
        assert_part_one_matches(db.store(), &sim, Embedded::Ignore);

        // Users that the delta brought in were queued for a relation refresh.
        assert!(db.store().relation_queue_len().expect("queue length") > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_sync_resumes_where_it_stopped_without_refetching() {
    let sim = common::sim(13, 1, 450).await;
    let db = TestDb::sqlite();
    let client = common::client_for(&sim, common::test_limits());
    let engine = common::engine(&sim, client, db.store().clone());
    let req = SyncRequest::new(What::Users, Mode::Full).campuses([1]);
    let _ = &req;

    // Stop the first run as soon as its sixth page is committed: the four reference listings
    // take one page each, so this lands inside the users listing (5 pages of 100).
    let (tx, stop) = stop_after_pages(6);
    let first = engine
        .sync(req.clone(), tx, stop)
        .await
        .expect("interrupted run ends cleanly");
    assert!(
        first.tasks_pending > 0,
        "the interrupted task is parked, not lost"
    );

    // The restart works the queue, as `ft42 worker` does: the parked task resumes.
    let second = engine
        .run_until_idle(false, progress::discard(), std::future::pending())
        .await
        .expect("resumed run");
    assert_part_one_matches(db.store(), &sim, Embedded::Exact);
    // Keyset paging and a clean stop (the page in flight is committed before stopping): both
    // runs together read each page exactly once.
    assert_eq!(
        first.pages + second.pages,
        common::lower_bound_requests(&sim)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_sync_run_again_does_not_reread_what_its_plan_finished() {
    for db in TestDb::all() {
        let sim = common::sim(13, 1, 450).await;
        let client = common::client_for(&sim, common::test_limits());
        let engine = common::engine(&sim, client, db.store().clone());
        let req = SyncRequest::new(What::Users, Mode::Full).campuses([1]);
        // Stop inside the users listing: the reference listings are complete by then.
        let (tx, stop) = stop_after_pages(8);
        let first = engine
            .sync(req.clone(), tx, stop)
            .await
            .expect("interrupted run ends cleanly");
        assert!(first.tasks_pending > 0, "the run was interrupted");
        // The operator (or cron) runs the same full sync again, as after a crash: the scopes
        // its unfinished plan completed are not read again; the rest resumes.
        let second = engine
            .sync(req.clone(), progress::discard(), std::future::pending())
            .await
            .expect("second run");
        assert_part_one_matches(db.store(), &sim, Embedded::Exact);
        assert_eq!(
            first.pages + second.pages,
            common::lower_bound_requests(&sim),
            "each page read once over both runs"
        );
        // Once the plan is finished, a new full run reads everything again.
        let third = engine
            .sync(req.clone(), progress::discard(), std::future::pending())
            .await
            .expect("third run");
        assert_eq!(third.pages, common::lower_bound_requests_again(&sim));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_cost_requests_but_no_rows_and_pacing_causes_no_429() {
    let sim = common::sim(17, 2, 80).await;
    sim.set_faults(Faults {
        error_5xx_rate: 0.10,
        revoke_token_every: Some(150),
        malformed_rate: 0.02,
        spontaneous_429_rate: 0.05,
        ..Faults::default()
    });
    for db in TestDb::all() {
        let client = common::client_for(&sim, common::test_limits());
        let engine = common::engine(&sim, client, db.store().clone());
        let summary = engine
            .sync(
                SyncRequest::new(What::Users, Mode::Full).campuses([1, 2]),
                progress::discard(),
                std::future::pending(),
            )
            .await
            .expect("sync survives the faults");
        assert_eq!(summary.tasks_failed, 0);
        assert_part_one_matches(db.store(), &sim, Embedded::Exact);
    }
    // The simulator answered some 429s on its own (bursts); none was earned: no sliding window
    // of the ledger holds more counted requests than the limits allow.
    let limits = common::test_limits();
    assert!(sim.count_status(429) > 0, "the 429 bursts were injected");
    assert!(sim.max_in_window(limits.second_window) <= limits.per_second as usize);
    assert!(sim.max_in_window(limits.hour_window) <= limits.per_hour as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_campus_fails_its_tasks_and_the_rest_of_the_run_goes_on() {
    let sim = common::sim(19, 1, 30).await;
    let db = TestDb::sqlite();
    let client = common::client_for(&sim, common::test_limits());
    let engine = common::engine(&sim, client, db.store().clone());
    let err = engine
        .sync(
            SyncRequest::new(What::Users, Mode::Full).campuses([1, 999]),
            progress::discard(),
            std::future::pending(),
        )
        .await
        .expect_err("campus 999 does not exist");
    assert!(
        matches!(err, ft_sync::SyncError::TasksFailed { .. }),
        "{err}"
    );
    // The failure names the campus that does not exist (campus-scoped listings read both
    // campuses in one request; only the campus list can tell that one is missing).
    assert!(
        err.to_string().contains("[999] not found"),
        "the error does not name the unknown campus: {err}"
    );
    // Campus 1 was synced all the same.
    let users = db.store().count(Table::Users, false).expect("count");
    assert_eq!(users as usize, sim.truth().table("users").len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_during_a_full_sync_is_caught_by_the_next_delta() {
    for db in TestDb::all() {
        let sim = common::sim(31, 2, 120).await;
        let client = common::client_for(&sim, common::test_limits());
        let engine = common::engine(&sim, client, db.store().clone());
        let req = SyncRequest::new(What::Users, Mode::Auto).campuses([1, 2]);
        sim.start_background_drift(
            Duration::from_millis(20),
            Drift {
                update_fraction: 0.01,
                new_users: 1,
                ..Drift::default()
            },
        );
        engine
            .sync(req.clone(), progress::discard(), std::future::pending())
            .await
            .expect("full sync under drift");
        sim.stop_background_drift();
        engine
            .sync(req, progress::discard(), std::future::pending())
            .await
            .expect("delta");
        assert_part_one_matches(db.store(), &sim, Embedded::Ignore);
    }
}

/// A progress sender and a shutdown future that completes once `n` pages were committed.
fn stop_after_pages(
    n: usize,
) -> (
    ft_sync::ProgressTx,
    impl std::future::Future<Output = ()> + Send,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = async move {
        let mut pages = 0;
        while let Some(event) = rx.recv().await {
            if matches!(event, ft_sync::Progress::Page { .. }) {
                pages += 1;
                if pages == n {
                    return;
                }
            }
        }
        std::future::pending::<()>().await
    };
    (tx, stop)
}
