//! Settings: flags, then `FT42_*` environment variables, then the TOML config file, then
//! defaults (highest first).
//!
//! Everything is validated when loaded, so a malformed URL or a bad number fails before any work
//! starts, with a one-line error naming the setting where the bad value came from. Credentials
//! are the exception: they are only needed by commands that talk to the API, so a missing
//! secret (or an unreadable secret file) is reported by [`Settings::credentials`], when a command
//! asks for them, with exit code 3.
//!
//! Secrets never come from flags, and are held in [`secrecy::SecretString`] so that Debug output, logs and
//! errors cannot show them.
//!
//! The module is split by concept: [`error`] (where a value came from, what is wrong), `file`
//! (the TOML file), `layers` (flag > environment > file precedence), `secrets`,
//! `applications` (more applications, the shared budget), `backup` and `validate` (URLs and
//! the `[freshness]` table).

mod applications;
mod backup;
mod error;
mod file;
mod layers;
mod secrets;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ft_store::{DatabaseUrl, Freshness};
use url::Url;

use crate::cli::GlobalArgs;
use crate::schedule::ScheduleConfig;

pub use applications::{ExtraApplication, SharedBudgetMode};
pub use backup::BackupSettings;
pub use error::{ConfigError, Origin};
pub use ft_store::redact_url;
pub use secrets::Credentials;

use backup::resolve_backup;
use file::load_file;
use layers::{Layers, Raw, flag, parse_count, parse_positive, path_string, to_u32};
use secrets::{SecretSource, resolve_secret};
use validate::{parse_api_url, parse_database_url, parse_freshness, parse_look_back};

/// Default base URL of the real API.
pub const DEFAULT_API_URL: &str = "https://api.intra.42.fr";
/// Default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://ft42.db";
/// Default folder for JSON-lines logs.
pub const DEFAULT_LOG_DIR: &str = "logs";
/// Default folder for exports.
pub const DEFAULT_EXPORT_DIR: &str = "exports";
/// The API's default budget per application: 2 requests per second.
pub const DEFAULT_RATE_PER_SECOND: u32 = 2;
/// The API's default budget per application: 1200 requests per hour.
pub const DEFAULT_RATE_PER_HOUR: u32 = 1200;
/// Length of the "hourly" window in seconds; a simulator may compress it.
pub const DEFAULT_RATE_HOUR_S: u64 = 3600;
/// Days of log files kept by default.
pub const DEFAULT_LOG_RETENTION_DAYS: u32 = 14;
/// Days of raw page archive kept by default.
pub const DEFAULT_EXPORT_RETENTION_DAYS: u32 = 30;
/// Default folder for encrypted backups.
pub const DEFAULT_BACKUP_DIR: &str = "backups";
/// Daily backups kept by default (the newest of each of the last 7 days that have one).
pub const DEFAULT_BACKUP_KEEP_DAILY: u32 = 7;
/// Weekly backups kept by default (the newest of each of the last 4 weeks that have one).
pub const DEFAULT_BACKUP_KEEP_WEEKLY: u32 = 4;

/// The client's pacing budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per second (`FT42_RATE_PER_SECOND`).
    pub per_second: u32,
    /// Requests per "hour" (`FT42_RATE_PER_HOUR`).
    pub per_hour: u32,
    /// Length of the "hour" (`FT42_RATE_HOUR_S`).
    pub hour: Duration,
}

