//! The curl scenario of the issue, as a test: a token, pages of `/v2/campus/1/users` with the
//! right headers, and hammering past the limits producing 429s that the ledger records.

use crate::common;

use std::time::Duration;

use common::{client, get, header, ids, token};
use ft_sim::{Limits, Sim};
use serde_json::Value;

#[tokio::test]
async fn pages_campus_users_then_hammering_gives_recorded_429s() {
    let limits = Limits {
        per_second: 5,
        per_hour: 40,
        second_window: Duration::from_secs(1),
        hour_window: Duration::from_secs(3600),
    };
    let sim = Sim::builder()
        .seed(3)
        .campuses(2)
        .users_per_campus(150)
        .limits(limits)
        .start()
        .await;
    let client = client();
    let token = token(&client, &sim).await;

    // Page through campus 1 with page[size]=100, respecting the per-second budget.
    let mut seen = Vec::new();
    let mut page = 1;
    loop {
        let response = get(
            &client,
            &sim,
            &token,
            &format!("/v2/campus/1/users?page[number]={page}&page[size]=100"),
        )
        .await;
        assert_eq!(response.status(), 200);
        let headers = response.headers().clone();
        assert_eq!(header(&headers, "x-page"), page.to_string());
        assert_eq!(header(&headers, "x-per-page"), "100");
        assert_eq!(header(&headers, "x-secondly-ratelimit-limit"), "5");
        assert_eq!(header(&headers, "x-hourly-ratelimit-limit"), "40");
        assert!(header(&headers, "x-request-id").len() == 36);
        assert!(header(&headers, "x-runtime").parse::<f64>().is_ok());
        assert_eq!(header(&headers, "x-application-id"), "1");
        let total: usize = header(&headers, "x-total").parse().expect("X-Total");
        let body: Value = response.json().await.expect("JSON");
        let batch = ids(&body);
        let link = header(&headers, "link");
        if batch.is_empty() {
            assert!(link.contains("rel=\"prev\""));
            break;
        }
        assert!(
            link.contains("rel=\"last\"") || seen.len() + batch.len() >= total,
            "Link: {link}"
        );
        seen.extend(batch);
        page += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let campus_users = sim
        .truth()
        .table("campus_users")
        .iter()
        .filter(|cu| cu["campus_id"] == 1)
        .count();
    assert_eq!(
        seen.len(),
        campus_users,
        "every campus-1 member exactly once"
    );
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no duplicates");
    assert_eq!(
        sim.count_status(429),
        0,
        "paced paging never hits the limit"
    );

    // Hammer: 60 requests as fast as possible.
    let mut statuses = Vec::new();
    for _ in 0..60 {
        statuses.push(
            get(&client, &sim, &token, "/v2/campus/1/users?page[size]=100")
                .await
                .status()
                .as_u16(),
        );
    }
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert!(limited > 0, "hammering must hit the limit");
    let ledger = sim.ledger();
    let ledger_429 = ledger.iter().filter(|e| e.status == 429).count();
    assert_eq!(ledger_429, limited, "every 429 is in the ledger");
    assert!(
        ledger
            .iter()
            .filter(|e| e.status == 429)
            .all(|e| !e.counted),
        "429s are not counted"
    );
    assert!(sim.max_in_window(Duration::from_secs(1)) <= 5);
    let v2 = ledger.iter().filter(|e| e.path.starts_with("/v2")).count();
    let counted = ledger.iter().filter(|e| e.counted).count();
    assert_eq!(
        counted + ledger_429,
        v2,
        "every /v2 request is either counted or a 429"
    );
    assert!(counted <= 40, "never more than the hourly budget");
}
