//! Wall time of a burst of requests in a cold hour at the real limits (2/s, 1200/h), against
//! the simulator, optionally over a simulated network delay (issue #19):
//!
//! ```text
//! cargo bench -p ft-api --bench cold_hour                 # 64 requests, loopback
//! cargo bench -p ft-api --bench cold_hour -- 600 50       # 600 requests, up to 50 ms each way
//! ```
//!
//! Four workers request pages as fast as the client lets them. The server would take `n`
//! requests in `n / 2` seconds from an empty hour; the figure printed is the wall time, its
//! ratio to that, the 429s and the busiest sliding windows of arrivals the server counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ft_api::models::User;
use ft_api::{ClientSecret, FtClient, Query};
use ft_sim::{Limits, Sim};

const WORKERS: usize = 4;

async fn run(n: usize, delay: Duration) {
    let sim = Sim::builder()
        .seed(7)
        .users_per_campus(100)
        .limits(Limits::default())
        .network_delay(delay)
        .start()
        .await;
    let creds = sim.credentials();
    let client = FtClient::builder()
        .base_url(sim.base_url())
        .client_id(creds.client_id.as_str())
        .client_secret(ClientSecret::new(creds.client_secret.clone()))
        .build()
        .expect("client");
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..WORKERS)
        .map(|_| {
            let client = client.clone();
            let next = next.clone();
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::SeqCst) < n {
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
    let wall = started.elapsed().as_secs_f64();
    let ideal = n as f64 / 2.0;
    println!(
        "{n} requests (+1 token request), network delay up to {} ms each way: {wall:.1} s \
         for {ideal:.1} s at 2/s ({:.2}x); 429s: {}; busiest 1 s window {} (limit 2), busiest \
         hour {} (limit 1200)",
        delay.as_millis(),
        wall / ideal,
        sim.count_status(429),
        sim.max_in_window(Duration::from_secs(1)),
        sim.max_in_window(Duration::from_secs(3600)),
    );
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(64) as usize;
    let delay = Duration::from_millis(args.get(1).copied().unwrap_or(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(n, delay));
}
