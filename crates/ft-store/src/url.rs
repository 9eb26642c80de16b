//! [`DatabaseUrl`]: a database address parsed once — backend, SQLite path, redacted form.
//!
//! The address may hold a PostgreSQL password, so the type never shows it: `Display` and `Debug`
//! print the redacted form (`postgres://user:***@host/db`), and only
//! [`DatabaseUrl::expose_secret`] returns the string to connect with.
//!
//! TLS to PostgreSQL needs the `pg-tls` feature (libpq built with OpenSSL). Without it, an
//! address that asks for TLS (`sslmode=require`, `verify-ca`, `verify-full`, or one of libpq's
//! other spellings) is refused here, with the fix, instead of failing later at connect time.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::StoreError;
use crate::store::Backend;

/// Whether this build can talk TLS to PostgreSQL (the `pg-tls` feature: libpq with OpenSSL).
pub const PG_TLS: bool = cfg!(feature = "pg-tls");

/// What to do about a TLS request this build cannot serve; shared by the up-front check and
/// the hint added to libpq's own "not compiled in" error (`PGSSLMODE` and the like).
pub(crate) const NO_TLS_FIX: &str = "this ft42 was built without TLS for PostgreSQL; rebuild it \
     with `--features pg-tls` (cargo install --path crates/ft-cli --features pg-tls), or use \
     sslmode=disable or sslmode=prefer on a trusted network";

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
            if let Some(reason) = tls_refusal(&parsed, PG_TLS) {
                return Err(bad(&reason));
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

/// Why a PostgreSQL URL cannot be used by a build with (`tls_built_in`) or without TLS, if it
/// cannot: it asks for TLS and the build has none. Follows libpq's reading of the query: the
/// last value of a parameter counts, `ssl=true` and `requiressl=1` mean `sslmode=require`, and
/// `sslrootcert=system`, `sslnegotiation=direct` and `sslcertmode=require` need TLS too.
/// `sslmode=prefer` and `allow` (and no sslmode, which is `prefer`) connect in plain text.
fn tls_refusal(url: &url::Url, tls_built_in: bool) -> Option<String> {
    if tls_built_in {
        return None;
    }
    // Parameter -> (value, as the user wrote it).
    let mut params: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (key, value) in url.query_pairs() {
        let written = format!("{key}={value}");
        let (key, value) = match (&*key, &*value) {
            ("ssl", "true") => ("sslmode", "require"),
            ("requiressl", v) if v.starts_with('1') => ("sslmode", "require"),
            ("requiressl", _) => ("sslmode", "prefer"),
            (k, v) => (k, v),
        };
        params.insert(key.to_owned(), (value.to_owned(), written));
    }
    let asks = |key: &str, values: &[&str]| {
        params
            .get(key)
            .filter(|(value, _)| values.contains(&value.as_str()))
            .map(|(_, written)| written.clone())
    };
    let written = asks("sslmode", &["require", "verify-ca", "verify-full"])
        .or_else(|| asks("sslrootcert", &["system"]))
        .or_else(|| asks("sslnegotiation", &["direct"]))
        .or_else(|| asks("sslcertmode", &["require"]))?;
    Some(format!("it asks for TLS ({written}), but {NO_TLS_FIX}"))
}

/// The URL with any password replaced by `***`: the user info's, and libpq's `password` and
/// `sslpassword` query parameters. Non-URL strings (paths) come back unchanged.
pub fn redact_url(url: &str) -> String {
    redact_query(&redact_userinfo(url))
}

/// Replaces the values of the `password` and `sslpassword` query parameters with `***`.
fn redact_query(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key == "password" || key == "sslpassword" => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    let mut out = format!("{base}?{}", pairs.join("&"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

fn redact_userinfo(url: &str) -> String {
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
    fn passwords_in_the_query_are_redacted_too() {
        assert_eq!(
            redact_url("postgres://u:pw@h/db?sslmode=require&password=s3cret&sslpassword=k3y#x"),
            "postgres://u:***@h/db?sslmode=require&password=***&sslpassword=***#x"
        );
        assert_eq!(
            redact_url("postgres://u@h/db?password=s3cret"),
            "postgres://u@h/db?password=***"
        );
        assert_eq!(
            redact_url("sqlite://a.db?mode=rwc"),
            "sqlite://a.db?mode=rwc"
        );
    }

    #[test]
    fn backends_and_paths() {
        let pg = DatabaseUrl::parse("postgres://u@h/db").unwrap();
        assert_eq!(pg.backend(), Backend::Postgres);
        assert_eq!(pg.sqlite_path(), None);
        let pg = DatabaseUrl::parse("postgresql://u@h:5433/db?sslmode=prefer").unwrap();
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
    fn a_build_without_tls_refuses_urls_that_ask_for_it() {
        let refusal = |url: &str, tls: bool| tls_refusal(&url::Url::parse(url).unwrap(), tls);
        for (url, written) in [
            ("postgres://u@h/db?sslmode=require", "sslmode=require"),
            ("postgres://u@h/db?sslmode=verify-ca", "sslmode=verify-ca"),
            (
                "postgres://u@h/db?sslmode=verify-full",
                "sslmode=verify-full",
            ),
            // libpq's other spellings, and the last value wins.
            ("postgres://u@h/db?ssl=true", "ssl=true"),
            ("postgres://u@h/db?requiressl=1", "requiressl=1"),
            (
                "postgres://u@h/db?sslmode=disable&sslmode=require",
                "sslmode=require",
            ),
            (
                "postgres://u@h/db?sslmode=verify%2Dfull",
                "sslmode=verify-full",
            ),
            ("postgres://u@h/db?sslrootcert=system", "sslrootcert=system"),
            (
                "postgres://u@h/db?sslnegotiation=direct",
                "sslnegotiation=direct",
            ),
            (
                "postgres://u@h/db?sslcertmode=require",
                "sslcertmode=require",
            ),
        ] {
            let reason = refusal(url, false).unwrap_or_else(|| panic!("{url} was accepted"));
            assert!(reason.contains(&format!("({written})")), "{url}: {reason}");
            assert!(reason.contains("built without TLS"), "{reason}");
            assert!(reason.contains("--features pg-tls"), "{reason}");
            assert!(
                reason.contains("sslmode=disable or sslmode=prefer"),
                "{reason}"
            );
            // A build with TLS takes them all.
            assert_eq!(refusal(url, true), None, "{url}");
        }
        for url in [
            "postgres://u@h/db",
            "postgres://u@h/db?sslmode=prefer",
            "postgres://u@h/db?sslmode=allow",
            "postgres://u@h/db?sslmode=disable",
            "postgres://u@h/db?sslmode=require&sslmode=prefer",
            "postgres://u@h/db?requiressl=0",
            "postgres://u@h/db?ssl=false",
            "postgres://u@h/db?sslrootcert=/etc/ca.pem",
            "postgres://u@h/db?application_name=require",
        ] {
            assert_eq!(refusal(url, false), None, "{url}");
        }
    }

    #[test]
    fn the_tls_check_follows_the_build_and_hides_the_password() {
        let url = "postgres://alice:hunter2@db.example/ft42?sslmode=verify-full";
        let parsed = DatabaseUrl::parse(url);
        if PG_TLS {
            assert_eq!(parsed.unwrap().backend(), Backend::Postgres);
        } else {
            let err = parsed.unwrap_err();
            assert!(matches!(err, StoreError::BadUrl { .. }), "{err}");
            let message = err.to_string();
            assert!(!message.contains("hunter2"), "{message}");
            assert!(message.contains("alice:***@db.example"), "{message}");
            assert!(message.contains("built without TLS"), "{message}");
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
