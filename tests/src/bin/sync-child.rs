//! A sync process for the crash tests:
//! `sync-child BASE_URL CLIENT_ID SECRET_FILE DATABASE_URL CAMPUSES` (a comma list).
//!
//! With an empty queue it plans and runs a full sync of the campuses (one campus set); with
//! tasks already queued (a restart after a kill) it only works the queue, as `ft42 worker`
//! does. The parent kills it with SIGKILL at random moments.

use std::time::Duration;

use ft_api::{ClientSecret, FtClient, RateConfig};
use ft_store::Store;
use ft_sync::{Engine, EngineConfig, Mode, SyncRequest, What, progress};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, base_url, client_id, secret_file, db_url, campuses] = args.as_slice() else {
        eprintln!("usage: sync-child BASE_URL CLIENT_ID SECRET_FILE DATABASE_URL CAMPUSES");
        std::process::exit(2);
    };
    let secret = std::fs::read_to_string(secret_file).expect("read secret file");
    let campuses: Vec<i64> = campuses
        .split(',')
        .map(|c| c.parse().expect("campus id"))
        .collect();
    let client = FtClient::builder()
        .base_url(base_url.as_str())
        .client_id(client_id.as_str())
        .client_secret(ClientSecret::new(secret.trim()))
        .rate(RateConfig {
            per_second: 10,
            per_hour: 100_000,
            hour: Duration::from_secs(3600),
        })
        .build()
        .expect("client");
    let store = Store::open(db_url).expect("open store");
    store.migrate().expect("migrate");
    let config = EngineConfig {
        worker_id: "crash-test".to_owned(),
        ..EngineConfig::default()
    };
    let engine = Engine::new(client, store.clone(), config);
    let queued = !store
        .tasks(&Default::default())
        .expect("list tasks")
        .is_empty();
    let result = if queued {
        engine
            .run_until_idle(false, progress::discard(), std::future::pending())
            .await
    } else {
        let req = SyncRequest::new(What::Users, Mode::Full).campuses(campuses);
        engine
            .sync(req, progress::discard(), std::future::pending())
            .await
    };
    match result {
        Ok(summary) => println!(
            "done: {} rows, {} pages",
            summary.rows_written, summary.pages
        ),
        Err(e) => {
            eprintln!("sync-child: {e}");
            std::process::exit(1);
        }
    }
}
