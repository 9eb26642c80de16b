//! Point 4 (rate limits) and point 10 (ledger, max_in_window): sliding windows per
//! application, headers, 429 with and without Retry-After, compressed hour windows.

use crate::common;

use std::time::Duration;

use common::{client, get, header, token, token_for};
use ft_sim::{Limits, Sim};

fn limits(per_second: u32, per_hour: u32, hour_window: Duration) -> Limits {
    Limits {
        per_second,
        per_hour,
        second_window: Duration::from_secs(1),
        hour_window,
    }
}

#[tokio::test]
async fn headers_count_down_and_the_second_limit_gives_text_429_with_retry_after() {
    let sim = Sim::builder()
        .seed(1)
        .users_per_campus(5)
        .limits(limits(3, 100, Duration::from_secs(3600)))
        .start()
        .await;
    let client = client();
    let token = token(&client, &sim).await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let response = get(&client, &sim, &token, "/v2/cursus").await;
        assert_eq!(response.status(), 200);
        remaining.push((
            header(response.headers(), "x-secondly-ratelimit-remaining"),
            header(response.headers(), "x-hourly-ratelimit-remaining"),
        ));
    }
    // All three usually fall into one second; the hourly count is exact either way.
    assert_eq!(
        remaining.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        ["99", "98", "97"]
    );
    assert!(
        remaining
            .iter()
            .all(|r| r.0.parse::<u32>().expect("number") < 3)
    );

    let mut limited = None;
    for _ in 0..5 {
        let response = get(&client, &sim, &token, "/v2/cursus").await;
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("a burst past 3/s is refused");
    assert!(header(limited.headers(), "content-type").starts_with("text/plain"));
    let retry: u64 = header(limited.headers(), "retry-after")
        .parse()
        .expect("Retry-After seconds");
    assert_eq!(retry, 1, "the per-second window frees within a second");
    assert_eq!(
        header(limited.headers(), "x-secondly-ratelimit-remaining"),
        "0"
    );
    assert_eq!(
        limited.text().await.expect("body"),
        "429 Too Many Requests (Spam Rate Limit Exceeded)"
    );

    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(
        get(&client, &sim, &token, "/v2/cursus").await.status(),
        200,
        "the window slid"
    );
    assert!(sim.max_in_window(Duration::from_secs(1)) <= 3);
    assert!(sim.count_status(429) >= 1);
}

#[tokio::test]
async fn compressed_hour_window_refuses_then_recovers_and_retry_after_can_be_switched_off() {
    let sim = Sim::builder()
        .seed(2)
        .users_per_campus(5)
        .limits(limits(100, 4, Duration::from_secs(2)))
        .retry_after(false)
        .start()
        .await;
    let client = client();
    let token = token(&client, &sim).await;
    for _ in 0..4 {
        assert_eq!(get(&client, &sim, &token, "/v2/campus").await.status(), 200);
    }
    let refused = get(&client, &sim, &token, "/v2/campus").await;
    assert_eq!(refused.status(), 429);
    assert!(
        refused.headers().get("retry-after").is_none(),
        "Retry-After switched off"
    );
    assert_eq!(
        header(refused.headers(), "x-hourly-ratelimit-remaining"),
        "0"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        get(&client, &sim, &token, "/v2/campus").await.status(),
        200,
        "the compressed hour slid"
    );
    assert_eq!(
        sim.max_in_window(Duration::from_secs(2)),
        4,
        "exactly the budget, never more"
    );
}

#[tokio::test]
async fn retry_after_for_the_hour_window_tells_when_budget_frees() {
    let sim = Sim::builder()
        .seed(3)
        .users_per_campus(5)
        .limits(limits(100, 2, Duration::from_secs(5)))
        .start()
        .await;
    let client = client();
    let token = token(&client, &sim).await;
    assert_eq!(get(&client, &sim, &token, "/v2/campus").await.status(), 200);
    assert_eq!(get(&client, &sim, &token, "/v2/campus").await.status(), 200);
    let refused = get(&client, &sim, &token, "/v2/campus").await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = header(refused.headers(), "retry-after")
        .parse()
        .expect("Retry-After");
    assert!(
        (4..=5).contains(&retry),
        "about the compressed hour: {retry}"
    );
}

