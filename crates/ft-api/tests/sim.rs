//! Conformance against the ft-sim simulator: the pacer keeps a real (sliding-window) server
//! free of 429s, and tokens, 401s and pagination behave end to end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ft_api::models::User;
use ft_api::{ClientSecret, FtClient, Query, RateConfig};
use ft_sim::{Limits, Sim, SimHandle};
use futures::TryStreamExt;

fn client_for(sim: &SimHandle, rate: RateConfig, margin: Duration) -> FtClient {
    let creds = sim.credentials();
    FtClient::builder()
        .base_url(sim.base_url())
        .client_id(creds.client_id.as_str())
        .client_secret(ClientSecret::new(creds.client_secret.clone()))
        .rate(rate)
        .jitter_margin(margin)
        .build()
        .unwrap()
}

/// Sends `n` requests from `workers` concurrent tasks; returns the wall time.
async fn hammer(client: &FtClient, n: usize, workers: usize) -> Duration {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let client = client.clone();
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= n {
                        break;
                    }
                    let page = u32::try_from(i % 20).unwrap() + 1;
                    let q = Query::new().per_page(5).page(page);
                    client
                        .get_page::<User>("/v2/campus/1/users", &q)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_500_requests_at_20_per_second_and_300_per_compressed_hour() {
    let limits = Limits {
        per_second: 20,
        per_hour: 300,
        second_window: Duration::from_secs(1),
        hour_window: Duration::from_secs(10),
    };
    let sim = Sim::builder()
        .seed(7)
        .users_per_campus(100)
        .limits(limits)
        .start()
        .await;
    let rate = RateConfig {
        per_second: 20,
        per_hour: 300,
        hour: Duration::from_secs(10),
    };
    let client = client_for(&sim, rate, Duration::from_millis(25));
    hammer(&client, 520, 4).await;
    let counted = sim.ledger().iter().filter(|e| e.counted).count();
    assert!(counted >= 500, "{counted} counted requests");
    assert_eq!(sim.count_status(429), 0, "the pacer must never cause a 429");
    assert_eq!(client.stats().responses_429, 0);
    assert!(sim.max_in_window(Duration::from_secs(1)) <= 20);
    assert!(sim.max_in_window(Duration::from_secs(10)) <= 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_when_the_compressed_hour_is_the_binding_limit() {
    // 30 per 2-second "hour" is 15/s, below the 20/s per-second limit.
    let limits = Limits {
        per_second: 20,
        per_hour: 30,
        second_window: Duration::from_secs(1),
        hour_window: Duration::from_secs(2),
    };
    let sim = Sim::builder().seed(8).limits(limits).start().await;
    let rate = RateConfig {
        per_second: 20,
        per_hour: 30,
        hour: Duration::from_secs(2),
    };
    let client = client_for(&sim, rate, Duration::from_millis(25));
    hammer(&client, 120, 4).await;
    assert_eq!(sim.count_status(429), 0);
    assert!(sim.max_in_window(Duration::from_secs(2)) <= 30);
    assert!(sim.max_in_window(Duration::from_secs(1)) <= 20);
}

#[tokio::test]
async fn a_co_consumer_of_the_same_application_slows_us_down_instead_of_causing_429s() {
    let limits = Limits {
        per_second: 20,
        per_hour: 60,
        second_window: Duration::from_secs(1),
        hour_window: Duration::from_secs(4),
    };
    let sim = Sim::builder().seed(9).limits(limits).start().await;
    let rate = RateConfig {
        per_second: 20,
        per_hour: 60,
        hour: Duration::from_secs(4),
    };
    // Two clients of one application, each believing it has the whole budget.
    let a = client_for(&sim, rate, Duration::from_millis(25));
    let b = client_for(&sim, rate, Duration::from_millis(25));
    let (ra, rb) = tokio::join!(hammer(&a, 60, 2), hammer(&b, 60, 2));
    let _ = (ra, rb);
    // The server's Remaining headers reveal the other consumer; 429s may still happen while the
    // two discover each other, and every one is absorbed by Retry-After (no request failed).
    assert!(sim.max_in_window(Duration::from_secs(4)) <= 60);
    let waits = a.stats().responses_429 + b.stats().responses_429;
    assert_eq!(waits as usize, sim.count_status(429));
    assert!(
        a.budget().per_hour < 60 || b.budget().per_hour < 60,
        "{:?} {:?}",
        a.budget(),
        b.budget()
    );
}

#[tokio::test]
async fn pagination_token_info_and_revocation_against_the_simulator() {
    let sim = Sim::builder()
        .seed(3)
        .users_per_campus(230)
        .limits(Limits {
            per_second: 50,
            per_hour: 10_000,
            ..Limits::default()
        })
        .start()
        .await;
    let client = client_for(
        &sim,
        RateConfig {
            per_second: 50,
            per_hour: 10_000,
            hour: Duration::from_secs(3600),
        },
        Duration::from_millis(25),
    );
    let info = client.token_info().await.unwrap();
    assert!(info.resource_owner_id.is_none());
    assert_eq!(
        info.application.and_then(|a| a.uid).as_deref(),
        Some(sim.credentials().client_id.as_str())
    );
    let total = client
        .probe_total("/v2/campus/1/users", &Query::new())
        .await
        .unwrap();
    let mut stream = std::pin::pin!(
        client.stream_pages::<User>("/v2/campus/1/users", Query::new().sort(["id"]))
    );
    let mut ids = Vec::new();
    let mut pages = 0;
    while let Some(page) = stream.try_next().await.unwrap() {
        pages += 1;
        assert_eq!(page.items.len(), page.raw.len());
        ids.extend(page.items.iter().map(|u| u.id));
        if pages == 2 {
            // Every live token dies in the middle of the listing.
            sim.revoke_tokens();
        }
    }
    assert_eq!(ids.len() as u64, total);
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, ids, "ascending ids, no duplicates");
    assert_eq!(client.stats().responses_401, 1);
    assert_eq!(client.stats().token_requests, 2);
}

#[tokio::test]
async fn a_rotated_secret_fails_over_to_the_configured_next_secret() {
    let sim = Sim::builder().seed(4).start().await;
    let old = sim.credentials();
    let new = sim.rotate_secret();
    let rate = RateConfig {
        per_second: 20,
        per_hour: 10_000,
        hour: Duration::from_secs(3600),
    };
    let build = |next: Option<ClientSecret>| {
        FtClient::builder()
            .base_url(sim.base_url())
            .client_id(old.client_id.as_str())
            .client_secret(ClientSecret::new(old.client_secret.clone()))
            .next_client_secret(next)
            .rate(rate)
            .build()
            .unwrap()
    };
    let err = build(None).ensure_token().await.unwrap_err();
    assert!(
        matches!(err, ft_api::ApiError::SecretRejected { .. }),
        "{err:?}"
    );

    let client = build(Some(ClientSecret::new(new.client_secret.clone())));
    let status = client.ensure_token().await.unwrap();
    assert!(status.secret_valid_until.is_some());
    // After a revocation the refresh goes straight to the secret that works.
    sim.revoke_tokens();
    client
        .get_page::<User>("/v2/campus/1/users", &Query::new())
        .await
        .unwrap();
    assert_eq!(
        client.stats().token_requests,
        3,
        "rejected, accepted, then one refresh"
    );
}

/// Every model decodes the simulator's shapes with no unknown field except the simulator's
/// deliberate drift: the models match the documented API, so drift reports mean real drift.
#[tokio::test]
async fn every_model_decodes_the_simulators_endpoints_without_drift() {
    use ft_api::ClientEvent;
    use ft_api::models::*;

    let sim = Sim::builder()
        .seed(5)
        .users_per_campus(30)
        .limits(Limits {
            per_second: 100,
            per_hour: 100_000,
            ..Limits::default()
        })
        .start()
        .await;
    let client = client_for(
        &sim,
        RateConfig {
            per_second: 100,
            per_hour: 100_000,
            hour: Duration::from_secs(3600),
        },
        Duration::from_millis(25),
    );
    let mut events = client.subscribe();
    let q = Query::new();
    async fn all<T: serde::de::DeserializeOwned + Send + 'static>(
        client: &FtClient,
        path: &str,
    ) -> Vec<T> {
        let pages: Vec<_> = client
            .stream_pages::<T>(path, Query::new())
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        pages.into_iter().flat_map(|p| p.items).collect()
    }
    let users: Vec<User> = all(&client, "/v2/campus/1/users").await;
    assert!(!users.is_empty());
    let detail: UserDetail = client
        .get(&format!("/v2/users/{}", users[0].id), &q)
        .await
        .unwrap();
    assert_eq!(detail.id, users[0].id);
    assert!(!all::<Campus>(&client, "/v2/campus").await.is_empty());
    all::<CampusUser>(&client, "/v2/campus_users").await;
    assert!(!all::<Cursus>(&client, "/v2/cursus").await.is_empty());
    assert!(
        !all::<CursusUser>(&client, "/v2/cursus_users")
            .await
            .is_empty()
    );
    all::<Project>(&client, "/v2/projects").await;
    all::<ProjectsUser>(&client, "/v2/projects_users").await;
    all::<Achievement>(&client, "/v2/achievements").await;
    all::<AchievementsUser>(&client, "/v2/achievements_users").await;
    all::<Location>(&client, "/v2/locations").await;
    all::<Coalition>(&client, "/v2/coalitions").await;
    all::<Bloc>(&client, "/v2/blocs").await;
    all::<CoalitionsUser>(&client, "/v2/coalitions_users").await;
    let drift: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .filter_map(|e| match e {
            ClientEvent::SchemaDrift { endpoint, field } => Some(format!("{endpoint} {field}")),
            _ => None,
        })
        .collect();
    // `pronoun` is the simulator's deliberate drift (a field the real API may add); it is
    // reported, and nothing else may be.
    let unexpected: Vec<_> = drift.iter().filter(|d| !d.ends_with("pronoun")).collect();
    assert!(
        unexpected.is_empty(),
        "fields the models do not know: {unexpected:#?}"
    );
}

/// A listing under 5xx answers, spontaneous 429s and periodic token revocation still returns
/// every row exactly once.
#[tokio::test]
async fn a_listing_survives_5xx_429_and_revocations() {
    let sim = Sim::builder()
        .seed(11)
        .users_per_campus(300)
        .limits(Limits {
            per_second: 50,
            per_hour: 100_000,
            ..Limits::default()
        })
        .faults(ft_sim::Faults {
            error_5xx_rate: 0.25,
            spontaneous_429_rate: 0.05,
            revoke_token_every: Some(4),
            ..ft_sim::Faults::default()
        })
        .start()
        .await;
    let creds = sim.credentials();
    let client = FtClient::builder()
        .base_url(sim.base_url())
        .client_id(creds.client_id.as_str())
        .client_secret(ClientSecret::new(creds.client_secret.clone()))
        .rate(RateConfig {
            per_second: 50,
            per_hour: 100_000,
            hour: Duration::from_secs(3600),
        })
        .jitter_margin(Duration::from_millis(25))
        .retry(ft_api::RetryConfig {
            max_attempts: 8,
            max_elapsed: Duration::from_secs(120),
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
        })
        .build()
        .unwrap();
    let pages: Vec<_> = client
        .stream_pages::<User>("/v2/campus/1/users", Query::new().sort(["id"]).per_page(30))
        .try_collect()
        .await
        .unwrap();
    let ids: Vec<i64> = pages
        .iter()
        .flat_map(|p| p.items.iter().map(|u| u.id))
        .collect();
    assert_eq!(ids.len(), 300, "every user of the campus exactly once");
    let mut dedup = ids.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), ids.len());
    let stats = client.stats();
    assert!(stats.retries > 0 && stats.responses_401 > 0, "{stats:?}");
}

