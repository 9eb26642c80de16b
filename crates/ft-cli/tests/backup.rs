//! `ft42 backup`, `ft42 backup verify` and `ft42 restore` through the binary, on SQLite and
//! PostgreSQL: round trips after a real sync, damaged files, wrong keys, non-empty targets,
//! rotation, and secrets that must never show.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::{Sandbox, point_at, run};
use ft_store::test_support::TestDb;
use ft_store::{Backend, Cursor, Store, StoredRow, Table};

/// Values that must never appear in a manifest, stdout or stderr.
const CLIENT_SECRET_MARK: &str = "client-secret-never-shown";
const PASSPHRASE: &str = "correct horse battery never-shown";
const DB_PASSWORD: &str = "db-password-never-shown";

/// A simulator with a generous budget, so syncs take a fraction of a second.
async fn fast_sim() -> ft_sim::SimHandle {
    ft_sim::Sim::builder()
        .seed(9)
        .campuses(2)
        // Several pages per campus, so a full sync costs clearly more than a delta.
        .users_per_campus(250)
        .limits(ft_sim::Limits {
            per_second: 50,
            per_hour: 100_000,
            ..ft_sim::Limits::default()
        })
        .start()
        .await
}

fn fast_rates(cmd: &mut assert_cmd::Command) {
    cmd.env("FT42_RATE_PER_SECOND", "50")
        .env("FT42_RATE_PER_HOUR", "100000");
}

/// Everything a restore must bring back: every mirror row and every cursor.
#[derive(Debug, PartialEq)]
struct Snapshot {
    rows: Vec<(Table, Vec<StoredRow>)>,
    cursors: Vec<Cursor>,
}

fn snapshot(url: &str) -> Snapshot {
    let store = Store::open(url).unwrap();
    Snapshot {
        rows: Table::ALL
            .iter()
            .map(|t| (*t, store.raw_rows(*t).unwrap()))
            .collect(),
        cursors: store.cursors().unwrap(),
    }
}

/// `ft42 backup keygen` in the sandbox; returns the identity file and the public key.
pub(crate) async fn keygen(sb: &Sandbox, name: &str) -> (PathBuf, String) {
    let mut cmd = sb.ft42();
    cmd.args(["backup", "keygen", name]);
    let out = run(cmd).await.success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    let public = stdout
        .lines()
        .find_map(|l| l.strip_prefix("public key (for FT42_BACKUP_RECIPIENT): "))
        .expect("keygen prints the public key")
        .to_owned();
    (sb.file(name), public)
}

/// Decrypts a backup in memory and returns its manifest (checksums verified).
fn manifest(path: &Path, identity: &Path) -> ft_cli::backup::format::Manifest {
    let ids = age::IdentityFile::from_file(identity.to_string_lossy().into_owned())
        .unwrap()
        .into_identities()
        .unwrap();
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut reader = age::Decryptor::new_buffered(file)
        .unwrap()
        .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .unwrap();
    ft_cli::backup::format::read(&mut reader, &mut |_| {
        Ok(Box::new(std::io::sink()) as Box<dyn Write>)
    })
    .unwrap()
}

