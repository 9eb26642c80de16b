//! Benchmark: generate a large dataset (50,000 users by default) and serve typical requests
//! from it. Reports generation time, resident memory, rows per table and request latencies.
//!
//! `cargo bench -p ft-sim --bench generate [-- USERS]`

use std::time::{Duration, Instant};

use ft_sim::{Limits, Sim};

/// Resident set size of this process in MiB (Linux `/proc`), if available.
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

async fn time_requests(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    label: &str,
    urls: &[String],
) {
    let mut total = Duration::ZERO;
    let mut worst = Duration::ZERO;
    for url in urls {
        let began = Instant::now();
        let response = client
            .get(format!("{base}{url}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "{url}");
        let _ = response.bytes().await.expect("body");
        let took = began.elapsed();
        total += took;
        worst = worst.max(took);
    }
    println!(
        "{label:<48} {:>8.2} ms mean, {:>8.2} ms worst over {} requests",
        total.as_secs_f64() * 1000.0 / urls.len() as f64,
        worst.as_secs_f64() * 1000.0,
        urls.len()
    );
}

#[tokio::main]
async fn main() {
    let users: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(50_000);
    let campuses = 5;
    let before = rss_mib();
    let began = Instant::now();
    let limits = Limits {
        per_second: 1_000_000,
        per_hour: 1_000_000_000,
        ..Limits::default()
    };
    let sim = Sim::builder()
        .seed(1)
        .campuses(campuses)
        .users_per_campus(users / campuses)
        .limits(limits)
        .start()
        .await;
    let generation = began.elapsed();
    let after = rss_mib();
    let counts = sim.counts();
    let rows: usize = counts.values().sum();
    println!("users: {users} on {campuses} campuses; {rows} rows in all");
    for (table, count) in &counts {
        println!("  {table:<20} {count:>10}");
    }
    println!(
        "generation + server start: {:.2} s",
        generation.as_secs_f64()
    );
    if let (Some(before), Some(after)) = (before, after) {
        println!(
            "resident memory: {after:.0} MiB ({:.0} MiB for the dataset)",
            after - before
        );
    }

    let client = reqwest::Client::builder()
        .user_agent("ft-sim-bench")
        .build()
        .expect("client");
    let creds = sim.credentials();
    let token: serde_json::Value = client
        .post(sim.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", creds.client_id.as_str()),
            ("client_secret", creds.client_secret.as_str()),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token JSON");
    let token = token["access_token"].as_str().expect("token").to_owned();
    let base = sim.base_url();

    let steps = 20_i64;
    let keyset = |path: &str, first: i64, stride: i64| -> Vec<String> {
        (0..steps)
            .map(|k| {
                format!(
                    "{path}?sort=id&range[id]={},999999999&page[size]=100",
                    first + k * stride
                )
            })
            .collect()
    };
    time_requests(
        &client,
        &base,
        &token,
        "keyset /v2/projects_users",
        &keyset("/v2/projects_users", 2_000_000, 50_000),
    )
    .await;
    time_requests(
        &client,
        &base,
        &token,
        "keyset /v2/campus/1/users",
        &keyset("/v2/campus/1/users", 40_000, 2_000),
    )
    .await;
    time_requests(
        &client,
        &base,
        &token,
        "keyset /v2/locations",
        &keyset("/v2/locations", 10_000_000, 40_000),
    )
    .await;
    let user_lists: Vec<String> = (0..steps)
        .map(|k| {
            let ids: Vec<String> = (0..100)
                .map(|i| (40_000 + k * 100 + i).to_string())
                .collect();
            format!(
                "/v2/projects_users?filter[user_id]={}&page[size]=100",
                ids.join(",")
            )
        })
        .collect();
    time_requests(
        &client,
        &base,
        &token,
        "projects_users filter[user_id] x100",
        &user_lists,
    )
    .await;
    let since: Vec<String> = (0..5)
        .map(|_| "/v2/cursus_users?range[updated_at]=2026-10-01T00:00:00.000Z,2026-12-01T00:00:00.000Z&sort=id&page[size]=100".to_owned())
        .collect();
    time_requests(
        &client,
        &base,
        &token,
        "cursus_users range[updated_at] (full scan)",
        &since,
    )
    .await;
    let default_order: Vec<String> = (0..5)
        .map(|k| format!("/v2/locations?page={}&per_page=100", k + 1))
        .collect();
    time_requests(
        &client,
        &base,
        &token,
        "locations default order (sort all)",
        &default_order,
    )
    .await;
}
