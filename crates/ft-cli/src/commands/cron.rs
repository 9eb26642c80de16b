//! `ft42 cron install|remove|show`: one marked block in the user's crontab.
//!
//! The block sits between `# BEGIN ft42` and `# END ft42`. `install` replaces the block in place
//! (or appends it), so running it twice leaves one block; `remove` deletes only that block. The
//! crontab is read with `crontab -l` and written with `crontab -`, the `crontab` found on PATH.
//!
//! Cron runs jobs without the login environment, so each line `cd`s to the folder `install` ran
//! in, passes the config file and the global flags given to `install`, and repeats the
//! non-secret `FT42_*` variables set at install time. Secrets are never written into the
//! crontab: a secret only in `FT42_CLIENT_SECRET` gives a warning to use a secret file. When
//! `flock` exists, each job takes `.ft42.lock` in that folder with `-n`, so a job that would
//! overlap a running one (and compete for the same API budget) is skipped instead.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::cli::{CronArgs, GlobalArgs};
use crate::config::Settings;
use crate::exit::{Classified, Exit};

/// First line of the managed block.
pub(crate) const BEGIN: &str = "# BEGIN ft42";
/// Last line of the managed block.
pub(crate) const END: &str = "# END ft42";

/// Non-secret variables repeated on each cron line when set at install time.
const PASSED_ENV: &[&str] = &[
    "FT42_CONFIG",
    "FT42_API_URL",
    "FT42_CLIENT_ID",
    "FT42_CLIENT_SECRET_FILE",
    "FT42_CLIENT_SECRET_NEXT_FILE",
    "FT42_DATABASE_URL",
    "FT42_RATE_PER_SECOND",
    "FT42_RATE_PER_HOUR",
    "FT42_RATE_HOUR_S",
    "FT42_LOG_DIR",
    "FT42_EXPORT_DIR",
    "FT42_EXPORT_RETENTION_DAYS",
    // Issue #18: a job without these would run with one application and its own budget.
    "FT42_APPLICATIONS_FILE",
    "FT42_SHARED_BUDGET",
    // Issue #15: scheduled jobs mirror the campuses the operator chose, not every campus.
    "FT42_CAMPUSES",
    // Issue #18: every scheduled job refreshes the metrics file.
    "FT42_METRICS_FILE",
    "FT42_BACKUP_DIR",
    "FT42_BACKUP_RECIPIENT",
    "FT42_BACKUP_PASSPHRASE_FILE",
    "FT42_BACKUP_IDENTITY_FILE",
    "FT42_BACKUP_KEEP_DAILY",
    "FT42_BACKUP_KEEP_WEEKLY",
    "FT42_BACKUP_INCLUDE_ARCHIVE",
];

/// Everything the block depends on, gathered once so rendering is a pure function.
#[derive(Debug, Clone)]
pub(crate) struct CronContext {
    /// The `ft42` binary to run.
    pub(crate) exe: PathBuf,
    /// The folder jobs `cd` into.
    pub(crate) dir: PathBuf,
    /// `VAR=value` pairs repeated on each line.
    pub(crate) env: Vec<(String, String)>,
    /// Global flags repeated on each line.
    pub(crate) flags: Vec<String>,
    /// Whether to wrap jobs in `flock -n`.
    pub(crate) flock: bool,
}

/// Quotes a word for `/bin/sh` (cron's shell). Plain words stay readable.
fn sh_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The managed block, ending with a newline.
pub(crate) fn render_block(settings: &Settings, ctx: &CronContext) -> String {
    let mut out = String::new();
    out.push_str(BEGIN);
    out.push_str(
        " (managed by `ft42 cron install`; change the [schedule] in the config file, not here)\n",
    );
    for job in settings.schedule.active() {
        let Some(fields) = job.when.cron_fields() else {
            continue;
        };
        let mut cmd = format!("{fields} cd {} &&", sh_quote(&ctx.dir.to_string_lossy()));
        for (k, v) in &ctx.env {
            cmd.push_str(&format!(" {k}={}", sh_quote(v)));
        }
        if ctx.flock {
            // A backup reads one consistent snapshot and spends no API budget, so it has its
            // own lock: a long nightly sync must not make it skip.
            let lock = if job.kind == crate::schedule::JobKind::Backup {
                ".ft42-backup.lock"
            } else {
                ".ft42.lock"
            };
            cmd.push_str(&format!(" flock -n {lock}"));
        }
        cmd.push(' ');
        cmd.push_str(&sh_quote(&ctx.exe.to_string_lossy()));
        for flag in &ctx.flags {
            cmd.push(' ');
            cmd.push_str(&sh_quote(flag));
        }
        // Quiet: cron mails whatever is printed, so only warnings and errors should be.
        cmd.push_str(" -q");
        for arg in &job.args {
            cmd.push(' ');
            cmd.push_str(arg);
        }
        out.push_str(&format!("# {}: {}\n{cmd}\n", job.name, job.when));
    }
    out.push_str(END);
    out.push('\n');
    out
}

