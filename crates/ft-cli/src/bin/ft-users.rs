//! `ft-users ARGS` is `ft42 sync users ARGS`, for scripts and cron lines that run one job.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = ft_cli::Cli::parse_with_prefix(&["sync", "users"]);
    ft_cli::launch(cli).into()
}