/// All resolved settings. Build with [`Settings::load`].
#[derive(Clone)]
pub struct Settings {
    /// Base URL of the API (`FT42_API_URL`), without a trailing slash.
    pub api_url: Url,
    /// `$FT42_API_URL/oauth/token`.
    pub token_url: Url,
    /// The application's UID (`FT42_CLIENT_ID`), if set.
    pub client_id: Option<String>,
    secret: Option<SecretSource>,
    secret_next: Option<SecretSource>,
    /// The database URL (`FT42_DATABASE_URL`): `sqlite://PATH`, a plain path, or `postgres://`.
    pub database_url: DatabaseUrl,
    /// Where [`Settings::database_url`] came from (to name it in errors).
    pub database_url_origin: Origin,
    /// The pacing budget.
    pub rate: Rate,
    /// The JSON-lines log folder (`FT42_LOG_DIR`); `None` when set to `off`.
    pub log_dir: Option<PathBuf>,
    /// Where [`Settings::log_dir`] came from; a default folder that cannot be created only
    /// gives a warning, a configured one is an error.
    pub log_dir_origin: Origin,
    /// Days of log files to keep (`log_retention_days` in the config file).
    pub log_retention_days: u32,
    /// The export folder (`FT42_EXPORT_DIR`): the raw page archive.
    pub export_dir: PathBuf,
    /// Days of archive to keep (`FT42_EXPORT_RETENTION_DAYS`); 0 keeps everything.
    pub export_retention_days: u32,
    /// Freshness per resource: the defaults with the `[freshness]` overrides of the config file
    /// and the schedule's grace, the one definition the engine (what a delta run skips),
    /// `status` (what is stale) and `integrity` read.
    pub freshness: Freshness,
    /// How far before its watermark each windowed listing's delta starts: the engine's
    /// defaults (locations 6 h) with the config file's `[look_back]` overrides.
    pub look_back: std::collections::BTreeMap<String, Duration>,
    /// `-q` was given: commands print nothing on success (cron mails only failures).
    pub quiet: bool,
    /// The config file in use, if any (absolute when it could be resolved).
    pub config_file: Option<PathBuf>,
    /// The sync schedule used by `cron install` and `daemon`.
    pub schedule: ScheduleConfig,
    /// More applications (`FT42_APPLICATIONS_FILE`), read by [`Settings::applications`].
    applications_file: Option<(PathBuf, Origin)>,
    /// The rate ledger setting (`FT42_SHARED_BUDGET`: auto, on or off).
    pub shared_budget: SharedBudgetMode,
    /// The campuses `sync` (without `--campus`), the daemon and cron jobs mirror
    /// (`FT42_CAMPUSES=1,12,21`, config key `campuses = [1, 12, 21]`), sorted; empty: every
    /// campus.
    pub campuses: Vec<i64>,
    /// The Prometheus metrics file written after every job (`--metrics-file`,
    /// `FT42_METRICS_FILE`, config key `metrics_file`); `None`: no metrics file.
    pub metrics_file: Option<PathBuf>,
    /// Backups: folder, keys, rotation.
    pub backup: BackupSettings,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("api_url", &self.api_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("database_url", &self.database_url)
            .field("rate", &self.rate)
            .field("log_dir", &self.log_dir)
            .field("export_dir", &self.export_dir)
            .field("config_file", &self.config_file)
            .field("backup", &self.backup)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Loads settings from `flags`, the process environment and the config file.
    pub fn load(flags: &GlobalArgs) -> Result<Settings, ConfigError> {
        Settings::resolve(flags, |var| std::env::var(var).ok())
    }

    /// Loads settings with an explicit environment lookup (used by tests, which must not
    /// mutate the process environment).
    pub fn resolve(
        flags: &GlobalArgs,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let (file, file_path) = load_file(flags, &env)?;
        let layers = Layers {
            env,
            file,
            file_path,
        };
        let l = &layers;
        let file_key = |key: &'static str, v: &Option<String>| l.file(key, v.clone());
        let file_num = |key: &'static str, v: Option<u64>| l.file(key, v.map(|n| n.to_string()));
        let file_path_key = |key: &'static str, v: &Option<PathBuf>| {
            l.file(key, v.as_ref().map(|p| path_string(p)))
        };

        // API URL.
        let api = flag("--api-url", flags.api_url.clone())
            .or_else(|| l.env("FT42_API_URL"))
            .or_else(|| file_key("api_url", &l.file.api_url));
        let (api_url, token_url) = parse_api_url(api)?;

        // Database URL.
        let db = flag("--database-url", flags.database_url.clone())
            .or_else(|| l.env("FT42_DATABASE_URL"))
            .or_else(|| file_key("database_url", &l.file.database_url))
            .unwrap_or(Raw {
                value: DEFAULT_DATABASE_URL.to_owned(),
                origin: Origin::Default,
            });
        let database_url = parse_database_url(&db)?;

        // Credentials: the id and secrets are resolved now and read later.
        let client_id = l
            .env("FT42_CLIENT_ID")
            .or_else(|| file_key("client_id", &l.file.client_id))
            .map(|raw| raw.value.trim().to_owned());
        let secret = resolve_secret(
            l,
            &secrets::CURRENT,
            (
                l.file.client_secret.clone(),
                l.file.client_secret_file.as_deref(),
            ),
        )?;
        let secret_next = resolve_secret(
            l,
            &secrets::NEXT,
            (
                l.file.client_secret_next.clone(),
                l.file.client_secret_next_file.as_deref(),
            ),
        )?;

        // Budget.
        let per_second = parse_positive(
            l.env("FT42_RATE_PER_SECOND")
                .or_else(|| file_num("rate_per_second", l.file.rate_per_second.map(u64::from))),
            u64::from(DEFAULT_RATE_PER_SECOND),
        )?;
        let per_hour = parse_positive(
            l.env("FT42_RATE_PER_HOUR")
                .or_else(|| file_num("rate_per_hour", l.file.rate_per_hour.map(u64::from))),
            u64::from(DEFAULT_RATE_PER_HOUR),
        )?;
        let hour_s = parse_positive(
            l.env("FT42_RATE_HOUR_S")
                .or_else(|| file_num("rate_hour_s", l.file.rate_hour_s)),
            DEFAULT_RATE_HOUR_S,
        )?;
        let rate = Rate {
            per_second: to_u32(per_second, "FT42_RATE_PER_SECOND")?,
            per_hour: to_u32(per_hour, "FT42_RATE_PER_HOUR")?,
            hour: Duration::from_secs(hour_s),
        };

        // Folders.
        let log = flag("--log-dir", flags.log_dir.as_ref().map(|p| path_string(p)))
            .or_else(|| l.env("FT42_LOG_DIR"))
            .or_else(|| file_path_key("log_dir", &l.file.log_dir))
            .unwrap_or(Raw {
                value: DEFAULT_LOG_DIR.to_owned(),
                origin: Origin::Default,
            });
        let log_dir = match log.value.trim() {
            "off" | "-" | "none" => None,
            dir => Some(PathBuf::from(dir)),
        };
        let export_dir = l
            .env("FT42_EXPORT_DIR")
            .or_else(|| file_path_key("export_dir", &l.file.export_dir))
            .map_or_else(|| PathBuf::from(DEFAULT_EXPORT_DIR), |raw| raw.value.into());
        let log_retention_days = l
            .file
            .log_retention_days
            .unwrap_or(DEFAULT_LOG_RETENTION_DAYS);
        let export_retention_days = to_u32(
            parse_count(
                l.env("FT42_EXPORT_RETENTION_DAYS").or_else(|| {
                    file_num(
                        "export_retention_days",
                        l.file.export_retention_days.map(u64::from),
                    )
                }),
                u64::from(DEFAULT_EXPORT_RETENTION_DAYS),
            )?,
            "FT42_EXPORT_RETENTION_DAYS",
        )?;
        let schedule = ScheduleConfig::from_file(l.file.schedule.as_ref(), l.file_path.as_deref())?;
        let freshness = parse_freshness(
            l.file.freshness.as_ref(),
            l.file_path.as_deref(),
            schedule.freshness_grace(),
        )?;
        let look_back = parse_look_back(l.file.look_back.as_ref(), l.file_path.as_deref())?;
        let backup = resolve_backup(l)?;

        // Several applications and the shared budget.
        let applications_file = l
            .env("FT42_APPLICATIONS_FILE")
            .map(|raw| (PathBuf::from(raw.value.trim()), raw.origin))
            .or_else(|| {
                let raw = file_path_key("applications_file", &l.file.applications_file)?;
                // Relative to the config file, like the secret file.
                Some((l.in_file_dir(&raw.value), raw.origin))
            });
        let shared_budget = match l
            .env("FT42_SHARED_BUDGET")
            .or_else(|| file_key("shared_budget", &l.file.shared_budget))
        {
            None => SharedBudgetMode::Auto,
            Some(raw) => match raw.value.trim() {
                "auto" => SharedBudgetMode::Auto,
                "on" => SharedBudgetMode::On,
                "off" => SharedBudgetMode::Off,
                other => {
                    return Err(ConfigError::Invalid {
                        origin: raw.origin,
                        reason: format!("{other:?} is not one of auto, on, off"),
                    });
                }
            },
        };

        let campuses = match l.env("FT42_CAMPUSES").or_else(|| {
            let list = l
                .file
                .campuses
                .as_ref()
                .map(|ids| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","));
            l.file("campuses", list)
        }) {
            Some(raw) => parse_campuses(&raw)?,
            None => Vec::new(),
        };

