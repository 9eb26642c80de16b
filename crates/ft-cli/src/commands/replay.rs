//! `ft42 replay`: rebuild the mirror tables from the raw page archive, without the API.

use std::path::PathBuf;

use crate::cli::ReplayArgs;
use crate::config::Settings;
use crate::exit::Exit;

use super::support::open_migrated;

/// Replays the archive (`--from`, else `FT42_EXPORT_DIR`) into the configured database and
/// prints what it did. Files that cannot be read are listed and make the exit status 1; the
/// rest is applied.
pub(crate) async fn replay(settings: &Settings, args: &ReplayArgs) -> anyhow::Result<Exit> {
    let dir: PathBuf = args
        .from
        .clone()
        .unwrap_or_else(|| settings.export_dir.clone());
    let (store, _) = open_migrated(settings).await?;
    let started = std::time::Instant::now();
    let d = dir.clone();
    let summary = tokio::task::spawn_blocking(move || ft_sync::replay(&store, &d)).await??;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "replayed {} archive files from {} into {} in {:.1} s: {} rows, {} marked deleted; no API request made",
            summary.files,
            dir.display(),
            settings.database_url_redacted(),
            started.elapsed().as_secs_f64(),
            summary.rows,
            summary.deleted
        );
        for skipped in &summary.skipped {
            eprintln!("skipped: {skipped}");
        }
    }
    Ok(if summary.skipped.is_empty() {
        Exit::Ok
    } else {
        Exit::Other
    })
}
