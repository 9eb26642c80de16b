//! The bad-input corpus: malformed configuration, wrong credentials, a database from a newer
//! version, unwritable or full log and export folders, and API bodies that are HTML, empty,
//! truncated or of the wrong shape. Each case must end in one clear error line with the
//! documented exit code (docs/CLI.md), and must leave the mirror exactly as it was: no lost row,
//! no half-written page, no moved cursor.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Sandbox, point_at, run};
use ft_store::{Store, Table};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// stderr holds exactly one `ft42: ` error line and no panic; returns it.
fn one_error_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("ft42: ")).collect();
    assert_eq!(lines.len(), 1, "stderr: {text}");
    assert!(
        !text.contains("panicked") && !text.contains("stack backtrace"),
        "{text}"
    );
    lines[0].to_owned()
}

/// Runs the command and checks the exit code and that the error line names `needle`.
fn expect_error(cmd: &mut assert_cmd::Command, code: i32, needle: &str) -> String {
    let out = cmd.assert().code(code);
    let line = one_error_line(&out.get_output().stderr);
    assert!(line.contains(needle), "expected {needle:?} in: {line}");
    line
}

// ---------------------------------------------------------------------------------------------
// Configuration: exit 2, naming the setting.

#[test]
fn a_config_value_of_the_wrong_type_exits_2_naming_the_file_and_line() {
    let sb = Sandbox::new();
    std::fs::write(
        sb.file("ft42.toml"),
        "client_id = \"u-1\"\nrate_per_second = \"fast\"\n",
    )
    .unwrap();
    let line = expect_error(
        sb.ft42().args(["--config", "ft42.toml", "migrate"]),
        2,
        "ft42.toml",
    );
    assert!(line.contains("line 2"), "{line}");
}

#[test]
fn a_misspelt_config_key_exits_2_naming_it() {
    let sb = Sandbox::new();
    std::fs::write(sb.file("ft42.toml"), "databse_url = \"x.db\"\n").unwrap();
    expect_error(
        sb.ft42().args(["--config", "ft42.toml", "migrate"]),
        2,
        "databse_url",
    );
    assert!(!sb.file("x.db").exists() && !sb.file("ft42.db").exists());
}

#[test]
fn a_missing_config_file_exits_2_naming_it() {
    let sb = Sandbox::new();
    expect_error(
        sb.ft42().args(["--config", "nowhere.toml", "migrate"]),
        2,
        "nowhere.toml",
    );
}

#[test]
fn a_config_path_that_is_a_folder_exits_2() {
    let sb = Sandbox::new();
    std::fs::create_dir(sb.file("conf.d")).unwrap();
    expect_error(
        sb.ft42().args(["--config", "conf.d", "migrate"]),
        2,
        "conf.d",
    );
}

#[test]
fn a_config_file_that_is_not_utf8_exits_2() {
    let sb = Sandbox::new();
    std::fs::write(sb.file("ft42.toml"), b"client_id = \"\xff\xfe\"\n").unwrap();
    expect_error(
        sb.ft42().args(["--config", "ft42.toml", "migrate"]),
        2,
        "ft42.toml",
    );
}

#[test]
fn a_rate_that_is_not_a_number_exits_2_naming_the_variable() {
    let sb = Sandbox::new();
    expect_error(
        sb.ft42()
            .args(["migrate"])
            .env("FT42_RATE_PER_HOUR", "lots"),
        2,
        "FT42_RATE_PER_HOUR",
    );
}

#[test]
fn a_zero_rate_exits_2_naming_the_variable() {
    let sb = Sandbox::new();
    expect_error(
        sb.ft42()
            .args(["sync", "users"])
            .env("FT42_RATE_PER_SECOND", "0")
            .env("FT42_CLIENT_ID", "u-1")
            .env("FT42_CLIENT_SECRET", "s-1")
            .env("FT42_API_URL", "http://127.0.0.1:9"),
        2,
        "FT42_RATE_PER_SECOND",
    );
}

