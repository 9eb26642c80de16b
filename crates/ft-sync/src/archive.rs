//! The raw page archive: every fetched page kept as gzip-compressed newline-delimited JSON, and
//! `replay`, which rebuilds the mirror tables from it without spending any API budget.
//!
//! Layout, under the archive folder (`FT42_EXPORT_DIR`):
//!
//! ```text
//! <table>/<scope>/<YYYY-MM-DD>/<YYYYMMDDTHHMMSS.ffffffZ>-t<task>-p<page>-s<seq>.ndjson.gz
//! _deleted/<table>/<scope>/<YYYY-MM-DD>/<stamp>-t<task>-s<seq>.ndjson.gz   (lines {"id": N})
//! ```
//!
//! One line per item, exactly the JSON the API sent. A page is written to a temporary file,
//! flushed and renamed before the page is committed to the database, so the archive always holds
//! at least what the database holds, and a crash never leaves a half-written file under a final
//! name. File names start with a UTC timestamp, so sorting them by name replays pages and
//! deletions in the order they happened. Blocs are archived whole: replay derives their
//! coalitions from them, as the sync does.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{NaiveDate, Utc};
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use ft_api::Page;
use ft_store::{ApplyPage, Rows, Store, Table};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::error::{Result, SyncError};
use crate::mapping::{self, Mapped};

/// The folder under the archive root that holds deletion records.
const DELETED: &str = "_deleted";

/// Tells files written in the same microsecond apart, in write order.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// Where raw pages are archived. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Archive {
    dir: PathBuf,
}

impl Archive {
    /// An archive rooted at `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Archive {
        Archive { dir: dir.into() }
    }

    /// The archive's root folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes one page's items under `table` and `scope`; returns the file written. Nothing is
    /// written for an empty page.
    pub(crate) fn write_page(
        &self,
        table: Table,
        scope: &str,
        task_id: i64,
        page_no: i64,
        raw: &[Box<RawValue>],
    ) -> Result<Option<PathBuf>> {
        if raw.is_empty() {
            return Ok(None);
        }
        let (folder, stamp) = self.folder(&[table.as_str(), &scope_dir(scope)]);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("{stamp}-t{task_id}-p{page_no}-s{seq}.ndjson.gz");
        let lines = raw.iter().map(|r| r.get().to_owned());
        write_atomically(&folder, &name, lines).map(Some)
    }

    /// Records that these ids of `table` were found deleted.
    pub(crate) fn write_deletions(
        &self,
        table: Table,
        scope: &str,
        task_id: i64,
        ids: &[i64],
    ) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let (folder, stamp) = self.folder(&[DELETED, table.as_str(), &scope_dir(scope)]);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("{stamp}-t{task_id}-s{seq}.ndjson.gz");
        let lines = ids.iter().map(|id| format!("{{\"id\":{id}}}"));
        write_atomically(&folder, &name, lines).map(|_| ())
    }

    fn folder(&self, parts: &[&str]) -> (PathBuf, String) {
        let now = Utc::now();
        let mut folder = self.dir.clone();
        for part in parts {
            folder.push(part);
        }
        folder.push(now.format("%Y-%m-%d").to_string());
        (folder, now.format("%Y%m%dT%H%M%S%.6fZ").to_string())
    }

    /// Deletes the day folders older than `keep_days` days before `today` (the archive's
    /// retention setting); returns how many folders and files went.
    pub fn prune(&self, keep_days: u32, today: NaiveDate) -> Result<PruneSummary> {
        let cutoff = today - chrono::Days::new(u64::from(keep_days));
        let mut summary = PruneSummary::default();
        for day in day_folders(&self.dir)? {
            let Some(date) = day
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| NaiveDate::parse_from_str(n, "%Y-%m-%d").ok())
            else {
                continue;
            };
            if date < cutoff {
                let files = fs::read_dir(&day).map(|d| d.count()).unwrap_or(0);
                fs::remove_dir_all(&day).map_err(|e| io_error(&day, e))?;
                summary.folders += 1;
                summary.files += files as u64;
            }
        }
        if summary.folders > 0 {
            tracing::info!(
                folders = summary.folders,
                files = summary.files,
                keep_days,
                "archive pruned"
            );
        }
        Ok(summary)
    }
}

/// What [`Archive::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneSummary {
    /// Day folders removed.
    pub folders: u64,
    /// Files in them.
    pub files: u64,
}

/// What [`replay`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplaySummary {
    /// Page files applied.
    pub files: u64,
    /// Rows upserted (embedded coalitions included), before the stale-row filter.
    pub rows: u64,
    /// Rows marked deleted from deletion records.
    pub deleted: u64,
    /// Files that could not be read (corrupt or of an unknown table), skipped and listed.
    pub skipped: Vec<String>,
}

/// `campus:12` → `campus-12`: colons are awkward in file names on some systems.
fn scope_dir(scope: &str) -> String {
    scope.replace(':', "-")
}

