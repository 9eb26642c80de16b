//! The command tree of `ft42`, declared once with clap's derive API.
//!
//! Parsing never does anything: every command is turned into a value of these types first and
//! executed by [`crate::run`]. The thin binaries (`ft-users`, `ft-relations`, `ft-coalitions`,
//! `ft-integrity`) parse the same tree with a fixed subcommand prefix, so their flags, help and
//! behaviour are those of the matching `ft42` subcommand.

use std::path::PathBuf;
use std::sync::LazyLock;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The exit-code table shown at the end of `ft42 --help`; `crate::exit` holds the same values.
const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  other failure (a bug, an unexpected I/O error)
  2  usage or configuration error (bad flag, bad setting, unreadable config file)
  3  authentication (missing or rejected client secret, secret expiring within 7 days)
  4  API unavailable (network error, 5xx, budget exhausted for too long)
  5  database (unreachable, migration failed, query failed)
  6  integrity findings (the checks ran and found problems)

Settings come from flags, then FT42_* environment variables, then the config file
(--config / FT42_CONFIG, TOML), then defaults. See docs/CLI.md.";

/// `--version`: the version and whether this build can reach PostgreSQL over TLS (read from
/// ft-store, so a build that enabled `ft-store/pg-tls` directly says so too).
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let tls = if ft_store::PG_TLS {
        "PostgreSQL TLS: yes"
    } else {
        "PostgreSQL TLS: no, build with --features pg-tls for sslmode=require"
    };
    format!("{} ({tls})", env!("CARGO_PKG_VERSION"))
});

/// Mirror the 42 intra API into SQLite or PostgreSQL, and keep it fresh.
#[derive(Debug, Parser)]
#[command(
    name = "ft42",
    version = VERSION.as_str(),
    about,
    long_about = "Mirror the 42 intra API (users, cursus, projects, coalitions, locations) into \
                  SQLite or PostgreSQL, and keep it fresh within the API's rate limits.\n\n\
                  Try it without credentials: `ft42 demo`.",
    after_help = EXIT_CODES_HELP,
    propagate_version = true
)]
pub struct Cli {
    /// Global options, accepted before or after the subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// Read settings from this TOML file [env: FT42_CONFIG].
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Database to mirror into: sqlite://PATH, a plain path, or postgres://...
    /// [env: FT42_DATABASE_URL] [default: sqlite://ft42.db]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// Base URL of the 42 API; the token URL is $URL/oauth/token
    /// [env: FT42_API_URL] [default: https://api.intra.42.fr]
    #[arg(long, global = true, value_name = "URL")]
    pub api_url: Option<String>,

    /// Folder for the JSON-lines log files, or "off" for stderr only
    /// [env: FT42_LOG_DIR] [default: logs]
    #[arg(long, global = true, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,

    /// After every sync, worker, daemon or backup job, write Prometheus metrics to this file
    /// (replaced atomically) [env: FT42_METRICS_FILE] [default: none]
    #[arg(long, global = true, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,

    /// More output on stderr (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less output on stderr (-q warnings and errors only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
}

