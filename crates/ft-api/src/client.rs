//! `FtClient` and its builder: the request loop (pacing, token, retries) and the typed calls.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::Stream;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tracing::Instrument;

use crate::apps::{App, Application, ApplicationStatus};
use crate::clock::{Clock, SystemClock};
use crate::config::{RateConfig, RetryConfig};
use crate::decode::{DriftLog, decode_list, decode_one};
use crate::error::{ApiError, BODY_SNIPPET_CHARS, truncate};
use crate::event::{BudgetSnapshot, ClientEvent, ClientStats, Counters};
use crate::models::TokenInfo;
use crate::pacer::{BucketParams, DEFAULT_JITTER_MARGIN, Pacer, RateHeaders};
use crate::page::{Links, Page, RequestMeta};
use crate::query::Query;
use crate::secret::{AccessToken, ClientId, ClientSecret};
use crate::shared_budget::{SharedBudget, SharedLimits};
use crate::token::{
    CachedToken, SECRET_WARNING, SOFT_RETRY_INTERVAL, TokenErrorBody, TokenResponse, TokenStatus,
    compute_expiry,
};

/// The production API.
pub const DEFAULT_BASE_URL: &str = "https://api.intra.42.fr";

/// The `User-Agent` sent when none is configured. Cloudflare answers requests without one with
/// an HTML 403, so one is always sent.
pub const DEFAULT_USER_AGENT: &str = concat!(
    "ft42/",
    env!("CARGO_PKG_VERSION"),
    " (ft-api; +https://github.com/ft42/ft42)"
);

/// The path of the token introspection endpoint.
const TOKEN_INFO_PATH: &str = "/oauth/token/info";

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
    jitter_margin: Duration,
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
            jitter_margin: DEFAULT_JITTER_MARGIN,
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

    /// The allowance for variation in request latency that the pacer builds into its buckets
    /// (default 100 ms; a loopback simulator can use 20 ms). See the `pacer` module docs.
    pub fn jitter_margin(mut self, margin: Duration) -> Self {
        self.jitter_margin = margin;
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
            let pacer = Pacer::new(
                rate,
                self.jitter_margin,
                self.follow_server_limits,
                clock.clone(),
            );
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

/// A client for the 42 API. Cheap to clone: clones share the token, the budget and counters.
#[derive(Debug, Clone)]
pub struct FtClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: String,
    token_url: String,
    /// The applications, the configured one first; never empty.
    apps: Vec<App>,
    /// A budget shared with other processes, taken after the application's own pacer.
    shared: Option<Arc<dyn SharedBudget>>,
    retry: RetryConfig,
    refresh_margin: Duration,
    clock: Arc<dyn Clock>,
    counters: Counters,
    events: broadcast::Sender<ClientEvent>,
    drift: DriftLog,
}

/// A response read in full.
struct Response {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// How one HTTP exchange ended.
enum Outcome {
    Ok(Response),
    /// Worth retrying with backoff.
    Retryable {
        reason: String,
        error: ApiError,
    },
    /// A 429: wait and repeat, not counted as a failed attempt.
    TooMany {
        retry_after: Option<Duration>,
    },
    /// A 401 from an API endpoint.
    Unauthorized,
    /// Fails at once.
    Fatal(ApiError),
}

impl FtClient {
    /// Starts building a client.
    pub fn builder() -> FtClientBuilder {
        FtClientBuilder::default()
    }

