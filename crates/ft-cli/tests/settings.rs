//! Settings precedence through the real binary: flag > environment > config file > default.

use crate::common;

use common::Sandbox;

#[test]
fn database_url_follows_the_precedence() {
    let sb = Sandbox::new();
    std::fs::write(
        sb.file("ft42.toml"),
        "database_url = \"sqlite://from-file.db\"\n",
    )
    .unwrap();

    // Default.
    sb.ft42().arg("migrate").assert().success();
    assert!(sb.file("ft42.db").exists());

    // File over default.
    sb.ft42()
        .args(["--config", "ft42.toml", "migrate"])
        .assert()
        .success();
    assert!(sb.file("from-file.db").exists());

    // Environment over file (the config file also comes from the environment here).
    sb.ft42()
        .arg("migrate")
        .env("FT42_CONFIG", sb.file("ft42.toml"))
        .env("FT42_DATABASE_URL", "from-env.db")
        .assert()
        .success();
    assert!(sb.file("from-env.db").exists());

    // Flag over environment.
    sb.ft42()
        .args(["migrate", "--database-url", "sqlite://from-flag.db"])
        .env("FT42_CONFIG", sb.file("ft42.toml"))
        .env("FT42_DATABASE_URL", "sqlite://not-this.db")
        .assert()
        .success();
    assert!(sb.file("from-flag.db").exists());
    assert!(!sb.file("not-this.db").exists());
}

#[test]
fn migrate_is_idempotent() {
    let sb = Sandbox::new();
    let first = sb.ft42().arg("migrate").assert().success();
    assert!(String::from_utf8_lossy(&first.get_output().stdout).contains("applied"));
    let second = sb.ft42().arg("migrate").assert().success();
    assert!(String::from_utf8_lossy(&second.get_output().stdout).contains("already up to date"));
}

#[test]
fn log_files_are_json_lines() {
    let sb = Sandbox::new();
    sb.ft42().arg("migrate").assert().success();
    let entry = std::fs::read_dir(sb.file("logs"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .expect("a log file");
    let text = std::fs::read_to_string(entry.path()).unwrap();
    let line = text.lines().next().expect("one event");
    let event: serde_json::Value = serde_json::from_str(line).expect("JSON line");
    assert!(event["fields"]["message"].is_string(), "{event}");
}

#[test]
fn default_log_dir_that_cannot_be_created_only_warns() {
    let sb = Sandbox::new();
    // A file named `logs` blocks the default log folder.
    std::fs::write(sb.file("logs"), "").unwrap();
    let out = sb
        .ft42()
        .env_remove("FT42_LOG_DIR")
        .arg("migrate")
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(stderr.contains("logging to stderr only"), "{stderr}");
}

#[test]
fn version_says_whether_postgresql_tls_is_built_in() {
    let sb = Sandbox::new();
    let out = sb.ft42().arg("--version").assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let want = if ft_store::PG_TLS {
        "(PostgreSQL TLS: yes)"
    } else {
        "(PostgreSQL TLS: no, build with --features pg-tls"
    };
    assert!(
        text.starts_with(&format!("ft42 {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains(want), "{text}");
    // The thin binaries share the tree, and its version line.
    let thin = sb.cmd("ft-users").arg("--version").assert().success();
    assert!(String::from_utf8_lossy(&thin.get_output().stdout).contains(want));
}

#[test]
fn thin_binary_is_the_subcommand() {
    let sb = Sandbox::new();
    let thin = sb.cmd("ft-users").arg("--help").assert().success();
    let full = sb
        .ft42()
        .args(["sync", "users", "--help"])
        .assert()
        .success();
    assert_eq!(thin.get_output().stdout, full.get_output().stdout);
}

#[test]
fn status_needs_a_migrated_database_and_reports_json() {
    let sb = Sandbox::new();
    let out = sb.ft42().args(["status"]).assert().code(5);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(stderr.contains("ft42 migrate"), "{stderr}");

    sb.ft42().arg("migrate").assert().success();
    let out = sb.ft42().args(["status", "--json"]).assert().success();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["tables"]["users"], 0);
    assert_eq!(report["pending_tasks"], 0);
    assert_eq!(report["budget"]["per_hour"], 1200);
}
