//! The HTTP side: one wiremock `Respond` implementation that routes every request, and the
//! shared state it works on (dataset, applications, tokens, rate-limit windows, ledger, faults).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rand::RngExt;
use rand::rngs::ChaCha8Rng;
use serde_json::{Value, json};
use wiremock::{Request, Respond, ResponseTemplate};

use crate::config::{AppCredentials, Faults, LedgerEntry, Limits};
use crate::generate::rng_for;
use crate::model::{Record, RenderCtx};
use crate::query::{ListQuery, Page, QueryError, Scope, run};
use crate::store::{Store, Table};
use crate::time::{Ms, to_datetime};

/// Body of every 429, exactly as the real API sends it (plain text).
pub(crate) const TOO_MANY_REQUESTS: &str = "429 Too Many Requests (Spam Rate Limit Exceeded)";

/// How long a simulated application secret stays valid. Long enough that a client comparing
/// it with the wall clock (the simulator's clock starts at its epoch, weeks in the past) does
/// not warn about an expiring secret in every demo; tests that want an expiring secret rotate.
const SECRET_LIFETIME_S: i64 = 365 * 24 * 3600;

/// Settings fixed at start (faults and limits can change later through the handle).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) seed: u64,
    pub(crate) retry_after: bool,
    pub(crate) token_lifetime: Duration,
    pub(crate) always_new_token: bool,
    pub(crate) live_users: bool,
    pub(crate) faults: Faults,
    /// Hand the live token back until its very last second (`expires_in` possibly 0), as
    /// Doorkeeper does, instead of minting a new one when less than a second is left.
    pub(crate) reuse_until_expiry: bool,
    /// Largest simulated one-way network delay (see `SimBuilder::network_delay`); zero = off.
    pub(crate) network_delay: Duration,
}

/// One OAuth application with its own budget.
pub(crate) struct App {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) uid: String,
    pub(crate) secret: String,
    /// Unix seconds.
    pub(crate) secret_valid_until: i64,
    pub(crate) limits: Limits,
    /// When each counted request of this application arrived (time since start), ascending.
    /// With a simulated network delay, arrivals can be recorded out of order; they are inserted
    /// in place.
    pub(crate) hits: VecDeque<Duration>,
    pub(crate) live_token: Option<String>,
}

impl App {
    pub(crate) fn credentials(&self) -> AppCredentials {
        AppCredentials {
            client_id: self.uid.clone(),
            client_secret: self.secret.clone(),
        }
    }

    /// Counted requests in the window of length `window` that ends at `now` (arrivals after
    /// `now`, possible with a simulated network delay, are not in it yet).
    fn in_window(&self, now: Duration, window: Duration) -> usize {
        let start = self
            .hits
            .partition_point(|&t| now.saturating_sub(t) >= window);
        let end = self.hits.partition_point(|&t| t <= now);
        end.saturating_sub(start)
    }

    /// Records a counted arrival, keeping `hits` sorted.
    fn record_hit(&mut self, at: Duration) {
        let index = self.hits.partition_point(|&t| t <= at);
        self.hits.insert(index, at);
    }

    /// Whether one more arrival at `at` keeps every window of length `window` that contains it
    /// at `limit` or fewer arrivals (two arrivals share a window when they differ by less than
    /// `window`). Without a network delay this is "fewer than `limit` in the window ending at
    /// `at`"; with one, a request that arrives between two earlier-recorded ones is judged by
    /// every window it falls in, so whichever request of a bunch is judged last gets the 429,
    /// as the server would give one to the request that arrived last.
    fn fits(&self, at: Duration, window: Duration, limit: u32) -> bool {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let lo = self
            .hits
            .partition_point(|&t| at.saturating_sub(t) >= window && t < at);
        let hi = self.hits.partition_point(|&t| t < at + window);
        let mut near: Vec<Duration> = self.hits.range(lo..hi).copied().collect();
        let index = near.partition_point(|&t| t <= at);
        near.insert(index, at);
        let mut end = 0;
        for start in 0..=index {
            end = end.max(start);
            while end < near.len() && near[end] - near[start] < window {
                end += 1;
            }
            if end > index && end - start > limit {
                return false;
            }
        }
        true
    }

    /// How long until one more request fits into a window holding `count` of at most `limit`.
    fn wait_for(&self, now: Duration, window: Duration, limit: u32) -> Duration {
        let count = self.in_window(now, window);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        if count < limit || limit == 0 {
            return if limit == 0 { window } else { Duration::ZERO };
        }
        // The request that must leave the window is the `limit`-th most recent one.
        let index = self.hits.len() - limit;
        (self.hits[index] + window).saturating_sub(now)
    }
}

/// An issued access token.
pub(crate) struct TokenRec {
    pub(crate) app_id: u64,
    pub(crate) created: Duration,
    pub(crate) lifetime: Duration,
    pub(crate) revoked: bool,
}