#[test]
fn a_secret_and_a_secret_file_at_once_exit_2() {
    let sb = Sandbox::new();
    std::fs::write(sb.file("secret"), "s-file").unwrap();
    expect_error(
        sb.ft42()
            .args(["token", "check"])
            .env("FT42_CLIENT_ID", "u-1")
            .env("FT42_CLIENT_SECRET", "s-env")
            .env("FT42_CLIENT_SECRET_FILE", sb.file("secret")),
        2,
        "FT42_CLIENT_SECRET",
    );
}

#[test]
fn an_unsupported_database_scheme_exits_2_naming_the_variable() {
    let sb = Sandbox::new();
    expect_error(
        sb.ft42()
            .args(["migrate"])
            .env("FT42_DATABASE_URL", "mysql://ft42@127.0.0.1/ft42"),
        2,
        "FT42_DATABASE_URL",
    );
}

#[test]
fn a_schedule_that_does_not_divide_an_hour_exits_2() {
    let sb = Sandbox::new();
    std::fs::write(sb.file("ft42.toml"), "[schedule]\ndelta = \"every 7m\"\n").unwrap();
    expect_error(
        sb.ft42().args(["--config", "ft42.toml", "cron", "show"]),
        2,
        "delta",
    );
}

// ---------------------------------------------------------------------------------------------
// A mirror to protect: a first good sync, then a snapshot of everything a failed run could touch.

/// Everything a run may write: every mirror row (raw JSON and deletion mark), the cursors and the
/// fetch log's length.
#[derive(Debug, PartialEq)]
struct Snapshot {
    rows: Vec<(Table, Vec<ft_store::StoredRow>)>,
    cursors: Vec<ft_store::Cursor>,
    fetch_log: i64,
}

fn snapshot(db: &Path) -> Snapshot {
    let store = Store::open(db.to_str().expect("utf-8 path")).expect("open the mirror");
    Snapshot {
        rows: Table::ALL
            .iter()
            .map(|t| (*t, store.raw_rows(*t).expect("read rows")))
            .collect(),
        cursors: store.cursors().expect("read cursors"),
        fetch_log: store.fetch_log_count().expect("fetch log count"),
    }
}

/// A simulator (fast limits) and a sandbox whose `ft42.db` holds a complete sync of campus 1.
async fn synced_mirror() -> (ft_sim::SimHandle, Sandbox, Snapshot) {
    let sim = ft_sim::Sim::builder()
        .seed(99)
        .campuses(1)
        .users_per_campus(30)
        .limits(ft_sim::Limits {
            per_second: 10,
            per_hour: 100_000,
            ..ft_sim::Limits::default()
        })
        .start()
        .await;
    let sb = Sandbox::new();
    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.args(["sync", "users", "--campus", "1"])
        .env("FT42_RATE_PER_SECOND", "10");
    run(cmd).await.success();
    let snap = snapshot(&sb.file("ft42.db"));
    assert!(
        snap.rows
            .iter()
            .any(|(t, rows)| *t == Table::Users && !rows.is_empty()),
        "the first sync wrote no users"
    );
    (sim, sb, snap)
}

