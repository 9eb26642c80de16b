//! A faithful, stateful fake of the 42 intra API v2 (tokens, rate limits, pagination, filters,
//! drift and faults), used by every test, demo and benchmark of ft42.
//!
//! # Use
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! let sim = ft_sim::Sim::builder()
//!     .seed(42)
//!     .campuses(2)
//!     .users_per_campus(500)
//!     .limits(ft_sim::Limits { per_second: 2, per_hour: 1200,
//!         second_window: Duration::from_secs(1), hour_window: Duration::from_secs(3600) })
//!     .start()
//!     .await;
//! let token_url = format!("{}/oauth/token", sim.base_url());
//! let creds = sim.credentials();
//! // ... sync against sim.base_url() ...
//! let truth = sim.truth();          // what the synced database must equal
//! let peak = sim.max_in_window(Duration::from_secs(1)); // proves pacing
//! # let _ = (token_url, creds, truth, peak);
//! # }
//! ```
//!
//! # Model
//!
//! * **Dataset.** Generated from a seed and a scale (campuses × users per campus): campuses,
//!   cursus 9 (C Piscine) and 21 (42cursus), ~63 projects, 40 achievements, one bloc with four
//!   coalitions per campus, and per user: 1–2 campus_users (6 % of users sit on two campuses),
//!   1–2 cursus_users (future piscines, ongoing piscines, blackholed students), ~25 (0–46)
//!   projects_users (every status the reference lists, `final_mark` null, -42, 0–125), 5–15
//!   achievements_users, 12–28 locations (some users have an open session), one
//!   coalitions_user for cursus students. Some users are anonymised (`3b3-<id>`), some have an
//!   all-null `image`, a few rows carry fields clients do not know (`pronoun` on users, the old
//!   `floor`/`row`/`post` keys on locations). Each user is generated from its own random stream
//!   `(seed, user id)`, so the data does not depend on generation order.
//! * **Shapes.** Every row renders through one function per table, so the same row has the same
//!   JSON under every route that lists it (`/v2/users` and `/v2/campus/1/users`,
//!   `/v2/cursus_users` and `/v2/cursus/21/cursus_users`, ...). [`SimHandle::truth`] renders the
//!   same way. Relation rows embed the short user shape.
//! * **Clock.** Simulated time = a fixed epoch (2026-11-01T00:00:00Z unless
//!   [`SimBuilder::epoch`] says otherwise) + real elapsed time, in milliseconds. Every generated
//!   `created_at`/`updated_at` lies before the epoch; drift stamps rows with a time strictly
//!   later than any stamp before it and than any [`SimHandle::now`] already returned. Responses
//!   carry a `Date` header on the simulated clock.
//! * **OAuth.** `POST /oauth/token` (also `/v2/oauth/token`) accepts form, JSON, query and HTTP
//!   Basic client authentication, `grant_type=client_credentials` only (others: 400
//!   `unsupported_grant_type`; missing: 400 `invalid_request`). The six-key answer reuses the
//!   live token until it expires, with the remaining `expires_in`, unless
//!   [`SimBuilder::always_new_token`] is set. A wrong or rotated secret gives 401
//!   `invalid_client` with `WWW-Authenticate`. `GET /oauth/token/info` answers the five-key body.
//! * **Auth.** Every `/v2` route needs a live token (`Authorization: Bearer` or
//!   `?access_token=`); otherwise 401 JSON `{"error":"Not authorized","message":...}` with
//!   `WWW-Authenticate: Bearer realm="42 API", error="invalid_token", error_description=...`
//!   ("The access token is invalid" / "expired" / "was revoked"). Any request without a
//!   `User-Agent` gets Cloudflare's HTML 403 "Just a moment...".
//! * **Rate limits.** Per application, two *sliding* windows (per-second and per-hour, lengths
//!   configurable). **Counted** = every `/v2` request that passed authentication and was not
//!   itself answered 429; that includes 4xx/5xx answers and injected faults, and excludes
//!   `/oauth/*`, 401s and 403s. A request is refused when the window ending at it already holds
//!   the limit, so [`SimHandle::max_in_window`] of a window length never exceeds that window's
//!   limit. `/v2` answers carry `X-Secondly-RateLimit-{Limit,Remaining}`,
//!   `X-Hourly-RateLimit-{Limit,Remaining}` (remaining after this request), `X-Application-Id`,
//!   `-Name`, `-Roles`, `X-Runtime`, `X-Request-Id`, `ETag` (weak, lists only), `Cache-Control`,
//!   `Vary`. A 429 is `text/plain` `429 Too Many Requests (Spam Rate Limit Exceeded)` with
//!   `Retry-After` in whole seconds (rounded up; switch off with [`SimBuilder::retry_after`]).
//!   `/oauth/token` gets no rate headers.
//! * **Pagination.** `page`/`per_page` and `page[number]`/`page[size]`, default 30, clamped to
//!   100, `X-Page`, `X-Per-Page`, `X-Total` (items after filters), `Link` with first/prev when
//!   past page 1 and next/last before the last page (absolute URLs in the client's syntax),
//!   `[]` past the end.
//! * **Query language.** `filter[f]=a,b` (OR within a field; several filters AND), `range[f]=lo,hi`
//!   (inclusive; an empty side is open; timestamps in RFC 3339 with `Z`, offsets or millis, or a
//!   bare date; garbage gives 400), `sort=f,-g` (ties broken by id ascending, nulls last when
//!   ascending). Unknown filter or range fields give 400 `Filter Error`, unsortable fields 400
//!   `Sort Error`, each naming the allowed fields. Default orders are the reference's
//!   newest-first ones (users/campus/cursus/projects/projects_users/achievements_users by
//!   `id desc`; cursus_users and coalitions_users by `created_at desc, id desc`; locations by
//!   `begin_at desc, id desc`; achievements `id asc`), so clients that do not sort meet page
//!   drift. Virtual filters: cursus_users `campus_id` (the user's primary campus), `active`,
//!   `future`, `end`, `blackholed`; locations `active`, `inactive`, `end`, `future`;
//!   projects_users `campus` (primary campus), `cursus`; users `primary_campus_id`.
//!   `filter[id]` and `filter[user_id]` use indexes, so keyset paging
//!   (`sort=id&range[id]=<last+1>,<big>&page[size]=100`) stays cheap at 50,000 users.
//! * **Endpoints.** `/v2/campus`, `/v2/campus/:id`, `/v2/campus/:id/{users,locations,campus_users}`,
//!   `/v2/users`, `/v2/users/:id_or_login` (detail with cursus_users, projects_users,
//!   achievements, campus, campus_users and the empty lists of the real shape),
//!   `/v2/users/:id/{projects_users,cursus_users,locations,achievements_users,coalitions_users,campus_users}`,
//!   `/v2/campus_users`, `/v2/cursus`, `/v2/cursus/:id`, `/v2/cursus/:id/{users,cursus_users,projects}`,
//!   `/v2/cursus_users`, `/v2/projects`, `/v2/projects/:id_or_slug`,
//!   `/v2/projects/:id/projects_users`, `/v2/projects_users`, `/v2/achievements`,
//!   `/v2/achievements/:id/achievements_users`, `/v2/achievements_users`, `/v2/locations`,
//!   `/v2/coalitions`, `/v2/coalitions/:id/coalitions_users`, `/v2/blocs`, `/v2/coalitions_users`,
//!   and `/:id` details of the relation tables. Nested routes take comma lists
//!   (`/v2/projects/1,2/projects_users`). An unknown record or parent is 404 `{}`; an unknown route
//!   is an HTML 404.
//! * **Drift** ([`SimHandle::drift`], [`SimHandle::start_background_drift`]): bumps `updated_at` on
//!   a fraction of rows (with a real change), adds users (with campus_users and a future piscine)
//!   and locations, closes open locations, deletes projects_users and cursus_users, and changes
//!   piscine levels without touching `updated_at`.
//! * **Faults** ([`Faults`]), drawn from a generator seeded by the seed, eight draws per
//!   authenticated `/v2` request: 5xx (500/502/503, JSON or HTML), slow answers, hangs and
//!   latency jitter (delays), spontaneous 429s, token revocation every N requests, truncated or
//!   invalid JSON pages; and HTML 503s from the token endpoint. A hidden co-consumer of the
//!   budget is [`SimHandle::consume_budget`].
//! * **Traps** ([`Traps`], all off by default; [`SimBuilder::with_real_api_traps`] turns them
//!   all on and drops `Retry-After` from 429s; [`SimHandle::set_traps`] changes them later):
//!   `ignore_sort_on` (routes that answer in their default newest-first order whatever `sort`
//!   says, no `Sort Error`; the preset lists the three projects_users routes, whose apidoc has
//!   no `sort`; `range[...]` still applies, as public client docs show ranges but no sort for
//!   projects_users), `filter_list_limit` (a `filter[...]` with more values answers an nginx
//!   HTML 502, counted), `hide_anonymised_users` (`3b3-<id>` users: 404 `{}` on
//!   `/v2/users/:id_or_login`, left out of `filter[id]` on `/v2/users`, still listed elsewhere
//!   and embedded), `page_size_limits` (`/v2/projects` and `/v2/cursus/:id/projects` above 30
//!   per page: a short stall, then an nginx HTML 504), `cut_body_rate` (200 bodies cut
//!   mid-JSON with `Connection: close`), `poison_user_ids` (those users' rows in user listings
//!   carry a numeric `login`: one row no client decodes, in a good page; not in the preset),
//!   `poison_achievements_of` (those users' achievements_users rows carry a string
//!   `achievement_id`; not in the preset), and
//!   [`TrapDrift`] (anonymisations, deletions of
//!   coalitions_users and closed locations, replaced projects_users, campus transfers), added
//!   to every drift step when set in [`Traps::drift`] or applied once with
//!   [`SimHandle::drift_traps`]. Traps draw from their own generator seeded by the seed, so
//!   they never shift the fault or drift sequences.
//! * **What the truth holds under the traps.** Anonymised users stay in `users` with their
//!   scrubbed fields (login `3b3-<id>`, email `3b3-<id>@student.42.fr`, first_name `3b3`,
//!   last_name `<id>`, null image, not active), and every relation row embedding them shows the
//!   scrubbed user: a correct mirror keeps the rows and holds no personal data. Trap drift
//!   changes embedded users (anonymisation, campus transfer) without moving the relation rows'
//!   `updated_at`, as the real API's live rendering does, so a mirror reaches the truth only by
//!   re-reading those users' relation rows (`filter[user_id]`); [`DriftReport`] lists them in
//!   `refreshed_embedded_users`. Deleted and replaced rows are absent from the truth.
//! * **Truth and ledger**: [`SimHandle::truth`], [`SimHandle::ledger`],
//!   [`SimHandle::max_in_window`] (sliding), [`SimHandle::max_in_fixed_window`],
//!   [`SimHandle::count_status`].
//!
//! # Simplified on purpose
//!
//! * **Embedded users are snapshots.** The real API renders the `user` inside a relation row
//!   live, so changing a user silently changes thousands of relation rows whose `updated_at`
//!   did not move. The simulator freezes the embedded user at the relation row's last change
//!   (a drift bump refreshes it), so a delta sync by `updated_at` can reach the truth exactly.
//!   [`SimBuilder::live_embedded_users`] switches to the real behaviour.
//! * A user's `location` field is set at generation from the open session and not updated by
//!   drift (it would otherwise change without `updated_at`).
//! * Only `client_credentials` tokens, the `public` scope, no 403 for scopes, no `ETag`/304
//!   revalidation, no `search=`; `/v2/users/:id` serves anonymised users like any other unless
//!   [`Traps::hide_anonymised_users`] is on.
//!   `users_count` on a campus is deliberately different from the campus's user list length,
//!   as in the real API.
//! * Generation runs on the calling thread inside [`SimBuilder::start`].
//!
//! # Scale
//!
//! `cargo bench -p ft-sim --bench generate` (release, 2 shared cores): 50,000 users on five
//! campuses make about 2.7 million rows (1.24 M projects_users, 0.76 M locations, 0.46 M
//! achievements_users); generation plus server start takes about 3 s and the process holds
//! about 640 MiB. A keyset page (`sort=id&range[id]=..`) of any table answers in a few
//! milliseconds: rows live in ordered maps, `X-Total` of a pure id range is counted by binary
//! search over a sorted id list, and `filter[user_id]`/campus routes use per-user and
//! per-campus indexes. Other filters and ranges are one linear pass over the table (about
//! 20 ms for 80,000 cursus_users); a non-id sort (the default order of cursus_users,
//! locations, coalitions_users) sorts every matching row, about 0.8 s for all locations at
//! this scale, which is the price a client pays for not using keyset paging.
//! [`SimHandle::truth`] renders every row and is meant for test-sized datasets.
//!
//! # Standalone server
//!
//! The `ft-sim` binary (`cargo run -p ft-sim -- --port 8042 --users 1000 --seed 1`) serves a
//! simulator until Ctrl-C through [`serve`], which `ft42 sim serve` can call too.
//!
//! # What wiremock could not express
//!
//! Everything runs on one wiremock `MockServer` (a fresh, non-pooled one with request recording
//! off) with a single catch-all `Mock` whose custom `Respond` routes requests. Wiremock
//! serialises responders behind one lock, which the simulator needs anyway for its shared
//! state; delays (`set_delay`) are applied outside that lock, so a hung request does not block
//! others. What it cannot do: close a connection mid-body or send a body shorter than its
//! `Content-Length`. From hyper 1.12's source (not measured): wiremock hands hyper a `Full`
//! body whose length is known; a larger
//! `Content-Length` header then trips a debug assertion in hyper's HTTP/1 encoder
//! (`proto/h1/role.rs`: "payload claims content-length of N, custom content-length header
//! claims M"), which kills the connection before any byte is sent, and in release builds hyper
//! writes the announced header, sends the shorter body and keeps the connection open, so the
//! client waits for bytes that never come. Neither is a deterministic short body, so "truncated"
//! pages (the `malformed_rate` fault and the `cut_body_rate` trap) are complete HTTP responses
//! whose JSON is cut short, the trap adding `Connection: close`. A real short body needs a raw
//! TCP listener in front. It cannot stream either. Nothing needed hyper or axum directly.

