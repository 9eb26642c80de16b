//! Behaviour of the client against wiremock: tokens, 401 replay, 429, retries, decoding, UA.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use ft_api::models::User;
use ft_api::{
    ApiError, ClientEvent, ClientSecret, DEFAULT_USER_AGENT, ManualClock, Query, RetryConfig,
};
use futures::TryStreamExt;
use serde_json::json;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, ResponseTemplate};

#[tokio::test]
async fn a_401_in_the_middle_of_a_listing_refreshes_once_and_replays_the_page() {
    let server = server().await;
    let clock = Arc::new(ManualClock::new());
    let issuer = mount_tokens(&server, clock.clone(), 7200).await;
    Mock::given(method("GET"))
        .and(path("/v2/campus/1/users"))
        .respond_with(Users {
            total: 250,
            reject: Some(("tok-1".into(), 2)),
        })
        .mount(&server)
        .await;
    let client = builder(&server, clock).build().unwrap();
    let pages: Vec<_> = client
        .stream_pages::<User>("/v2/campus/1/users", Query::new().sort(["id"]))
        .try_collect()
        .await
        .unwrap();
    let ids: Vec<i64> = pages
        .iter()
        .flat_map(|p| p.items.iter().map(|u| u.id))
        .collect();
    assert_eq!(
        ids,
        (1..=250).collect::<Vec<_>>(),
        "no page lost or repeated"
    );
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[1].meta.attempts, 2, "page 2 was replayed once");
    assert!(pages[1].meta.token_refreshed);
    assert_eq!(
        issuer.issued.load(Ordering::SeqCst),
        2,
        "one initial token and one refresh"
    );
    let reqs = received_on(&server, "/v2/campus/1/users").await;
    let pages_requested: Vec<_> = reqs
        .iter()
        .map(|r| query_param(r, "page").unwrap())
        .collect();
    assert_eq!(pages_requested, ["1", "2", "2", "3"]);
    assert_eq!(bearer(&reqs[2]).as_deref(), Some("tok-2"));
    assert_eq!(client.stats().responses_401, 1);
}