#[tokio::test]
async fn budgets_are_per_application_and_the_ledger_records_everything() {
    let sim = Sim::builder()
        .seed(4)
        .users_per_campus(5)
        .limits(limits(100, 3, Duration::from_secs(3600)))
        .start()
        .await;
    let client = client();
    let first = token(&client, &sim).await;
    let second_app = sim.add_application(100, 5);
    assert_ne!(second_app, sim.credentials());
    let app2 = sim.application_id(&second_app).expect("known app");
    assert_eq!(app2, 2);

    for _ in 0..3 {
        assert_eq!(
            get(&client, &sim, &first, "/v2/cursus?page=1")
                .await
                .status(),
            200
        );
    }
    assert_eq!(get(&client, &sim, &first, "/v2/cursus").await.status(), 429);
    // A fresh token of the same application keeps the same (exhausted) budget.
    sim.revoke_tokens();
    let first_again = token(&client, &sim).await;
    assert_eq!(
        get(&client, &sim, &first_again, "/v2/cursus")
            .await
            .status(),
        429
    );
    let second = token_for(&client, &sim, &second_app).await;
    for _ in 0..5 {
        let response = get(&client, &sim, &second, "/v2/cursus").await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(response.headers(), "x-application-id"), "2");
        assert_eq!(header(response.headers(), "x-hourly-ratelimit-limit"), "5");
    }

    let ledger = sim.ledger();
    let first_entry = ledger
        .iter()
        .find(|e| e.path == "/v2/cursus")
        .expect("entry");
    assert_eq!(first_entry.method, "GET");
    assert_eq!(first_entry.query, "page=1");
    assert_eq!(first_entry.status, 200);
    assert!(first_entry.counted);
    assert_eq!(first_entry.app_id, Some(1));
    assert!(
        ledger
            .iter()
            .any(|e| e.path == "/oauth/token" && !e.counted)
    );
    assert!(
        ledger.windows(2).all(|w| w[0].at <= w[1].at),
        "ledger in time order"
    );
    assert_eq!(sim.max_in_window(Duration::from_secs(3600)), 3);
    assert_eq!(sim.max_in_window_for(app2, Duration::from_secs(3600)), 5);

    sim.set_limits(limits(100, 10, Duration::from_secs(3600)));
    assert_eq!(
        get(&client, &sim, &first_again, "/v2/cursus")
            .await
            .status(),
        200,
        "raised limits apply at once"
    );
}

#[tokio::test]
async fn a_hidden_co_consumer_spends_budget_and_fixed_windows_never_exceed_sliding_ones() {
    let sim = Sim::builder()
        .seed(5)
        .users_per_campus(5)
        .limits(limits(100, 10, Duration::from_secs(3600)))
        .start()
        .await;
    let client = client();
    let token = token(&client, &sim).await;
    let first = get(&client, &sim, &token, "/v2/cursus").await;
    assert_eq!(header(first.headers(), "x-hourly-ratelimit-remaining"), "9");
    sim.consume_budget(5);
    let second = get(&client, &sim, &token, "/v2/cursus").await;
    assert_eq!(
        header(second.headers(), "x-hourly-ratelimit-remaining"),
        "3",
        "the co-consumer's 5 requests count"
    );
    for _ in 0..3 {
        assert_eq!(get(&client, &sim, &token, "/v2/cursus").await.status(), 200);
    }
    assert_eq!(get(&client, &sim, &token, "/v2/cursus").await.status(), 429);
    assert_eq!(
        sim.ledger()
            .iter()
            .filter(|e| e.path == "(co-consumer)" && e.counted)
            .count(),
        5
    );
    assert_eq!(sim.max_in_window(Duration::from_secs(3600)), 10);
    assert!(
        sim.max_in_fixed_window(Duration::from_secs(3600))
            <= sim.max_in_window(Duration::from_secs(3600))
    );
    assert_eq!(sim.max_in_fixed_window(Duration::from_secs(3600)), 10);
}

/// Sends 12 requests 520 ms apart (as the client sees them: 2 per 1.04 s, just inside 2/s)
/// without waiting for answers, and returns the 429 count, the smallest gap between two
/// recorded arrivals and the busiest sliding second of counted arrivals.
async fn spaced_sends(network_delay: Duration) -> (usize, Duration, usize) {
    let sim = Sim::builder()
        .seed(3)
        .users_per_campus(5)
        .limits(limits(2, 1000, Duration::from_secs(3600)))
        .network_delay(network_delay)
        .start()
        .await;
    let client = client();
    let token = token(&client, &sim).await;
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..12u32 {
        tokio::time::sleep_until(start + Duration::from_millis(520) * i).await;
        let (client, sim, token) = (client.clone(), sim.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            get(&client, &sim, &token, "/v2/cursus").await.status()
        }));
    }
    for task in tasks {
        task.await.expect("request task");
    }
    let mut arrivals: Vec<Duration> = sim
        .ledger()
        .iter()
        .filter(|e| e.path == "/v2/cursus")
        .map(|e| e.at)
        .collect();
    arrivals.sort();
    let closest = arrivals
        .windows(2)
        .map(|w| w[1] - w[0])
        .min()
        .unwrap_or_default();
    (
        sim.count_status(429),
        closest,
        sim.max_in_window(Duration::from_secs(1)),
    )
}

#[tokio::test]
async fn a_network_delay_bunches_arrivals_so_sends_spaced_at_the_limit_earn_429s() {
    // Loopback: sends 1.04 s apart per pair arrive that way, nothing is refused.
    let (too_many, closest, busiest) = spaced_sends(Duration::ZERO).await;
    assert_eq!(too_many, 0);
    assert!(closest >= Duration::from_millis(400), "{closest:?}");
    assert!(busiest <= 2);
    // Up to 300 ms each way: arrivals bunch (two sent 520 ms apart can arrive much closer),
    // and the server counts
    // arrivals, so some sends that were spaced right are refused; it still never accepts more
    // than its limit in any sliding second of arrivals.
    let (too_many, closest, busiest) = spaced_sends(Duration::from_millis(300)).await;
    assert!(too_many > 0, "bunched arrivals must earn 429s");
    assert!(closest < Duration::from_millis(400), "{closest:?}");
    assert!(busiest <= 2, "{busiest} counted arrivals in one second");
}
