//! Exit codes: one per failure class, so scripts and service managers can react without parsing
//! messages.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | other failure (a bug, an unexpected I/O error) |
//! | 2 | usage or configuration error (bad flag, bad setting, unreadable config file) |
//! | 3 | authentication (missing or rejected client secret, secret expiring within 7 days) |
//! | 4 | API unavailable (network error, 5xx, budget exhausted for too long) |
//! | 5 | database (unreachable, migration failed, query failed) |
//! | 6 | integrity findings (the checks ran and found problems) |
//!
//! Code 2 is also what clap uses for usage errors, so a bad flag and a bad setting agree.
//! Errors are classified by walking their source chain for a known error type
//! ([`classify`]); commands can also attach a class explicitly with [`Classified`].

use std::fmt;

/// A documented process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Exit {
    /// 0: the command did what it was asked.
    Ok,
    /// 1: anything not covered below (a bug, an unexpected I/O error).
    Other,
    /// 2: a bad flag, a bad setting or an unreadable config file.
    Usage,
    /// 3: the client secret is missing, rejected, or expires within 7 days.
    Auth,
    /// 4: the API could not be reached or kept failing.
    ApiUnavailable,
    /// 5: the database could not be reached, migrated or queried.
    Database,
    /// 6: the integrity checks ran and reported findings.
    IntegrityFindings,
}

impl Exit {
    /// The numeric process exit status.
    pub fn code(self) -> i32 {
        match self {
            Exit::Ok => 0,
            Exit::Other => 1,
            Exit::Usage => 2,
            Exit::Auth => 3,
            Exit::ApiUnavailable => 4,
            Exit::Database => 5,
            Exit::IntegrityFindings => 6,
        }
    }

    /// A short label for logs and the error line.
    pub fn label(self) -> &'static str {
        match self {
            Exit::Ok => "ok",
            Exit::Other => "error",
            Exit::Usage => "configuration error",
            Exit::Auth => "authentication error",
            Exit::ApiUnavailable => "API unavailable",
            Exit::Database => "database error",
            Exit::IntegrityFindings => "integrity findings",
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        // Every code is below 256 by construction.
        std::process::ExitCode::from(exit.code() as u8)
    }
}

/// An error with an explicit exit class, for failures that have no typed error of their own
/// (for example "the secret expires in 3 days").
#[derive(Debug)]
pub struct Classified {
    /// The exit class to report.
    pub exit: Exit,
    /// The one-line message (lowercase fragment, no trailing period, no secret).
    pub message: String,
}

impl Classified {
    /// Builds an `anyhow::Error` carrying `exit`.
    pub fn error(exit: Exit, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Classified {
            exit,
            message: message.into(),
        })
    }
}

impl fmt::Display for Classified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Classified {}

/// Finds the exit class of an error by walking its chain, outermost first, and taking the
/// first error type that knows its class.
pub fn classify(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(exit) = classify_one(cause) {
            return exit;
        }
    }
    Exit::Other
}

fn classify_one(cause: &(dyn std::error::Error + 'static)) -> Option<Exit> {
    if let Some(c) = cause.downcast_ref::<Classified>() {
        return Some(c.exit);
    }
    if let Some(c) = cause.downcast_ref::<crate::config::ConfigError>() {
        return Some(c.exit());
    }
    if let Some(e) = cause.downcast_ref::<ft_sync::SyncError>() {
        return Some(if e.is_auth() {
            Exit::Auth
        } else if e.is_database() {
            Exit::Database
        } else if e.is_api_unavailable() {
            Exit::ApiUnavailable
        } else {
            Exit::Other
        });
    }
    if let Some(e) = cause.downcast_ref::<ft_api::ApiError>() {
        return Some(api_exit(e));
    }
    if let Some(e) = cause.downcast_ref::<ft_store::StoreError>() {
        return Some(match e {
            ft_store::StoreError::BadUrl { .. } => Exit::Usage,
            _ => Exit::Database,
        });
    }
    None
}

/// The class of an API error: a rejected secret is authentication, anything a retry could fix
/// (network, timeouts, 5xx, 429) is unavailability, a bad client setting is configuration.
fn api_exit(e: &ft_api::ApiError) -> Exit {
    if e.is_auth() {
        Exit::Auth
    } else if e.is_retryable() {
        Exit::ApiUnavailable
    } else if matches!(
        e,
        ft_api::ApiError::Config(_) | ft_api::ApiError::Url { .. }
    ) {
        Exit::Usage
    } else {
        Exit::Other
    }
}

/// Renders the one-line message printed on failure: `ft42: <class>: <cause>: <cause>...`.
///
/// Newlines inside causes are folded so the message stays on one line for cron mail and
/// service-manager journals.
pub fn one_line(err: &anyhow::Error) -> String {
    let exit = classify(err);
    // Some errors repeat their source's text in their own message; print each text once.
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        let part = part.split_whitespace().collect::<Vec<_>>().join(" ");
        if part.is_empty() || text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    format!("ft42: {}: {text}", exit.label())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let table = [
            (Exit::Ok, 0),
            (Exit::Other, 1),
            (Exit::Usage, 2),
            (Exit::Auth, 3),
            (Exit::ApiUnavailable, 4),
            (Exit::Database, 5),
            (Exit::IntegrityFindings, 6),
        ];
        for (exit, code) in table {
            assert_eq!(exit.code(), code, "{exit:?}");
        }
    }

    #[test]
    fn classified_survives_context() {
        let err = Classified::error(Exit::Auth, "secret rejected").context("token check failed");
        assert_eq!(classify(&err), Exit::Auth);
        assert_eq!(
            one_line(&err),
            "ft42: authentication error: token check failed: secret rejected"
        );
    }

    #[test]
    fn repeated_causes_are_printed_once() {
        let inner = std::io::Error::other("connection refused");
        let err = anyhow::Error::new(inner)
            .context("transport error: connection refused")
            .context("cannot get a token");
        assert_eq!(
            one_line(&err),
            "ft42: error: cannot get a token: transport error: connection refused"
        );
    }

    #[test]
    fn unknown_errors_are_other() {
        let err = anyhow::anyhow!("boom\nsecond line");
        assert_eq!(classify(&err), Exit::Other);
        assert_eq!(one_line(&err), "ft42: error: boom second line");
    }
}
