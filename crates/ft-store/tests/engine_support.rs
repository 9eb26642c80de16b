//! Queue and read helpers used by the sync engine: atomic plans, releasing one's own leases,
//! cancelling live tasks, the next due time, and the active piscine cursus_users.

use crate::common;

use std::time::Duration;

use chrono::NaiveDateTime;
use common::ts;
use ft_store::rows::{CampusUserRow, CursusRow, CursusUserRow};
use ft_store::test_support::TestDb;
use ft_store::{ApplyPage, Lane, NewTask, Rows, StoreError, TaskFilter, TaskState};

const LEASE: Duration = Duration::from_secs(60);

fn task(key: &str, next_run_at: NaiveDateTime) -> NewTask {
    NewTask {
        kind: "users".into(),
        scope: key.into(),
        payload: serde_json::json!({ "key": key }),
        lane: Lane::Backfill,
        priority: 0,
        next_run_at,
        dedupe_key: Some(key.into()),
    }
}

#[test]
fn enqueue_all_queues_every_task_and_reports_the_ones_already_live() {
    for db in TestDb::all() {
        let store = db.store();
        store.enqueue(&task("b", ts(0))).unwrap().expect("queued");
        let ids = store
            .enqueue_all(&[task("a", ts(0)), task("b", ts(0)), task("c", ts(0))])
            .unwrap();
        assert!(
            ids[0].is_some() && ids[1].is_none() && ids[2].is_some(),
            "{ids:?} on {}",
            db.backend()
        );
        assert_eq!(store.tasks(&TaskFilter::default()).unwrap().len(), 3);
    }
}

#[test]
fn next_pending_at_is_the_earliest_due_time_or_lease_expiry() {
    // ts() counts minutes: an hour's lease outlives every claim below.
    const LEASE: Duration = Duration::from_secs(3600);
    for db in TestDb::all() {
        let store = db.store();
        assert_eq!(store.next_pending_at().unwrap(), None);
        store
            .enqueue_all(&[task("a", ts(10)), task("b", ts(5)), task("c", ts(7))])
            .unwrap();
        assert_eq!(store.next_pending_at().unwrap(), Some(ts(5)));
        // A running task counts from its lease's expiry (ts(66)), later than c's due time.
        let b = store.claim("w", LEASE, ts(6)).unwrap().expect("claims b");
        assert_eq!(b.task.scope, "b");
        assert_eq!(store.next_pending_at().unwrap(), Some(ts(7)));
        // Nothing pending any more: a worker must still wait for the leases, because a dead
        // holder's task is taken over when its lease expires.
        let c = store.claim("w", LEASE, ts(7)).unwrap().expect("claims c");
        let a = store.claim("w", LEASE, ts(10)).unwrap().expect("claims a");
        assert_eq!(store.next_pending_at().unwrap(), Some(ts(66)));
        for claimed in [a, b, c] {
            store.complete(&claimed.fence).unwrap();
        }
        assert_eq!(store.next_pending_at().unwrap(), None);
    }
}

#[test]
fn release_leases_gives_a_restarted_worker_its_tasks_back_and_fences_the_old_one() {
    for db in TestDb::all() {
        let store = db.store();
        store
            .enqueue_all(&[task("a", ts(0)), task("b", ts(0))])
            .unwrap();
        let mine = store.claim("me", LEASE, ts(1)).unwrap().unwrap();
        let theirs = store.claim("other", LEASE, ts(1)).unwrap().unwrap();
        assert_eq!(store.release_leases("me").unwrap(), 1);
        // The other worker's task is untouched; ours is pending again, with no attempt spent.
        let again = store
            .claim("me", LEASE, ts(1))
            .unwrap()
            .expect("claimable at once");
        assert_eq!(again.task.id, mine.task.id);
        assert_eq!(again.task.attempts, 0);
        assert!(again.fence.token > mine.fence.token);
        // The dead process's fence no longer commits.
        let err = store.apply_page(ApplyPage {
            fence: Some(mine.fence.clone()),
            ..ApplyPage::rows(Rows::Users(vec![]))
        });
        assert!(matches!(err, Err(StoreError::LeaseLost { .. })), "{err:?}");
        store.complete(&theirs.fence).unwrap();
    }
}

