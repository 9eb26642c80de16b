//! Upsert throughput of `apply_page` for users and projects_users on SQLite and PostgreSQL.
//!
//! Each page is applied the way the engine does it: one transaction with the rows, a cursor
//! update and a fetch-log row. Rows are generated page by page, so memory should not depend on
//! the total; the peak RSS (VmHWM) is printed after every phase to show it.
//!
//! Only the time inside `apply_page` is counted: wall clock, and CPU time of this process plus
//! (PostgreSQL) the server backends of the benchmark database, which stays meaningful when other
//! work shares the machine. `cargo bench -p ft-store --bench upsert` (release
//! profile). Environment:
//! `FT42_BENCH_ROWS` (default 100000), `FT42_BENCH_PAGES` (page sizes, default "100,1000"),
//! `FT42_BENCH_BACKENDS` (default "sqlite,postgres").

use std::time::Instant;

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use ft_store::rows::{ProjectsUserRow, UserRow};
use ft_store::test_support::TestDb;
use ft_store::{ApplyPage, Backend, CursorUpdate, FetchLogEntry, Rows, Store};

fn ts(minutes: i64) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        + TimeDelta::minutes(minutes)
}

/// About 800 bytes of JSON, like an item of /v2/campus/:id/users.
fn user(id: i64, version: i64) -> UserRow {
    let login = format!("user{id}");
    let raw = serde_json::json!({
        "id": id, "email": format!("{login}@student.42.fr"), "login": login,
        "first_name": "Ada", "last_name": "Lovelace", "usual_full_name": "Ada Lovelace",
        "usual_first_name": null, "url": format!("https://api.intra.42.fr/v2/users/{login}"),
        "phone": "hidden", "displayname": "Ada Lovelace", "kind": "student",
        "image": {"link": format!("https://cdn.intra.42.fr/users/{id}/{login}.jpg"),
                  "versions": {"large": "https://cdn.intra.42.fr/users/large.jpg",
                               "medium": "https://cdn.intra.42.fr/users/medium.jpg",
                               "small": "https://cdn.intra.42.fr/users/small.jpg",
                               "micro": "https://cdn.intra.42.fr/users/micro.jpg"}},
        "staff?": false, "correction_point": 5, "pool_month": "september", "pool_year": "2025",
        "location": null, "wallet": version, "anonymize_date": "2029-01-01T00:00:00.000+01:00",
        "data_erasure_date": null, "created_at": "2025-08-01T09:00:00.000Z",
        "updated_at": "2026-01-01T00:00:00.000Z", "alumnized_at": null, "alumni?": false,
        "active?": true
    })
    .to_string();
    UserRow {
        id,
        login,
        email: Some(format!("user{id}@student.42.fr")),
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        usual_full_name: Some("Ada Lovelace".into()),
        displayname: Some("Ada Lovelace".into()),
        kind: Some("student".into()),
        staff: Some(false),
        pool_month: Some("september".into()),
        pool_year: Some("2025".into()),
        location: None,
        wallet: Some(version),
        correction_point: Some(5),
        alumni: Some(false),
        active: Some(true),
        image_url: Some(format!("https://cdn.intra.42.fr/users/{id}.jpg")),
        anonymize_date: Some(ts(1_000_000)),
        data_erasure_date: None,
        alumnized_at: None,
        created_at: Some(ts(0)),
        updated_at: Some(ts(version)),
        raw,
    }
}

/// About 500 bytes of JSON, like an item of /v2/projects_users.
fn projects_user(id: i64, version: i64) -> ProjectsUserRow {
    let raw = serde_json::json!({
        "id": id, "occurrence": 0, "final_mark": 100, "status": "finished", "validated?": true,
        "current_team_id": id * 3, "project": {"id": 1314, "name": "Libft", "slug": "42cursus-libft",
        "parent_id": null}, "cursus_ids": [21], "marked_at": "2026-01-02T10:00:00.000Z",
        "marked": true, "retriable_at": null, "created_at": "2025-10-01T09:00:00.000Z",
        "updated_at": "2026-01-02T10:00:00.000Z", "user": {"id": id / 10, "login": "someone",
        "url": "https://api.intra.42.fr/v2/users/someone"}, "teams": []
    })
    .to_string();
    ProjectsUserRow {
        id,
        user_id: id / 10,
        project_id: 1314 + id % 50,
        occurrence: Some(0),
        final_mark: Some(version % 125),
        status: Some("finished".into()),
        validated: Some(true),
        current_team_id: Some(id * 3),
        marked: Some(true),
        marked_at: Some(ts(10)),
        retriable_at: None,
        created_at: Some(ts(0)),
        updated_at: Some(ts(version)),
        raw,
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) of this process plus, for PostgreSQL, of the server backends
/// serving database `server_db` (found by their process title, which names the database).
fn cpu_seconds(server_db: Option<&str>) -> f64 {
    let mut total = proc_cpu_seconds("/proc/self/stat");
    if let Some(db) = server_db {
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let path = entry.path();
            let title = std::fs::read(path.join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&title).contains(db) {
                total += proc_cpu_seconds(path.join("stat").to_str().unwrap_or_default());
            }
        }
    }
    total
}

