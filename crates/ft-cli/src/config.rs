//! Settings: flags, then `FT42_*` environment variables, then the TOML config file, then
//! defaults (highest first).
//!
//! Everything is validated when loaded, so a malformed URL or a bad number fails before any work
//! starts, with a one-line error naming the setting where the bad value came from. Credentials
//! are the exception: they are only needed by commands that talk to the API, so a missing
//! secret (or an unreadable secret file) is reported by [`Settings::credentials`], when a command
//! asks for them, with exit code 3.
//!
//! Secrets never come from flags, and are held in [`SecretString`] so that Debug output, logs and
//! errors cannot show them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::cli::GlobalArgs;
use crate::exit::Exit;
use crate::schedule::{ScheduleConfig, ScheduleFile};

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

/// Where a setting's value came from; used to name the setting in error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag (`--database-url`).
    Flag(&'static str),
    /// An environment variable (`FT42_DATABASE_URL`).
    Env(&'static str),
    /// A key of the config file.
    File {
        /// The key, for example `database_url`.
        key: &'static str,
        /// The config file.
        path: PathBuf,
    },
    /// The built-in default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "{flag}"),
            Origin::Env(var) => write!(f, "{var}"),
            Origin::File { key, path } => write!(f, "{key} in {}", path.display()),
            Origin::Default => f.write_str("the default"),
        }
    }
}

/// A configuration problem. Each message names the setting to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value could not be parsed or is out of range.
    #[error("invalid {origin}: {reason}")]
    Invalid {
        /// Where the bad value came from.
        origin: Origin,
        /// What is wrong, and what would be accepted.
        reason: String,
    },
    /// The config file could not be read.
    #[error("cannot read config file {} (from {origin}): {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// `--config` or `FT42_CONFIG`.
        origin: Origin,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML, or has an unknown key or a wrongly typed value.
    #[error("bad config file {}: {message}", path.display())]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the line number when known.
        message: String,
    },
    /// Both a secret and a secret file were given at the same level.
    #[error("both {secret} and {file} are set; keep only one")]
    AmbiguousSecret {
        /// Where the inline secret came from.
        secret: Origin,
        /// Where the secret file came from.
        file: Origin,
    },
    /// The client id is needed but not set.
    #[error(
        "no client id: set FT42_CLIENT_ID (or client_id in the config file) to your \
         application's UID"
    )]
    MissingClientId,
    /// The client secret is needed but not set.
    #[error(
        "no client secret: set FT42_CLIENT_SECRET or FT42_CLIENT_SECRET_FILE (or \
         client_secret_file in the config file)"
    )]
    MissingSecret,
    /// The secret file could not be read, or is empty.
    #[error("cannot read the client secret from {} (from {origin}): {reason}", path.display())]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// Where the file name came from.
        origin: Origin,
        /// The I/O error or "the file is empty".
        reason: String,
    },
}

impl ConfigError {
    /// The exit class: credentials problems are authentication (3), the rest configuration (2).
    pub fn exit(&self) -> Exit {
        match self {
            ConfigError::MissingClientId
            | ConfigError::MissingSecret
            | ConfigError::SecretFile { .. } => Exit::Auth,
            _ => Exit::Usage,
        }
    }
}