/// Replaces the managed block of `crontab` with `block` (or removes it when `None`), keeping
/// every other line and the block's position.
pub(crate) fn replace_block(crontab: &str, block: Option<&str>) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut inside = false;
    let mut placed = false;
    for line in crontab.lines() {
        let trimmed = line.trim_end();
        if trimmed.starts_with(BEGIN) {
            if inside {
                bail!(
                    "the crontab has two `{BEGIN}` lines without `{END}` between them; fix it with `crontab -e`"
                );
            }
            inside = true;
            continue;
        }
        if trimmed == END {
            if !inside {
                bail!("the crontab has `{END}` without `{BEGIN}`; fix it with `crontab -e`");
            }
            inside = false;
            if let (Some(block), false) = (block, placed) {
                out.push_str(block);
                placed = true;
            }
            continue;
        }
        if !inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    if inside {
        bail!("the crontab has `{BEGIN}` without `{END}`; fix it with `crontab -e`");
    }
    if let (Some(block), false) = (block, placed) {
        out.push_str(block);
    }
    Ok(out)
}

fn read_crontab() -> anyhow::Result<String> {
    let output = Command::new("crontab")
        .arg("-l")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Classified::error(
                Exit::Other,
                format!("cannot run `crontab -l` ({e}); is cron installed and on PATH?"),
            )
        })?;
    if output.status.success() {
        return String::from_utf8(output.stdout).context("the crontab is not UTF-8");
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Every cron implementation says "no crontab for USER" when there is none yet.
    if stderr.to_lowercase().contains("no crontab") {
        return Ok(String::new());
    }
    Err(Classified::error(
        Exit::Other,
        format!("`crontab -l` failed: {}", stderr.trim()),
    ))
}

