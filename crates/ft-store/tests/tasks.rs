//! The task queue: dedupe, claim order, leases, fencing and SKIP LOCKED.

use crate::common;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use common::ts;
use diesel::Connection;
use diesel::connection::SimpleConnection;
use ft_store::test_support::TestDb;
use ft_store::{Lane, NewTask, Store, StoreError, TaskFilter, TaskState};

const LEASE: Duration = Duration::from_secs(60);

fn task(kind: &str, priority: i32, next_run_at: NaiveDateTime, key: Option<&str>) -> NewTask {
    NewTask {
        kind: kind.into(),
        scope: "campus:1".into(),
        payload: serde_json::json!({"kind": kind, "priority": priority}),
        lane: Lane::Backfill,
        priority,
        next_run_at,
        dedupe_key: key.map(Into::into),
    }
}

fn enqueue(store: &Store, t: NewTask) -> i64 {
    store.enqueue(&t).unwrap().expect("enqueued")
}

#[test]
fn dedupe_keys_are_unique_among_live_tasks_only() {
    for db in TestDb::all() {
        let store = db.store();
        let first = enqueue(store, task("a", 0, ts(0), Some("users:1")));
        assert_eq!(
            store
                .enqueue(&task("a", 5, ts(0), Some("users:1")))
                .unwrap(),
            None
        );
        // No key, or another key: always enqueued.
        enqueue(store, task("a", 0, ts(0), None));
        enqueue(store, task("a", 0, ts(0), None));
        enqueue(store, task("a", 0, ts(0), Some("users:2")));

        let claimed = store.claim("w", LEASE, ts(1)).unwrap().unwrap();
        assert_eq!(claimed.task.id, first);
        // Running still holds the key.
        assert_eq!(
            store
                .enqueue(&task("a", 0, ts(0), Some("users:1")))
                .unwrap(),
            None
        );
        store.complete(&claimed.fence).unwrap();
        // Done releases it.
        let again = store
            .enqueue(&task("a", 0, ts(0), Some("users:1")))
            .unwrap();
        assert!(again.is_some_and(|id| id != first), "{}", db.backend());
    }
}

#[test]
fn claim_takes_priority_then_due_time_then_id_and_skips_future_tasks() {
    for db in TestDb::all() {
        let store = db.store();
        let low_early = enqueue(store, task("low", 1, ts(0), None));
        let high_late = enqueue(store, task("high-late", 9, ts(5), None));
        let high_early_b = enqueue(store, task("high-early-b", 9, ts(2), None));
        let high_early_a = enqueue(store, task("high-early-a", 9, ts(2), None));
        let future = enqueue(store, task("future", 99, ts(100), None));
        let _ = future;

        let order: Vec<i64> = std::iter::from_fn(|| {
            store
                .claim("w", LEASE, ts(10))
                .unwrap()
                .map(|claimed| claimed.task.id)
        })
        .collect();
        // Same priority and due time: lower id first.
        assert!(high_early_b < high_early_a);
        assert_eq!(
            order,
            vec![high_early_b, high_early_a, high_late, low_early],
            "{}",
            db.backend()
        );
        let claimed = store.claim("w", LEASE, ts(100)).unwrap().unwrap();
        assert_eq!(claimed.task.kind, "future");
        assert_eq!(claimed.task.state, TaskState::Running);
        assert_eq!(claimed.task.lease_owner.as_deref(), Some("w"));
        assert_eq!(claimed.task.lease_expires_at, Some(ts(101)));
        assert_eq!(
            claimed.task.payload,
            serde_json::json!({"kind": "future", "priority": 99})
        );
        assert_eq!(claimed.task.lane, Lane::Backfill);
    }
}

