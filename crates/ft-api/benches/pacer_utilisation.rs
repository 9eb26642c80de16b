//! Measures the pacer's utilisation against the simulator: requests achieved per second over
//! the requests per second the server's limits allow, on the conformance run (20/s and 300 per
//! compressed 10 s "hour", 520 requests from 4 concurrent tasks).
//!
//! ```text
//! cargo bench -p ft-api --bench pacer_utilisation                  # jitter margin 25 ms
//! cargo bench -p ft-api --bench pacer_utilisation -- 10 25 50      # several margins (ms)
//! ```
//!
//! The achieved rate is measured on the simulator's ledger (server-side arrival times):
//! `(N - 1) / (t_last - t_first)` over the N counted requests. The allowed rate is
//! `min(per_second / 1 s, per_hour / hour)`; the goal is at least 95%.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ft_api::models::User;
use ft_api::{ClientSecret, FtClient, Query, RateConfig};
use ft_sim::{Limits, Sim};

const REQUESTS: usize = 520;
const WORKERS: usize = 4;

async fn run(margin: Duration) {
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
    let creds = sim.credentials();
    let client = FtClient::builder()
        .base_url(sim.base_url())
        .client_id(creds.client_id.as_str())
        .client_secret(ClientSecret::new(creds.client_secret.clone()))
        .rate(RateConfig {
            per_second: limits.per_second,
            per_hour: limits.per_hour,
            hour: limits.hour_window,
        })
        .jitter_margin(margin)
        .build()
        .expect("client");
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..WORKERS)
        .map(|_| {
            let client = client.clone();
            let next = next.clone();
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::SeqCst) < REQUESTS {
                    client
                        .get_page::<User>("/v2/campus/1/users", &Query::new().per_page(5))
                        .await
                        .expect("request");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("worker");
    }
    let times: Vec<Duration> = sim
        .ledger()
        .iter()
        .filter(|e| e.counted)
        .map(|e| e.at)
        .collect();
    let n = times.len();
    let span = (times[n - 1] - times[0]).as_secs_f64();
    let achieved = (n - 1) as f64 / span;
    let allowed = f64::from(limits.per_second)
        .min(f64::from(limits.per_hour) / limits.hour_window.as_secs_f64());
    let (s, h) = client.bucket_params();
    println!(
        "margin {:>3} ms: {n} requests in {span:.2} s = {achieved:.2}/s of {allowed:.2}/s allowed \
         -> utilisation {:.1}%; 429s: {}; busiest 1 s window: {}, busiest 10 s window: {}; \
         buckets: {:.2}/s burst {} and {:.2}/s burst {}",
        margin.as_millis(),
        100.0 * achieved / allowed,
        sim.count_status(429),
        sim.max_in_window(Duration::from_secs(1)),
        sim.max_in_window(Duration::from_secs(10)),
        s.rate_per_sec(),
        s.burst,
        h.rate_per_sec(),
        h.burst,
    );
}

fn main() {
    let margins: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let margins = if margins.is_empty() {
        vec![25]
    } else {
        margins
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for m in margins {
        rt.block_on(run(Duration::from_millis(m)));
    }
}
