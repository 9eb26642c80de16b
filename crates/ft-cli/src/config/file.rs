//! The TOML config file (`--config`, `FT42_CONFIG`): its keys and how it is read.

use std::path::PathBuf;

use serde::Deserialize;

use super::error::{ConfigError, Origin};
use crate::cli::GlobalArgs;
use crate::schedule::ScheduleFile;

/// The keys accepted in the config file; unknown keys are errors so typos do not go unnoticed.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) api_url: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<String>,
    pub(super) client_secret_file: Option<PathBuf>,
    pub(super) client_secret_next: Option<String>,
    pub(super) client_secret_next_file: Option<PathBuf>,
    pub(super) database_url: Option<String>,
    pub(super) rate_per_second: Option<u32>,
    pub(super) rate_per_hour: Option<u32>,
    pub(super) rate_hour_s: Option<u64>,
    pub(super) log_dir: Option<PathBuf>,
    pub(super) log_retention_days: Option<u32>,
    pub(super) export_dir: Option<PathBuf>,
    pub(super) export_retention_days: Option<u32>,
    pub(super) freshness: Option<std::collections::BTreeMap<String, String>>,
    pub(super) look_back: Option<std::collections::BTreeMap<String, String>>,
    pub(super) schedule: Option<ScheduleFile>,
    pub(super) applications_file: Option<PathBuf>,
    pub(super) shared_budget: Option<String>,
    pub(super) campuses: Option<Vec<i64>>,
    pub(super) metrics_file: Option<PathBuf>,
    pub(super) backup_dir: Option<PathBuf>,
    pub(super) backup_recipient: Option<String>,
    pub(super) backup_passphrase_file: Option<PathBuf>,
    pub(super) backup_identity_file: Option<PathBuf>,
    pub(super) backup_keep_daily: Option<u32>,
    pub(super) backup_keep_weekly: Option<u32>,
    pub(super) backup_include_archive: Option<bool>,
}

pub(super) fn load_file(
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
pub(super) fn toml_message(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().trim_end_matches('.').to_owned();
    match err.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}