fn io_error(path: &Path, e: std::io::Error) -> SyncError {
    SyncError::Archive {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

fn write_atomically(
    folder: &Path,
    name: &str,
    lines: impl Iterator<Item = String>,
) -> Result<PathBuf> {
    fs::create_dir_all(folder).map_err(|e| io_error(folder, e))?;
    let path = folder.join(name);
    let tmp = folder.join(format!(".{name}.tmp"));
    let write = || -> std::io::Result<()> {
        let file = File::create(&tmp)?;
        let mut gz = GzEncoder::new(std::io::BufWriter::new(file), Compression::fast());
        for line in lines {
            gz.write_all(line.as_bytes())?;
            gz.write_all(b"\n")?;
        }
        let file = gz.finish()?.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_error(&path, e)
    })?;
    Ok(path)
}

/// `<root>/<table>/<scope>/<day>` and `<root>/_deleted/<table>/<scope>/<day>` folders.
fn day_folders(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut level = vec![root.to_owned()];
    // Tables (and `_deleted`), then scopes, then days; `_deleted` adds one level.
    for depth in 0..4 {
        let mut next = Vec::new();
        for dir in level {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let entry = entry.map_err(|e| io_error(&dir, e))?;
                let path = entry.path();
                if !path.is_dir() {
                    continue;
                }
                let under_deleted = path
                    .strip_prefix(root)
                    .map(|p| p.starts_with(DELETED))
                    .unwrap_or(false);
                let day_depth = if under_deleted { 3 } else { 2 };
                if depth == day_depth {
                    out.push(path);
                } else if depth < day_depth {
                    next.push(path);
                }
            }
        }
        level = next;
    }
    out.sort();
    Ok(out)
}

/// Every file (not temporary) under `folder`, recursively.
fn files_under(folder: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let Ok(entries) = fs::read_dir(folder) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_error(folder, e))?;
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out)?;
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".ndjson.gz") && !n.starts_with('.'))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// One file to replay: a page of `table`, or deletions of `table`.
struct ReplayFile {
    path: PathBuf,
    table: Table,
    deletions: bool,
}

impl ReplayFile {
    fn sort_key(&self) -> (String, bool) {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (name, self.deletions)
    }
}

/// Rebuilds the mirror tables from the archive at `dir`, in the order the pages were fetched:
/// no request is made. Newer rows are never overwritten by older ones (the store's upsert rule),
/// so replaying into a database that already holds data only fills what is missing or older.
/// Cursors are not touched: a database filled by replay starts its next sync with full passes.
pub fn replay(store: &Store, dir: &Path) -> Result<ReplaySummary> {
    if !dir.is_dir() {
        return Err(SyncError::Archive {
            path: dir.display().to_string(),
            detail: "no archive folder here; set FT42_EXPORT_DIR (or --export-dir) to the folder the syncs wrote".to_owned(),
        });
    }
    let mut files = Vec::new();
    for &table in Table::ALL {
        for (base, deletions) in [
            (dir.join(table.as_str()), false),
            (dir.join(DELETED).join(table.as_str()), true),
        ] {
            let mut paths = Vec::new();
            files_under(&base, &mut paths)?;
            files.extend(paths.into_iter().map(|path| ReplayFile {
                path,
                table,
                deletions,
            }));
        }
    }
    files.sort_by_key(ReplayFile::sort_key);
    let mut summary = ReplaySummary::default();
    for file in files {
        match replay_file(store, &file) {
            Ok((rows, deleted)) => {
                summary.files += 1;
                summary.rows += rows;
                summary.deleted += deleted;
            }
            Err(SyncError::Store(e)) => return Err(SyncError::Store(e)),
            Err(e) => {
                tracing::warn!(file = %file.path.display(), error = %e, "archive file skipped");
                summary
                    .skipped
                    .push(format!("{}: {e}", file.path.display()));
            }
        }
    }
    tracing::info!(
        files = summary.files,
        rows = summary.rows,
        deleted = summary.deleted,
        skipped = summary.skipped.len(),
        "archive replayed"
    );
    Ok(summary)
}

fn read_lines(path: &Path) -> Result<Vec<String>> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    BufReader::new(MultiGzDecoder::new(file))
        .lines()
        .filter(|l| !matches!(l, Ok(l) if l.trim().is_empty()))
        .collect::<std::io::Result<Vec<String>>>()
        .map_err(|e| io_error(path, e))
}

fn replay_file(store: &Store, file: &ReplayFile) -> Result<(u64, u64)> {
    let lines = read_lines(&file.path)?;
    if file.deletions {
        #[derive(serde::Deserialize)]
        struct Deleted {
            id: i64,
        }
        let ids = lines
            .iter()
            .map(|l| serde_json::from_str::<Deleted>(l).map(|d| d.id))
            .collect::<std::result::Result<Vec<i64>, _>>()
            .map_err(|e| SyncError::Archive {
                path: file.path.display().to_string(),
                detail: format!("a deletion record is not {{\"id\": N}}: {e}"),
            })?;
        let marked = store.mark_deleted(file.table, &ids, Utc::now().naive_utc())?;
        return Ok((0, marked as u64));
    }
    let mapped = map_lines(file.table, &lines).map_err(|e| SyncError::Archive {
        path: file.path.display().to_string(),
        detail: e.to_string(),
    })?;
    let rows = (mapped.rows.len() + mapped.also.iter().map(Rows::len).sum::<usize>()) as u64;
    store.apply_page(ApplyPage {
        also: mapped.also,
        ..ApplyPage::rows(mapped.rows)
    })?;
    Ok((rows, 0))
}