mod config;
mod drift;
mod generate;
mod model;
mod query;
mod server;
mod store;
mod time;
mod traps;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use wiremock::{Mock, MockServer};

pub use config::{AppCredentials, Drift, DriftReport, Faults, LedgerEntry, Limits, Truth};
pub use traps::{PageSizeLimit, TrapDrift, Traps};

use server::{Config, SimResponder, State, lock};

/// Errors of starting or serving the simulator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The listening address could not be bound.
    #[error(
        "could not listen on {addr}: {source}; choose another port (or 0 for any free one) or stop the program using it"
    )]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// Entry point: `Sim::builder()`.
#[derive(Debug)]
pub struct Sim;

impl Sim {
    /// A builder with the defaults: seed 1, one campus, 100 users, the real rate limits
    /// (2/s, 1200/h), `Retry-After` on, two-hour tokens reused until expiry, no faults.
    pub fn builder() -> SimBuilder {
        SimBuilder::default()
    }
}

/// Configures and starts a simulator.
#[derive(Debug, Clone)]
pub struct SimBuilder {
    seed: u64,
    campuses: u32,
    users_per_campus: u32,
    limits: Limits,
    retry_after: bool,
    token_lifetime: Duration,
    always_new_token: bool,
    faults: Faults,
    epoch: DateTime<Utc>,
    live_users: bool,
    addr: SocketAddr,
    traps: Traps,
    network_delay: Duration,
    reuse_until_expiry: bool,
}