/// The API credentials, read when a command needs them.
#[derive(Clone)]
pub struct Credentials {
    /// The application's UID.
    pub client_id: String,
    /// The application's current secret.
    pub client_secret: SecretString,
    /// The secret to switch to when the current one is rejected (rotation).
    pub client_secret_next: Option<SecretString>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field(
                "client_secret_next",
                &self.client_secret_next.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

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

/// Where the client secret comes from, before it is read.
#[derive(Clone)]
enum SecretSource {
    Inline(SecretString),
    File { path: PathBuf, origin: Origin },
}

/// How backups are written, encrypted and rotated (`FT42_BACKUP_*`). The key material is only
/// named here; `ft42 backup` and `ft42 restore` read it when they need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    /// Folder of the encrypted backups (`FT42_BACKUP_DIR`).
    pub dir: PathBuf,
    /// age recipients (`FT42_BACKUP_RECIPIENT`): public keys (`age1...`, several separated by
    /// commas) or a file holding one per line. Not secret.
    pub recipient: Option<String>,
    /// A file holding the passphrase to encrypt and decrypt with (`FT42_BACKUP_PASSPHRASE_FILE`).
    pub passphrase_file: Option<PathBuf>,
    /// The age identity file (`AGE-SECRET-KEY-1...`) that decrypts backups made for
    /// [`BackupSettings::recipient`] (`FT42_BACKUP_IDENTITY_FILE`); needed by `restore` and
    /// `backup verify` only, so the backup host can hold the public key alone.
    pub identity_file: Option<PathBuf>,
    /// Daily backups kept (`FT42_BACKUP_KEEP_DAILY`).
    pub keep_daily: u32,
    /// Weekly backups kept (`FT42_BACKUP_KEEP_WEEKLY`).
    pub keep_weekly: u32,
    /// Whether the raw page archive (`FT42_EXPORT_DIR`) goes into each backup
    /// (`FT42_BACKUP_INCLUDE_ARCHIVE`).
    pub include_archive: bool,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            dir: PathBuf::from(DEFAULT_BACKUP_DIR),
            recipient: None,
            passphrase_file: None,
            identity_file: None,
            keep_daily: DEFAULT_BACKUP_KEEP_DAILY,
            keep_weekly: DEFAULT_BACKUP_KEEP_WEEKLY,
            include_archive: false,
        }
    }
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
    secret_next: Option<SecretString>,
    /// The database URL (`FT42_DATABASE_URL`): `sqlite://PATH`, a plain path, or `postgres://`.
    pub database_url: String,
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
    /// Freshness targets per resource (`[freshness]` in the config file): a delta run skips a
    /// scope whose last pass is younger.
    pub freshness: std::collections::BTreeMap<String, Duration>,
    /// The config file in use, if any (absolute when it could be resolved).
    pub config_file: Option<PathBuf>,
    /// The sync schedule used by `cron install` and `daemon`.
    pub schedule: ScheduleConfig,
    /// Backups: folder, keys, rotation.
    pub backup: BackupSettings,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("api_url", &self.api_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("database_url", &redact_url(&self.database_url))
            .field("rate", &self.rate)
            .field("log_dir", &self.log_dir)
            .field("export_dir", &self.export_dir)
            .field("config_file", &self.config_file)
            .field("backup", &self.backup)
            .finish_non_exhaustive()
    }
}

/// The keys accepted in the config file; unknown keys are errors so typos do not go unnoticed.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    api_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_file: Option<PathBuf>,
    client_secret_next: Option<String>,
    database_url: Option<String>,
    rate_per_second: Option<u32>,
    rate_per_hour: Option<u32>,
    rate_hour_s: Option<u64>,
    log_dir: Option<PathBuf>,
    log_retention_days: Option<u32>,
    export_dir: Option<PathBuf>,
    export_retention_days: Option<u32>,
    freshness: Option<std::collections::BTreeMap<String, String>>,
    schedule: Option<ScheduleFile>,
    backup_dir: Option<PathBuf>,
    backup_recipient: Option<String>,
    backup_passphrase_file: Option<PathBuf>,
    backup_identity_file: Option<PathBuf>,
    backup_keep_daily: Option<u32>,
    backup_keep_weekly: Option<u32>,
    backup_include_archive: Option<bool>,
}

/// One layer's raw value and its origin.
struct Raw {
    value: String,
    origin: Origin,
}

/// The three layers below flags, with lookups that return the winning raw value.
struct Layers<E> {
    env: E,
    file: FileConfig,
    file_path: Option<PathBuf>,
}

impl<E: Fn(&str) -> Option<String>> Layers<E> {
    /// An environment variable, treating an empty value as unset.
    fn env(&self, var: &'static str) -> Option<Raw> {
        (self.env)(var)
            .filter(|v| !v.trim().is_empty())
            .map(|value| Raw {
                value,
                origin: Origin::Env(var),
            })
    }

    fn file(&self, key: &'static str, value: Option<String>) -> Option<Raw> {
        value.map(|value| Raw {
            value,
            origin: Origin::File {
                key,
                path: self.file_path.clone().unwrap_or_default(),
            },
        })
    }
}

