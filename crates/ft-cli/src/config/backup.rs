//! Backup settings (`FT42_BACKUP_*`): folder, keys, rotation.

use std::path::PathBuf;

use super::error::{ConfigError, Origin};
use super::layers::{Layers, path_string};
use super::{DEFAULT_BACKUP_DIR, DEFAULT_BACKUP_KEEP_DAILY, DEFAULT_BACKUP_KEEP_WEEKLY};

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

pub(super) fn resolve_backup<E: Fn(&str) -> Option<String>>(
    l: &Layers<E>,
) -> Result<BackupSettings, ConfigError> {
    let file_path_key =
        |key: &'static str, v: &Option<PathBuf>| l.file(key, v.as_ref().map(|p| path_string(p)));
    // Key files named in the config file are relative to it, like client_secret_file.
    let key_file = |env: &'static str, key: &'static str, v: &Option<PathBuf>| {
        l.env(env)
            .map(|raw| PathBuf::from(raw.value))
            .or_else(|| file_path_key(key, v).map(|raw| l.in_file_dir(&raw.value)))
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
                (false, Origin::File { .. }) => path_string(&l.in_file_dir(value)),
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