// ---------------------------------------------------------------------------------------------
// Credentials: exit 3, mirror untouched.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_id_exits_3_and_leaves_the_mirror_alone() {
    let (sim, sb, before) = synced_mirror().await;
    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.args(["sync", "users", "--campus", "1", "--full"])
        .env("FT42_CLIENT_ID", "u-s4t2ud-not-this-app");
    let out = run(cmd).await.code(3);
    let line = one_error_line(&out.get_output().stderr);
    assert!(line.contains("rejected"), "{line}");
    assert_eq!(snapshot(&sb.file("ft42.db")), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_exits_3_and_leaves_the_mirror_alone() {
    let (sim, sb, before) = synced_mirror().await;
    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.args(["sync", "users", "--campus", "1", "--full"])
        .env("FT42_CLIENT_SECRET", "s-s4t2ud-wrong");
    let out = run(cmd).await.code(3);
    let line = one_error_line(&out.get_output().stderr);
    assert!(
        line.contains("secret rejected") && line.contains("create a new secret"),
        "{line}"
    );
    assert_eq!(snapshot(&sb.file("ft42.db")), before);
}

// ---------------------------------------------------------------------------------------------
// A database from a newer ft42: exit 5, nothing written.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_a_newer_version_exits_5_and_is_not_written() {
    let (sim, sb, before) = synced_mirror().await;
    {
        use diesel::{Connection, RunQueryDsl};
        let mut conn = diesel::SqliteConnection::establish(sb.file("ft42.db").to_str().unwrap())
            .expect("open the SQLite file");
        diesel::sql_query(
            "INSERT INTO __diesel_schema_migrations (version) VALUES ('29991231000000')",
        )
        .execute(&mut conn)
        .expect("pretend a newer ft42 migrated this database");
    }
    for args in [
        &["sync", "users", "--campus", "1"][..],
        &["migrate"],
        &["status"],
    ] {
        let mut cmd = sb.ft42();
        point_at(&mut cmd, &sim);
        cmd.args(args);
        let out = run(cmd).await.code(5);
        let line = one_error_line(&out.get_output().stderr);
        assert!(line.contains("newer"), "{args:?}: {line}");
        assert!(line.contains("upgrade ft42"), "{args:?}: {line}");
    }
    // `Snapshot` does not read the migrations table, and the rows, cursors and fetch log are as
    // they were.
    assert_eq!(snapshot(&sb.file("ft42.db")), before);
}

// ---------------------------------------------------------------------------------------------
// Unwritable and full disks for logs and exports.