/// The default (measured) margin against a network that delays each request by up to 100 ms
/// each way: zero 429s, and the server never counts more than its limit in a sliding second of
/// arrivals. The same run with a margin of zero (a request assumed to arrive the instant it is
/// sent) earns 429s: the margin is what keeps bunched arrivals under the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_network_delay_a_zero_margin_earns_429s_and_the_measured_default_none() {
    let limits = Limits {
        per_second: 5,
        per_hour: 10_000,
        second_window: Duration::from_secs(1),
        hour_window: Duration::from_secs(3600),
    };
    let rate = RateConfig {
        per_second: 5,
        per_hour: 10_000,
        hour: Duration::from_secs(3600),
    };
    let start = |seed| {
        Sim::builder()
            .seed(seed)
            .users_per_campus(100)
            .limits(limits)
            .network_delay(Duration::from_millis(100))
            .start()
    };

    let sim = start(21).await;
    let creds = sim.credentials();
    let measured = FtClient::builder()
        .base_url(sim.base_url())
        .client_id(creds.client_id.as_str())
        .client_secret(ClientSecret::new(creds.client_secret.clone()))
        .rate(rate)
        .build()
        .unwrap();
    hammer(&measured, 30, 8).await;
    assert_eq!(sim.count_status(429), 0, "the default margin earns no 429");
    assert_eq!(measured.stats().responses_429, 0);
    assert!(sim.max_in_window(Duration::from_secs(1)) <= 5);

    let sim = start(21).await;
    let zero = client_for(&sim, rate, Duration::ZERO);
    hammer(&zero, 30, 8).await;
    assert!(
        sim.count_status(429) > 0,
        "a zero margin lets bunched arrivals exceed the limit"
    );
    // The server refused the excess: it never counted more than its limit.
    assert!(sim.max_in_window(Duration::from_secs(1)) <= 5);
}

