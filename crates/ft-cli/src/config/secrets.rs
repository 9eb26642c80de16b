//! The client secret: where it comes from (inline or a file, environment over config file) and
//! reading it when a command needs it. Secrets stay in [`SecretString`].

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::Settings;
use super::error::{ConfigError, Origin};
use super::layers::{Layers, Raw, path_string};

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

/// Where the client secret comes from, before it is read.
#[derive(Clone)]
pub(super) enum SecretSource {
    Inline(SecretString),
    File { path: PathBuf, origin: Origin },
}

impl Settings {
    /// Reads the credentials: the client id, the secret (from the environment, the config file
    /// or the secret file) and the optional next secret (the same places).
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
        let client_secret_next = match &self.secret_next {
            None => None,
            Some(SecretSource::Inline(secret)) => Some(secret.clone()),
            Some(SecretSource::File { path, origin }) => Some(read_secret_file(path, origin)?),
        };
        Ok(Credentials {
            client_id,
            client_secret,
            client_secret_next,
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

    /// Whether a next secret is configured inline (not from a file).
    pub fn next_secret_inline(&self) -> bool {
        matches!(self.secret_next, Some(SecretSource::Inline(_)))
    }
}

/// The four names one secret can be given under: inline or as a file, in the environment or
/// in the config file.
pub(super) struct SecretNames {
    pub(super) env: &'static str,
    pub(super) env_file: &'static str,
    pub(super) key: &'static str,
    pub(super) key_file: &'static str,
}

/// The current secret: `FT42_CLIENT_SECRET[_FILE]`, `client_secret[_file]`.
pub(super) const CURRENT: SecretNames = SecretNames {
    env: "FT42_CLIENT_SECRET",
    env_file: "FT42_CLIENT_SECRET_FILE",
    key: "client_secret",
    key_file: "client_secret_file",
};

/// The next secret (rotation): `FT42_CLIENT_SECRET_NEXT[_FILE]`, `client_secret_next[_file]`.
pub(super) const NEXT: SecretNames = SecretNames {
    env: "FT42_CLIENT_SECRET_NEXT",
    env_file: "FT42_CLIENT_SECRET_NEXT_FILE",
    key: "client_secret_next",
    key_file: "client_secret_next_file",
};

pub(super) fn resolve_secret<E: Fn(&str) -> Option<String>>(
    l: &Layers<E>,
    names: &SecretNames,
    (file_secret, file_file): (Option<String>, Option<&Path>),
) -> Result<Option<SecretSource>, ConfigError> {
    let inline = |raw: Raw| SecretSource::Inline(SecretString::from(raw.value.trim().to_owned()));
    let file = |raw: Raw| SecretSource::File {
        path: PathBuf::from(raw.value),
        origin: raw.origin,
    };
    // The environment layer wins over the file layer; within one layer both forms are an error.
    let env_secret = l.env(names.env);
    let env_file = l.env(names.env_file);
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
    let file_secret = l.file(names.key, file_secret);
    let file_file = l.file(names.key_file, file_file.map(path_string));
    match (file_secret, file_file) {
        (Some(s), Some(f)) => Err(ConfigError::AmbiguousSecret {
            secret: s.origin,
            file: f.origin,
        }),
        (Some(s), None) => Ok(Some(inline(s))),
        (None, Some(mut f)) => {
            // A relative secret file in the config file is relative to the config file.
            f.value = path_string(&l.in_file_dir(&f.value));
            Ok(Some(file(f)))
        }
        (None, None) => Ok(None),
    }
}

pub(super) fn read_secret_file(path: &Path, origin: &Origin) -> Result<SecretString, ConfigError> {
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
