//! Several applications from `FT42_APPLICATIONS_FILE`, and SQLite's one-writer lock, through the
//! binary.

use crate::common;

use common::{Sandbox, point_at, run, sim};
use ft_store::{LockWait, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_sqlite_file_gets_a_clear_error() {
    let sim = sim(10, 1).await;
    let sb = Sandbox::new();
    let url = format!("sqlite://{}", sb.file("ft42.db").display());
    // This test process is the first writer.
    let store = Store::open(&url).unwrap();
    let held = store
        .writer_lock(LockWait::Fail, "ft42 sync (the test)")
        .unwrap()
        .expect("SQLite is locked");

    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.env("FT42_DATABASE_URL", &url)
        .args(["worker", "--once"]);
    let out = run(cmd).await.failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("in use by another ft42 process") && stderr.contains("(the test)"),
        "{stderr}"
    );
    assert!(stderr.contains("PostgreSQL"), "says what to do: {stderr}");
    // Nothing was sent: the lock is taken before any work.
    assert!(sim.ledger().iter().all(|e| !e.path.starts_with("/v2")));

    drop(held);
    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.env("FT42_DATABASE_URL", &url)
        .args(["worker", "--once"]);
    run(cmd).await.success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_from_the_applications_file_share_the_work() {
    let sim = sim(120, 1).await;
    let second = sim.add_application(2, 1200);
    let sb = Sandbox::new();
    std::fs::write(
        sb.file("second.secret"),
        format!("{}\n", second.client_secret),
    )
    .unwrap();
    std::fs::write(
        sb.file("applications.toml"),
        format!(
            "[[application]]\nclient_id = \"{}\"\nsecret_file = \"second.secret\"\n",
            second.client_id
        ),
    )
    .unwrap();
    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.env("FT42_APPLICATIONS_FILE", sb.file("applications.toml"))
        .args(["sync", "users"]);
    let out = run(cmd).await.success();

    assert_eq!(sim.count_status(429), 0);
    let second_id = sim.application_id(&second).unwrap();
    for app in [1, second_id] {
        let sent = sim
            .ledger()
            .iter()
            .filter(|e| e.counted && e.app_id == Some(app))
            .count();
        assert!(sent > 0, "application {app} sent nothing");
    }
    // No secret in the output or the log files.
    let output = out.get_output();
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    for entry in std::fs::read_dir(sb.file("logs")).unwrap() {
        text.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default());
    }
    assert!(!text.contains(&second.client_secret));
    assert!(!text.contains(&sim.credentials().client_secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_applications_file_is_a_usage_error_naming_the_setting() {
    let sim = sim(10, 1).await;
    let sb = Sandbox::new();
    // An inline secret is refused: secrets live in files only.
    std::fs::write(
        sb.file("applications.toml"),
        "[[application]]\nclient_id = \"u-2\"\nsecret = \"s-inline-secret\"\n",
    )
    .unwrap();
    let mut cmd = sb.ft42();
    point_at(&mut cmd, &sim);
    cmd.env("FT42_APPLICATIONS_FILE", sb.file("applications.toml"))
        .args(["sync", "users"]);
    let out = run(cmd).await.code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("FT42_APPLICATIONS_FILE"), "{stderr}");
    assert!(!stderr.contains("s-inline-secret"), "{stderr}");
}
