//! More 42 applications (`FT42_APPLICATIONS_FILE`) and the shared budget setting
//! (`FT42_SHARED_BUDGET`).

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

use super::Settings;
use super::error::{ConfigError, Origin};
use super::file::toml_message;
use super::secrets::read_secret_file;

/// One more 42 application from the applications file, read when a command needs it.
#[derive(Clone)]
pub struct ExtraApplication {
    /// The application's UID.
    pub client_id: String,
    /// Its current secret.
    pub client_secret: SecretString,
    /// Its next secret (rotation), if configured.
    pub client_secret_next: Option<SecretString>,
}

impl fmt::Debug for ExtraApplication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtraApplication")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// The applications file: `[[application]]` tables with a client id and secret *files* (an
/// inline secret is refused, so the file itself holds no secret).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplicationsFile {
    #[serde(default)]
    application: Vec<ApplicationEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplicationEntry {
    client_id: String,
    secret_file: PathBuf,
    next_secret_file: Option<PathBuf>,
}

/// Which budget shared through the database requests reserve (`FT42_SHARED_BUDGET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedBudgetMode {
    /// The rate ledger on PostgreSQL (any number of workers); the request log on SQLite (one
    /// process at a time, but a restarted process starts from the last hour's real spend).
    Auto,
    /// The rate ledger on either backend.
    On,
    /// Nothing: this process paces alone and knows nothing of the hour before it started (only
    /// safe when it is the only one, and it may meet a window the previous process filled).
    Off,
}

impl Settings {
    /// Reads the applications file (`FT42_APPLICATIONS_FILE` or `applications_file` in the
    /// config file) and the secret files it names; empty when none is configured.
    ///
    /// The file is TOML: one `[[application]]` table per application with `client_id`,
    /// `secret_file` and optionally `next_secret_file` (relative paths are relative to the
    /// applications file). A malformed file is a configuration error (exit 2); an unreadable
    /// secret file an authentication error (exit 3).
    pub fn applications(&self) -> Result<Vec<ExtraApplication>, ConfigError> {
        let Some((path, origin)) = &self.applications_file else {
            return Ok(Vec::new());
        };
        let bad = |reason: String| ConfigError::ApplicationsFile {
            path: path.clone(),
            origin: origin.clone(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let file: ApplicationsFile = toml::from_str(&text).map_err(|e| {
            bad(format!(
                "{}; expected [[application]] tables with client_id and secret_file",
                toml_message(&text, &e)
            ))
        })?;
        if file.application.is_empty() {
            return Err(bad(
                "it lists no application; add [[application]] tables with client_id and secret_file"
                    .into(),
            ));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let secret_origin = Origin::File {
            key: "secret_file",
            path: path.clone(),
        };
        file.application
            .into_iter()
            .enumerate()
            .map(|(i, entry)| {
                let client_id = entry.client_id.trim().to_owned();
                if client_id.is_empty() {
                    return Err(bad(format!("application {} has an empty client_id", i + 1)));
                }
                let client_secret =
                    read_secret_file(&dir.join(&entry.secret_file), &secret_origin)?;
                let client_secret_next = entry
                    .next_secret_file
                    .map(|f| read_secret_file(&dir.join(f), &secret_origin))
                    .transpose()?;
                Ok(ExtraApplication {
                    client_id,
                    client_secret,
                    client_secret_next,
                })
            })
            .collect()
    }
}
