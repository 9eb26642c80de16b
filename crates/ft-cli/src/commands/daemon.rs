//! `ft42 daemon`: the cron schedule in one long-running process, for systemd and other service
//! managers.
//!
//! Syncs and the relation worker run one after another in this process, so they share one
//! request budget and never overlap. Schedule times that pass while a job runs are not lost:
//! when the job ends, every job due in the meantime runs once (ten missed deltas make one
//! delta; a missed nightly full sync replaces them). Backups spend no API budget and read one
//! consistent snapshot, so they run alongside the syncs (like the cron block's separate
//! backup lock); a backup time that comes while a backup still runs is skipped.
//!
//! At start-up the daemon brings the mirror up to date once (delta where a watermark exists,
//! full elsewhere), and catches up what it missed while it was down: a full sync when the last
//! successful full sync of everything is older than the last scheduled full time, and a backup
//! when the newest backup is older than the last scheduled backup time. Then it follows the
//! schedule in local time, like cron.
//!
//! With `--listen` (`FT42_LISTEN`) it also serves the status page and `/metrics` (see
//! `ft42 serve`). SIGINT and SIGTERM make the running job finish its page and commit (and a
//! running backup stop and clean up), then the daemon exits 0. A rejected secret stops the
//! daemon (exit 3): retrying cannot fix it. Other failures are logged and the next tick tries
//! again.

use std::time::Duration;

use chrono::{DateTime, DurationRound, Local, TimeDelta, TimeZone, Timelike, Utc};
use ft_sync::{Engine, Mode, SyncRequest, What};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::DaemonArgs;
use crate::config::Settings;
use crate::exit::{self, Exit};
use crate::logging;
use crate::report::Reporter;
use crate::schedule::{Job, JobKind, When};

use super::support::shutdown_signal;
use super::sync::engine;

/// Runs one scheduled job to completion (or until shutdown).
async fn run_job(
    engine: &Engine,
    kind: JobKind,
    campuses: &[i64],
    stop: &watch::Receiver<bool>,
) -> Result<ft_sync::RunSummary, ft_sync::SyncError> {
    // The `campuses` setting (`FT42_CAMPUSES`); empty: every campus.
    let req = |mode| {
        let req = SyncRequest::new(What::All, mode);
        if campuses.is_empty() {
            req
        } else {
            req.campuses(campuses.iter().copied())
        }
    };
    let shutdown = {
        let mut stop = stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    };
    let (tx, reporter) = Reporter::spawn(Some(engine.client().clone()));
    let result = match kind {
        JobKind::Full => engine.sync(req(Mode::Full), tx, shutdown).await,
        JobKind::Delta => engine.sync(req(Mode::Auto), tx, shutdown).await,
        JobKind::Relations => engine.run_until_idle(true, tx, shutdown).await,
        // Backups make no requests; the daemon loop runs them itself (see `daemon`).
        JobKind::Backup => Ok(ft_sync::RunSummary::default()),
    };
    reporter.finish().await;
    result
}

/// The jobs due at any whole minute in `(after, upto]`, each once, in schedule order. Minutes
/// are judged in `tz`'s wall-clock time (cron's rule), so a daylight-saving change neither
/// repeats nor drops a job. A full sync due in the span replaces a delta due in it. At most the
/// last day is looked at: after a longer gap every job is due at most once anyway.
fn due_between<Tz: TimeZone>(
    jobs: &[Job],
    after: DateTime<Utc>,
    upto: DateTime<Utc>,
    tz: &Tz,
) -> Vec<JobKind> {
    let upto = minute_floor(upto);
    let mut minute = minute_floor(after).max(upto - TimeDelta::days(1)) + TimeDelta::minutes(1);
    let mut due = vec![false; jobs.len()];
    while minute <= upto {
        let local = minute.with_timezone(tz).naive_local();
        let of_day = local.hour() * 60 + local.minute();
        for (job, hit) in jobs.iter().zip(due.iter_mut()) {
            *hit |= job.when.due_at(of_day);
        }
        minute += TimeDelta::minutes(1);
    }
    let mut kinds: Vec<JobKind> = jobs
        .iter()
        .zip(due)
        .filter(|(_, hit)| *hit)
        .map(|(job, _)| job.kind)
        .collect();
    // A full sync covers what a delta would do.
    if kinds.contains(&JobKind::Full) {
        kinds.retain(|k| *k != JobKind::Delta);
    }
    kinds
}

