//! Lists one campus's users, page by page, in ascending id order.
//!
//! With `FT42_CLIENT_ID` and `FT42_CLIENT_SECRET` set it talks to the real API (or `FT42_API_URL`);
//! without them it starts the simulator in-process. The campus id is the first argument
//! (default 1).
//!
//! ```text
//! cargo run -p ft-examples --example list_campus_users -- 1
//! ```

use ft_api::models::User;
use ft_api::{ClientSecret, FtClient, Query};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let campus: u32 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| anyhow::anyhow!("the campus id must be a number, got {arg:?}"))?,
        None => 1,
    };

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
            // A generous budget so the demo finishes quickly; the real API allows 2/s.
            let sim = ft_sim::Sim::builder()
                .users_per_campus(250)
                .limits(ft_sim::Limits {
                    per_second: 20,
                    per_hour: 5000,
                    ..ft_sim::Limits::default()
                })
                .start()
                .await;
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

    let path = format!("/v2/campus/{campus}/users");
    let mut query = Query::new().sort(["id"]).per_page(100).page(1);
    let mut seen = 0usize;
    loop {
        let page = client.get_page::<User>(&path, &query).await?;
        for user in &page.items {
            println!(
                "{:>8}  {:<20} {}",
                user.id,
                user.login.as_deref().unwrap_or("-"),
                user.displayname.as_deref().unwrap_or("")
            );
        }
        seen += page.items.len();
        eprintln!(
            "page {} of {}: {} users (waited {:?})",
            page.page,
            page.total_pages()
                .map_or_else(|| "?".to_string(), |p| p.to_string()),
            page.items.len(),
            page.meta.waited
        );
        if !page.has_more() {
            break;
        }
        query = query.page(page.page + 1);
    }
    let stats = client.stats();
    eprintln!(
        "{seen} users; {} requests, {} retries, {} × 429, waited {:?}",
        stats.requests, stats.retries, stats.responses_429, stats.wait_time
    );
    Ok(())
}
