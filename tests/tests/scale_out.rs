//! Scale-out on PostgreSQL: several `scale-worker` processes share one queue, and one budget
//! per application through the rate ledger, against the simulator with two applications.
//!
//! What the fetch log proves: `apply_page` writes a page's rows and its fetch-log row in one
//! fenced transaction, so every committed page has exactly one row. A full sync plans one task
//! per (listing, scope) and each task numbers its pages 1, 2, 3 ... from its cursor, a takeover
//! going on from the last committed page. So if no page was committed twice, each
//! (listing, scope, endpoint, page) appears once, all of one listing's rows carry one task id,
//! and the page numbers of each task run 1..=n without a gap.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Embedded, assert_part_one_matches};
use ft_sim::{AppCredentials, Limits, SimHandle};
use ft_store::test_support::TestDb;
use ft_store::{FetchLogRecord, Store, TaskFilter, TaskState};
use ft_sync::{Mode, SyncRequest, What};

/// Limits of every simulated application in these tests: 10/s and a compressed "hour".
fn limits(per_hour: u32, hour: Duration) -> Limits {
    Limits {
        per_second: 10,
        per_hour,
        second_window: Duration::from_secs(1),
        hour_window: hour,
    }
}

async fn sim(seed: u64, campuses: u32, users: u32, limits: Limits) -> SimHandle {
    ft_sim::Sim::builder()
        .seed(seed)
        .campuses(campuses)
        .users_per_campus(users)
        .limits(limits)
        .start()
        .await
}

/// Writes the applications file a worker reads (`CLIENT_ID SECRET` per line).
fn apps_file(dir: &Path, apps: &[AppCredentials]) -> String {
    let path = dir.join("applications");
    let text: String = apps
        .iter()
        .map(|a| format!("{} {}\n", a.client_id, a.client_secret))
        .collect();
    std::fs::write(&path, text).expect("write the applications file");
    path.to_str().expect("utf-8 path").to_owned()
}

struct Workers<'a> {
    sim: &'a SimHandle,
    db_url: &'a str,
    apps_file: String,
    limits: Limits,
    lease: Duration,
    shared: bool,
}

