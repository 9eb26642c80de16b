//! `sync`, `worker`, `status`, `demo` and `daemon` against the simulator, through the binary.

use crate::common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Sandbox, point_at, run, sim};
use ft_store::{Store, Table, TaskState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_end_to_end_with_no_429() {
    let sb = Sandbox::new();
    let mut cmd = sb.ft42();
    // The configured database is the real mirror: the demo must not write into it.
    cmd.args(["demo", "--json"])
        .env("FT42_DATABASE_URL", "sqlite://real-mirror.db")
        .env("FT42_DEMO_USERS", "60")
        .args(["--campuses", "2"]);
    let out = run(cmd).await.success();
    let summary: serde_json::Value =
        serde_json::from_slice(&out.get_output().stdout).expect("JSON summary");
    assert_eq!(summary["responses_429"], 0, "{summary}");
    assert!(summary["requests"].as_u64().unwrap() > 0);
    assert!(summary["delta_sync_requests"].as_u64().unwrap() > 0);
    // One delta round brings every table back to what the API holds, deletions included.
    let tables = summary["tables"].as_object().expect("tables");
    assert_eq!(tables.len(), 13, "{summary}");
    for (table, line) in tables {
        assert_eq!(line["mirror"], line["api"], "{table}: {summary}");
        assert!(line["mirror"].as_i64().unwrap() > 0, "{table}");
    }
    assert!(sb.file("ft42-demo.db").exists());
    assert!(!sb.file("real-mirror.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_campuses_setting_limits_a_sync_without_campus_flags() {
    let sim = sim(21, 2).await;
    let sb = Sandbox::new();
    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.args(["sync", "users", "-q"]).env("FT42_CAMPUSES", "2");
    run(cmd).await.success();
    let store = Store::open(sb.file("ft42.db").to_str().unwrap()).unwrap();
    let members: Vec<i64> = store
        .raw_rows(Table::CampusUsers)
        .unwrap()
        .iter()
        .filter_map(|r| r.raw["campus_id"].as_i64())
        .collect();
    assert!(!members.is_empty(), "campus 2 was synced");
    assert!(
        members.iter().all(|&c| c == 2),
        "only campus 2's members: {members:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_users_then_status_shows_fresh_scopes() {
    let sim = sim(20, 2).await;
    let sb = Sandbox::new();
    // Issue #18: `status --check` alerts (exit 6) while nothing is synced, and is quiet with -q
    // except for the stale lines on stderr.
    let mut cmd = sb.ft42();
    cmd.args(["migrate", "-q"]);
    run(cmd).await.success();
    let mut cmd = sb.ft42();
    cmd.args(["status", "--check", "-q"]);
    let out = run(cmd).await.code(6);
    let output = out.get_output();
    assert!(output.stdout.is_empty(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("nothing has been synced yet"),
        "{output:?}"
    );

    // `-q` silences the run summary: cron mails only failures.
    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.args(["sync", "users", "-q"]);
    let out = run(cmd).await.success();
    assert!(
        out.get_output().stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.get_output().stdout)
    );

    // Everything just synced is within its target.
    let mut cmd = sb.ft42();
    cmd.args(["status", "--check"]);
    run(cmd).await.success();

    // `ft42 runs`: the sync shows with its rows, requests and status.
    let mut cmd = sb.ft42();
    cmd.args(["runs", "--json", "-n", "5"]);
    let out = run(cmd).await.success();
    let runs: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let runs = runs.as_array().expect("a list of runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["status"], "ok", "{runs:?}");
    assert!(runs[0]["rows"].as_u64().unwrap() > 0, "{runs:?}");
    assert!(runs[0]["requests"].as_u64().unwrap() > 0, "{runs:?}");
    assert_eq!(runs[0]["responses_429"], 0, "{runs:?}");

    let store = Store::open(sb.file("ft42.db").to_str().unwrap()).unwrap();
    assert_eq!(
        store.count(Table::Users, false).unwrap() as usize,
        sim.counts()["users"]
    );

    let mut cmd = sb.ft42();
    cmd.args(["status", "--json"]);
    let out = run(cmd).await.success();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert!(!report["scopes"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(report["failed_tasks"], 0, "{report}");
    assert!(
        report["budget"]["used_last_hour"].as_i64().unwrap() > 0,
        "{report}"
    );
}

/// Parses a Prometheus text file into (name with labels, value), checking that every sample
/// belongs to a family announced by HELP and TYPE lines.
fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    let mut typed = std::collections::BTreeMap::new();
    let mut helped = std::collections::BTreeSet::new();
    let mut samples = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split(' ').next().unwrap().to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["gauge", "counter"].contains(&kind), "{line}");
            typed.insert(name.to_owned(), kind.to_owned());
        } else {
            let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
            let name = key.split('{').next().unwrap();
            assert!(
                typed.contains_key(name) && helped.contains(name),
                "no HELP/TYPE: {line}"
            );
            assert_eq!(name.ends_with("_total"), typed[name] == "counter", "{line}");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            assert!(
                samples.insert(key.to_owned(), value).is_none(),
                "twice: {line}"
            );
        }
    }
    samples
}

/// Issue #18: `--metrics-file` writes the mirror's state after the job; the values are the
/// store's own (rows per table, requests and 429s of the run history, the queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_writes_the_metrics_file_with_the_stores_figures() {
    let sim = sim(20, 2).await;
    let sb = Sandbox::new();
    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.args(["sync", "all", "-q", "--metrics-file", "ft42.prom"]);
    run(cmd).await.success();

    let text = std::fs::read_to_string(sb.file("ft42.prom")).expect("the metrics file");
    let m = parse_metrics(&text);
    let store = Store::open(sb.file("ft42.db").to_str().unwrap()).unwrap();
    for table in Table::ALL {
        let key = format!("ft42_rows{{table=\"{}\"}}", table.as_str());
        assert_eq!(
            m.get(&key).copied(),
            Some(store.count(*table, false).unwrap() as f64),
            "{key}"
        );
    }
    assert!(m[r#"ft42_rows{table="users"}"#] > 0.0, "{text}");
    let runs = store.runs(100).unwrap();
    let requests: u64 = runs
        .iter()
        .filter_map(|r| r.summary.as_ref()?.get("requests")?.as_u64())
        .sum();
    assert!(requests > 0);
    assert_eq!(m["ft42_requests_total"], requests as f64, "{text}");
    assert_eq!(m["ft42_responses_429_total"], 0.0, "{text}");
    assert_eq!(m["ft42_runs_total"], runs.len() as f64, "{text}");
    // The current clock hour holds at most the requests the fetch log has (all from this
    // test); the budget left is the configured 1200 minus the current hour's.
    let logged: i64 = store
        .fetch_log(100_000)
        .unwrap()
        .iter()
        .map(|r| 1 + i64::from(r.retries))
        .sum();
    let hourly = m["ft42_hourly_requests"];
    assert!(hourly <= logged as f64, "{text}");
    assert_eq!(m["ft42_hourly_budget_requests"], 1200.0, "{text}");
    assert_eq!(
        m["ft42_hourly_budget_remaining_requests"],
        1200.0 - hourly,
        "{text}"
    );
    // A complete sync: users have a last success at or before the file's own time, nothing
    // is queued or failed.
    let last_users = m[r#"ft42_last_success_timestamp_seconds{table="users"}"#];
    assert!(
        last_users > 0.0 && last_users <= m["ft42_metrics_timestamp_seconds"],
        "{text}"
    );
    assert_eq!(m[r#"ft42_queue_tasks{state="pending"}"#], 0.0, "{text}");
    assert_eq!(m[r#"ft42_queue_tasks{state="error"}"#], 0.0, "{text}");
    assert!(m[r#"ft42_queue_tasks{state="done"}"#] > 0.0, "{text}");
    assert_eq!(m[r#"ft42_backlog_requests{lane="hot"}"#], 0.0, "{text}");
    assert!(
        !m.contains_key("ft42_backup_age_seconds"),
        "no backup yet: {text}"
    );
    assert_eq!(m["ft42_quarantined_rows"], 0.0, "{text}");
    // The secret's end of validity, as the sync's token answer said (the simulator's secrets
    // are valid for a year from its epoch: well in the future).
    let until = m["ft42_secret_valid_until_timestamp_seconds"];
    assert!(
        until > m["ft42_metrics_timestamp_seconds"] + 14.0 * 86_400.0,
        "{text}"
    );

    // A metrics folder that does not exist is a configuration error naming the setting.
    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.args(["sync", "users", "-q"])
        .env("FT42_METRICS_FILE", sb.file("missing/ft42.prom"));
    let out = run(cmd).await.code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("FT42_METRICS_FILE"), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
}

/// SIGTERM in the middle of a sync: the daemon commits the page in flight and exits 0; no task
/// is left leased, every committed row stays, and the next run finishes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_stops_cleanly_on_sigterm_mid_sync() {
    let sim = ft_sim::Sim::builder()
        .seed(11)
        .campuses(2)
        .users_per_campus(150)
        // A large hourly budget: at 1200/h the client's steady pace is one request per 3 s
        // after a short burst, which would make the resumed run slow without testing more.
        .limits(ft_sim::Limits {
            per_second: 5,
            per_hour: 20_000,
            ..ft_sim::Limits::default()
        })
        .start()
        .await;
    let sb = Sandbox::new();
    let creds = sim.credentials();
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ft42"))
        .arg("daemon")
        .current_dir(sb.path())
        .env("FT42_API_URL", sim.base_url())
        .env("FT42_CLIENT_ID", &creds.client_id)
        .env("FT42_CLIENT_SECRET", &creds.client_secret)
        .env("FT42_RATE_PER_SECOND", "5")
        .env("FT42_RATE_PER_HOUR", "20000")
        .env("FT42_LOG_DIR", sb.file("logs"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("daemon starts");

    // Wait until some pages are committed, so the signal lands mid-sync.
    let started = Instant::now();
    let db = sb.file("ft42.db");
    let deadline = Instant::now() + Duration::from_secs(60);
    let committed = loop {
        assert!(Instant::now() < deadline, "no page committed within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(store) = Store::open(db.to_str().unwrap()) else {
            continue;
        };
        let Ok(n) = store.count(Table::Users, false) else {
            continue;
        };
        if n > 0 {
            break n;
        }
    };
    eprintln!("first users committed after {:?}", started.elapsed());
    let signalled = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let stopped = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    eprintln!("daemon stopped {:?} after SIGTERM", signalled.elapsed());
    assert_eq!(
        stopped.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&stopped.stderr)
    );

    let store = Store::open(db.to_str().unwrap()).unwrap();
    assert!(store.count(Table::Users, false).unwrap() >= committed);
    let running: i64 = store
        .task_counts()
        .unwrap()
        .iter()
        .filter(|(_, state, _)| *state == TaskState::Running)
        .map(|(_, _, n)| n)
        .sum();
    assert_eq!(running, 0, "a task was left leased");

    // The next run picks up where the daemon stopped and completes the users.
    let resumed = Instant::now();
    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.args(["sync", "users"])
        .env("FT42_RATE_PER_SECOND", "5")
        .env("FT42_RATE_PER_HOUR", "20000");
    run(cmd).await.success();
    eprintln!("resumed sync took {:?}", resumed.elapsed());
    assert_eq!(
        store.count(Table::Users, false).unwrap() as usize,
        sim.counts()["users"]
    );
}

/// `ft42 integrity` after a sync: no error finding → exit 0 and a stored report; a planted
/// orphan → exit 6 with the orphan named in the JSON report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrity_is_clean_after_a_sync_and_exits_6_on_an_orphan() {
    let sim = sim(20, 1).await;
    let sb = Sandbox::new();
    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.args(["sync", "users"]);
    run(cmd).await.success();

    let mut cmd = sb.ft42();
    cmd.args(["integrity", "--json"]);
    let out = run(cmd).await.success();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert!(report["findings"].is_array(), "{report}");
    assert!(
        !report["checks_run"].as_array().unwrap().is_empty(),
        "{report}"
    );

    let store = Store::open(sb.file("ft42.db").to_str().unwrap()).unwrap();
    let orphan = ft_store::rows::CampusUserRow {
        id: 999_999,
        user_id: 888_888,
        campus_id: 1,
        is_primary: Some(true),
        created_at: None,
        updated_at: None,
        raw: "{}".into(),
    };
    store
        .apply_page(ft_store::ApplyPage::rows(ft_store::Rows::CampusUsers(
            vec![orphan],
        )))
        .unwrap();
    let mut cmd = sb.ft42();
    cmd.args(["integrity", "--json"]);
    let out = run(cmd).await.code(6);
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(text.contains("888888") || text.contains("999999"), "{text}");
    assert_eq!(
        store.integrity_runs(10).unwrap().len(),
        2,
        "both runs were stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_rebuilds_every_table_from_the_archive_without_the_api() {
    // Limits raised (and the client told so) to keep the test quick.
    let sim = ft_sim::Sim::builder()
        .seed(7)
        .campuses(2)
        .users_per_campus(15)
        .limits(ft_sim::Limits {
            per_second: 30,
            per_hour: 100_000,
            ..ft_sim::Limits::default()
        })
        .start()
        .await;
    let sb = Sandbox::new();
    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.args(["sync", "all"])
        .env("FT42_RATE_PER_SECOND", "30")
        .env("FT42_RATE_PER_HOUR", "100000");
    run(cmd).await.success();
    assert!(sb.file("exports").is_dir(), "the sync archives its pages");
    let requests = sim.ledger().len();

    // No credentials and no API: replay needs neither.
    let mut cmd = sb.ft42();
    cmd.args(["replay", "--database-url", "sqlite://replayed.db"]);
    let out = run(cmd).await.success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("no API request made"), "{stdout}");
    assert_eq!(sim.ledger().len(), requests);

    let synced = Store::open(sb.file("ft42.db").to_str().unwrap()).unwrap();
    let replayed = Store::open(sb.file("replayed.db").to_str().unwrap()).unwrap();
    for &table in Table::ALL {
        let (a, b) = (
            synced.count(table, false).unwrap(),
            replayed.count(table, false).unwrap(),
        );
        assert_eq!(a, b, "{table}");
        assert!(a > 0, "{table} was synced");
    }

    // An archive that is not there is a clear error.
    let mut cmd = sb.ft42();
    cmd.args([
        "replay",
        "--from",
        "nowhere",
        "--database-url",
        "sqlite://x.db",
    ]);
    let out = run(cmd).await.failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("no archive folder"), "{stderr}");
}
