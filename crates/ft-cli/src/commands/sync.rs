//! `ft42 sync ...` and `ft42 worker`: plan tasks and run them through the engine, with
//! progress, until done or interrupted.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ft_api::SecretExpiry;
use ft_sync::{Engine, EngineConfig, Mode, RunSummary, SyncRequest, What};

use crate::cli::{SyncArgs, SyncOpts, SyncTarget, WorkerArgs};
use crate::config::Settings;
use crate::exit::{Classified, Exit};
use crate::report::Reporter;

use super::support::{
    api_client, api_client_with, hold_writer_lock, migrate_opened, open_store, shared_budget,
    shutdown_signal,
};

/// The engine settings derived from the ft42 settings.
pub(crate) fn engine_config(settings: &Settings) -> EngineConfig {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    EngineConfig {
        // The pid keeps two ft42 processes on one host (a cron delta and a manual run) from
        // taking each other's leases back at start-up.
        worker_id: format!("ft42@{host}:{}", std::process::id()),
        export_dir: Some(settings.export_dir.clone()),
        archive_retention_days: (settings.export_retention_days > 0)
            .then_some(settings.export_retention_days),
        freshness: settings.freshness.refresh_intervals(),
        look_back: settings.look_back.clone(),
        ..EngineConfig::default()
    }
}

/// Builds an engine over a migrated store and a client from the settings. On SQLite this
/// process becomes the database's only writer; on PostgreSQL every request also reserves the
/// application's budget in the shared rate ledger (unless `FT42_SHARED_BUDGET=off`).
pub(crate) async fn engine(settings: &Settings) -> anyhow::Result<Engine> {
    // Credentials first: a missing secret should not wait for a database connection.
    api_client(settings)?;
    // The lock before the migration: a refused second process must not touch the schema.
    let store = open_store(settings).await?;
    hold_writer_lock(&store, "sync, worker or daemon").await?;
    migrate_opened(settings, &store).await?;
    let client = api_client_with(settings, shared_budget(settings, &store))?;
    Ok(Engine::new(client, store, engine_config(settings)))
}

/// The engine request for `ft42 sync <what>`.
pub(crate) fn request(what: SyncTarget, opts: &SyncOpts, campuses: &[i64]) -> SyncRequest {
    let what = match what {
        SyncTarget::Users => What::Users,
        SyncTarget::Relations => What::Relations,
        SyncTarget::Coalitions => What::Coalitions,
        SyncTarget::Locations => What::Locations,
        SyncTarget::All => What::All,
    };
    let mode = match (opts.full, opts.delta) {
        (true, _) => Mode::Full,
        (_, true) => Mode::Delta,
        _ => Mode::Auto,
    };
    let mut req = SyncRequest::new(what, mode).force(opts.force);
    // `--campus`, else the `campuses` setting (`FT42_CAMPUSES`), else every campus.
    if !opts.campus.is_empty() {
        req = req.campuses(opts.campus.iter().copied());
    } else if !campuses.is_empty() {
        req = req.campuses(campuses.iter().copied());
    }
    req.max_relation_users = opts.max_relation_users;
    req
}

/// A shutdown future that also records whether it fired.
pub(crate) fn watched_shutdown(
    signal: impl Future<Output = ()> + Send + 'static,
) -> (impl Future<Output = ()> + Send + 'static, Arc<AtomicBool>) {
    let fired = Arc::new(AtomicBool::new(false));
    let flag = fired.clone();
    let fut = async move {
        signal.await;
        flag.store(true, Ordering::SeqCst);
    };
    (fut, fired)
}