/// Against a server that hands back its live token until it expires (`expires_in` down to 0),
/// a run outliving many short tokens finishes without an error, with at most two token
/// requests per token lifetime (the one that gets a new token, and one that gets it handed back
/// near its end), counted on the simulator's ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_outliving_many_short_tokens_waits_for_each_to_expire_instead_of_failing() {
    let lifetime = Duration::from_secs(3);
    let sim = Sim::builder()
        .seed(12)
        .users_per_campus(20)
        .limits(Limits {
            per_second: 20,
            per_hour: 100_000,
            ..Limits::default()
        })
        .token_lifetime(lifetime)
        .token_reuse_until_expiry(true)
        .start()
        .await;
    let client = client_for(
        &sim,
        RateConfig {
            per_second: 20,
            per_hour: 100_000,
            hour: Duration::from_secs(3600),
        },
        Duration::from_millis(25),
    );
    let started = Instant::now();
    let mut requests = 0;
    while started.elapsed() < Duration::from_secs(10) {
        client
            .get_page::<User>("/v2/campus/1/users", &Query::new().per_page(5))
            .await
            .expect("no request fails for a token at the end of its life");
        requests += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let token_requests = sim
        .ledger()
        .iter()
        .filter(|e| e.path == "/oauth/token")
        .count();
    let lifetimes = elapsed.as_secs_f64() / lifetime.as_secs_f64();
    assert!(requests > 50, "{requests}");
    assert!(lifetimes > 3.0);
    assert!(
        token_requests as f64 <= 2.0 * lifetimes.ceil(),
        "{token_requests} token requests over {lifetimes:.1} token lifetimes"
    );
    assert_eq!(sim.count_status(429), 0);
}