fn flag(flag: &'static str, value: Option<String>) -> Option<Raw> {
    value.map(|value| Raw {
        value,
        origin: Origin::Flag(flag),
    })
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
        check_database_url(&db)?;

        // Credentials: the id and secrets are resolved now and read later.
        let client_id = l
            .env("FT42_CLIENT_ID")
            .or_else(|| file_key("client_id", &l.file.client_id))
            .map(|raw| raw.value.trim().to_owned());
        let secret = resolve_secret(l)?;
        let secret_next = l
            .env("FT42_CLIENT_SECRET_NEXT")
            .or_else(|| file_key("client_secret_next", &l.file.client_secret_next))
            .map(|raw| SecretString::from(raw.value.trim().to_owned()));

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
        let freshness = parse_freshness(l.file.freshness.as_ref(), l.file_path.as_deref())?;
        let schedule = ScheduleConfig::from_file(l.file.schedule.as_ref(), l.file_path.as_deref())?;
        let backup = resolve_backup(l)?;

        Ok(Settings {
            api_url,
            token_url,
            client_id,
            secret,
            secret_next,
            database_url: db.value,
            database_url_origin: db.origin,
            rate,
            log_dir,
            log_dir_origin: log.origin,
            log_retention_days,
            export_dir,
            export_retention_days,
            freshness,
            config_file: layers.file_path.clone(),
            schedule,
            backup,
        })
    }

    /// Reads the credentials: the client id, the secret (from the environment, the config file
    /// or the secret file) and the optional next secret.
    ///
    /// Errors are authentication-class (exit 3): a missing id or secret, or an unreadable or
    /// empty secret file.
    pub fn credentials(&self) -> Result<Credentials, ConfigError> {
        let client_secret = match &self.secret {
            None => return Err(ConfigError::MissingSecret),
            Some(SecretSource::Inline(secret)) => secret.clone(),
            Some(SecretSource::File { path, origin }) => read_secret_file(path, origin)?,
        };
        let client_id = self
            .client_id
            .clone()
            .filter(|id| !id.is_empty())
            .ok_or(ConfigError::MissingClientId)?;
        Ok(Credentials {
            client_id,
            client_secret,
            client_secret_next: self.secret_next.clone(),
        })
    }

    /// Whether a client secret is configured at all (without reading a secret file).
    pub fn has_secret(&self) -> bool {
        self.secret.is_some()
    }

    /// Whether the secret comes from a file (so a cron job or service can find it without
    /// the current shell's environment).
    pub fn secret_from_file(&self) -> bool {
        matches!(self.secret, Some(SecretSource::File { .. }))
    }

    /// The database URL with any password replaced, for messages and logs.
    pub fn database_url_redacted(&self) -> String {
        redact_url(&self.database_url)
    }
}

/// Replaces the password of a URL-shaped database address with `***`.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            // Setting a password only fails on URLs that cannot have one, which was ruled out.
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => raw.to_owned(),
    }
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn load_file(
    flags: &GlobalArgs,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(FileConfig, Option<PathBuf>), ConfigError> {
    let (path, origin) = match (&flags.config, env("FT42_CONFIG").filter(|v| !v.is_empty())) {
        (Some(path), _) => (path.clone(), Origin::Flag("--config")),
        (None, Some(path)) => (PathBuf::from(path), Origin::Env("FT42_CONFIG")),
        (None, None) => return Ok((FileConfig::default(), None)),
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::ReadFile {
        path: path.clone(),
        origin,
        source,
    })?;
    let file: FileConfig = toml::from_str(&text).map_err(|err| ConfigError::ParseFile {
        path: path.clone(),
        message: toml_message(&text, &err),
    })?;
    let path = std::path::absolute(&path).unwrap_or(path);
    Ok((file, Some(path)))
}

/// Turns a TOML error into "line N: message" on one line.
fn toml_message(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().trim_end_matches('.').to_owned();
    match err.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

fn parse_api_url(raw: Option<Raw>) -> Result<(Url, Url), ConfigError> {
    let raw = raw.unwrap_or(Raw {
        value: DEFAULT_API_URL.to_owned(),
        origin: Origin::Default,
    });
    let invalid = |reason: String| ConfigError::Invalid {
        origin: raw.origin.clone(),
        reason,
    };
    let trimmed = raw.value.trim().trim_end_matches('/');
    let url = Url::parse(trimmed).map_err(|e| {
        invalid(format!(
            "{trimmed:?} is not a URL ({e}); expected https://HOST"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(format!(
            "{trimmed:?} is not an http(s) URL; expected https://HOST"
        )));
    }
    if url.password().is_some() || !url.username().is_empty() {
        return Err(invalid(
            "the API URL must not carry credentials; use FT42_CLIENT_ID and FT42_CLIENT_SECRET"
                .to_owned(),
        ));
    }
    let token_url = Url::parse(&format!("{trimmed}/oauth/token"))
        .map_err(|e| invalid(format!("cannot derive the token URL: {e}")))?;
    Ok((url, token_url))
}

fn check_database_url(raw: &Raw) -> Result<(), ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        origin: raw.origin.clone(),
        reason,
    };
    let value = raw.value.trim();
    if value.is_empty() {
        return Err(invalid(
            "it is empty; expected sqlite://PATH, a path or postgres://...".into(),
        ));
    }
    if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        // The value is not echoed: an unparsable URL may still hold a password.
        let url = Url::parse(value).map_err(|e| {
            invalid(format!(
                "not a valid PostgreSQL URL ({e}); expected postgres://USER@HOST:PORT/DB"
            ))
        })?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid(
                "the PostgreSQL URL has no host; expected postgres://USER@HOST:PORT/DB".into(),
            ));
        }
        return Ok(());
    }
    if let Some(path) = value.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(invalid(
                "sqlite:// needs a file path, as in sqlite://ft42.db".into(),
            ));
        }
        return Ok(());
    }
    if let Some((scheme, _)) = value.split_once("://") {
        return Err(invalid(format!(
            "unsupported scheme {scheme:?}; use sqlite://PATH, a plain path, or postgres://..."
        )));
    }
    Ok(())
}

