//! `ft42 demo`: the whole job on a fresh machine, without credentials.
//!
//! Starts the simulator in this process, runs a full sync into SQLite with progress, applies
//! simulated changes (updates, new users, deleted rows, closed sessions), runs a delta, and
//! prints rows per table next to what the simulated API holds, the requests spent against the
//! budget and the 429s (zero when pacing works).
//!
//! The simulator is given a larger budget than the real API (20 requests/s, 20,000/h instead of
//! 2/s and 1,200/h) and the client is told the same, so a few thousand users sync in about a
//! minute while pacing and the 429 count are still real.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ft_api::{ClientSecret, FtClient, RateConfig};
use ft_store::{Store, Table};
use ft_sync::{Engine, Mode, SyncRequest, What};
use serde::Serialize;
use tokio::sync::watch;

use crate::cli::DemoArgs;
use crate::config::{Origin, Settings};
use crate::exit::{Classified, Exit};
use crate::report::Reporter;

use super::support::{USER_AGENT, blocking, shutdown_signal};
use super::sync::engine_config;

/// The demo's database when none is configured.
pub(crate) const DEMO_DATABASE: &str = "sqlite://ft42-demo.db";
/// Requests per second the demo's simulator allows (the real API allows 2: the demo would take
/// a quarter of an hour at that pace).
const DEMO_PER_SECOND: u32 = 40;
/// Requests per hour the demo's simulator allows: the per-second rate sustained, so the hourly
/// pacer (which spreads the hour's budget evenly) does not become the bottleneck.
const DEMO_PER_HOUR: u32 = 144_000;

#[derive(Debug, Serialize)]
struct TableLine {
    mirror: i64,
    api: Option<usize>,
}

#[derive(Debug, Serialize)]
struct DemoSummary {
    database: String,
    users: usize,
    campuses: usize,
    full_sync_seconds: f64,
    delta_sync_seconds: f64,
    full_sync_requests: u64,
    delta_sync_requests: u64,
    requests: u64,
    budget_per_hour: u32,
    budget_per_second: u32,
    responses_429: usize,
    tables: BTreeMap<String, TableLine>,
    drift: BTreeMap<String, usize>,
    /// The integrity report's status (`clean`, `warnings`, `errors`, `incomplete`).
    integrity: String,
    /// Its error and warning findings, one line each.
    integrity_findings: Vec<String>,
}

fn remove_sqlite_files(path: &str) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
}

