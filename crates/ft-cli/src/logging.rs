//! Logging: human-readable events on stderr, and JSON lines in daily files under the log folder.
//!
//! Files are named `ft42.YYYY-MM-DD.jsonl` (UTC dates, rotated daily by tracing-appender). At
//! start-up, and once a day in the daemon, [`maintain`] compresses every earlier day's file to
//! `.jsonl.gz` and deletes files older than the retention period.
//!
//! A log folder that cannot be created or written is an error (exit 2) when it was configured
//! (`--log-dir`, `FT42_LOG_DIR`, `log_dir`), because an operator asked for files and would
//! otherwise lose them silently. When it is only the default `logs`, ft42 warns once and logs to
//! stderr only, so a first run in a read-only folder still works. `FT42_LOG_DIR=off` turns files
//! off.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, Utc};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{ConfigError, Origin, Settings};

/// File name prefix of the log files.
pub const FILE_PREFIX: &str = "ft42";
/// File name suffix of the log files (before the optional `.gz`).
pub const FILE_SUFFIX: &str = "jsonl";
/// Target of the final error event: written to the files, kept off stderr because the same
/// error is already printed there as the one-line message.
pub const EXIT_TARGET: &str = "ft42_exit";

/// What [`init`] needs to know.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// -1 per `-q`, +1 per `-v`: 0 is info, 1 debug, 2 trace, -1 warn, -2 error.
    pub verbosity: i8,
    /// The log folder, or `None` for stderr only.
    pub dir: Option<PathBuf>,
    /// Where the folder setting came from.
    pub dir_origin: Origin,
    /// Days of files to keep.
    pub retention_days: u32,
}

impl LogOptions {
    /// Options from the parsed flags and the settings.
    pub fn new(verbose: u8, quiet: u8, settings: &Settings) -> LogOptions {
        let verbosity = i8::try_from(i16::from(verbose) - i16::from(quiet)).unwrap_or(0);
        LogOptions {
            verbosity,
            dir: settings.log_dir.clone(),
            dir_origin: settings.log_dir_origin.clone(),
            retention_days: settings.log_retention_days,
        }
    }
}

/// Keeps the background log writer alive; dropping it flushes the files.
#[must_use = "dropping the guard stops file logging"]
pub struct LogGuard {
    _file: Option<WorkerGuard>,
}

fn level(verbosity: i8) -> &'static str {
    match verbosity {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    }
}

/// The filter for our crates at `level`, other crates at warn.
fn filter_for(level: &str) -> String {
    format!(
        "warn,ft42={level},ft42_progress={level},ft_cli={level},ft_api={level},ft_sync={level},ft_store={level},\
         ft_integrity={level},ft_sim=warn"
    )
}

/// Installs the global subscriber. `RUST_LOG`, when set, replaces the stderr filter.
pub fn init(opts: &LogOptions) -> Result<LogGuard, ConfigError> {
    let stderr_level = level(opts.verbosity);
    let stderr_filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::new(directives),
        _ => EnvFilter::new(filter_for(stderr_level)),
    }
    .add_directive(
        format!("{EXIT_TARGET}=off")
            .parse()
            .expect("static directive"),
    );
    // On a terminal the bars show progress (and the engine's task lines would only repeat
    // them); elsewhere the progress events are the plain lines.
    let stderr_filter = if crate::progress::interactive() && opts.verbosity == 0 {
        let mut filter = stderr_filter;
        for directive in [
            format!("{}=off", crate::progress::PROGRESS_TARGET),
            "ft_sync=warn".to_owned(),
        ] {
            filter = filter.add_directive(directive.parse().expect("static directive"));
        }
        filter
    } else {
        stderr_filter
    };
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(|| StderrWriter)
        .with_target(false)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .with_filter(stderr_filter);

    let mut warning = None;
    let (file_layer, guard) = match &opts.dir {
        None => (None, None),
        Some(dir) => match open_appender(dir) {
            Ok(appender) => {
                maintain(dir, opts.retention_days, Utc::now().date_naive());
                let (writer, guard) = tracing_appender::non_blocking(appender);
                // Files always get at least info, and follow -v when it asks for more.
                let file_level = level(opts.verbosity.max(0));
                let layer = tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer)
                    .with_filter(EnvFilter::new(format!(
                        "{},{EXIT_TARGET}=error",
                        filter_for(file_level)
                    )));
                (Some(layer), Some(guard))
            }
            Err(reason) if opts.dir_origin == Origin::Default => {
                warning = Some(format!(
                    "cannot write logs to {}: {reason}; logging to stderr only (set \
                     FT42_LOG_DIR to a writable folder, or to \"off\")",
                    dir.display()
                ));
                (None, None)
            }
            Err(reason) => {
                return Err(ConfigError::Invalid {
                    origin: opts.dir_origin.clone(),
                    reason: format!(
                        "cannot write logs to {}: {reason}; use a writable folder, or \"off\"",
                        dir.display()
                    ),
                });
            }
        },
    };
    // A second init (tests calling `launch` twice in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file_layer)
        .try_init();
    if let Some(warning) = warning {
        tracing::warn!("{warning}");
    }
    Ok(LogGuard { _file: guard })
}