impl Default for SimBuilder {
    fn default() -> Self {
        Self {
            seed: 1,
            campuses: 1,
            users_per_campus: 100,
            limits: Limits::default(),
            retry_after: true,
            token_lifetime: Duration::from_secs(7200),
            always_new_token: false,
            faults: Faults::default(),
            epoch: default_epoch(),
            live_users: false,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            traps: Traps::default(),
            network_delay: Duration::ZERO,
            reuse_until_expiry: false,
        }
    }
}

fn default_epoch() -> DateTime<Utc> {
    time::to_datetime(time::parse_timestamp("2026-11-01T00:00:00.000Z").unwrap_or_default())
}

impl SimBuilder {
    /// Seed of the dataset, the credentials and the fault sequence.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Number of campuses (ids `1..=n`); at least one.
    pub fn campuses(mut self, campuses: u32) -> Self {
        self.campuses = campuses.max(1);
        self
    }

    /// Users generated per campus.
    pub fn users_per_campus(mut self, users: u32) -> Self {
        self.users_per_campus = users;
        self
    }

    /// Rate limits of the default application.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether 429 answers carry `Retry-After` (the real API's behaviour is uncertain).
    pub fn retry_after(mut self, on: bool) -> Self {
        self.retry_after = on;
        self
    }

