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
