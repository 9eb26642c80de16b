//! Cursors, runs, integrity runs and the relation queue.

use crate::common;

use common::ts;
use ft_store::CursorUpdate;
use ft_store::test_support::TestDb;

fn cursor(resource: &str, scope: &str, page: i64) -> CursorUpdate {
    CursorUpdate {
        resource: resource.into(),
        scope: scope.into(),
        watermark: Some(ts(page)),
        pass_since: None,
        pass_until: Some(ts(100)),
        last_id: None,
        page,
        rows: page * 10,
        format_version: 2,
        expected_rows: None,
    }
}

#[test]
fn cursors_are_saved_replaced_listed_and_deleted() {
    for db in TestDb::all() {
        let store = db.store();
        assert_eq!(store.cursor("users", "all").unwrap(), None);
        store.save_cursor(&cursor("users", "all", 1)).unwrap();
        store.save_cursor(&cursor("campus", "all", 1)).unwrap();
        store.save_cursor(&cursor("users", "all", 2)).unwrap();
        let c = store.cursor("users", "all").unwrap().unwrap();
        assert_eq!(
            (c.page, c.rows, c.watermark, c.format_version),
            (2, 20, Some(ts(2)), 2)
        );
        // Full replacement: a None clears the stored value.
        let mut cleared = cursor("users", "all", 3);
        cleared.watermark = None;
        store.save_cursor(&cleared).unwrap();
        assert_eq!(
            store.cursor("users", "all").unwrap().unwrap().watermark,
            None
        );
        let listed: Vec<_> = store
            .cursors()
            .unwrap()
            .into_iter()
            .map(|c| (c.resource, c.scope))
            .collect();
        assert_eq!(
            listed,
            vec![
                ("campus".into(), "all".into()),
                ("users".into(), "all".into())
            ],
            "{}",
            db.backend()
        );
        assert!(store.delete_cursor("users", "all").unwrap());
        assert!(!store.delete_cursor("users", "all").unwrap());
        assert_eq!(store.cursors().unwrap().len(), 1);
    }
}

#[test]
fn runs_and_integrity_runs_are_recorded() {
    for db in TestDb::all() {
        let store = db.store();
        let first = store
            .start_run("sync", &serde_json::json!({"campus": 1}))
            .unwrap();
        let second = store.start_run("backfill", &serde_json::json!({})).unwrap();
        store
            .finish_run(first, "ok", &serde_json::json!({"rows": 10}))
            .unwrap();
        let runs = store.runs(10).unwrap();
        assert_eq!(
            runs.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![second, first]
        );
        assert_eq!(runs[0].status, "running");
        assert_eq!(runs[0].finished_at, None);
        assert_eq!(runs[1].status, "ok");
        assert_eq!(runs[1].params, serde_json::json!({"campus": 1}));
        assert_eq!(runs[1].summary, Some(serde_json::json!({"rows": 10})));
        assert!(
            store
                .finish_run(9_999, "ok", &serde_json::json!({}))
                .is_err()
        );

        let id = store
            .record_integrity_run("findings", &serde_json::json!({"orphans": 2}))
            .unwrap();
        let reports = store.integrity_runs(5).unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].id, id);
        assert_eq!(reports[0].report, serde_json::json!({"orphans": 2}));
    }
}

#[test]
fn relation_queue_take_done_and_reenqueue() {
    for db in TestDb::all() {
        let store = db.store();
        assert_eq!(
            store
                .relation_queue_add(&[(3, "a".into()), (1, "b".into()), (3, "c".into())])
                .unwrap(),
            2
        );
        assert_eq!(store.relation_queue_len().unwrap(), 2);
        let taken = store.relation_queue_take(10).unwrap();
        let mut sorted = taken.clone();
        sorted.sort();
        assert_eq!(sorted, vec![1, 3], "{}", db.backend());
        // Taken users are not handed out twice.
        assert!(store.relation_queue_take(10).unwrap().is_empty());
        // User 3 is re-enqueued while its refresh runs: done must not lose that request.
        store
            .relation_queue_add(&[(3, "changed again".into())])
            .unwrap();
        assert_eq!(store.relation_queue_done(&[1, 3]).unwrap(), 1);
        assert_eq!(store.relation_queue_len().unwrap(), 1);
        assert_eq!(store.relation_queue_take(10).unwrap(), vec![3]);
        assert_eq!(store.relation_queue_done(&[3]).unwrap(), 1);
        assert_eq!(store.relation_queue_len().unwrap(), 0);
    }
}

#[test]
fn relation_queue_take_respects_the_limit_and_order() {
    for db in TestDb::all() {
        let store = db.store();
        for id in [5, 4, 6] {
            store.relation_queue_add(&[(id, "x".into())]).unwrap();
        }
        let first = store.relation_queue_take(2).unwrap();
        assert_eq!(first.len(), 2, "{}", db.backend());
        let rest = store.relation_queue_take(2).unwrap();
        assert_eq!(rest.len(), 1);
        let mut all: Vec<_> = first.into_iter().chain(rest).collect();
        all.sort();
        assert_eq!(all, vec![4, 5, 6]);
    }
}

#[test]
fn the_last_ok_run_with_given_params_is_found() {
    for db in TestDb::all() {
        let store = db.store();
        let full = |what: &str| serde_json::json!({"request": "..", "what": what, "mode": "full"});
        assert_eq!(
            store
                .last_finished_run("sync", &["ok"], &[("mode", "full"), ("what", "all")])
                .unwrap(),
            None
        );
        let old = store.start_run("sync", &full("all")).unwrap();
        store.finish_run(old, "ok", &serde_json::json!({})).unwrap();
        // Newer, but none of them is an ok full sync of everything.
        let users = store.start_run("sync", &full("users")).unwrap();
        store
            .finish_run(users, "ok", &serde_json::json!({}))
            .unwrap();
        let failed = store.start_run("sync", &full("all")).unwrap();
        store
            .finish_run(failed, "failed", &serde_json::json!({}))
            .unwrap();
        let delta = store
            .start_run("sync", &serde_json::json!({"what": "all", "mode": "delta"}))
            .unwrap();
        store
            .finish_run(delta, "ok", &serde_json::json!({}))
            .unwrap();
        let _running = store.start_run("sync", &full("all")).unwrap();
        let started = store.runs(10).unwrap().last().unwrap().started_at;
        assert_eq!(
            store
                .last_finished_run("sync", &["ok"], &[("mode", "full"), ("what", "all")])
                .unwrap(),
            Some(started),
            "{}",
            db.backend()
        );
        assert_eq!(
            store
                .last_finished_run("worker", &["ok"], &[("mode", "full")])
                .unwrap(),
            None
        );
        // A full sync with a failed task (`partial`) counts when asked for.
        let partial = store.start_run("sync", &full("all")).unwrap();
        store
            .finish_run(partial, "partial", &serde_json::json!({}))
            .unwrap();
        let partial_at = store.runs(1).unwrap()[0].started_at;
        assert_eq!(
            store
                .last_finished_run(
                    "sync",
                    &["ok", "partial"],
                    &[("what", "all"), ("mode", "full")]
                )
                .unwrap(),
            Some(partial_at)
        );
        // LIKE wildcards in a value match only themselves.
        assert_eq!(
            store
                .last_finished_run("sync", &["ok", "partial"], &[("mode", "f_ll")])
                .unwrap(),
            None
        );
    }
}