/// Everything the server and the handle share, behind one mutex.
pub(crate) struct State {
    pub(crate) store: Store,
    pub(crate) config: Config,
    pub(crate) apps: Vec<App>,
    pub(crate) tokens: HashMap<String, TokenRec>,
    pub(crate) ledger: Vec<LedgerEntry>,
    pub(crate) fault_rng: ChaCha8Rng,
    pub(crate) secret_rng: ChaCha8Rng,
    pub(crate) drift_rng: ChaCha8Rng,
    pub(crate) net_rng: ChaCha8Rng,
    pub(crate) v2_requests: u64,
    pub(crate) request_seq: u64,
    pub(crate) epoch: Ms,
    pub(crate) started: Instant,
    /// Latest timestamp handed out by drift; later stamps are strictly greater.
    pub(crate) last_stamp: Ms,
    pub(crate) base_url: String,
    /// The real API's traps (`crate::traps`), off unless configured.
    pub(crate) traps: crate::traps::TrapState,
}

impl State {
    pub(crate) fn new(store: Store, config: Config, epoch: Ms, limits: Limits) -> Self {
        let seed = config.seed;
        let mut state = Self {
            store,
            config,
            apps: Vec::new(),
            tokens: HashMap::new(),
            ledger: Vec::new(),
            fault_rng: rng_for(seed, u64::MAX - 1),
            secret_rng: rng_for(seed, u64::MAX - 2),
            drift_rng: rng_for(seed, u64::MAX - 3),
            net_rng: rng_for(seed, u64::MAX - 4),
            v2_requests: 0,
            request_seq: 0,
            epoch,
            started: Instant::now(),
            last_stamp: epoch,
            base_url: String::new(),
            traps: crate::traps::TrapState::new(seed),
        };
        state.add_app(limits);
        state
    }

    /// Simulated time now, in milliseconds (the fixed epoch plus real elapsed time).
    pub(crate) fn now_ms(&self) -> Ms {
        self.epoch + i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX / 2)
    }

    /// A timestamp for a change made now: the simulated time, but always strictly after any
    /// stamp handed out before, so deltas by `updated_at` never miss a change.
    pub(crate) fn stamp(&mut self) -> Ms {
        let stamp = self.now_ms().max(self.last_stamp + 1);
        self.last_stamp = stamp;
        stamp
    }

    /// The forward and return delays of one request over the simulated network: each uniform
    /// in `[0, network_delay]`, drawn from their own seeded generator (so turning the delay on
    /// does not shift the fault sequence of a seed). Zero when the delay is off.
    fn network_delays(&mut self) -> (Duration, Duration) {
        let max = self.config.network_delay;
        if max.is_zero() {
            return (Duration::ZERO, Duration::ZERO);
        }
        let forward = max.mul_f64(self.net_rng.random::<f64>());
        let back = max.mul_f64(self.net_rng.random::<f64>());
        (forward, back)
    }

    fn hex(&mut self, bytes: usize) -> String {
        (0..bytes)
            .map(|_| format!("{:02x}", self.secret_rng.random::<u8>()))
            .collect()
    }

    pub(crate) fn add_app(&mut self, limits: Limits) -> AppCredentials {
        let id = self.apps.len() as u64 + 1;
        let uid = format!("u-s4t2ud-{}", self.hex(32));
        let secret = format!("s-s4t2ud-{}", self.hex(32));
        let valid = self.now_ms() / 1000 + SECRET_LIFETIME_S;
        self.apps.push(App {
            id,
            name: if id == 1 {
                "ft42 sync".to_owned()
            } else {
                format!("ft42 sync {id}")
            },
            uid,
            secret,
            secret_valid_until: valid,
            limits,
            hits: VecDeque::new(),
            live_token: None,
        });
        self.apps[self.apps.len() - 1].credentials()
    }

    pub(crate) fn rotate_secret(&mut self, app_id: u64) -> AppCredentials {
        let secret = format!("s-s4t2ud-{}", self.hex(32));
        let valid = self.now_ms() / 1000 + SECRET_LIFETIME_S;
        let app = &mut self.apps[usize::try_from(app_id - 1).unwrap_or(0)];
        app.secret = secret;
        app.secret_valid_until = valid;
        app.credentials()
    }

    /// Spends `count` requests of an application's budget now, as another program sharing the
    /// application would. The ledger records them as counted `(co-consumer)` entries.
    pub(crate) fn consume_budget(&mut self, app_id: u64, count: usize) {
        let at = self.started.elapsed();
        for _ in 0..count {
            self.app_mut(app_id).record_hit(at);
            self.ledger.push(LedgerEntry {
                at,
                method: "-".to_owned(),
                path: "(co-consumer)".to_owned(),
                query: String::new(),
                status: 200,
                counted: true,
                app_id: Some(app_id),
            });
        }
    }

    pub(crate) fn revoke_tokens(&mut self) {
        for token in self.tokens.values_mut() {
            token.revoked = true;
        }
        for app in &mut self.apps {
            app.live_token = None;
        }
    }

    fn app(&self, id: u64) -> &App {
        &self.apps[usize::try_from(id - 1).unwrap_or(0)]
    }

    fn app_mut(&mut self, id: u64) -> &mut App {
        &mut self.apps[usize::try_from(id - 1).unwrap_or(0)]
    }
}