    /// Lifetime of access tokens (7200 s like the real server).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// `true`: every token request mints a new token; `false`: the live token is handed out
    /// again with its remaining lifetime, as Doorkeeper does.
    pub fn always_new_token(mut self, on: bool) -> Self {
        self.always_new_token = on;
        self
    }

    /// `true`: the live token is handed back until it expires, with `expires_in` its
    /// remaining whole seconds, down to 0 (Doorkeeper's reuse, as the real server and the
    /// independent mocks do); `false` (default): a token with a second or less left is not
    /// handed back, a new one is minted.
    pub fn token_reuse_until_expiry(mut self, on: bool) -> Self {
        self.reuse_until_expiry = on;
        self
    }

    /// Fault injection (all off by default).
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// The simulated time at start (default 2026-11-01T00:00:00Z).
    pub fn epoch(mut self, epoch: DateTime<Utc>) -> Self {
        self.epoch = epoch;
        self
    }

    /// Render users embedded in relation rows from the current user (the real API's
    /// behaviour) instead of a snapshot taken at the relation row's last change.
    pub fn live_embedded_users(mut self, on: bool) -> Self {
        self.live_users = on;
        self
    }

    /// The real API's traps to set (all off by default); see [`Traps`].
    pub fn traps(mut self, traps: Traps) -> Self {
        self.traps = traps;
        self
    }