/// Maps archived lines of `table` exactly as the sync mapped the page they came from.
fn map_lines(table: Table, lines: &[String]) -> Result<Mapped> {
    use ft_api::models as m;
    match table {
        Table::Campuses => map_as::<m::Campus>(lines, mapping::campuses),
        Table::Cursus => map_as::<m::Cursus>(lines, mapping::cursus),
        Table::Projects => map_as::<m::Project>(lines, mapping::projects),
        Table::Achievements => map_as::<m::Achievement>(lines, mapping::achievements),
        Table::Users => map_as::<m::User>(lines, mapping::users),
        Table::CampusUsers => map_as::<m::CampusUser>(lines, mapping::campus_users),
        Table::CursusUsers => map_as::<m::CursusUser>(lines, mapping::cursus_users),
        Table::ProjectsUsers => map_as::<m::ProjectsUser>(lines, mapping::projects_users),
        Table::AchievementsUsers => {
            map_as::<m::AchievementsUser>(lines, mapping::achievements_users)
        }
        Table::Locations => map_as::<m::Location>(lines, mapping::locations),
        Table::Blocs => map_as::<m::Bloc>(lines, mapping::blocs),
        Table::CoalitionsUsers => map_as::<m::CoalitionsUser>(lines, mapping::coalitions_users),
        Table::Coalitions => Err(SyncError::Invalid {
            what: "archive".to_owned(),
            detail: "coalitions are archived inside their blocs, not on their own".to_owned(),
        }),
    }
}

fn map_as<M: DeserializeOwned>(
    lines: &[String],
    map: fn(&Page<M>) -> Result<Mapped>,
) -> Result<Mapped> {
    let mut items = Vec::with_capacity(lines.len());
    let mut raw = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let value: Box<RawValue> = serde_json::from_str(line).map_err(|e| SyncError::Invalid {
            what: format!("archive line {}", i + 1),
            detail: e.to_string(),
        })?;
        let item: M = serde_json::from_str(value.get()).map_err(|e| SyncError::Invalid {
            what: format!("archive line {}", i + 1),
            detail: e.to_string(),
        })?;
        items.push(item);
        raw.push(value);
    }
    let page = Page {
        per_page: items.len() as u32,
        items,
        raw,
        page: 1,
        total: None,
        links: Default::default(),
        meta: Default::default(),
        rejected: Vec::new(),
    };
    map(&page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_removes_only_day_folders_older_than_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for day in ["2026-11-01", "2026-11-21", "2026-11-28"] {
            fs::create_dir_all(root.join("users/campus-1").join(day)).unwrap();
            fs::write(
                root.join("users/campus-1").join(day).join("a.ndjson.gz"),
                b"x",
            )
            .unwrap();
            fs::create_dir_all(root.join("_deleted/locations/campus-1").join(day)).unwrap();
        }
        let archive = Archive::new(root);
        let today = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let summary = archive.prune(7, today).unwrap();
        assert_eq!(
            summary.folders, 2,
            "one old day under users and one under _deleted"
        );
        assert_eq!(summary.files, 1);
        assert!(!root.join("users/campus-1/2026-11-01").exists());
        assert!(
            root.join("users/campus-1/2026-11-21").exists(),
            "exactly seven days old is kept"
        );
        assert!(root.join("users/campus-1/2026-11-28").exists());
        assert!(!root.join("_deleted/locations/campus-1/2026-11-01").exists());
        assert!(root.join("_deleted/locations/campus-1/2026-11-28").exists());
    }

    #[test]
    fn pages_are_written_whole_and_sort_in_write_order() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::new(dir.path());
        let raw: Vec<Box<RawValue>> = vec![
            RawValue::from_string("{\"id\":1}".to_owned()).unwrap(),
            RawValue::from_string("{\"id\":2}".to_owned()).unwrap(),
        ];
        let first = archive
            .write_page(Table::Users, "campus:1", 7, 1, &raw)
            .unwrap()
            .unwrap();
        let second = archive
            .write_page(Table::Users, "campus:1", 7, 2, &raw[..1])
            .unwrap()
            .unwrap();
        assert!(first.file_name() < second.file_name());
        assert_eq!(
            read_lines(&first).unwrap(),
            vec!["{\"id\":1}", "{\"id\":2}"]
        );
        assert_eq!(read_lines(&second).unwrap(), vec!["{\"id\":1}"]);
        assert!(
            archive
                .write_page(Table::Users, "campus:1", 7, 3, &[])
                .unwrap()
                .is_none()
        );
        let mut files = Vec::new();
        files_under(dir.path(), &mut files).unwrap();
        assert_eq!(files.len(), 2, "no temporary files left: {files:?}");
    }
}