#[test]
fn an_expired_lease_is_taken_over_and_the_old_fence_is_dead() {
    for db in TestDb::all() {
        let store = db.store();
        let id = enqueue(store, task("a", 0, ts(0), None));
        let a = store.claim("worker-a", LEASE, ts(1)).unwrap().unwrap();
        assert_eq!(a.fence.token, 1);
        // Within the lease nobody else gets it.
        assert!(
            store
                .claim("worker-b", LEASE, ts(1) + TimeDelta::seconds(59))
                .unwrap()
                .is_none()
        );
        // After it, worker-b takes over, with a new token; the takeover counts as an attempt.
        let b = store.claim("worker-b", LEASE, ts(3)).unwrap().unwrap();
        assert_eq!(b.task.id, id);
        assert_eq!(b.fence.token, 2);
        assert_eq!(b.task.attempts, 1);
        assert!(b.task.last_error.as_deref().unwrap().contains("worker-a"));

        for result in [
            store.heartbeat(&a.fence, LEASE),
            store.complete(&a.fence),
            store.park(&a.fence, ts(9), "rate limited"),
            store.retry(&a.fence, ts(9), "boom"),
            store.fail(&a.fence, "boom"),
        ] {
            assert!(
                matches!(result, Err(StoreError::LeaseLost { task_id }) if task_id == id),
                "{}: {result:?}",
                db.backend()
            );
        }
        store.heartbeat(&b.fence, LEASE).unwrap();
        // The heartbeat moved the lease to the wall clock's now + LEASE, far past ts(3) + LEASE.
        let renewed = store.task(id).unwrap().unwrap().lease_expires_at.unwrap();
        assert!(renewed > chrono::Utc::now().naive_utc(), "{renewed}");
        store.complete(&b.fence).unwrap();
        let done = store.task(id).unwrap().unwrap();
        assert_eq!(done.state, TaskState::Done);
        assert!(done.finished_at.is_some());
        // A finished task's fence is dead too.
        assert!(store.complete(&b.fence).unwrap_err().is_lease_lost());
    }
}

#[test]
fn park_retry_fail_and_requeue() {
    for db in TestDb::all() {
        let store = db.store();
        let id = enqueue(store, task("a", 0, ts(0), Some("k")));

        let c = store.claim("w", LEASE, ts(1)).unwrap().unwrap();
        store.park(&c.fence, ts(50), "rate limit").unwrap();
        let t = store.task(id).unwrap().unwrap();
        assert_eq!(
            (t.state, t.attempts, t.next_run_at),
            (TaskState::Pending, 0, ts(50))
        );
        assert_eq!(t.last_error.as_deref(), Some("rate limit"));
        assert_eq!(t.lease_owner, None);
        assert!(
            store.claim("w", LEASE, ts(49)).unwrap().is_none(),
            "parked until ts(50)"
        );

        let c = store.claim("w", LEASE, ts(50)).unwrap().unwrap();
        store.retry(&c.fence, ts(60), "HTTP 502").unwrap();
        let t = store.task(id).unwrap().unwrap();
        assert_eq!(
            (t.state, t.attempts, t.next_run_at),
            (TaskState::Pending, 1, ts(60))
        );
        assert_eq!(t.last_error.as_deref(), Some("HTTP 502"));

        let c = store.claim("w", LEASE, ts(60)).unwrap().unwrap();
        store.fail(&c.fence, "HTTP 404").unwrap();
        let t = store.task(id).unwrap().unwrap();
        assert_eq!((t.state, t.attempts), (TaskState::Error, 1));
        assert!(store.claim("w", LEASE, ts(1_000)).unwrap().is_none());

        // A failed task whose key is now held by a live task stays failed.
        let live = enqueue(store, task("a", 0, ts(0), Some("k")));
        let other = enqueue(store, task("b", 0, ts(0), None));
        let c = store.claim("w", LEASE, ts(70)).unwrap().unwrap();
        assert_eq!(c.task.id, live);
        let c2 = store.claim("w", LEASE, ts(70)).unwrap().unwrap();
        assert_eq!(c2.task.id, other);
        store.fail(&c2.fence, "x").unwrap();
        assert_eq!(
            store.requeue_errors(None, ts(80)).unwrap(),
            1,
            "{}",
            db.backend()
        );
        assert_eq!(store.task(id).unwrap().unwrap().state, TaskState::Error);
        let requeued = store.task(other).unwrap().unwrap();
        assert_eq!((requeued.state, requeued.attempts), (TaskState::Pending, 0));

        store.complete(&c.fence).unwrap();
        assert_eq!(store.requeue_errors(Some("a"), ts(80)).unwrap(), 1);
        assert_eq!(store.task(id).unwrap().unwrap().state, TaskState::Pending);
    }
}