    /// The preset for engine work: every trap of [`Traps::real_api`] on (including its drift,
    /// added to every drift step) and 429s without `Retry-After`.
    pub fn with_real_api_traps(self) -> Self {
        self.traps(Traps::real_api()).retry_after(false)
    }

    /// Simulates a network between client and server: every request reaches the server (and
    /// is counted by the rate limits, and recorded in the ledger) a random time in
    /// `[0, max]` after it was sent, and its answer takes another such time to come back. The
    /// delays are drawn from the seed. Requests sent in one order can so arrive in another and
    /// bunch up, as on a real network: a client that spaces its sends exactly at the limit
    /// earns 429s. Default zero (loopback).
    pub fn network_delay(mut self, max: Duration) -> Self {
        self.network_delay = max;
        self
    }

    /// Address to listen on (default `127.0.0.1:0`, a free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Generates the dataset and starts serving.
    ///
    /// # Panics
    ///
    /// When the address cannot be bound; use [`SimBuilder::try_start`] to handle that.
    pub async fn start(self) -> SimHandle {
        match self.try_start().await {
            Ok(handle) => handle,
            Err(error) => panic!("ft-sim failed to start: {error}"),
        }
    }

    /// Generates the dataset and starts serving, reporting a bind failure as an error.
    pub async fn try_start(self) -> Result<SimHandle, SimError> {
        let listener = TcpListener::bind(self.addr).map_err(|source| SimError::Bind {
            addr: self.addr,
            source,
        })?;
        let epoch = self.epoch.timestamp_millis();
        let store = generate::generate(generate::GenParams {
            seed: self.seed,
            campuses: self.campuses,
            users_per_campus: self.users_per_campus,
            epoch,
        });
        let config = Config {
            seed: self.seed,
            retry_after: self.retry_after,
            token_lifetime: self.token_lifetime,
            always_new_token: self.always_new_token,
            live_users: self.live_users,
            faults: self.faults,
            network_delay: self.network_delay,
            reuse_until_expiry: self.reuse_until_expiry,
        };
        let state = Arc::new(Mutex::new(State::new(store, config, epoch, self.limits)));
        let server = MockServer::builder()
            .listener(listener)
            .disable_request_recording()
            .start()
            .await;
        let base_url = format!("http://{}", server.address());
        lock(&state).base_url = base_url.clone();
        lock(&state).traps.config = self.traps;
        Mock::given(wiremock::matchers::any())
            .respond_with(SimResponder {
                state: Arc::clone(&state),
            })
            .mount(&server)
            .await;
        // The clock starts when the server is ready, so generation time does not count.
        lock(&state).started = std::time::Instant::now();
        tracing::debug!(%base_url, seed = self.seed, "ft-sim started");
        Ok(SimHandle {
            inner: Arc::new(Inner {
                state,
                base_url,
                background: Mutex::new(None),
                _server: server,
            }),
        })
    }
}

struct Background {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

struct Inner {
    state: Arc<Mutex<State>>,
    base_url: String,
    background: Mutex<Option<Background>>,
    _server: MockServer,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(background) = self
            .background
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            background.stop.store(true, Ordering::SeqCst);
            background.thread.thread().unpark();
            let _ = background.thread.join();
        }
    }
}

