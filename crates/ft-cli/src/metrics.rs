//! The metrics file (`--metrics-file`, `FT42_METRICS_FILE`, issue #18): after every sync,
//! worker, daemon or backup job, the state of the mirror in the Prometheus text exposition
//! format, for node_exporter's textfile collector or any scraper that reads a file.
//!
//! The file is written to a temporary file in the same folder and renamed over the old one, so
//! a reader never sees half a file. Everything comes from the database (and the backup folder),
//! not from the job that just ran, so the file is the same whichever process wrote it last.
//! The client secret's expiry comes from the newest run that recorded the token answer's
//! `secret_valid_until` (a metrics write never spends a request on it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context;
use chrono::{NaiveDateTime, Utc};
use ft_store::{Store, Table, TaskState};

use crate::config::Settings;

/// One metric family: name, help, type and its samples (labels, value).
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    fn sample(mut self, labels: Vec<(&'static str, String)>, value: f64) -> Family {
        self.samples.push((labels, value));
        self
    }
}

/// Escapes a label value: backslash, double quote and line feed, as the format requires.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for (labels, value) in &f.samples {
            out.push_str(f.name);
            if !labels.is_empty() {
                let parts: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                    .collect();
                let _ = write!(out, "{{{}}}", parts.join(","));
            }
            let _ = writeln!(out, " {value}");
        }
    }
    out
}

fn seconds(t: NaiveDateTime) -> f64 {
    t.and_utc().timestamp() as f64
}

/// The metrics text for the store and settings at `now`.
pub(crate) fn collect(
    store: &Store,
    settings: &Settings,
    now: NaiveDateTime,
) -> anyhow::Result<String> {
    let mut families = Vec::new();

    // Per table: live rows, and the oldest complete-pass watermark over its scopes (every row
    // of the table is at least that fresh). Scopes without a complete pass are left out.
    let mut rows = Family::new(
        "ft42_rows",
        "gauge",
        "Live (not deleted) rows per mirror table.",
    );
    for table in Table::ALL {
        rows = rows.sample(
            vec![("table", table.as_str().to_owned())],
            store.count(*table, false)? as f64,
        );
    }
    let mut oldest: BTreeMap<String, NaiveDateTime> = BTreeMap::new();
    for cursor in store.cursors()? {
        let (Some(watermark), Ok(table)) = (cursor.watermark, cursor.resource.parse::<Table>())
        else {
            continue;
        };
        let slot = oldest.entry(table.as_str().to_owned()).or_insert(watermark);
        *slot = (*slot).min(watermark);
    }
    let mut last_success = Family::new(
        "ft42_last_success_timestamp_seconds",
        "gauge",
        "Start of the oldest last complete pass over the table's scopes (Unix time); tables never completed are absent.",
    );
    for (table, at) in &oldest {
        last_success = last_success.sample(vec![("table", table.clone())], seconds(*at));
    }
    families.push(last_success);
    families.push(rows);

    // The run history.
    let totals = store.run_totals()?;
    families.push(
        Family::new(
            "ft42_runs_total",
            "counter",
            "Finished runs in the run history.",
        )
        .sample(vec![], totals.runs as f64),
    );
    families.push(
        Family::new(
            "ft42_requests_total",
            "counter",
            "API requests sent by the finished runs in the run history.",
        )
        .sample(vec![], totals.requests as f64),
    );
    families.push(
        Family::new(
            "ft42_responses_429_total",
            "counter",
            "429 Too Many Requests answers received by the finished runs in the run history.",
        )
        .sample(vec![], totals.responses_429 as f64),
    );

    // The budget: requests in the current clock hour (UTC) from the fetch log.
    let used = store
        .hourly_requests(now, 1)?
        .last()
        .map_or(0, |h| h.requests);
    let per_hour = i64::from(settings.rate.per_hour);
    families.push(
        Family::new(
            "ft42_hourly_requests",
            "gauge",
            "API requests in the current clock hour (UTC), from the fetch log.",
        )
        .sample(vec![], used as f64),
    );
    families.push(
        Family::new(
            "ft42_hourly_budget_requests",
            "gauge",
            "The configured budget per hour (FT42_RATE_PER_HOUR).",
        )
        .sample(vec![], per_hour as f64),
    );
    families.push(
        Family::new(
            "ft42_hourly_budget_remaining_requests",
            "gauge",
            "The configured budget per hour minus the requests of the current clock hour.",
        )
        .sample(vec![], (per_hour - used).max(0) as f64),
    );

    // The task queue and its backlog.
    let mut by_state: BTreeMap<&'static str, i64> = [
        TaskState::Pending,
        TaskState::Running,
        TaskState::Done,
        TaskState::Error,
    ]
    .into_iter()
    .map(|s| (s.as_str(), 0))
    .collect();
    for (_, state, n) in store.task_counts()? {
        *by_state.entry(state.as_str()).or_default() += n;
    }
    let mut tasks = Family::new(
        "ft42_queue_tasks",
        "gauge",
        "Tasks in the durable queue by state.",
    );
    for (state, n) in by_state {
        tasks = tasks.sample(vec![("state", state.to_owned())], n as f64);
    }
    families.push(tasks);
    let backlog = ft_sync::backlog(store, 100, settings.rate.per_hour)?;
    families.push(
        Family::new(
            "ft42_backlog_requests",
            "gauge",
            "Requests the pending and running tasks still need, by lane.",
        )
        .sample(
            vec![("lane", "hot".to_owned())],
            backlog.hot_requests as f64,
        )
        .sample(
            vec![("lane", "backfill".to_owned())],
            backlog.backfill_requests as f64,
        ),
    );
    if let Some(eta) = backlog.eta {
        families.push(
            Family::new(
                "ft42_backlog_eta_seconds",
                "gauge",
                "Time the backlog takes at the current request rate.",
            )
            .sample(vec![], eta.as_secs_f64()),
        );
    }

    // Rows the API sent that could not be stored.
    families.push(
        Family::new(
            "ft42_quarantined_rows",
            "gauge",
            "Rows the API sent that could not be decoded or stored, set aside in the quarantine table.",
        )
        .sample(vec![], store.quarantine_count()? as f64),
    );

    // The client secret's end of validity, as the newest run that saw a token answer recorded.
    if let Some((_, until)) = crate::commands::support::recorded_secret_expiry(&store.runs(20)?) {
        families.push(
            Family::new(
                "ft42_secret_valid_until_timestamp_seconds",
                "gauge",
                "When the client secret stops working (Unix time), from the newest run's token answer; alert well before (ft42 warns from 14 days).",
            )
            .sample(vec![], until.timestamp() as f64),
        );
    }

    // The newest backup, if the backup folder holds one.
    if let Some(at) = newest_backup(&settings.backup.dir) {
        families.push(
            Family::new(
                "ft42_backup_age_seconds",
                "gauge",
                "Age of the newest backup in the backup folder.",
            )
            .sample(vec![], (now - at).num_seconds().max(0) as f64),
        );
    }

    families.push(
        Family::new(
            "ft42_metrics_timestamp_seconds",
            "gauge",
            "When this file was written (Unix time).",
        )
        .sample(vec![], seconds(now)),
    );
    Ok(render(&families))
}

