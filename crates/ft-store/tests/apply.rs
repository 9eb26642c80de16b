//! apply_page is one transaction: everything or nothing.

use crate::common;

use std::time::Duration;

use common::*;
use diesel::Connection;
use diesel::connection::SimpleConnection;
use ft_store::rows::LocationRow;
use ft_store::test_support::TestDb;
use ft_store::{
    ApplyPage, Backend, Column, CursorUpdate, Fence, FetchLogEntry, IdsWhere, Lane, NewTask, Rows,
    StoreError, Table,
};

fn cursor(page: i64) -> CursorUpdate {
    CursorUpdate {
        resource: "users".into(),
        scope: "campus:1".into(),
        watermark: Some(ts(0)),
        pass_since: Some(ts(0)),
        pass_until: Some(ts(60)),
        last_id: Some(page * 100),
        page,
        rows: page * 100,
        format_version: 1,
        expected_rows: None,
    }
}

fn fetch(page: i64) -> FetchLogEntry {
    FetchLogEntry {
        at: ts(1),
        endpoint: "/v2/campus/1/users".into(),
        scope: "campus:1".into(),
        page: Some(page),
        status: 200,
        items: 100,
        retries: 1,
        wait_ms: 250,
        token_refreshed: false,
        task_id: None,
        request_id: Some("req-1".into()),
    }
}

fn full_page(rows: Rows, fence: Option<Fence>) -> ApplyPage {
    ApplyPage {
        rows,
        cursor: Some(cursor(3)),
        fetch_log: Some(fetch(3)),
        fence,
        enqueue_users: vec![(1, "new user".into()), (2, "new user".into())],
        mark_deleted: None,
        also: Vec::new(),
        also_cursors: Vec::new(),
        drop_cursor: None,
        quarantine: Vec::new(),
        refresh_embedded: Vec::new(),
    }
}

/// A raw connection to the test database, for sabotage.
fn sabotage(db: &TestDb, sql: &str) {
    match db.backend() {
        Backend::Postgres => diesel::PgConnection::establish(db.url())
            .unwrap()
            .batch_execute(sql)
            .unwrap(),
        Backend::Sqlite => {
            diesel::SqliteConnection::establish(db.url().strip_prefix("sqlite://").unwrap())
                .unwrap()
                .batch_execute(sql)
                .unwrap()
        }
    }
}

fn assert_nothing_written(db: &TestDb) {
    let store = db.store();
    let backend = db.backend();
    assert_eq!(
        store.count(Table::Users, true).unwrap(),
        0,
        "{backend}: rows"
    );
    assert_eq!(
        store.cursor("users", "campus:1").unwrap(),
        None,
        "{backend}: cursor"
    );
    assert_eq!(
        store.relation_queue_len().unwrap(),
        0,
        "{backend}: relation queue"
    );
}

#[test]
fn a_page_writes_rows_cursor_fetch_log_and_queue_together() {
    for db in TestDb::all() {
        let store = db.store();
        let rows = Rows::Users(vec![user(1, "a", Some(ts(1))), user(2, "b", Some(ts(1)))]);
        let outcome = store.apply_page(full_page(rows, None)).unwrap();
        assert_eq!((outcome.written, outcome.enqueued), (2, 2));
        let stored = store.cursor("users", "campus:1").unwrap().unwrap();
        assert_eq!(stored.page, 3);
        assert_eq!(stored.last_id, Some(300));
        assert_eq!(stored.pass_until, Some(ts(60)));
        assert_eq!(store.fetch_log_count().unwrap(), 1);
        let log = &store.fetch_log(10).unwrap()[0];
        assert_eq!(
            (
                log.endpoint.as_str(),
                log.page,
                log.status,
                log.retries,
                log.wait_ms
            ),
            ("/v2/campus/1/users", Some(3), 200, 1, 250)
        );
        assert_eq!(log.request_id.as_deref(), Some("req-1"));
        assert_eq!(store.relation_queue_len().unwrap(), 2);
    }
}

#[test]
fn a_failure_after_the_rows_leaves_neither_rows_nor_cursor() {
    for db in TestDb::all() {
        // The fetch-log insert is the step after rows and cursor; without its table it fails.
        sabotage(&db, "DROP TABLE fetch_log");
        let rows: Vec<_> = (1..=1_500).map(|id| user(id, "x", Some(ts(1)))).collect();
        let err = db
            .store()
            .apply_page(full_page(Rows::Users(rows), None))
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Query {
                    table: "fetch_log",
                    ..
                }
            ),
            "{}: {err}",
            db.backend()
        );
        assert_nothing_written(&db);
    }
}

#[test]
fn invalid_json_in_the_second_chunk_rolls_back_the_first_on_postgres() {
    // Only PostgreSQL validates raw (JSONB); the bad row sits beyond the first 1,000-row chunk.
    let db = TestDb::postgres();
    let mut rows: Vec<_> = (1..=1_500).map(|id| user(id, "x", Some(ts(1)))).collect();
    rows[1_200].raw = "{not json".into();
    let err = db
        .store()
        .apply_page(full_page(Rows::Users(rows), None))
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Query {
                op: "upsert",
                table: "users",
                ..
            }
        ),
        "{err}"
    );
    assert_nothing_written(&db);
}

