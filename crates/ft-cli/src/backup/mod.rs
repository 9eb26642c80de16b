//! Backups: `ft42 backup`, `ft42 backup verify` and `ft42 restore`.
//!
//! A backup is one file, `$FT42_BACKUP_DIR/ft42-backup-YYYYMMDDTHHMMSSZ.age`: an age-encrypted
//! [`format`] container holding the database (SQLite: a gzipped `VACUUM INTO` copy; PostgreSQL:
//! `pg_dump -Fc`), optionally the raw page archive (`FT42_EXPORT_DIR`), and a checksum
//! [`format::Manifest`]. The whole database is copied, so the sync state (cursors, tasks,
//! runs) comes along and a restored mirror resumes with deltas.
//!
//! Invariants:
//! * **Nothing reaches the backup folder unencrypted.** The container is written straight into
//!   the age encryptor; `pg_dump` is piped in. The only plaintext on disk is SQLite's
//!   `VACUUM INTO` copy, in a private (0700) folder next to the database, removed on every path
//!   (errors, SIGINT/SIGTERM through [`scratch`], and leftovers of a killed run at the next
//!   backup).
//! * **A backup file appears whole or not at all**: it is written as a hidden `.partial` file
//!   and renamed once complete and synced.
//! * **A restore checks before it changes anything**: the target must be empty (unless
//!   `--force`), and the backup is decrypted into a private staging folder and every checksum
//!   verified before the target is touched. PostgreSQL restores run in one transaction;
//!   SQLite restores rename the verified file into place.
//! * **No secret in the manifest, output or errors**: URLs are redacted, the database password
//!   reaches `pg_dump`/`pg_restore` only through `PGPASSWORD`.

pub mod format;
pub mod keys;
pub mod pgtools;
pub mod rotation;
pub mod scratch;

use std::fs;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use ft_store::DatabaseUrl;
use ft_store::{Backend, Store};
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::exit::{Classified, Exit};
use format::{ARCHIVE_PREFIX, Manifest, PG_FILE, SQLITE_FILE};
use keys::Encryption;

/// Staging folders and partial files older than this are leftovers of a killed run.
const STALE_AFTER: Duration = Duration::from_secs(6 * 3600);

/// What `ft42 backup` did.
#[derive(Debug)]
pub struct Created {
    /// The new backup file.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Its size on disk (encrypted).
    pub bytes: u64,
    /// How long it took.
    pub elapsed: Duration,
    /// `"to an age public key"` or `"with a passphrase"`.
    pub encryption: &'static str,
    /// What rotation kept and deleted.
    pub rotation: rotation::Plan,
    /// Old backups that could not be deleted.
    pub rotation_errors: Vec<String>,
}

/// What `ft42 restore` or `ft42 backup verify` did.
#[derive(Debug)]
pub struct Restored {
    /// The backup file.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Archive files written (restore) or checked (verify).
    pub archive_files: usize,
    /// Migrations applied after the restore (the backup came from an older ft42).
    pub migrations: usize,
    /// The integrity report of the restored database.
    pub report: ft_integrity::Report,
    /// How long it took.
    pub elapsed: Duration,
}

fn usage(message: impl Into<String>) -> anyhow::Error {
    Classified::error(Exit::Usage, message)
}

/// The SQLite file of an SQLite URL (empty on PostgreSQL, which callers rule out first).
fn sqlite_path(url: &DatabaseUrl) -> PathBuf {
    url.sqlite_path().map(Path::to_path_buf).unwrap_or_default()
}

fn is_postgres(url: &DatabaseUrl) -> bool {
    url.backend() == Backend::Postgres
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// A private (0700) staging folder in `parent`, registered for removal on a signal.
fn private_dir(parent: &Path) -> anyhow::Result<scratch::ScratchDir> {
    fs::create_dir_all(parent)
        .with_context(|| format!("cannot create the folder {}", parent.display()))?;
    scratch::ScratchDir::new_in(parent)
        .with_context(|| format!("cannot create a private folder in {}", parent.display()))
}

/// Removes staging folders and partial files a killed run left in `dir`.
fn sweep_stale(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(scratch::PREFIX) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old {
            let path = entry.path();
            let removed = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match removed {
                Ok(()) => {
                    tracing::warn!(path = %path.display(), "removed a leftover of an interrupted backup or restore")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a leftover of an interrupted backup or restore")
                }
            }
        }
    }
}

