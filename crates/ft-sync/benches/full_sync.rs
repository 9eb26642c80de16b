//! Requests spent by a full sync against the lower bound, and rows/s through the engine.
//!
//! `cargo bench -p ft-sync --bench full_sync -- [campuses] [users_per_campus]` (default 2 × 1000).
//! Runs against the in-process simulator into a temporary SQLite file, with the rate limits
//! raised so the engine (not the budget) is measured. Prints one line per figure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ft_api::{ClientSecret, FtClient, RateConfig};
use ft_sim::{Limits, Sim};
use ft_store::Store;
use ft_sync::{Engine, EngineConfig, Mode, SyncRequest, What, progress};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let campuses = args.first().copied().unwrap_or(2);
    let users = args.get(1).copied().unwrap_or(1000);
    let limits = Limits {
        per_second: 1000,
        per_hour: 1_000_000,
        second_window: Duration::from_secs(1),
        hour_window: Duration::from_secs(3600),
    };
    let sim = Sim::builder()
        .seed(1)
        .campuses(campuses)
        .users_per_campus(users)
        .limits(limits)
        .start()
        .await;
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
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().join("bench.db").to_str().expect("utf-8")).expect("store");
    store.migrate().expect("migrate");
    let clock = sim.clone();
    let engine = Engine::new(client, store, EngineConfig::default())
        .with_clock(Arc::new(move || clock.now()));

    let started = Instant::now();
    let ids: Vec<i64> = (1..=i64::from(campuses)).collect();
    let summary = engine
        .sync(
            SyncRequest::new(What::Users, Mode::Full).campuses(ids),
            progress::discard(),
            std::future::pending(),
        )
        .await
        .expect("full sync");
    let elapsed = started.elapsed();

    let truth = sim.truth();
    let pages = |n: usize| n.div_ceil(100).max(1) as u64;
    // Projects are read 30 per page (the real endpoint times out on 100).
    let projects = truth
        .table("projects")
        .len()
        .div_ceil(ft_api::endpoints::PROJECTS.max_per_page() as usize)
        .max(1) as u64;
    let global: u64 = ["campuses", "cursus", "achievements"]
        .iter()
        .map(|t| pages(truth.table(t).len()))
        .sum::<u64>()
        + projects;
    // Campus-scoped listings: per campus, so count each campus's rows from the ledger's view
    // of the truth: users, campus_users and cursus_users are listed per campus.
    let per_campus: u64 = (1..=i64::from(campuses))
        .map(|c| {
            let campus_users: Vec<&serde_json::Value> = truth
                .table("campus_users")
                .iter()
                .filter(|r| r["campus_id"] == c)
                .collect();
            let users_here = campus_users.len();
            let primary: std::collections::HashSet<i64> = campus_users
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
            pages(users_here) + pages(users_here) + pages(cursus_users)
        })
        .sum();
    let bound = global + per_campus;
    let v2_requests = sim
        .ledger()
        .iter()
        .filter(|e| e.path.starts_with("/v2"))
        .count() as u64;
    println!(
        "dataset: {campuses} campuses x {users} users ({} rows in part-one tables)",
        summary.rows_written
    );
    println!("pages committed: {}", summary.pages);
    println!(
        "requests to /v2: {v2_requests} (client counted {} including token requests)",
        summary.requests
    );
    println!("lower bound (sum over scopes of ceil(rows/100)): {bound}");
    println!(
        "requests / lower bound: {:.3}",
        v2_requests as f64 / bound as f64
    );
    println!(
        "wall time: {:.2} s, {:.0} rows/s through the engine (limits raised)",
        elapsed.as_secs_f64(),
        summary.rows_written as f64 / elapsed.as_secs_f64()
    );
    println!("429 responses: {}", sim.count_status(429));
}
