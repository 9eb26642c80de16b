//! Throwaway databases for tests (feature `test-support`).
//!
//! [`TestDb::sqlite`] makes a migrated SQLite file in a temporary directory. [`TestDb::postgres`]
//! creates a fresh database on a shared throwaway PostgreSQL server and drops it when the
//! [`TestDb`] is dropped. [`TestDb::all`] gives one of each, so tests can loop over backends.
//!
//! The PostgreSQL server: if `FT42_TEST_PG_URL` is set (an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/postgres`), databases are created there. Otherwise one
//! server per machine and user is started on first use and reused by later test processes
//! (nextest runs each test in its own process): its data lives in `$TMPDIR/ft42-test-pg-<uid>`,
//! a file lock serialises the setup, the port is recorded in a file, and a server that does not
//! answer is restarted. The server listens on 127.0.0.1 only, with trust authentication, and is
//! never stopped by the tests (stop it with `pg_ctl -D $TMPDIR/ft42-test-pg-<uid>/data stop`).
//! When running as root, initdb and pg_ctl run as the `postgres` user through `runuser`.
//!
//! [`OwnPgServer`] is a server of a test's own, for settings the shared one must not get (TLS).

use std::fs::{self, File};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use crate::store::{Backend, Store};

/// Environment variable naming an existing PostgreSQL server to create test databases on.
pub const PG_URL_ENV: &str = "FT42_TEST_PG_URL";

static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// A throwaway, migrated database and a [`Store`] on it.
pub struct TestDb {
    store: Option<Store>,
    url: String,
    backend: Backend,
    /// Keeps the SQLite file's directory alive.
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: the admin URL and the database to drop.
    pg_drop: Option<(String, String)>,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("backend", &self.backend)
            .field("url", &crate::redact_url(&self.url))
            .finish()
    }
}

impl TestDb {
    /// A migrated SQLite database in a fresh temporary directory.
    pub fn sqlite() -> TestDb {
        let db = TestDb::sqlite_unmigrated();
        db.store()
            .migrate()
            .expect("migrating the test SQLite database");
        db
    }

    /// A migrated database on the shared throwaway PostgreSQL server.
    pub fn postgres() -> TestDb {
        let db = TestDb::postgres_unmigrated();
        db.store()
            .migrate()
            .expect("migrating the test PostgreSQL database");
        db
    }

    /// One migrated database per backend: SQLite first, then PostgreSQL.
    pub fn all() -> Vec<TestDb> {
        vec![TestDb::sqlite(), TestDb::postgres()]
    }

    /// A migrated database of the given backend.
    pub fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => TestDb::sqlite(),
            Backend::Postgres => TestDb::postgres(),
        }
    }

    /// An empty SQLite database (no migrations applied).
    pub fn sqlite_unmigrated() -> TestDb {
        let dir = tempfile::Builder::new()
            .prefix("ft42-test-")
            .tempdir()
            .expect("creating a temporary directory for the test SQLite database");
        let url = format!("sqlite://{}", dir.path().join("ft42.db").display());
        let store = Store::open(&url).expect("opening the test SQLite database");
        TestDb {
            store: Some(store),
            url,
            backend: Backend::Sqlite,
            _dir: Some(dir),
            pg_drop: None,
        }
    }

    /// An empty PostgreSQL database (no migrations applied).
    pub fn postgres_unmigrated() -> TestDb {
        let admin = shared_pg_admin_url();
        let name = format!(
            "ft42_t_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = PgConnection::establish(admin).unwrap_or_else(|e| {
            panic!(
                "connecting to the test PostgreSQL server at {}: {e}",
                crate::redact_url(admin)
            )
        });
        // A database left over by a killed test process with the same pid is replaced.
        // Two calls: PostgreSQL runs a multi-statement string as one transaction, and neither
        // statement may run inside one.
        conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .and_then(|()| conn.batch_execute(&format!("CREATE DATABASE {name}")))
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        let url = database_url(admin, &name);
        let store = Store::open(&url).expect("opening the test PostgreSQL database");
        TestDb {
            store: Some(store),
            url,
            backend: Backend::Postgres,
            _dir: None,
            pg_drop: Some((admin.to_owned(), name)),
        }
    }

    /// The store on this database.
    pub fn store(&self) -> &Store {
        self.store.as_ref().expect("the store lives until drop")
    }

    /// The database URL (`sqlite://...` or `postgres://...`), for opening more stores or
    /// passing to binaries under test.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Close our pool first; FORCE also ends connections held by clones of the store.
        self.store.take();
        if let Some((admin, name)) = self.pg_drop.take() {
            let dropped = PgConnection::establish(&admin)
                .map_err(|e| e.to_string())
                .and_then(|mut conn| {
                    conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = dropped {
                eprintln!("warning: could not drop test database {name}: {e}");
            }
        }
    }
}