fn sync_dir(dir: &Path) {
    // Makes a rename durable; failing to sync a folder is not worth failing the backup for.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Makes a backup of the configured database now, then rotates the backup folder. Blocking.
pub fn create(settings: &Settings, now: DateTime<Utc>) -> anyhow::Result<Created> {
    let started = Instant::now();
    let encryption = Encryption::from_settings(&settings.backup)?;
    let url = &settings.database_url;
    let origin = &settings.database_url_origin;
    let store = Store::open(url.expose_secret())
        .with_context(|| format!("cannot open the database (from {origin})"))?;
    let schema_version = store
        .schema_version()
        .context("cannot read the schema version")?;
    if schema_version.is_none() {
        return Err(Classified::error(
            Exit::Database,
            format!(
                "{} has no ft42 schema, so there is nothing to back up (check {origin})",
                store.redacted_url()
            ),
        ));
    }

    let dir = settings.backup.dir.clone();
    if !dir.exists() {
        fs::create_dir_all(&dir).map_err(|e| {
            usage(format!(
                "cannot create the backup folder {} (FT42_BACKUP_DIR): {e}",
                dir.display()
            ))
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
        }
    }
    sweep_stale(&dir);
    let name = rotation::file_name(now);
    let final_path = dir.join(&name);
    if final_path.exists() {
        return Err(usage(format!(
            "{} already exists (two backups in the same second); try again",
            final_path.display()
        )));
    }
    let mut partial = scratch::ScratchFile::new_in(&dir).map_err(|e| {
        usage(format!(
            "cannot write into the backup folder {} (FT42_BACKUP_DIR): {e}",
            dir.display()
        ))
    })?;
    let encryptor = encryption.encryptor()?;
    let out = BufWriter::with_capacity(1 << 20, partial.file_mut());
    let stream = encryptor
        .wrap_output(out)
        .context("cannot start the encrypted stream")?;
    let mut writer = format::Writer::new(stream).context("cannot write the backup")?;

    let (tool, server_version_num) = match store.backend() {
        Backend::Sqlite => {
            let db_path = sqlite_path(url);
            let db_dir = parent_dir(&db_path);
            sweep_stale(&db_dir);
            let staging = private_dir(&db_dir)?;
            let copy = staging.path().join("database.sqlite");
            store
                .vacuum_into(&copy)
                .context("cannot copy the SQLite database (VACUUM INTO)")?;
            let file = fs::File::open(&copy).context("cannot read the SQLite copy")?;
            let mut gz = flate2::read::GzEncoder::new(
                BufReader::with_capacity(1 << 20, file),
                flate2::Compression::fast(),
            );
            writer
                .add(SQLITE_FILE, &mut gz)
                .context("cannot write the backup")?;
            drop(gz);
            drop(staging);
            ("VACUUM INTO".to_owned(), None)
        }
        Backend::Postgres => {
            let server = store
                .server_version_num()?
                .context("the server did not report its version")?;
            let tool = pgtools::find("pg_dump", pgtools::server_major(server), "the server")?;
            dump_postgres(url.expose_secret(), &tool, &mut writer)?;
            (tool.version, Some(server))
        }
    };
    drop(store);

    let mut includes_archive = false;
    if settings.backup.include_archive {
        if settings.export_dir.is_dir() {
            add_archive(&settings.export_dir, &mut writer)?;
            includes_archive = true;
        } else {
            tracing::warn!(
                export_dir = %settings.export_dir.display(),
                "FT42_BACKUP_INCLUDE_ARCHIVE is on but the archive folder does not exist; backing up the database only"
            );
        }
    }
    let template = Manifest {
        format: 1,
        ft42_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        backend: settings_backend(url).as_str().to_owned(),
        source: url.redacted().to_owned(),
        schema_version,
        tool,
        server_version_num,
        includes_archive,
        files: Vec::new(),
        total_size: 0,
        payload_sha256: String::new(),
    };
    let (manifest, stream) = writer.finish(template).context("cannot write the backup")?;
    let mut out = stream
        .finish()
        .context("cannot finish the encrypted stream")?;
    out.flush().context("cannot write the backup")?;
    drop(out);
    let bytes = partial.finish(&final_path).map_err(|e| {
        usage(format!(
            "cannot store the backup as {}: {e}",
            final_path.display()
        ))
    })?;
    sync_dir(&dir);

    let (plan, rotation_errors) = rotate(settings, now);
    Ok(Created {
        path: final_path,
        manifest,
        bytes,
        elapsed: started.elapsed(),
        encryption: encryption.kind(),
        rotation: plan,
        rotation_errors,
    })
}

fn settings_backend(url: &DatabaseUrl) -> Backend {
    url.backend()
}

/// Applies rotation to the backup folder; returns the plan and the deletions that failed.
fn rotate(settings: &Settings, now: DateTime<Utc>) -> (rotation::Plan, Vec<String>) {
    let names: Vec<String> = fs::read_dir(&settings.backup.dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let plan = rotation::plan(
        &names,
        now,
        settings.backup.keep_daily,
        settings.backup.keep_weekly,
    );
    let mut errors = Vec::new();
    for name in &plan.delete {
        if let Err(e) = fs::remove_file(settings.backup.dir.join(name)) {
            errors.push(format!("{name}: {e}"));
        }
    }
    (plan, errors)
}

/// Streams `pg_dump -Fc` of `url` into the container.
fn dump_postgres(
    url: &str,
    tool: &pgtools::PgTool,
    writer: &mut format::Writer<impl Write>,
) -> anyhow::Result<()> {
    let target = pgtools::PgTarget::new(url)?;
    let mut child = target
        .command(tool)
        .args(["--format=custom", "--no-password", "--dbname"])
        .arg(&target.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Classified::error(
                Exit::Database,
                format!("cannot run {}: {e}", tool.path.display()),
            )
        })?;
    let stderr = pgtools::drain_stderr(&mut child);
    let mut stdout = child.stdout.take().context("pg_dump has no output")?;
    let written = writer.add(PG_FILE, &mut stdout);
    drop(stdout);
    let status = child.wait().context("pg_dump did not finish")?;
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        return Err(Classified::error(
            Exit::Database,
            format!("pg_dump failed ({status}): {}", target.scrub(stderr.trim())),
        ));
    }
    written.context("cannot write the backup")?;
    Ok(())
}

/// Adds every regular file under `root` as `archive/<relative path>`, in path order.
fn add_archive(root: &Path, writer: &mut format::Writer<impl Write>) -> anyhow::Result<()> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries =
            fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            let kind = entry.file_type()?;
            // Symbolic links are skipped: they could point anywhere, even out of the archive.
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    for path in files {
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let rel: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let name = format!("{ARCHIVE_PREFIX}{}", rel.join("/"));
        if !format::valid_name(&name) || rel.iter().any(|p| p.starts_with(scratch::PREFIX)) {
            continue;
        }
        let mut file =
            fs::File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
        writer
            .add(&name, &mut file)
            .with_context(|| format!("cannot add {} to the backup", path.display()))?;
    }
    Ok(())
}