    /// Fetches one page of a list endpoint. `page` and `per_page` default to 1 and 100.
    pub async fn get_page<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Query,
    ) -> Result<Page<T>, ApiError> {
        let q = query.with_paging_defaults();
        let (resp, meta) = self.send(path, &q).await?;
        let (items, raw) =
            decode_list::<T>(path, &resp.body, &self.inner.drift, &self.inner.events)?;
        let header_u64 =
            |name: &str| -> Option<u64> { header_str(&resp.headers, name)?.trim().parse().ok() };
        let page = header_u64("x-page")
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or_else(|| q.page_number());
        let per_page = header_u64("x-per-page")
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v > 0)
            .unwrap_or_else(|| q.page_size());
        let links = header_str(&resp.headers, "link")
            .map(Links::parse)
            .unwrap_or_default();
        Ok(Page {
            items,
            raw,
            page,
            per_page,
            total: header_u64("x-total"),
            links,
            meta,
        })
    }

    /// A lazy stream of pages, starting at the query's page (default 1) and following pages
    /// until one is short or empty, or `X-Total` is reached. The stream ends after an error.
    pub fn stream_pages<T>(
        &self,
        path: impl Into<String>,
        query: Query,
    ) -> impl Stream<Item = Result<Page<T>, ApiError>> + Send + 'static
    where
        T: DeserializeOwned + Send + 'static,
    {
        let start = Some((self.clone(), path.into(), query.with_paging_defaults()));
        futures::stream::unfold(start, |state| async move {
            let (client, path, q) = state?;
            match client.get_page::<T>(&path, &q).await {
                Ok(page) => {
                    let next = page
                        .has_more()
                        .then(|| (client, path, q.clone().page(page.page + 1)));
                    Some((Ok(page), next))
                }
                Err(e) => Some((Err(e), None)),
            }
        })
    }

    /// One `per_page=1` request that returns `X-Total`: the size of a collection.
    pub async fn probe_total(&self, path: &str, query: &Query) -> Result<u64, ApiError> {
        let q = query.clone().per_page(1).page(1);
        let (resp, _) = self.send(path, &q).await?;
        header_str(&resp.headers, "x-total")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| ApiError::MissingTotal {
                endpoint: path.to_string(),
            })
    }

    /// Fetches any endpoint as untyped JSON (for endpoints without a model).
    pub async fn get_json(&self, path: &str, query: &Query) -> Result<serde_json::Value, ApiError> {
        let (resp, _) = self.send(path, query).await?;
        serde_json::from_slice(&resp.body).map_err(|e| ApiError::Decode {
            endpoint: path.to_string(),
            path: ".".into(),
            message: e.to_string(),
            snippet: truncate(&String::from_utf8_lossy(&resp.body), 200),
        })
    }

    /// Fetches a single object (e.g. `/v2/users/42` as [`crate::models::UserDetail`]).
    pub async fn get<T: DeserializeOwned>(&self, path: &str, query: &Query) -> Result<T, ApiError> {
        Ok(self.get_with_meta(path, query).await?.0)
    }

    /// Like [`FtClient::get`], also returning how the request went.
    pub async fn get_with_meta<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Query,
    ) -> Result<(T, RequestMeta), ApiError> {
        let (resp, meta) = self.send(path, query).await?;
        let v = decode_one::<T>(path, &resp.body, &self.inner.drift, &self.inner.events)?;
        Ok((v, meta))
    }

    /// `GET /oauth/token/info`: checks the credentials and the token before a long run.
    pub async fn token_info(&self) -> Result<TokenInfo, ApiError> {
        self.get(TOKEN_INFO_PATH, &Query::new()).await
    }

    /// Makes sure a usable token is cached (fetching one if needed) and reports its expiry and
    /// the secret's validity.
    pub async fn ensure_token(&self) -> Result<TokenStatus, ApiError> {
        let (tok, _) = loop {
            let app = self.pick_app()?;
            match self.token(app).await {
                Ok(t) => break t,
                Err(e) => self.on_token_error(app, e)?,
            }
        };
        Ok(TokenStatus {
            expires_at: tok.expires_at,
            secret_valid_until: tok.secret_valid_until,
        })
    }

    /// Counters since the client was built.
    pub fn stats(&self) -> ClientStats {
        let mut stats = self.inner.counters.snapshot();
        let active = self.inner.apps.iter().filter(|a| a.is_active()).count();
        stats.applications_active = u32::try_from(active).unwrap_or(u32::MAX);
        stats.applications_rejected =
            u32::try_from(self.inner.apps.len() - active).unwrap_or(u32::MAX);
        stats
    }

    /// The budget in force and what the server last said about it. With several applications:
    /// the limits are the sums over the active applications, the rest is the first active
    /// application's (see [`FtClient::applications`] for each one).
    pub fn budget(&self) -> BudgetSnapshot {
        let apps = &self.inner.apps;
        if apps.len() == 1 {
            return apps[0].pacer.snapshot();
        }
        let active: Vec<BudgetSnapshot> = apps
            .iter()
            .filter(|a| a.is_active())
            .map(|a| a.pacer.snapshot())
            .collect();
        let Some(first) = active.first() else {
            return apps[0].pacer.snapshot();
        };
        BudgetSnapshot {
            per_second: active.iter().map(|b| b.per_second).sum(),
            per_hour: active.iter().map(|b| b.per_hour).sum(),
            ..first.clone()
        }
    }

    /// Each application: its client id, whether it is in the rotation (a rejected secret takes
    /// it out), its request count and its budget.
    pub fn applications(&self) -> Vec<ApplicationStatus> {
        self.inner.apps.iter().map(App::status).collect()
    }

    /// The pacer's bucket parameters in force (of the first application): (per-second, hourly).
    pub fn bucket_params(&self) -> (BucketParams, BucketParams) {
        self.inner.apps[0].pacer.params()
    }

    /// Subscribes to client events (rate waits, retries, token refreshes, schema drift).
    pub fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.inner.events.subscribe()
    }

    fn emit(&self, event: ClientEvent) {
        let _ = self.inner.events.send(event);
    }

    fn url_for(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else if path.starts_with('/') {
            format!("{}{path}", self.inner.base)
        } else {
            format!("{}/{path}", self.inner.base)
        }
    }

    /// Waits for the application's budget (its pacer, then the budget shared with other
    /// processes if one is set), recording the wait.
    async fn pace(&self, app: &App) -> Result<Duration, ApiError> {
        let events = self.inner.events.clone();
        let mut waited = app
            .pacer
            .acquire(|wait| {
                tracing::trace!(?wait, "waiting for the request budget");
                let _ = events.send(ClientEvent::RateWait { wait });
            })
            .await;
        if let Some(shared) = &self.inner.shared {
            let base = app.pacer.limits();
            let limits = SharedLimits {
                per_second: base.per_second,
                per_hour: base.per_hour,
                second: Duration::from_secs(1),
                hour: base.hour,
                margin: app.pacer.margin(),
            };
            let wait = shared
                .reserve(app.client_id.as_str(), limits)
                .await
                .map_err(|e| ApiError::SharedBudget { message: e.message })?;
            if !wait.is_zero() {
                tracing::trace!(?wait, "waiting for the shared request budget");
                let _ = events.send(ClientEvent::RateWait { wait });
                self.inner.clock.sleep(wait).await;
                waited += wait;
            }
        }
        Counters::add_wait(&self.inner.counters.wait_nanos, waited);
        Counters::add_wait(&self.inner.counters.pacer_wait_nanos, waited);
        Ok(waited)
    }

    /// The active application whose budget frees up soonest (the first on a tie), or
    /// [`ApiError::SecretRejected`] when every application was rejected.
    fn pick_app(&self) -> Result<&App, ApiError> {
        let apps = &self.inner.apps;
        if apps.len() == 1 {
            return Ok(&apps[0]);
        }
        apps.iter()
            .filter(|a| a.is_active())
            .min_by_key(|a| a.pacer.estimate_wait())
            .ok_or(ApiError::SecretRejected {
                secret_valid_until: None,
                tried_next_secret: apps.iter().any(|a| a.secrets.len() > 1),
            })
    }

    /// After a token error of `app`: with several applications, a rejected secret takes the
    /// application out of the rotation and the caller tries another one (`Ok`); any other
    /// error, or the last application rejected, is returned.
    fn on_token_error(&self, app: &App, e: ApiError) -> Result<(), ApiError> {
        let apps = &self.inner.apps;
        let ApiError::SecretRejected {
            secret_valid_until, ..
        } = &e
        else {
            return Err(e);
        };
        if apps.len() == 1 {
            return Err(e);
        }
        if app.reject(self.inner.clock.utc(), *secret_valid_until) {
            let left = apps.iter().filter(|a| a.is_active()).count();
            tracing::error!(
                client_id = %app.client_id.short(),
                applications_left = left,
                "the application's client secret was rejected (invalid_client): it is taken out \
                 of the rotation; create a new secret on profile.intra.42.fr, configure it and \
                 restart"
            );
            self.emit(ClientEvent::ApplicationRejected {
                client_id: app.client_id.as_str().to_owned(),
                applications_left: u32::try_from(left).unwrap_or(u32::MAX),
            });
        }
        if apps.iter().any(App::is_active) {
            Ok(())
        } else {
            Err(e)
        }
    }

    /// Sleeps for a retry or 429 delay, recording it.
    async fn backoff(&self, d: Duration) {
        self.inner.clock.sleep(d).await;
        Counters::add_wait(&self.inner.counters.wait_nanos, d);
    }

    fn backoff_delay(&self, failures: u32) -> Duration {
        let r = &self.inner.retry;
        let exp = r.base_delay.saturating_mul(
            1u32.checked_shl(failures.saturating_sub(1).min(20))
                .unwrap_or(u32::MAX),
        );
        let ceiling = exp.min(r.max_delay);
        // Full jitter: uniform in [0, ceiling].
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::random_range(0..=ms))
    }

    /// Sends a GET with the request loop; returns the 2xx response.
    async fn send(&self, path: &str, query: &Query) -> Result<(Response, RequestMeta), ApiError> {
        let page = query.get("page").map(str::to_string);
        let span = tracing::debug_span!(
            "ft_api.request",
            endpoint = %path,
            page = page.as_deref().unwrap_or(""),
            status = tracing::field::Empty,
            attempt = tracing::field::Empty,
            wait_ms = tracing::field::Empty,
        );
        let fut = self.send_inner(path, query);
        let res = fut.instrument(span.clone()).await;
        match &res {
            Ok((_, meta)) => {
                span.record("status", meta.status);
                span.record("attempt", meta.attempts);
                span.record("wait_ms", meta.waited.as_millis() as u64);
            }
            Err(e) => {
                if let Some(s) = e.status() {
                    span.record("status", s);
                }
            }
        }
        res
    }

    async fn send_inner(
        &self,
        path: &str,
        query: &Query,
    ) -> Result<(Response, RequestMeta), ApiError> {
        let inner = &self.inner;
        let started = inner.clock.now();
        let url = self.url_for(path);
        let mut meta = RequestMeta {
            endpoint: path.to_string(),
            ..RequestMeta::default()
        };
        let mut failures = 0u32;
        let mut replayed_after_401 = false;
        loop {
            let app = self.pick_app()?;
            let (tok, fetched) = match self.token(app).await {
                Ok(t) => t,
                Err(e) => {
                    self.on_token_error(app, e)?;
                    continue;
                }
            };
            meta.token_refreshed |= fetched;
            meta.waited += self.pace(app).await?;
            // A long wait for the budget may have outlived the token: get a fresh one.
            if !tok.usable(inner.clock.utc()) {
                continue;
            }
            meta.attempts += 1;
            Counters::inc(&inner.counters.requests);
            app.count_request();
            let attempt = meta.attempts;
            let outcome = self
                .exchange(
                    app,
                    inner
                        .http
                        .get(&url)
                        .query(query.pairs())
                        .bearer_auth(tok.token.expose()),
                    path,
                    attempt,
                    true,
                )
                .await;
            match outcome {
                Outcome::Ok(resp) => {
                    meta.status = resp.status;
                    meta.retries = meta.attempts.saturating_sub(1);
                    meta.request_id = header_str(&resp.headers, "x-request-id").map(str::to_string);
                    tracing::debug!(
                        endpoint = %path,
                        status = resp.status,
                        attempts = meta.attempts,
                        waited_ms = meta.waited.as_millis() as u64,
                        "response"
                    );
                    return Ok((resp, meta));
                }
                Outcome::Unauthorized => {
                    Counters::inc(&inner.counters.responses_401);
                    if replayed_after_401 {
                        return Err(ApiError::Unauthorized {
                            endpoint: path.to_string(),
                            attempt,
                        });
                    }
                    replayed_after_401 = true;
                    tracing::info!(endpoint = %path, "401: dropping the token, refreshing it and replaying the request once");
                    app.token.invalidate(&tok.token);
                    Counters::inc(&inner.counters.retries);
                    self.emit(ClientEvent::Retry {
                        endpoint: path.to_string(),
                        attempt,
                        wait: Duration::ZERO,
                        reason: "HTTP 401".into(),
                    });
                }
                Outcome::TooMany { retry_after } => {
                    let wait = self.too_many(app, retry_after);
                    self.share_pause(app, wait).await;
                    let elapsed = inner.clock.now().saturating_duration_since(started);
                    if elapsed + wait > inner.retry.max_elapsed {
                        return Err(ApiError::RateLimited {
                            endpoint: path.to_string(),
                            waited: meta.waited,
                        });
                    }
                    Counters::inc(&inner.counters.retries);
                    self.emit(ClientEvent::Retry {
                        endpoint: path.to_string(),
                        attempt,
                        wait,
                        reason: "HTTP 429".into(),
                    });
                    // The pause itself is served by the pacer before the next attempt.
                }
                Outcome::Retryable { reason, error } => {
                    failures += 1;
                    let delay = self.backoff_delay(failures);
                    let elapsed = inner.clock.now().saturating_duration_since(started);
                    if failures >= inner.retry.max_attempts
                        || elapsed + delay > inner.retry.max_elapsed
                    {
                        return Err(error);
                    }
                    tracing::warn!(endpoint = %path, attempt, ?delay, %reason, "retrying");
                    Counters::inc(&inner.counters.retries);
                    self.emit(ClientEvent::Retry {
                        endpoint: path.to_string(),
                        attempt,
                        wait: delay,
                        reason,
                    });
                    self.backoff(delay).await;
                    meta.waited += delay;
                }
                Outcome::Fatal(e) => return Err(e),
            }
        }
    }

    /// Handles a 429: pauses the application's budget and returns the pause.
    fn too_many(&self, app: &App, retry_after: Option<Duration>) -> Duration {
        Counters::inc(&self.inner.counters.responses_429);
        let wait = match retry_after {
            Some(d) => d,
            None => Duration::from_millis(1000 + rand::random_range(0..=500u64)),
        };
        tracing::warn!(
            ?wait,
            "HTTP 429: pausing every request for the server's Retry-After"
        );
        app.pacer.pause(wait);
        wait
    }

    /// Passes a 429's pause to the shared budget, so other processes wait too. A failure only
    /// costs that: this process pauses anyway.
    async fn share_pause(&self, app: &App, wait: Duration) {
        if let Some(shared) = &self.inner.shared
            && let Err(e) = shared.pause(app.client_id.as_str(), wait).await
        {
            tracing::warn!(error = %e, "cannot share the 429 pause with the other processes");
        }
    }

    /// Sends one request and classifies the answer. `api` is false for the token endpoint.
    async fn exchange(
        &self,
        app: &App,
        req: reqwest::RequestBuilder,
        endpoint: &str,
        attempt: u32,
        api: bool,
    ) -> Outcome {
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return transport_outcome(endpoint, attempt, e),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        app.pacer.observe(&rate_headers(&headers));
        let body = match resp.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => return transport_outcome(endpoint, attempt, e),
        };
        let snippet = || truncate(&String::from_utf8_lossy(&body), BODY_SNIPPET_CHARS);
        let request_id = header_str(&headers, "x-request-id").map(str::to_string);
        match status {
            200..=299 => Outcome::Ok(Response {
                status,
                headers,
                body,
            }),
            429 => Outcome::TooMany {
                retry_after: header_str(&headers, RETRY_AFTER.as_str())
                    .and_then(|v| parse_retry_after(v, self.inner.clock.utc())),
            },
            401 if api => Outcome::Unauthorized,
            403 if is_html(&headers, &body) => Outcome::Retryable {
                reason: "HTML 403 challenge".into(),
                error: ApiError::Challenge {
                    endpoint: endpoint.to_string(),
                    attempt,
                },
            },
            500..=599 => Outcome::Retryable {
                reason: format!("HTTP {status}"),
                error: ApiError::Status {
                    endpoint: endpoint.to_string(),
                    status,
                    attempt,
                    body: snippet(),
                    request_id,
                },
            },
            _ => Outcome::Fatal(ApiError::Status {
                endpoint: endpoint.to_string(),
                status,
                attempt,
                body: snippet(),
                request_id,
            }),
        }
    }

    /// Returns a usable token, fetching one when needed. The flag says whether this call sent a
    /// token request itself.
    async fn token(&self, app: &App) -> Result<(CachedToken, bool), ApiError> {
        let inner = &self.inner;
        let now = inner.clock.utc();
        if let Some(tok) = app.token.get()
            && tok.usable(now)
        {
            if tok.wants_refresh(now, inner.refresh_margin)
                && let Ok(mut st) = app.token.refresh.try_lock()
            {
                let due = st.last_soft_attempt.is_none_or(|t| {
                    inner.clock.now().saturating_duration_since(t) >= SOFT_RETRY_INTERVAL
                });
                // Another task may have refreshed while we looked.
                let current = app.token.get();
                let still_old = current.as_ref().is_some_and(|c| c.token == tok.token);
                if due && still_old {
                    st.last_soft_attempt = Some(inner.clock.now());
                    match self.fetch_token(app, &mut st, Some(&tok)).await {
                        Ok(new) => return Ok((new, true)),
                        Err(e) => {
                            tracing::warn!(error = %e, "proactive token refresh failed; the current token is still valid");
                        }
                    }
                } else if let Some(c) = current
                    && c.usable(now)
                {
                    return Ok((c, false));
                }
            }
            return Ok((
                app.token.get().filter(|c| c.usable(now)).unwrap_or(tok),
                false,
            ));
        }
        // No usable token: single flight. Whoever holds the lock fetches; the others wait and
        // then find the new token in the cache.
        let mut st = app.token.refresh.lock().await;
        let now = inner.clock.utc();
        if let Some(tok) = app.token.get()
            && tok.usable(now)
        {
            return Ok((tok, false));
        }
        let previous = app.token.get();
        let tok = self.fetch_token(app, &mut st, previous.as_ref()).await?;
        Ok((tok, true))
    }

    /// Sends token requests (with secret failover and retries) and caches the result.
    async fn fetch_token(
        &self,
        app: &App,
        st: &mut crate::token::RefreshState,
        previous: Option<&CachedToken>,
    ) -> Result<CachedToken, ApiError> {
        let inner = &self.inner;
        let endpoint = "/oauth/token";
        let started = inner.clock.now();
        let mut failures = 0u32;
        let mut attempt = 0u32;
        let mut tried_next = false;
        loop {
            self.pace(app).await?;
            attempt += 1;
            Counters::inc(&inner.counters.requests);
            Counters::inc(&inner.counters.token_requests);
            app.count_request();
            let secret = &app.secrets[st.secret_index.min(app.secrets.len() - 1)];
            let sent_at = inner.clock.utc();
            let req = inner.http.post(&inner.token_url).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", app.client_id.as_str()),
                ("client_secret", secret.expose()),
            ]);
            let outcome = self.exchange(app, req, endpoint, attempt, false).await;
            match outcome {
                Outcome::Ok(resp) => {
                    let parsed: TokenResponse =
                        serde_json::from_slice(&resp.body).map_err(|e| ApiError::Decode {
                            endpoint: endpoint.to_string(),
                            path: ".".into(),
                            message: e.to_string(),
                            // The body holds the token itself: never quote it.
                            snippet: "[token response withheld]".into(),
                        })?;
                    if let Some(tt) = &parsed.token_type
                        && !tt.eq_ignore_ascii_case("bearer")
                    {
                        tracing::warn!(token_type = %tt, "unexpected token type; using it as a bearer token");
                    }
                    let token = AccessToken::new(parsed.access_token);
                    let expires_at = compute_expiry(parsed.created_at, parsed.expires_in, sent_at);
                    let secret_valid_until = parsed
                        .secret_valid_until
                        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0));
                    if secret_valid_until.is_some() {
                        st.secret_valid_until = secret_valid_until;
                    }
                    let reused = previous.is_some_and(|p| p.token == token);
                    let now = inner.clock.utc();
                    let mut cached = CachedToken {
                        token,
                        expires_at,
                        secret_valid_until,
                        accept_until_expiry: false,
                    };
                    if reused && !cached.usable(now) {
                        // The server hands back its live token until it expires; use it to the
                        // end rather than asking again for every request.
                        cached.accept_until_expiry = true;
                    }
                    if !cached.usable(now) {
                        return Err(ApiError::Token {
                            status: resp.status,
                            body: format!(
                                "the token endpoint returned a token that expires at {expires_at}, which is not in the future; check the system clock"
                            ),
                        });
                    }
                    if let Some(until) = secret_valid_until
                        && until - now < SECRET_WARNING
                    {
                        tracing::warn!(
                            secret_valid_until = %until,
                            "the client secret expires within 7 days; create the next secret on profile.intra.42.fr and configure it as the next secret"
                        );
                    }
                    // Any fetch counts as a refresh attempt, so a token just handed back is not
                    // asked for again by the proactive path a moment later.
                    st.last_soft_attempt = Some(inner.clock.now());
                    Counters::inc(&inner.counters.token_refreshes);
                    tracing::info!(%expires_at, reused, "access token obtained");
                    self.emit(ClientEvent::TokenRefreshed { expires_at, reused });
                    app.token.set(cached.clone());
                    return Ok(cached);
                }
                Outcome::TooMany { retry_after } => {
                    let wait = self.too_many(app, retry_after);
                    self.share_pause(app, wait).await;
                    if inner.clock.now().saturating_duration_since(started) + wait
                        > inner.retry.max_elapsed
                    {
                        return Err(ApiError::RateLimited {
                            endpoint: endpoint.to_string(),
                            waited: inner.clock.now().saturating_duration_since(started),
                        });
                    }
                }
                Outcome::Retryable { reason, error } => {
                    failures += 1;
                    let delay = self.backoff_delay(failures);
                    if failures >= inner.retry.max_attempts
                        || inner.clock.now().saturating_duration_since(started) + delay
                            > inner.retry.max_elapsed
                    {
                        return Err(self.redact(error));
                    }
                    tracing::warn!(attempt, ?delay, %reason, "retrying the token request");
                    Counters::inc(&inner.counters.retries);
                    self.emit(ClientEvent::Retry {
                        endpoint: endpoint.to_string(),
                        attempt,
                        wait: delay,
                        reason,
                    });
                    self.backoff(delay).await;
                }
                Outcome::Unauthorized => {
                    unreachable!("token requests are classified with api = false")
                }
                Outcome::Fatal(ApiError::Status { status, body, .. }) => {
                    let invalid_client = serde_json::from_str::<TokenErrorBody>(&body)
                        .ok()
                        .and_then(|b| b.error)
                        .is_some_and(|e| e == "invalid_client");
                    if invalid_client {
                        if st.secret_index + 1 < app.secrets.len() {
                            st.secret_index += 1;
                            tried_next = true;
                            tracing::warn!(
                                "the client secret was rejected (invalid_client); failing over to the next secret"
                            );
                            continue;
                        }
                        return Err(ApiError::SecretRejected {
                            secret_valid_until: st.secret_valid_until,
                            tried_next_secret: tried_next || st.secret_index > 0,
                        });
                    }
                    return Err(self.redact(ApiError::Token { status, body }));
                }
                Outcome::Fatal(e) => return Err(self.redact(e)),
            }
        }
    }
}