#[test]
fn cancel_live_ends_pending_and_running_tasks_with_the_key() {
    for db in TestDb::all() {
        let store = db.store();
        store
            .enqueue_all(&[task("a", ts(0)), task("b", ts(0))])
            .unwrap();
        let running = store.claim("w", LEASE, ts(1)).unwrap().unwrap();
        assert_eq!(
            store.cancel_live(&running.task.scope, "replaced").unwrap(),
            1
        );
        assert_eq!(store.cancel_live("b", "replaced").unwrap(), 1);
        assert_eq!(
            store.cancel_live("b", "replaced").unwrap(),
            0,
            "already ended"
        );
        let errors = store
            .tasks(&TaskFilter {
                state: Some(TaskState::Error),
                ..TaskFilter::default()
            })
            .unwrap();
        assert_eq!(errors.len(), 2);
        assert!(
            errors
                .iter()
                .all(|t| t.last_error.as_deref() == Some("replaced"))
        );
        // The worker that held the cancelled task cannot settle it.
        assert!(store.complete(&running.fence).is_err());
        // The key is free again.
        assert!(store.enqueue(&task("b", ts(0))).unwrap().is_some());
    }
}

fn cursus(id: i64, kind: &str) -> CursusRow {
    CursusRow {
        id,
        name: Some(kind.into()),
        slug: Some(kind.into()),
        kind: Some(kind.into()),
        created_at: None,
        raw: "{}".into(),
    }
}

fn cursus_user(
    id: i64,
    user_id: i64,
    cursus_id: i64,
    begin: i64,
    end: Option<i64>,
) -> CursusUserRow {
    CursusUserRow {
        id,
        user_id,
        cursus_id,
        grade: None,
        level: Some(1.5),
        begin_at: Some(ts(begin)),
        end_at: end.map(ts),
        blackholed_at: None,
        has_coalition: None,
        created_at: None,
        updated_at: Some(ts(0)),
        raw: "{}".into(),
    }
}

fn campus_user(id: i64, user_id: i64, campus_id: i64) -> CampusUserRow {
    CampusUserRow {
        id,
        user_id,
        campus_id,
        is_primary: Some(true),
        created_at: None,
        updated_at: None,
        raw: "{}".into(),
    }
}

#[test]
fn active_piscine_ids_are_begun_unended_piscine_rows_of_the_chosen_campuses() {
    for db in TestDb::all() {
        let store = db.store();
        store
            .apply_page(ApplyPage::rows(Rows::Cursus(vec![
                cursus(9, "piscine"),
                cursus(21, "main"),
            ])))
            .unwrap();
        store
            .apply_page(ApplyPage::rows(Rows::CampusUsers(vec![
                campus_user(1, 100, 1),
                campus_user(2, 200, 2),
                campus_user(3, 300, 1),
            ])))
            .unwrap();
        store
            .apply_page(ApplyPage::rows(Rows::CursusUsers(vec![
                cursus_user(10, 100, 9, 0, Some(100)), // active piscine, campus 1
                cursus_user(11, 100, 21, 0, None),     // main cursus
                cursus_user(12, 200, 9, 0, None),      // active piscine, campus 2
                cursus_user(13, 300, 9, 80, None),     // not begun at minute 50
                cursus_user(14, 300, 9, 0, Some(40)),  // ended
            ])))
            .unwrap();
        let now = ts(50);
        assert_eq!(
            store.active_piscine_cursus_user_ids(None, now).unwrap(),
            vec![10, 12]
        );
        assert_eq!(
            store
                .active_piscine_cursus_user_ids(Some(&[1]), now)
                .unwrap(),
            vec![10]
        );
        assert_eq!(
            store
                .active_piscine_cursus_user_ids(Some(&[2, 3]), now)
                .unwrap(),
            vec![12]
        );
        assert!(
            store
                .active_piscine_cursus_user_ids(Some(&[]), now)
                .unwrap()
                .is_empty()
        );
        // Rows marked deleted are not re-checked.
        store
            .mark_deleted(ft_store::Table::CursusUsers, &[12], ts(60))
            .unwrap();
        assert_eq!(
            store.active_piscine_cursus_user_ids(None, now).unwrap(),
            vec![10]
        );
    }
}