fn write_crontab(text: &str) -> anyhow::Result<()> {
    let mut child = Command::new("crontab")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run `crontab -`")?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .context("cannot write to `crontab -`")?;
    let output = child.wait_with_output().context("`crontab -` failed")?;
    if !output.status.success() {
        bail!(
            "`crontab -` refused the new crontab: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The `ft42` binary next to the running one (the thin binaries share a folder with it).
fn ft42_exe() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the running ft42 binary")?;
    let sibling = exe.with_file_name(format!("ft42{}", std::env::consts::EXE_SUFFIX));
    Ok(if sibling.is_file() { sibling } else { exe })
}

/// Gathers the context from the process and warns about settings cron will not see.
pub(crate) fn context(global: &GlobalArgs, settings: &Settings) -> anyhow::Result<CronContext> {
    let dir = std::env::current_dir().context("cannot read the current folder")?;
    let mut env = Vec::new();
    for var in PASSED_ENV {
        let Ok(value) = std::env::var(var) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        if *var == "FT42_DATABASE_URL" && crate::config::redact_url(&value) != value {
            eprintln!(
                "warning: FT42_DATABASE_URL holds a password and is not copied into the crontab; \
                 put database_url in the config file (--config) instead"
            );
            continue;
        }
        let value = if var.ends_with("_FILE") || *var == "FT42_CONFIG" {
            absolute(&dir, &value)
        } else {
            value
        };
        env.push(((*var).to_owned(), value));
    }
    let mut flags = Vec::new();
    if let Some(config) = &settings.config_file
        && !env.iter().any(|(k, _)| k == "FT42_CONFIG")
    {
        flags.extend(["--config".to_owned(), config.to_string_lossy().into_owned()]);
    }
    if let Some(url) = &global.database_url {
        flags.extend(["--database-url".to_owned(), url.clone()]);
    }
    if let Some(url) = &global.api_url {
        flags.extend(["--api-url".to_owned(), url.clone()]);
    }
    if let Some(dir) = &global.log_dir {
        flags.extend(["--log-dir".to_owned(), dir.to_string_lossy().into_owned()]);
    }
    if let Some(path) = &global.metrics_file {
        let path = absolute(&dir, &path.to_string_lossy());
        flags.extend(["--metrics-file".to_owned(), path]);
    }
    if !settings.has_secret() {
        eprintln!(
            "warning: no client secret is configured; the jobs will fail until \
             FT42_CLIENT_SECRET_FILE (or client_secret_file in the config file) is set"
        );
    } else if !settings.secret_from_file()
        && std::env::var("FT42_CLIENT_SECRET").is_ok_and(|v| !v.is_empty())
    {
        eprintln!(
            "warning: FT42_CLIENT_SECRET is only in your environment, which cron does not \
             see; write the secret to a file (chmod 600) and set FT42_CLIENT_SECRET_FILE"
        );
    }
    if settings.next_secret_inline()
        && std::env::var("FT42_CLIENT_SECRET_NEXT").is_ok_and(|v| !v.is_empty())
    {
        eprintln!(
            "warning: FT42_CLIENT_SECRET_NEXT is only in your environment, which cron does not \
             see; write the next secret to a file (chmod 600) and set \
             FT42_CLIENT_SECRET_NEXT_FILE"
        );
    }
    let backup_on = settings
        .schedule
        .active()
        .any(|j| j.kind == crate::schedule::JobKind::Backup);
    if backup_on && settings.backup.recipient.is_none() && settings.backup.passphrase_file.is_none()
    {
        eprintln!(
            "warning: the nightly backup will fail until FT42_BACKUP_RECIPIENT (an age public \
             key, see `ft42 backup keygen`) or FT42_BACKUP_PASSPHRASE_FILE is set, or \
             [schedule] backup = \"off\""
        );
    }
    let flock = on_path("flock");
    if !flock {
        eprintln!("warning: `flock` not found; overlapping jobs will not be skipped");
    }
    Ok(CronContext {
        exe: ft42_exe()?,
        dir,
        env,
        flags,
        flock,
    })
}

fn absolute(dir: &Path, value: &str) -> String {
    let path = Path::new(value);
    if path.is_absolute() {
        value.to_owned()
    } else {
        dir.join(path).to_string_lossy().into_owned()
    }
}

/// `ft42 cron show`.
pub(crate) fn show(global: &GlobalArgs, settings: &Settings) -> anyhow::Result<Exit> {
    let ctx = context(global, settings)?;
    print!("{}", render_block(settings, &ctx));
    Ok(Exit::Ok)
}

/// `ft42 cron install [--dry-run]`.
pub(crate) fn install(
    global: &GlobalArgs,
    settings: &Settings,
    args: &CronArgs,
) -> anyhow::Result<Exit> {
    let block = render_block(settings, &context(global, settings)?);
    let current = read_crontab()?;
    let new = replace_block(&current, Some(&block))?;
    if args.dry_run {
        print!("{new}");
        return Ok(Exit::Ok);
    }
    if new == current {
        println!("the ft42 block is already installed and up to date");
        return Ok(Exit::Ok);
    }
    write_crontab(&new)?;
    let jobs = settings.schedule.active().count();
    println!("installed the ft42 block ({jobs} jobs) into your crontab:\n{block}");
    Ok(Exit::Ok)
}

/// `ft42 cron remove [--dry-run]`.
pub(crate) fn remove(args: &CronArgs) -> anyhow::Result<Exit> {
    let current = read_crontab()?;
    let new = replace_block(&current, None)?;
    if args.dry_run {
        print!("{new}");
        return Ok(Exit::Ok);
    }
    if new == current {
        println!("no ft42 block in your crontab; nothing to remove");
        return Ok(Exit::Ok);
    }
    write_crontab(&new)?;
    println!("removed the ft42 block from your crontab");
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> CronContext {
        CronContext {
            exe: "/opt/ft42/bin/ft42".into(),
            dir: "/srv/my mirror".into(),
            env: vec![("FT42_CLIENT_ID".into(), "u-abc".into())],
            flags: vec!["--config".into(), "/etc/ft42.toml".into()],
            flock: true,
        }
    }

    fn settings() -> Settings {
        Settings::resolve(&GlobalArgs::default(), |_| None).unwrap()
    }

    #[test]
    fn block_lists_each_active_job_once() {
        let block = render_block(&settings(), &ctx());
        assert!(block.starts_with(BEGIN) && block.ends_with("# END ft42\n"));
        assert!(block.contains(
            "17 3 * * * cd '/srv/my mirror' && FT42_CLIENT_ID=u-abc flock -n .ft42.lock \
             /opt/ft42/bin/ft42 --config /etc/ft42.toml -q sync all --full\n"
        ));
        assert!(block.contains("*/10 * * * * cd"), "{block}");
        assert!(block.contains("-q worker --once\n"), "{block}");
        assert!(
            block.contains(
                "43 4 * * * cd '/srv/my mirror' && FT42_CLIENT_ID=u-abc flock -n \
                 .ft42-backup.lock /opt/ft42/bin/ft42 --config /etc/ft42.toml -q backup\n"
            ),
            "{block}"
        );
        assert_eq!(block.matches(" cd ").count(), 4, "{block}");
    }

    #[test]
    fn install_twice_gives_one_block_and_keeps_other_lines() {
        let block = render_block(&settings(), &ctx());
        let user = "MAILTO=me@example.org\n0 1 * * * backup.sh\n";
        let once = replace_block(user, Some(&block)).unwrap();
        let twice = replace_block(&once, Some(&block)).unwrap();
        assert_eq!(once, twice);
        assert_eq!(twice.matches(BEGIN).count(), 1);
        assert!(twice.starts_with(user));
        assert_eq!(replace_block(&twice, None).unwrap(), user);
    }

    #[test]
    fn replacement_keeps_the_block_position() {
        let text = "a\n# BEGIN ft42 old\nold line\n# END ft42\nb\n";
        let new = replace_block(text, Some("# BEGIN ft42\nnew\n# END ft42\n")).unwrap();
        assert_eq!(new, "a\n# BEGIN ft42\nnew\n# END ft42\nb\n");
    }

    #[test]
    fn unbalanced_markers_are_refused() {
        assert!(replace_block("# BEGIN ft42\nx\n", None).is_err());
        assert!(replace_block("x\n# END ft42\n", None).is_err());
    }

    #[test]
    fn quoting_is_safe_for_sh() {
        assert_eq!(sh_quote("/a/b"), "/a/b");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}
