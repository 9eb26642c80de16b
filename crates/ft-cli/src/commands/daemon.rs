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

use chrono::{DateTime, DurationRound, Local, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use ft_store::Store;
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
        // Never passed here: backups run on their own task (see `backup_schedule`).
        JobKind::Backup => Ok(ft_sync::RunSummary::default()),
    };
    reporter.finish().await;
    result
}

/// Which jobs are due, judged minute by minute: each whole UTC minute once (so a job's run
/// time never swallows a schedule time: [`Ticker::advance`] over a span judges all of its
/// minutes), matched against the schedule in `tz`'s wall-clock time, like cron. Interval jobs
/// (`every 10m`) are due at the local minutes that are multiples of their interval. A daily job
/// is due once the local time passes its time of day: when clocks go back, the repeated hour
/// does not run it again; when they go forward over it, it runs right after the jump.
struct Ticker<Tz: TimeZone> {
    tz: Tz,
    /// The last UTC minute judged.
    judged: DateTime<Utc>,
    /// The latest local wall-clock time judged (it stands still while a repeated hour passes).
    high: NaiveDateTime,
}

impl<Tz: TimeZone> Ticker<Tz> {
    /// A ticker that has judged every minute up to `now`.
    fn new(tz: Tz, now: DateTime<Utc>) -> Ticker<Tz> {
        let judged = minute_floor(now);
        let high = judged.with_timezone(&tz).naive_local();
        Ticker { tz, judged, high }
    }

    /// The jobs due at any whole minute after the last one judged, up to `upto`, each once,
    /// in schedule order; a full sync due in the span replaces a delta due in it. At most the
    /// last day is looked at: after a longer gap every job is due at most once anyway.
    fn advance(&mut self, jobs: &[Job], upto: DateTime<Utc>) -> Vec<JobKind> {
        let upto = minute_floor(upto);
        let mut due = vec![false; jobs.len()];
        let mut minute = self.judged.max(upto - TimeDelta::days(1)) + TimeDelta::minutes(1);
        while minute <= upto {
            let local = minute.with_timezone(&self.tz).naive_local();
            for (job, hit) in jobs.iter().zip(due.iter_mut()) {
                *hit |= match job.when {
                    When::Daily { hour, minute } => daily_passed(self.high, local, hour, minute),
                    when => when.due_at(local.hour() * 60 + local.minute()),
                };
            }
            self.high = self.high.max(local);
            minute += TimeDelta::minutes(1);
        }
        self.judged = self.judged.max(upto);
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
}

/// Whether a local time of day `hour:minute` lies in `(after, upto]` (local wall-clock times).
fn daily_passed(after: NaiveDateTime, upto: NaiveDateTime, hour: u8, minute: u8) -> bool {
    let Some(time) = chrono::NaiveTime::from_hms_opt(u32::from(hour), u32::from(minute), 0) else {
        return false;
    };
    let mut at = upto.date().and_time(time);
    if at > upto {
        at -= TimeDelta::days(1);
    }
    at > after
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

/// When the last full sync of everything (ok or partial) started, and the newest backup was
/// made.
async fn history(
    settings: &Settings,
    store: &Store,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let dir = settings.backup.dir.clone();
    let backup = tokio::task::spawn_blocking(move || crate::backup::newest_in(&dir))
        .await
        .ok()
        .and_then(Result::ok)
        .flatten()
        .map(|(made_at, _)| made_at);
    let store = store.clone();
    let full = super::support::blocking(move || {
        Ok(store.last_finished_run(
            "sync",
            &["ok", "partial"],
            &[("mode", "full"), ("what", "all")],
        )?)
    })
    .await;
    let full = match full {
        Ok(t) => t.map(|t| t.and_utc()),
        Err(error) => {
            tracing::warn!(error = %exit::one_line(&error), "cannot read the run history; no catch-up");
            None
        }
    };
    (full, backup)
}

/// Starts a backup, unless one is still running.
fn start_backup(
    settings: &Settings,
    store: &Store,
    stop: &watch::Receiver<bool>,
    running: &mut Option<JoinHandle<()>>,
) {
    if running.as_ref().is_some_and(|task| !task.is_finished()) {
        tracing::warn!("backup still running at its next scheduled time; this one is skipped");
        return;
    }
    let (settings, store) = (settings.clone(), store.clone());
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
        crate::metrics::after_daemon_job(&settings, &store).await;
    }));
}

