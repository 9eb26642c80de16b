//! Point 9: faults, deterministic from the seed.

use crate::common;

use std::time::Duration;

use common::{client, generous, get, header, token};
use ft_sim::{Faults, Sim, SimHandle};
use serde_json::Value;

async fn statuses(sim: &SimHandle, count: usize) -> Vec<u16> {
    let client = client();
    let token = token(&client, sim).await;
    let mut out = Vec::new();
    for _ in 0..count {
        out.push(
            get(&client, sim, &token, "/v2/cursus")
                .await
                .status()
                .as_u16(),
        );
    }
    out
}

#[tokio::test]
async fn faults_are_deterministic_from_the_seed() {
    let faults = Faults {
        error_5xx_rate: 0.3,
        spontaneous_429_rate: 0.2,
        ..Faults::default()
    };
    let start = |seed| {
        Sim::builder()
            .seed(seed)
            .users_per_campus(5)
            .limits(generous())
            .faults(faults.clone())
            .start()
    };
    let (a, b, c) = (start(31).await, start(31).await, start(32).await);
    let (sa, sb, sc) = (
        statuses(&a, 40).await,
        statuses(&b, 40).await,
        statuses(&c, 40).await,
    );
    assert_eq!(sa, sb, "same seed, same faults");
    assert_ne!(sa, sc, "another seed, other faults");
    assert!(sa.iter().any(|&s| s >= 500) && sa.contains(&429) && sa.contains(&200));
}

#[tokio::test]
async fn server_errors_come_as_json_and_html_and_are_counted() {
    let sim = Sim::builder()
        .seed(33)
        .users_per_campus(5)
        .limits(generous())
        .faults(Faults {
            error_5xx_rate: 1.0,
            ..Faults::default()
        })
        .start()
        .await;
    let client = client();
    let token = token(&client, &sim).await;
    let mut kinds = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let response = get(&client, &sim, &token, "/v2/users").await;
        assert!(response.status().is_server_error());
        kinds.insert(
            header(response.headers(), "content-type")
                .split(';')
                .next()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert!(
        kinds.contains("application/json") && kinds.contains("text/html"),
        "{kinds:?}"
    );
    assert!(
        sim.ledger()
            .iter()
            .filter(|e| e.status >= 500)
            .all(|e| e.counted),
        "5xx answers cost budget"
    );
}

#[tokio::test]
async fn spontaneous_429_are_not_counted_and_revocation_every_n() {
    let sim = Sim::builder()
        .seed(34)
        .users_per_campus(5)
        .limits(generous())
        .faults(Faults {
            spontaneous_429_rate: 1.0,
            ..Faults::default()
        })
        .start()
        .await;
    let seen = statuses(&sim, 5).await;
    assert!(seen.iter().all(|&s| s == 429));
    assert!(sim.ledger().iter().all(|e| !e.counted));

    sim.set_faults(Faults {
        revoke_token_every: Some(3),
        ..Faults::default()
    });
    let client = client();
    let token = token(&client, &sim).await;
    let mut run = Vec::new();
    for _ in 0..4 {
        run.push(
            get(&client, &sim, &token, "/v2/cursus")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(
        run,
        vec![200, 200, 200, 401],
        "tokens revoked after the third request"
    );
    let fresh = common::token(&client, &sim).await;
    assert_ne!(fresh, token);
    assert_eq!(get(&client, &sim, &fresh, "/v2/cursus").await.status(), 200);
}

#[tokio::test]
async fn malformed_pages_do_not_parse() {
    let sim = Sim::builder()
        .seed(35)
        .users_per_campus(10)
        .limits(generous())
        .faults(Faults {
            malformed_rate: 1.0,
            ..Faults::default()
        })
        .start()
        .await;
    let client = client();
    let token = token(&client, &sim).await;
    for _ in 0..6 {
        let response = get(&client, &sim, &token, "/v2/users").await;
        assert_eq!(response.status(), 200);
        assert!(header(response.headers(), "content-type").starts_with("application/json"));
        let text = response.text().await.expect("body");
        assert!(
            serde_json::from_str::<Value>(&text).is_err(),
            "malformed: {}",
            &text[..text.len().min(60)]
        );
    }
}

#[tokio::test]
async fn slow_answers_arrive_late_and_hangs_hit_client_timeouts() {
    let slow = Faults {
        slow_rate: 1.0,
        slow_delay: Duration::from_millis(300),
        ..Faults::default()
    };
    let sim = Sim::builder()
        .seed(36)
        .users_per_campus(5)
        .limits(generous())
        .faults(slow)
        .start()
        .await;
    let client = client();
    let token = token(&client, &sim).await;
    let began = std::time::Instant::now();
    assert_eq!(get(&client, &sim, &token, "/v2/cursus").await.status(), 200);
    assert!(
        began.elapsed() >= Duration::from_millis(300),
        "the answer was delayed"
    );

    sim.set_faults(Faults {
        hang_rate: 1.0,
        hang_delay: Duration::from_secs(30),
        ..Faults::default()
    });
    let result = client
        .get(format!("{}/v2/cursus", sim.base_url()))
        .bearer_auth(&token)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(
        result
            .expect_err("a hang outlives the client timeout")
            .is_timeout()
    );
    // The hang holds only its own connection: other requests still get answers.
    sim.set_faults(Faults::default());
    assert_eq!(get(&client, &sim, &token, "/v2/cursus").await.status(), 200);
}

#[tokio::test]
async fn token_endpoint_failures_and_jitter() {
    let sim = Sim::builder()
        .seed(37)
        .users_per_campus(5)
        .limits(generous())
        .faults(Faults {
            token_error_rate: 1.0,
            ..Faults::default()
        })
        .start()
        .await;
    let client = client();
    let creds = sim.credentials();
    let response = client
        .post(sim.token_url())
        .basic_auth(&creds.client_id, Some(&creds.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 503);
    assert!(header(response.headers(), "content-type").starts_with("text/html"));

    let jitter = Duration::from_millis(200);
    sim.set_faults(Faults {
        jitter_max: jitter,
        ..Faults::default()
    });
    let token = token(&client, &sim).await;
    let mut longest = Duration::ZERO;
    for _ in 0..8 {
        let began = std::time::Instant::now();
        assert_eq!(get(&client, &sim, &token, "/v2/cursus").await.status(), 200);
        longest = longest.max(began.elapsed());
    }
    // Eight uniform draws below 200 ms: the largest is above 50 ms unless all eight fall
    // below a quarter (probability 1/65536, and the seed fixes the draws anyway).
    assert!(
        longest >= Duration::from_millis(50),
        "answers were delayed: {longest:?}"
    );
}
