//! `ft-integrity ARGS` is `ft42 integrity ARGS`, for scripts and cron lines that run one job.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = ft_cli::Cli::parse_with_prefix(&["integrity"]);
    ft_cli::launch(cli).into()
}