/// The subcommands of `ft42`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the database schema (idempotent).
    Migrate,

    /// Fetch from the API into the database (migrates first if needed).
    #[command(after_help = "Examples:\n  ft42 sync users --campus 1,12 --delta\n  \
                            ft42 sync all --full\n  ft42 sync relations --max-relation-users 200")]
    Sync(SyncArgs),

    /// Run queued tasks (for example per-user relations) until none is runnable.
    Worker(WorkerArgs),

    /// Show per-scope freshness, queued and failed tasks, and the API budget.
    Status(StatusArgs),

    /// The run history: the last N runs with duration, rows, requests, 429s and status.
    Runs(RunsArgs),

    /// Inspect the API credentials.
    #[command(subcommand)]
    Token(TokenCommand),

    /// Check the mirrored data: counts, orphans, duplicates, freshness.
    Integrity(IntegrityArgs),

    /// Back up the database (and optionally the raw page archive), encrypted with age, then
    /// rotate old backups. `ft42 backup verify` proves the newest one restores.
    #[command(
        after_help = "Examples:\n  ft42 backup keygen /etc/ft42/backup.key   # prints the public key\n  \
                            FT42_BACKUP_RECIPIENT=age1... ft42 backup\n  \
                            FT42_BACKUP_IDENTITY_FILE=/etc/ft42/backup.key ft42 backup verify"
    )]
    Backup(BackupArgs),

    /// Restore a backup into an empty database, run migrations and the integrity checks.
    Restore(RestoreArgs),

    /// Manage the ft42 block in your crontab (nightly full sync, deltas, relation worker).
    #[command(subcommand)]
    Cron(CronCommand),

    /// Run the cron schedule in one long-running process (for systemd and other service
    /// managers); SIGINT or SIGTERM finishes the current page, commits and exits 0.
    Daemon(DaemonArgs),

    /// Serve a read-only status page (freshness per campus and table, budget burn, queue ETA,
    /// last runs and backup), Prometheus metrics (/metrics) and the status as JSON over HTTP.
    #[command(
        after_help = "Examples:\n  ft42 serve                          # http://127.0.0.1:4242/\n  \
                            ft42 serve --listen 0.0.0.0:4242     # behind your proxy\n  \
                            ft42 daemon --listen 127.0.0.1:4242  # the schedule and the page"
    )]
    Serve(ServeArgs),

    /// Rebuild the mirror tables from the raw page archive (FT42_EXPORT_DIR), spending no API
    /// budget; deletion records are replayed too.
    Replay(ReplayArgs),

    /// The local 42 API simulator.
    #[command(subcommand)]
    Sim(SimCommand),

    /// See it work without credentials: simulate the API, sync into SQLite, apply changes,
    /// sync the delta, check integrity and print a summary.
    Demo(DemoArgs),
}

/// Options of `ft42 replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// The archive folder to read (default: FT42_EXPORT_DIR).
    #[arg(long, value_name = "DIR")]
    pub from: Option<std::path::PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `ft42 sync` fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SyncTarget {
    /// Reference data (campuses, cursus, projects, achievements), users, campus_users and
    /// cursus_users (with blackholed_at), with cursus_users deletions.
    Users,
    /// projects_users and achievements_users, their deletions, missing parent users, and the
    /// relation worker over the changed-user queue.
    Relations,
    /// Blocs, coalitions and coalitions_users, with their deletions.
    Coalitions,
    /// Locations (windows on begin_at, open sessions re-read by id), with their deletions.
    Locations,
    /// Everything above.
    All,
}

/// Arguments of `ft42 sync`.
#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    /// What to fetch.
    #[arg(value_enum)]
    pub what: SyncTarget,

    #[command(flatten)]
    pub opts: SyncOpts,
}

/// Options shared by `ft42 sync <what>` and the thin `ft-users`/`ft-relations`/`ft-coalitions`.
#[derive(Debug, Clone, Default, Args)]
pub struct SyncOpts {
    /// Only these campuses (comma-separated ids); default: every campus.
    #[arg(long = "campus", value_name = "IDS", value_delimiter = ',')]
    pub campus: Vec<i64>,

    /// Refetch everything (default: delta when a previous sync exists, full otherwise).
    #[arg(long, conflicts_with = "delta")]
    pub full: bool,

    /// Only what changed since the last successful sync.
    #[arg(long)]
    pub delta: bool,

    /// Start the chosen scopes from scratch: drop their cursors and queued tasks first.
    #[arg(long)]
    pub force: bool,

    /// Fetch relations for at most N users in this run (the rest stays queued).
    #[arg(long, value_name = "N")]
    pub max_relation_users: Option<usize>,
}

/// Arguments of `ft42 worker`.
#[derive(Debug, Clone, Default, Args)]
pub struct WorkerArgs {
    /// One pass over the runnable tasks, then exit (for cron); default: keep polling.
    #[arg(long)]
    pub once: bool,
}