fn open_appender(dir: &Path) -> Result<RollingFileAppender, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    // tracing-appender creates the file lazily on some errors; a probe catches a read-only
    // folder now instead of losing every line later.
    let probe = dir.join(".ft42-write-test");
    std::fs::write(&probe, b"").map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&probe);
    RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix(FILE_PREFIX)
        .filename_suffix(FILE_SUFFIX)
        .build(dir)
        .map_err(|e| e.to_string())
}

/// The date of a log file named `ft42.YYYY-MM-DD.jsonl[.gz]`, and whether it is compressed.
fn parse_log_name(name: &str) -> Option<(NaiveDate, bool)> {
    let rest = name.strip_prefix(FILE_PREFIX)?.strip_prefix('.')?;
    let (rest, gz) = match rest.strip_suffix(".gz") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let date = rest.strip_suffix(FILE_SUFFIX)?.strip_suffix('.')?;
    NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()
        .map(|d| (d, gz))
}

/// Compresses earlier days' files and deletes files older than `retention_days`.
///
/// Failures are logged and skipped: housekeeping must never stop a sync.
pub fn maintain(dir: &Path, retention_days: u32, today: NaiveDate) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((date, gz)) = name.to_str().and_then(parse_log_name) else {
            continue;
        };
        let path = entry.path();
        let age_days = (today - date).num_days();
        if age_days > i64::from(retention_days) {
            if let Err(error) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), %error, "cannot delete an old log file");
            }
        } else if !gz
            && age_days >= 1
            && let Err(error) = compress(&path)
        {
            tracing::warn!(path = %path.display(), %error, "cannot compress a log file");
        }
    }
}

/// Writes `path.gz` and removes `path`; a half-written `.gz` is removed on failure.
fn compress(path: &Path) -> io::Result<()> {
    let mut gz_name = path.as_os_str().to_owned();
    gz_name.push(".gz");
    let gz_path = PathBuf::from(gz_name);
    let result = (|| {
        let mut input = std::fs::File::open(path)?;
        let output = std::fs::File::create(&gz_path)?;
        let mut encoder = flate2::write::GzEncoder::new(output, flate2::Compression::default());
        io::copy(&mut input, &mut encoder)?;
        encoder.finish()?.sync_all()
    })();
    match result {
        Ok(()) => std::fs::remove_file(path),
        Err(e) => {
            let _ = std::fs::remove_file(&gz_path);
            Err(e)
        }
    }
}

/// Writes to stderr around the progress bars, so log lines do not tear them.
struct StderrWriter;

impl Write for StderrWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::progress::bars().suspend(|| io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn parses_log_file_names() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        assert_eq!(parse_log_name("ft42.2026-11-27.jsonl"), Some((d, false)));
        assert_eq!(parse_log_name("ft42.2026-11-27.jsonl.gz"), Some((d, true)));
        assert_eq!(parse_log_name("other.2026-11-27.jsonl"), None);
        assert_eq!(parse_log_name("ft42.jsonl"), None);
    }

    #[test]
    fn maintain_compresses_yesterday_and_deletes_expired() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("ft42.2026-11-28.jsonl"), "today\n").unwrap();
        std::fs::write(p("ft42.2026-11-27.jsonl"), "{\"a\":1}\n").unwrap();
        std::fs::write(p("ft42.2026-11-01.jsonl.gz"), "old").unwrap();
        std::fs::write(p("notes.txt"), "keep").unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        maintain(dir.path(), 14, today);

        assert!(
            p("ft42.2026-11-28.jsonl").exists(),
            "today's file stays open"
        );
        assert!(!p("ft42.2026-11-27.jsonl").exists());
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(p("ft42.2026-11-27.jsonl.gz")).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"a\":1}\n");
        assert!(
            !p("ft42.2026-11-01.jsonl.gz").exists(),
            "27 days old, retention 14"
        );
        assert!(p("notes.txt").exists(), "foreign files are left alone");
    }

    #[test]
    fn verbosity_maps_to_levels() {
        assert_eq!(level(-3), "error");
        assert_eq!(level(-1), "warn");
        assert_eq!(level(0), "info");
        assert_eq!(level(1), "debug");
        assert_eq!(level(5), "trace");
    }
}