/// The SQLite file's name in a staging folder, once decompressed.
const STAGED_SQLITE: &str = "database.sqlite";

/// Finishes a gzip decoder on flush, so a truncated stream is an error, not a short file.
struct FinishOnFlush<W: Write>(flate2::write::GzDecoder<W>);

impl<W: Write> Write for FinishOnFlush<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.try_finish()?;
        self.0.get_mut().flush()
    }
}

/// A backup decrypted and checked in a private staging folder.
struct Staged {
    manifest: Manifest,
    dir: scratch::ScratchDir,
}

impl Staged {
    /// The staged database: the `pg_dump` file, or the SQLite file (decompressed).
    fn database(&self) -> PathBuf {
        let name = if self.manifest.backend == "postgres" {
            PG_FILE
        } else {
            STAGED_SQLITE
        };
        self.dir.path().join(name)
    }

    fn archive_root(&self) -> PathBuf {
        self.dir.path().join("archive")
    }
}

/// Decrypts `file` into a new private folder in `parent` and verifies every checksum. Errors:
/// exit 2 for a missing or wrong key, exit 1 for a damaged file.
fn stage(settings: &Settings, file: &Path, parent: &Path) -> anyhow::Result<Staged> {
    let shown = file.display();
    let input =
        fs::File::open(file).map_err(|e| usage(format!("cannot open the backup {shown}: {e}")))?;
    let damaged = |what: String| {
        Classified::error(
            Exit::Other,
            format!(
                "the backup {shown} is damaged (corrupted or truncated) and cannot be used: \
                 {what}; nothing was changed; use an older backup"
            ),
        )
    };
    let decryptor = age::Decryptor::new_buffered(BufReader::with_capacity(1 << 20, input))
        .map_err(|e| damaged(format!("not a readable age file ({e})")))?;
    let scrypt = decryptor.is_scrypt();
    let identities = keys::identities(&settings.backup, scrypt)?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => usage(format!(
                "wrong key: the backup {shown} was not encrypted to the key in \
                 FT42_BACKUP_IDENTITY_FILE; nothing was changed"
            )),
            age::DecryptError::DecryptionFailed | age::DecryptError::KeyDecryptionFailed
                if scrypt =>
            {
                usage(format!(
                    "wrong passphrase: the passphrase in FT42_BACKUP_PASSPHRASE_FILE does not \
                     decrypt {shown}; nothing was changed"
                ))
            }
            other => damaged(format!("{other}")),
        })?;
    let dir = private_dir(parent)?;
    let root = dir.path().to_owned();
    let manifest = format::read(&mut reader, &mut |name| {
        if name == SQLITE_FILE {
            let file = fs::File::create(root.join(STAGED_SQLITE))?;
            let out = BufWriter::with_capacity(1 << 20, file);
            return Ok(
                Box::new(FinishOnFlush(flate2::write::GzDecoder::new(out))) as Box<dyn Write>
            );
        }
        let path = root.join(name);
        if let Some(p) = path.parent() {
            fs::create_dir_all(p)?;
        }
        let file = fs::File::create(&path)?;
        Ok(Box::new(BufWriter::with_capacity(1 << 20, file)) as Box<dyn Write>)
    })
    .map_err(|e| damaged(e.to_string()))?;
    let backend = if manifest.backend == "postgres" {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    let known = ft_store::latest_schema_version(backend);
    // Same-length numeric versions: text order is version order.
    if let (Some(theirs), Some(ours)) = (&manifest.schema_version, &known)
        && theirs > ours
    {
        return Err(usage(format!(
            "{shown} was made by a newer ft42 ({}, schema {theirs}; this binary knows up to \
             {ours}); nothing was changed; upgrade ft42 and restore again",
            manifest.ft42_version
        )));
    }
    Ok(Staged { manifest, dir })
}

