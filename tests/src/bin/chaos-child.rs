//! One sync process of the chaos runner (`tests/tests/chaos.rs`), killed with SIGKILL at random
//! moments by its parent.
//!
//! Arguments are `key=value` pairs, all required:
//! `base_url`, `client_id`, `secret_file`, `database_url`, `campuses` (comma list),
//! `what` (`users`, `relations`, `coalitions`, `locations` or `all`), `mode` (`full`, `delta` or
//! `auto`), `action` (`sync`: plan the request and run it; `resume`: only work the queue, as
//! `ft42 worker` does after a crash), `per_second`, `per_hour`, `hour_ms` (the simulator's
//! limits), `request_timeout_ms` (short, so injected hangs cost seconds, not minutes) and
//! `clock_offset_ms` (the simulator's clock minus ours: delta windows must use the API's clock).
//!
//! Optional: `report=hwm` prints the process's peak resident memory (`VmHWM`) after the run,
//! for the memory benchmark (`tests/benches/evidence.rs`).
//!
//! Exit status: 0 when the run ended with no failed task, 1 with the engine's error on stderr,
//! 2 for bad arguments.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ft_api::{ClientSecret, FtClient, RateConfig, SharedBudget};
use ft_store::{RateLedger, RequestLog, Store};
use ft_sync::{Engine, EngineConfig, Mode, SyncRequest, What, progress};

/// Parses the `key=value` arguments, exiting with status 2 on anything else.
fn args() -> HashMap<String, String> {
    let mut map = HashMap::new();
    for arg in std::env::args().skip(1) {
        let Some((key, value)) = arg.split_once('=') else {
            eprintln!("chaos-child: argument {arg:?} is not key=value");
            std::process::exit(2);
        };
        map.insert(key.to_owned(), value.to_owned());
    }
    map
}

fn get<'a>(map: &'a HashMap<String, String>, key: &str) -> &'a str {
    match map.get(key) {
        Some(value) => value,
        None => {
            eprintln!("chaos-child: missing argument {key}=...");
            std::process::exit(2);
        }
    }
}

fn number(map: &HashMap<String, String>, key: &str) -> i64 {
    match get(map, key).parse() {
        Ok(n) => n,
        Err(_) => {
            eprintln!("chaos-child: {key} is not a number");
            std::process::exit(2);
        }
    }
}

fn what(name: &str) -> What {
    match name {
        "users" => What::Users,
        "relations" => What::Relations,
        "coalitions" => What::Coalitions,
        "locations" => What::Locations,
        "all" => What::All,
        other => {
            eprintln!("chaos-child: unknown what={other}");
            std::process::exit(2);
        }
    }
}

fn mode(name: &str) -> Mode {
    match name {
        "full" => Mode::Full,
        "delta" => Mode::Delta,
        "auto" => Mode::Auto,
        other => {
            eprintln!("chaos-child: unknown mode={other}");
            std::process::exit(2);
        }
    }
}

/// The `VmHWM:` line of /proc/self/status (peak resident set), or a note that it is unknown.
fn peak_memory_line() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "VmHWM: unknown".to_owned())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let secret = match std::fs::read_to_string(get(&args, "secret_file")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chaos-child: cannot read the secret file: {e}");
            std::process::exit(2);
        }
    };
    let campuses: Vec<i64> = get(&args, "campuses")
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let offset = chrono::Duration::milliseconds(number(&args, "clock_offset_ms"));
    let store = match Store::open(get(&args, "database_url")).and_then(|s| {
        s.migrate()?;
        Ok(s)
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chaos-child: store: {e}");
            std::process::exit(1);
        }
    };
    let client = FtClient::builder()
        .base_url(get(&args, "base_url"))
        .client_id(get(&args, "client_id"))
        .client_secret(ClientSecret::new(secret.trim()))
        .rate(RateConfig {
            per_second: number(&args, "per_second") as u32,
            per_hour: number(&args, "per_hour") as u32,
            hour: Duration::from_millis(number(&args, "hour_ms") as u64),
        })
        .timeouts(
            Duration::from_secs(2),
            Duration::from_millis(number(&args, "request_timeout_ms") as u64),
        )
        // As `ft42` does by default (FT42_SHARED_BUDGET=auto): a restarted process starts from
        // what the killed one sent (SQLite request log, PostgreSQL rate ledger), not from an
        // empty window.
        .shared_budget(Some(if RateLedger::needed(store.backend()) {
            Arc::new(RateLedger::new(store.clone())) as Arc<dyn SharedBudget>
        } else {
            Arc::new(RequestLog::new(store.clone()))
        }))
        .build();
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chaos-child: client: {e}");
            std::process::exit(2);
        }
    };
    let config = EngineConfig {
        // The same id across restarts: the restarted process takes its own leases back at once.
        worker_id: "chaos".to_owned(),
        // Every round must bring every table back: no scope is skipped as fresh.
        freshness: Default::default(),
        ..EngineConfig::default()
    };
    let engine = Engine::new(client, store, config)
        .with_clock(Arc::new(move || chrono::Utc::now() + offset));
    let result = match get(&args, "action") {
        "sync" => {
            let req = SyncRequest::new(what(get(&args, "what")), mode(get(&args, "mode")))
                .campuses(campuses);
            engine
                .sync(req, progress::discard(), std::future::pending())
                .await
        }
        "resume" => {
            engine
                .run_until_idle(false, progress::discard(), std::future::pending())
                .await
        }
        other => {
            eprintln!("chaos-child: unknown action={other}");
            std::process::exit(2);
        }
    };
    match result {
        Ok(summary) if summary.tasks_failed == 0 => {
            println!(
                "done: {} rows, {} pages, {} requests",
                summary.rows_written, summary.pages, summary.requests
            );
            if args.get("report").is_some_and(|r| r == "hwm") {
                println!("{}", peak_memory_line());
            }
        }
        Ok(summary) => {
            eprintln!("chaos-child: failed tasks: {:?}", summary.errors);
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("chaos-child: {e}");
            std::process::exit(1);
        }
    }
}