/// `ft42 demo`.
pub(crate) async fn demo(settings: &Settings, args: &DemoArgs) -> anyhow::Result<Exit> {
    if args.campuses == 0 || args.users < args.campuses {
        return Err(Classified::error(
            Exit::Usage,
            "--users must be at least --campuses (and --campuses at least 1)",
        ));
    }
    let per_campus = u32::try_from(args.users / args.campuses)
        .map_err(|_| Classified::error(Exit::Usage, "--users is too large"))?;
    let campuses = u32::try_from(args.campuses)
        .map_err(|_| Classified::error(Exit::Usage, "--campuses is too large"))?;

    // The demo's own database, fresh each time, unless `--database-url` names one. The
    // environment and the config file are ignored on purpose: they usually point at the real
    // mirror, which must never receive simulated rows.
    let database_url = if matches!(settings.database_url_origin, Origin::Flag(_)) {
        settings.database_url.expose_secret().to_owned()
    } else {
        remove_sqlite_files(DEMO_DATABASE.trim_start_matches("sqlite://"));
        DEMO_DATABASE.to_owned()
    };
    let redacted = crate::config::redact_url(&database_url);

    eprintln!(
        "starting the simulated 42 API: {} users on {campuses} campus(es), seed {}",
        per_campus as usize * args.campuses,
        args.seed
    );
    let limits = ft_sim::Limits {
        per_second: DEMO_PER_SECOND,
        per_hour: DEMO_PER_HOUR,
        ..ft_sim::Limits::default()
    };
    let sim = ft_sim::Sim::builder()
        .seed(args.seed)
        .campuses(campuses)
        .users_per_campus(per_campus)
        .limits(limits)
        .start()
        .await;
    let creds = sim.credentials();
    let client = FtClient::builder()
        .base_url(sim.base_url())
        .client_id(creds.client_id.clone())
        .client_secret(ClientSecret::new(creds.client_secret.clone()))
        .user_agent(USER_AGENT)
        .rate(RateConfig {
            per_second: DEMO_PER_SECOND,
            per_hour: DEMO_PER_HOUR,
            hour: Duration::from_secs(3600),
        })
        .build()
        .context("cannot build the API client for the simulator")?;

    let url = database_url.clone();
    let store = blocking(move || {
        let store = Store::open(&url).context("cannot open the demo database")?;
        store
            .migrate()
            .context("cannot migrate the demo database")?;
        Ok(store)
    })
    .await?;
    let clock_sim = sim.clone();
    // No raw-page archive: the demo should leave nothing behind but its database and logs.
    // No freshness targets either: the delta shows every change coming back.
    let config = ft_sync::EngineConfig {
        export_dir: None,
        freshness: Default::default(),
        ..engine_config(settings)
    };
    let engine = Engine::new(client.clone(), store.clone(), config)
        // The simulator's clock is not ours (it starts at a fixed date); watermarks must be
        // taken from it, or the delta would ask for changes in the wrong window.
        .with_clock(Arc::new(move || clock_sim.now()));
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });

    eprintln!("full sync into {redacted}:");
    let started = Instant::now();
    let full = run_sync(&engine, &client, Mode::Full, stopped(&stop)).await?;
    let full_secs = started.elapsed().as_secs_f64();
    let full_requests = client.stats().requests;
    if *stop.borrow() {
        return super::sync::finish(full, true, settings);
    }

    let report = sim.drift(ft_sim::Drift {
        update_fraction: 0.05,
        new_users: 25,
        new_locations: 40,
        close_open_locations: 20,
        delete_projects_users: 10,
        delete_cursus_users: 5,
        piscine_level_changes: 5,
    });
    let mut drift = BTreeMap::new();
    for (label, map) in [
        ("updated", &report.updated),
        ("created", &report.created),
        ("deleted", &report.deleted),
    ] {
        for (table, ids) in map {
            drift.insert(format!("{label} {table}"), ids.len());
        }
    }
    drift.insert("closed locations".into(), report.closed_locations.len());
    let changed: usize = drift.values().sum();
    eprintln!("the simulated API changed {changed} rows; delta sync:");

    let started = Instant::now();
    let delta = run_sync(&engine, &client, Mode::Delta, stopped(&stop)).await?;
    let delta_secs = started.elapsed().as_secs_f64();
    if *stop.borrow() {
        return super::sync::finish(delta, true, settings);
    }

    let api_counts = sim.counts();
    let store_for_counts = store.clone();
    let mirror: Vec<(String, i64)> = blocking(move || {
        Table::ALL
            .iter()
            .map(|t| Ok((t.as_str().to_owned(), store_for_counts.count(*t, false)?)))
            .collect::<anyhow::Result<Vec<_>>>()
    })
    .await?;
    let tables = mirror
        .into_iter()
        .map(|(name, n)| {
            let api = api_counts.get(&name).copied();
            (name, TableLine { mirror: n, api })
        })
        .collect();
    // The integrity checks, measured against the simulator's clock (its "now" is its own).
    let options = ft_integrity::Options {
        now: Some(sim.now()),
        ..ft_integrity::Options::default()
    };
    let report = ft_integrity::run_with_api(&store, None, &options)
        .await
        .context("the integrity report could not be stored")?;
    let integrity_findings = report
        .findings
        .iter()
        .filter(|f| f.severity > ft_integrity::Severity::Info)
        .map(|f| format!("{:?} {}: {}", f.severity, f.check, f.detail))
        .collect();
    let stats = client.stats();
    let summary = DemoSummary {
        database: redacted,
        users: per_campus as usize * args.campuses,
        campuses: args.campuses,
        full_sync_seconds: full_secs,
        delta_sync_seconds: delta_secs,
        full_sync_requests: full_requests,
        delta_sync_requests: stats.requests - full_requests,
        requests: stats.requests,
        budget_per_hour: DEMO_PER_HOUR,
        budget_per_second: DEMO_PER_SECOND,
        responses_429: sim.count_status(429),
        tables,
        drift,
        integrity: report.status().to_owned(),
        integrity_findings,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    let failed = full.tasks_failed + delta.tasks_failed;
    if failed > 0 {
        let first = full.errors.iter().chain(&delta.errors).next().cloned();
        return Err(Classified::error(
            Exit::Other,
            format!("{failed} task(s) failed: {}", first.unwrap_or_default()),
        ));
    }
    Ok(Exit::Ok)
}

/// Completes when `stop` turns true (SIGINT or SIGTERM).
fn stopped(stop: &watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut stop = stop.clone();
    async move {
        let _ = stop.wait_for(|v| *v).await;
    }
}

async fn run_sync(
    engine: &Engine,
    client: &FtClient,
    mode: Mode,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<ft_sync::RunSummary> {
    let (tx, reporter) = Reporter::spawn(Some(client.clone()));
    let mut req = SyncRequest::new(What::All, mode);
    // The demo shows every relation, not the paced slice a cron run takes.
    req.max_relation_users = Some(1_000_000);
    let result = engine.sync(req, tx, shutdown).await;
    reporter.finish().await;
    Ok(result?)
}

fn print_summary(s: &DemoSummary) {
    println!();
    println!("demo summary ({} users, {} campuses)", s.users, s.campuses);
    println!("database: {}", s.database);
    println!();
    println!("{:<22} {:>9} {:>9}", "TABLE", "MIRROR", "API");
    for (table, line) in &s.tables {
        let api = line.api.map_or_else(|| "-".to_owned(), |n| n.to_string());
        let mark = match line.api {
            Some(n) if i64::try_from(n).ok() != Some(line.mirror) => "  (differs)",
            _ => "",
        };
        println!("{table:<22} {:>9} {api:>9}{mark}", line.mirror);
    }
    println!();
    println!(
        "changes applied by the simulated API: {}",
        s.drift
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "requests: {} (full sync {} in {:.1}s, delta {} in {:.1}s); budget {}/s, {}/h",
        s.requests,
        s.full_sync_requests,
        s.full_sync_seconds,
        s.delta_sync_requests,
        s.delta_sync_seconds,
        s.budget_per_second,
        s.budget_per_hour
    );
    println!("429 responses: {}", s.responses_429);
    println!("integrity checks: {}", s.integrity);
    for line in &s.integrity_findings {
        println!("  {line}");
    }
    println!();
    println!("next: `ft42 status --database-url {}`", s.database);
}