fn resolve_secret<E: Fn(&str) -> Option<String>>(
    l: &Layers<E>,
) -> Result<Option<SecretSource>, ConfigError> {
    let inline = |raw: Raw| SecretSource::Inline(SecretString::from(raw.value.trim().to_owned()));
    let file = |raw: Raw| SecretSource::File {
        path: PathBuf::from(raw.value),
        origin: raw.origin,
    };
    // The environment layer wins over the file layer; within one layer both forms are an error.
    let env_secret = l.env("FT42_CLIENT_SECRET");
    let env_file = l.env("FT42_CLIENT_SECRET_FILE");
    match (env_secret, env_file) {
        (Some(s), Some(f)) => {
            return Err(ConfigError::AmbiguousSecret {
                secret: s.origin,
                file: f.origin,
            });
        }
        (Some(s), None) => return Ok(Some(inline(s))),
        (None, Some(f)) => return Ok(Some(file(f))),
        (None, None) => {}
    }
    let file_secret = l.file("client_secret", l.file.client_secret.clone());
    let file_file = l.file(
        "client_secret_file",
        l.file.client_secret_file.as_ref().map(|p| path_string(p)),
    );
    match (file_secret, file_file) {
        (Some(s), Some(f)) => Err(ConfigError::AmbiguousSecret {
            secret: s.origin,
            file: f.origin,
        }),
        (Some(s), None) => Ok(Some(inline(s))),
        (None, Some(mut f)) => {
            // A relative secret file in the config file is relative to the config file.
            if let Some(dir) = l.file_path.as_deref().and_then(Path::parent) {
                f.value = path_string(&dir.join(&f.value));
            }
            Ok(Some(file(f)))
        }
        (None, None) => Ok(None),
    }
}

fn resolve_backup<E: Fn(&str) -> Option<String>>(
    l: &Layers<E>,
) -> Result<BackupSettings, ConfigError> {
    let file_path_key =
        |key: &'static str, v: &Option<PathBuf>| l.file(key, v.as_ref().map(|p| path_string(p)));
    // Key files named in the config file are relative to it, like client_secret_file.
    let key_file = |env: &'static str, key: &'static str, v: &Option<PathBuf>| {
        l.env(env).map(|raw| PathBuf::from(raw.value)).or_else(|| {
            file_path_key(key, v).map(|raw| match l.file_path.as_deref().and_then(Path::parent) {
                Some(dir) => dir.join(raw.value),
                None => PathBuf::from(raw.value),
            })
        })
    };
    let dir = l
        .env("FT42_BACKUP_DIR")
        .or_else(|| file_path_key("backup_dir", &l.file.backup_dir))
        .map_or_else(|| PathBuf::from(DEFAULT_BACKUP_DIR), |raw| raw.value.into());
    let recipient = l
        .env("FT42_BACKUP_RECIPIENT")
        .or_else(|| l.file("backup_recipient", l.file.backup_recipient.clone()))
        .map(|raw| {
            let value = raw.value.trim();
            // A recipients file named in the config file is relative to it.
            match (value.starts_with("age1"), &raw.origin) {
                (false, Origin::File { path, .. }) => path
                    .parent()
                    .map_or_else(|| value.to_owned(), |dir| path_string(&dir.join(value))),
                _ => value.to_owned(),
            }
        });
    let passphrase_file = key_file(
        "FT42_BACKUP_PASSPHRASE_FILE",
        "backup_passphrase_file",
        &l.file.backup_passphrase_file,
    );
    let identity_file = key_file(
        "FT42_BACKUP_IDENTITY_FILE",
        "backup_identity_file",
        &l.file.backup_identity_file,
    );
    let file_num = |key: &'static str, v: Option<u32>| l.file(key, v.map(|n| n.to_string()));
    let keep = |env: &'static str, key: &'static str, v: Option<u32>, default: u32| {
        let Some(raw) = l.env(env).or_else(|| file_num(key, v)) else {
            return Ok(default);
        };
        raw.value
            .trim()
            .parse::<u32>()
            .map_err(|_| ConfigError::Invalid {
                origin: raw.origin.clone(),
                reason: format!("{:?} is not a whole number (0 or more)", raw.value),
            })
    };
    let keep_daily = keep(
        "FT42_BACKUP_KEEP_DAILY",
        "backup_keep_daily",
        l.file.backup_keep_daily,
        DEFAULT_BACKUP_KEEP_DAILY,
    )?;
    let keep_weekly = keep(
        "FT42_BACKUP_KEEP_WEEKLY",
        "backup_keep_weekly",
        l.file.backup_keep_weekly,
        DEFAULT_BACKUP_KEEP_WEEKLY,
    )?;
    if keep_daily == 0 && keep_weekly == 0 {
        return Err(ConfigError::Invalid {
            origin: Origin::Env("FT42_BACKUP_KEEP_DAILY"),
            reason: "FT42_BACKUP_KEEP_DAILY and FT42_BACKUP_KEEP_WEEKLY are both 0, so every \
                     backup would be deleted as soon as it is written; keep at least one"
                .into(),
        });
    }
    let include_archive = match l.env("FT42_BACKUP_INCLUDE_ARCHIVE") {
        Some(raw) => match raw.value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => {
                return Err(ConfigError::Invalid {
                    origin: raw.origin,
                    reason: format!("{:?} is not true or false", raw.value),
                });
            }
        },
        None => l.file.backup_include_archive.unwrap_or(false),
    };
    Ok(BackupSettings {
        dir,
        recipient,
        passphrase_file,
        identity_file,
        keep_daily,
        keep_weekly,
        include_archive,
    })
}