/// The latest whole minute at or before `now` at which `when` was due (looking back one day
/// and a minute, the longest interval a schedule has); `None` for `off`.
fn last_due<Tz: TimeZone>(when: When, now: DateTime<Utc>, tz: &Tz) -> Option<DateTime<Utc>> {
    let now = minute_floor(now);
    (0..=24 * 60 + 1)
        .map(|back| now - TimeDelta::minutes(back))
        .find(|minute| {
            let local = minute.with_timezone(tz).naive_local();
            when.due_at(local.hour() * 60 + local.minute())
        })
}

fn minute_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::minutes(1)).unwrap_or(t)
}

/// What the daemon runs at start-up: a delta (full where nothing was synced), or a full sync
/// when the nightly one was missed; and a backup when the nightly one was missed.
fn startup_jobs<Tz: TimeZone>(
    jobs: &[Job],
    now: DateTime<Utc>,
    tz: &Tz,
    last_full: Option<DateTime<Utc>>,
    newest_backup: Option<DateTime<Utc>>,
) -> Vec<JobKind> {
    let missed = |kind: JobKind, last: Option<DateTime<Utc>>| {
        jobs.iter()
            .filter(|j| j.kind == kind)
            .filter_map(|j| last_due(j.when, now, tz))
            .max()
            .is_some_and(|due| last.is_none_or(|l| l < due))
    };
    // Without any full sync on record, the delta does a full read where there is no watermark,
    // and the nightly run comes at its time: an installation's first start costs no extra pass.
    let mut kinds = if last_full.is_some() && missed(JobKind::Full, last_full) {
        vec![JobKind::Full]
    } else {
        vec![JobKind::Delta]
    };
    if missed(JobKind::Backup, newest_backup) {
        kinds.push(JobKind::Backup);
    }
    kinds
}

/// Time until the next whole minute of the clock.
fn until_next_minute() -> Duration {
    let now = Utc::now();
    (minute_floor(now) + TimeDelta::minutes(1) - now)
        .to_std()
        .unwrap_or(Duration::from_secs(60))
}

/// When the last ok full sync of everything started, and the newest backup was made.
async fn history(settings: &Settings) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let backup = crate::metrics::newest_backup(&settings.backup.dir).map(|t| t.and_utc());
    let full = async {
        let store = super::support::open_store(settings).await?;
        super::support::blocking(move || {
            Ok(store.last_ok_run("sync", &[("mode", "full"), ("what", "all")])?)
        })
        .await
    };
    let full = match full.await {
        Ok(t) => t.map(|t| t.and_utc()),
        Err(error) => {
            tracing::warn!(error = %exit::one_line(&error), "cannot read the run history; no catch-up");
            None
        }
    };
    (full, backup)
}

/// Starts a backup alongside the syncs, unless one is still running.
fn start_backup(
    settings: &Settings,
    stop: &watch::Receiver<bool>,
    running: &mut Option<JoinHandle<()>>,
) {
    if running.as_ref().is_some_and(|task| !task.is_finished()) {
        tracing::warn!("backup still running at its next scheduled time; this one is skipped");
        return;
    }
    let settings = settings.clone();
    let mut stop = stop.clone();
    *running = Some(tokio::spawn(async move {
        tracing::info!(job = ?JobKind::Backup, "job started");
        let stop = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        // A failed backup is logged and retried at the next scheduled time, like a failed sync.
        match super::backup::make_backup(&settings, stop).await {
            Ok(_) => tracing::info!(job = ?JobKind::Backup, "job finished"),
            Err(error) => {
                tracing::error!(job = ?JobKind::Backup, error = %exit::one_line(&error), "job failed");
            }
        }
        crate::metrics::after_daemon_job(&settings).await;
    }));
}