/// `ft42 sync <what> [...]`.
pub(crate) async fn sync(settings: &Settings, args: &SyncArgs) -> anyhow::Result<Exit> {
    let engine = engine(settings).await?;
    let (tx, reporter) = Reporter::spawn(Some(engine.client().clone()));
    let (shutdown, interrupted) = watched_shutdown(shutdown_signal());
    let result = engine
        .sync(
            request(args.what, &args.opts, &settings.campuses),
            tx,
            shutdown,
        )
        .await;
    reporter.finish().await;
    let outcome = result.map_err(anyhow::Error::new).and_then(|summary| {
        // Under `-q` (cron), the warning goes out with the nightly full sync only: one mail a
        // day from 14 days before, not one per delta.
        if !settings.quiet || args.opts.full {
            warn_secret_expiry(&summary);
        }
        finish(summary, interrupted.load(Ordering::SeqCst), settings)
    });
    crate::metrics::after_job(settings, Some(engine.store()), outcome).await
}

/// On stderr: the client secret is within 14 days of its end (see [`SecretExpiry`]).
pub(crate) fn warn_secret_expiry(summary: &RunSummary) {
    if let Some(line) = summary
        .secret_valid_until
        .and_then(|until| secret_warning(until, chrono::Utc::now()))
    {
        eprintln!("warning: {line}");
    }
}

/// What to tell an operator about a secret valid until `until`, or `None` with more than 14
/// days left.
pub(crate) fn secret_warning(
    until: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    let step = SecretExpiry::at(until, now)?;
    let left = SecretExpiry::describe_left(until, now);
    Some(if step == SecretExpiry::Expired {
        format!(
            "the client secret {left}; create a new secret on profile.intra.42.fr and set it as \
             the secret (FT42_CLIENT_SECRET_FILE)"
        )
    } else {
        format!(
            "the client secret {left}; create the next secret on profile.intra.42.fr and set \
             FT42_CLIENT_SECRET_NEXT_FILE: ft42 switches to it when the current one is refused"
        )
    })
}

/// `ft42 worker [--once]`.
pub(crate) async fn worker(settings: &Settings, args: &WorkerArgs) -> anyhow::Result<Exit> {
    let engine = engine(settings).await?;
    let (tx, reporter) = Reporter::spawn(Some(engine.client().clone()));
    let (shutdown, interrupted) = watched_shutdown(shutdown_signal());
    let result = engine.run_until_idle(args.once, tx, shutdown).await;
    reporter.finish().await;
    let outcome = result
        .map_err(anyhow::Error::new)
        .and_then(|summary| finish(summary, interrupted.load(Ordering::SeqCst), settings));
    crate::metrics::after_job(settings, Some(engine.store()), outcome).await
}

/// Prints the run summary and turns failed tasks into a non-zero exit.
pub(crate) fn finish(
    summary: RunSummary,
    interrupted: bool,
    settings: &Settings,
) -> anyhow::Result<Exit> {
    // `-q`: nothing on success, so cron mails only failures (which go to stderr).
    if !settings.quiet {
        print_summary(&summary, settings);
    }
    if interrupted && !settings.quiet {
        println!(
            "interrupted: the page in flight was committed; {} task(s) stay queued for the next \
             run (`ft42 worker`)",
            summary.tasks_pending
        );
    }
    if summary.tasks_failed > 0 {
        let first = summary.errors.first().cloned().unwrap_or_default();
        return Err(Classified::error(
            Exit::Other,
            format!(
                "{} task(s) failed (see `ft42 status`): {first}",
                summary.tasks_failed
            ),
        ));
    }
    Ok(Exit::Ok)
}

fn print_summary(s: &RunSummary, settings: &Settings) {
    println!(
        "run {}: {} task(s) done, {} failed, {} pending; {} rows in {} pages; {} requests \
         (budget {}/h), {} × 429, waited {:.1}s",
        s.run_id,
        s.tasks_done,
        s.tasks_failed,
        s.tasks_pending,
        s.rows_written,
        s.pages,
        s.requests,
        settings.rate.per_hour,
        s.responses_429,
        s.waited.as_secs_f64()
    );
    for error in &s.errors {
        println!("  failed: {error}");
    }
}