fn proc_cpu_seconds(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // The kernel's USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}

/// Applies `total` rows in pages; returns (rows/s of wall time spent in apply_page,
/// rows/s of this process's CPU time in apply_page). Generating the rows is not timed.
fn run(
    store: &Store,
    server_db: Option<&str>,
    table: &str,
    total: i64,
    page_size: i64,
    version: i64,
) -> (f64, f64) {
    let mut wall = 0.0;
    let mut cpu = 0.0;
    let mut page = 0;
    let mut first = 1;
    while first <= total {
        let last = (first + page_size - 1).min(total);
        page += 1;
        let rows = match table {
            "users" => Rows::Users((first..=last).map(|id| user(id, version)).collect()),
            _ => Rows::ProjectsUsers(
                (first..=last)
                    .map(|id| projects_user(id, version))
                    .collect(),
            ),
        };
        let page_data = ApplyPage {
            rows,
            cursor: Some(CursorUpdate {
                resource: table.into(),
                scope: "bench".into(),
                watermark: None,
                pass_since: Some(ts(0)),
                pass_until: Some(ts(version)),
                last_id: Some(last),
                page,
                rows: last,
                format_version: 1,
                expected_rows: None,
            }),
            fetch_log: Some(FetchLogEntry {
                at: ts(version),
                endpoint: format!("/v2/{table}"),
                scope: "bench".into(),
                page: Some(page),
                status: 200,
                items: last - first + 1,
                retries: 0,
                wait_ms: 0,
                token_refreshed: false,
                task_id: None,
                request_id: None,
            }),
            fence: None,
            enqueue_users: Vec::new(),
            mark_deleted: None,
            also: Vec::new(),
            also_cursors: Vec::new(),
            drop_cursor: None,
            quarantine: Vec::new(),
            refresh_embedded: Vec::new(),
        };
        let (started, cpu_started) = (Instant::now(), cpu_seconds(server_db));
        let outcome = store.apply_page(page_data).expect("apply_page");
        wall += started.elapsed().as_secs_f64();
        cpu += cpu_seconds(server_db) - cpu_started;
        assert_eq!(outcome.written as i64, last - first + 1);
        first = last + 1;
    }
    (total as f64 / wall, total as f64 / cpu.max(0.01))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful. Both run.
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let total: i64 = env("FT42_BENCH_ROWS", "100000")
        .parse()
        .expect("FT42_BENCH_ROWS");
    let pages: Vec<i64> = env("FT42_BENCH_PAGES", "100,1000")
        .split(',')
        .map(|p| p.trim().parse().expect("FT42_BENCH_PAGES"))
        .collect();
    let backends: Vec<Backend> = env("FT42_BENCH_BACKENDS", "sqlite,postgres")
        .split(',')
        .map(|b| match b.trim() {
            "sqlite" => Backend::Sqlite,
            "postgres" => Backend::Postgres,
            other => panic!("unknown backend {other}"),
        })
        .collect();
    println!(
        "rows per run: {total}; peak RSS at start: {} KiB",
        peak_rss_kib()
    );
    println!(
        "{:<9} {:<15} {:>5} {:>14} {:>14} {:>16} {:>16} {:>13}",
        "backend",
        "table",
        "page",
        "insert rows/s",
        "update rows/s",
        "insert rows/cpu-s",
        "update rows/cpu-s",
        "peak RSS KiB"
    );
    for backend in backends {
        for table in ["users", "projects_users"] {
            for &page_size in &pages {
                let db = TestDb::new(backend);
                // PostgreSQL backends show their database in the process title.
                let server_db = match backend {
                    Backend::Postgres => db.url().rsplit('/').next().map(str::to_owned),
                    Backend::Sqlite => None,
                };
                let server_db = server_db.as_deref();
                let (insert, insert_cpu) = run(db.store(), server_db, table, total, page_size, 1);
                let (update, update_cpu) = run(db.store(), server_db, table, total, page_size, 2);
                println!(
                    "{:<9} {:<15} {:>5} {:>14.0} {:>14.0} {:>16.0} {:>16.0} {:>13}",
                    backend.as_str(),
                    table,
                    page_size,
                    insert,
                    update,
                    insert_cpu,
                    update_cpu,
                    peak_rss_kib()
                );
            }
        }
    }
}
