//! `ft-relations ARGS` is `ft42 sync relations ARGS`, for scripts and cron lines that run one job.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = ft_cli::Cli::parse_with_prefix(&["sync", "relations"]);
    ft_cli::launch(cli).into()
}
