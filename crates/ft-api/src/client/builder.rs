//! [`FtClientBuilder`]: the client's settings, checked once in [`FtClientBuilder::build`] (an
//! error names the setting and what to do), and the applications with their pacers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use super::{FtClient, Inner};
use crate::apps::{App, Application};
use crate::clock::{Clock, SystemClock};
use crate::config::{RateConfig, RetryConfig};
use crate::decode::DriftLog;
use crate::error::ApiError;
use crate::event::Counters;
use crate::pacer::{Margin, Pacer};
use crate::secret::{ClientId, ClientSecret};
use crate::shared_budget::SharedBudget;

/// The production API.
pub const DEFAULT_BASE_URL: &str = "https://api.intra.42.fr";

/// The `User-Agent` sent when none is configured. Cloudflare answers requests without one with
/// an HTML 403, so one is always sent.
pub const DEFAULT_USER_AGENT: &str = concat!(
    "ft42/",
    env!("CARGO_PKG_VERSION"),
    " (ft-api; +https://github.com/ft42/ft42)"
);

/// Builds an [`FtClient`]. Obtain one with [`FtClient::builder`].
#[derive(Debug)]
pub struct FtClientBuilder {
    base_url: String,
    token_url: Option<String>,
    client_id: Option<ClientId>,
    client_secret: Option<ClientSecret>,
    next_client_secret: Option<ClientSecret>,
    user_agent: Option<String>,
    rate: RateConfig,
    retry: RetryConfig,
    connect_timeout: Duration,
    request_timeout: Duration,
    refresh_margin: Duration,
    margin: Margin,
    follow_server_limits: bool,
    clock: Option<Arc<dyn Clock>>,
    applications: Vec<Application>,
    shared_budget: Option<Arc<dyn SharedBudget>>,
}

impl Default for FtClientBuilder {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_string(),
            token_url: None,
            client_id: None,
            client_secret: None,
            next_client_secret: None,
            user_agent: None,
            rate: RateConfig::default(),
            retry: RetryConfig::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            refresh_margin: Duration::from_secs(600),
            margin: Margin::Measured,
            follow_server_limits: true,
            clock: None,
            applications: Vec::new(),
            shared_budget: None,
        }
    }
}

impl FtClientBuilder {
    /// The API root (default `https://api.intra.42.fr`). Paths such as `/v2/users` are appended.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The token endpoint (default: base URL + `/oauth/token`).
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// The application's UID.
    pub fn client_id(mut self, id: impl Into<ClientId>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// The application's secret.
    pub fn client_secret(mut self, secret: ClientSecret) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// The application's next secret: used when the current one is rejected (42 rotates
    /// application secrets, and both are valid for a while).
    pub fn next_client_secret(mut self, secret: Option<ClientSecret>) -> Self {
        self.next_client_secret = secret;
        self
    }

    /// The `User-Agent` header; [`DEFAULT_USER_AGENT`] when unset or empty.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = Some(ua.into());
        self
    }

    /// The server's rate limits (default 2/s and 1200/h).
    pub fn rate(mut self, rate: RateConfig) -> Self {
        self.rate = rate;
        self
    }

    /// Retry bounds.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Connect timeout and total per-request timeout (defaults 10 s and 60 s).
    pub fn timeouts(mut self, connect: Duration, request: Duration) -> Self {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self
    }

    /// How long before expiry a token is refreshed proactively (default 10 minutes).
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// A fixed allowance between sending a request and its arrival at the server, instead of
    /// the default, which measures each request's latency (a request keeps its place in the
    /// rate windows until its answer is back). `Duration::ZERO` assumes requests arrive the
    /// instant they are sent, which a real network breaks (bunched arrivals earn 429s). See the
    /// `pacer` module docs.
    pub fn jitter_margin(mut self, margin: Duration) -> Self {
        self.margin = Margin::Fixed(margin);
        self
    }

    /// Measures each request's latency instead of a fixed allowance (the default; undoes
    /// [`FtClientBuilder::jitter_margin`]).
    pub fn measured_margin(mut self) -> Self {
        self.margin = Margin::Measured;
        self
    }

    /// Whether `X-*-RateLimit-Limit` headers replace the configured limits (default true).
    pub fn follow_server_limits(mut self, follow: bool) -> Self {
        self.follow_server_limits = follow;
        self
    }

    /// The clock (tests inject one; default [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Adds another application (after the one given by [`FtClientBuilder::client_id`]). Each
    /// application has its own token and budget; every request goes through the active
    /// application whose budget frees up soonest, and an application whose secret is rejected
    /// leaves the rotation (see [`FtClient::applications`]).
    pub fn application(mut self, app: Application) -> Self {
        self.applications.push(app);
        self
    }