fn read_secret_file(path: &Path, origin: &Origin) -> Result<SecretString, ConfigError> {
    let err = |reason: String| ConfigError::SecretFile {
        path: path.to_owned(),
        origin: origin.clone(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(err("the file is empty".into()));
    }
    Ok(SecretString::from(secret.to_owned()))
}

fn parse_positive(raw: Option<Raw>, default: u64) -> Result<u64, ConfigError> {
    let Some(raw) = raw else { return Ok(default) };
    match raw.value.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError::Invalid {
            origin: raw.origin,
            reason: format!("{:?} is not a positive whole number", raw.value),
        }),
    }
}

/// A whole number (zero allowed), or the default when unset.
fn parse_count(raw: Option<Raw>, default: u64) -> Result<u64, ConfigError> {
    match raw {
        None => Ok(default),
        Some(raw) => raw
            .value
            .trim()
            .parse::<u64>()
            .map_err(|_| ConfigError::Invalid {
                origin: raw.origin.clone(),
                reason: format!("{:?} is not a whole number of days", raw.value.trim()),
            }),
    }
}

/// The `[freshness]` table: resource = "duration" (e.g. `achievements_users = "2h"`), on top of
/// the engine's defaults. Unknown resources and bad durations are errors.
fn parse_freshness(
    table: Option<&std::collections::BTreeMap<String, String>>,
    path: Option<&std::path::Path>,
) -> Result<std::collections::BTreeMap<String, Duration>, ConfigError> {
    let mut out = ft_sync::default_freshness();
    let Some(table) = table else {
        return Ok(out);
    };
    let known = ft_sync::resources();
    for (resource, value) in table {
        let origin = Origin::File {
            key: "freshness",
            path: path.map(PathBuf::from).unwrap_or_default(),
        };
        if !known.contains(&resource.as_str()) {
            return Err(ConfigError::Invalid {
                origin,
                reason: format!(
                    "unknown resource {resource:?} in [freshness]; expected one of: {}",
                    known.join(", ")
                ),
            });
        }
        let d = match value.trim() {
            "0" | "always" => Duration::ZERO,
            v => humantime::parse_duration(v).map_err(|e| ConfigError::Invalid {
                origin,
                reason: format!(
                    "[freshness] {resource} = {v:?} is not a duration ({e}); write e.g. \"30m\", \"2h\" or \"0\""
                ),
            })?,
        };
        out.insert(resource.clone(), d);
    }
    Ok(out)
}

