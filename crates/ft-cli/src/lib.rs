//! The `ft42` command line: configuration, logging, commands and exit codes.
//!
//! The binaries are thin: they parse a [`Cli`] and call [`launch`], which loads the
//! [`Settings`](config::Settings), installs logging, starts the tokio runtime, runs the command
//! with [`run`] and turns the outcome into a documented [`Exit`] code. Failures print one line
//! on stderr (`ft42: <class>: <cause>`), with no backtrace and no secret.
//!
//! ```no_run
//! use clap::Parser;
//! let cli = ft_cli::Cli::parse_from(["ft42", "status", "--json"]);
//! std::process::exit(ft_cli::launch(cli).code());
//! ```

pub mod backup;
pub mod cli;
mod commands;
pub mod config;
pub mod exit;
pub mod logging;
mod metrics;
pub mod progress;
pub mod report;
pub mod schedule;
mod serve;

pub use cli::Cli;
pub use exit::Exit;

use cli::{Command, CronCommand, SimCommand, TokenCommand};
use config::Settings;

/// Loads settings, installs logging, runs the command on a tokio runtime, prints a failure as
/// one line and returns its exit code.
pub fn launch(cli: Cli) -> Exit {
    install_panic_hook();
    let settings = match Settings::load(&cli.global) {
        Ok(settings) => settings,
        Err(err) => return report(&anyhow::Error::new(err)),
    };
    let options = logging::LogOptions::new(cli.global.verbose, cli.global.quiet, &settings);
    let _guard = match logging::init(&options) {
        Ok(guard) => guard,
        Err(err) => return report(&anyhow::Error::new(err)),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ft42")
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return report(&anyhow::Error::new(err).context("cannot start the runtime")),
    };
    let outcome = runtime.block_on(run(cli, settings));
    // Blocking database work still running after an interrupt gets a moment to finish its
    // transaction; nothing waits forever.
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    match outcome {
        Ok(exit) => exit,
        Err(err) => report(&err),
    }
}

/// Replaces the panic output: a closed stdout (`ft42 status | head`) ends the process quietly
/// with success, like other Unix tools; any other panic is a bug and prints one line, without
/// a backtrace, and exits 1.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("ft42: internal error (a bug, please report it): {message}{place}");
        std::process::exit(Exit::Other.code());
    }));
}

/// Prints the one-line message, records the failure in the log files, and returns its class.
fn report(err: &anyhow::Error) -> Exit {
    let exit = exit::classify(err);
    let line = exit::one_line(err);
    tracing::error!(target: logging::EXIT_TARGET, exit_code = exit.code(), error = %line);
    progress::bars().suspend(|| eprintln!("{line}"));
    exit
}

/// Runs one parsed command with resolved settings.
pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Cron(CronCommand::Show) => commands::cron::show(&cli.global, &settings),
        Command::Cron(CronCommand::Install(args)) => {
            commands::cron::install(&cli.global, &settings, &args)
        }
        Command::Cron(CronCommand::Remove(args)) => commands::cron::remove(&args),
        Command::Migrate => commands::migrate::migrate(&settings).await,
        Command::Replay(args) => commands::replay::replay(&settings, &args).await,
        Command::Token(TokenCommand::Check(args)) => commands::token::check(&settings, &args).await,
        Command::Sim(SimCommand::Serve(args)) => commands::sim::serve(&args).await,
        Command::Sync(args) => commands::sync::sync(&settings, &args).await,
        Command::Worker(args) => commands::sync::worker(&settings, &args).await,
        Command::Status(args) => commands::status::status(&settings, &args).await,
        Command::Runs(args) => commands::status::runs(&settings, &args).await,
        Command::Daemon(args) => commands::daemon::daemon(&settings, &args).await,
        Command::Serve(args) => serve::serve(&settings, &args).await,
        Command::Demo(args) => commands::demo::demo(&settings, &args).await,
        Command::Integrity(args) => commands::integrity::integrity(&settings, &args).await,
        Command::Backup(args) => commands::backup::backup(&settings, &args).await,
        Command::Restore(args) => commands::backup::restore(&settings, &args).await,
    }
}
