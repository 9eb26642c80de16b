//! A sync that needs more than one hour of budget: it runs across several (compressed) hours
//! with zero 429s, never more than the limits in any window, and keeps spending budget while
//! there is some (utilisation is printed; run with `--no-capture` to see it).

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ft_sim::Limits;
use ft_store::Table;
use ft_store::test_support::TestDb;
use ft_sync::{Engine, EngineConfig, Mode, SyncRequest, What, progress};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_larger_than_the_hourly_budget_spans_hours_without_a_429() {
    // 24 requests per 2.5-second "hour": a full sync of two campuses with every relation needs
    // several of them.
    let limits = Limits {
        per_second: 20,
        per_hour: 24,
        second_window: Duration::from_secs(1),
        hour_window: Duration::from_millis(2500),
    };
    let sim = ft_sim::Sim::builder()
        .seed(31)
        .campuses(2)
        .users_per_campus(60)
        .limits(limits)
        .start()
        .await;
    let db = TestDb::sqlite();
    let client = common::client_for(&sim, limits);
    let config = EngineConfig {
        worker_id: format!("test-{}", std::process::id()),
        freshness: BTreeMap::new(),
        ..EngineConfig::default()
    };
    let clock = sim.clone();
    let engine =
        Engine::new(client, db.store().clone(), config).with_clock(Arc::new(move || clock.now()));
    let summary = engine
        .sync(
            SyncRequest::new(What::All, Mode::Full),
            progress::discard(),
            std::future::pending(),
        )
        .await
        .expect("sync across several hours");
    assert_eq!(summary.tasks_failed, 0, "{:?}", summary.errors);
    assert_eq!(sim.count_status(429), 0, "pacing kept every request legal");

    let counted: Vec<Duration> = sim
        .ledger()
        .iter()
        .filter(|e| e.counted)
        .map(|e| e.at)
        .collect();
    let requests = counted.len();
    let hours_needed = requests.div_ceil(limits.per_hour as usize);
    assert!(
        hours_needed >= 3,
        "the dataset must need several hours of budget ({requests} requests)"
    );
    assert!(sim.max_in_window(limits.hour_window) <= limits.per_hour as usize);
    assert!(sim.max_in_window(limits.second_window) <= limits.per_second as usize);

    // Utilisation: the rate achieved against the rate the hourly budget allows (the pacer
    // spreads requests evenly rather than bursting a window's budget at once).
    let span = counted.last().copied().unwrap_or_default() - counted[0];
    let budget_rate = f64::from(limits.per_hour) / limits.hour_window.as_secs_f64();
    let achieved = (requests - 1) as f64 / span.as_secs_f64();
    let utilisation = achieved / budget_rate;
    eprintln!(
        "budget test: {requests} requests over {:.1} s ({:.1} compressed hours): {achieved:.1}/s of {budget_rate:.1}/s allowed, utilisation {:.0}%",
        span.as_secs_f64(),
        span.as_secs_f64() / limits.hour_window.as_secs_f64(),
        utilisation * 100.0
    );
    // No idle stretch while budget was available: the run took at most one more hour than the
    // budget strictly needs (the pacer keeps a small safety margin per window).
    let hours_taken = span.as_secs_f64() / limits.hour_window.as_secs_f64();
    assert!(
        hours_taken <= hours_needed as f64 + 1.0,
        "the run idled: {hours_taken:.1} hours for {hours_needed} hours of requests"
    );
    // And the data is all there.
    let truth = sim.truth();
    for &table in Table::ALL {
        common::assert_table_matches(db.store(), &truth, table, common::Embedded::Exact);
    }
}