/// Arguments of `ft42 status`.
#[derive(Debug, Clone, Default, Args)]
pub struct StatusArgs {
    /// Print JSON for machines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Exit 6 when a scope is past its freshness target (or never completed a pass), for
    /// alerting from cron; with -q only the stale scopes are printed, on stderr.
    #[arg(long)]
    pub check: bool,
}

/// Arguments of `ft42 runs`.
#[derive(Debug, Clone, Args)]
pub struct RunsArgs {
    /// How many runs to show, newest first.
    #[arg(long, short = 'n', default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub last: u32,
    /// Print JSON for machines instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `ft42 token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Get a token and report its validity, seconds left, the secret's expiry and the
    /// application's rate limits. Exits 3 when the secret is rejected or expires within 7 days.
    Check(TokenCheckArgs),
}

/// Arguments of `ft42 token check`.
#[derive(Debug, Clone, Default, Args)]
pub struct TokenCheckArgs {
    /// Print JSON for machines.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `ft42 integrity`.
#[derive(Debug, Clone, Default, Args)]
pub struct IntegrityArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also re-fetch N random rows per table (users, cursus_users, projects_users,
    /// achievements_users) from the API and compare them field by field. One request per
    /// table; at most 100.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=100))]
    pub spot_check: Option<u16>,
    /// Also compare stored rows per scope (per campus and table) with the API's X-Total,
    /// spending at most N requests (one per scope). Off by default.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub api_totals: Option<u32>,
    /// After the checks, refresh the query planner's statistics (ANALYZE).
    #[arg(long)]
    pub analyze: bool,
    /// After the checks, reclaim free space (VACUUM; on SQLite this rewrites the file).
    #[arg(long)]
    pub vacuum: bool,
    /// After the checks, rebuild every index (REINDEX).
    #[arg(long)]
    pub reindex: bool,
}

/// Arguments of `ft42 backup`: without a subcommand it makes a backup.
#[derive(Debug, Clone, Default, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    /// Something other than making a backup.
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
}

/// `ft42 backup ...`
#[derive(Debug, Clone, Subcommand)]
pub enum BackupCommand {
    /// Restore the newest backup (or FILE) into a scratch database, run the integrity checks,
    /// and drop the scratch database: the periodic proof that backups work.
    Verify(BackupVerifyArgs),
    /// Create an age key pair: the secret key goes to FILE (mode 600, never overwritten), the
    /// public key is printed for FT42_BACKUP_RECIPIENT.
    Keygen(KeygenArgs),
}

/// Arguments of `ft42 backup verify`.
#[derive(Debug, Clone, Default, Args)]
pub struct BackupVerifyArgs {
    /// The backup to verify [default: the newest in FT42_BACKUP_DIR].
    pub file: Option<PathBuf>,
}

/// Arguments of `ft42 backup keygen`.
#[derive(Debug, Clone, Args)]
pub struct KeygenArgs {
    /// Where to write the secret key (the identity file for FT42_BACKUP_IDENTITY_FILE).
    pub file: PathBuf,
}

/// Arguments of `ft42 restore`.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The backup file (`ft42-backup-*.age`).
    pub file: PathBuf,
    /// Replace a database that is not empty (and archive files that differ).
    #[arg(long)]
    pub force: bool,
}

/// `ft42 cron ...`
#[derive(Debug, Subcommand)]
pub enum CronCommand {
    /// Write (or replace) the ft42 block in your crontab.
    Install(CronArgs),
    /// Delete the ft42 block from your crontab, leaving every other line alone.
    Remove(CronArgs),
    /// Print the block that `install` would write.
    Show,
}

/// Arguments of `ft42 cron install|remove`.
#[derive(Debug, Clone, Default, Args)]
pub struct CronArgs {
    /// Print the resulting crontab instead of installing it.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `ft42 daemon`.
#[derive(Debug, Clone, Default, Args)]
pub struct DaemonArgs {
    /// Also serve the status page and /metrics (as `ft42 serve`) on this address
    /// [default: not served]
    #[arg(long, value_name = "ADDR", env = "FT42_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
}

/// The status server's default address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4242";

/// Arguments of `ft42 serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (IP:PORT; port 0 picks a free one). The page has no login: keep it
    /// on loopback or behind a proxy that has one.
    #[arg(long, value_name = "ADDR", env = "FT42_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: std::net::SocketAddr,
}