/// Locks the shared state, recovering from a poisoned lock (a panic in one request must not
/// take the whole simulator down).
pub(crate) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An answer under construction.
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) mime: &'static str,
    pub(crate) body: Vec<u8>,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) delay: Option<Duration>,
}

impl Resp {
    pub(crate) fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            mime: "application/json; charset=utf-8",
            body: value.to_string().into_bytes(),
            headers: Vec::new(),
            delay: None,
        }
    }

    pub(crate) fn text(status: u16, mime: &'static str, body: impl Into<String>) -> Self {
        Self {
            status,
            mime,
            body: body.into().into_bytes(),
            headers: Vec::new(),
            delay: None,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

fn html_page(status: u16, title: &str) -> Resp {
    Resp::text(
        status,
        "text/html; charset=utf-8",
        format!(
            "<!DOCTYPE html>\n<html>\n<head><title>{title}</title></head>\n<body><h1>{title}</h1></body>\n</html>\n"
        ),
    )
}

fn cloudflare_challenge() -> Resp {
    Resp::text(
        403,
        "text/html; charset=UTF-8",
        "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title>\
         <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\"></head>\
         <body><div class=\"main-wrapper\" role=\"main\"><div class=\"main-content\">\
         <h1 class=\"zone-name-title h1\">api.intra.42.fr</h1>\
         <h2 class=\"h2\">Checking if the site connection is secure</h2></div></div></body></html>",
    )
    .header("server", "cloudflare")
    .header("cf-mitigated", "challenge")
    .header(
        "cache-control",
        "private, max-age=0, no-store, no-cache, must-revalidate",
    )
}

pub(crate) fn not_found_json() -> Resp {
    Resp::json(404, &json!({}))
}

/// The wiremock responder: every request goes through here.
pub(crate) struct SimResponder {
    pub(crate) state: Arc<Mutex<State>>,
}

impl Respond for SimResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let began = Instant::now();
        let mut state = lock(&self.state);
        // With a simulated network, the request reaches the server (and its rate limiter) a
        // random time after the client sent it, and the answer takes as long to come back.
        let (forward, back) = state.network_delays();
        let at = state.started.elapsed() + forward;
        state.request_seq += 1;
        let (mut resp, counted, app_id) = handle(&mut state, request, at);
        if !(forward + back).is_zero() {
            resp.delay = Some(resp.delay.unwrap_or_default() + forward + back);
        }
        let query = ledger_query(&request.url);
        state.ledger.push(LedgerEntry {
            at,
            method: request.method.as_str().to_owned(),
            path: request.url.path().to_owned(),
            query,
            status: resp.status,
            counted,
            app_id,
        });
        let seq = state.request_seq ^ state.config.seed.rotate_left(17);
        let date = to_datetime(state.now_ms())
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        drop(state);

        let mut template = ResponseTemplate::new(resp.status);
        for (name, value) in &resp.headers {
            template = template.insert_header(*name, value.as_str());
        }
        template = template
            .insert_header("x-request-id", request_id(seq))
            .insert_header("x-runtime", format!("{:.6}", began.elapsed().as_secs_f64()))
            .insert_header("date", date)
            .set_body_raw(resp.body, resp.mime);
        if let Some(delay) = resp.delay {
            template = template.set_delay(delay);
        }
        template
    }
}