/// A running simulator. Cheap to clone; the server stops when the last clone is dropped.
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// `base_url() + "/oauth/token"`.
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.inner.base_url)
    }

    /// Credentials of the default application (id 1).
    pub fn credentials(&self) -> AppCredentials {
        self.state().apps[0].credentials()
    }

    /// Registers another application with its own budget (window lengths of the default
    /// application) and returns its credentials. Its id is 2, 3, ... in creation order.
    pub fn add_application(&self, per_second: u32, per_hour: u32) -> AppCredentials {
        let mut state = self.state();
        let limits = Limits {
            per_second,
            per_hour,
            ..state.apps[0].limits
        };
        state.add_app(limits)
    }

    /// The internal id of the application with these credentials' client id (1 = default).
    pub fn application_id(&self, credentials: &AppCredentials) -> Option<u64> {
        self.state()
            .apps
            .iter()
            .find(|a| a.uid == credentials.client_id)
            .map(|a| a.id)
    }

    /// Revokes every issued token; the next `/v2` request with one gets a 401.
    pub fn revoke_tokens(&self) {
        self.state().revoke_tokens();
    }

    /// Gives the default application a new secret; the old one now gets `invalid_client`.
    /// Tokens already issued stay valid, as on the real server.
    pub fn rotate_secret(&self) -> AppCredentials {
        self.state().rotate_secret(1)
    }

    /// Makes the default application's secret valid for `left` more, as 42 reports it in
    /// `secret_valid_until`: a secret near the end of its life. Counted on the wall clock (which
    /// a client compares it with), not the simulator's data clock.
    pub fn set_secret_left(&self, left: std::time::Duration) {
        let until = Utc::now().timestamp() + i64::try_from(left.as_secs()).unwrap_or(i64::MAX / 2);
        self.state().apps[0].secret_valid_until = until;
    }

    /// Replaces the fault settings.
    pub fn set_faults(&self, faults: Faults) {
        self.state().config.faults = faults;
    }

    /// Replaces the trap settings (see [`Traps`]); the traps' random stream goes on.
    pub fn set_traps(&self, traps: Traps) {
        self.state().traps.config = traps;
    }

    /// Applies one step of trap drift now, whatever [`Traps::drift`] says, and reports it
    /// (anonymisations, deletions, replacements, transfers).
    pub fn drift_traps(&self, drift: &TrapDrift) -> DriftReport {
        let mut state = self.state();
        let at = state.stamp();
        let mut report = DriftReport {
            at: time::to_datetime(at),
            ..DriftReport::default()
        };
        traps::apply(&mut state, drift, at, &mut report);
        report
    }

    /// Replaces the default application's limits (its request history is kept).
    pub fn set_limits(&self, limits: Limits) {
        self.state().apps[0].limits = limits;
    }

    /// The simulator's clock (fixed epoch + real elapsed time). Any later drift stamps rows
    /// strictly after the value returned.
    pub fn now(&self) -> DateTime<Utc> {
        let mut state = self.state();
        let now = state.now_ms();
        state.last_stamp = state.last_stamp.max(now);
        time::to_datetime(now)
    }

    /// The current dataset, rendered exactly as the canonical listings serve it.
    pub fn truth(&self) -> Truth {
        let state = self.state();
        Truth {
            tables: state.store.truth(state.config.live_users),
        }
    }

    /// Row counts per table.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.state()
            .store
            .counts()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    /// Every request seen so far, in order.
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.state().ledger.clone()
    }

    /// The most counted `/v2` requests of the default application inside any window of this
    /// length (two requests are in one window when their times differ by less than `window`).
    pub fn max_in_window(&self, window: Duration) -> usize {
        self.max_in_window_for(1, window)
    }

    /// [`SimHandle::max_in_window`] for one application id.
    pub fn max_in_window_for(&self, app_id: u64, window: Duration) -> usize {
        let state = self.state();
        let mut times: Vec<Duration> = state
            .ledger
            .iter()
            .filter(|e| e.counted && e.app_id == Some(app_id))
            .map(|e| e.at)
            .collect();
        // Arrivals are out of order with a simulated network delay.
        times.sort();
        let mut best = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end] - times[start] >= window {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }

    /// The most counted `/v2` requests of the default application inside one *fixed* window:
    /// windows are `[k·window, (k+1)·window)` measured from the simulator's start. Never more
    /// than [`SimHandle::max_in_window`] (sliding windows are the stricter check).
    pub fn max_in_fixed_window(&self, window: Duration) -> usize {
        let state = self.state();
        let width = window.as_nanos().max(1);
        let mut counts: BTreeMap<u128, usize> = BTreeMap::new();
        for entry in state
            .ledger
            .iter()
            .filter(|e| e.counted && e.app_id == Some(1))
        {
            *counts.entry(entry.at.as_nanos() / width).or_default() += 1;
        }
        counts.values().copied().max().unwrap_or(0)
    }

    /// Spends `count` requests of the default application's budget now, as a hidden
    /// co-consumer of the same application would: the next answers show less `Remaining`,
    /// and the ledger holds `count` counted entries with path `(co-consumer)`.
    pub fn consume_budget(&self, count: usize) {
        self.state().consume_budget(1, count);
    }

    /// How many answers had this status.
    pub fn count_status(&self, status: u16) -> usize {
        self.state()
            .ledger
            .iter()
            .filter(|e| e.status == status)
            .count()
    }

    /// Applies one drift step now.
    pub fn drift(&self, drift: Drift) -> DriftReport {
        drift::apply(&mut self.state(), &drift)
    }

    /// Applies `drift` every `interval` on a background thread until
    /// [`SimHandle::stop_background_drift`] (or the last handle is dropped). Replaces a running
    /// background drift.
    pub fn start_background_drift(&self, interval: Duration, drift: Drift) {
        self.stop_background_drift();
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::clone(&self.inner.state);
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ft-sim-drift".to_owned())
            .spawn(move || {
                let mut next = std::time::Instant::now() + interval;
                while !flag.load(Ordering::SeqCst) {
                    let now = std::time::Instant::now();
                    if now < next {
                        std::thread::park_timeout(next - now);
                        continue;
                    }
                    drift::apply(&mut lock(&state), &drift);
                    next += interval;
                }
            })
            .expect("spawning the drift thread");
        *self
            .inner
            .background
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Background { stop, thread });
    }

    /// Stops background drift, if any, and waits for its thread.
    pub fn stop_background_drift(&self) {
        let background = self
            .inner
            .background
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(background) = background {
            background.stop.store(true, Ordering::SeqCst);
            background.thread.thread().unpark();
            let _ = background.thread.join();
        }
    }
}

