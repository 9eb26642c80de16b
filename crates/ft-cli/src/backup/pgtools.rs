//! `pg_dump` and `pg_restore`: finding a recent enough one, and running it without putting the
//! database password on its command line (it goes in `PGPASSWORD`, which `ps` does not show)
//! or in any message.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::exit::{Classified, Exit};

/// A PostgreSQL client tool and its version.
#[derive(Debug, Clone)]
pub struct PgTool {
    /// The binary.
    pub path: PathBuf,
    /// Major version (15 for 15.4).
    pub major: u32,
    /// The `--version` line, for the manifest.
    pub version: String,
}

/// The major version in a `--version` line such as `pg_dump (PostgreSQL) 15.4 (Debian 15.4-1)`.
pub fn parse_major(line: &str) -> Option<u32> {
    let after = line.split(')').nth(1).unwrap_or(line);
    let word = after.split_whitespace().next()?;
    let digits: String = word.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The major version of `server_version_num` (150018 → 15; 90624 → 9).
pub fn server_major(num: u32) -> u32 {
    num / 10_000
}

fn candidates(tool: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(tool))
        .filter(|p| p.is_file())
        .collect();
    if let Some(path) = std::env::var_os("PATH") {
        found.extend(
            std::env::split_paths(&path)
                .map(|dir| dir.join(tool))
                .filter(|p| p.is_file()),
        );
    }
    found
}

fn version_of(path: &Path) -> Option<PgTool> {
    let out = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Some(PgTool {
        path: path.to_owned(),
        major: parse_major(&line)?,
        version: line,
    })
}

/// The newest `tool` in `/usr/lib/postgresql/*/bin` and on `PATH`. Fails with exit 2 when none
/// is installed or the newest is older than `min_major` (dumps of a newer server are refused by
/// `pg_dump`, and `pg_restore` cannot read dumps of a newer `pg_dump`).
pub fn find(tool: &str, min_major: u32, what: &str) -> anyhow::Result<PgTool> {
    pick(tool, &candidates(tool), min_major, what)
}

/// The newest of `candidates` (binaries of `tool`), checked against `min_major`.
fn pick(tool: &str, candidates: &[PathBuf], min_major: u32, what: &str) -> anyhow::Result<PgTool> {
    let best = candidates
        .iter()
        .filter_map(|p| version_of(p))
        .max_by_key(|t| t.major);
    let Some(best) = best else {
        return Err(Classified::error(
            Exit::Usage,
            format!(
                "{tool} was not found on PATH nor in /usr/lib/postgresql/*/bin; install the \
                 PostgreSQL client tools of version {min_major} or newer (Debian: apt-get \
                 install postgresql-client-{min_major})"
            ),
        ));
    };
    if best.major < min_major {
        return Err(Classified::error(
            Exit::Usage,
            format!(
                "{} is version {}, older than {what} ({min_major}); install the PostgreSQL \
                 client tools of version {min_major} or newer (Debian: apt-get install \
                 postgresql-client-{min_major})",
                best.path.display(),
                best.major
            ),
        ));
    }
    Ok(best)
}

/// A PostgreSQL URL split into what goes on the command line and the password.
pub struct PgTarget {
    /// The URL without its password.
    pub url: String,
    /// The decoded password, if the URL has one.
    password: Option<String>,
}

impl PgTarget {
    /// Splits `url`.
    pub fn new(url: &str) -> anyhow::Result<PgTarget> {
        let mut parsed = url::Url::parse(url)
            .map_err(|_| Classified::error(Exit::Usage, "the PostgreSQL URL is not a valid URL"))?;
        let password = parsed.password().map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        });
        let _ = parsed.set_password(None);
        Ok(PgTarget {
            url: parsed.to_string(),
            password,
        })
    }

    /// A command for `tool` with the password in its environment.
    pub fn command(&self, tool: &PgTool) -> Command {
        let mut cmd = Command::new(&tool.path);
        if let Some(p) = &self.password {
            cmd.env("PGPASSWORD", p);
        }
        cmd.env("PGCONNECT_TIMEOUT", "15").stdin(Stdio::null());
        cmd
    }

    /// `message` with the password removed, for the tools' error output.
    pub fn scrub(&self, message: &str) -> String {
        match &self.password {
            Some(p) if !p.is_empty() => message.replace(p.as_str(), "***"),
            _ => message.to_owned(),
        }
    }
}

/// Reads a child's stderr on a thread so a chatty tool never blocks on a full pipe.
pub fn drain_stderr(child: &mut Child) -> std::thread::JoinHandle<String> {
    let stderr = child.stderr.take();
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut s) = stderr {
            let _ = s.read_to_string(&mut text);
        }
        text
    })
}

/// Runs `pg_restore` of `dump` into `target` in one transaction, dropping the objects it
/// restores first (`--clean --if-exists`): either the whole dump is restored or nothing
/// changes.
pub fn restore(tool: &PgTool, target: &PgTarget, dump: &Path) -> anyhow::Result<()> {
    let out = target
        .command(tool)
        .args([
            "--clean",
            "--if-exists",
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
            "--dbname",
        ])
        .arg(&target.url)
        .arg(dump)
        .output()
        .map_err(|e| {
            Classified::error(
                Exit::Database,
                format!("cannot run {}: {e}", tool.path.display()),
            )
        })?;
    if !out.status.success() {
        let stderr = target.scrub(String::from_utf8_lossy(&out.stderr).trim());
        return Err(Classified::error(
            Exit::Database,
            format!(
                "pg_restore failed ({}), nothing was changed: {stderr}",
                out.status
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(
            parse_major("pg_dump (PostgreSQL) 15.4 (Debian 15.4-1.pgdg120+1)"),
            Some(15)
        );
        assert_eq!(parse_major("pg_restore (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_major("pg_dump (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major("nonsense"), None);
        assert_eq!(server_major(150_018), 15);
        assert_eq!(server_major(90_624), 9);
    }

    #[test]
    fn the_password_leaves_the_url_and_the_messages() {
        let t = PgTarget::new("postgres://ft42:s%40cret@db:5432/ft42?sslmode=disable").unwrap();
        assert_eq!(t.url, "postgres://ft42@db:5432/ft42?sslmode=disable");
        assert_eq!(t.scrub("auth failed for s@cret"), "auth failed for ***");
    }

    #[cfg(unix)]
    #[test]
    fn an_old_tool_is_a_clear_usage_error_and_the_newest_wins() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fake = |name: &str, version: &str| {
            let path = dir.path().join(name);
            std::fs::write(
                &path,
                format!("#!/bin/sh\necho 'pg_dump (PostgreSQL) {version}'\n"),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        let old = fake("pg_dump_14", "14.9 (Debian 14.9-1)");
        let new = fake("pg_dump_16", "16.2");
        let err = pick("pg_dump", std::slice::from_ref(&old), 15, "the server").unwrap_err();
        assert_eq!(crate::exit::classify(&err), Exit::Usage);
        let text = err.to_string();
        assert!(
            text.contains("version 14, older than the server (15)")
                && text.contains("postgresql-client-15"),
            "{text}"
        );
        let best = pick("pg_dump", &[old, new.clone()], 15, "the server").unwrap();
        assert_eq!((best.path, best.major), (new, 16));
    }

    #[test]
    fn a_missing_tool_is_a_clear_usage_error() {
        let err = find("pg_dump_that_does_not_exist", 15, "the server").unwrap_err();
        assert_eq!(crate::exit::classify(&err), Exit::Usage);
        assert!(err.to_string().contains("postgresql-client-15"), "{err}");
    }
}
