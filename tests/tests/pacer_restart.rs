//! Processes that die abruptly (their tasks aborted mid-request, as `kill -9` would leave them)
//! and restart during a backfill that saturates a compressed hour: with the request log
//! (SQLite) or the rate ledger (PostgreSQL, two processes at once) no restarted process exceeds
//! a window, and none earns a 429. Without the log, a restarted process cannot know the hour is
//! spent, and its first request earns one.

use std::sync::Arc;
use std::time::Duration;

use ft_api::{ClientSecret, FtClient, Query, RateConfig, SharedBudget};
use ft_sim::{Limits, SimHandle};
use ft_store::test_support::TestDb;
use ft_store::{RateLedger, RequestLog, Store};

/// 20 per second and 20 per 8-second "hour": one process spends the hour within a second.
const LIMITS: Limits = Limits {
    per_second: 20,
    per_hour: 20,
    second_window: Duration::from_secs(1),
    hour_window: Duration::from_secs(8),
};

#[derive(Clone, Copy, PartialEq)]
enum Budget {
    None,
    RequestLog,
    RateLedger,
}

/// One process: a fresh store handle and client, three workers requesting pages for `run`,
/// then aborted wherever they are.
async fn process(sim: &SimHandle, url: &str, budget: Budget, run: Duration) {
    let store = Store::open(url).expect("the database opens");
    let shared: Option<Arc<dyn SharedBudget>> = match budget {
        Budget::None => None,
        Budget::RequestLog => Some(Arc::new(RequestLog::new(store))),
        Budget::RateLedger => Some(Arc::new(RateLedger::new(store))),
    };
    let creds = sim.credentials();
    let client = FtClient::builder()
        .base_url(sim.base_url())
        .client_id(creds.client_id.clone())
        .client_secret(ClientSecret::new(creds.client_secret.clone()))
        .rate(RateConfig {
            per_second: LIMITS.per_second,
            per_hour: LIMITS.per_hour,
            hour: LIMITS.hour_window,
        })
        .shared_budget(shared)
        .build()
        .expect("client builds");
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                loop {
                    let q = Query::new().per_page(5);
                    let _ = client.get_page::<serde_json::Value>("/v2/cursus", &q).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(run).await;
    for w in workers {
        w.abort();
    }
}

fn simulator() -> ft_sim::SimBuilder {
    ft_sim::Sim::builder()
        .seed(61)
        .users_per_campus(5)
        .limits(LIMITS)
        .network_delay(Duration::from_millis(20))
}

fn assert_within_limits(sim: &SimHandle) {
    assert!(sim.max_in_window(LIMITS.second_window) <= 20);
    assert!(sim.max_in_window(LIMITS.hour_window) <= 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_restarts_on_sqlite_with_the_request_log_earn_no_429() {
    let sim = simulator().start().await;
    let db = TestDb::sqlite();
    for _ in 0..7 {
        process(
            &sim,
            db.url(),
            Budget::RequestLog,
            Duration::from_millis(1500),
        )
        .await;
    }
    let counted = sim.ledger().iter().filter(|e| e.counted).count();
    assert!(counted >= 20, "the backfill spent the hour: {counted}");
    assert_eq!(sim.count_status(429), 0);
    assert_within_limits(&sim);

    // The control: without the log, a restarted process's first request meets the spent hour
    // (the first process leaves one request of it, as its token request took a place in its
    // own log; the second spends it; the third's first request is refused).
    let sim = simulator().start().await;
    let db = TestDb::sqlite();
    for _ in 0..3 {
        process(&sim, db.url(), Budget::None, Duration::from_millis(1500)).await;
    }
    assert!(
        sim.count_status(429) > 0,
        "a process without history earns a 429"
    );
    assert_within_limits(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_sharing_the_application_on_postgres_restart_six_times_without_a_429() {
    let sim = simulator().start().await;
    let db = TestDb::postgres();
    let url = db.url().to_owned();
    let run = |delay: u64| {
        let (sim, url) = (sim.clone(), url.clone());
        async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            for _ in 0..3 {
                process(&sim, &url, Budget::RateLedger, Duration::from_millis(1700)).await;
            }
        }
    };
    tokio::join!(run(0), run(800));
    let counted = sim.ledger().iter().filter(|e| e.counted).count();
    // Token requests take places in the ledger too (the server does not count them).
    assert!(counted >= 15, "the backfill spent the hour: {counted}");
    assert_eq!(sim.count_status(429), 0);
    assert_within_limits(&sim);
}
