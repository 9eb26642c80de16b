//! `ft42 sim serve`: the simulated 42 API on loopback, for trying ft42 without credentials.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cli::SimServeArgs;
use crate::exit::Exit;

use super::support::shutdown_signal;

/// Serves until SIGINT or SIGTERM, printing the settings that point ft42 at it.
pub(crate) async fn serve(args: &SimServeArgs) -> anyhow::Result<Exit> {
    let mut options = ft_sim::ServeOptions {
        addr: SocketAddr::from(([127, 0, 0, 1], args.port)),
        seed: args.seed,
        campuses: narrow(args.campuses, "--campuses")?,
        users_per_campus: narrow(args.users, "--users")?,
        ..ft_sim::ServeOptions::default()
    };
    options.limits.per_second = args.per_second;
    options.limits.per_hour = args.per_hour;
    options.limits.hour_window = Duration::from_secs(args.hour_s);
    let hour_s = args.hour_s;
    let ready = move |sim: &ft_sim::SimHandle| {
        let creds = sim.credentials();
        // A local simulator's generated credentials are not secrets: printing them is the
        // point, so that another shell can use them.
        println!("simulated 42 API listening on {}", sim.base_url());
        println!("point ft42 at it (in another shell):");
        println!("  export FT42_API_URL={}", sim.base_url());
        println!("  export FT42_CLIENT_ID={}", creds.client_id);
        println!("  export FT42_CLIENT_SECRET={}", creds.client_secret);
        if hour_s != 3600 {
            println!("  export FT42_RATE_HOUR_S={hour_s}");
        }
        let rows: Vec<String> = sim
            .counts()
            .iter()
            .map(|(table, n)| format!("{table} {n}"))
            .collect();
        println!("rows: {}", rows.join(", "));
        println!("Ctrl-C to stop.");
    };
    let summary = ft_sim::serve(options, ready, shutdown_signal())
        .await
        .map_err(|e| crate::exit::Classified::error(Exit::Usage, e.to_string()))?;
    println!(
        "served {} requests ({} answered 429)",
        summary.requests, summary.too_many_requests
    );
    Ok(Exit::Ok)
}

fn narrow(n: usize, flag: &str) -> anyhow::Result<u32> {
    u32::try_from(n)
        .map_err(|_| crate::exit::Classified::error(Exit::Usage, format!("{flag} is too large")))
}