/// The newest backup in the backup folder.
pub fn newest(settings: &Settings) -> anyhow::Result<PathBuf> {
    let dir = &settings.backup.dir;
    let newest = newest_in(dir).map_err(|e| {
        usage(format!(
            "cannot list the backup folder {} (FT42_BACKUP_DIR): {e}",
            dir.display()
        ))
    })?;
    newest.map(|(_, p)| p).ok_or_else(|| {
        usage(format!(
            "no backup in {} (FT42_BACKUP_DIR); make one with `ft42 backup`",
            dir.display()
        ))
    })
}

/// The newest backup in `dir` by the time in its name, with that time; `None` when there is
/// none.
pub(crate) fn newest_in(dir: &Path) -> std::io::Result<Option<(DateTime<Utc>, PathBuf)>> {
    Ok(fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            rotation::parse_name(&name).map(|t| (t, e.path()))
        })
        .max())
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut hash = Sha256::new();
    let mut file = fs::File::open(path)?;
    std::io::copy(&mut file, &mut hash)?;
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Archive files of the backup that exist in `export_dir` with different content.
fn archive_conflicts(manifest: &Manifest, export_dir: &Path) -> Vec<String> {
    manifest
        .archive_files()
        .filter_map(|f| {
            let rel = f.name.strip_prefix(ARCHIVE_PREFIX)?;
            let path = export_dir.join(rel);
            match sha256_file(&path) {
                Ok(sum) if sum == f.sha256 => None,
                Ok(_) => Some(rel.to_owned()),
                Err(_) if path.exists() => Some(rel.to_owned()),
                Err(_) => None,
            }
        })
        .collect()
}