fn backups(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [CLIENT_SECRET_MARK, PASSPHRASE, DB_PASSWORD] {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
}

/// Every file under `dir` with its bytes, by relative path.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_owned();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Runs `ft42 sync users` and returns the API requests it spent.
async fn delta_sync(
    sb: &Sandbox,
    sim: &ft_sim::SimHandle,
    env: &impl Fn(&mut assert_cmd::Command),
) -> Vec<ft_sim::LedgerEntry> {
    let before = sim.ledger().len();
    let mut cmd = sb.ft42();
    env(&mut cmd);
    cmd.args(["sync", "users"]);
    run(cmd).await.success();
    sim.ledger()[before..]
        .iter()
        .filter(|e| e.counted)
        .cloned()
        .collect()
}

/// Each request as path and query with the updated_at window's values blanked (they move
/// with the clock), sorted.
fn shapes(requests: &[ft_sim::LedgerEntry]) -> Vec<String> {
    let mut shapes: Vec<String> = requests
        .iter()
        .map(|e| {
            let query: Vec<String> = e
                .query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.contains("updated_at") => format!("{k}=*"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{} {}", e.path, query.join("&"))
        })
        .collect();
    shapes.sort();
    shapes
}

/// Sync → backup (archive included) → lose the database and the archive → restore → every
/// row, cursor and archive byte is back, `backup verify` passes, and the next sync spends only
/// delta requests.
async fn round_trip(db: TestDb) {
    let sim = fast_sim().await;
    let sb = Sandbox::new();
    // A password in the URL (the test server trusts loopback and ignores it) must never show.
    let url = match db.backend() {
        Backend::Postgres => db.url().replacen(
            "postgres://postgres@",
            &format!("postgres://postgres:{DB_PASSWORD}@"),
            1,
        ),
        Backend::Sqlite => db.url().to_owned(),
    };
    let env = |cmd: &mut assert_cmd::Command| {
        point_at(cmd, &sim);
        fast_rates(cmd);
        cmd.env("FT42_DATABASE_URL", &url)
            .env("FT42_CLIENT_SECRET", sim.credentials().client_secret)
            .env("FT42_BACKUP_DIR", sb.file("backups"))
            .env("FT42_EXPORT_DIR", sb.file("exports"));
    };

    let before_full = sim.ledger().len();
    let mut cmd = sb.ft42();
    env(&mut cmd);
    cmd.args(["sync", "users"]);
    run(cmd).await.success();
    let full_requests = sim.ledger()[before_full..]
        .iter()
        .filter(|e| e.counted)
        .count();
    // The first delta also runs the deletion check the first sync left to it (nothing could
    // be stale yet); the second is the steady state a restore must give back.
    delta_sync(&sb, &sim, &env).await;
    let delta_before_loss = delta_sync(&sb, &sim, &env).await;
    // The sync keeps every fetched page in the raw archive (FT42_EXPORT_DIR).
    let archive = files_under(&sb.file("exports"));
    assert!(!archive.is_empty(), "the sync wrote no archive");
    let before = snapshot(&url);
    assert!(!before.cursors.is_empty());

    let (identity, public) = keygen(&sb, "backup.key").await;
    let mut cmd = sb.ft42();
    env(&mut cmd);
    cmd.env("FT42_BACKUP_RECIPIENT", &public)
        .env("FT42_BACKUP_INCLUDE_ARCHIVE", "true")
        .arg("backup");
    let out = run(cmd).await.success();
    let output = out.get_output();
    assert_no_secret("backup stdout", &String::from_utf8_lossy(&output.stdout));
    assert_no_secret("backup stderr", &String::from_utf8_lossy(&output.stderr));
    let names = backups(&sb.file("backups"));
    assert_eq!(names.len(), 1, "{names:?}");
    let file = sb.file("backups").join(&names[0]);
    let m = manifest(&file, &identity);
    assert_eq!(m.backend, db.backend().as_str());
    assert!(m.includes_archive);
    assert_eq!(m.archive_files().count(), archive.len());
    assert!(m.schema_version.is_some());
    assert_no_secret("manifest", &serde_json::to_string(&m).unwrap());

    // Lose everything.
    match db.backend() {
        Backend::Sqlite => {
            let path = url.strip_prefix("sqlite://").unwrap();
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
        Backend::Postgres => db.store().drop_ft42_tables().unwrap(),
    }
    std::fs::remove_dir_all(sb.file("exports")).unwrap();

    let mut cmd = sb.ft42();
    env(&mut cmd);
    cmd.env("FT42_BACKUP_IDENTITY_FILE", &identity)
        .arg("restore")
        .arg(&file);
    let out = run(cmd).await.success();
    let output = out.get_output();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("checksums verified"), "{stdout}");
    assert!(stdout.contains("ft42 integrity on"), "{stdout}");
    assert_no_secret("restore stdout", &stdout);
    assert_no_secret("restore stderr", &String::from_utf8_lossy(&output.stderr));
    let after = snapshot(&url);
    assert_eq!(after.cursors, before.cursors, "cursors");
    assert_eq!(after.rows, before.rows, "rows");
    assert_eq!(files_under(&sb.file("exports")), archive, "archive");

    // The periodic proof: the newest backup restores into a scratch database and is clean.
    let mut cmd = sb.ft42();
    env(&mut cmd);
    cmd.env("FT42_BACKUP_IDENTITY_FILE", &identity)
        .args(["backup", "verify"]);
    let out = run(cmd).await.success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(stdout.contains("verified"), "{stdout}");
    assert!(
        stdout.contains(&format!("{} archive file(s)", archive.len())),
        "{stdout}"
    );

    // The restored mirror resumes with deltas: every request of the next sync is bounded by
    // an updated_at window, and there are fewer of them than for the full sync.
    // The restored mirror resumes with deltas: the next sync makes exactly the requests a
    // delta made on the original mirror before it was lost (listings bounded by an
    // updated_at window, plus the small reference listings read whole), far fewer than the
    // full sync.
    let delta = delta_sync(&sb, &sim, &env).await;
    assert_eq!(
        shapes(&delta),
        shapes(&delta_before_loss),
        "the first sync after the restore is not the delta the original mirror made"
    );
    assert!(delta.iter().any(|e| e.query.contains("updated_at")));
    assert!(
        delta.len() < full_requests,
        "{} delta requests vs {full_requests} for the full sync",
        delta.len()
    );
    eprintln!(
        "{}: full sync {full_requests} requests, delta after restore {}",
        db.backend(),
        delta.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_round_trip_restores_rows_cursors_and_archive_then_syncs_a_delta() {
    round_trip(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_round_trip_restores_rows_cursors_and_archive_then_syncs_a_delta() {
    round_trip(TestDb::postgres()).await;
}

/// A small mirror without a sync: one campus row.
fn seed(store: &Store) {
    let campus = ft_store::rows::CampusRow {
        id: 1,
        name: "Paris".into(),
        time_zone: None,
        country: None,
        city: None,
        active: Some(true),
        public: Some(true),
        users_count: Some(1),
        raw: r#"{"id":1,"name":"Paris"}"#.into(),
    };
    store
        .apply_page(ft_store::ApplyPage::rows(ft_store::Rows::Campuses(vec![
            campus,
        ])))
        .unwrap();
}

/// Runs `ft42 restore FILE` into `target` and returns (exit code, stderr).
async fn restore_into(
    sb: &Sandbox,
    target: &str,
    file: &Path,
    key: (&str, &Path),
) -> (i32, String) {
    let mut cmd = sb.ft42();
    cmd.env("FT42_DATABASE_URL", target)
        .env(key.0, key.1)
        .env("FT42_CLIENT_SECRET", CLIENT_SECRET_MARK)
        .arg("restore")
        .arg(file);
    let out = run(cmd).await;
    let output = out.get_output();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_no_secret("restore stderr", &stderr);
    assert_no_secret("restore stdout", &String::from_utf8_lossy(&output.stdout));
    (output.status.code().unwrap_or(-1), stderr)
}

/// Damaged, truncated, wrongly keyed backups and a non-empty target: each a clear one-line
/// error with its exit code, and nothing changed (no target file, no leftover folder).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_backups_and_non_empty_targets_are_refused_and_change_nothing() {
    let sb = Sandbox::new();
    let source = TestDb::sqlite();
    seed(source.store());
    let (identity, public) = keygen(&sb, "good.key").await;
    let (other_identity, _) = keygen(&sb, "other.key").await;
    std::fs::write(sb.file("pass.txt"), format!("{PASSPHRASE}\n")).unwrap();
    std::fs::write(sb.file("wrong-pass.txt"), "not the passphrase\n").unwrap();

    let backup = |key: (&'static str, PathBuf), dir: &'static str| {
        let mut cmd = sb.ft42();
        cmd.env("FT42_DATABASE_URL", source.url())
            .env("FT42_BACKUP_DIR", sb.file(dir))
            .env("FT42_CLIENT_SECRET", CLIENT_SECRET_MARK)
            .env(key.0, key.1)
            .arg("backup");
        cmd
    };
    run(backup(
        ("FT42_BACKUP_RECIPIENT", public.clone().into()),
        "keyed",
    ))
    .await
    .success();
    let out = run(backup(
        ("FT42_BACKUP_PASSPHRASE_FILE", sb.file("pass.txt")),
        "pass",
    ))
    .await
    .success();
    assert!(
        String::from_utf8_lossy(&out.get_output().stdout).contains("with a passphrase"),
        "{:?}",
        out.get_output()
    );
    let keyed = sb.file("keyed").join(&backups(&sb.file("keyed"))[0]);
    let passed = sb.file("pass").join(&backups(&sb.file("pass"))[0]);
    let bytes = std::fs::read(&keyed).unwrap();

    let mut corrupted = bytes.clone();
    let middle = corrupted.len() / 2;
    corrupted[middle] ^= 0x40;
    std::fs::write(sb.file("corrupted.age"), &corrupted).unwrap();
    std::fs::write(sb.file("truncated.age"), &bytes[..bytes.len() - 100]).unwrap();

    let targets = tempfile::tempdir().unwrap();
    let target_path = targets.path().join("restored.db");
    let target = format!("sqlite://{}", target_path.display());
    let id = ("FT42_BACKUP_IDENTITY_FILE", identity.as_path());
    let wrong_pass = sb.file("wrong-pass.txt");
    // (what, backup file, key setting, exit code, message)
    type Case<'a> = (&'a str, PathBuf, (&'a str, &'a Path), i32, &'a str);
    let cases: [Case; 4] = [
        ("corrupted", sb.file("corrupted.age"), id, 1, "damaged"),
        ("truncated", sb.file("truncated.age"), id, 1, "damaged"),
        (
            "wrong key",
            keyed.clone(),
            ("FT42_BACKUP_IDENTITY_FILE", other_identity.as_path()),
            2,
            "wrong key",
        ),
        (
            "wrong passphrase",
            passed.clone(),
            ("FT42_BACKUP_PASSPHRASE_FILE", wrong_pass.as_path()),
            2,
            "wrong passphrase",
        ),
    ];
    for (what, file, key, code, message) in cases {
        let (got, stderr) = restore_into(&sb, &target, &file, key).await;
        assert_eq!(got, code, "{what}: {stderr}");
        assert!(stderr.contains(message), "{what}: {stderr}");
        assert!(stderr.contains("nothing was changed"), "{what}: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{what}: one line: {stderr}"
        );
        let left: Vec<_> = std::fs::read_dir(targets.path()).unwrap().collect();
        assert!(
            left.is_empty(),
            "{what}: the target folder was touched: {left:?}"
        );
    }

    // The good backups restore (the passphrase one too).
    let (code, stderr) = restore_into(&sb, &target, &keyed, id).await;
    assert_eq!(code, 0, "{stderr}");
    let other = targets.path().join("from-passphrase.db");
    let pass = sb.file("pass.txt");
    let (code, stderr) = restore_into(
        &sb,
        &format!("sqlite://{}", other.display()),
        &passed,
        ("FT42_BACKUP_PASSPHRASE_FILE", pass.as_path()),
    )
    .await;
    assert_eq!(code, 0, "{stderr}");

    // A non-empty target is refused and keeps its rows; --force replaces it.
    let store = Store::open(&target).unwrap();
    let extra = ft_store::rows::CampusRow {
        id: 2,
        name: "Lyon".into(),
        time_zone: None,
        country: None,
        city: None,
        active: None,
        public: None,
        users_count: None,
        raw: r#"{"id":2}"#.into(),
    };
    store
        .apply_page(ft_store::ApplyPage::rows(ft_store::Rows::Campuses(vec![
            extra,
        ])))
        .unwrap();
    let with_extra = snapshot(&target);
    let (code, stderr) = restore_into(&sb, &target, &keyed, id).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("not empty") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(snapshot(&target), with_extra);
    drop(store);
    let mut cmd = sb.ft42();
    cmd.env("FT42_DATABASE_URL", &target)
        .env(id.0, id.1)
        .args(["restore", "--force"])
        .arg(&keyed);
    run(cmd).await.success();
    assert_eq!(snapshot(&target), snapshot(source.url()));
}

/// A backup of a non-empty PostgreSQL target is refused without --force and the target keeps
/// its rows; with --force it is replaced in one transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_non_empty_target_needs_force() {
    let sb = Sandbox::new();
    let source = TestDb::postgres();
    seed(source.store());
    let target = TestDb::postgres();
    let extra = ft_store::rows::CampusRow {
        id: 7,
        name: "Tokyo".into(),
        time_zone: None,
        country: None,
        city: None,
        active: None,
        public: None,
        users_count: None,
        raw: r#"{"id":7}"#.into(),
    };
    target
        .store()
        .apply_page(ft_store::ApplyPage::rows(ft_store::Rows::Campuses(vec![
            extra,
        ])))
        .unwrap();
    let (identity, public) = keygen(&sb, "k").await;
    let mut cmd = sb.ft42();
    cmd.env("FT42_DATABASE_URL", source.url())
        .env("FT42_BACKUP_DIR", sb.file("b"))
        .env("FT42_BACKUP_RECIPIENT", &public)
        .arg("backup");
    run(cmd).await.success();
    let file = sb.file("b").join(&backups(&sb.file("b"))[0]);
    let before = snapshot(target.url());
    let id = ("FT42_BACKUP_IDENTITY_FILE", identity.as_path());
    let (code, stderr) = restore_into(&sb, target.url(), &file, id).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not empty"), "{stderr}");
    assert_eq!(snapshot(target.url()), before);
    let mut cmd = sb.ft42();
    cmd.env("FT42_DATABASE_URL", target.url())
        .env(id.0, id.1)
        .args(["restore", "--force"])
        .arg(&file);
    run(cmd).await.success();
    assert_eq!(snapshot(target.url()), snapshot(source.url()));
}

/// Rotation through the binary: with keep-daily 2 and keep-weekly 0, exactly the new backup
/// and the newest older day stay; files that are not backups are never touched. (The weekly
/// rule is covered by the rotation unit tests with a fixed "now".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_exactly_what_the_settings_say() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite();
    seed(db.store());
    let dir = sb.file("backups");
    std::fs::create_dir_all(&dir).unwrap();
    let now = chrono::Utc::now();
    let old: Vec<String> = [1, 2, 9, 40]
        .iter()
        .map(|days| ft_cli::backup::rotation::file_name(now - chrono::TimeDelta::days(*days)))
        .collect();
    for name in &old {
        std::fs::write(dir.join(name), b"old").unwrap();
    }
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    let (_, public) = keygen(&sb, "k").await;
    let mut cmd = sb.ft42();
    cmd.env("FT42_DATABASE_URL", db.url())
        .env("FT42_BACKUP_DIR", &dir)
        .env("FT42_BACKUP_RECIPIENT", &public)
        .env("FT42_BACKUP_KEEP_DAILY", "2")
        .env("FT42_BACKUP_KEEP_WEEKLY", "0")
        .arg("backup");
    let out = run(cmd).await.success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(stdout.contains("kept 2, deleted 3"), "{stdout}");
    let left = backups(&dir);
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.contains(&"notes.txt".to_owned()));
    assert!(left.contains(&old[0]), "yesterday's stays: {left:?}");
    for gone in &old[1..] {
        assert!(!left.contains(gone), "{gone} should be deleted: {left:?}");
    }
}

/// Without a key nothing is written: backups are never stored in the clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_without_a_key_is_refused() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite();
    seed(db.store());
    let mut cmd = sb.ft42();
    cmd.env("FT42_DATABASE_URL", db.url())
        .env("FT42_BACKUP_DIR", sb.file("backups"))
        .arg("backup");
    let out = run(cmd).await.code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("FT42_BACKUP_RECIPIENT"), "{stderr}");
    assert!(backups(&sb.file("backups")).is_empty());
}

/// A backup made by a newer ft42 (a schema this binary does not know) is refused before the
/// target is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_from_a_newer_ft42_is_refused() {
    use ft_cli::backup::format;
    let sb = Sandbox::new();
    let (identity, public) = keygen(&sb, "k").await;
    let recipient: age::x25519::Recipient = public.parse().unwrap();
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .unwrap();
    let file = sb.file("ft42-backup-20991231T000000Z.age");
    let out = encryptor
        .wrap_output(std::fs::File::create(&file).unwrap())
        .unwrap();
    let mut writer = format::Writer::new(out).unwrap();
    let mut gz = flate2::read::GzEncoder::new(&b"not a database"[..], flate2::Compression::fast());
    writer.add(format::SQLITE_FILE, &mut gz).unwrap();
    let manifest = format::Manifest {
        format: 1,
        ft42_version: "9.0.0".into(),
        created_at: "2099-12-31T00:00:00Z".into(),
        backend: "sqlite".into(),
        source: "sqlite://future.db".into(),
        schema_version: Some("99991231000001".into()),
        tool: "VACUUM INTO".into(),
        server_version_num: None,
        includes_archive: false,
        files: vec![],
        total_size: 0,
        payload_sha256: String::new(),
    };
    let (_, out) = writer.finish(manifest).unwrap();
    out.finish().unwrap();

    let targets = tempfile::tempdir().unwrap();
    let target = format!("sqlite://{}", targets.path().join("t.db").display());
    let (code, stderr) = restore_into(
        &sb,
        &target,
        &file,
        ("FT42_BACKUP_IDENTITY_FILE", identity.as_path()),
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("newer ft42"), "{stderr}");
    assert_eq!(std::fs::read_dir(targets.path()).unwrap().count(), 0);
}