impl FtClient {
    /// Removes any configured secret from an error's quoted body: a proxy or a broken server
    /// could echo the token request's form body, and errors must never carry a secret.
    fn redact(&self, e: ApiError) -> ApiError {
        let scrub = |mut body: String| {
            for secret in self.inner.apps.iter().flat_map(|a| &a.secrets) {
                if !secret.expose().is_empty() {
                    let encoded: String =
                        url::form_urlencoded::byte_serialize(secret.expose().as_bytes()).collect();
                    body = body
                        .replace(secret.expose(), "[redacted]")
                        .replace(&encoded, "[redacted]");
                }
            }
            body
        };
        match e {
            ApiError::Status {
                endpoint,
                status,
                attempt,
                body,
                request_id,
            } => ApiError::Status {
                endpoint,
                status,
                attempt,
                body: scrub(body),
                request_id,
            },
            ApiError::Token { status, body } => ApiError::Token {
                status,
                body: scrub(body),
            },
            other => other,
        }
    }
}

fn transport_outcome(endpoint: &str, attempt: u32, e: reqwest::Error) -> Outcome {
    if e.is_timeout() {
        return Outcome::Retryable {
            reason: "timeout".into(),
            error: ApiError::Timeout {
                endpoint: endpoint.to_string(),
                attempt,
            },
        };
    }
    // The URL is stripped: a query never holds a secret today, but errors must never risk it.
    let e = e.without_url();
    let message = error_chain(&e);
    Outcome::Retryable {
        reason: format!("transport error: {message}"),
        error: ApiError::Transport {
            endpoint: endpoint.to_string(),
            attempt,
            message,
            source: e,
        },
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn is_html(headers: &HeaderMap, body: &[u8]) -> bool {
    header_str(headers, "content-type").is_some_and(|c| c.contains("text/html"))
        || body.trim_ascii_start().starts_with(b"<")
}

/// `Retry-After` in seconds (fractions tolerated) or as an HTTP date.
fn parse_retry_after(v: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(3600.0)));
    }
    let when = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    (when - now)
        .to_std()
        .ok()
        .map(|d| d.min(Duration::from_secs(3600)))
}