/// When the newest backup in `dir` was made (UTC, from its file name); `None` when there is
/// none or the folder cannot be listed.
pub(crate) fn newest_backup(dir: &Path) -> Option<NaiveDateTime> {
    let (made_at, _) = crate::backup::newest_in(dir).ok()??;
    Some(made_at.naive_utc())
}

/// Writes `text` to `path` atomically: a temporary file in the same folder, synced, renamed.
pub(crate) fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".ft42-metrics-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    // Readable by a scraper running as another user (the temporary file is 0600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Writes the metrics file if one is configured, reading `store` (the job's own; opened here
/// when the job has none to lend). Errors name the file and the setting.
pub(crate) async fn write(settings: &Settings, store: Option<&Store>) -> anyhow::Result<()> {
    let Some(path) = settings.metrics_file.clone() else {
        return Ok(());
    };
    let store = match store {
        Some(store) => store.clone(),
        None => crate::commands::support::open_store(settings).await?,
    };
    let s = settings.clone();
    crate::commands::support::blocking(move || {
        let text = collect(&store, &s, Utc::now().naive_utc())
            .context("cannot read the database for the metrics file")?;
        write_atomic(&path, &text).with_context(|| {
            format!(
                "cannot write the metrics file {} (FT42_METRICS_FILE); check that its folder is \
                 writable or choose another path",
                path.display()
            )
        })
    })
    .await
}

/// Writes the metrics file after a one-shot job and folds the two outcomes: the job's failure
/// wins (a metrics failure is then only logged); after a successful job, a metrics failure is
/// the command's error, so a broken metrics setup does not go unnoticed.
pub(crate) async fn after_job<T>(
    settings: &Settings,
    store: Option<&Store>,
    outcome: anyhow::Result<T>,
) -> anyhow::Result<T> {
    match (write(settings, store).await, outcome) {
        (Ok(()), outcome) => outcome,
        (Err(error), Ok(_)) => Err(error),
        (Err(error), Err(job)) => {
            tracing::warn!(error = %crate::exit::one_line(&error), "cannot write the metrics file");
            Err(job)
        }
    }
}

/// Writes the metrics file after a daemon job; a failure is logged and the daemon goes on.
pub(crate) async fn after_daemon_job(settings: &Settings, store: &Store) {
    if let Err(error) = write(settings, Some(store)).await {
        tracing::error!(error = %crate::exit::one_line(&error), "cannot write the metrics file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        let text =
            render(&[Family::new("m", "gauge", "Help.")
                .sample(vec![("table", "we\"ird".to_owned())], 2.0)]);
        assert_eq!(
            text,
            "# HELP m Help.\n# TYPE m gauge\nm{table=\"we\\\"ird\"} 2\n"
        );
    }

    #[test]
    fn an_empty_store_gives_zero_rows_and_an_empty_queue() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        store.migrate().unwrap();
        let settings = Settings::resolve(&crate::cli::GlobalArgs::default(), |_| None).unwrap();
        let now = Utc::now().naive_utc();
        let text = collect(&store, &settings, now).unwrap();
        assert!(text.contains("# TYPE ft42_requests_total counter\nft42_requests_total 0\n"));
        assert!(text.contains("ft42_rows{table=\"users\"} 0\n"), "{text}");
        assert!(
            text.contains("ft42_queue_tasks{state=\"pending\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("ft42_hourly_budget_remaining_requests 1200\n"),
            "{text}"
        );
        assert!(
            !text.contains("ft42_last_success_timestamp_seconds{"),
            "{text}"
        );
        assert!(
            !text.contains("ft42_backup_age_seconds"),
            "no backup folder: {text}"
        );

        let path = dir.path().join("ft42.prom");
        std::fs::write(&path, "old").unwrap();
        write_atomic(&path, &text).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "the temporary file was renamed");
    }
}
