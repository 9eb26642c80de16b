//! Secrets never leave the secret file: a sync under faults (5xx, revoked tokens, token-endpoint
//! errors, malformed pages, 429 bursts) with a rejected current secret that fails over to the
//! next one, then `status`, `integrity`, `token check` and a failing `token check`, all at the
//! most verbose log level. Neither secret nor the access token in use may appear in any stdout,
//! stderr, JSON log line, or any other file the commands wrote (the SQLite database included),
//! and no file holding a token (a token cache) may exist.

use crate::common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use common::{Sandbox, run};
use ft_sim::{Faults, Limits};

/// The current secret: recognisable, and rejected by the simulator (it is not the app's secret),
/// so the client must fail over to the next secret and report that without printing either.
const CANARY_SECRET: &str = "s-SECRET-CANARY-0c7f3a9e51d24b6b8f2e4a1d9c3b7e05";

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// A file's bytes, gunzipped when it is a `.gz`.
fn contents(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).expect("read file");
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .expect("gunzip");
        out
    } else {
        raw
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The simulator's live access token for these credentials, fetched the way any client would.
/// The simulator hands the same live token to every client of the application until it expires
/// or is revoked, so with revocation off the CLI uses exactly this token.
fn live_token(base_url: &str, client_id: &str, secret: &str) -> String {
    let addr = base_url.trim_start_matches("http://");
    for _ in 0..20 {
        let body =
            format!("grant_type=client_credentials&client_id={client_id}&client_secret={secret}");
        let mut stream = std::net::TcpStream::connect(addr).expect("connect to the simulator");
        write!(
            stream,
            "POST /oauth/token HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: secrets-test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send token request");
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .expect("read token answer");
        if let Some((_, json)) = answer.split_once("\r\n\r\n")
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(json)
            && let Some(token) = value["access_token"].as_str()
        {
            return token.to_owned();
        }
    }
    panic!("the simulator gave no token in 20 tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_token_reaches_output_logs_or_files() {
    let sim = ft_sim::Sim::builder()
        .seed(4242)
        .campuses(2)
        .users_per_campus(150)
        .limits(Limits {
            per_second: 10,
            per_hour: 100_000,
            ..Limits::default()
        })
        .start()
        .await;
    let creds = sim.credentials();
    let real_secret = creds.client_secret.clone();
    let sb = Sandbox::new();
    let mut transcript: Vec<(String, Vec<u8>)> = Vec::new();
    let base = |sb: &Sandbox| {
        let mut cmd = sb.ft42();
        cmd.arg("-vv")
            .env("FT42_API_URL", sim.base_url())
            .env("FT42_CLIENT_ID", &creds.client_id)
            .env("FT42_CLIENT_SECRET", CANARY_SECRET)
            .env("FT42_CLIENT_SECRET_NEXT", &real_secret)
            .env("FT42_RATE_PER_SECOND", "10")
            .env("FT42_RATE_PER_HOUR", "100000");
        cmd
    };

    // Phase 1: every fault, token revocations included.
    sim.set_faults(Faults {
        error_5xx_rate: 0.1,
        revoke_token_every: Some(7),
        token_error_rate: 0.2,
        malformed_rate: 0.03,
        spontaneous_429_rate: 0.05,
        ..Faults::default()
    });
    let mut cmd = base(&sb);
    cmd.args(["sync", "users", "--full"]);
    let out = run(cmd).await.success();
    let o = out.get_output();
    transcript.push(("sync (phase 1) stdout".into(), o.stdout.clone()));
    transcript.push(("sync (phase 1) stderr".into(), o.stderr.clone()));

    // Phase 2: no revocation, so the token fetched here is the one the commands use.
    sim.set_faults(Faults {
        error_5xx_rate: 0.1,
        malformed_rate: 0.03,
        ..Faults::default()
    });
    let token = live_token(&sim.base_url(), &creds.client_id, &real_secret);
    for args in [
        &["sync", "users", "--delta"][..],
        &["status"],
        &["status", "--json"],
        &["integrity"],
        &["integrity", "--spot-check", "3"],
        &["token", "check", "--json"],
    ] {
        let mut cmd = base(&sb);
        cmd.args(args);
        let out = run(cmd).await;
        let o = out.get_output();
        let code = o.status.code();
        assert!(
            matches!(code, Some(0) | Some(6)),
            "{args:?} exited {code:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        transcript.push((format!("{args:?} stdout"), o.stdout.clone()));
        transcript.push((format!("{args:?} stderr"), o.stderr.clone()));
    }

    // A failure: only the rejected secret. Its error line must not quote it.
    let mut cmd = base(&sb);
    cmd.env_remove("FT42_CLIENT_SECRET_NEXT")
        .args(["token", "check"]);
    let out = run(cmd).await.code(3);
    let o = out.get_output();
    transcript.push(("failing token check stderr".into(), o.stderr.clone()));
    transcript.push(("failing token check stdout".into(), o.stdout.clone()));

    // Every file the commands wrote: JSON logs, the database (and its journal), anything else.
    let written = files(sb.path());
    assert!(
        written
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "jsonl")),
        "no JSON log file was written: {written:?}"
    );
    assert!(
        written
            .iter()
            .any(|p| p.file_name().is_some_and(|n| n == "ft42.db")),
        "no database was written: {written:?}"
    );
    for path in &written {
        transcript.push((path.display().to_string(), contents(path)));
    }

    let needles = [
        ("the rejected secret", CANARY_SECRET),
        ("the canary marker", "SECRET-CANARY"),
        ("the working secret", real_secret.as_str()),
        ("the access token", token.as_str()),
    ];
    for (place, bytes) in &transcript {
        for (what, needle) in &needles {
            assert!(
                !contains(bytes, needle),
                "{what} appears in {place}:\n{}",
                String::from_utf8_lossy(bytes)
                    .lines()
                    .filter(|l| l.contains(needle))
                    .take(3)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        assert!(
            !contains(bytes, "panicked"),
            "a panic in {place}: {}",
            String::from_utf8_lossy(bytes)
        );
    }
    // The commands really sent the rejected secret, failed over, and met the faults (the test
    // would prove nothing against a quiet API).
    assert!(
        transcript
            .iter()
            .any(|(place, bytes)| place.ends_with(".jsonl")
                && contains(bytes, "failing over to the next secret")),
        "the logs do not show the failover from the rejected secret"
    );
    assert!(sim.count_status(401) > 0, "no token was revoked");
    assert!(
        sim.ledger().iter().any(|e| e.status >= 500),
        "no 5xx was injected"
    );
}

/// Issue #16: a secret near the end of its validity is announced at 14 days, 7 days and 24
/// hours: `status` shows it from the last run, the nightly full sync warns once a day even
/// under `-q` (a quiet delta does not), and `status --check` alerts (exit 6) from 7 days.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_secret_is_announced_by_sync_and_status_and_alerts_from_seven_days() {
    let sim = common::sim(8, 1).await;
    let sb = Sandbox::new();
    let day = std::time::Duration::from_secs(86_400);
    let sync = |args: &[&str]| {
        let mut cmd = sb.ft42();
        common::point_at(&mut cmd, &sim);
        cmd.args(args);
        cmd
    };
    let stderr = |out: &assert_cmd::assert::Assert| {
        String::from_utf8_lossy(&out.get_output().stderr).into_owned()
    };

    // A year left: nothing to say.
    let out = common::run(sync(&["sync", "users", "--full"]))
        .await
        .success();
    assert!(!stderr(&out).contains("secret"), "{}", stderr(&out));
    let mut cmd = sb.ft42();
    cmd.args(["status"]);
    let out = common::run(cmd).await.success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        text.contains("secret: expires in ") && !text.contains("WARNING"),
        "{text}"
    );

    // Ten days left: sync warns (not quiet); status shows it; --check does not alert yet.
    sim.set_secret_left(day * 10);
    let out = common::run(sync(&["sync", "users"])).await.success();
    let err = stderr(&out);
    assert!(
        err.contains("warning: the client secret expires in 9 days")
            || err.contains("warning: the client secret expires in 10 days"),
        "{err}"
    );
    assert!(err.contains("FT42_CLIENT_SECRET_NEXT_FILE"), "{err}");
    let mut cmd = sb.ft42();
    cmd.args(["status", "--check", "--json"]);
    let out = common::run(cmd).await.success();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["secret"]["expiry"], "within_14_days", "{report}");

    // Five days left: a quiet delta says nothing, the quiet nightly full sync warns, and the
    // alert job exits 6 naming the secret.
    sim.set_secret_left(day * 5);
    let out = common::run(sync(&["-q", "sync", "users", "--delta"]))
        .await
        .success();
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let out = common::run(sync(&["-q", "sync", "users", "--full"]))
        .await
        .success();
    assert!(
        stderr(&out).contains("expires in 4 days") || stderr(&out).contains("expires in 5 days")
    );
    let mut cmd = sb.ft42();
    cmd.args(["-q", "status", "--check"]);
    let out = common::run(cmd).await.code(6);
    assert!(out.get_output().stdout.is_empty());
    let err = stderr(&out);
    assert!(
        err.starts_with("secret: the client secret expires in"),
        "{err}"
    );
    assert!(!err.contains(&sim.credentials().client_secret), "{err}");

    // Twelve hours left: counted in hours.
    sim.set_secret_left(day / 2);
    let out = common::run(sync(&["sync", "users"])).await.success();
    assert!(
        stderr(&out).contains("expires in 11 hours")
            || stderr(&out).contains("expires in 12 hours")
    );
}
