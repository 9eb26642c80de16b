//! `ft42 status [--json]`: what is mirrored, how fresh it is, what is queued or failed, and how
//! much of the hourly budget the last hour used.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{NaiveDateTime, Utc};
use ft_store::{Store, Table, TaskState};
use serde::Serialize;

use crate::cli::{RunsArgs, StatusArgs};
use crate::config::Settings;
use crate::exit::Exit;

use super::support::{blocking, open_store};

/// Requests one queued relation user costs (its projects_users and achievements_users pages),
/// for the backfill estimate.
const REQUESTS_PER_RELATION_USER: f64 = 2.0;

/// One cursor's freshness.
#[derive(Debug, Serialize)]
pub(crate) struct ScopeStatus {
    pub(crate) resource: String,
    pub(crate) scope: String,
    /// The start time of the last complete pass (what the mirror is complete up to).
    pub(crate) watermark: Option<NaiveDateTime>,
    /// When the cursor was last written.
    pub(crate) last_write: NaiveDateTime,
    pub(crate) rows: i64,
    /// A pass is in progress at this page.
    pub(crate) page: i64,
    pub(crate) age_seconds: Option<i64>,
    pub(crate) target_seconds: i64,
    pub(crate) fresh: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct RunInfo {
    pub(crate) id: i64,
    pub(crate) kind: String,
    pub(crate) status: String,
    pub(crate) started_at: NaiveDateTime,
    pub(crate) finished_at: Option<NaiveDateTime>,
    pub(crate) summary: Option<serde_json::Value>,
}

impl RunInfo {
    /// A number from the run's summary (`requests`, `rows_written`, ...); 0 when absent.
    pub(crate) fn figure(&self, key: &str) -> u64 {
        summary_figure(self.summary.as_ref(), key)
    }
}

fn summary_figure(summary: Option<&serde_json::Value>, key: &str) -> u64 {
    summary
        .and_then(|s| s.get(key))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

#[derive(Debug, Serialize)]
pub(crate) struct Budget {
    pub(crate) per_hour: u32,
    pub(crate) used_last_hour: i64,
    pub(crate) remaining: i64,
    /// Requests per clock hour (UTC) over the last [`BURN_HOURS`] hours, oldest first.
    pub(crate) hourly: Vec<ft_store::HourlyRequests>,
}

/// Hours of budget burn that `status --json` and the status page show.
pub(crate) const BURN_HOURS: u32 = 24;

#[derive(Debug, Serialize)]
pub(crate) struct Backfill {
    pub(crate) relation_users_queued: i64,
    pub(crate) estimated_requests: u64,
    pub(crate) estimated_hours: f64,
}

/// The client secret's validity, as the last run's token answer said.
#[derive(Debug, Serialize)]
pub(crate) struct SecretStatus {
    pub(crate) valid_until: chrono::DateTime<Utc>,
    /// 14 days or less left: `within_14_days`, `within_7_days`, `within_24_hours`, `expired`.
    pub(crate) expiry: Option<ft_api::SecretExpiry>,
    /// From run `run_id` (when the token endpoint last said).
    pub(crate) run_id: i64,
}

/// The newest backup in the backup folder.
#[derive(Debug, Serialize)]
pub(crate) struct BackupStatus {
    /// When it was made (UTC, from its file name).
    pub(crate) made_at: NaiveDateTime,
    pub(crate) age_seconds: i64,
}

/// Everything `ft42 status` and the status page (`ft42 serve`) show.
#[derive(Debug, Serialize)]
pub(crate) struct StatusReport {
    /// When the report was read (UTC).
    pub(crate) at: NaiveDateTime,
    pub(crate) database: String,
    pub(crate) tables: BTreeMap<String, i64>,
    pub(crate) scopes: Vec<ScopeStatus>,
    pub(crate) tasks: BTreeMap<String, BTreeMap<String, i64>>,
    pub(crate) pending_tasks: i64,
    pub(crate) failed_tasks: i64,
    pub(crate) last_runs: Vec<RunInfo>,
    pub(crate) last_success: Option<NaiveDateTime>,
    pub(crate) budget: Budget,
    pub(crate) backfill: Backfill,
    /// The queued work and how long it takes at the current rate.
    pub(crate) queue: ft_sync::Backlog,
    /// `None` until a sync run recorded it (or when the server does not say).
    pub(crate) secret: Option<SecretStatus>,
    /// Rows the API sent that could not be stored, set aside with the reason.
    pub(crate) quarantined: i64,
    /// The latest of them (at most `QUARANTINE_SHOWN`).
    pub(crate) quarantine: Vec<ft_store::QuarantinedRow>,
    /// `None` when the backup folder holds no backup.
    pub(crate) last_backup: Option<BackupStatus>,
    /// The backup folder (`FT42_BACKUP_DIR`).
    pub(crate) backup_dir: String,
}

/// Quarantined rows listed by `status`.
const QUARANTINE_SHOWN: i64 = 10;

/// Reads the status from the database (and the backup folder); makes no request.
pub(crate) fn collect(store: &Store, settings: &Settings) -> anyhow::Result<StatusReport> {
    store.schema_check()?;
    let now = Utc::now().naive_utc();
    let mut tables = BTreeMap::new();
    for table in Table::ALL {
        tables.insert(table.as_str().to_owned(), store.count(*table, false)?);
    }
    let scopes = store
        .cursors()?
        .into_iter()
        .map(|c| {
            let age = c.watermark.map(|w| (now - w).num_seconds());
            let freshness = &settings.freshness;
            let target = freshness.target(&c.resource, &c.scope).as_secs() as i64;
            ScopeStatus {
                fresh: !freshness.is_stale(
                    &c.resource,
                    &c.scope,
                    age.map(|a| std::time::Duration::from_secs(a.max(0) as u64)),
                ),
                resource: c.resource,
                scope: c.scope,
                watermark: c.watermark,
                last_write: c.updated_at,
                rows: c.rows,
                page: c.page,
                age_seconds: age,
                target_seconds: target,
            }
        })
        .collect();
    let mut tasks: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    let (mut pending, mut failed) = (0, 0);
    for (kind, state, n) in store.task_counts()? {
        match state {
            TaskState::Pending | TaskState::Running => pending += n,
            TaskState::Error => failed += n,
            TaskState::Done => {}
        }
        tasks
            .entry(kind)
            .or_default()
            .insert(state.as_str().to_owned(), n);
    }
    let runs = store.runs(10)?;
    // A run that committed nothing (no page, no task done) is not a success, whatever its
    // status says: an interrupted or empty run must not hide a stalled mirror.
    let last_success = runs
        .iter()
        .filter(|r| run_outcome(r) == "ok")
        .filter_map(|r| r.finished_at)
        .max();
    // Runs are newest first: the most recent one that saw a token answer.
    let secret =
        super::support::recorded_secret_expiry(&runs).map(|(run_id, valid_until)| SecretStatus {
            valid_until,
            expiry: ft_api::SecretExpiry::at(valid_until, Utc::now()),
            run_id,
        });
    let last_runs = runs
        .into_iter()
        .map(|r| RunInfo {
            status: run_outcome(&r).to_owned(),
            id: r.id,
            kind: r.kind,
            started_at: r.started_at,
            finished_at: r.finished_at,
            summary: r.summary,
        })
        .collect();
    let hour_ago = now - chrono::TimeDelta::seconds(settings.rate.hour.as_secs() as i64);
    let used = store
        .fetch_log(i64::from(settings.rate.per_hour) * 2)?
        .iter()
        .filter(|r| r.at >= hour_ago)
        .map(|r| 1 + i64::from(r.retries))
        .sum::<i64>();
    let queue = ft_sync::backlog(store, 100, settings.rate.per_hour)?;
    let queued = store.relation_queue_len()?;
    let estimated_requests = (queued as f64 * REQUESTS_PER_RELATION_USER).ceil() as u64;
    let hourly = store.hourly_requests(now, BURN_HOURS)?;
    let last_backup =
        crate::metrics::newest_backup(&settings.backup.dir).map(|made_at| BackupStatus {
            made_at,
            age_seconds: (now - made_at).num_seconds().max(0),
        });
    Ok(StatusReport {
        at: now,
        database: settings.database_url_redacted(),
        tables,
        scopes,
        tasks,
        pending_tasks: pending,
        failed_tasks: failed,
        last_runs,
        last_success,
        budget: Budget {
            per_hour: settings.rate.per_hour,
            used_last_hour: used,
            remaining: (i64::from(settings.rate.per_hour) - used).max(0),
            hourly,
        },
        queue,
        backfill: Backfill {
            relation_users_queued: queued,
            estimated_requests,
            estimated_hours: estimated_requests as f64 / f64::from(settings.rate.per_hour),
        },
        secret,
        quarantined: store.quarantine_count()?,
        quarantine: store.quarantined(QUARANTINE_SHOWN)?,
        last_backup,
        backup_dir: settings.backup.dir.display().to_string(),
    })
}

/// Campus names by id, from the mirror's campuses table (for the status page).
pub(crate) fn campus_names(store: &Store) -> anyhow::Result<BTreeMap<i64, String>> {
    Ok(store
        .raw_rows(Table::Campuses)?
        .into_iter()
        .filter(|row| row.deleted_at.is_none())
        .filter_map(|row| Some((row.id, row.raw.get("name")?.as_str()?.to_owned())))
        .collect())
}

/// A run's outcome for people and alerts: the engine's status, except that a run marked `ok`
/// that committed nothing (no page and no task done) is `empty`.
fn run_outcome(run: &ft_store::SyncRun) -> &str {
    let figure = |key: &str| summary_figure(run.summary.as_ref(), key);
    if run.status == "ok" && figure("pages") == 0 && figure("tasks_done") == 0 {
        "empty"
    } else {
        &run.status
    }
}

/// Prints the status. Stale scopes are information (exit 0) unless `--check` asks for an
/// alert: then any scope past its freshness target, or without a complete pass, exits 6.
pub(crate) async fn status(settings: &Settings, args: &StatusArgs) -> anyhow::Result<Exit> {
    let store = open_store(settings).await?;
    let s = settings.clone();
    let report = blocking(move || collect(&store, &s).context("cannot read the status")).await?;
    let stale: Vec<&ScopeStatus> = report.scopes.iter().filter(|s| !s.fresh).collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !(args.check && settings.quiet) {
        print_human(&report);
    }
    if !args.check {
        return Ok(Exit::Ok);
    }
    // A secret with 7 days or less left is a finding too: the alert job mails it in time.
    let secret_alert = report.secret.as_ref().and_then(|sec| {
        sec.expiry
            .filter(|e| e.is_urgent())
            .and_then(|_| super::sync::secret_warning(sec.valid_until, Utc::now()))
    });
    if let Some(line) = &secret_alert {
        eprintln!("secret: {line}");
    }
    if stale.is_empty() && !report.scopes.is_empty() {
        return Ok(if secret_alert.is_some() {
            Exit::IntegrityFindings
        } else {
            Exit::Ok
        });
    }
    for scope in &stale {
        eprintln!(
            "stale: {} {}: last complete pass {} (target {}m)",
            scope.resource,
            scope.scope,
            ago(scope.age_seconds),
            scope.target_seconds / 60
        );
    }
    if report.scopes.is_empty() {
        eprintln!("stale: nothing has been synced yet; run `ft42 sync all`");
    }
    Ok(Exit::IntegrityFindings)
}

pub(crate) fn ago(seconds: Option<i64>) -> String {
    match seconds {
        None => "never".to_owned(),
        Some(s) => format!("{} ago", short_age(s)),
    }
}

/// An age in its largest whole unit below two of the next: `90s`, `10m`, `3h`, `3d`.
pub(crate) fn short_age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn print_human(r: &StatusReport) {
    println!("database: {}", r.database);
    println!(
        "last successful run: {}",
        r.last_success
            .map_or_else(|| "none".to_owned(), |t| format!("{t} UTC"))
    );
    println!();
    println!(
        "{:<22} {:<16} {:>9} {:>12}  FRESHNESS",
        "RESOURCE", "SCOPE", "ROWS", "COMPLETE"
    );
    if r.scopes.is_empty() {
        println!("(nothing synced yet: run `ft42 sync all`)");
    }
    for s in &r.scopes {
        let state = if s.fresh { "fresh" } else { "STALE" };
        let paging = if s.page > 0 {
            format!(", pass at page {}", s.page)
        } else {
            String::new()
        };
        println!(
            "{:<22} {:<16} {:>9} {:>12}  {state} (target {}m){paging}",
            s.resource,
            s.scope,
            s.rows,
            ago(s.age_seconds),
            s.target_seconds / 60
        );
    }
    println!();
    println!(
        "tasks: {} pending or running, {} failed",
        r.pending_tasks, r.failed_tasks
    );
    for (kind, states) in &r.tasks {
        let parts: Vec<String> = states.iter().map(|(s, n)| format!("{s} {n}")).collect();
        println!("  {kind:<28} {}", parts.join(", "));
    }
    println!();
    println!("rows per table:");
    for (table, n) in &r.tables {
        println!("  {table:<20} {n:>9}");
    }
    println!();
    println!(
        "budget: {} requests in the last hour, {} of {}/h left",
        r.budget.used_last_hour, r.budget.remaining, r.budget.per_hour
    );
    println!(
        "backfill: {} users wait for relations (~{} requests, ~{:.1} h at the full budget)",
        r.backfill.relation_users_queued, r.backfill.estimated_requests, r.backfill.estimated_hours
    );
    println!("queue: {}", r.queue.describe());
    match &r.last_backup {
        Some(b) => println!(
            "last backup: {} UTC ({})",
            b.made_at.format("%Y-%m-%d %H:%M:%S"),
            ago(Some(b.age_seconds))
        ),
        None => println!("last backup: none in {}", r.backup_dir),
    }
    if r.quarantined > 0 {
        println!(
            "quarantine: {} row(s) the API sent cannot be stored (missing from the mirror until \
             the API sends them in a form that stores):",
            r.quarantined
        );
        for q in &r.quarantine {
            let id = q
                .item_id
                .map_or_else(|| q.item_key.clone(), |id| format!("id {id}"));
            println!(
                "  {} {id}: {} (seen {} time(s), last {} UTC)",
                q.resource, q.reason, q.times, q.last_seen
            );
        }
    }
    match &r.secret {
        None => println!("secret: validity unknown (no sync run has recorded it yet)"),
        Some(sec) => {
            let now = Utc::now();
            let left = ft_api::SecretExpiry::describe_left(sec.valid_until, now);
            match super::sync::secret_warning(sec.valid_until, now) {
                Some(line) if sec.expiry.is_some() => println!("secret: WARNING: {line}"),
                _ => println!("secret: {left}"),
            }
        }
    }
}

/// One line of `ft42 runs`.
#[derive(Debug, Serialize)]
struct RunLine {
    id: i64,
    kind: String,
    started_at: NaiveDateTime,
    duration_seconds: Option<i64>,
    rows: u64,
    requests: u64,
    responses_429: u64,
    /// The engine's status, or `empty` for an `ok` run that committed nothing.
    status: String,
}

/// `ft42 runs [-n N] [--json]`: the last runs, newest first.
pub(crate) async fn runs(settings: &Settings, args: &RunsArgs) -> anyhow::Result<Exit> {
    let store = open_store(settings).await?;
    let last = i64::from(args.last);
    let runs = blocking(move || {
        store.schema_check()?;
        Ok(store.runs(last)?)
    })
    .await
    .context("cannot read the run history")?;
    let lines: Vec<RunLine> = runs
        .iter()
        .map(|r| {
            let figure = |key: &str| summary_figure(r.summary.as_ref(), key);
            RunLine {
                id: r.id,
                kind: r.kind.clone(),
                started_at: r.started_at,
                duration_seconds: r.finished_at.map(|f| (f - r.started_at).num_seconds()),
                rows: figure("rows_written"),
                requests: figure("requests"),
                responses_429: figure("responses_429"),
                status: run_outcome(r).to_owned(),
            }
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
        return Ok(Exit::Ok);
    }
    if lines.is_empty() {
        println!("(no run yet: run `ft42 sync all`)");
        return Ok(Exit::Ok);
    }
    println!(
        "{:>6}  {:<10} {:<19} {:>9} {:>9} {:>9} {:>5}  STATUS",
        "RUN", "KIND", "STARTED (UTC)", "DURATION", "ROWS", "REQUESTS", "429"
    );
    for l in &lines {
        let duration = l
            .duration_seconds
            .map_or_else(|| "running".to_owned(), |s| format!("{s}s"));
        println!(
            "{:>6}  {:<10} {:<19} {:>9} {:>9} {:>9} {:>5}  {}",
            l.id,
            l.kind,
            l.started_at.format("%Y-%m-%d %H:%M:%S"),
            duration,
            l.rows,
            l.requests,
            l.responses_429,
            l.status
        );
    }
    Ok(Exit::Ok)
}