/// `ft42 sim ...`
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Serve the simulated 42 API on loopback until interrupted, and print its credentials.
    Serve(SimServeArgs),
}

/// Arguments of `ft42 sim serve`.
#[derive(Debug, Clone, Args)]
pub struct SimServeArgs {
    /// Port to listen on (127.0.0.1); 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub port: u16,

    /// Users per campus.
    #[arg(long, default_value_t = 500)]
    pub users: usize,

    /// Seed of the generated data (same seed, same data).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Number of campuses.
    #[arg(long, default_value_t = 2)]
    pub campuses: usize,

    /// Requests per second the simulated application may make.
    #[arg(long, default_value_t = 2)]
    pub per_second: u32,

    /// Requests per "hour" the simulated application may make.
    #[arg(long, default_value_t = 1200)]
    pub per_hour: u32,

    /// Length of the simulated "hour" in seconds (compress it to watch hourly pacing).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub hour_s: u64,
}

/// Arguments of `ft42 demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Simulated users in total [env: FT42_DEMO_USERS].
    #[arg(long, env = "FT42_DEMO_USERS", default_value_t = 3000)]
    pub users: usize,

    /// Simulated campuses.
    #[arg(long, default_value_t = 3)]
    pub campuses: usize,

    /// Seed of the simulated data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Cli {
    /// Parses a thin binary's arguments as `ft42 <prefix...> <args...>`, so `ft-users --delta`
    /// means `ft42 sync users --delta`.
    ///
    /// On a usage error or `--help` this prints and exits like any clap program.
    pub fn parse_with_prefix(prefix: &[&str]) -> Cli {
        // Help and errors then read `ft42 sync users ...`, which is exactly what runs.
        let argv = std::iter::once("ft42".into())
            .chain(prefix.iter().map(Into::into))
            .chain(std::env::args_os().skip(1));
        <Cli as Parser>::parse_from(argv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ft42").chain(args.iter().copied()))
    }

    #[test]
    fn sync_parses_campus_list_and_mode() {
        let cli = parse(&["sync", "users", "--campus", "1,12", "--delta"]).unwrap();
        let Command::Sync(args) = cli.command else {
            panic!("expected sync")
        };
        assert_eq!(args.what, SyncTarget::Users);
        assert_eq!(args.opts.campus, vec![1, 12]);
        assert!(args.opts.delta && !args.opts.full);
    }

    #[test]
    fn full_and_delta_conflict() {
        let err = parse(&["sync", "all", "--full", "--delta"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn global_flags_are_accepted_after_the_subcommand() {
        let cli = parse(&["status", "--database-url", "sqlite://x.db", "-vv"]).unwrap();
        assert_eq!(cli.global.database_url.as_deref(), Some("sqlite://x.db"));
        assert_eq!(cli.global.verbose, 2);
    }

    #[test]
    fn verbose_and_quiet_conflict() {
        assert!(parse(&["-v", "-q", "migrate"]).is_err());
    }

    #[test]
    fn backup_parses_with_and_without_a_subcommand() {
        let cli = parse(&["backup"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Backup(BackupArgs { command: None })
        ));
        let cli = parse(&["backup", "verify", "b.age"]).unwrap();
        let Command::Backup(BackupArgs {
            command: Some(BackupCommand::Verify(v)),
        }) = cli.command
        else {
            panic!("expected backup verify")
        };
        assert_eq!(v.file, Some(PathBuf::from("b.age")));
        let cli = parse(&["restore", "b.age", "--force"]).unwrap();
        let Command::Restore(r) = cli.command else {
            panic!("expected restore")
        };
        assert!(r.force);
        assert!(parse(&["restore"]).is_err());
    }

    #[test]
    fn usage_errors_exit_with_code_two() {
        // The documented "usage error" code is clap's own, so both agree.
        let err = parse(&["sync", "nothing"]).unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::Exit::Usage.code());
    }
}
