//! Post-fetch hygiene and fidelity checks for the ft42 mirror: counts, orphans, duplicates,
//! freshness, spot checks against the API, and database maintenance.
//!
//! After a large sync, [`run`] answers "can this mirror be trusted?". Each check is one small
//! module that returns [`Finding`]s (check, [`Severity`], table, sample ids, count, detail); a
//! check returns an error only when it could not run, which the [`Report`] lists apart in
//! [`Report::checks_failed_to_run`]. Every run is stored in the `integrity_runs` table.
//!
//! | check | what it reports |
//! |---|---|
//! | `counts` | live and deleted rows per table (Info) |
//! | `exports` | distinct ids in `<exports>/<resource>/**.ndjson.gz` missing from the store (Error) |
//! | `foreign_keys` | live relation rows without a live parent, per relation in [`RELATIONS`] (Error; Warning when the parent table is empty) |
//! | `uniqueness` | logins and e-mails shared by several live users (Error) |
//! | `freshness` | stale scopes, scopes never completed, stuck and failed tasks (Warning); watermarks in the future (Error) |
//! | `spot_check` | rows fetched again by id that differ with the same `updated_at` (Error) or a newer one (Warning); async, opt-in, one request per table |
//! | `api_totals` | stored rows per scope against the API's `X-Total` (Warning when they differ); async, opt-in, one request per scope within a budget |
//! | `maintenance` | time and size before/after of ANALYZE, REINDEX, VACUUM (Info) |
//!
//! ```no_run
//! use ft_integrity::{Options, run};
//! let store = ft_store::Store::open("sqlite://ft42.db")?;
//! let report = run(&store, &Options::default())?;
//! print!("{}", report.to_text());
//! std::process::exit(if report.has_errors() { 6 } else { 0 });
//! # Ok::<(), ft_integrity::IntegrityError>(())
//! ```
//!
//! # Exit codes (for `ft42 integrity` and `ft-integrity`)
//!
//! * **0**: every check ran and no finding is an Error ([`Report::has_errors`] is false).
//!   Warnings and Info do not change the exit code.
//! * **6** (the CLI's "integrity findings" code): at least one finding is an Error.
//! * **An error exit** (the CLI's code for the failing component): the run could not run
//!   ([`run`] returned `Err`, for example the database is unreachable), or a check could not run
//!   ([`Report::is_complete`] is false; the report is still printed and stored first).
//!
//! Invariants: checks only read; the only writes are the report row in `integrity_runs` and the
//! maintenance asked for (statistics, indexes, free space), never a mirror row. A check never
//! fails because of what it found. No SQL here (the queries live in ft-store). The spot check is
//! off unless asked for and costs at most one request per table.

mod checks;
mod error;
mod finding;
mod options;
mod report;

use std::time::Instant;

use chrono::Utc;
use ft_api::FtClient;
use ft_store::Store;

pub use checks::foreign_keys::RELATIONS;
pub use error::IntegrityError;
pub use finding::{Finding, MAX_SAMPLE_IDS, Severity};
pub use options::{ApiTotals, Freshness, Maintenance, Options, SpotCheck};
pub use report::{FailedCheck, Report};

/// Runs every synchronous check and the requested maintenance, stores the report in
/// `integrity_runs` and returns it. Does not run the spot check (see [`spot_check`]). Fails
/// only when the report cannot be stored; a check that could not run is listed in the report.
pub fn run(store: &Store, options: &Options) -> Result<Report, IntegrityError> {
    let report = check(store, options);
    record(store, &report)?;
    Ok(report)
}