/// The query string for the ledger, with an `access_token` value redacted (the ledger is
/// printed by failing tests and must not carry secrets).
fn ledger_query(url: &url::Url) -> String {
    let raw = url.query().unwrap_or_default();
    if !url.query_pairs().any(|(key, _)| key == "access_token") {
        return raw.to_owned();
    }
    raw.split('&')
        .map(|pair| {
            if pair.starts_with("access_token=") {
                "access_token=[redacted]"
            } else {
                pair
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn request_id(seq: u64) -> String {
    // splitmix64 spreads a counter into uuid-looking hex.
    let mut x = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let y = x ^ (x >> 31);
    let z = y.rotate_left(29).wrapping_mul(0x2545_F491_4F6C_DD1D);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        y >> 32,
        (y >> 16) & 0xffff,
        y & 0xfff,
        z >> 52,
        z & 0xffff_ffff_ffff
    )
}

/// Returns the answer, whether the request was counted, and the application it belonged to.
fn handle(state: &mut State, request: &Request, at: Duration) -> (Resp, bool, Option<u64>) {
    let has_agent = request
        .headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty());
    if !has_agent {
        return (cloudflare_challenge(), false, None);
    }
    let path = request.url.path();
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    match path {
        "/oauth/token" | "/v2/oauth/token" => {
            let rate = state.config.faults.token_error_rate;
            // Drawn only when enabled, so turning it on does not shift the /v2 fault sequence
            // of existing seeds.
            if rate > 0.0 && state.fault_rng.random::<f64>() < rate {
                return (html_page(503, "Service Unavailable"), false, None);
            }
            if request.method.as_str() == "POST" {
                let (resp, app) = token_endpoint(state, request, at);
                (resp, false, app)
            } else {
                (
                    html_page(404, "The page you were looking for doesn't exist (404)"),
                    false,
                    None,
                )
            }
        }
        "/oauth/token/info" | "/v2/oauth/token/info" => {
            let (resp, app) = token_info(state, request, at);
            (resp, false, app)
        }
        p if p == "/v2" || p.starts_with("/v2/") => v2(state, request, path, at),
        _ => (
            html_page(404, "The page you were looking for doesn't exist (404)"),
            false,
            None,
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// OAuth

fn oauth_error(status: u16, error: &str, description: &str) -> Resp {
    Resp::json(
        status,
        &json!({"error": error, "error_description": description}),
    )
    .header(
        "www-authenticate",
        format!("Bearer realm=\"42 API\", error=\"{error}\", error_description=\"{description}\""),
    )
}

const INVALID_CLIENT: &str = "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.";

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.trim().bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

fn form_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn token_endpoint(state: &mut State, request: &Request, at: Duration) -> (Resp, Option<u64>) {
    let mut params: HashMap<String, String> = request
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let content_type = request
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.contains("json") {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&request.body) {
            for (key, value) in map {
                let text = match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                params.insert(key, text);
            }
        }
    } else {
        for (key, value) in url::form_urlencoded::parse(&request.body) {
            params.insert(key.into_owned(), value.into_owned());
        }
    }
    if let Some(basic) = request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
    {
        let decoded = decode_base64(basic)
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        if let Some((id, secret)) = decoded.split_once(':') {
            params.insert("client_id".to_owned(), form_decode(id));
            params.insert("client_secret".to_owned(), form_decode(secret));
        }
    }

    let Some(grant_type) = params.get("grant_type") else {
        return (
            Resp::json(
                400,
                &json!({"error": "invalid_request", "error_description": "The request is missing a required parameter, includes an unsupported parameter value, or is otherwise malformed."}),
            ),
            None,
        );
    };
    if grant_type != "client_credentials" {
        return (
            oauth_error(
                400,
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server.",
            ),
            None,
        );
    }
    let client_id = params.get("client_id").cloned().unwrap_or_default();
    let secret = params.get("client_secret").cloned().unwrap_or_default();
    let Some(app_id) = state
        .apps
        .iter()
        .find(|a| a.uid == client_id && a.secret == secret)
        .map(|a| a.id)
    else {
        return (oauth_error(401, "invalid_client", INVALID_CLIENT), None);
    };

    let lifetime = state.config.token_lifetime;
    let guard = if state.config.reuse_until_expiry {
        Duration::ZERO
    } else {
        Duration::from_secs(1)
    };
    let reuse = if state.config.always_new_token {
        None
    } else {
        state.app(app_id).live_token.clone().filter(|token| {
            state
                .tokens
                .get(token)
                .is_some_and(|t| !t.revoked && t.created + t.lifetime > at + guard)
        })
    };
    let token = match reuse {
        Some(token) => token,
        None => {
            let token = state.hex(32);
            state.tokens.insert(
                token.clone(),
                TokenRec {
                    app_id,
                    created: at,
                    lifetime,
                    revoked: false,
                },
            );
            state.app_mut(app_id).live_token = Some(token.clone());
            token
        }
    };
    let rec = &state.tokens[&token];
    let expires_in = (rec.created + rec.lifetime).saturating_sub(at).as_secs();
    let created_at = (state.epoch + i64::try_from(rec.created.as_millis()).unwrap_or(0)) / 1000;
    let body = json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": expires_in,
        "scope": "public",
        "created_at": created_at,
        "secret_valid_until": state.app(app_id).secret_valid_until
    });
    (
        Resp::json(200, &body)
            .header("cache-control", "no-store")
            .header("pragma", "no-cache"),
        Some(app_id),
    )
}

/// Why a token was refused.
enum TokenProblem {
    Invalid,
    Expired,
    Revoked,
}

impl TokenProblem {
    fn description(&self) -> &'static str {
        match self {
            TokenProblem::Invalid => "The access token is invalid",
            TokenProblem::Expired => "The access token expired",
            TokenProblem::Revoked => "The access token was revoked",
        }
    }
}

fn bearer(request: &Request) -> Option<String> {
    let header = request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    header.or_else(|| {
        request
            .url
            .query_pairs()
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
    })
}

fn check_token(
    state: &State,
    request: &Request,
    at: Duration,
) -> Result<(u64, String), TokenProblem> {
    let token = bearer(request).ok_or(TokenProblem::Invalid)?;
    let rec = state.tokens.get(&token).ok_or(TokenProblem::Invalid)?;
    if rec.revoked {
        return Err(TokenProblem::Revoked);
    }
    if rec.created + rec.lifetime <= at {
        return Err(TokenProblem::Expired);
    }
    Ok((rec.app_id, token))
}

fn token_info(state: &mut State, request: &Request, at: Duration) -> (Resp, Option<u64>) {
    match check_token(state, request, at) {
        Ok((app_id, token)) => {
            let rec = &state.tokens[&token];
            let body = json!({
                "resource_owner_id": null,
                "scopes": ["public"],
                "expires_in_seconds": (rec.created + rec.lifetime).saturating_sub(at).as_secs(),
                "application": {"uid": state.app(app_id).uid},
                "created_at": (state.epoch + i64::try_from(rec.created.as_millis()).unwrap_or(0)) / 1000
            });
            (Resp::json(200, &body), Some(app_id))
        }
        Err(problem) => {
            let description = problem.description();
            (
                Resp::json(401, &json!({"error": "invalid_token", "error_description": description, "state": "unauthorized"}))
                    .header("www-authenticate", format!("Bearer realm=\"42 API\", error=\"invalid_token\", error_description=\"{description}\"")),
                None,
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// /v2

fn rate_headers(resp: Resp, app: &App, now: Duration) -> Resp {
    let limits = app.limits;
    let second_left = u64::from(limits.per_second)
        .saturating_sub(app.in_window(now, limits.second_window) as u64);
    let hour_left =
        u64::from(limits.per_hour).saturating_sub(app.in_window(now, limits.hour_window) as u64);
    resp.header("x-secondly-ratelimit-limit", limits.per_second.to_string())
        .header("x-secondly-ratelimit-remaining", second_left.to_string())
        .header("x-hourly-ratelimit-limit", limits.per_hour.to_string())
        .header("x-hourly-ratelimit-remaining", hour_left.to_string())
        .header("x-application-id", app.id.to_string())
        .header("x-application-name", app.name.clone())
        .header("x-application-roles", "None")
}

fn too_many(state: &State, app_id: u64, at: Duration, spontaneous: bool) -> Resp {
    let app = state.app(app_id);
    let limits = app.limits;
    let wait = if spontaneous {
        Duration::from_secs(1)
    } else {
        app.wait_for(at, limits.second_window, limits.per_second)
            .max(app.wait_for(at, limits.hour_window, limits.per_hour))
    };
    let mut resp = rate_headers(
        Resp::text(429, "text/plain; charset=utf-8", TOO_MANY_REQUESTS),
        app,
        at,
    );
    if state.config.retry_after {
        // Whole seconds, rounded up, at least one: a client that sleeps this long gets through.
        let secs = wait.as_millis().div_ceil(1000).max(1);
        resp = resp.header("retry-after", secs.to_string());
    }
    resp
}

fn v2(state: &mut State, request: &Request, path: &str, at: Duration) -> (Resp, bool, Option<u64>) {
    let app_id = match check_token(state, request, at) {
        Ok((app_id, _)) => app_id,
        Err(problem) => {
            let description = problem.description();
            let resp = Resp::json(401, &json!({"error": "Not authorized", "message": description})).header(
                "www-authenticate",
                format!("Bearer realm=\"42 API\", error=\"invalid_token\", error_description=\"{description}\""),
            );
            return (resp, false, None);
        }
    };
    // Draw every fault roll up front, so one request always consumes the same randomness.
    let rolls: [f64; 8] = std::array::from_fn(|_| state.fault_rng.random::<f64>());
    let faults = state.config.faults.clone();
    if rolls[0] < faults.spontaneous_429_rate {
        return (too_many(state, app_id, at, true), false, Some(app_id));
    }
    let limits = state.app(app_id).limits;
    {
        let app = state.app_mut(app_id);
        let keep = limits.hour_window.max(limits.second_window);
        while app
            .hits
            .front()
            .is_some_and(|&t| at.saturating_sub(t) >= keep)
        {
            app.hits.pop_front();
        }
    }
    let app = state.app(app_id);
    if !app.fits(at, limits.second_window, limits.per_second)
        || !app.fits(at, limits.hour_window, limits.per_hour)
    {
        return (too_many(state, app_id, at, false), false, Some(app_id));
    }
    state.app_mut(app_id).record_hit(at);
    state.v2_requests += 1;
    let revoke_now = faults
        .revoke_token_every
        .is_some_and(|n| n > 0 && state.v2_requests.is_multiple_of(n));

    let mut resp = if rolls[1] < faults.error_5xx_rate {
        let status = [500, 502, 503][(rolls[2] * 3.0) as usize % 3];
        if rolls[2] < 0.5 {
            Resp::json(
                status,
                &json!({"status": status, "error": "Internal Server Error"}),
            )
        } else {
            html_page(status, "We're sorry, but something went wrong.")
        }
    } else if request.method.as_str() != "GET" {
        html_page(404, "The page you were looking for doesn't exist (404)")
    } else {
        crate::traps::before_route(state, request, path)
            .unwrap_or_else(|| route(state, request, path))
    };
    if resp.status == 200 && rolls[3] < faults.malformed_rate {
        resp.body = if rolls[4] < 0.5 {
            let cut = resp.body.len() / 2;
            resp.body[..cut].to_vec()
        } else {
            let mut broken = b"[{\"id\": NaN, ".to_vec();
            broken.extend_from_slice(&resp.body[resp.body.len().min(1)..]);
            broken
        };
    }
    crate::traps::after_route(state, &mut resp);
    if rolls[5] < faults.hang_rate {
        resp.delay = Some(faults.hang_delay);
    } else if rolls[6] < faults.slow_rate {
        resp.delay = Some(faults.slow_delay);
    } else if !faults.jitter_max.is_zero() {
        resp.delay = Some(faults.jitter_max.mul_f64(rolls[7]));
    }
    let resp = rate_headers(resp, state.app(app_id), at)
        .header("cache-control", "max-age=0, private, must-revalidate")
        .header("vary", "Origin");
    if revoke_now {
        state.revoke_tokens();
    }
    (resp, true, Some(app_id))
}

fn parse_ids(text: &str) -> Vec<i64> {
    text.split(',')
        .filter_map(|part| part.trim().parse().ok())
        .collect()
}

fn list<R: Record>(state: &State, request: &Request, table: &Table<R>, scope: &Scope<'_>) -> Resp {
    let mut query = ListQuery::parse(&request.url);
    crate::traps::adjust_query(state, request.url.path(), &mut query);
    let ctx = RenderCtx::new(&state.store, state.config.live_users);
    match run(table, &query, scope, state.now_ms(), &ctx) {
        Ok(page) => page_response(state, request, &query, page),
        Err(QueryError { error, message }) => {
            Resp::json(400, &json!({"error": error, "message": message}))
        }
    }
}

fn page_response(state: &State, request: &Request, query: &ListQuery, page: Page) -> Resp {
    let mut items = page.items;
    crate::traps::poison_items(state, request.url.path(), &mut items);
    let body = Value::Array(items);
    let per_page = query.per_page;
    let last = page.total.div_ceil(per_page).max(1);
    let link_to = |number: usize| -> String {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in &query.others {
            serializer.append_pair(key, value);
        }
        if query.bracket_syntax {
            serializer.append_pair("page[number]", &number.to_string());
            serializer.append_pair("page[size]", &per_page.to_string());
        } else {
            serializer.append_pair("page", &number.to_string());
            serializer.append_pair("per_page", &per_page.to_string());
        }
        format!(
            "{}{}?{}",
            state.base_url,
            request.url.path(),
            serializer.finish()
        )
    };
    let mut links = Vec::new();
    if query.page > 1 {
        links.push(format!("<{}>; rel=\"first\"", link_to(1)));
        links.push(format!(
            "<{}>; rel=\"prev\"",
            link_to((query.page - 1).min(last))
        ));
    }
    if query.page < last {
        links.push(format!("<{}>; rel=\"next\"", link_to(query.page + 1)));
        links.push(format!("<{}>; rel=\"last\"", link_to(last)));
    }
    let mut resp = Resp::json(200, &body)
        .header("x-page", query.page.to_string())
        .header("x-per-page", per_page.to_string())
        .header("x-total", page.total.to_string());
    if !links.is_empty() {
        resp = resp.header("link", links.join(", "));
    }
    let etag = resp.body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    resp.header("etag", format!("W/\"{etag:016x}\""))
}

fn detail<R: Record>(state: &State, table: &Table<R>, id: Option<i64>) -> Resp {
    let ctx = RenderCtx::new(&state.store, state.config.live_users);
    match id.and_then(|id| table.rows.get(&id)) {
        Some(row) => Resp::json(200, &row.render(&ctx)),
        None => not_found_json(),
    }
}

fn user_id_of(store: &Store, key: &str) -> Option<i64> {
    match key.parse::<i64>() {
        Ok(id) => store.users.rows.contains_key(&id).then_some(id),
        Err(_) => store.logins.get(key).copied(),
    }
}

fn user_detail(state: &State, id: i64) -> Resp {
    let store = &state.store;
    let ctx = RenderCtx::new(store, state.config.live_users);
    let Some(user) = store.users.rows.get(&id) else {
        return not_found_json();
    };
    let mut value = user.data.render_short();
    let cursus_users: Vec<Value> = store
        .cursus_users
        .ids_of_user(id)
        .iter()
        .filter_map(|cid| store.cursus_users.rows.get(cid))
        .map(|cu| cu.render_without_user(&ctx))
        .collect();
    let projects_users: Vec<Value> = store
        .projects_users
        .ids_of_user(id)
        .iter()
        .filter_map(|pid| store.projects_users.rows.get(pid))
        .map(|pu| pu.render_light(&ctx))
        .collect();
    let achievements: Vec<Value> = store
        .achievements_users
        .ids_of_user(id)
        .iter()
        .filter_map(|aid| store.achievements_users.rows.get(aid))
        .filter_map(|au| store.achievements.rows.get(&au.achievement_id))
        .map(crate::model::Achievement::render_short)
        .collect();
    let campus_users: Vec<&crate::model::CampusUser> = store
        .campus_users
        .ids_of_user(id)
        .iter()
        .filter_map(|cid| store.campus_users.rows.get(cid))
        .collect();
    let campus: Vec<Value> = campus_users
        .iter()
        .filter_map(|cu| store.campuses.rows.get(&cu.campus_id))
        .map(crate::model::Campus::render_value)
        .collect();
    let campus_users: Vec<Value> = campus_users.iter().map(|cu| cu.render(&ctx)).collect();
    if let Value::Object(map) = &mut value {
        map.insert("groups".to_owned(), json!([]));
        map.insert("cursus_users".to_owned(), Value::Array(cursus_users));
        map.insert("projects_users".to_owned(), Value::Array(projects_users));
        map.insert("languages_users".to_owned(), json!([]));
        map.insert("achievements".to_owned(), Value::Array(achievements));
        map.insert("titles".to_owned(), json!([]));
        map.insert("titles_users".to_owned(), json!([]));
        map.insert("partnerships".to_owned(), json!([]));
        map.insert("patroned".to_owned(), json!([]));
        map.insert("patroning".to_owned(), json!([]));
        map.insert("expertises_users".to_owned(), json!([]));
        map.insert("roles".to_owned(), json!([]));
        map.insert("campus".to_owned(), Value::Array(campus));
        map.insert("campus_users".to_owned(), Value::Array(campus_users));
    }
    Resp::json(200, &value)
}

fn scoped(field: &'static str, ids: Vec<i64>) -> Scope<'static> {
    Scope {
        implicit: vec![(field, ids)],
        user_set: None,
    }
}

fn route(state: &State, request: &Request, path: &str) -> Resp {
    let store = &state.store;
    let segments: Vec<&str> = path.split('/').skip(2).filter(|s| !s.is_empty()).collect();
    let none = Scope::default();
    let not_found = || html_page(404, "The page you were looking for doesn't exist (404)");
    let parents = |ids: &[i64], exists: &dyn Fn(i64) -> bool| ids.iter().any(|&id| exists(id));
    match segments.as_slice() {
        ["campus"] => list(state, request, &store.campuses, &none),
        ["campus", id] => detail(state, &store.campuses, id.parse().ok()),
        ["campus", ids, "users"] => {
            let ids = parse_ids(ids);
            if !parents(&ids, &|id| store.campuses.rows.contains_key(&id)) {
                return not_found_json();
            }
            let union: BTreeSet<i64>;
            let set = if ids.len() == 1 {
                store.users_by_campus.get(&ids[0])
            } else {
                union = ids
                    .iter()
                    .filter_map(|id| store.users_by_campus.get(id))
                    .flatten()
                    .copied()
                    .collect();
                Some(&union)
            };
            let empty = BTreeSet::new();
            let scope = Scope {
                implicit: Vec::new(),
                user_set: Some(set.unwrap_or(&empty)),
            };
            list(state, request, &store.users, &scope)
        }
        ["campus", ids, "locations"] | ["campus", ids, "campus_users"] => {
            let ids = parse_ids(ids);
            if !parents(&ids, &|id| store.campuses.rows.contains_key(&id)) {
                return not_found_json();
            }
            if segments[2] == "locations" {
                list(state, request, &store.locations, &scoped("campus_id", ids))
            } else {
                list(
                    state,
                    request,
                    &store.campus_users,
                    &scoped("campus_id", ids),
                )
            }
        }
        ["users"] => list(state, request, &store.users, &none),
        ["users", key] => match user_id_of(store, key) {
            Some(id) => user_detail(state, id),
            None => not_found_json(),
        },
        ["users", key, relation] => {
            let Some(user_id) = user_id_of(store, key) else {
                return not_found_json();
            };
            let scope = scoped("user_id", vec![user_id]);
            match *relation {
                "projects_users" => list(state, request, &store.projects_users, &scope),
                "cursus_users" => list(state, request, &store.cursus_users, &scope),
                "locations" => list(state, request, &store.locations, &scope),
                "achievements_users" => list(state, request, &store.achievements_users, &scope),
                "coalitions_users" => list(state, request, &store.coalitions_users, &scope),
                "campus_users" => list(state, request, &store.campus_users, &scope),
                _ => not_found(),
            }
        }
        ["campus_users"] => list(state, request, &store.campus_users, &none),
        ["campus_users", id] => detail(state, &store.campus_users, id.parse().ok()),
        ["cursus"] => list(state, request, &store.cursus, &none),
        ["cursus", id] => detail(state, &store.cursus, id.parse().ok()),
        ["cursus", ids, "cursus_users"] | ["cursus", ids, "projects"] => {
            let ids = parse_ids(ids);
            if !parents(&ids, &|id| store.cursus.rows.contains_key(&id)) {
                return not_found_json();
            }
            if segments[2] == "projects" {
                list(state, request, &store.projects, &scoped("cursus", ids))
            } else {
                list(
                    state,
                    request,
                    &store.cursus_users,
                    &scoped("cursus_id", ids),
                )
            }
        }
        ["cursus", ids, "users"] => {
            let ids = parse_ids(ids);
            if !parents(&ids, &|id| store.cursus.rows.contains_key(&id)) {
                return not_found_json();
            }
            // Users with a cursus_user in one of these cursus (one pass over cursus_users).
            let members: BTreeSet<i64> = store
                .cursus_users
                .rows
                .values()
                .filter(|cu| ids.contains(&cu.cursus_id))
                .map(|cu| cu.user.id)
                .collect();
            let scope = Scope {
                implicit: Vec::new(),
                user_set: Some(&members),
            };
            list(state, request, &store.users, &scope)
        }
        ["cursus_users"] => list(state, request, &store.cursus_users, &none),
        ["cursus_users", id] => detail(state, &store.cursus_users, id.parse().ok()),
        ["projects"] => list(state, request, &store.projects, &none),
        ["projects", key] => {
            let id = key.parse().ok().or_else(|| {
                store
                    .projects
                    .rows
                    .values()
                    .find(|p| p.slug == *key)
                    .map(|p| p.id)
            });
            detail(state, &store.projects, id)
        }
        ["projects", ids, "projects_users"] => {
            let ids = parse_ids(ids);
            if !parents(&ids, &|id| store.projects.rows.contains_key(&id)) {
                return not_found_json();
            }
            list(
                state,
                request,
                &store.projects_users,
                &scoped("project_id", ids),
            )
        }
        ["projects_users"] => list(state, request, &store.projects_users, &none),
        ["projects_users", id] => detail(state, &store.projects_users, id.parse().ok()),
        ["achievements"] => list(state, request, &store.achievements, &none),
        ["achievements", id] => detail(state, &store.achievements, id.parse().ok()),
        ["achievements", ids, "achievements_users"] => {
            let ids = parse_ids(ids);
            if !parents(&ids, &|id| store.achievements.rows.contains_key(&id)) {
                return not_found_json();
            }
            list(
                state,
                request,
                &store.achievements_users,
                &scoped("achievement_id", ids),
            )
        }
        ["achievements_users"] => list(state, request, &store.achievements_users, &none),
        ["achievements_users", id] => detail(state, &store.achievements_users, id.parse().ok()),
        ["locations"] => list(state, request, &store.locations, &none),
        ["coalitions"] => list(state, request, &store.coalitions, &none),
        ["coalitions", id] => detail(state, &store.coalitions, id.parse().ok()),
        ["coalitions", ids, "coalitions_users"] => {
            let ids = parse_ids(ids);
            if !parents(&ids, &|id| store.coalitions.rows.contains_key(&id)) {
                return not_found_json();
            }
            list(
                state,
                request,
                &store.coalitions_users,
                &scoped("coalition_id", ids),
            )
        }
        ["blocs"] => list(state, request, &store.blocs, &none),
        ["blocs", id] => detail(state, &store.blocs, id.parse().ok()),
        ["coalitions_users"] => list(state, request, &store.coalitions_users, &none),
        ["coalitions_users", id] => detail(state, &store.coalitions_users, id.parse().ok()),
        // `/v2/locations/:id` does not exist in the real API either (it answers `{}`).
        ["locations", _] | ["me"] => not_found_json(),
        _ => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_basic_credentials() {
        assert_eq!(decode_base64("dTpz").as_deref(), Some(&b"u:s"[..]));
        assert_eq!(
            decode_base64("YWJjOmRlZg==").as_deref(),
            Some(&b"abc:def"[..])
        );
        assert_eq!(decode_base64("not base64!"), None);
    }

    #[test]
    fn request_ids_look_like_uuids_and_differ() {
        let (a, b) = (request_id(1), request_id(2));
        assert_eq!(a.len(), 36);
        assert_ne!(a, b);
    }
}