        // The metrics file: a path whose folder must exist, or "off".
        let metrics_file = match flag(
            "--metrics-file",
            flags.metrics_file.as_ref().map(|p| path_string(p)),
        )
        .or_else(|| l.env("FT42_METRICS_FILE"))
        .or_else(|| {
            // Relative to the config file, like the applications file.
            let mut raw = file_path_key("metrics_file", &l.file.metrics_file)?;
            if !matches!(raw.value.trim(), "off" | "none" | "-") {
                raw.value = path_string(&l.in_file_dir(&raw.value));
            }
            Some(raw)
        }) {
            None => None,
            Some(raw) => parse_metrics_file(&raw)?,
        };

        Ok(Settings {
            api_url,
            token_url,
            client_id,
            secret,
            secret_next,
            database_url,
            database_url_origin: db.origin,
            rate,
            log_dir,
            log_dir_origin: log.origin,
            log_retention_days,
            export_dir,
            export_retention_days,
            freshness,
            look_back,
            quiet: flags.quiet > 0,
            config_file: layers.file_path.clone(),
            schedule,
            applications_file,
            shared_budget,
            campuses,
            metrics_file,
            backup,
        })
    }

    /// The database URL with any password replaced, for messages and logs.
    pub fn database_url_redacted(&self) -> String {
        self.database_url.redacted().to_owned()
    }
}