/// Like [`run`] without storing the report, for callers that add spot-check findings first
/// (then call [`record`]).
pub fn check(store: &Store, options: &Options) -> Report {
    let started = Instant::now();
    let started_at = Utc::now();
    let now = options.now.unwrap_or(started_at).naive_utc();
    let mut report = Report::new(started_at, store.backend().as_str());
    report.add(checks::counts::NAME, checks::counts::run(store));
    if let Some(dir) = &options.exports_dir {
        report.add(
            checks::counts::EXPORTS,
            checks::counts::against_exports(store, dir),
        );
    }
    report.add(checks::foreign_keys::NAME, checks::foreign_keys::run(store));
    report.add(checks::uniqueness::NAME, checks::uniqueness::run(store));
    report.add(
        checks::freshness::NAME,
        checks::freshness::run(store, options, now),
    );
    report.add(checks::quarantine::NAME, checks::quarantine::run(store));
    if options.maintenance.any() {
        report.add(
            checks::maintenance::NAME,
            checks::maintenance::run(store, options.maintenance),
        );
    }
    report.duration = started.elapsed();
    report
}

/// Stores `report` in `integrity_runs` with its [`Report::status`]; returns the run's id.
pub fn record(store: &Store, report: &Report) -> Result<i64, IntegrityError> {
    Ok(store.record_integrity_run(report.status(), &report.to_json())?)
}

/// Fetches `spot.per_table` random live rows of each of `spot.tables` again from the API (one
/// `filter[id]` request per table, at most [`SpotCheck::MAX_PER_TABLE`] ids) and compares them
/// field by field with the stored JSON, ignoring embedded `user` objects. Add the outcome to a
/// report with `report.add("spot_check", outcome)`. Fails when the store or the API fails.
/// Store reads run on tokio's blocking pool, so call it inside a tokio runtime.
pub async fn spot_check(
    store: &Store,
    client: &FtClient,
    spot: &SpotCheck,
) -> Result<Vec<Finding>, IntegrityError> {
    checks::spot_check::run(store, client, spot).await
}

/// The whole run for the CLI: [`check`] on tokio's blocking pool, then the spot check when
/// `options.spot_check` is set (with `client`; without one the spot check is listed as a check
/// that could not run), then [`record`]. Fails only when the report cannot be stored.
pub async fn run_with_api(
    store: &Store,
    client: Option<&FtClient>,
    options: &Options,
) -> Result<Report, IntegrityError> {
    let (checker, opts) = (store.clone(), options.clone());
    let mut report = tokio::task::spawn_blocking(move || check(&checker, &opts))
        .await
        .map_err(|e| IntegrityError::Join(e.to_string()))?;
    if let Some(spot) = &options.spot_check {
        let started = Instant::now();
        let outcome = match client {
            Some(client) => spot_check(store, client, spot).await,
            None => Err(IntegrityError::NoClient),
        };
        report.add(SPOT_CHECK, outcome);
        report.duration += started.elapsed();
    }
    if let Some(probe) = &options.api_totals {
        let started = Instant::now();
        let outcome = match client {
            Some(client) => api_totals(store, client, probe).await,
            None => Err(IntegrityError::NoClient),
        };
        report.add(API_TOTALS, outcome);
        report.duration += started.elapsed();
    }
    let recorder = store.clone();
    let stored = report.clone();
    tokio::task::spawn_blocking(move || record(&recorder, &stored))
        .await
        .map_err(|e| IntegrityError::Join(e.to_string()))??;
    Ok(report)
}

/// Compares stored row counts per scope with the API's `X-Total`, spending at most
/// `probe.max_requests` requests (one per scope). Add the outcome with
/// `report.add("api_totals", outcome)`. Fails when the store or the API fails.
pub async fn api_totals(
    store: &Store,
    client: &FtClient,
    probe: &ApiTotals,
) -> Result<Vec<Finding>, IntegrityError> {
    checks::api_totals::run(store, client, probe).await
}

/// The name `X-Total` comparison findings carry, for [`Report::add`].
pub const API_TOTALS: &str = checks::api_totals::NAME;

/// The name spot-check findings carry, for [`Report::add`].
pub const SPOT_CHECK: &str = checks::spot_check::NAME;
