//! The figures of docs/BENCHMARKS.md: requests per full sync against the lower bound, pacer
//! utilisation, rows/s through the engine (SQLite and PostgreSQL), peak memory against dataset
//! size, and the cost of a delta when nothing changed.
//!
//! ```sh
//! cargo bench -p ft-e2e --bench evidence                 # every figure (about 5 minutes)
//! cargo bench -p ft-e2e --bench evidence -- memory       # one: requests|pacer|engine|memory|delta
//! ```
//!
//! Everything runs against the in-process simulator on loopback. Measurements, not assertions:
//! each figure is printed as one line, with what produced it. PostgreSQL uses the shared
//! throwaway server of ft-store's test support (or `FT42_TEST_PG_URL`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ft_api::{ClientSecret, FtClient, RateConfig};
use ft_sim::{Limits, Sim, SimHandle};
use ft_store::Store;
use ft_store::test_support::TestDb;
use ft_sync::{Engine, EngineConfig, Mode, RunSummary, SyncRequest, What, progress};

/// The resources each figure syncs; `What::All` once the engine covers the relations.
const WHAT: What = What::All;

/// The child's name for [`WHAT`] (see `tests/src/bin/chaos-child.rs`).
const WHAT_ARG: &str = "all";

/// Limits so high that the engine, not the budget, sets the pace.
fn unlimited() -> Limits {
    Limits {
        per_second: 1000,
        per_hour: 1_000_000,
        second_window: Duration::from_secs(1),
        hour_window: Duration::from_secs(3600),
    }
}

async fn sim(seed: u64, campuses: u32, users: u32, limits: Limits) -> SimHandle {
    Sim::builder()
        .seed(seed)
        .campuses(campuses)
        .users_per_campus(users)
        .limits(limits)
        .start()
        .await
}

fn engine(sim: &SimHandle, limits: Limits, store: Store) -> Engine {
    let creds = sim.credentials();
    let client = FtClient::builder()
        .base_url(sim.base_url())
        .client_id(creds.client_id.clone())
        .client_secret(ClientSecret::new(creds.client_secret.clone()))
        .rate(RateConfig {
            per_second: limits.per_second,
            per_hour: limits.per_hour,
            hour: limits.hour_window,
        })
        .build()
        .expect("client");
    let clock = sim.clone();
    // No freshness targets: a delta figure reads every resource.
    let config = EngineConfig {
        freshness: Default::default(),
        ..EngineConfig::default()
    };
    Engine::new(client, store, config).with_clock(Arc::new(move || clock.now()))
}

async fn sync(engine: &Engine, campuses: u32, mode: Mode) -> (RunSummary, Duration) {
    let started = Instant::now();
    let summary = engine
        .sync(
            SyncRequest::new(WHAT, mode).campuses(1..=i64::from(campuses)),
            progress::discard(),
            std::future::pending(),
        )
        .await
        .expect("sync");
    (summary, started.elapsed())
}

/// `/v2` requests the simulator counted against the budget.
fn counted(sim: &SimHandle) -> usize {
    sim.ledger()
        .iter()
        .filter(|e| e.counted && e.path.starts_with("/v2"))
        .count()
}

/// The fewest requests a full pass can take: ceil(rows / 100) per listing and scope. Global
/// listings count their whole table; per-campus listings (users, campus_users, cursus_users)
/// count the rows that campus's listing returns.
fn lower_bound(sim: &SimHandle, campuses: u32) -> usize {
    let truth = sim.truth();
    let pages = |n: usize| n.div_ceil(100).max(1);
    // Projects are read 30 per page (the real endpoint times out on 100).
    let projects = truth
        .table("projects")
        .len()
        .div_ceil(ft_api::endpoints::PROJECTS.max_per_page() as usize)
        .max(1);
    let global: usize = ["campuses", "cursus", "achievements"]
        .iter()
        .map(|t| pages(truth.table(t).len()))
        .sum::<usize>()
        + projects;
    let per_campus: usize = (1..=i64::from(campuses))
        .map(|c| {
            let here: Vec<&serde_json::Value> = truth
                .table("campus_users")
                .iter()
                .filter(|r| r["campus_id"] == c)
                .collect();
            let primary: std::collections::HashSet<i64> = here
                .iter()
                .filter(|r| r["is_primary"] == true)
                .filter_map(|r| r["user_id"].as_i64())
                .collect();
            let cursus_users = truth
                .table("cursus_users")
                .iter()
                .filter(|r| {
                    r["user"]["id"]
                        .as_i64()
                        .is_some_and(|u| primary.contains(&u))
                })
                .count();
            pages(here.len()) * 2 + pages(cursus_users)
        })
        .sum();
    global + per_campus
}