impl Workers<'_> {
    fn spawn(&self, id: &str) -> Child {
        Command::new(env!("CARGO_BIN_EXE_scale-worker"))
            .args([
                self.sim.base_url().as_str(),
                self.db_url,
                id,
                &self.lease.as_millis().to_string(),
                &self.apps_file,
                &self.limits.per_second.to_string(),
                &self.limits.per_hour.to_string(),
                &self.limits.hour_window.as_millis().to_string(),
                if self.shared { "shared" } else { "local" },
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn scale-worker")
    }
}

/// Plans a full sync of `campuses` into the queue (no request is made for a campus list).
async fn plan(sim: &SimHandle, store: &Store, campuses: u32) {
    let client = common::client_for(sim, common::test_limits());
    let engine = common::engine(sim, client, store.clone());
    let req = SyncRequest::new(What::Users, Mode::Full).campuses(1..=i64::from(campuses));
    let planned = engine.plan(&req).await.expect("plan");
    assert!(planned.enqueued > 0);
}

fn wait_ok(child: Child, what: &str) -> String {
    let out = child.wait_with_output().expect("wait for worker");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fetch_log(store: &Store) -> Vec<FetchLogRecord> {
    store.fetch_log(1_000_000).expect("read the fetch log")
}

/// The fetch-log proof described in the module docs. Pages are numbered per task, and two
/// listings can read one endpoint for one scope (cursus_users, and the piscine levels re-read
/// by id), so a page is identified by its task's kind and scope, the endpoint and the number.
fn assert_no_page_committed_twice(store: &Store) {
    let log = fetch_log(store);
    assert!(
        !log.is_empty(),
        "the fetch log is empty: the test proves nothing"
    );
    let tasks: BTreeMap<i64, (String, String)> = store
        .tasks(&TaskFilter::default())
        .expect("list tasks")
        .into_iter()
        .map(|t| (t.id, (t.kind, t.scope)))
        .collect();
    let mut seen: BTreeMap<(String, String, String, i64), i64> = BTreeMap::new();
    let mut tasks_of_listing: BTreeMap<(String, String), BTreeSet<i64>> = BTreeMap::new();
    let mut pages_of_task: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for row in &log {
        let page = row.page.expect("listing pages carry a page number");
        let task = row.task_id.expect("worker pages carry their task");
        let (kind, scope) = tasks.get(&task).expect("the page's task exists").clone();
        assert_eq!(scope, row.scope, "fetch_log row {} and its task", row.id);
        let key = (kind.clone(), scope.clone(), row.endpoint.clone(), page);
        if let Some(first) = seen.insert(key, row.id) {
            panic!(
                "{kind} {scope} ({}) page {page} committed twice (fetch_log rows {first} and {})",
                row.endpoint, row.id
            );
        }
        tasks_of_listing
            .entry((kind, scope))
            .or_default()
            .insert(task);
        pages_of_task.entry(task).or_default().push(page);
    }
    for (listing, tasks) in &tasks_of_listing {
        assert_eq!(tasks.len(), 1, "{listing:?} was written by tasks {tasks:?}");
    }
    for (task, mut pages) in pages_of_task {
        pages.sort_unstable();
        let want: Vec<i64> = (1..=pages.len() as i64).collect();
        assert_eq!(pages, want, "task {task}: pages with a gap or a repeat");
    }
}

fn assert_all_done(store: &Store) -> Vec<ft_store::Task> {
    let tasks = store.tasks(&TaskFilter::default()).expect("list tasks");
    for t in &tasks {
        assert_eq!(
            t.state,
            TaskState::Done,
            "task {} ({} {}) is {}: {:?}",
            t.id,
            t.kind,
            t.scope,
            t.state,
            t.last_error
        );
    }
    tasks
}

/// Requests that count against the server's budget, per application.
fn counted(sim: &SimHandle, app: u64) -> usize {
    sim.ledger()
        .iter()
        .filter(|e| e.counted && e.app_id == Some(app))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_two_applications_one_budget_zero_429s_and_the_truth() {
    // The compressed hour (20 requests per 4 s per application, 5/s) binds harder than the
    // per-second limit, so both windows are exercised across the four processes.
    let limits = limits(20, Duration::from_secs(4));
    let sim = sim(101, 3, 350, limits).await;
    let second = sim.add_application(limits.per_second, limits.per_hour);
    let db = TestDb::postgres();
    plan(&sim, db.store(), 3).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let workers = Workers {
        sim: &sim,
        db_url: db.url(),
        apps_file: apps_file(dir.path(), &[sim.credentials(), second.clone()]),
        limits,
        lease: Duration::from_secs(10),
        shared: true,
    };
    let started = Instant::now();
    let children: Vec<Child> = (0..4).map(|i| workers.spawn(&format!("w{i}"))).collect();
    for (i, child) in children.into_iter().enumerate() {
        let line = wait_ok(child, &format!("worker w{i}"));
        eprintln!("{}", line.trim());
    }
    eprintln!("four workers took {:.1}s", started.elapsed().as_secs_f64());

    assert_eq!(sim.count_status(429), 0, "a 429 was answered");
    let apps = [1, sim.application_id(&second).expect("second app id")];
    for app in apps {
        assert!(sim.max_in_window_for(app, Duration::from_secs(1)) <= 10);
        assert!(sim.max_in_window_for(app, limits.hour_window) <= 20);
        // Both applications carried part of the work.
        assert!(counted(&sim, app) > 0, "application {app} sent nothing");
    }
    let tasks = assert_all_done(db.store());
    let owners: BTreeSet<&str> = tasks
        .iter()
        .filter_map(|t| t.lease_owner.as_deref())
        .collect();
    assert!(owners.len() >= 3, "work went to {owners:?} only");
    assert_no_page_committed_twice(db.store());
    assert_part_one_matches(db.store(), &sim, Embedded::Exact);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_task_is_taken_over_from_its_last_committed_page() {
    let limits = limits(10_000, Duration::from_secs(3600));
    // 700 users per campus: the users listing of a campus is 7 pages, so a task is caught
    // with some pages committed and some still to go.
    let sim = sim(202, 2, 700, limits).await;
    let db = TestDb::postgres();
    plan(&sim, db.store(), 2).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let workers = Workers {
        sim: &sim,
        db_url: db.url(),
        apps_file: apps_file(dir.path(), &[sim.credentials()]),
        limits,
        lease: Duration::from_millis(1500),
        shared: true,
    };
    let mut children: BTreeMap<String, Child> = (0..3)
        .map(|i| {
            let id = format!("w{i}");
            let child = workers.spawn(&id);
            (id, child)
        })
        .collect();

    let (victim, task_id, committed) = catch_running_task(db.store()).await;
    let mut child = children.remove(&victim).expect("the victim is one of ours");
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let at_kill = db.store().task(task_id).expect("read").expect("task");
    assert_eq!(
        at_kill.state,
        TaskState::Running,
        "the task was still running"
    );
    assert_eq!(at_kill.lease_owner.as_deref(), Some(victim.as_str()));
    eprintln!("killed {victim} holding task {task_id} after {committed} committed page(s)");

    for (id, child) in children {
        let line = wait_ok(child, &id);
        eprintln!("{}", line.trim());
    }
    let tasks = assert_all_done(db.store());
    let taken = tasks.iter().find(|t| t.id == task_id).expect("the task");
    assert_ne!(taken.lease_owner.as_deref(), Some(victim.as_str()));
    assert!(taken.attempts >= 1, "the takeover counts an attempt");
    // Its pages before the kill were not fetched again: the page numbers go on.
    let pages: Vec<i64> = fetch_log(db.store())
        .iter()
        .filter(|r| r.task_id == Some(task_id))
        .filter_map(|r| r.page)
        .collect();
    assert!(
        pages.len() > committed,
        "the task went on after the takeover"
    );
    assert_no_page_committed_twice(db.store());
    assert_eq!(sim.count_status(429), 0);
    assert_part_one_matches(db.store(), &sim, Embedded::Exact);
}

/// Waits for a campus-scoped task that is running with one to four committed pages (campus
/// listings have seven or more here, global ones a page or two); returns its owner, id and
/// committed pages.
async fn catch_running_task(store: &Store) -> (String, i64, usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "no multi-page task was caught running"
        );
        let running = store
            .tasks(&TaskFilter {
                state: Some(TaskState::Running),
                ..TaskFilter::default()
            })
            .expect("list tasks");
        let log = fetch_log(store);
        let caught = running.iter().find_map(|t| {
            let pages = log.iter().filter(|r| r.task_id == Some(t.id)).count();
            (t.scope != "global" && (1..=4).contains(&pages)).then(|| {
                (
                    t.lease_owner.clone().expect("running has owner"),
                    t.id,
                    pages,
                )
            })
        });
        if let Some(found) = caught {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_worker_loses_its_task_and_cannot_commit_when_it_wakes_up() {
    let limits = limits(10_000, Duration::from_secs(3600));
    let sim = sim(404, 2, 700, limits).await;
    let db = TestDb::postgres();
    plan(&sim, db.store(), 2).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let workers = Workers {
        sim: &sim,
        db_url: db.url(),
        apps_file: apps_file(dir.path(), &[sim.credentials()]),
        limits,
        lease: Duration::from_millis(1500),
        shared: true,
    };
    let mut children: BTreeMap<String, Child> = (0..3)
        .map(|i| {
            let id = format!("w{i}");
            let child = workers.spawn(&id);
            (id, child)
        })
        .collect();
    let (stalled, task_id, committed) = catch_running_task(db.store()).await;
    let sleeper = children.remove(&stalled).expect("one of ours");
    signal(&sleeper, "-STOP");
    // Stopped well past its lease: another worker takes the task over meanwhile.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = db.store().task(task_id).expect("read").expect("task");
        if t.lease_owner.as_deref() != Some(stalled.as_str()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "task {task_id} was never taken over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&sleeper, "-CONT");
    eprintln!("stalled {stalled} holding task {task_id} after {committed} committed page(s)");
    // The woken worker finds its lease lost, commits nothing more for that task and goes on.
    wait_ok(sleeper, &stalled);
    for (id, child) in children {
        wait_ok(child, &id);
    }
    assert_all_done(db.store());
    assert_no_page_committed_twice(db.store());
    assert_eq!(sim.count_status(429), 0);
    assert_part_one_matches(db.store(), &sim, Embedded::Exact);
}

/// Without the shared ledger, four processes each pace for the whole budget: the server
/// answers 429s. This is the control for the four-worker test (the ledger is what keeps that one at zero).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ledger_four_workers_overspend_the_budget() {
    let limits = limits(20, Duration::from_secs(4));
    let sim = sim(101, 3, 350, limits).await;
    let db = TestDb::postgres();
    plan(&sim, db.store(), 3).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let workers = Workers {
        sim: &sim,
        db_url: db.url(),
        apps_file: apps_file(dir.path(), &[sim.credentials()]),
        limits,
        lease: Duration::from_secs(10),
        shared: false,
    };
    let children: Vec<Child> = (0..4).map(|i| workers.spawn(&format!("w{i}"))).collect();
    for (i, child) in children.into_iter().enumerate() {
        wait_ok(child, &format!("worker w{i}"));
    }
    assert!(
        sim.count_status(429) > 0,
        "four unshared pacers stayed within one budget: the control shows nothing"
    );
    // The local pacers still recover: the data is complete.
    assert_part_one_matches(db.store(), &sim, Embedded::Exact);
}

/// Rows per compressed hour with one application and with two (four workers, shared ledger).
/// A figure for the report, not a pass/fail check: `cargo test -p ft-e2e --test it
/// scale_out::bench -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints rows per compressed hour for one and two applications"]
async fn bench_rows_per_hour_one_vs_two_applications() {
    let hour = Duration::from_secs(5);
    let limits = limits(25, hour);
    let mut figures = Vec::new();
    for n_apps in [1usize, 2] {
        let sim = sim(303, 4, 400, limits).await;
        let mut apps = vec![sim.credentials()];
        for _ in 1..n_apps {
            apps.push(sim.add_application(limits.per_second, limits.per_hour));
        }
        let db = TestDb::postgres();
        plan(&sim, db.store(), 4).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let workers = Workers {
            sim: &sim,
            db_url: db.url(),
            apps_file: apps_file(dir.path(), &apps),
            limits,
            lease: Duration::from_secs(10),
            shared: true,
        };
        let started = Instant::now();
        let children: Vec<Child> = (0..4).map(|i| workers.spawn(&format!("w{i}"))).collect();
        for (i, child) in children.into_iter().enumerate() {
            wait_ok(child, &format!("worker w{i}"));
        }
        let elapsed = started.elapsed();
        let rows: usize = common::PART_ONE_TABLES
            .iter()
            .map(|t| db.store().raw_rows(*t).expect("rows").len())
            .sum();
        let per_hour = rows as f64 / elapsed.as_secs_f64() * hour.as_secs_f64();
        let requests: usize = (1..=n_apps as u64).map(|a| counted(&sim, a)).sum();
        eprintln!(
            "{n_apps} application(s): {rows} rows, {requests} requests in {:.1}s = {per_hour:.0} rows per compressed hour ({:.1} requests/s), {} x 429",
            elapsed.as_secs_f64(),
            requests as f64 / elapsed.as_secs_f64(),
            sim.count_status(429)
        );
        assert_eq!(sim.count_status(429), 0);
        figures.push(per_hour);
    }
    eprintln!("two applications / one: {:.2}x", figures[1] / figures[0]);
}
