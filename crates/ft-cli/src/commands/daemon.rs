//! `ft42 daemon`: the cron schedule in one long-running process, for systemd and other service
//! managers.
//!
//! Jobs run one after another in this process, so they share one request budget and never
//! overlap; a tick that falls while a job still runs is skipped (like `flock -n` in the cron
//! block). At start-up the daemon brings the mirror up to date once (delta where a watermark
//! exists, full elsewhere), then follows the schedule in local time, like cron. SIGINT and
//! SIGTERM make the running job finish its page and commit, then the daemon exits 0. A rejected
//! secret stops the daemon (exit 3): retrying cannot fix it. Other failures are logged and the
//! next tick tries again.

use std::time::Duration;

use chrono::{Local, Timelike};
use ft_sync::{Engine, Mode, SyncRequest, What};
use tokio::sync::watch;

use crate::config::Settings;
use crate::exit::{self, Exit};
use crate::logging;
use crate::report::Reporter;
use crate::schedule::{Job, JobKind};

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

/// The jobs due in the minute that starts at `minute_of_day` (local time).
fn due(jobs: &[Job], minute_of_day: u32) -> Vec<JobKind> {
    let mut kinds: Vec<JobKind> = jobs
        .iter()
        .filter(|j| j.when.due_at(minute_of_day))
        .map(|j| j.kind)
        .collect();
    // A full sync covers what a delta would do in the same minute.
    if kinds.contains(&JobKind::Full) {
        kinds.retain(|k| *k != JobKind::Delta);
    }
    kinds
}

/// Time until the next whole minute of the local clock.
fn until_next_minute() -> Duration {
    let now = Local::now();
    let into_minute = Duration::from_secs(u64::from(now.second()))
        + Duration::from_nanos(u64::from(now.nanosecond() % 1_000_000_000));
    Duration::from_secs(60).saturating_sub(into_minute)
}

/// `ft42 daemon`.
pub(crate) async fn daemon(settings: &Settings) -> anyhow::Result<Exit> {
    let engine = engine(settings).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let jobs: Vec<Job> = settings.schedule.active().cloned().collect();
    let names: Vec<String> = jobs
        .iter()
        .map(|j| format!("{} {}", j.name, j.when))
        .collect();
    tracing::info!(schedule = %names.join(", "), "daemon started");

    let mut pending = vec![JobKind::Delta];
    let mut last_maintenance = chrono::Utc::now().date_naive();
    loop {
        for kind in pending.drain(..) {
            if *stop_rx.borrow() {
                break;
            }
            tracing::info!(job = ?kind, "job started");
            if kind == JobKind::Backup {
                let mut stop = stop_rx.clone();
                let stop = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                // A failed backup is logged and retried at the next tick, like a failed sync.
                if let Err(error) = super::backup::make_backup(settings, stop).await {
                    tracing::error!(job = ?kind, error = %exit::one_line(&error), "job failed");
                }
                crate::metrics::after_daemon_job(settings).await;
                continue;
            }
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
                        return Err(error.context("the daemon cannot go on without credentials"));
                    }
                }
            }
        }
        if *stop_rx.borrow() {
            break;
        }
        let today = chrono::Utc::now().date_naive();
        if today != last_maintenance {
            last_maintenance = today;
            if let Some(dir) = &settings.log_dir {
                logging::maintain(dir, settings.log_retention_days, today);
            }
        }
        let mut stop = stop_rx.clone();
        tokio::select! {
            _ = tokio::time::sleep(until_next_minute()) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        // Sleeping can end a little early or late; judge the minute we woke up in.
        let now = Local::now() + chrono::TimeDelta::seconds(1);
        pending = due(&jobs, now.hour() * 60 + now.minute());
    }
    tracing::info!("daemon stopped");
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::ScheduleConfig;

    #[test]
    fn due_jobs_follow_the_schedule() {
        let jobs = ScheduleConfig::default().jobs;
        // 00:00: every interval job is due; 00:05 only the relation worker; 03:17 the full
        // sync, with no delta (not a multiple of 10 anyway).
        assert_eq!(due(&jobs, 0), vec![JobKind::Delta, JobKind::Relations]);
        assert_eq!(due(&jobs, 5), vec![JobKind::Relations]);
        assert_eq!(due(&jobs, 3 * 60 + 17), vec![JobKind::Full]);
        assert_eq!(due(&jobs, 7), vec![]);
        // 04:43: the nightly backup.
        assert_eq!(due(&jobs, 4 * 60 + 43), vec![JobKind::Backup]);
    }

    #[test]
    fn a_full_sync_replaces_a_delta_in_the_same_minute() {
        let mut jobs = ScheduleConfig::default().jobs;
        jobs[0].when = crate::schedule::When::Daily {
            hour: 3,
            minute: 20,
        };
        assert_eq!(
            due(&jobs, 3 * 60 + 20),
            vec![JobKind::Full, JobKind::Relations]
        );
    }
}