/// The metrics file setting: `off` (or `none`, `-`) disables it; otherwise a file path whose
/// folder exists (the file is replaced through a temporary file in that folder).
fn parse_metrics_file(raw: &Raw) -> Result<Option<PathBuf>, ConfigError> {
    let value = raw.value.trim();
    if matches!(value, "off" | "none" | "-") {
        return Ok(None);
    }
    let path = PathBuf::from(value);
    if value.ends_with('/') || path.is_dir() {
        return Err(ConfigError::Invalid {
            origin: raw.origin.clone(),
            reason: format!(
                "{value:?} is a folder; give a file path such as {}",
                path.join("ft42.prom").display()
            ),
        });
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(ConfigError::Invalid {
            origin: raw.origin.clone(),
            reason: format!(
                "the folder {} of the metrics file does not exist; create it or choose another path",
                parent.display()
            ),
        });
    }
    Ok(Some(path))
}

/// A comma-separated list of campus ids: positive whole numbers, sorted and deduplicated.
fn parse_campuses(raw: &Raw) -> Result<Vec<i64>, ConfigError> {
    let mut ids = Vec::new();
    for part in raw
        .value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        match part.parse::<i64>() {
            Ok(id) if id > 0 => ids.push(id),
            _ => {
                return Err(ConfigError::Invalid {
                    origin: raw.origin.clone(),
                    reason: format!(
                        "{part:?} is not a campus id (a positive whole number; give a list like 1,12,21, or leave it unset for every campus)"
                    ),
                });
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

#[cfg(test)]
mod tests;