async fn requests_vs_bound() {
    let (campuses, users) = (3, 1000);
    let sim = sim(1, campuses, users, unlimited()).await;
    let db = TestDb::sqlite();
    let engine = engine(&sim, unlimited(), db.store().clone());
    let (summary, _) = sync(&engine, campuses, Mode::Full).await;
    let spent = counted(&sim);
    let bound = lower_bound(&sim, campuses);
    println!(
        "requests: full sync of {campuses} campuses x {users} users ({:?}): {spent} /v2 requests for {} pages, lower bound {bound}, ratio {:.3}; {} token request(s); {} rows",
        WHAT,
        summary.pages,
        spent as f64 / bound as f64,
        summary.requests as usize - spent,
        summary.rows_written
    );
}

async fn pacer() {
    // The real 42 limits: the per-second window binds.
    let real = Limits::default();
    let sim1 = sim(2, 1, 300, real).await;
    let db = TestDb::sqlite();
    let engine1 = engine(&sim1, real, db.store().clone());
    let (summary, elapsed) = sync(&engine1, 1, Mode::Full).await;
    let spent = counted(&sim1);
    // What the server would have allowed from an empty history: 2/s (the hour is far away).
    let server_allows = 1.0 + elapsed.as_secs_f64() * f64::from(real.per_second);
    // What our own buckets allow in that time (token requests take from them too): the hourly
    // bucket's burst, then its refill.
    let (second, hour) = engine1.client().bucket_params();
    let pacer_allows = second.max_takes_in(elapsed).min(hour.max_takes_in(elapsed));
    println!(
        "pacer (2/s, 1200/h): {spent} requests ({} with the token request) in {:.2} s = {:.2} req/s: {:.0}% of what the server allows from an empty history, {:.0}% of what the pacer's buckets allow (hourly burst {}, then {:.3}/s); busiest 1 s window {} (limit 2), 429s {}",
        summary.requests,
        elapsed.as_secs_f64(),
        spent as f64 / elapsed.as_secs_f64(),
        100.0 * spent as f64 / server_allows,
        100.0 * summary.requests as f64 / pacer_allows as f64,
        hour.burst,
        hour.rate_per_sec(),
        sim1.max_in_window(Duration::from_secs(1)),
        sim1.count_status(429)
    );

    // A compressed "hour" (60 requests per 10 s) that binds before the per-second limit.
    let hourly = Limits {
        per_second: 20,
        per_hour: 60,
        second_window: Duration::from_secs(1),
        hour_window: Duration::from_secs(10),
    };
    let sim2 = sim(3, 2, 1000, hourly).await;
    let db = TestDb::sqlite();
    let engine2 = engine(&sim2, hourly, db.store().clone());
    let (_, elapsed) = sync(&engine2, 2, Mode::Full).await;
    let spent = counted(&sim2);
    let rate = f64::from(hourly.per_hour) / hourly.hour_window.as_secs_f64();
    // The best any client can do: a full window at once, then the window's rate.
    let allowed = f64::from(hourly.per_hour)
        + (elapsed.as_secs_f64() - hourly.hour_window.as_secs_f64()).max(0.0) * rate;
    println!(
        "pacer (60 per 10 s window): {spent} requests in {:.2} s, {:.0}% of what the window allows; busiest 10 s window {} (limit 60), 429s {}",
        elapsed.as_secs_f64(),
        100.0 * spent as f64 / allowed,
        sim2.max_in_window(hourly.hour_window),
        sim2.count_status(429)
    );
}