fn to_u32(n: u64, name: &'static str) -> Result<u32, ConfigError> {
    u32::try_from(n).map_err(|_| ConfigError::Invalid {
        origin: Origin::Env(name),
        reason: format!("{n} is too large"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn write_config(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("ft42.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = Settings::resolve(&GlobalArgs::default(), env(&[])).unwrap();
        assert_eq!(s.api_url.as_str(), "https://api.intra.42.fr/");
        assert_eq!(s.token_url.as_str(), "https://api.intra.42.fr/oauth/token");
        assert_eq!(s.database_url, "sqlite://ft42.db");
        assert_eq!(s.database_url_origin, Origin::Default);
        assert_eq!(
            s.rate,
            Rate {
                per_second: 2,
                per_hour: 1200,
                hour: Duration::from_secs(3600)
            }
        );
        assert_eq!(s.log_dir, Some(PathBuf::from("logs")));
        assert_eq!(s.export_dir, PathBuf::from("exports"));
        assert!(matches!(s.credentials(), Err(ConfigError::MissingSecret)));
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_config(
            dir.path(),
            "database_url = \"sqlite://file.db\"\napi_url = \"http://file.example\"\n\
             rate_per_hour = 100\nlog_dir = \"file-logs\"\n",
        );
        let flags = GlobalArgs {
            config: Some(cfg.clone()),
            database_url: Some("sqlite://flag.db".into()),
            ..GlobalArgs::default()
        };
        let e = env(&[
            ("FT42_DATABASE_URL", "sqlite://env.db"),
            ("FT42_API_URL", "http://env.example/"),
        ]);
        let s = Settings::resolve(&flags, e).unwrap();
        // Flag over env over file.
        assert_eq!(s.database_url, "sqlite://flag.db");
        assert_eq!(s.database_url_origin, Origin::Flag("--database-url"));
        // Env over file (and the trailing slash does not double in the token URL).
        assert_eq!(s.token_url.as_str(), "http://env.example/oauth/token");
        // File over default.
        assert_eq!(s.rate.per_hour, 100);
        assert_eq!(s.log_dir, Some(PathBuf::from("file-logs")));
        // Default where nobody says anything.
        assert_eq!(s.rate.per_second, 2);
    }

    #[test]
    fn config_file_comes_from_env_when_no_flag() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_config(dir.path(), "database_url = \"sqlite://from-file.db\"\n");
        let s = Settings::resolve(
            &GlobalArgs::default(),
            env(&[("FT42_CONFIG", cfg.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(s.database_url, "sqlite://from-file.db");
        assert!(matches!(
            s.database_url_origin,
            Origin::File {
                key: "database_url",
                ..
            }
        ));
    }

    #[test]
    fn empty_env_values_count_as_unset() {
        let s =
            Settings::resolve(&GlobalArgs::default(), env(&[("FT42_DATABASE_URL", "")])).unwrap();
        assert_eq!(s.database_url, "sqlite://ft42.db");
    }

    #[test]
    fn malformed_api_url_names_the_setting() {
        let err = Settings::resolve(
            &GlobalArgs::default(),
            env(&[("FT42_API_URL", "not a url")]),
        )
        .unwrap_err();
        assert_eq!(err.exit(), Exit::Usage);
        assert!(
            err.to_string().starts_with("invalid FT42_API_URL:"),
            "{err}"
        );

        let flags = GlobalArgs {
            api_url: Some("ftp://x".into()),
            ..GlobalArgs::default()
        };
        let err = Settings::resolve(&flags, env(&[])).unwrap_err();
        assert!(err.to_string().starts_with("invalid --api-url:"), "{err}");
    }

    #[test]
    fn database_urls_are_checked() {
        for ok in [
            "sqlite://a.db",
            "a.db",
            "/tmp/x/a.db",
            "postgres://u@localhost:5432/db",
        ] {
            Settings::resolve(&GlobalArgs::default(), env(&[("FT42_DATABASE_URL", ok)]))
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["mysql://h/db", "sqlite://", "postgres://"] {
            let err = Settings::resolve(&GlobalArgs::default(), env(&[("FT42_DATABASE_URL", bad)]))
                .unwrap_err();
            assert!(
                err.to_string().contains("FT42_DATABASE_URL"),
                "{bad}: {err}"
            );
            assert_eq!(err.exit(), Exit::Usage);
        }
    }

    #[test]
    fn database_password_never_appears_in_errors_or_debug() {
        let url = "postgres://user:hunter2@";
        let err = Settings::resolve(&GlobalArgs::default(), env(&[("FT42_DATABASE_URL", url)]))
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let s = Settings::resolve(
            &GlobalArgs::default(),
            env(&[("FT42_DATABASE_URL", "postgres://user:hunter2@db/x")]),
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.database_url_redacted(), "postgres://user:***@db/x");
    }

    #[test]
    fn bad_numbers_name_the_setting() {
        let err = Settings::resolve(&GlobalArgs::default(), env(&[("FT42_RATE_PER_HOUR", "0")]))
            .unwrap_err();
        assert!(
            err.to_string().starts_with("invalid FT42_RATE_PER_HOUR:"),
            "{err}"
        );
        let err = Settings::resolve(&GlobalArgs::default(), env(&[("FT42_RATE_HOUR_S", "1h")]))
            .unwrap_err();
        assert!(err.to_string().contains("FT42_RATE_HOUR_S"), "{err}");
    }

    #[test]
    fn bad_toml_gives_a_line_number() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_config(
            dir.path(),
            "database_url = \"a.db\"\nrate_per_hour = \"many\"\n",
        );
        let flags = GlobalArgs {
            config: Some(cfg),
            ..GlobalArgs::default()
        };
        let err = Settings::resolve(&flags, env(&[])).unwrap_err();
        assert_eq!(err.exit(), Exit::Usage);
        let msg = err.to_string();
        assert!(
            msg.contains("bad config file") && msg.contains("line 2"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn unknown_config_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_config(dir.path(), "databse_url = \"a.db\"\n");
        let flags = GlobalArgs {
            config: Some(cfg),
            ..GlobalArgs::default()
        };
        let err = Settings::resolve(&flags, env(&[])).unwrap_err();
        assert!(err.to_string().contains("databse_url"), "{err}");
    }

    #[test]
    fn freshness_targets_and_archive_retention_come_from_the_file_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_config(
            dir.path(),
            "export_retention_days = 7\n[freshness]\nachievements_users = \"2h\"\nlocations = \"0\"\n",
        );
        let flags = GlobalArgs {
            config: Some(cfg),
            ..GlobalArgs::default()
        };
        let s = Settings::resolve(&flags, env(&[])).unwrap();
        assert_eq!(s.export_retention_days, 7);
        assert_eq!(s.freshness["achievements_users"], Duration::from_secs(7200));
        assert_eq!(s.freshness["locations"], Duration::ZERO);
        // Defaults not overridden stay.
        assert_eq!(s.freshness["blocs"], Duration::from_secs(3600));
        let s = Settings::resolve(&flags, env(&[("FT42_EXPORT_RETENTION_DAYS", "0")])).unwrap();
        assert_eq!(
            s.export_retention_days, 0,
            "the environment wins over the file"
        );
    }

    #[test]
    fn bad_freshness_entries_name_the_resource_and_what_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        for (text, expect) in [
            (
                "[freshness]\nachievments_users = \"1h\"\n",
                "unknown resource",
            ),
            ("[freshness]\nlocations = \"soon\"\n", "not a duration"),
        ] {
            let cfg = write_config(dir.path(), text);
            let flags = GlobalArgs {
                config: Some(cfg),
                ..GlobalArgs::default()
            };
            let err = Settings::resolve(&flags, env(&[])).unwrap_err();
            assert!(err.to_string().contains(expect), "{err}");
        }
    }

    #[test]
    fn missing_config_file_is_a_usage_error_naming_the_source() {
        let err = Settings::resolve(
            &GlobalArgs::default(),
            env(&[("FT42_CONFIG", "/nonexistent/ft42.toml")]),
        )
        .unwrap_err();
        assert_eq!(err.exit(), Exit::Usage);
        assert!(err.to_string().contains("FT42_CONFIG"), "{err}");
    }

    #[test]
    fn secret_from_env_and_from_file() {
        let s = Settings::resolve(
            &GlobalArgs::default(),
            env(&[("FT42_CLIENT_ID", "u-1"), ("FT42_CLIENT_SECRET", "s-env\n")]),
        )
        .unwrap();
        let c = s.credentials().unwrap();
        assert_eq!(c.client_id, "u-1");
        assert_eq!(c.client_secret.expose_secret(), "s-env");
        assert!(!format!("{c:?} {s:?}").contains("s-env"));

        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, "s-file\n").unwrap();
        let s = Settings::resolve(
            &GlobalArgs::default(),
            env(&[
                ("FT42_CLIENT_ID", "u-1"),
                ("FT42_CLIENT_SECRET_FILE", secret_file.to_str().unwrap()),
                ("FT42_CLIENT_SECRET_NEXT", "s-next"),
            ]),
        )
        .unwrap();
        let c = s.credentials().unwrap();
        assert_eq!(c.client_secret.expose_secret(), "s-file");
        assert_eq!(c.client_secret_next.unwrap().expose_secret(), "s-next");
    }

    #[test]
    fn env_secret_beats_config_file_secret_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "s-file").unwrap();
        // A relative secret file in the config file resolves next to the config file.
        let cfg = write_config(
            dir.path(),
            "client_id = \"u-f\"\nclient_secret_file = \"secret\"\n",
        );
        let flags = GlobalArgs {
            config: Some(cfg),
            ..GlobalArgs::default()
        };
        let s = Settings::resolve(&flags, env(&[])).unwrap();
        assert_eq!(
            s.credentials().unwrap().client_secret.expose_secret(),
            "s-file"
        );
        let s = Settings::resolve(&flags, env(&[("FT42_CLIENT_SECRET", "s-env")])).unwrap();
        assert_eq!(
            s.credentials().unwrap().client_secret.expose_secret(),
            "s-env"
        );
    }

    #[test]
    fn credential_problems_are_auth_errors() {
        let s = Settings::resolve(
            &GlobalArgs::default(),
            env(&[
                ("FT42_CLIENT_ID", "u"),
                ("FT42_CLIENT_SECRET_FILE", "/nonexistent/s"),
            ]),
        )
        .unwrap();
        let err = s.credentials().unwrap_err();
        assert_eq!(err.exit(), Exit::Auth);
        assert!(err.to_string().contains("FT42_CLIENT_SECRET_FILE"), "{err}");

        let s =
            Settings::resolve(&GlobalArgs::default(), env(&[("FT42_CLIENT_SECRET", "s")])).unwrap();
        let err = s.credentials().unwrap_err();
        assert!(matches!(err, ConfigError::MissingClientId));
        assert_eq!(err.exit(), Exit::Auth);
    }

    #[test]
    fn secret_and_secret_file_together_are_ambiguous() {
        let err = Settings::resolve(
            &GlobalArgs::default(),
            env(&[
                ("FT42_CLIENT_SECRET", "s"),
                ("FT42_CLIENT_SECRET_FILE", "/x"),
            ]),
        )
        .unwrap_err();
        assert_eq!(err.exit(), Exit::Usage);
        assert!(!err.to_string().contains("\"s\""));
    }

    #[test]
    fn backup_settings_follow_env_then_file_then_defaults() {
        let s = Settings::resolve(&GlobalArgs::default(), env(&[])).unwrap();
        assert_eq!(s.backup, BackupSettings::default());
        assert_eq!((s.backup.keep_daily, s.backup.keep_weekly), (7, 4));

        let dir = tempfile::tempdir().unwrap();
        let cfg = write_config(
            dir.path(),
            "backup_dir = \"/srv/backups\"\nbackup_keep_daily = 3\nbackup_keep_weekly = 2\n\
             backup_passphrase_file = \"pass.txt\"\nbackup_include_archive = true\n\
             backup_recipient = \"recipients.txt\"\n",
        );
        let flags = GlobalArgs {
            config: Some(cfg),
            ..GlobalArgs::default()
        };
        let s = Settings::resolve(&flags, env(&[("FT42_BACKUP_KEEP_DAILY", "5")])).unwrap();
        assert_eq!(s.backup.dir, PathBuf::from("/srv/backups"));
        assert_eq!((s.backup.keep_daily, s.backup.keep_weekly), (5, 2));
        assert!(s.backup.include_archive);
        // Key files named in the config file are relative to it.
        assert_eq!(
            s.backup.passphrase_file.as_deref(),
            Some(dir.path().join("pass.txt").as_path())
        );
        assert_eq!(
            s.backup.recipient.as_deref(),
            Some(dir.path().join("recipients.txt").to_str().unwrap())
        );
        let s = Settings::resolve(
            &flags,
            env(&[
                ("FT42_BACKUP_RECIPIENT", "age1abc"),
                ("FT42_BACKUP_INCLUDE_ARCHIVE", "no"),
            ]),
        )
        .unwrap();
        assert_eq!(s.backup.recipient.as_deref(), Some("age1abc"));
        assert!(!s.backup.include_archive);
    }

    #[test]
    fn bad_backup_settings_name_the_setting() {
        for (var, value) in [
            ("FT42_BACKUP_KEEP_WEEKLY", "-1"),
            ("FT42_BACKUP_INCLUDE_ARCHIVE", "maybe"),
        ] {
            let err = Settings::resolve(&GlobalArgs::default(), env(&[(var, value)])).unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
            assert_eq!(err.exit(), Exit::Usage);
        }
        let err = Settings::resolve(
            &GlobalArgs::default(),
            env(&[
                ("FT42_BACKUP_KEEP_DAILY", "0"),
                ("FT42_BACKUP_KEEP_WEEKLY", "0"),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("both 0"), "{err}");
    }

    #[test]
    fn log_dir_off_disables_files() {
        let s = Settings::resolve(&GlobalArgs::default(), env(&[("FT42_LOG_DIR", "off")])).unwrap();
        assert_eq!(s.log_dir, None);
    }
}
