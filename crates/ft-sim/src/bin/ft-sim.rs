//! `ft-sim`: serve the 42 API simulator on a local port until Ctrl-C.
//!
//! `cargo run -p ft-sim -- --port 8042 --users 1000 --seed 1` prints the base URL and the
//! credentials of the default application. Until `ft42 sim serve` exists this is the way to
//! try the simulator with curl.

use std::net::SocketAddr;
use std::process::ExitCode;

const USAGE: &str = "usage: ft-sim [--port N] [--users N (per campus)] [--campuses N] [--seed N] [--per-second N] [--per-hour N] [--no-retry-after]";

fn parse_args() -> Result<ft_sim::ServeOptions, String> {
    let mut options = ft_sim::ServeOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let text = args
                .next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))?;
            text.parse()
                .map_err(|_| format!("{name} expects a whole number, got {text:?}\n{USAGE}"))
        };
        let narrow =
            |n: u64, name: &str| u32::try_from(n).map_err(|_| format!("{name} is too large"));
        match arg.as_str() {
            "--port" => {
                let port = u16::try_from(value("--port")?)
                    .map_err(|_| "--port must be below 65536".to_owned())?;
                options.addr = SocketAddr::from(([127, 0, 0, 1], port));
            }
            "--users" => options.users_per_campus = narrow(value("--users")?, "--users")?,
            "--campuses" => options.campuses = narrow(value("--campuses")?, "--campuses")?,
            "--seed" => options.seed = value("--seed")?,
            "--per-second" => {
                options.limits.per_second = narrow(value("--per-second")?, "--per-second")?
            }
            "--per-hour" => options.limits.per_hour = narrow(value("--per-hour")?, "--per-hour")?,
            "--no-retry-after" => options.retry_after = false,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let ready = |sim: &ft_sim::SimHandle| {
        let creds = sim.credentials();
        // This is a local test server with generated credentials: printing the secret is the
        // point, so that curl and the CLI can use it.
        println!("ft-sim listening on {}", sim.base_url());
        println!("token url:     {}", sim.token_url());
        println!("client_id:     {}", creds.client_id);
        println!("client_secret: {}", creds.client_secret);
        println!("rows:          {:?}", sim.counts());
        println!("Ctrl-C to stop.");
    };
    let shutdown = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            eprintln!("cannot listen for Ctrl-C ({error}); stopping");
        }
    };
    match ft_sim::serve(options, ready, shutdown).await {
        Ok(summary) => {
            println!(
                "served {} requests ({} answered 429)",
                summary.requests, summary.too_many_requests
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ft-sim: {error}");
            ExitCode::FAILURE
        }
    }
}