/// Options of a standalone simulator (`ft-sim` binary, `ft42 sim serve`).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Dataset and fault seed.
    pub seed: u64,
    /// Number of campuses.
    pub campuses: u32,
    /// Users per campus.
    pub users_per_campus: u32,
    /// Rate limits of the default application.
    pub limits: Limits,
    /// Send `Retry-After` on 429.
    pub retry_after: bool,
    /// Token lifetime.
    pub token_lifetime: Duration,
    /// Fault injection.
    pub faults: Faults,
    /// Background drift: every `interval`, apply the drift.
    pub drift: Option<(Duration, Drift)>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8042)),
            seed: 1,
            campuses: 1,
            users_per_campus: 1000,
            limits: Limits::default(),
            retry_after: true,
            token_lifetime: Duration::from_secs(7200),
            faults: Faults::default(),
            drift: None,
        }
    }
}

/// What a [`serve`] run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSummary {
    /// Requests answered.
    pub requests: usize,
    /// Of which 429s.
    pub too_many_requests: usize,
}

/// Starts a simulator from `options`, calls `ready` with the running handle (to print the URL
/// and credentials), serves until `shutdown` completes, then stops.
pub async fn serve<F>(
    options: ServeOptions,
    ready: impl FnOnce(&SimHandle),
    shutdown: F,
) -> Result<ServeSummary, SimError>
where
    F: Future<Output = ()>,
{
    let sim = Sim::builder()
        .seed(options.seed)
        .campuses(options.campuses)
        .users_per_campus(options.users_per_campus)
        .limits(options.limits)
        .retry_after(options.retry_after)
        .token_lifetime(options.token_lifetime)
        .faults(options.faults)
        .bind(options.addr)
        .try_start()
        .await?;
    if let Some((interval, drift)) = options.drift {
        sim.start_background_drift(interval, drift);
    }
    ready(&sim);
    shutdown.await;
    sim.stop_background_drift();
    let summary = ServeSummary {
        requests: sim.ledger().len(),
        too_many_requests: sim.count_status(429),
    };
    Ok(summary)
}
