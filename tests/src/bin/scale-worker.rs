//! A worker process for the scale-out tests:
//! `scale-worker BASE_URL DATABASE_URL WORKER_ID LEASE_MS APPS_FILE PER_SECOND PER_HOUR HOUR_MS SHARED`.
//!
//! `APPS_FILE` holds one application per line, `CLIENT_ID SECRET` (secrets never go on the
//! command line). Every application gets the given limits; `SHARED` is `shared` to reserve each
//! request in the database's rate ledger as well, anything else to pace this process alone. The
//! worker runs the queue until no task is pending, as `ft42 worker` does, and prints one line
//! of figures. The tests start several of these against one PostgreSQL and kill some.

use std::sync::Arc;
use std::time::Duration;

use ft_api::{Application, ClientSecret, FtClient, RateConfig, SharedBudget};
use ft_store::{RateLedger, Store};
use ft_sync::{Engine, EngineConfig, progress};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [
        _,
        base_url,
        db_url,
        worker_id,
        lease_ms,
        apps_file,
        per_second,
        per_hour,
        hour_ms,
        shared,
    ] = args.as_slice()
    else {
        eprintln!(
            "usage: scale-worker BASE_URL DATABASE_URL WORKER_ID LEASE_MS APPS_FILE PER_SECOND PER_HOUR HOUR_MS SHARED"
        );
        std::process::exit(2);
    };
    let number = |s: &str| -> u64 { s.parse().expect("a whole number") };
    let rate = RateConfig {
        per_second: u32::try_from(number(per_second)).expect("per second"),
        per_hour: u32::try_from(number(per_hour)).expect("per hour"),
        hour: Duration::from_millis(number(hour_ms)),
    };
    let apps: Vec<(String, String)> = std::fs::read_to_string(apps_file)
        .expect("read the applications file")
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, secret)| (id.to_owned(), secret.trim().to_owned()))
        .collect();
    let store = Store::open(db_url).expect("open store");
    store.migrate().expect("migrate");
    let ledger = (shared == "shared")
        .then(|| Arc::new(RateLedger::new(store.clone())) as Arc<dyn SharedBudget>);
    let (first, rest) = apps.split_first().expect("at least one application");
    let mut builder = FtClient::builder()
        .base_url(base_url.as_str())
        .client_id(first.0.as_str())
        .client_secret(ClientSecret::new(first.1.as_str()))
        .rate(rate)
        .jitter_margin(Duration::from_millis(50))
        .shared_budget(ledger);
    for (id, secret) in rest {
        builder = builder.application(Application::new(id.as_str(), ClientSecret::new(secret)));
    }
    let client = builder.build().expect("client");
    let config = EngineConfig {
        worker_id: worker_id.clone(),
        lease: Duration::from_millis(number(lease_ms)),
        ..EngineConfig::default()
    };
    let engine = Engine::new(client.clone(), store, config);
    let result = engine
        .run_until_idle(false, progress::discard(), std::future::pending())
        .await;
    match result {
        Ok(summary) => {
            let stats = client.stats();
            println!(
                "{worker_id}: {} tasks, {} rows, {} pages, {} requests, {} x 429",
                summary.tasks_done,
                summary.rows_written,
                summary.pages,
                stats.requests,
                stats.responses_429
            );
        }
        Err(e) => {
            eprintln!("scale-worker {worker_id}: {e}");
            std::process::exit(1);
        }
    }
}