fn rate_headers(h: &HeaderMap) -> RateHeaders {
    let num = |name: &str| header_str(h, name).and_then(|v| v.trim().parse::<u32>().ok());
    RateHeaders {
        secondly_limit: num("x-secondly-ratelimit-limit"),
        secondly_remaining: num("x-secondly-ratelimit-remaining"),
        hourly_limit: num("x-hourly-ratelimit-limit"),
        hourly_remaining: num("x-hourly-ratelimit-remaining"),
        app_id: header_str(h, "x-application-id").map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = DateTime::parse_from_rfc2822("Sat, 28 Nov 2026 18:00:00 GMT")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 18:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

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

    /// The engine spawns these futures on a multi-threaded runtime.
    #[test]
    fn futures_and_streams_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let c = FtClient::builder()
            .client_id("u-x")
            .client_secret(ClientSecret::new("s-x"))
            .build()
            .unwrap();
        let q = Query::new();
        assert_send(&c.get_page::<crate::models::User>("/v2/users", &q));
        assert_send(&c.get_json("/v2/users", &q));
        assert_send(&c.get::<crate::models::UserDetail>("/v2/users/1", &q));
        assert_send(&c.probe_total("/v2/users", &q));
        assert_send(&c.ensure_token());
        assert_send(&c.token_info());
        assert_send(&c.stream_pages::<crate::models::User>("/v2/users", q.clone()));
        fn assert_sync<T: Send + Sync + Clone>(_: &T) {}
        assert_sync(&c);
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
