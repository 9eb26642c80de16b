//! `ft42`: every command. Parsing and exit codes only; the work is in the `ft_cli` library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = ft_cli::Cli::parse();
    ft_cli::launch(cli).into()
}