/// `admin` with its database name replaced by `name`.
fn database_url(admin: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin).expect("the PostgreSQL admin URL is a valid URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// The admin URL of the shared test server, starting it if needed (once per process).
fn shared_pg_admin_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var(PG_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => ensure_local_server(),
    })
}

fn admin_url(port: u16) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

fn current_uid() -> u32 {
    fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or_else(|_| {
            fs::metadata(std::env::temp_dir())
                .map(|m| m.uid())
                .unwrap_or(0)
        })
}

/// Finds `initdb` and `pg_ctl`: the newest /usr/lib/postgresql/*/bin, then PATH.
fn pg_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    if let Some((_, bin)) = dirs.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    })
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root (the server refuses root).
fn pg_command(bin: &Path, tool: &str, as_postgres: bool) -> Command {
    if as_postgres {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        cmd
    } else {
        Command::new(bin.join(tool))
    }
}

fn alive(port: u16) -> bool {
    PgConnection::establish(&admin_url(port)).is_ok()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("finding a free loopback port for the test PostgreSQL server")
}

fn ensure_local_server() -> String {
    let uid = current_uid();
    let root = std::env::temp_dir().join(format!("ft42-test-pg-{uid}"));
    let lock_path = std::env::temp_dir().join(format!("ft42-test-pg-{uid}.lock"));
    let lock = File::create(&lock_path)
        .unwrap_or_else(|e| panic!("creating lock file {}: {e}", lock_path.display()));
    // Held until the end of this function; other test processes wait here.
    lock.lock()
        .unwrap_or_else(|e| panic!("locking {}: {e}", lock_path.display()));

    let port_file = root.join("port");
    if let Some(port) = fs::read_to_string(&port_file)
        .ok()
        .and_then(|p| p.trim().parse::<u16>().ok())
        && alive(port)
    {
        return admin_url(port);
    }

    let bin = pg_bin_dir().unwrap_or_else(|| {
        panic!(
            "PostgreSQL tests need either {PG_URL_ENV} (an admin URL such as \
             postgres://postgres@127.0.0.1:5432/postgres) or the PostgreSQL server binaries \
             (initdb, pg_ctl); install them with `apt-get install postgresql` or run \
             scripts/ensure-postgres"
        )
    });
    let as_postgres = uid == 0;
    let data = root.join("data");
    fs::create_dir_all(&root).unwrap_or_else(|e| panic!("creating {}: {e}", root.display()));
    if as_postgres {
        chown_postgres(&root);
    }
    let mut perms = fs::metadata(&root)
        .expect("stat test server dir")
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o700);
    fs::set_permissions(&root, perms).expect("chmod test server dir");

    if !data.join("PG_VERSION").exists() {
        // A half-made data directory from an interrupted initdb is useless.
        let _ = fs::remove_dir_all(&data);
        initdb(&bin, &data, as_postgres);
    }

    // A server still running from this directory (on a port we lost track of) is stopped.
    if data.join("postmaster.pid").exists() {
        pg_stop(&bin, &data, as_postgres);
    }

    let log = root.join("server.log");
    let mut last_error = String::new();
    for _ in 0..3 {
        let port = free_port();
        // The tests need speed, not durability. Output goes to the log file and the daemon
        // must not inherit our stdout/stderr (nextest would wait for them to close).
        let options = format!(
            "-h 127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=300",
            root.display()
        );
        let started = pg_start(&bin, &data, &log, &options, as_postgres);
        if started && alive(port) {
            fs::write(&port_file, port.to_string())
                .unwrap_or_else(|e| panic!("writing {}: {e}", port_file.display()));
            drop_leftover_databases(port);
            return admin_url(port);
        }
        last_error = fs::read_to_string(&log)
            .map(|l| l.lines().rev().take(20).collect::<Vec<_>>().join("\n"))
            .unwrap_or_default();
    }
    panic!(
        "could not start the test PostgreSQL server in {} (last log lines, newest first):\n{last_error}",
        root.display()
    );
}