#[test]
fn listing_counting_and_purging_tasks() {
    for db in TestDb::all() {
        let store = db.store();
        let a1 = enqueue(store, task("a", 0, ts(0), None));
        enqueue(store, task("a", 0, ts(0), None));
        let mut hot = task("b", 0, ts(0), None);
        hot.lane = Lane::Hot;
        hot.scope = "campus:2".into();
        let b = enqueue(store, hot);
        let c = store.claim("w", LEASE, ts(1)).unwrap().unwrap();
        assert_eq!(c.task.id, a1);
        store.complete(&c.fence).unwrap();

        let counts = store.task_counts().unwrap();
        assert_eq!(
            counts,
            vec![
                ("a".to_string(), TaskState::Done, 1),
                ("a".to_string(), TaskState::Pending, 1),
                ("b".to_string(), TaskState::Pending, 1),
            ],
            "{}",
            db.backend()
        );
        let ids = |f: TaskFilter| -> Vec<i64> {
            store.tasks(&f).unwrap().into_iter().map(|t| t.id).collect()
        };
        assert_eq!(ids(TaskFilter::default()).len(), 3);
        assert_eq!(
            ids(TaskFilter {
                lane: Some(Lane::Hot),
                ..Default::default()
            }),
            vec![b]
        );
        assert_eq!(
            ids(TaskFilter {
                scope: Some("campus:2".into()),
                ..Default::default()
            }),
            vec![b]
        );
        assert_eq!(
            ids(TaskFilter {
                kind: Some("a".into()),
                state: Some(TaskState::Done),
                ..Default::default()
            }),
            vec![a1]
        );
        assert_eq!(
            ids(TaskFilter {
                limit: Some(1),
                ..Default::default()
            }),
            vec![a1]
        );

        let far_future = chrono::Utc::now().naive_utc() + TimeDelta::days(1);
        assert_eq!(store.purge_done_tasks(far_future).unwrap(), 1);
        assert_eq!(store.tasks(&TaskFilter::default()).unwrap().len(), 2);
    }
}

#[test]
fn concurrent_claimers_never_get_the_same_task() {
    for db in TestDb::all() {
        let store = db.store();
        for i in 0..8 {
            enqueue(store, task(&format!("t{i}"), 0, ts(0), None));
        }
        let barrier = Arc::new(Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|w| {
                let store = store.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut mine = Vec::new();
                    while let Some(c) = store.claim(&format!("w{w}"), LEASE, ts(1)).unwrap() {
                        mine.push(c.task.id);
                    }
                    mine
                })
            })
            .collect();
        let all: Vec<i64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(all.len(), 8, "{}: {all:?}", db.backend());
        assert_eq!(unique.len(), 8, "{}: {all:?}", db.backend());
    }
}

#[test]
fn postgres_claim_skips_a_locked_task_instead_of_waiting() {
    let db = TestDb::postgres();
    let store = db.store();
    let first = enqueue(store, task("a", 5, ts(0), None));
    let second = enqueue(store, task("b", 1, ts(0), None));

    // Another session holds a row lock on the best task, as a concurrent claimer would.
    let mut other = diesel::PgConnection::establish(db.url()).unwrap();
    other
        .batch_execute(&format!(
            "BEGIN; SELECT id FROM tasks WHERE id = {first} FOR UPDATE"
        ))
        .unwrap();
    // Without SKIP LOCKED this claim would wait for a lock that is only released below (and
    // nextest would kill the test); with it, the next task comes back at once.
    let claimed = store.claim("w", LEASE, ts(1)).unwrap().unwrap();
    assert_eq!(claimed.task.id, second);
    other.batch_execute("ROLLBACK").unwrap();
    let claimed = store.claim("w", LEASE, ts(1)).unwrap().unwrap();
    assert_eq!(claimed.task.id, first);
}
