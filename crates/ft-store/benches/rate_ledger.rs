//! Cost of one rate-ledger reservation on PostgreSQL, from one thread and from four at once
//! (one application: they all queue on its lock), with 42's real limits (2/s, 1200/h). The
//! benchmark does not sleep until the reserved instants (they pile up in the future), so it
//! measures the database work a request adds, with a full hour (1200 rows) to look through.
//! `cargo bench -p ft-store --bench rate_ledger`.

use std::time::{Duration, Instant};

use ft_api::SharedLimits;
use ft_store::Store;
use ft_store::test_support::TestDb;

const PER_THREAD: usize = 500;

fn main() {
    let db = TestDb::postgres();
    let limits = SharedLimits {
        per_second: 2,
        per_hour: 1200,
        second: Duration::from_secs(1),
        hour: Duration::from_secs(3600),
        margin: Duration::from_millis(100),
    };
    // Warm-up: the pool's connections and the plan cache.
    for _ in 0..50 {
        db.store().reserve_request("u-warm", &limits).unwrap();
    }
    for threads in [1usize, 4] {
        let started = Instant::now();
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let store = Store::open(db.url()).unwrap();
                std::thread::spawn(move || {
                    for _ in 0..PER_THREAD {
                        store.reserve_request("u-bench", &limits).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let elapsed = started.elapsed();
        let n = threads * PER_THREAD;
        println!(
            "{threads} thread(s): {n} reservations in {:.2}s = {:.0}/s, {:.2} ms each",
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1000.0 / n as f64
        );
    }
}