/// Test databases of earlier runs (a fresh server has no live users of them).
fn drop_leftover_databases(port: u16) {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let Ok(mut conn) = PgConnection::establish(&admin_url(port)) else {
        return;
    };
    let names: Vec<Name> = diesel::RunQueryDsl::load(
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'ft42\\_t\\_%'"),
        &mut conn,
    )
    .unwrap_or_default();
    for Name { datname } in names {
        let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {datname} WITH (FORCE)"));
    }
}

/// A PostgreSQL server of one test's own, for settings the shared server must not get (such as
/// `ssl = on`): a fresh cluster in a temporary directory, on a free loopback port with trust
/// authentication, stopped and deleted on drop. Needs the server binaries (no `FT42_TEST_PG_URL`
/// fallback: the settings are the point).
pub struct OwnPgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    port: u16,
}

impl std::fmt::Debug for OwnPgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnPgServer")
            .field("dir", &self.dir.path())
            .field("port", &self.port)
            .finish()
    }
}

/// `pg_ctl start`, waiting up to 60 s; whether the server started. Output goes to `log`: the
/// server must not inherit our stdout/stderr (nextest would wait for them to close).
fn pg_start(bin: &Path, data: &Path, log: &Path, options: &str, as_postgres: bool) -> bool {
    pg_command(bin, "pg_ctl", as_postgres)
        .arg("-D")
        .arg(data)
        .arg("-l")
        .arg(log)
        .arg("-o")
        .arg(options)
        .args(["-w", "-t", "60", "start"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running pg_ctl start")
        .success()
}

/// Makes a data directory for a loopback test server: trust authentication, UTF-8, C locale.
fn initdb(bin: &Path, data: &Path, as_postgres: bool) {
    let out = pg_command(bin, "initdb", as_postgres)
        .arg("-D")
        .arg(data)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("running initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl OwnPgServer {
    /// Starts a server. `files` are written into the data directory first (mode 0600, owned by
    /// the server's user: what it asks of a private key), and `settings` are passed as
    /// `-c name=value`, so `("ssl_cert_file", "server.crt")` names such a file.
    pub fn start(files: &[(&str, &[u8])], settings: &[(&str, &str)]) -> OwnPgServer {
        let bin = pg_bin_dir().unwrap_or_else(|| {
            panic!(
                "this test starts its own PostgreSQL server and needs the server binaries \
                 (initdb, pg_ctl); install them with `apt-get install postgresql` or run \
                 scripts/ensure-postgres"
            )
        });
        let as_postgres = current_uid() == 0;
        let dir = tempfile::Builder::new()
            .prefix("ft42-own-pg-")
            .tempdir()
            .expect("creating a directory for the test's own PostgreSQL server");
        let data = dir.path().join("data");
        // As root, initdb runs as postgres and must be able to enter our 0700 directory.
        if as_postgres {
            chown_postgres(dir.path());
        }
        initdb(&bin, &data, as_postgres);
        for (name, contents) in files {
            let path = data.join(name);
            fs::write(&path, contents)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            let mut perms = fs::metadata(&path).expect("stat").permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
            fs::set_permissions(&path, perms).expect("chmod 0600");
        }
        if as_postgres {
            chown_postgres(dir.path());
        }
        let mut options = format!(
            "-h 127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            dir.path().display()
        );
        for (name, value) in settings {
            options.push_str(&format!(" -c {name}={value}"));
        }
        let log = dir.path().join("server.log");
        for _ in 0..3 {
            let port = free_port();
            let started = pg_start(
                &bin,
                &data,
                &log,
                &format!("{options} -p {port}"),
                as_postgres,
            );
            if started {
                return OwnPgServer {
                    dir,
                    bin,
                    as_postgres,
                    port,
                };
            }
        }
        panic!(
            "could not start the test's own PostgreSQL server; its log:\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for OwnPgServer {
    fn drop(&mut self) {
        pg_stop(&self.bin, &self.dir.path().join("data"), self.as_postgres);
    }
}

/// Stops the server of `data` at once (`-m immediate`), ignoring failure (it may be gone).
fn pg_stop(bin: &Path, data: &Path, as_postgres: bool) {
    let _ = pg_command(bin, "pg_ctl", as_postgres)
        .arg("-D")
        .arg(data)
        .args(["-m", "immediate", "-w", "stop"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn chown_postgres(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .expect("running chown");
    assert!(status.success(), "chown postgres {} failed", path.display());
}
