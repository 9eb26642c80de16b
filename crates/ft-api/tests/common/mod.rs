//! Shared wiremock fixtures for ft-api's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ft_api::{ClientSecret, FtClient, FtClientBuilder, ManualClock, RateConfig, RetryConfig};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const CLIENT_ID: &str = "u-s4t2ud-test";
pub const SECRET: &str = "s-s4t2ud-current";

/// A fresh (non-pooled) mock server on an ephemeral loopback port.
pub async fn server() -> MockServer {
    MockServer::builder().start().await
}

/// A builder pointed at `server` with a manual clock and a generous budget, so tests never
/// wait on the wall clock.
pub fn builder(server: &MockServer, clock: Arc<ManualClock>) -> FtClientBuilder {
    FtClient::builder()
        .base_url(server.uri())
        .client_id(CLIENT_ID)
        .client_secret(ClientSecret::new(SECRET))
        .rate(RateConfig {
            per_second: 1000,
            per_hour: 1_000_000,
            hour: Duration::from_secs(3600),
        })
        .retry(RetryConfig {
            max_attempts: 5,
            max_elapsed: Duration::from_secs(600),
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        })
        .timeouts(Duration::from_secs(5), Duration::from_secs(10))
        .clock(clock)
}

/// Issues `tok-1`, `tok-2`, … with the given lifetime, `created_at` from the test clock.
pub struct TokenIssuer {
    pub issued: AtomicU32,
    pub lifetime: i64,
    pub clock: Arc<ManualClock>,
    /// When set, every request gets the same token (the server's reuse behaviour) with the
    /// remaining lifetime.
    pub reuse: bool,
    pub first_issue: std::sync::Mutex<Option<i64>>,
}

impl Respond for TokenIssuer {
    fn respond(&self, _req: &Request) -> ResponseTemplate {
        use ft_api::Clock;
        let now = self.clock.utc().timestamp();
        let (n, created_at, expires_in) = if self.reuse {
            // Doorkeeper's reuse: the original created_at and the remaining lifetime.
            self.issued.fetch_add(1, Ordering::SeqCst);
            let first = *self.first_issue.lock().unwrap().get_or_insert(now);
            (1, first, self.lifetime - (now - first))
        } else {
            (
                self.issued.fetch_add(1, Ordering::SeqCst) + 1,
                now,
                self.lifetime,
            )
        };
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": format!("tok-{n}"),
            "token_type": "bearer",
            "expires_in": expires_in,
            "scope": "public",
            "created_at": created_at,
            "secret_valid_until": now + 30 * 86400,
        }))
    }
}

/// Mounts a token endpoint and returns its issuer.
pub async fn mount_tokens(
    server: &MockServer,
    clock: Arc<ManualClock>,
    lifetime: i64,
) -> Arc<TokenIssuer> {
    let issuer = Arc::new(TokenIssuer {
        issued: AtomicU32::new(0),
        lifetime,
        clock,
        reuse: false,
        first_issue: Default::default(),
    });
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(SharedResponder(issuer.clone()))
        .mount(server)
        .await;
    issuer
}

/// Lets an `Arc<impl Respond>` be mounted while the test keeps a handle on it.
pub struct SharedResponder<R>(pub Arc<R>);

impl<R: Respond> Respond for SharedResponder<R> {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        self.0.respond(req)
    }
}

pub fn query_param(req: &Request, key: &str) -> Option<String> {
    req.url
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

pub fn bearer(req: &Request) -> Option<String> {
    req.headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
}

/// A paginated users collection of `total` users with ids 1..=total.
pub struct Users {
    pub total: u32,
    /// Answer 401 to this token on this page (simulates a token revoked mid-listing).
    pub reject: Option<(String, u32)>,
}

impl Respond for Users {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let page: u32 = query_param(req, "page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let per: u32 = query_param(req, "per_page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(30);
        if let Some((tok, p)) = &self.reject
            && bearer(req).as_deref() == Some(tok.as_str())
            && page == *p
        {
            return ResponseTemplate::new(401).set_body_json(
                json!({"error": "Not authorized", "message": "The access token was revoked"}),
            );
        }
        let start = (page - 1) * per + 1;
        let end = (page * per).min(self.total);
        let items: Vec<_> = (start..=end)
            .map(|id| json!({"id": id, "login": format!("user{id}"), "staff?": false}))
            .collect();
        ResponseTemplate::new(200)
            .insert_header("X-Page", page.to_string())
            .insert_header("X-Per-Page", per.to_string())
            .insert_header("X-Total", self.total.to_string())
            .set_body_json(items)
    }
}

/// Requests received on `p`.
pub async fn received_on(server: &MockServer, p: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == p)
        .collect()
}