/// A folder that cannot be created even by root: /proc allows no new entries.
const UNCREATABLE_DIR: &str = "/proc/ft42-no-such-dir/logs";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncreatable_log_dir_exits_2_before_touching_the_mirror() {
    let (sim, sb, before) = synced_mirror().await;
    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.args(["sync", "users", "--campus", "1", "--full"])
        .env("FT42_LOG_DIR", UNCREATABLE_DIR);
    let out = run(cmd).await.code(2);
    let line = one_error_line(&out.get_output().stderr);
    assert!(line.contains("FT42_LOG_DIR"), "{line}");
    assert_eq!(snapshot(&sb.file("ft42.db")), before);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_log_dir_exits_2_naming_it() {
    use std::os::unix::fs::PermissionsExt;
    let probe_dir = tempfile::tempdir().unwrap();
    let logs = probe_dir.path().join("ro-logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root (CAP_DAC_OVERRIDE) writes into a 0555 folder anyway; then this case cannot be
    // staged with permissions and the /proc case above stands in for it.
    let probe = logs.join("probe");
    if std::fs::write(&probe, b"").is_ok() {
        let _ = std::fs::remove_file(&probe);
        eprintln!("running with permission to write into read-only folders; case not stageable");
        return;
    }
    let (sim, sb, before) = synced_mirror().await;
    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.args(["sync", "users", "--campus", "1", "--full"])
        .env("FT42_LOG_DIR", &logs);
    let out = run(cmd).await.code(2);
    let line = one_error_line(&out.get_output().stderr);
    assert!(line.contains("FT42_LOG_DIR"), "{line}");
    assert_eq!(snapshot(&sb.file("ft42.db")), before);
}

/// Today's log file is a link to /dev/full: every write fails with ENOSPC, as on a full disk.
/// The sync's data must still be complete, and the operator must be told that logs are lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "ft-cli: log write failures (ENOSPC) are swallowed by the non-blocking appender; nothing tells the operator that log lines are lost"]
async fn a_full_disk_for_logs_is_reported_and_loses_no_data() {
    let (sim, sb, _) = synced_mirror().await;
    let logs = sb.file("full-logs");
    std::fs::create_dir(&logs).unwrap();
    let today = chrono::Utc::now().format("%Y-%m-%d");
    std::os::unix::fs::symlink("/dev/full", logs.join(format!("ft42.{today}.jsonl"))).unwrap();
    sim.drift(ft_sim::Drift {
        update_fraction: 0.2,
        new_users: 3,
        ..ft_sim::Drift::default()
    });
    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.args(["sync", "users", "--campus", "1", "--full"])
        .env("FT42_LOG_DIR", &logs)
        .env("FT42_RATE_PER_SECOND", "10");
    let out = run(cmd).await;
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    let store = Store::open(sb.file("ft42.db").to_str().unwrap()).unwrap();
    assert_eq!(
        store.count(Table::Users, false).unwrap() as usize,
        sim.counts()["users"],
        "the data must be complete whatever happens to the logs"
    );
    assert!(
        stderr.contains("No space left") || stderr.contains("log file"),
        "nothing said the log lines were lost: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "ft-cli/ft-sync: an unwritable FT42_EXPORT_DIR is reported clearly (naming the folder and FT42_EXPORT_DIR) but with exit 1, not the configuration class 2, and only when the first page is archived"]
async fn an_unwritable_export_dir_exits_2_before_touching_the_mirror() {
    let (sim, sb, before) = synced_mirror().await;
    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.args(["sync", "users", "--campus", "1", "--full"])
        .env("FT42_EXPORT_DIR", "/proc/ft42-no-such-dir/exports");
    let out = run(cmd).await.code(2);
    let line = one_error_line(&out.get_output().stderr);
    assert!(line.contains("FT42_EXPORT_DIR"), "{line}");
    assert_eq!(snapshot(&sb.file("ft42.db")), before);
}

// ---------------------------------------------------------------------------------------------
// API bodies that are not what the API promises. A wiremock server hands out tokens and answers
// every /v2 request with the same broken body.

async fn broken_api(body: Vec<u8>, content_type: &str) -> MockServer {
    let server = MockServer::builder().start().await;
    let now = chrono::Utc::now().timestamp();
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "fixture-token",
            "token_type": "bearer",
            "expires_in": 7200,
            "scope": "public",
            "created_at": now,
            "secret_valid_until": now + 365 * 86400,
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/v2/"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Content-Type", content_type)
                .insert_header("X-Total", "1")
                .insert_header("X-Page", "1")
                .insert_header("X-Per-Page", "100")
                .set_body_bytes(body),
        )
        .mount(&server)
        .await;
    server
}

/// Runs a full sync of campus 1 against `server`. Bodies a re-read could heal are retried with
/// backoff for minutes, so after `patience` the run is stopped with SIGTERM (a clean stop).
/// Returns the exit code and stderr.
async fn sync_against(sb: &Sandbox, server: &MockServer, patience: Duration) -> (i32, String) {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("ft42"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FT42_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(sb.path())
        .env("FT42_LOG_DIR", sb.file("logs"))
        .env("NO_COLOR", "1")
        .env("FT42_API_URL", server.uri())
        .env("FT42_CLIENT_ID", "u-fixture")
        .env("FT42_CLIENT_SECRET", "s-fixture")
        .env("FT42_RATE_PER_SECOND", "10")
        .args(["sync", "users", "--campus", "1", "--full"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn ft42");
    let started = Instant::now();
    let status = match tokio::time::timeout(patience, child.wait()).await {
        Ok(status) => status.expect("wait for ft42"),
        Err(_) => {
            let pid = child.id().expect("running child has a pid");
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .expect("send SIGTERM");
            tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .expect("ft42 stops within 30 s of SIGTERM")
                .expect("wait for ft42")
        }
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = pipe.read_to_string(&mut stderr).await;
    }
    eprintln!(
        "ft42 ended after {:.1} s: {status}",
        started.elapsed().as_secs_f64()
    );
    (status.code().unwrap_or(-1), stderr)
}

/// `ft42 status --json` in the sandbox.
async fn status_json(sb: &Sandbox) -> serde_json::Value {
    let mut cmd = sb.ft42();
    cmd.args(["status", "--json"]);
    let out = run(cmd).await.success();
    serde_json::from_slice(&out.get_output().stdout).expect("status JSON")
}

/// A row whose shape is wrong (a string id) cannot heal on a re-read, and must not hold back
/// the rest of its page or its task (issue #16): it is quarantined (a warning names the JSON
/// path), the run finishes with exit 0, no mirror row changes, and `status` lists it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_of_the_wrong_shape_is_quarantined_and_the_run_goes_on() {
    let (_sim, sb, before) = synced_mirror().await;
    let server = broken_api(
        br#"[{"id":"forty-two","login":7}]"#.to_vec(),
        "application/json",
    )
    .await;
    let (code, stderr) = sync_against(&sb, &server, Duration::from_secs(60)).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains("quarantined") && l.contains("[0].id")),
        "a warning names the row's JSON path: {stderr}"
    );
    assert_eq!(
        snapshot(&sb.file("ft42.db")).rows,
        before.rows,
        "a mirror row changed"
    );
    let status = status_json(&sb).await;
    assert!(
        status["quarantined"].as_i64().unwrap_or(0) >= 1,
        "{status}\n{stderr}"
    );
    assert!(
        status["quarantine"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("[0].id")),
        "{status}"
    );
}

/// Bodies a re-read may heal (cut off in transit, an HTML error page, nothing at all, an object
/// instead of a list): each task is retried with backoff (2 s, 4 s, ... for 8 attempts), every
/// retry is announced on stderr with the endpoint and the reason, and nothing is written
/// meanwhile. SIGTERM stops the run cleanly (exit 0, tasks parked); the mirror is untouched.
async fn healable_bad_body(body: &[u8], content_type: &str) {
    let (_sim, sb, before) = synced_mirror().await;
    let server = broken_api(body.to_vec(), content_type).await;
    let (code, stderr) = sync_against(&sb, &server, Duration::from_secs(6)).await;
    assert!(
        !stderr.contains("panicked"),
        "no panic on a bad body: {stderr}"
    );
    assert_eq!(code, 0, "a SIGTERM'd run exits 0: {stderr}");
    assert!(
        stderr.lines().any(|l| l.contains("WARN")
            && l.contains("/v2/")
            && l.contains("cannot decode the response")),
        "no warning names the endpoint and the reason: {stderr}"
    );
    assert_eq!(snapshot(&sb.file("ft42.db")), before, "the mirror changed");
}

/// After a run stopped on bad bodies, `status` should say why its tasks are still pending (the
/// warnings went to stderr and the logs, but `status` is where an operator looks first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "ft-cli: `status --json` counts pending tasks but shows neither their last_error nor that the last run committed nothing (it reports it as `ok` and as last_success)"]
async fn status_says_why_tasks_wait_after_bad_bodies() {
    let (_sim, sb, _) = synced_mirror().await;
    let server = broken_api(br#"[{"id":1,"login":"ab"#.to_vec(), "application/json").await;
    let (code, stderr) = sync_against(&sb, &server, Duration::from_secs(6)).await;
    assert_eq!(code, 0, "{stderr}");
    let status = status_json(&sb).await;
    assert!(
        status.to_string().contains("cannot decode the response"),
        "status does not say why the tasks wait: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_json_body_is_retried_and_writes_nothing() {
    healable_bad_body(br#"[{"id":1,"login":"ab"#, "application/json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_body_is_retried_and_writes_nothing() {
    healable_bad_body(b"", "application/json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_body_is_retried_and_writes_nothing() {
    healable_bad_body(
        b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
        "text/html",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_instead_of_a_list_is_retried_and_writes_nothing() {
    healable_bad_body(br#"{"users":[]}"#, "application/json").await;
}