async fn engine_rows() {
    let (campuses, users) = (2, 2000);
    for db in TestDb::all() {
        let sim = sim(4, campuses, users, unlimited()).await;
        let engine = engine(&sim, unlimited(), db.store().clone());
        let (summary, elapsed) = sync(&engine, campuses, Mode::Full).await;
        println!(
            "engine ({:?}, limits off): {} rows in {} pages in {:.2} s = {:.0} rows/s, {:.1} pages/s (simulator in the same process)",
            db.backend(),
            summary.rows_written,
            summary.pages,
            elapsed.as_secs_f64(),
            summary.rows_written as f64 / elapsed.as_secs_f64(),
            summary.pages as f64 / elapsed.as_secs_f64()
        );
    }
}

async fn memory() {
    // The engine runs in its own process (the chaos runner's child), so its peak resident set
    // is not mixed with the simulator's dataset.
    for users in [1000, 4000, 10_000] {
        let campuses = 5;
        let sim = sim(5, campuses, users, unlimited()).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, sim.credentials().client_secret).expect("secret");
        let db = dir.path().join("mem.db");
        let offset = (sim.now() - chrono::Utc::now()).num_milliseconds();
        let limits = unlimited();
        let campus_list: Vec<String> = (1..=campuses).map(|c| c.to_string()).collect();
        let started = Instant::now();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_chaos-child"))
            .args([
                format!("base_url={}", sim.base_url()),
                format!("client_id={}", sim.credentials().client_id),
                format!("secret_file={}", secret.display()),
                format!("database_url={}", db.display()),
                format!("campuses={}", campus_list.join(",")),
                format!("what={WHAT_ARG}"),
                "mode=full".to_owned(),
                "action=sync".to_owned(),
                format!("per_second={}", limits.per_second),
                format!("per_hour={}", limits.per_hour),
                format!("hour_ms={}", limits.hour_window.as_millis()),
                "request_timeout_ms=60000".to_owned(),
                format!("clock_offset_ms={offset}"),
                "report=hwm".to_owned(),
            ])
            .output()
            .await
            .expect("run chaos-child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "memory run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let done = stdout
            .lines()
            .find(|l| l.starts_with("done"))
            .unwrap_or("?");
        let hwm = stdout
            .lines()
            .find(|l| l.starts_with("VmHWM"))
            .unwrap_or("?");
        println!(
            "memory: {} users ({campuses} campuses x {users}), sync process {hwm} ({done}, {:.1} s); SQLite file {:.1} MiB",
            campuses * users,
            started.elapsed().as_secs_f64(),
            std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0
        );
    }
}

async fn delta() {
    let (campuses, users) = (3, 1000);
    let sim = sim(6, campuses, users, unlimited()).await;
    let db = TestDb::sqlite();
    let fast = engine(&sim, unlimited(), db.store().clone());
    sync(&fast, campuses, Mode::Full).await;
    let before = counted(&sim);
    let (summary, elapsed) = sync(&fast, campuses, Mode::Delta).await;
    println!(
        "delta, nothing changed ({campuses} campuses x {users} users): {} requests, {} pages, {} rows re-read (listings without updated_at and active piscine cursus_users), {:.2} s with limits off",
        counted(&sim) - before,
        summary.pages,
        summary.rows_written,
        elapsed.as_secs_f64()
    );
    // The same delta paced at the real limits (2/s, 1200/h), from a fresh process's budget.
    sim.set_limits(Limits::default());
    let paced = engine(&sim, Limits::default(), db.store().clone());
    let before = counted(&sim);
    let (_, elapsed) = sync(&paced, campuses, Mode::Delta).await;
    let budget = paced.client().budget();
    println!(
        "delta, nothing changed, at 2/s and 1200/h: {} requests in {:.2} s (the simulator's hour already held {before} requests of the earlier runs, which the pacer counts as another consumer: it paced for {}/h)",
        counted(&sim) - before,
        elapsed.as_secs_f64(),
        budget.per_hour
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; everything else names a figure.
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let all = wanted.is_empty() || wanted.iter().any(|w| w == "all");
    let want = |name: &str| all || wanted.iter().any(|w| w == name);
    println!(
        "machine: {} CPU(s) available, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |s| s.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_owned())
            )
            .unwrap_or_default()
    );
    if want("requests") {
        requests_vs_bound().await;
    }
    if want("pacer") {
        pacer().await;
    }
    if want("engine") {
        engine_rows().await;
    }
    if want("memory") {
        memory().await;
    }
    if want("delta") {
        delta().await;
    }
}
