//! Checks credentials before a long run: obtains a token, reads `/oauth/token/info` and shows
//! the token's expiry, the secret's validity and the rate budget.
//!
//! With `FT42_CLIENT_ID` and `FT42_CLIENT_SECRET` set it talks to the real API (or `FT42_API_URL`);
//! without them it starts the simulator in-process and checks against that.
//!
//! ```text
//! cargo run -p ft-examples --example token_check
//! FT42_CLIENT_ID=u-s4t2ud-… FT42_CLIENT_SECRET=s-s4t2ud-… cargo run -p ft-examples --example token_check
//! ```

use ft_api::{ClientSecret, FtClient};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();

    // Keep the simulator alive for the whole run when one is used.
    let (_sim, base_url, client_id, secret) = match (
        std::env::var("FT42_CLIENT_ID"),
        std::env::var("FT42_CLIENT_SECRET"),
    ) {
        (Ok(id), Ok(secret)) => {
            let url = std::env::var("FT42_API_URL")
                .unwrap_or_else(|_| ft_api::DEFAULT_BASE_URL.to_string());
            (None, url, id, secret)
        }
        _ => {
            println!("FT42_CLIENT_ID/FT42_CLIENT_SECRET not set: using an in-process simulator");
            let sim = ft_sim::Sim::builder().start().await;
            let creds = sim.credentials();
            let url = sim.base_url();
            (Some(sim), url, creds.client_id, creds.client_secret)
        }
    };

    let client = FtClient::builder()
        .base_url(&base_url)
        .client_id(client_id)
        .client_secret(ClientSecret::new(secret))
        .build()?;

    let status = client.ensure_token().await?;
    println!(
        "token obtained from {base_url}; expires at {}",
        status.expires_at
    );
    match status.secret_valid_until {
        Some(until) => println!("client secret valid until {until}"),
        None => println!("the server did not say how long the client secret stays valid"),
    }
    let info = client.token_info().await?;
    println!(
        "application {}; scopes {:?}; token expires in {} s",
        info.application
            .and_then(|a| a.uid)
            .unwrap_or_else(|| "?".into()),
        info.scopes,
        info.expires_in_seconds.unwrap_or_default()
    );
    let budget = client.budget();
    println!(
        "budget: {}/s and {}/h (hourly remaining seen: {:?})",
        budget.per_second, budget.per_hour, budget.hourly_remaining_seen
    );
    let stats = client.stats();
    println!(
        "{} requests ({} for tokens), waited {:?}",
        stats.requests, stats.token_requests, stats.wait_time
    );
    Ok(())
}
