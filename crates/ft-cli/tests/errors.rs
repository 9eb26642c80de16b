//! Each failure class gets its documented exit code and a one-line message that names the
//! setting to fix, with no secret in it (issue 7, "Errors and exit codes").

use crate::common;

use common::{Sandbox, point_at, run, sim};

/// stderr holds exactly one line starting with `ft42: ` (logs go to the file in these tests
/// only when they are warnings; the final error is one line).
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

#[test]
fn malformed_api_url_exits_2_naming_the_setting() {
    let sb = Sandbox::new();
    let out = sb
        .ft42()
        .args(["token", "check"])
        .env("FT42_API_URL", "htp//nowhere")
        .assert()
        .code(2);
    let line = one_error_line(&out.get_output().stderr);
    assert!(line.contains("FT42_API_URL"), "{line}");
}

#[test]
fn bad_toml_exits_2_with_the_line() {
    let sb = Sandbox::new();
    std::fs::write(
        sb.file("ft42.toml"),
        "database_url = \"x.db\"\nrate_per_hour = [\n",
    )
    .unwrap();
    let out = sb
        .ft42()
        .args(["--config", "ft42.toml", "migrate"])
        .assert()
        .code(2);
    let line = one_error_line(&out.get_output().stderr);
    assert!(
        line.contains("ft42.toml") && line.contains("line"),
        "{line}"
    );
}

#[test]
fn unknown_flag_exits_2() {
    Sandbox::new()
        .ft42()
        .args(["sync", "users", "--fast"])
        .assert()
        .code(2);
}

#[test]
fn missing_secret_exits_3() {
    let sb = Sandbox::new();
    let out = sb
        .ft42()
        .args(["token", "check"])
        .env("FT42_CLIENT_ID", "u-1")
        .assert()
        .code(3);
    let line = one_error_line(&out.get_output().stderr);
    assert!(line.contains("FT42_CLIENT_SECRET"), "{line}");
}

#[test]
fn unreadable_secret_file_exits_3_naming_the_file() {
    let sb = Sandbox::new();
    let out = sb
        .ft42()
        .args(["token", "check"])
        .env("FT42_CLIENT_ID", "u-1")
        .env("FT42_CLIENT_SECRET_FILE", sb.file("missing-secret"))
        .assert()
        .code(3);
    let line = one_error_line(&out.get_output().stderr);
    assert!(
        line.contains("FT42_CLIENT_SECRET_FILE") && line.contains("missing-secret"),
        "{line}"
    );
}

#[test]
fn unreachable_database_exits_5_without_the_password() {
    let sb = Sandbox::new();
    let out = sb
        .ft42()
        .args(["migrate"])
        .env(
            "FT42_DATABASE_URL",
            "postgres://ft42:hunter2@127.0.0.1:1/ft42",
        )
        .assert()
        .code(5);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    let line = one_error_line(&out.get_output().stderr);
    assert!(line.contains("FT42_DATABASE_URL"), "{line}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn configured_log_dir_that_cannot_be_written_exits_2() {
    let sb = Sandbox::new();
    std::fs::write(sb.file("not-a-dir"), "").unwrap();
    let out = sb
        .ft42()
        .args(["cron", "show"])
        .env("FT42_LOG_DIR", sb.file("not-a-dir"))
        .assert()
        .code(2);
    let line = one_error_line(&out.get_output().stderr);
    assert!(line.contains("FT42_LOG_DIR"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_secret_exits_3_and_never_prints_it() {
    let sim = sim(5, 1).await;
    let sb = Sandbox::new();
    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.args(["token", "check"])
        .env("FT42_CLIENT_SECRET", "s-wrong-secret-4242");
    let out = run(cmd).await.code(3);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    let line = one_error_line(&out.get_output().stderr);
    assert!(line.contains("rejected"), "{line}");
    assert!(!stderr.contains("s-wrong-secret-4242"), "{stderr}");
    let logs = std::fs::read_dir(sb.file("logs")).unwrap();
    for entry in logs.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(
            !text.contains("s-wrong-secret-4242"),
            "secret in {:?}",
            entry.path()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_unreachable_exits_4() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sb = Sandbox::new();
    let mut cmd = sb.ft42();
    cmd.args(["token", "check"])
        .env("FT42_API_URL", format!("http://127.0.0.1:{port}"))
        .env("FT42_CLIENT_ID", "u-1")
        .env("FT42_CLIENT_SECRET", "s-1");
    let out = run(cmd).await.code(4);
    one_error_line(&out.get_output().stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_check_reports_the_token_and_the_limits() {
    let sim = sim(5, 1).await;
    let sb = Sandbox::new();
    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.args(["token", "check", "--json"]);
    let out = run(cmd).await;
    let output = out.get_output();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["valid"], true);
    assert!(report["seconds_left"].as_i64().unwrap() > 7000);
    assert_eq!(report["per_second"], 2);
    assert_eq!(report["per_hour"], 1200);
    assert!(report["hourly_remaining"].as_u64().unwrap() < 1200);
    // Exit 3 exactly when the simulator's secret expires within 7 days.
    let days = report["secret_days_left"].as_i64();
    let expected = if days.is_some_and(|d| d < 7) { 3 } else { 0 };
    assert_eq!(output.status.code(), Some(expected), "{report}");
}
