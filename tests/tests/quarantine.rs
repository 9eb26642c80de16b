//! No poison pages (issue #16): a row the API sends that cannot be decoded is quarantined with
//! its raw JSON and the reason, the rest of its page commits, the task finishes instead of
//! retrying forever, integrity reports it, and a later page that brings the row in a form that
//! stores releases it.

use crate::common;

use common::Embedded;
use ft_sim::Traps;
use ft_store::test_support::TestDb;
use ft_store::{Table, TaskFilter, TaskState};
use ft_sync::{Mode, SyncRequest, What, progress};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_row_is_quarantined_and_its_page_commits_without_it() {
    for db in TestDb::all() {
        let sim = common::sim(61, 1, 30).await;
        let truth = sim.truth();
        let users = truth.ids("users");
        // One user in the middle of the first page: the rows around it must still be stored.
        let poisoned = users[users.len() / 2];
        sim.set_traps(Traps {
            poison_user_ids: vec![poisoned],
            ..Traps::default()
        });
        let client = common::client_for(&sim, common::test_limits());
        let engine = common::engine(&sim, client, db.store().clone());
        let run = |mode| {
            engine.sync(
                SyncRequest::new(What::Users, mode),
                progress::discard(),
                std::future::pending(),
            )
        };
        let summary = run(Mode::Full).await.expect("sync");
        assert_eq!(summary.tasks_failed, 0, "{:?}", summary.errors);
        assert_eq!(summary.tasks_pending, 0, "nothing left to retry");
        let users_tasks = db
            .store()
            .tasks(&TaskFilter {
                kind: Some("users".to_owned()),
                ..TaskFilter::default()
            })
            .expect("tasks");
        assert!(
            users_tasks
                .iter()
                .all(|t| t.state == TaskState::Done && t.attempts == 0),
            "the users task finished on its first attempt: {users_tasks:?}"
        );

        let quarantined = db.store().quarantined(10).expect("quarantine");
        assert_eq!(quarantined.len(), 1, "{quarantined:?}");
        let q = &quarantined[0];
        assert_eq!(
            (q.resource.as_str(), q.item_id, q.times),
            ("users", Some(poisoned), 1)
        );
        assert!(q.reason.contains("login"), "{}", q.reason);
        let raw: serde_json::Value = serde_json::from_str(&q.raw).expect("raw JSON kept");
        assert_eq!(raw["id"], poisoned);
        assert_eq!(raw["login"], 4242, "kept exactly as received");

        // Every other user of the page is stored.
        let stored = common::stored_ids(db.store(), Table::Users);
        let others: Vec<i64> = users.iter().copied().filter(|&u| u != poisoned).collect();
        assert!(
            others.iter().all(|u| stored.contains(u)),
            "missing users besides the poisoned one"
        );

        // Integrity names it.
        let report = ft_integrity::check(db.store(), &ft_integrity::Options::default());
        let finding = report
            .findings
            .iter()
            .find(|f| f.check == "quarantine")
            .expect("a quarantine finding");
        assert_eq!(finding.table.as_deref(), Some("users"));
        assert_eq!(finding.ids, vec![poisoned]);

        // Seen again: counted, still one row.
        run(Mode::Full).await.expect("second sync");
        let quarantined = db.store().quarantined(10).expect("quarantine");
        assert_eq!(quarantined.len(), 1);
        assert_eq!(quarantined[0].times, 2);

        // The API mends the row: the next read stores it and releases it.
        sim.set_traps(Traps::default());
        run(Mode::Full).await.expect("third sync");
        assert_eq!(db.store().quarantine_count().expect("count"), 0);
        common::assert_part_one_matches(db.store(), &sim, Embedded::Ignore);
        let report = ft_integrity::check(db.store(), &ft_integrity::Options::default());
        assert!(!report.findings.iter().any(|f| f.check == "quarantine"));
    }
}

/// achievements_users has no campus filter: a delta of one campus reads the network-wide
/// window and skips the rows of other campuses' users. A bad row of another campus's user is
/// skipped with them, not quarantined (this mirror would never store it, so it would never be
/// released); a bad row of one of the campus's own users is quarantined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_row_of_another_campus_in_the_network_wide_window_is_not_quarantined() {
    for db in TestDb::all() {
        let sim = common::sim(62, 2, 30).await;
        let campus = sim.truth().ids("campuses")[0];
        // Every resource refreshed on every run: the delta must not skip achievements_users.
        let config = ft_sync::EngineConfig {
            freshness: std::collections::BTreeMap::new(),
            ..ft_sync::EngineConfig::default()
        };
        let client = common::client_for(&sim, common::test_limits());
        let engine = common::engine_with(&sim, client, db.store().clone(), config);
        let run = |what, mode| {
            engine.sync(
                SyncRequest::new(what, mode).campuses([campus]),
                progress::discard(),
                std::future::pending(),
            )
        };
        for what in [What::Users, What::Relations] {
            let summary = run(what, Mode::Full).await.expect("full sync");
            assert_eq!(summary.tasks_failed, 0, "{:?}", summary.errors);
        }
        let ours: std::collections::HashSet<i64> = common::stored_ids(db.store(), Table::Users)
            .into_iter()
            .collect();

        // Drift a few achievements_users (the window must fit one page, so that the delta
        // reads it rather than its users' batches), then spoil one changed row of one of our
        // users and one of another campus's user.
        let report = sim.drift(ft_sim::Drift {
            update_fraction: 0.05,
            ..ft_sim::Drift::default()
        });
        let changed = &report.updated["achievements_users"];
        assert!(changed.len() <= 100, "{} rows changed", changed.len());
        let truth = sim.truth();
        let user_of = |id: i64| {
            truth
                .table("achievements_users")
                .iter()
                .find(|r| r["id"] == id)
                .and_then(|r| r["user_id"].as_i64())
                .expect("a changed row with a user")
        };
        let mine = changed
            .iter()
            .map(|&id| user_of(id))
            .find(|u| ours.contains(u));
        let theirs = changed
            .iter()
            .map(|&id| user_of(id))
            .find(|u| !ours.contains(u));
        let (Some(mine), Some(theirs)) = (mine, theirs) else {
            panic!("the drift changed rows of both campuses' users: {changed:?}");
        };
        sim.set_traps(Traps {
            poison_achievements_of: vec![mine, theirs],
            ..Traps::default()
        });
        let before = sim.ledger().len();
        let summary = run(What::Relations, Mode::Delta).await.expect("delta");
        assert_eq!(summary.tasks_failed, 0, "{:?}", summary.errors);
        assert!(
            sim.ledger()[before..]
                .iter()
                .any(|e| e.path == "/v2/achievements_users"
                    && e.query.contains("range%5Bupdated_at%5D")
                    && !e.query.contains("filter%5Buser_id%5D")),
            "the delta read the network-wide window"
        );

        let quarantined = db.store().quarantined(100).expect("quarantine");
        let spoiled_of = |user: i64| -> Vec<i64> {
            changed
                .iter()
                .copied()
                .filter(|&id| user_of(id) == user)
                .collect()
        };
        let mut ids: Vec<i64> = quarantined.iter().filter_map(|q| q.item_id).collect();
        ids.sort_unstable();
        assert!(
            quarantined
                .iter()
                .all(|q| q.resource == "achievements_users"),
            "{quarantined:?}"
        );
        let mut expected = spoiled_of(mine);
        expected.sort_unstable();
        assert_eq!(
            ids, expected,
            "only our user's changed rows are quarantined"
        );
        assert!(!spoiled_of(theirs).is_empty());
    }
}