#[tokio::test]
async fn a_second_401_is_an_error_that_says_so() {
    let server = server().await;
    let clock = Arc::new(ManualClock::new());
    let issuer = mount_tokens(&server, clock.clone(), 7200).await;
    Mock::given(method("GET"))
        .and(path("/v2/me"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let client = builder(&server, clock).build().unwrap();
    let err = client.get_json("/v2/me", &Query::new()).await.unwrap_err();
    assert!(matches!(err, ApiError::Unauthorized { .. }), "{err:?}");
    assert!(
        err.to_string().contains("even with a freshly issued token"),
        "{err}"
    );
    assert!(err.is_auth());
    assert_eq!(issuer.issued.load(Ordering::SeqCst), 2);
    assert_eq!(received_on(&server, "/v2/me").await.len(), 2);
}

#[tokio::test]
async fn tokens_are_reused_until_the_refresh_margin_and_refreshed_inside_it() {
    let server = server().await;
    let clock = Arc::new(ManualClock::new());
    let issuer = mount_tokens(&server, clock.clone(), 7200).await;
    Mock::given(method("GET"))
        .and(path("/v2/cursus"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let client = builder(&server, clock.clone()).build().unwrap();
    let status = client.ensure_token().await.unwrap();
    assert!(status.secret_valid_until.is_some());
    for _ in 0..5 {
        client.get_json("/v2/cursus", &Query::new()).await.unwrap();
    }
    assert_eq!(
        issuer.issued.load(Ordering::SeqCst),
        1,
        "the cached token is reused"
    );
    // 100 minutes later the token is inside the 10-minute margin: one proactive refresh.
    clock.advance(Duration::from_secs(6000 + 660));
    client.get_json("/v2/cursus", &Query::new()).await.unwrap();
    client.get_json("/v2/cursus", &Query::new()).await.unwrap();
    assert_eq!(issuer.issued.load(Ordering::SeqCst), 2);
    let used: Vec<_> = received_on(&server, "/v2/cursus")
        .await
        .iter()
        .map(|r| bearer(r).unwrap())
        .collect();
    assert_eq!(used[..5], ["tok-1"; 5]);
    assert_eq!(used[5..], ["tok-2", "tok-2"]);
    assert_eq!(client.stats().token_refreshes, 2);
}

#[tokio::test]
async fn a_server_that_hands_back_the_same_token_is_not_hammered() {
    let server = server().await;
    let clock = Arc::new(ManualClock::new());
    let issuer = Arc::new(TokenIssuer {
        issued: Default::default(),
        lifetime: 7200,
        clock: clock.clone(),
        reuse: true,
        first_issue: Default::default(),
    });
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(SharedResponder(issuer.clone()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/cursus"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let client = builder(&server, clock.clone()).build().unwrap();
    client.get_json("/v2/cursus", &Query::new()).await.unwrap();
    // Inside the margin: a refresh returns the same token; the client keeps it and does not ask
    // again for every request.
    clock.advance(Duration::from_secs(7200 - 500));
    for _ in 0..10 {
        client.get_json("/v2/cursus", &Query::new()).await.unwrap();
    }
    assert_eq!(issuer.issued.load(Ordering::SeqCst), 2);
    // A minute later it tries once more.
    clock.advance(Duration::from_secs(61));
    client.get_json("/v2/cursus", &Query::new()).await.unwrap();
    assert_eq!(issuer.issued.load(Ordering::SeqCst), 3);
    // Three seconds before expiry the token is past the hard buffer; the server still hands it
    // back, so the client uses it to the end instead of asking again for every request.
    clock.advance(Duration::from_secs(7197 - 6761));
    for _ in 0..5 {
        client.get_json("/v2/cursus", &Query::new()).await.unwrap();
    }
    assert_eq!(issuer.issued.load(Ordering::SeqCst), 4);
    let used = received_on(&server, "/v2/cursus").await;
    assert!(used.iter().all(|r| bearer(r).as_deref() == Some("tok-1")));
}

#[tokio::test]
async fn concurrent_requests_at_expiry_cause_one_token_request() {
    let server = server().await;
    let clock = Arc::new(ManualClock::new());
    let issuer = Arc::new(TokenIssuer {
        issued: Default::default(),
        lifetime: 7200,
        clock: clock.clone(),
        reuse: false,
        first_issue: Default::default(),
    });
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(SharedResponder(issuer.clone()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/cursus"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([]))
                .set_delay(Duration::from_millis(20)),
        )
        .mount(&server)
        .await;
    let client = builder(&server, clock.clone()).build().unwrap();
    client.get_json("/v2/cursus", &Query::new()).await.unwrap();
    clock.advance(Duration::from_secs(7200));
    let tasks: Vec<_> = (0..25)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.get_json("/v2/cursus", &Query::new()).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        issuer.issued.load(Ordering::SeqCst),
        2,
        "exactly one token request at expiry"
    );
    let late: Vec<_> = received_on(&server, "/v2/cursus").await[1..]
        .iter()
        .map(|r| bearer(r).unwrap())
        .collect();
    assert!(late.iter().all(|t| t == "tok-2"), "{late:?}");
}

#[tokio::test]
async fn a_429_with_retry_after_waits_that_long_and_is_not_a_failed_attempt() {
    let server = server().await;
    let clock = Arc::new(ManualClock::new());
    mount_tokens(&server, clock.clone(), 7200).await;
    Mock::given(method("GET"))
        .and(path("/v2/cursus"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "7")
                .set_body_string("429 Too Many Requests (Spam Rate Limit Exceeded)"),
        )
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/cursus"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let client = builder(&server, clock.clone())
        .retry(RetryConfig {
            max_attempts: 1,
            ..RetryConfig::default()
        })
        .build()
        .unwrap();
    let mut events = client.subscribe();
    let page = client
        .get_page::<serde_json::Value>("/v2/cursus", &Query::new())
        .await
        .unwrap();
    assert_eq!(
        page.meta.attempts, 3,
        "two 429s then success, with max_attempts = 1"
    );
    assert!(
        page.meta.waited >= Duration::from_secs(14),
        "{:?}",
        page.meta.waited
    );
    assert!(
        page.meta.waited < Duration::from_secs(15),
        "{:?}",
        page.meta.waited
    );
    let stats = client.stats();
    assert_eq!(stats.responses_429, 2);
    let mut saw_retry = false;
    while let Ok(e) = events.try_recv() {
        if let ClientEvent::Retry { reason, wait, .. } = e {
            assert_eq!(reason, "HTTP 429");
            assert_eq!(wait, Duration::from_secs(7));
            saw_retry = true;
        }
    }
    assert!(saw_retry);
}

#[tokio::test]
async fn a_429_without_retry_after_backs_off_about_a_second() {
    let server = server().await;
    let clock = Arc::new(ManualClock::new());
    mount_tokens(&server, clock.clone(), 7200).await;
    Mock::given(method("GET"))
        .and(path("/v2/cursus"))
        .respond_with(ResponseTemplate::new(429).set_body_string("429 Too Many Requests"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/cursus"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let client = builder(&server, clock).build().unwrap();
    let page = client
        .get_page::<serde_json::Value>("/v2/cursus", &Query::new())
        .await
        .unwrap();
    assert_eq!(page.meta.attempts, 2);
    assert!(
        page.meta.waited >= Duration::from_secs(1),
        "{:?}",
        page.meta.waited
    );
    assert!(
        page.meta.waited <= Duration::from_millis(1600),
        "{:?}",
        page.meta.waited
    );
}

#[tokio::test]
async fn a_5xx_storm_is_retried_with_backoff_then_reported() {
    let server = server().await;
    let clock = Arc::new(ManualClock::new());
    mount_tokens(&server, clock.clone(), 7200).await;
    Mock::given(method("GET"))
        .and(path("/v2/cursus"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream unavailable"))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/cursus"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/campus"))
        .respond_with(ResponseTemplate::new(502).set_body_string("bad gateway"))
        .mount(&server)
        .await;
    let client = builder(&server, clock).build().unwrap();
    let page = client
        .get_page::<serde_json::Value>("/v2/cursus", &Query::new())
        .await
        .unwrap();
    assert_eq!(page.meta.attempts, 4);
    assert_eq!(page.meta.retries, 3);
    // A permanent storm gives up after max_attempts (5) with the endpoint, status and body.
    let err = client
        .get_json("/v2/campus", &Query::new())
        .await
        .unwrap_err();
    match &err {
        ApiError::Status {
            endpoint,
            status,
            attempt,
            body,
            ..
        } => {
            assert_eq!(endpoint, "/v2/campus");
            assert_eq!(*status, 502);
            assert_eq!(*attempt, 5);
            assert_eq!(body, "bad gateway");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.is_retryable());
    assert_eq!(received_on(&server, "/v2/campus").await.len(), 5);
    assert_eq!(client.stats().retries, 3 + 4);
}

#[tokio::test]
async fn other_4xx_fail_at_once_with_a_truncated_body() {
    let server = server().await;
    let clock = Arc::new(ManualClock::new());
    mount_tokens(&server, clock.clone(), 7200).await;
    Mock::given(method("GET"))
        .and(path("/v2/users"))
        .respond_with(ResponseTemplate::new(400).set_body_string(format!(
            "{{\"error\":\"Filter Error\",\"message\":\"{}\"}}",
            "x".repeat(1000)
        )))
        .mount(&server)
        .await;
    let client = builder(&server, clock).build().unwrap();
    let err = client
        .get_page::<User>("/v2/users", &Query::new().filter("campus_id", [1]))
        .await
        .unwrap_err();
    match &err {
        ApiError::Status {
            status,
            attempt,
            body,
            ..
        } => {
            assert_eq!((*status, *attempt), (400, 1));
            assert!(body.starts_with("{\"error\":\"Filter Error\""));
            assert!(body.chars().count() <= 301);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!err.is_retryable());
    assert_eq!(received_on(&server, "/v2/users").await.len(), 1);
}

#[tokio::test]
async fn malformed_json_gives_a_decode_error_with_a_snippet() {
    let server = server().await;
    let clock = Arc::new(ManualClock::new());
    mount_tokens(&server, clock.clone(), 7200).await;
    Mock::given(method("GET"))
        .and(path("/v2/users"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"[{"id":1,"login":"a"},{"id":2,"login":"#,
            "application/json",
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/campus/1/users"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([{"id": 1}, {"id": "two", "login": "b"}])),
        )
        .mount(&server)
        .await;
    let client = builder(&server, clock).build().unwrap();
    let err = client
        .get_page::<User>("/v2/users", &Query::new())
        .await
        .unwrap_err();
    match err {
        ApiError::Decode {
            endpoint, snippet, ..
        } => {
            assert_eq!(endpoint, "/v2/users");
            assert!(snippet.contains(r#"{"id":2,"login":"#), "{snippet}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = client
        .get_page::<User>("/v2/campus/1/users", &Query::new())
        .await
        .unwrap_err();
    match err {
        ApiError::Decode { path, snippet, .. } => {
            assert_eq!(path, "[1].id");
            assert!(snippet.contains("\"two\""), "{snippet}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_user_agent_is_always_sent_and_challenges_are_retried() {
    let server = server().await;
    let clock = Arc::new(ManualClock::new());
    // Anything without the default User-Agent gets Cloudflare's HTML page.
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(header("user-agent", DEFAULT_USER_AGENT))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "t", "token_type": "bearer", "expires_in": 7200,
            "scope": "public", "created_at": 1_700_000_000, "secret_valid_until": null
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/cursus"))
        .respond_with(ResponseTemplate::new(403).set_body_raw(
            "<!DOCTYPE html><title>Just a moment...</title>",
            "text/html",
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/cursus"))
        .and(header("user-agent", DEFAULT_USER_AGENT))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .with_priority(2)
        .mount(&server)
        .await;
    // An empty configured User-Agent still sends the default one.
    let client = builder(&server, clock).user_agent("").build().unwrap();
    let page = client
        .get_page::<serde_json::Value>("/v2/cursus", &Query::new())
        .await
        .unwrap();
    assert_eq!(page.meta.attempts, 2, "the HTML 403 challenge was retried");
    for r in server.received_requests().await.unwrap() {
        assert_eq!(r.headers.get("user-agent").unwrap(), DEFAULT_USER_AGENT);
    }
}

#[tokio::test]
async fn a_rejected_secret_fails_over_to_the_next_one() {
    let server = server().await;
    let clock = Arc::new(ManualClock::new());
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_string_contains("client_secret=s-s4t2ud-current"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_client",
            "error_description": "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method."
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_string_contains("client_secret=s-s4t2ud-next"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "t2", "token_type": "bearer", "expires_in": 7200,
            "scope": "public", "created_at": 1_700_000_000, "secret_valid_until": null
        })))
        .mount(&server)
        .await;
    let without_next = builder(&server, clock.clone()).build().unwrap();
    let err = without_next.ensure_token().await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::SecretRejected {
                tried_next_secret: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("client secret rejected"), "{err}");
    assert!(
        !err.to_string().contains("current"),
        "the message never quotes a secret: {err}"
    );

    let with_next = builder(&server, clock)
        .next_client_secret(Some(ClientSecret::new("s-s4t2ud-next")))
        .build()
        .unwrap();
    with_next.ensure_token().await.unwrap();
}

#[tokio::test]
async fn server_limit_headers_raise_the_budget() {
    let server = server().await;
    let clock = Arc::new(ManualClock::new());
    mount_tokens(&server, clock.clone(), 7200).await;
    Mock::given(method("GET"))
        .and(path("/v2/cursus"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-Secondly-RateLimit-Limit", "8")
                .insert_header("X-Secondly-RateLimit-Remaining", "7")
                .insert_header("X-Hourly-RateLimit-Limit", "5000")
                .insert_header("X-Hourly-RateLimit-Remaining", "4999")
                .insert_header("X-Application-Id", "1234")
                .set_body_json(json!([])),
        )
        .mount(&server)
        .await;
    let client = builder(&server, clock)
        .rate(ft_api::RateConfig::default())
        .build()
        .unwrap();
    client.get_json("/v2/cursus", &Query::new()).await.unwrap();
    let b = client.budget();
    assert_eq!((b.per_second, b.per_hour), (8, 5000));
    assert_eq!(b.hourly_remaining_seen, Some(4999));
    assert_eq!(b.app_id.as_deref(), Some("1234"));
}

#[tokio::test]
async fn probe_total_reads_x_total_with_one_small_request() {
    let server = server().await;
    let clock = Arc::new(ManualClock::new());
    mount_tokens(&server, clock.clone(), 7200).await;
    Mock::given(method("GET"))
        .and(path("/v2/campus/1/users"))
        .respond_with(Users {
            total: 22938,
            reject: None,
        })
        .mount(&server)
        .await;
    let client = builder(&server, clock).build().unwrap();
    let total = client
        .probe_total("/v2/campus/1/users", &Query::new())
        .await
        .unwrap();
    assert_eq!(total, 22938);
    let reqs = received_on(&server, "/v2/campus/1/users").await;
    assert_eq!(reqs.len(), 1);
    assert_eq!(query_param(&reqs[0], "per_page").as_deref(), Some("1"));
}

#[tokio::test]
async fn token_requests_take_from_the_same_budget() {
    let server = server().await;
    let clock = Arc::new(ManualClock::new());
    mount_tokens(&server, clock.clone(), 7200).await;
    Mock::given(method("GET"))
        .and(path("/v2/cursus"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    // One request per second: the token request takes the only slot, so the first API request
    // must wait one window after the token request's answer (the manual clock does not move
    // while a request is in flight, so that is one second).
    let client = builder(&server, clock)
        .rate(ft_api::RateConfig {
            per_second: 1,
            per_hour: 1200,
            hour: Duration::from_secs(3600),
        })
        .build()
        .unwrap();
    let page = client
        .get_page::<serde_json::Value>("/v2/cursus", &Query::new())
        .await
        .unwrap();
    assert!(page.meta.token_refreshed);
    assert!(
        page.meta.waited >= Duration::from_secs(1),
        "{:?}",
        page.meta.waited
    );
    let stats = client.stats();
    assert_eq!((stats.requests, stats.token_requests), (2, 1));
}

#[tokio::test]
async fn timeouts_are_retried_and_then_reported() {
    let server = server().await;
    let clock = Arc::new(ManualClock::new());
    mount_tokens(&server, clock.clone(), 7200).await;
    Mock::given(method("GET"))
        .and(path("/v2/slow"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([]))
                .set_delay(Duration::from_secs(2)),
        )
        .mount(&server)
        .await;
    let client = builder(&server, clock)
        .timeouts(Duration::from_secs(1), Duration::from_millis(150))
        .retry(RetryConfig {
            max_attempts: 2,
            ..RetryConfig::default()
        })
        .build()
        .unwrap();
    let err = client
        .get_json("/v2/slow", &Query::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Timeout { ref endpoint, attempt: 2 } if endpoint == "/v2/slow"),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_token_endpoint_that_echoes_the_request_never_leaks_the_secret() {
    let server = server().await;
    let clock = Arc::new(ManualClock::new());
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(|req: &wiremock::Request| {
            // A broken proxy that echoes the form body in its error page.
            ResponseTemplate::new(400).set_body_string(format!(
                "bad request: {}",
                String::from_utf8_lossy(&req.body)
            ))
        })
        .mount(&server)
        .await;
    let client = builder(&server, clock).build().unwrap();
    let err = client.ensure_token().await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("bad request"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
}
