//! [`DatabaseUrl`]: a database address parsed once — backend, SQLite path, redacted form.
//!
//! The address may hold a PostgreSQL password, so the type never shows it: `Display` and `Debug`
//! print the redacted form (`postgres://user:***@host/db`), and only
//! [`DatabaseUrl::expose_secret`] returns the string to connect with.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::StoreError;
use crate::store::Backend;

/// A validated database address: `postgres://USER[:PASS]@HOST[:PORT]/DB[?...]` (or
/// `postgresql://`), `sqlite://PATH`, `sqlite:PATH` or a plain file path.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    /// What the user wrote (trimmed), password included.
    raw: String,
    /// `raw` with the password replaced by `***`.
    redacted: String,
    /// The SQLite file, or `None` on PostgreSQL.
    sqlite_path: Option<PathBuf>,
}

impl DatabaseUrl {
    /// Parses and checks an address. Errors say what is accepted and never echo a password.
    pub fn parse(url: &str) -> Result<DatabaseUrl, StoreError> {
        let url = url.trim();
        let redacted = redact_url(url);
        let bad = |reason: &str| StoreError::BadUrl {
            url: redacted.clone(),
            reason: reason.to_owned(),
        };
        if url.is_empty() {
            return Err(bad(
                "it is empty; expected sqlite://PATH, a path or postgres://USER@HOST:PORT/DB",
            ));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // The parser's message never includes the input, so it is safe to show.
            let parsed = url::Url::parse(url).map_err(|e| {
                bad(&format!(
                    "not a valid PostgreSQL URL ({e}); expected postgres://USER@HOST:PORT/DB"
                ))
            })?;
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(bad(
                    "the PostgreSQL URL has no host; expected postgres://USER@HOST:PORT/DB",
                ));
            }
            return Ok(DatabaseUrl {
                raw: url.to_owned(),
                redacted,
                sqlite_path: None,
            });
        }
        let path = if let Some(rest) = url.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            rest
        } else if let Some((scheme, _)) = url.split_once("://") {
            return Err(bad(&format!(
                "unsupported scheme {scheme:?}; use sqlite://PATH, a plain path, or postgres://..."
            )));
        } else {
            url
        };
        if path.is_empty() {
            return Err(bad("sqlite:// needs a file path, as in sqlite://ft42.db"));
        }
        if path.contains("host=") || path.contains("dbname=") {
            return Err(bad(
                "this looks like a libpq keyword string; write it as postgres://USER@HOST:PORT/DB",
            ));
        }
        if path == ":memory:" || path.contains("mode=memory") {
            return Err(bad(
                "in-memory SQLite is not supported: each pooled connection would get its own empty database; use a file",
            ));
        }
        Ok(DatabaseUrl {
            raw: url.to_owned(),
            redacted,
            sqlite_path: Some(PathBuf::from(path)),
        })
    }

    /// SQLite or PostgreSQL.
    pub fn backend(&self) -> Backend {
        match self.sqlite_path {
            Some(_) => Backend::Sqlite,
            None => Backend::Postgres,
        }
    }

    /// The SQLite file (as written, relative to the working directory), or `None` on PostgreSQL.
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.sqlite_path.as_deref()
    }

    /// The address with its password replaced by `***`, for messages, logs and manifests.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The address as written, password included: only for connecting (or handing to
    /// `pg_dump` after taking the password out).
    pub fn expose_secret(&self) -> &str {
        &self.raw
    }

    /// The PostgreSQL password, if the address carries one (raw, percent-encoded as written).
    pub(crate) fn password(&self) -> Option<String> {
        let parsed = url::Url::parse(&self.raw).ok()?;
        parsed.password().map(str::to_owned)
    }
}

impl FromStr for DatabaseUrl {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatabaseUrl::parse(s)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.redacted)
    }
}

/// The URL with any password replaced by `***`. Non-URL strings (paths) come back unchanged.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // set_password only fails for URLs that cannot have one, which is excluded above.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        // Unparsable (say `postgres://user:pass@` without a host): hide whatever sits between
        // the user name and the last `@`, so an error about a broken URL never shows a password.
        Err(_) => match url.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                    None => url.to_owned(),
                },
                None => url.to_owned(),
            },
            None => url.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_and_paths() {
        let pg = DatabaseUrl::parse("postgres://u@h/db").unwrap();
        assert_eq!(pg.backend(), Backend::Postgres);
        assert_eq!(pg.sqlite_path(), None);
        let pg = DatabaseUrl::parse("postgresql://u@h:5433/db?sslmode=require").unwrap();
        assert_eq!(pg.backend(), Backend::Postgres);
        for (url, path) in [
            ("sqlite:///tmp/a.db", "/tmp/a.db"),
            ("sqlite://a.db", "a.db"),
            ("sqlite:data/a.db", "data/a.db"),
            ("data/a.db", "data/a.db"),
            (" a.db ", "a.db"),
        ] {
            let parsed = DatabaseUrl::parse(url).unwrap();
            assert_eq!(parsed.backend(), Backend::Sqlite, "{url}");
            assert_eq!(parsed.sqlite_path(), Some(Path::new(path)), "{url}");
        }
    }

    #[test]
    fn bad_addresses_say_what_is_accepted() {
        for (url, expect) in [
            ("", "it is empty"),
            ("sqlite://", "needs a file path"),
            ("postgres://", "no host"),
            ("mysql://u@h/db", "unsupported scheme \"mysql\""),
            ("host=127.0.0.1 port=1 dbname=x", "libpq keyword string"),
            ("sqlite://:memory:", "in-memory"),
        ] {
            let err = DatabaseUrl::parse(url).unwrap_err().to_string();
            assert!(err.contains(expect), "{url}: {err}");
        }
    }

    #[test]
    fn the_password_only_comes_out_through_expose_secret() {
        let url = DatabaseUrl::parse("postgres://alice:hunter2@db.example:5432/ft42").unwrap();
        assert_eq!(url.to_string(), "postgres://alice:***@db.example:5432/ft42");
        assert_eq!(url.redacted(), "postgres://alice:***@db.example:5432/ft42");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert!(url.expose_secret().contains("hunter2"));
        assert_eq!(url.password().as_deref(), Some("hunter2"));
        // Errors about a URL with a password do not show it either.
        let err = DatabaseUrl::parse("mysql://bob:hunter2@h/db")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        // "postgres://user:pass@" fails (no host) without echoing the password.
        let err = DatabaseUrl::parse("postgres://user:hunter2@")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