/// Moves the staged archive files into `export_dir`; returns how many were written.
fn install_archive(staged: &Staged, export_dir: &Path) -> anyhow::Result<usize> {
    let mut written = 0;
    for f in staged.manifest.archive_files() {
        let Some(rel) = f.name.strip_prefix(ARCHIVE_PREFIX) else {
            continue;
        };
        let from = staged.archive_root().join(rel);
        let to = export_dir.join(rel);
        if sha256_file(&to).is_ok_and(|sum| sum == f.sha256) {
            continue;
        }
        if let Some(p) = to.parent() {
            fs::create_dir_all(p).with_context(|| format!("cannot create {}", p.display()))?;
        }
        if fs::rename(&from, &to).is_err() {
            // Another file system: copy to a temporary name next to the target, then rename.
            let tmp = to.with_extension("restore-tmp");
            fs::copy(&from, &tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
            fs::rename(&tmp, &to).with_context(|| format!("cannot write {}", to.display()))?;
        }
        written += 1;
    }
    Ok(written)
}

/// Refuses a non-empty target unless `force` (exit 2; nothing is changed).
fn check_target_empty(store: &Store, force: bool) -> anyhow::Result<()> {
    if force {
        return Ok(());
    }
    let empty = store
        .is_empty()
        .context("cannot check whether the target database is empty")?;
    if !empty {
        return Err(usage(format!(
            "the database {} is not empty; restore only writes into an empty database, so \
             nothing was changed: point FT42_DATABASE_URL at a new database, or pass --force \
             to replace this one",
            store.redacted_url()
        )));
    }
    Ok(())
}

/// Migrates the restored database and runs the integrity checks on it.
fn migrate_and_check(
    url: &str,
    exports_dir: Option<PathBuf>,
) -> anyhow::Result<(usize, ft_integrity::Report)> {
    let store = Store::open(url).context("cannot open the restored database")?;
    let migrations = store
        .migrate()
        .context("cannot migrate the restored database")?;
    let options = ft_integrity::Options {
        exports_dir,
        ..ft_integrity::Options::default()
    };
    let report = ft_integrity::run(&store, &options)
        .context("the integrity checks of the restored database could not run")?;
    Ok((migrations, report))
}

/// Restores `file` into the configured database. Blocking.
pub fn restore(settings: &Settings, file: &Path, force: bool) -> anyhow::Result<Restored> {
    let started = Instant::now();
    let url = settings.database_url.clone();
    let backend = settings_backend(&url);
    let origin = &settings.database_url_origin;

    // 1. The target must be empty (checked before the slow decryption).
    let sqlite_target = (backend == Backend::Sqlite).then(|| sqlite_path(&url));
    match &sqlite_target {
        Some(path) => {
            if path.is_file() && fs::metadata(path).is_ok_and(|m| m.len() > 0) {
                let store = Store::open(url.expose_secret())
                    .with_context(|| format!("cannot open the database (from {origin})"))?;
                check_target_empty(&store, force)?;
            }
        }
        None => {
            let store = Store::open(url.expose_secret())
                .with_context(|| format!("cannot open the database (from {origin})"))?;
            check_target_empty(&store, force)?;
        }
    }

    // 2. Decrypt and verify in a private folder: next to an SQLite target (so the verified
    //    file is renamed into place), in the temporary folder for PostgreSQL.
    let parent = match &sqlite_target {
        Some(path) => parent_dir(path),
        None => std::env::temp_dir(),
    };
    let staged = stage(settings, file, &parent)?;
    let manifest = staged.manifest.clone();
    if manifest.backend != backend.as_str() {
        return Err(usage(format!(
            "{} is a {} backup but FT42_DATABASE_URL is a {} database; restore it into a \
             {} database",
            file.display(),
            manifest.backend,
            backend,
            manifest.backend
        )));
    }
    let conflicts = archive_conflicts(&manifest, &settings.export_dir);
    if !conflicts.is_empty() && !force {
        return Err(usage(format!(
            "{} archive file(s) in {} differ from the backup (first: {}); nothing was \
             changed; pass --force to overwrite them",
            conflicts.len(),
            settings.export_dir.display(),
            conflicts[0]
        )));
    }

    // 3. Only now is the target changed.
    match &sqlite_target {
        Some(path) => {
            // A stale write-ahead log would be replayed into the new file: remove it first.
            for suffix in ["-wal", "-shm", "-journal"] {
                let mut side = path.clone().into_os_string();
                side.push(suffix);
                let _ = fs::remove_file(PathBuf::from(side));
            }
            fs::rename(staged.database(), path).with_context(|| {
                format!("cannot move the restored database to {}", path.display())
            })?;
            sync_dir(&parent_dir(path));
        }
        None => {
            let dump_major = pgtools::parse_major(&manifest.tool).unwrap_or(0);
            let tool = pgtools::find("pg_restore", dump_major, "the pg_dump that made the backup")?;
            pgtools::restore(
                &tool,
                &pgtools::PgTarget::new(url.expose_secret())?,
                &staged.database(),
            )?;
        }
    }
    let archive_files = if manifest.includes_archive {
        install_archive(&staged, &settings.export_dir)?
    } else {
        0
    };
    drop(staged);

    // 4. Migrate (a backup of an older ft42) and check.
    let exports = settings
        .export_dir
        .is_dir()
        .then(|| settings.export_dir.clone());
    let (migrations, report) = migrate_and_check(url.expose_secret(), exports)?;
    Ok(Restored {
        path: file.to_owned(),
        manifest,
        archive_files,
        migrations,
        report,
        elapsed: started.elapsed(),
    })
}

/// Drops the scratch database when dropped.
struct ScratchDatabase {
    admin: Store,
    name: String,
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        if let Err(e) = self.admin.drop_database(&self.name) {
            tracing::warn!(database = %self.name, error = %e, "cannot drop the scratch database of `ft42 backup verify`; drop it by hand");
        }
    }
}

