//! Precedence: a flag, then an `FT42_*` environment variable, then a config file key. Each
//! lookup returns the winning raw value with its [`Origin`], so errors can name the setting.

use std::path::{Path, PathBuf};

use super::error::{ConfigError, Origin};
use super::file::FileConfig;

/// One layer's raw value and its origin.
pub(super) struct Raw {
    pub(super) value: String,
    pub(super) origin: Origin,
}

/// The three layers below flags, with lookups that return the winning raw value.
pub(super) struct Layers<E> {
    pub(super) env: E,
    pub(super) file: FileConfig,
    pub(super) file_path: Option<PathBuf>,
}

impl<E: Fn(&str) -> Option<String>> Layers<E> {
    /// A path named in the config file, relative to the config file's folder (an absolute
    /// path stays as it is).
    pub(super) fn in_file_dir(&self, value: &str) -> PathBuf {
        match self.file_path.as_deref().and_then(Path::parent) {
            Some(dir) => dir.join(value),
            None => PathBuf::from(value),
        }
    }

    /// An environment variable, treating an empty value as unset.
    pub(super) fn env(&self, var: &'static str) -> Option<Raw> {
        (self.env)(var)
            .filter(|v| !v.trim().is_empty())
            .map(|value| Raw {
                value,
                origin: Origin::Env(var),
            })
    }

    pub(super) fn file(&self, key: &'static str, value: Option<String>) -> Option<Raw> {
        value.map(|value| Raw {
            value,
            origin: Origin::File {
                key,
                path: self.file_path.clone().unwrap_or_default(),
            },
        })
    }
}

pub(super) fn flag(flag: &'static str, value: Option<String>) -> Option<Raw> {
    value.map(|value| Raw {
        value,
        origin: Origin::Flag(flag),
    })
}

pub(super) fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

pub(super) fn parse_positive(raw: Option<Raw>, default: u64) -> Result<u64, ConfigError> {
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
pub(super) fn parse_count(raw: Option<Raw>, default: u64) -> Result<u64, ConfigError> {
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

pub(super) fn to_u32(n: u64, name: &'static str) -> Result<u32, ConfigError> {
    u32::try_from(n).map_err(|_| ConfigError::Invalid {
        origin: Origin::Env(name),
        reason: format!("{n} is too large"),
    })
}