#[test]
fn a_fence_that_does_not_match_writes_nothing() {
    for db in TestDb::all() {
        let store = db.store();
        let id = store
            .enqueue(&NewTask {
                kind: "sync_users".into(),
                scope: "campus:1".into(),
                payload: serde_json::json!({}),
                lane: Lane::Hot,
                priority: 0,
                next_run_at: ts(0),
                dedupe_key: None,
            })
            .unwrap()
            .unwrap();
        let claimed = store
            .claim("worker-a", Duration::from_secs(600), ft_now())
            .unwrap()
            .unwrap();
        assert_eq!(claimed.task.id, id);
        for fence in [
            Fence {
                token: claimed.fence.token + 1,
                ..claimed.fence.clone()
            },
            Fence {
                owner: "worker-b".into(),
                ..claimed.fence.clone()
            },
            Fence {
                task_id: id + 1,
                ..claimed.fence.clone()
            },
        ] {
            let rows = Rows::Users(vec![user(1, "a", Some(ts(1)))]);
            let err = store.apply_page(full_page(rows, Some(fence))).unwrap_err();
            assert!(err.is_lease_lost(), "{}: {err}", db.backend());
            assert_nothing_written(&db);
            assert_eq!(store.fetch_log_count().unwrap(), 0);
        }
        // The real fence works.
        let rows = Rows::Users(vec![user(1, "a", Some(ts(1)))]);
        store
            .apply_page(full_page(rows, Some(claimed.fence)))
            .unwrap();
        assert_eq!(store.count(Table::Users, false).unwrap(), 1);
    }
}

#[test]
fn an_expired_lease_refuses_the_page() {
    for db in TestDb::all() {
        let store = db.store();
        store
            .enqueue(&NewTask {
                kind: "sync_users".into(),
                scope: "campus:1".into(),
                payload: serde_json::json!({}),
                lane: Lane::Hot,
                priority: 0,
                next_run_at: ts(0),
                dedupe_key: None,
            })
            .unwrap();
        // Claimed "an hour ago" with a one-minute lease: expired by the wall clock.
        let claimed = store
            .claim(
                "worker-a",
                Duration::from_secs(60),
                ft_now() - chrono::TimeDelta::hours(1),
            )
            .unwrap()
            .unwrap();
        let rows = Rows::Users(vec![user(1, "a", Some(ts(1)))]);
        let err = store
            .apply_page(full_page(rows, Some(claimed.fence)))
            .unwrap_err();
        assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
        assert_nothing_written(&db);
    }
}

#[test]
fn deletions_and_generic_reads() {
    for db in TestDb::all() {
        let store = db.store();
        let rows: Vec<_> = (1..=4)
            .map(|id| LocationRow {
                id,
                user_id: id * 10,
                campus_id: Some(if id <= 3 { 7 } else { 8 }),
                host: Some(format!("e1r1p{id}")),
                primary: Some(true),
                begin_at: Some(ts(0)),
                end_at: if id % 2 == 0 { None } else { Some(ts(5)) },
                raw: format!(r#"{{"id":{id}}}"#),
            })
            .collect();
        store
            .apply_page(ApplyPage::rows(Rows::Locations(rows)))
            .unwrap();
        assert_eq!(
            store
                .live_ids(Table::Locations, IdsWhere::Eq(Column::CampusId, 7))
                .unwrap(),
            vec![1, 2, 3]
        );
        assert_eq!(
            store
                .live_ids(Table::Locations, IdsWhere::Null(Column::EndAt))
                .unwrap(),
            vec![2, 4]
        );

        let page = ApplyPage {
            mark_deleted: Some((Table::Locations, vec![2, 3, 99])),
            also: Vec::new(),
            ..ApplyPage::rows(Rows::Locations(vec![]))
        };
        let outcome = store.apply_page(page).unwrap();
        assert_eq!(outcome.marked_deleted, 2);
        assert_eq!(
            store
                .live_ids(Table::Locations, IdsWhere::Eq(Column::CampusId, 7))
                .unwrap(),
            vec![1]
        );
        assert_eq!(
            store
                .live_ids(Table::Locations, IdsWhere::Null(Column::EndAt))
                .unwrap(),
            vec![4]
        );
        assert_eq!(
            store.live_ids(Table::Locations, IdsWhere::All).unwrap(),
            vec![1, 4]
        );
        assert_eq!(store.count(Table::Locations, false).unwrap(), 2);
        assert_eq!(store.count(Table::Locations, true).unwrap(), 4);
        // Marking again does not move deleted_at.
        assert_eq!(
            store.mark_deleted(Table::Locations, &[2], ts(99)).unwrap(),
            0
        );
        let deleted: Vec<_> = store
            .raw_rows(Table::Locations)
            .unwrap()
            .into_iter()
            .filter(|r| r.deleted_at.is_some())
            .map(|r| r.id)
            .collect();
        assert_eq!(deleted, vec![2, 3]);

        // Columns are typed, and one the table does not have is refused, not spliced in.
        let err = store
            .live_ids(Table::Locations, IdsWhere::Eq(Column::CoalitionId, 1))
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownColumn { .. }), "{err}");
        assert!(
            store
                .live_ids(Table::Users, IdsWhere::Null(Column::EndAt))
                .is_err()
        );
    }
}

fn ft_now() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}