/// `ft42 daemon`.
pub(crate) async fn daemon(settings: &Settings, args: &DaemonArgs) -> anyhow::Result<Exit> {
    let engine = engine(settings).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let server = match args.listen {
        Some(addr) => {
            let server = crate::serve::Server::bind(settings, addr).await?;
            crate::serve::announce(server.local_addr()?);
            let mut stop = stop_rx.clone();
            Some(tokio::spawn(server.serve(async move {
                let _ = stop.wait_for(|s| *s).await;
            })))
        }
        None => None,
    };
    let jobs: Vec<Job> = settings.schedule.active().cloned().collect();
    let names: Vec<String> = jobs
        .iter()
        .map(|j| format!("{} {}", j.name, j.when))
        .collect();
    tracing::info!(schedule = %names.join(", "), "daemon started");

    let (last_full, newest_backup) = history(settings).await;
    let mut judged = Utc::now();
    let mut pending = startup_jobs(&jobs, judged, &Local, last_full, newest_backup);
    if pending.len() > 1 || pending[0] != JobKind::Delta {
        tracing::info!(jobs = ?pending, "catching up on jobs missed while the daemon was down");
    }
    let mut backup: Option<JoinHandle<()>> = None;
    let mut last_maintenance = Utc::now().date_naive();
    loop {
        for kind in pending.drain(..) {
            if *stop_rx.borrow() {
                break;
            }
            if kind == JobKind::Backup {
                start_backup(settings, &stop_rx, &mut backup);
                continue;
            }
            tracing::info!(job = ?kind, "job started");
            let outcome = run_job(&engine, kind, &settings.campuses, &stop_rx).await;
            crate::metrics::after_daemon_job(settings).await;
            match outcome {
                Ok(s) => tracing::info!(
                    job = ?kind,
                    rows = s.rows_written,
                    requests = s.requests,
                    failed = s.tasks_failed,
                    responses_429 = s.responses_429,
                    "job finished"
                ),
                Err(error) => {
                    let error = anyhow::Error::new(error);
                    let class = exit::classify(&error);
                    tracing::error!(job = ?kind, error = %exit::one_line(&error), "job failed");
                    if class == Exit::Auth {
                        let _ = finish(backup, server).await;
                        return Err(error.context("the daemon cannot go on without credentials"));
                    }
                }
            }
        }
        if *stop_rx.borrow() {
            break;
        }
        let today = Utc::now().date_naive();
        if today != last_maintenance {
            last_maintenance = today;
            if let Some(dir) = &settings.log_dir {
                logging::maintain(dir, settings.log_retention_days, today);
            }
        }
        // Jobs due while the last ones ran are due now, each once.
        let now = Utc::now();
        pending = due_between(&jobs, judged, now, &Local);
        if !pending.is_empty() {
            tracing::info!(jobs = ?pending, "running jobs whose time came while a job ran");
            judged = now;
            continue;
        }
        let mut stop = stop_rx.clone();
        tokio::select! {
            _ = tokio::time::sleep(until_next_minute()) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        // Sleeping can end a little early: judge the minute we meant to wake up in.
        let now = Utc::now() + TimeDelta::seconds(1);
        pending = due_between(&jobs, judged, now, &Local);
        judged = now;
    }
    finish(backup, server).await;
    tracing::info!("daemon stopped");
    Ok(Exit::Ok)
}

/// Waits for a running backup (it stops and cleans up on the same signal) and the server.
async fn finish(backup: Option<JoinHandle<()>>, server: Option<JoinHandle<()>>) {
    if let Some(task) = backup {
        let _ = task.await;
    }
    if let Some(task) = server {
        task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::ScheduleConfig;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn due_jobs_follow_the_schedule() {
        let jobs = ScheduleConfig::default().jobs;
        let minute = |t: &str| due_between(&jobs, at(t) - TimeDelta::minutes(1), at(t), &Utc);
        // 00:00: every interval job is due; 00:05 only the relation worker; 03:17 the full
        // sync, with no delta (not a multiple of 10 anyway).
        assert_eq!(
            minute("2026-12-05T00:00:00Z"),
            vec![JobKind::Delta, JobKind::Relations]
        );
        assert_eq!(minute("2026-12-05T00:05:00Z"), vec![JobKind::Relations]);
        assert_eq!(minute("2026-12-05T03:17:00Z"), vec![JobKind::Full]);
        assert_eq!(minute("2026-12-05T00:07:00Z"), vec![]);
        // 04:43: the nightly backup.
        assert_eq!(minute("2026-12-05T04:43:00Z"), vec![JobKind::Backup]);
        // Seconds into the minute do not matter; the previous minute is not judged twice.
        assert_eq!(
            due_between(
                &jobs,
                at("2026-12-05T00:04:10Z"),
                at("2026-12-05T00:05:59Z"),
                &Utc
            ),
            vec![JobKind::Relations]
        );
        assert_eq!(
            due_between(
                &jobs,
                at("2026-12-05T00:05:00Z"),
                at("2026-12-05T00:05:59Z"),
                &Utc
            ),
            vec![]
        );
    }

    #[test]
    fn a_full_sync_replaces_a_delta_in_the_same_minute() {
        let mut jobs = ScheduleConfig::default().jobs;
        jobs[0].when = When::Daily {
            hour: 3,
            minute: 20,
        };
        assert_eq!(
            due_between(
                &jobs,
                at("2026-12-05T03:19:00Z"),
                at("2026-12-05T03:20:00Z"),
                &Utc
            ),
            vec![JobKind::Full, JobKind::Relations]
        );
    }

    #[test]
    fn times_missed_during_a_long_job_run_once_when_it_ends() {
        let jobs = ScheduleConfig::default().jobs;
        // A delta started at 01:00 and ran 95 minutes: 9 delta times and 19 relation times
        // passed. Each job runs once.
        assert_eq!(
            due_between(
                &jobs,
                at("2026-12-05T01:00:00Z"),
                at("2026-12-05T02:35:20Z"),
                &Utc
            ),
            vec![JobKind::Delta, JobKind::Relations]
        );
        // A long job over 03:17 and 04:43: the full sync replaces the deltas, the backup too.
        assert_eq!(
            due_between(
                &jobs,
                at("2026-12-05T02:50:00Z"),
                at("2026-12-05T05:00:00Z"),
                &Utc
            ),
            vec![JobKind::Full, JobKind::Relations, JobKind::Backup]
        );
        // Two days of sleep (a suspended machine): every job once.
        assert_eq!(
            due_between(
                &jobs,
                at("2026-12-03T05:00:00Z"),
                at("2026-12-05T05:00:00Z"),
                &Utc
            ),
            vec![JobKind::Full, JobKind::Relations, JobKind::Backup]
        );
    }

    #[test]
    fn the_schedule_is_wall_clock_time_of_the_time_zone() {
        let jobs = ScheduleConfig::default().jobs;
        let paris_winter = chrono::FixedOffset::east_opt(3600).unwrap();
        // 03:17 in UTC+1 is 02:17 UTC.
        assert_eq!(
            due_between(
                &jobs,
                at("2026-12-05T02:16:00Z"),
                at("2026-12-05T02:17:00Z"),
                &paris_winter
            ),
            vec![JobKind::Full]
        );
        assert_eq!(
            last_due(jobs[0].when, at("2026-12-05T12:00:00Z"), &paris_winter),
            Some(at("2026-12-05T02:17:00Z"))
        );
    }

    #[test]
    fn startup_catches_up_a_missed_full_sync_and_backup() {
        let jobs = ScheduleConfig::default().jobs;
        let now = at("2026-12-05T09:00:00Z");
        // Last night's full sync (03:17) and backup (04:43) happened: a delta only.
        assert_eq!(
            startup_jobs(
                &jobs,
                now,
                &Utc,
                Some(at("2026-12-05T03:17:01Z")),
                Some(at("2026-12-05T04:43:30Z"))
            ),
            vec![JobKind::Delta]
        );
        // Down from 02:00 to 09:00: both were missed.
        assert_eq!(
            startup_jobs(
                &jobs,
                now,
                &Utc,
                Some(at("2026-12-04T03:17:00Z")),
                Some(at("2026-12-04T04:43:00Z"))
            ),
            vec![JobKind::Full, JobKind::Backup]
        );
        // A first start: no full sync on record is no reason for an extra pass (the delta
        // reads in full where nothing was synced); no backup yet: make one.
        assert_eq!(
            startup_jobs(&jobs, now, &Utc, None, None),
            vec![JobKind::Delta, JobKind::Backup]
        );
        // Jobs switched off are never caught up.
        let mut off = jobs.clone();
        for job in &mut off {
            job.when = When::Off;
        }
        assert_eq!(
            startup_jobs(&off, now, &Utc, Some(at("2026-11-01T00:00:00Z")), None),
            vec![JobKind::Delta]
        );
    }
}
