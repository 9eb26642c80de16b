//! `ft-coalitions ARGS` is `ft42 sync coalitions ARGS`, for scripts and cron lines that run one job.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = ft_cli::Cli::parse_with_prefix(&["sync", "coalitions"]);
    ft_cli::launch(cli).into()
}
