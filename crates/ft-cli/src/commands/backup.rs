//! `ft42 backup`, `ft42 backup verify`, `ft42 backup keygen` and `ft42 restore`: thin wrappers
//! that run [`crate::backup`] off the async threads, clean up on SIGINT/SIGTERM, and print what
//! happened. See docs/RECOVERY.md.

use std::future::Future;

use anyhow::Context;

use crate::backup::{self, Created, Restored, keys, scratch};
use crate::cli::{BackupArgs, BackupCommand, RestoreArgs};
use crate::config::Settings;
use crate::exit::{Classified, Exit};

use super::support::shutdown_signal;

/// Runs blocking backup work; when `stop` completes first, deletes every scratch folder and
/// partial file at once (the process is about to end, destructors will not run) and fails.
pub(crate) async fn interruptible<T, F>(
    settings: &Settings,
    stop: impl Future<Output = ()>,
    work: F,
) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Settings) -> anyhow::Result<T> + Send + 'static,
{
    let settings = settings.clone();
    let task = tokio::task::spawn_blocking(move || work(&settings));
    tokio::select! {
        result = task => result.context("the backup task panicked")?,
        () = stop => {
            scratch::remove_all();
            Err(Classified::error(
                Exit::Other,
                "interrupted: the partial backup and every plaintext copy were removed",
            ))
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Makes a backup now (for the command and the daemon) and logs it.
pub(crate) async fn make_backup(
    settings: &Settings,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<Created> {
    let created = interruptible(settings, stop, |s| backup::create(s, chrono::Utc::now())).await?;
    tracing::info!(
        file = %created.path.display(),
        bytes = created.bytes,
        payload_bytes = created.manifest.total_size,
        files = created.manifest.files.len(),
        seconds = created.elapsed.as_secs_f64(),
        kept = created.rotation.keep.len(),
        deleted = created.rotation.delete.len(),
        "backup written"
    );
    for error in &created.rotation_errors {
        tracing::warn!(error = %error, "cannot delete an old backup");
    }
    Ok(created)
}

fn print_created(settings: &Settings, c: &Created) {
    let m = &c.manifest;
    println!("backup written: {}", c.path.display());
    if let Some(db) = m.database() {
        println!(
            "  database: {} {} (schema {}), {}, sha256 {}",
            m.backend,
            m.source,
            m.schema_version.as_deref().unwrap_or("none"),
            mib(db.size),
            db.sha256
        );
    }
    if m.includes_archive {
        let files: Vec<_> = m.archive_files().collect();
        let size: u64 = files.iter().map(|f| f.size).sum();
        println!("  archive: {} files, {}", files.len(), mib(size));
    } else {
        println!("  archive: not included (FT42_BACKUP_INCLUDE_ARCHIVE)");
    }
    println!(
        "  encrypted {}; {} on disk; took {:.1} s",
        c.encryption,
        mib(c.bytes),
        c.elapsed.as_secs_f64()
    );
    println!(
        "rotation (keep {} daily, {} weekly): kept {}, deleted {}{}",
        settings.backup.keep_daily,
        settings.backup.keep_weekly,
        c.rotation.keep.len(),
        c.rotation.delete.len(),
        if c.rotation.delete.is_empty() {
            String::new()
        } else {
            format!(": {}", c.rotation.delete.join(", "))
        }
    );
}

fn print_restored(what: &str, r: &Restored) {
    let m = &r.manifest;
    println!(
        "{what} {} ({} backup made {} by ft42 {}, schema {}) in {:.1} s: checksums verified, \
         {} migration(s) applied, {} archive file(s)",
        r.path.display(),
        m.backend,
        m.created_at,
        m.ft42_version,
        m.schema_version.as_deref().unwrap_or("none"),
        r.elapsed.as_secs_f64(),
        r.migrations,
        r.archive_files
    );
    print!("{}", r.report.to_text());
}

/// The exit code of a restore or verification: like `ft42 integrity`.
fn exit_for(r: &Restored) -> anyhow::Result<Exit> {
    if !r.report.is_complete() {
        let failed: Vec<String> = r
            .report
            .checks_failed_to_run
            .iter()
            .map(|f| format!("{}: {}", f.check, f.error))
            .collect();
        return Err(Classified::error(
            Exit::Other,
            format!(
                "the data was restored but {} integrity check(s) could not run: {}",
                failed.len(),
                failed.join("; ")
            ),
        ));
    }
    Ok(if r.report.has_errors() {
        Exit::IntegrityFindings
    } else {
        Exit::Ok
    })
}

/// `ft42 backup [verify [FILE] | keygen FILE]`.
pub(crate) async fn backup(settings: &Settings, args: &BackupArgs) -> anyhow::Result<Exit> {
    match &args.command {
        None => {
            let created = make_backup(settings, shutdown_signal()).await;
            let outcome = created.map(|created| {
                print_created(settings, &created);
                Exit::Ok
            });
            crate::metrics::after_job(settings, None, outcome).await
        }
        Some(BackupCommand::Verify(v)) => {
            let file = v.file.clone();
            let restored = interruptible(settings, shutdown_signal(), move |s| {
                backup::verify(s, file)
            })
            .await?;
            print_restored("verified", &restored);
            exit_for(&restored)
        }
        Some(BackupCommand::Keygen(k)) => {
            let public = keys::keygen(&k.file)?;
            println!(
                "wrote the secret key to {} (keep it off the backup host, and keep a copy \
                 somewhere safe: without it no backup can be restored)",
                k.file.display()
            );
            println!("public key (for FT42_BACKUP_RECIPIENT): {public}");
            Ok(Exit::Ok)
        }
    }
}

/// `ft42 restore FILE [--force]`.
pub(crate) async fn restore(settings: &Settings, args: &RestoreArgs) -> anyhow::Result<Exit> {
    let (file, force) = (args.file.clone(), args.force);
    let restored = interruptible(settings, shutdown_signal(), move |s| {
        backup::restore(s, &file, force)
    })
    .await?;
    print_restored(
        &format!("restored into {}:", settings.database_url_redacted()),
        &restored,
    );
    exit_for(&restored)
}
