//! [`Origin`] (where a setting came from) and [`ConfigError`] (what is wrong with it).

use std::fmt;
use std::path::PathBuf;

use crate::exit::Exit;

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
    /// The applications file (`FT42_APPLICATIONS_FILE`) cannot be read or is malformed.
    #[error("bad applications file {} (from {origin}): {reason}", path.display())]
    ApplicationsFile {
        /// The file.
        path: PathBuf,
        /// Where the file name came from.
        origin: Origin,
        /// What is wrong, and what would be accepted.
        reason: String,
    },
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