/// Restores `file` (default: the newest backup) into a scratch database and checks it.
/// Blocking.
pub fn verify(settings: &Settings, file: Option<PathBuf>) -> anyhow::Result<Restored> {
    let started = Instant::now();
    let file = match file {
        Some(f) => f,
        None => newest(settings)?,
    };
    let staged = stage(settings, &file, &std::env::temp_dir())?;
    let manifest = staged.manifest.clone();
    let archive_files = manifest.archive_files().count();
    let exports = (archive_files > 0).then(|| staged.archive_root());
    let (migrations, report) = if manifest.backend == "postgres" {
        let url = &settings.database_url;
        if !is_postgres(url) {
            return Err(usage(format!(
                "{} is a PostgreSQL backup: verifying it needs a PostgreSQL server, where a \
                 scratch database is created and dropped; set FT42_DATABASE_URL to one",
                file.display()
            )));
        }
        let admin = Store::open(url.expose_secret()).context("cannot open the database server")?;
        let name = format!(
            "ft42_verify_{}_{}",
            Utc::now().format("%Y%m%d%H%M%S"),
            std::process::id()
        );
        admin.create_database(&name).with_context(|| {
            format!(
                "cannot create the scratch database {name} (the role in FT42_DATABASE_URL needs \
                 the CREATEDB privilege)"
            )
        })?;
        let scratch_db = ScratchDatabase { admin, name };
        let mut scratch_url = url::Url::parse(url.expose_secret()).context("bad PostgreSQL URL")?;
        scratch_url.set_path(&format!("/{}", scratch_db.name));
        let scratch_url = scratch_url.to_string();
        let dump_major = pgtools::parse_major(&manifest.tool).unwrap_or(0);
        let tool = pgtools::find("pg_restore", dump_major, "the pg_dump that made the backup")?;
        pgtools::restore(
            &tool,
            &pgtools::PgTarget::new(&scratch_url)?,
            &staged.database(),
        )?;
        let checked = migrate_and_check(&scratch_url, exports);
        drop(scratch_db);
        checked?
    } else {
        let url = format!("sqlite://{}", staged.database().display());
        migrate_and_check(&url, exports)?
    };
    drop(staged);
    Ok(Restored {
        path: file,
        manifest,
        archive_files,
        migrations,
        report,
        elapsed: started.elapsed(),
    })
}
