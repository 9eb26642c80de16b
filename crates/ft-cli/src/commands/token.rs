//! `ft42 token check`: is the secret accepted, how long does the token live, when does the
//! secret expire, and what budget does the server give this application.

use anyhow::Context;
use chrono::{DateTime, Utc};
use ft_api::{Query, SecretExpiry};
use serde::Serialize;

use crate::cli::TokenCheckArgs;
use crate::config::Settings;
use crate::exit::{Classified, Exit};

use super::support::api_client;

/// What `token check --json` prints.
#[derive(Debug, Serialize)]
struct TokenReport {
    valid: bool,
    expires_at: DateTime<Utc>,
    seconds_left: i64,
    secret_valid_until: Option<DateTime<Utc>>,
    secret_days_left: Option<i64>,
    application_uid: Option<String>,
    application_id: Option<String>,
    scopes: Vec<String>,
    per_second: u32,
    per_hour: u32,
    hourly_remaining: Option<u32>,
    secondly_remaining: Option<u32>,
}

/// Runs the check; exits 3 when the secret is rejected or expires within 7 days.
pub(crate) async fn check(settings: &Settings, args: &TokenCheckArgs) -> anyhow::Result<Exit> {
    let client = api_client(settings)?;
    let status = client.ensure_token().await.context("cannot get a token")?;
    let info = client
        .token_info()
        .await
        .context("cannot read the token info")?;
    // The rate-limit headers only come with /v2 answers; one small request costs one unit of
    // budget and shows the limits the server applies to this application.
    client
        .get_json("/v2/cursus", &Query::new().per_page(1))
        .await
        .context("cannot make a test request to /v2/cursus")?;
    let budget = client.budget();
    let now = Utc::now();
    let seconds_left = info
        .expires_in_seconds
        .unwrap_or_else(|| (status.expires_at - now).num_seconds());
    let report = TokenReport {
        valid: true,
        expires_at: status.expires_at,
        seconds_left,
        secret_valid_until: status.secret_valid_until,
        secret_days_left: status
            .secret_valid_until
            .map(|until| (until - now).num_days()),
        application_uid: info.application.as_ref().and_then(|a| a.uid.clone()),
        application_id: budget.app_id.clone(),
        scopes: info.scopes.clone(),
        per_second: budget.per_second,
        per_hour: budget.per_hour,
        hourly_remaining: budget.hourly_remaining_seen,
        secondly_remaining: budget.secondly_remaining_seen,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(&report);
    }
    if let Some(until) = status.secret_valid_until
        && let Some(line) = super::sync::secret_warning(until, now)
    {
        // Seven days or less: exit 3, so cron mail and monitoring act in time.
        if SecretExpiry::at(until, now).is_some_and(SecretExpiry::is_urgent) {
            return Err(Classified::error(Exit::Auth, line));
        }
        eprintln!("warning: {line}");
    }
    Ok(Exit::Ok)
}

fn print_human(r: &TokenReport) {
    println!(
        "token:              valid, {} s left (expires {})",
        r.seconds_left, r.expires_at
    );
    match (r.secret_valid_until, r.secret_days_left) {
        (Some(until), Some(days)) => println!("secret valid until: {until} ({days} days left)"),
        _ => println!("secret valid until: unknown (the server did not say)"),
    }
    println!(
        "application:        uid {}, id {}",
        r.application_uid.as_deref().unwrap_or("?"),
        r.application_id.as_deref().unwrap_or("?")
    );
    if !r.scopes.is_empty() {
        println!("scopes:             {}", r.scopes.join(" "));
    }
    let remaining = r
        .hourly_remaining
        .map_or_else(String::new, |n| format!(", {n} left this hour"));
    println!(
        "rate limits:        {}/s, {}/h{remaining}",
        r.per_second, r.per_hour
    );
}
