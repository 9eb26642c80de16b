//! `FtClient`: the typed calls and the request loop. For every request: pick the application
//! whose budget frees up soonest, get a usable token ([`crate::token`]), wait for the budget
//! (the pacer, then the shared budget), send, and act on the classified answer
//! ([`classify`]): 2xx is returned, 401 drops the token and replays once, 429 pauses the
//! budget for `Retry-After`, transport errors, timeouts, 5xx and HTML 403s back off with full
//! jitter, other 4xx fail at once. The builder lives in [`builder`].

mod builder;
mod classify;

pub use builder::{DEFAULT_BASE_URL, DEFAULT_USER_AGENT, FtClientBuilder};
pub(crate) use classify::{Outcome, Response, header_str};

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tracing::Instrument;

use crate::apps::{App, ApplicationStatus};
use crate::clock::Clock;
use crate::config::RetryConfig;
use crate::decode::{DriftLog, decode_items, decode_one};
use crate::error::{ApiError, truncate};
use crate::event::{BudgetSnapshot, ClientEvent, ClientStats, Counters};
use crate::models::TokenInfo;
use crate::pacer::{BucketParams, Ticket};
use crate::page::{Links, Page, RequestMeta};
use crate::query::Query;
use crate::shared_budget::{SharedBudget, SharedLimits};
use crate::token::TokenStatus;

/// The path of the token introspection endpoint.
const TOKEN_INFO_PATH: &str = "/oauth/token/info";

/// A client for the 42 API. Cheap to clone: clones share the token, the budget and counters.
#[derive(Debug, Clone)]
pub struct FtClient {
    pub(crate) inner: Arc<Inner>,
}

/// What the clones of a client share.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) token_url: String,
    /// The applications, the configured one first; never empty.
    pub(crate) apps: Vec<App>,
    /// A budget shared with other processes, taken after the application's own pacer.
    pub(crate) shared: Option<Arc<dyn SharedBudget>>,
    pub(crate) retry: RetryConfig,
    pub(crate) refresh_margin: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) counters: Counters,
    pub(crate) events: broadcast::Sender<ClientEvent>,
    pub(crate) drift: DriftLog,
}

impl FtClient {
    /// Starts building a client.
    pub fn builder() -> FtClientBuilder {
        FtClientBuilder::default()
    }

    /// Fetches one page of a list endpoint. `page` and `per_page` default to 1 and 100. An item
    /// that does not decode fails the whole page ([`ApiError::Decode`] naming it).
    pub async fn get_page<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Query,
    ) -> Result<Page<T>, ApiError> {
        self.fetch_page(path, query, false).await
    }

    /// Like [`FtClient::get_page`], but an item that does not decode is set aside in
    /// [`Page::rejected`] (with its raw JSON, its id when it has one, and the error) and the
    /// others are returned: one malformed row does not hold back the rest of its page. A body
    /// that is not a JSON array still fails.
    pub async fn get_page_lenient<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Query,
    ) -> Result<Page<T>, ApiError> {
        self.fetch_page(path, query, true).await
    }

    async fn fetch_page<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Query,
        lenient: bool,
    ) -> Result<Page<T>, ApiError> {
        let q = query.with_paging_defaults();
        let (resp, meta) = self.send(path, &q).await?;
        let (items, raw, rejected) = decode_items::<T>(
            path,
            &resp.body,
            &self.inner.drift,
            &self.inner.events,
            lenient,
        )?;
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
            rejected,
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

    pub(crate) fn emit(&self, event: ClientEvent) {
        let _ = self.inner.events.send(event);
    }

    pub(crate) fn url_for(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else if path.starts_with('/') {
            format!("{}{path}", self.inner.base)
        } else {
            format!("{}/{path}", self.inner.base)
        }
    }

    /// Waits for the application's budget (its pacer, then the budget shared with other
    /// processes if one is set), recording the wait. The ticket reports the answer to the
    /// pacer. Before the first request of an application, the shared budget's history of it
    /// is loaded into the pacer.
    pub(crate) async fn pace<'a>(&self, app: &'a App) -> Result<(Duration, Ticket<'a>), ApiError> {
        if let Some(shared) = &self.inner.shared {
            app.history_loaded
                .get_or_try_init(|| async {
                    let within = app.pacer.limits().hour + app.pacer.margin();
                    let history = shared
                        .history(app.client_id.as_str(), within)
                        .await
                        .map_err(|e| ApiError::SharedBudget { message: e.message })?;
                    tracing::debug!(
                        requests = history.len(),
                        "the application's requests of the last hour, from the shared budget"
                    );
                    app.pacer.seed(&history);
                    Ok::<(), ApiError>(())
                })
                .await?;
        }
        let events = self.inner.events.clone();
        let (mut waited, ticket) = app
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
            loop {
                let wait = shared
                    .reserve(app.client_id.as_str(), limits)
                    .await
                    .map_err(|e| ApiError::SharedBudget { message: e.message })?;
                let due = self.inner.clock.now() + wait;
                if !wait.is_zero() {
                    tracing::trace!(?wait, "waiting for the shared request budget");
                    let _ = events.send(ClientEvent::RateWait { wait });
                    self.inner.clock.sleep(wait).await;
                    waited += wait;
                }
                // The ledger holds this request at `due`, and its windows allow for one margin
                // of lateness. A process stopped past that (SIGSTOP, a VM or laptop paused, a
                // starved runtime) would send into windows that the other processes have
                // filled since: the old reservation is left to expire (a slot wasted, never
                // one too many) and the request reserves again.
                let late = self.inner.clock.now().saturating_duration_since(due);
                if late <= limits.margin {
                    break;
                }
                tracing::warn!(
                    late_ms = u64::try_from(late.as_millis()).unwrap_or(u64::MAX),
                    "a shared-budget reservation went stale (was this process paused?); reserving again"
                );
            }
            ticket.sending();
        }
        Counters::add_wait(&self.inner.counters.wait_nanos, waited);
        Counters::add_wait(&self.inner.counters.pacer_wait_nanos, waited);
        Ok((waited, ticket))
    }

    /// The active application whose budget frees up soonest (the first on a tie), or
    /// [`ApiError::SecretRejected`] when every application was rejected.
    pub(crate) fn pick_app(&self) -> Result<&App, ApiError> {
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
    pub(crate) fn on_token_error(&self, app: &App, e: ApiError) -> Result<(), ApiError> {
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
    pub(crate) async fn backoff(&self, d: Duration) {
        self.inner.clock.sleep(d).await;
        Counters::add_wait(&self.inner.counters.wait_nanos, d);
    }

    pub(crate) fn backoff_delay(&self, failures: u32) -> Duration {
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
    pub(crate) async fn send(
        &self,
        path: &str,
        query: &Query,
    ) -> Result<(Response, RequestMeta), ApiError> {
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

    pub(crate) async fn send_inner(
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
            let (waited, ticket) = self.pace(app).await?;
            meta.waited += waited;
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
                    ticket,
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
    pub(crate) fn too_many(&self, app: &App, retry_after: Option<Duration>) -> Duration {
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
    pub(crate) async fn share_pause(&self, app: &App, wait: Duration) {
        if let Some(shared) = &self.inner.shared
            && let Err(e) = shared.pause(app.client_id.as_str(), wait).await
        {
            tracing::warn!(error = %e, "cannot share the 429 pause with the other processes");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ClientSecret;

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
}
