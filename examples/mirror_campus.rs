//! Embeds the sync engine as a library: mirrors one campus into a SQLite file, then runs a
//! delta, printing progress as it goes.
//!
//! With `FT42_CLIENT_ID` and `FT42_CLIENT_SECRET` set it talks to the real API (or
//! `FT42_API_URL`); without them it starts the simulator in-process.
//!
//! ```text
//! cargo run -p ft-examples --example mirror_campus -- 1 mirror.db
//! ```

use std::sync::Arc;

use ft_api::{ClientSecret, FtClient, RateConfig};
use ft_store::{Store, Table};
use ft_sync::{Engine, EngineConfig, Mode, Progress, SyncRequest, What};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = std::env::args().skip(1);
    let campus: i64 = match args.next() {
        Some(arg) => arg
            .parse()
            .map_err(|_| anyhow::anyhow!("the campus id must be a number, got {arg:?}"))?,
        None => 1,
    };
    let db = args.next().unwrap_or_else(|| "mirror.db".to_owned());

    let mut sim = None;
    let (client, clock): (FtClient, ft_sync::Clock) = match (
        std::env::var("FT42_CLIENT_ID"),
        std::env::var("FT42_CLIENT_SECRET"),
    ) {
        (Ok(id), Ok(secret)) => {
            let url = std::env::var("FT42_API_URL")
                .unwrap_or_else(|_| ft_api::DEFAULT_BASE_URL.to_owned());
            let client = FtClient::builder()
                .base_url(&url)
                .client_id(id)
                .client_secret(ClientSecret::new(secret))
                .build()?;
            (client, Arc::new(chrono::Utc::now))
        }
        _ => {
            println!(
                "FT42_CLIENT_ID/FT42_CLIENT_SECRET not set: mirroring an in-process simulator"
            );
            let limits = ft_sim::Limits {
                per_second: 20,
                per_hour: 5000,
                ..ft_sim::Limits::default()
            };
            let handle = ft_sim::Sim::builder()
                .campuses(campus.max(1) as u32)
                .users_per_campus(300)
                .limits(limits)
                .start()
                .await;
            let creds = handle.credentials();
            let client = FtClient::builder()
                .base_url(handle.base_url())
                .client_id(creds.client_id)
                .client_secret(ClientSecret::new(creds.client_secret))
                .rate(RateConfig {
                    per_second: limits.per_second,
                    per_hour: limits.per_hour,
                    hour: limits.hour_window,
                })
                .build()?;
            let for_clock = handle.clone();
            sim = Some(handle);
            (client, Arc::new(move || for_clock.now()))
        }
    };

    let store = Store::open(&db)?;
    store.migrate()?;
    let engine = Engine::new(client, store.clone(), EngineConfig::default()).with_clock(clock);

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let printer = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            match event {
                Progress::TaskStarted { kind, scope, .. } => println!("  {kind} {scope} ..."),
                Progress::Waiting { wait, reason } => println!("  waiting {wait:?} for {reason}"),
                Progress::TaskFinished {
                    ok: false, message, ..
                } => println!("  task failed: {message:?}"),
                _ => {}
            }
        }
    });

    for mode in [Mode::Auto, Mode::Delta] {
        let summary = engine
            .sync(
                SyncRequest::new(What::Users, mode).campuses([campus]),
                tx.clone(),
                std::future::pending(),
            )
            .await?;
        println!(
            "{mode:?}: {} rows in {} requests, {} 429s",
            summary.rows_written, summary.requests, summary.responses_429
        );
    }
    drop(tx);
    printer.await?;
    for table in [Table::Users, Table::CampusUsers, Table::CursusUsers] {
        println!(
            "{:>14}: {} rows",
            table.as_str(),
            store.count(table, false)?
        );
    }
    drop(sim);
    Ok(())
}