/// The backups' own schedule, beside the syncs': backups make no API request and read one
/// consistent snapshot, so they never wait for a sync (a nightly full sync can take hours).
/// `now` starts one at once (the start-up catch-up). Returns after the stop signal, once a
/// running backup has stopped and cleaned up.
async fn backup_schedule(
    settings: Settings,
    store: Store,
    jobs: Vec<Job>,
    stop: watch::Receiver<bool>,
    now: bool,
) {
    let mut running = None;
    if now {
        start_backup(&settings, &store, &stop, &mut running);
    }
    let mut ticker = Ticker::new(Local, Utc::now());
    let mut wait = stop.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(until_next_minute()) => {}
            _ = wait.wait_for(|s| *s) => break,
        }
        // Sleeping can end a little early: judge the minute we meant to wake up in.
        if !ticker
            .advance(&jobs, Utc::now() + TimeDelta::seconds(1))
            .is_empty()
        {
            start_backup(&settings, &store, &stop, &mut running);
        }
    }
    if let Some(task) = running {
        let _ = task.await;
    }
}

/// `ft42 daemon`.
pub(crate) async fn daemon(settings: &Settings, args: &DaemonArgs) -> anyhow::Result<Exit> {
    let engine = engine(settings).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
    }
    // The status server is for people and scrapers: if it cannot start, the mirror is still
    // kept fresh (and the metrics file written); the error says why.
    let server = match args.listen {
        Some(addr) => match crate::serve::Server::bind(settings, addr).await {
            Ok(server) => {
                if let Ok(addr) = server.local_addr() {
                    crate::serve::announce(addr);
                }
                let mut stop = stop_rx.clone();
                Some(tokio::spawn(server.serve(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })))
            }
            Err(error) => {
                tracing::error!(error = %exit::one_line(&error), "status server not started; the daemon goes on without it");
                None
            }
        },
        None => None,
    };
    let all: Vec<Job> = settings.schedule.active().cloned().collect();
    let names: Vec<String> = all
        .iter()
        .map(|j| format!("{} {}", j.name, j.when))
        .collect();
    tracing::info!(schedule = %names.join(", "), "daemon started");
    let (backup_jobs, jobs): (Vec<Job>, Vec<Job>) =
        all.iter().cloned().partition(|j| j.kind == JobKind::Backup);

    let (last_full, newest_backup) = history(settings, engine.store()).await;
    let started = Utc::now();
    let mut pending = startup_jobs(&all, started, &Local, last_full, newest_backup);
    if pending.len() > 1 || pending[0] != JobKind::Delta {
        tracing::info!(jobs = ?pending, "catching up on jobs missed while the daemon was down");
    }
    let backup_now = pending.contains(&JobKind::Backup);
    pending.retain(|k| *k != JobKind::Backup);
    let backups = tokio::spawn(backup_schedule(
        settings.clone(),
        engine.store().clone(),
        backup_jobs,
        stop_rx.clone(),
        backup_now,
    ));
    let mut ticker = Ticker::new(Local, started);
    let mut last_maintenance = Utc::now().date_naive();
    loop {
        for kind in pending.drain(..) {
            if *stop_rx.borrow() {
                break;
            }
            tracing::info!(job = ?kind, "job started");
            let outcome = run_job(&engine, kind, &settings.campuses, &stop_rx).await;
            crate::metrics::after_daemon_job(settings, engine.store()).await;
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
                        // Stop the backup and the server too, then exit.
                        let _ = stop_tx.send(true);
                        finish(backups, server).await;
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
            if let Some(dir) = settings.log_dir.clone() {
                let days = settings.log_retention_days;
                let _ =
                    tokio::task::spawn_blocking(move || logging::maintain(&dir, days, today)).await;
            }
        }
        // Jobs due while the last ones ran are due now, each once.
        pending = ticker.advance(&jobs, Utc::now());
        if !pending.is_empty() {
            tracing::info!(jobs = ?pending, "running jobs whose time came while a job ran");
            continue;
        }
        let mut stop = stop_rx.clone();
        tokio::select! {
            _ = tokio::time::sleep(until_next_minute()) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        // Sleeping can end a little early: judge the minute we meant to wake up in.
        pending = ticker.advance(&jobs, Utc::now() + TimeDelta::seconds(1));
    }
    finish(backups, server).await;
    tracing::info!("daemon stopped");
    Ok(Exit::Ok)
}

