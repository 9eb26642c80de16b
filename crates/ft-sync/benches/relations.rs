//! Requests spent by a full sync of every resource (relations included) against the per-user
//! approach of the original plan (one call per user and relation, more for users with more
//! than 100 rows).
//!
//! `cargo bench -p ft-sync --bench relations -- [campuses] [users_per_campus]` (default 1 × 1000).
//! Runs against the in-process simulator into a temporary SQLite file with the limits raised,
//! archiving raw pages into a temporary folder. Prints one line per figure.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ft_api::{ClientSecret, FtClient, RateConfig};
use ft_sim::{Limits, Sim};
use ft_store::Store;
use ft_sync::{Engine, EngineConfig, Mode, SyncRequest, What, progress};

/// The user-scoped tables a per-user sync calls `/v2/users/:id/<table>` for.
const PER_USER: [&str; 5] = [
    "cursus_users",
    "projects_users",
    "achievements_users",
    "coalitions_users",
    "locations",
];

fn user_of(row: &serde_json::Value) -> Option<i64> {
    row["user_id"]
        .as_i64()
        .or_else(|| row["user"]["id"].as_i64())
}

fn folder_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            total += if path.is_dir() {
                folder_bytes(&path)
            } else {
                entry.metadata().map(|m| m.len()).unwrap_or(0)
            };
        }
    }
    total
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let campuses = args.first().copied().unwrap_or(1);
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
    let exports = dir.path().join("exports");
    let store = Store::open(dir.path().join("bench.db").to_str().expect("utf-8")).expect("store");
    store.migrate().expect("migrate");
    let clock = sim.clone();
    let config = EngineConfig {
        export_dir: Some(exports.clone()),
        ..EngineConfig::default()
    };
    let engine = Engine::new(client, store, config).with_clock(Arc::new(move || clock.now()));

    let started = Instant::now();
    let summary = engine
        .sync(
            SyncRequest::new(What::All, Mode::Full),
            progress::discard(),
            std::future::pending(),
        )
        .await
        .expect("full sync");
    let elapsed = started.elapsed();

    let mut by_endpoint: BTreeMap<String, u64> = BTreeMap::new();
    for e in sim.ledger().iter().filter(|e| e.path.starts_with("/v2")) {
        let family = e
            .path
            .split('/')
            .filter(|p| !p.is_empty() && p.parse::<i64>().is_err())
            .collect::<Vec<_>>()
            .join("/");
        *by_endpoint.entry(family).or_default() += 1;
    }
    let total: u64 = by_endpoint.values().sum();
    let relation_requests: u64 = by_endpoint
        .iter()
        .filter(|(k, _)| PER_USER.iter().any(|t| k.ends_with(t)))
        .map(|(_, n)| n)
        .sum();

    // The per-user approach: for every user, one call per relation, one more per extra 100 rows.
    let truth = sim.truth();
    let user_ids: Vec<i64> = truth
        .table("users")
        .iter()
        .filter_map(|u| u["id"].as_i64())
        .collect();
    let mut per_user_requests = 0u64;
    for table in PER_USER {
        let mut rows: HashMap<i64, usize> = HashMap::new();
        for row in truth.table(table) {
            if let Some(u) = user_of(row) {
                *rows.entry(u).or_default() += 1;
            }
        }
        per_user_requests += user_ids
            .iter()
            .map(|u| rows.get(u).copied().unwrap_or(0).div_ceil(100).max(1) as u64)
            .sum::<u64>();
    }

    println!(
        "dataset: {campuses} campus(es) x {users} users, {} rows written, {:.1} s",
        summary.rows_written,
        elapsed.as_secs_f64()
    );
    for (endpoint, n) in &by_endpoint {
        println!("  {endpoint:<28} {n:>6} requests");
    }
    println!("requests to /v2 in all: {total}");
    println!("requests for the user-scoped relations: {relation_requests}");
    println!(
        "per-user approach for the same relations ({} users x {} relations, paged): {per_user_requests}",
        user_ids.len(),
        PER_USER.len()
    );
    println!(
        "per-user / ours: {:.1}x fewer requests",
        per_user_requests as f64 / relation_requests.max(1) as f64
    );
    println!(
        "at 1200 requests/hour: ours {:.2} h, per-user {:.1} h",
        total as f64 / 1200.0,
        per_user_requests as f64 / 1200.0
    );
    println!(
        "archive: {:.1} MiB compressed",
        folder_bytes(&exports) as f64 / 1_048_576.0
    );
    println!("responses 429: {}", summary.responses_429);
}