    /// A budget shared with other processes (for example `ft_store::RateLedger` on
    /// PostgreSQL), reserved for every request after the local pacer granted it. `None` (the
    /// default) paces this process alone.
    pub fn shared_budget(mut self, budget: Option<Arc<dyn SharedBudget>>) -> Self {
        self.shared_budget = budget;
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<FtClient, ApiError> {
        let client_id = self.client_id.ok_or_else(|| {
            ApiError::Config("the client id is missing; set it (e.g. from FT42_CLIENT_ID)".into())
        })?;
        if client_id.as_str().trim().is_empty() {
            return Err(ApiError::Config("the client id is empty".into()));
        }
        let secret = self.client_secret.ok_or_else(|| {
            ApiError::Config(
                "the client secret is missing; set it (e.g. from FT42_CLIENT_SECRET)".into(),
            )
        })?;
        if secret.expose().trim().is_empty() {
            return Err(ApiError::Config("the client secret is empty".into()));
        }
        let base = self.base_url.trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&base).map_err(|e| ApiError::Url {
            url: base.clone(),
            message: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ApiError::Config(format!(
                "the base URL {base:?} must use http or https"
            )));
        }
        let token_url = self
            .token_url
            .unwrap_or_else(|| format!("{base}/oauth/token"));
        url::Url::parse(&token_url).map_err(|e| ApiError::Url {
            url: token_url.clone(),
            message: e.to_string(),
        })?;
        if self.rate.per_second == 0 || self.rate.per_hour == 0 || self.rate.hour.is_zero() {
            return Err(ApiError::Config(
                "rate limits must be positive (per_second, per_hour and hour)".into(),
            ));
        }
        if self.retry.max_attempts == 0 {
            return Err(ApiError::Config(
                "retry.max_attempts must be at least 1".into(),
            ));
        }
        let user_agent = self
            .user_agent
            .filter(|ua| !ua.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_USER_AGENT.to_string());
        let http = reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            // No redirects: the token request carries the secret, and the API does not redirect.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ApiError::Config(format!("cannot build the HTTP client: {e}")))?;
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(SystemClock::new()) as Arc<dyn Clock>);
        let mut configured = vec![Application {
            client_id,
            secret,
            next_secret: self.next_client_secret,
            rate: None,
        }];
        configured.extend(self.applications);
        let mut apps: Vec<App> = Vec::with_capacity(configured.len());
        for (i, app) in configured.into_iter().enumerate() {
            if i > 0 {
                if app.client_id.as_str().trim().is_empty() {
                    return Err(ApiError::Config(format!(
                        "application {} has an empty client id",
                        i + 1
                    )));
                }
                if app.secret.expose().trim().is_empty() {
                    return Err(ApiError::Config(format!(
                        "application {} ({}) has an empty secret",
                        i + 1,
                        app.client_id.short()
                    )));
                }
            }
            if apps.iter().any(|a| a.client_id == app.client_id) {
                return Err(ApiError::Config(format!(
                    "application {} is configured twice; list each application once",
                    app.client_id.short()
                )));
            }
            let rate = app.rate.unwrap_or(self.rate);
            if rate.per_second == 0 || rate.per_hour == 0 || rate.hour.is_zero() {
                return Err(ApiError::Config(format!(
                    "the rate limits of application {} must be positive",
                    app.client_id.short()
                )));
            }
            let mut secrets = vec![app.secret];
            if let Some(next) = app.next_secret
                && !next.same_as(&secrets[0])
            {
                secrets.push(next);
            }
            let pacer = Pacer::new(rate, self.margin, self.follow_server_limits, clock.clone());
            apps.push(App::new(app.client_id, secrets, pacer));
        }
        let (events, _) = broadcast::channel(1024);
        Ok(FtClient {
            inner: Arc::new(Inner {
                http,
                base,
                token_url,
                apps,
                shared: self.shared_budget,
                retry: self.retry,
                refresh_margin: self.refresh_margin,
                clock,
                counters: Counters::default(),
                events,
                drift: DriftLog::default(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_requires_credentials() {
        let err = FtClient::builder().build().unwrap_err();
        assert!(err.to_string().contains("client id is missing"), "{err}");
        let err = FtClient::builder().client_id("u-x").build().unwrap_err();
        assert!(
            err.to_string().contains("client secret is missing"),
            "{err}"
        );
    }

    #[test]
    fn builder_debug_redacts_the_secret() {
        let b = FtClient::builder()
            .client_id("u-s4t2ud-abc")
            .client_secret(ClientSecret::new("s-s4t2ud-topsecret"));
        let dbg = format!("{b:?}");
        assert!(!dbg.contains("topsecret"), "{dbg}");
        let c = b.build().unwrap();
        assert!(!format!("{c:?}").contains("topsecret"));
    }
}
