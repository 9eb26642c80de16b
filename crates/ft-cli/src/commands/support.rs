//! Helpers shared by the commands: opening the store, building the API client, waiting for a
//! shutdown signal.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use ft_api::{Application, ClientSecret, FtClient, RateConfig, SharedBudget};
use ft_store::{LockWait, RateLedger, RequestLog, Store, WriterLock};
use secrecy::ExposeSecret;

use crate::config::{Settings, SharedBudgetMode};

/// The User-Agent sent to the API (it sits behind Cloudflare, which blocks clients without one).
pub(crate) const USER_AGENT: &str = concat!(
    "ft42/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/ft42/ft42)"
);

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T, F>(f: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> anyhow::Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .context("a database task panicked")?
}

/// Opens the configured database; errors name the setting it came from.
pub(crate) async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let url = settings.database_url.clone();
    let origin = settings.database_url_origin.clone();
    blocking(move || {
        Store::open(url.expose_secret())
            .with_context(|| format!("cannot open the database (from {origin})"))
    })
    .await
}

/// Opens the database and applies pending migrations; returns the store and how many ran.
pub(crate) async fn open_migrated(settings: &Settings) -> anyhow::Result<(Store, usize)> {
    let store = open_store(settings).await?;
    let applied = migrate_opened(settings, &store).await?;
    Ok((store, applied))
}

/// Applies pending migrations to an opened store; returns how many ran.
pub(crate) async fn migrate_opened(settings: &Settings, store: &Store) -> anyhow::Result<usize> {
    let s = store.clone();
    let applied = blocking(move || s.migrate().context("cannot migrate the database")).await?;
    if applied > 0 {
        tracing::info!(applied, database = %settings.database_url_redacted(), "migrated the database");
    }
    Ok(applied)
}

/// Builds the API client from the settings (credentials are read here, exit 3 when missing).
/// The client logs its own token refreshes and retries.
pub(crate) fn api_client(settings: &Settings) -> anyhow::Result<FtClient> {
    api_client_with(settings, None)
}

/// [`api_client`] with every application of the applications file and, if given, a budget
/// shared with other processes.
pub(crate) fn api_client_with(
    settings: &Settings,
    shared: Option<Arc<dyn SharedBudget>>,
) -> anyhow::Result<FtClient> {
    let creds = settings.credentials()?;
    let mut builder = FtClient::builder();
    for app in settings.applications()? {
        builder = builder.application(Application {
            client_id: app.client_id.into(),
            secret: ClientSecret::new(app.client_secret.expose_secret()),
            next_secret: app
                .client_secret_next
                .map(|s| ClientSecret::new(s.expose_secret())),
            rate: None,
        });
    }
    let client = builder
        .shared_budget(shared)
        .base_url(settings.api_url.as_str().trim_end_matches('/'))
        .token_url(settings.token_url.as_str())
        .client_id(creds.client_id)
        .client_secret(ClientSecret::new(creds.client_secret.expose_secret()))
        .next_client_secret(
            creds
                .client_secret_next
                .map(|s| ClientSecret::new(s.expose_secret())),
        )
        .user_agent(USER_AGENT)
        .rate(RateConfig {
            per_second: settings.rate.per_second,
            per_hour: settings.rate.per_hour,
            hour: settings.rate.hour,
        })
        .build()
        .context("cannot build the API client (check FT42_API_URL and the FT42_RATE_* settings)")?;
    Ok(client)
}

/// The budget this database keeps for the client (`FT42_SHARED_BUDGET`): with `auto` (the
/// default) the rate ledger shared by every process on PostgreSQL, and the request log on
/// SQLite (one process at a time, but a restarted one starts from the last hour's real spend);
/// with `on` the rate ledger on either backend; with `off` nothing (the process paces alone
/// and knows nothing of the hour before it started).
pub(crate) fn shared_budget(settings: &Settings, store: &Store) -> Option<Arc<dyn SharedBudget>> {
    let ledger = || Some(Arc::new(RateLedger::new(store.clone())) as Arc<dyn SharedBudget>);
    match settings.shared_budget {
        SharedBudgetMode::Auto if RateLedger::needed(store.backend()) => ledger(),
        SharedBudgetMode::Auto => {
            Some(Arc::new(RequestLog::new(store.clone())) as Arc<dyn SharedBudget>)
        }
        SharedBudgetMode::On => ledger(),
        SharedBudgetMode::Off => None,
    }
}

/// The one-writer lock of an SQLite database, held until the process ends.
static WRITER_LOCK: Mutex<Option<WriterLock>> = Mutex::new(None);

/// Makes this process the only one syncing into an SQLite database (a second one gets a clear
/// error naming the first); nothing on PostgreSQL, where any number of workers share the queue.
pub(crate) async fn hold_writer_lock(store: &Store, command: &str) -> anyhow::Result<()> {
    let store = store.clone();
    let holder = format!("ft42 {command}");
    blocking(move || {
        let mut held = WRITER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_none() {
            *held = store
                .writer_lock(LockWait::Fail, &holder)
                .context("cannot start")?;
        }
        Ok(())
    })
    .await
}

/// Completes on the first SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown requested (SIGINT or SIGTERM)");
}

/// The client secret's end of validity as the newest of `runs` (newest first) that saw a token
/// answer recorded it (`RunSummary::secret_valid_until`), with that run's id.
pub(crate) fn recorded_secret_expiry(
    runs: &[ft_store::SyncRun],
) -> Option<(i64, chrono::DateTime<chrono::Utc>)> {
    runs.iter().find_map(|r| {
        let until = r.summary.as_ref()?.get("secret_valid_until")?;
        Some((r.id, serde_json::from_value(until.clone()).ok()?))
    })
}