/// SIGTERM in the middle of a backup: the process ends, and neither the plaintext copy of the
/// database nor a partial backup is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_backup_leaves_no_plaintext_and_no_partial_file() {
    let sb = Sandbox::new();
    let db = TestDb::sqlite();
    // About 120 MB of rows that gzip cannot shrink (each row repeats a 60 KB random block, twice
    // gzip's window), so copying and encrypting takes a while.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: String = (0..60_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect();
    let rows: Vec<ft_store::rows::CampusRow> = (1..=2_000)
        .map(|id| ft_store::rows::CampusRow {
            id,
            name: format!("c{id}"),
            time_zone: None,
            country: None,
            city: None,
            active: None,
            public: None,
            users_count: None,
            raw: format!("{{\"id\":{id},\"n\":\"{noise}\"}}"),
        })
        .collect();
    db.store()
        .apply_page(ft_store::ApplyPage::rows(ft_store::Rows::Campuses(rows)))
        .unwrap();
    let (_, public) = keygen(&sb, "k").await;
    let db_dir = Path::new(db.url().strip_prefix("sqlite://").unwrap())
        .parent()
        .unwrap()
        .to_owned();
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ft42"))
        .arg("backup")
        .current_dir(sb.path())
        .env("FT42_DATABASE_URL", db.url())
        .env("FT42_BACKUP_DIR", sb.file("backups"))
        .env("FT42_BACKUP_RECIPIENT", &public)
        .env("FT42_LOG_DIR", "off")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let scratch = |dir: &Path| -> Vec<String> {
        backups(dir)
            .into_iter()
            .filter(|n| n.starts_with(".ft42-scratch-"))
            .collect()
    };
    assert!(
        scratch(&db_dir).is_empty(),
        "plaintext left: {:?}",
        scratch(&db_dir)
    );
    assert!(scratch(&sb.file("backups")).is_empty(), "partial file left");
    if out.status.success() {
        // The machine was fast enough to finish first: the backup is then whole.
        eprintln!("the backup finished before SIGTERM landed");
        assert_eq!(backups(&sb.file("backups")).len(), 1);
    } else {
        assert!(stderr.contains("interrupted"), "{stderr}");
        assert!(backups(&sb.file("backups")).is_empty());
    }
}
