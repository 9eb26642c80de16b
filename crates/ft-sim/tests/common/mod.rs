//! Helpers shared by the simulator's integration tests: a reqwest client with a User-Agent,
//! token fetching, and small JSON accessors.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use ft_sim::{AppCredentials, Limits, SimHandle};
use serde_json::Value;

/// A client that sends a User-Agent, as every well-behaved client must.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent("ft-sim-tests/0.1")
        .timeout(Duration::from_secs(20))
        .build()
        .expect("building the reqwest client")
}

/// Generous limits so a test that is not about rate limiting never meets a 429.
pub fn generous() -> Limits {
    Limits {
        per_second: 10_000,
        per_hour: 1_000_000,
        ..Limits::default()
    }
}

/// Mints a token with form-encoded client credentials.
pub async fn token_for(
    client: &reqwest::Client,
    sim: &SimHandle,
    creds: &AppCredentials,
) -> String {
    let response = client
        .post(sim.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", creds.client_id.as_str()),
            ("client_secret", creds.client_secret.as_str()),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 200, "token request failed");
    let body: Value = response.json().await.expect("token JSON");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// Mints a token for the default application.
pub async fn token(client: &reqwest::Client, sim: &SimHandle) -> String {
    token_for(client, sim, &sim.credentials()).await
}

/// GET `path` (with query) with a bearer token.
pub async fn get(
    client: &reqwest::Client,
    sim: &SimHandle,
    token: &str,
    path_and_query: &str,
) -> reqwest::Response {
    client
        .get(format!("{}{}", sim.base_url(), path_and_query))
        .bearer_auth(token)
        .send()
        .await
        .expect("request reaches the simulator")
}

/// GET and parse a 200 JSON body.
pub async fn get_json(
    client: &reqwest::Client,
    sim: &SimHandle,
    token: &str,
    path_and_query: &str,
) -> (reqwest::header::HeaderMap, Value) {
    let response = get(client, sim, token, path_and_query).await;
    assert_eq!(response.status(), 200, "GET {path_and_query}");
    let headers = response.headers().clone();
    let body: Value = response.json().await.expect("JSON body");
    (headers, body)
}

/// A header as text ("" when absent).
pub fn header(headers: &reqwest::header::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The ids of a JSON array of objects.
pub fn ids(body: &Value) -> Vec<i64> {
    body.as_array()
        .expect("array")
        .iter()
        .map(|item| item["id"].as_i64().expect("id"))
        .collect()
}

/// Pages through a listing by keyset (`sort=id&range[id]=lo,big&page[size]=100`), the way the
/// engine does, and returns every item.
pub async fn keyset_all(
    client: &reqwest::Client,
    sim: &SimHandle,
    token: &str,
    path: &str,
    extra: &str,
) -> Vec<Value> {
    let mut items = Vec::new();
    let mut next = 0_i64;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!("{path}{sep}sort=id&range[id]={next},999999999&page[size]=100{extra}");
        let (headers, body) = get_json(client, sim, token, &url).await;
        let page = body.as_array().expect("array").clone();
        let total: usize = header(&headers, "x-total").parse().expect("X-Total");
        let done = page.len() >= total;
        if let Some(last) = page.last() {
            next = last["id"].as_i64().expect("id") + 1;
        }
        items.extend(page);
        if done {
            return items;
        }
    }
}