/// Waits for the backup schedule (a running backup stops and cleans up on the stop signal) and
/// stops the server.
async fn finish(backups: JoinHandle<()>, server: Option<JoinHandle<()>>) {
    let _ = backups.await;
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

    /// The jobs due in `(after, upto]`, from a fresh ticker in `tz`.
    fn due_between<Tz: TimeZone>(
        jobs: &[Job],
        after: DateTime<Utc>,
        upto: DateTime<Utc>,
        tz: Tz,
    ) -> Vec<JobKind> {
        Ticker::new(tz, after).advance(jobs, upto)
    }

    #[test]
    fn due_jobs_follow_the_schedule() {
        let jobs = ScheduleConfig::default().jobs;
        let minute = |t: &str| due_between(&jobs, at(t) - TimeDelta::minutes(1), at(t), Utc);
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
        // Seconds into the minute do not matter; a minute is judged once.
        let mut ticker = Ticker::new(Utc, at("2026-12-05T00:04:10Z"));
        assert_eq!(
            ticker.advance(&jobs, at("2026-12-05T00:05:59Z")),
            vec![JobKind::Relations]
        );
        assert_eq!(ticker.advance(&jobs, at("2026-12-05T00:05:59Z")), vec![]);
        assert_eq!(
            ticker.advance(&jobs, at("2026-12-05T00:04:00Z")),
            vec![],
            "no going back"
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
                Utc
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
                Utc
            ),
            vec![JobKind::Delta, JobKind::Relations]
        );
        // A long job over 03:17 and 04:43: the full sync replaces the deltas, the backup too.
        assert_eq!(
            due_between(
                &jobs,
                at("2026-12-05T02:50:00Z"),
                at("2026-12-05T05:00:00Z"),
                Utc
            ),
            vec![JobKind::Full, JobKind::Relations, JobKind::Backup]
        );
        // Two days of sleep (a suspended machine): every job once.
        assert_eq!(
            due_between(
                &jobs,
                at("2026-12-03T05:00:00Z"),
                at("2026-12-05T05:00:00Z"),
                Utc
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
                paris_winter
            ),
            vec![JobKind::Full]
        );
        assert_eq!(
            last_due(jobs[0].when, at("2026-12-05T12:00:00Z"), &paris_winter),
            Some(at("2026-12-05T02:17:00Z"))
        );
    }

    /// Europe/Paris-like rules: UTC+2 until 2026-10-25 01:00 UTC, UTC+1 after; UTC+1 until
    /// 2027-03-28 01:00 UTC, UTC+2 after.
    #[derive(Clone, Copy)]
    struct Paris;

    impl Paris {
        fn offset_at(utc: NaiveDateTime) -> chrono::FixedOffset {
            let fall = at("2026-10-25T01:00:00Z").naive_utc();
            let spring = at("2027-03-28T01:00:00Z").naive_utc();
            let hours = if utc >= fall && utc < spring { 1 } else { 2 };
            chrono::FixedOffset::east_opt(hours * 3600).unwrap()
        }
    }

    impl TimeZone for Paris {
        type Offset = chrono::FixedOffset;
        fn from_offset(_: &chrono::FixedOffset) -> Paris {
            Paris
        }
        fn offset_from_local_date(
            &self,
            _: &chrono::NaiveDate,
        ) -> chrono::LocalResult<chrono::FixedOffset> {
            unimplemented!("not used by the ticker")
        }
        fn offset_from_local_datetime(
            &self,
            _: &NaiveDateTime,
        ) -> chrono::LocalResult<chrono::FixedOffset> {
            unimplemented!("not used by the ticker")
        }
        fn offset_from_utc_date(&self, _: &chrono::NaiveDate) -> chrono::FixedOffset {
            unimplemented!("not used by the ticker")
        }
        fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> chrono::FixedOffset {
            Paris::offset_at(*utc)
        }
    }

    /// Minute by minute through a day, as the daemon does: the UTC minutes a daily job ran.
    fn daily_runs(job: When, from: &str, to: &str) -> Vec<DateTime<Utc>> {
        let jobs = vec![Job {
            kind: JobKind::Full,
            name: "full",
            when: job,
            args: Vec::new(),
        }];
        let mut ticker = Ticker::new(Paris, at(from));
        let mut runs = Vec::new();
        let mut minute = at(from);
        while minute < at(to) {
            minute += TimeDelta::minutes(1);
            if !ticker.advance(&jobs, minute).is_empty() {
                runs.push(minute);
            }
        }
        runs
    }

    #[test]
    fn daylight_saving_neither_repeats_nor_drops_a_daily_job() {
        let half_past_two = When::Daily {
            hour: 2,
            minute: 30,
        };
        // Clocks go back at 03:00 local (01:00 UTC): 02:30 local comes twice; once is run.
        assert_eq!(
            daily_runs(
                half_past_two,
                "2026-10-24T20:00:00Z",
                "2026-10-25T20:00:00Z"
            ),
            vec![at("2026-10-25T00:30:00Z")]
        );
        // Clocks go forward at 02:00 local (01:00 UTC): 02:30 local never comes; the job runs
        // at the jump (03:00 local), like cron.
        assert_eq!(
            daily_runs(
                half_past_two,
                "2027-03-27T20:00:00Z",
                "2027-03-28T20:00:00Z"
            ),
            vec![at("2027-03-28T01:00:00Z")]
        );
        // An ordinary day: once, at 02:30 local.
        assert_eq!(
            daily_runs(
                half_past_two,
                "2026-12-04T20:00:00Z",
                "2026-12-05T20:00:00Z"
            ),
            vec![at("2026-12-05T01:30:00Z")]
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
