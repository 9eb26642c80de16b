//! Rows per table, live and marked deleted, and against the raw page archive when one exists.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use ft_store::{Store, Table};

use crate::error::IntegrityError;
use crate::finding::{Finding, Severity};

/// The check's name.
pub(crate) const NAME: &str = "counts";
/// The name of the archive comparison.
pub(crate) const EXPORTS: &str = "exports";

/// Live and deleted rows of every mirror table, as Info.
pub(crate) fn run(store: &Store) -> Result<Vec<Finding>, IntegrityError> {
    let mut findings = Vec::new();
    for &table in Table::ALL {
        let live = store.count(table, false)?;
        let all = store.count(table, true)?;
        findings.push(Finding::new(
            NAME,
            Severity::Info,
            Some(table.as_str()),
            live,
            format!("{live} live, {} marked deleted", all - live),
        ));
    }
    Ok(findings)
}

/// Distinct ids per resource in `<dir>/<resource>/**.ndjson.gz` against the ids in the store
/// (deleted rows included: the archive keeps everything ever fetched). Ids archived but not
/// stored are errors (rows lost between fetch and commit); ids stored but not archived are
/// Info (the archive started later, or was pruned).
pub(crate) fn against_exports(store: &Store, dir: &Path) -> Result<Vec<Finding>, IntegrityError> {
    if !dir.is_dir() {
        return Ok(vec![Finding::new(
            EXPORTS,
            Severity::Info,
            None,
            0,
            format!(
                "no exports folder at {}; archive comparison skipped",
                dir.display()
            ),
        )]);
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| IntegrityError::Exports { path, source }
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort();
    let mut findings = Vec::new();
    for path in entries.into_iter().filter(|p| p.is_dir()) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Ok(table) = name.parse::<Table>() else {
            findings.push(Finding::new(
                EXPORTS,
                Severity::Info,
                None,
                0,
                format!("{} is not a mirror table; skipped", path.display()),
            ));
            continue;
        };
        let archive = archived_ids(&path)?;
        let stored: BTreeSet<i64> = store.all_ids(table)?.into_iter().collect();
        let missing: Vec<i64> = archive.ids.difference(&stored).copied().collect();
        let extra = stored.difference(&archive.ids).count();
        if archive.bad_lines > 0 {
            findings.push(Finding::new(
                EXPORTS,
                Severity::Warning,
                Some(table.as_str()),
                archive.bad_lines,
                format!(
                    "{} archive lines are not JSON objects with an integer id ({} files read)",
                    archive.bad_lines, archive.files
                ),
            ));
        }
        if !missing.is_empty() {
            findings.push(
                Finding::new(
                    EXPORTS,
                    Severity::Error,
                    Some(table.as_str()),
                    missing.len() as i64,
                    format!(
                        "{} ids in the archive are not in the store ({} archived, {} stored)",
                        missing.len(),
                        archive.ids.len(),
                        stored.len()
                    ),
                )
                .with_ids(missing),
            );
        }
        findings.push(Finding::new(
            EXPORTS,
            Severity::Info,
            Some(table.as_str()),
            archive.ids.len() as i64,
            format!(
                "{} distinct ids archived in {} files, {} stored, {extra} stored but not archived",
                archive.ids.len(),
                archive.files,
                stored.len()
            ),
        ));
    }
    Ok(findings)
}

struct Archive {
    ids: BTreeSet<i64>,
    files: usize,
    bad_lines: i64,
}

/// Reads every `*.ndjson.gz` below `dir` (recursively).
fn archived_ids(dir: &Path) -> Result<Archive, IntegrityError> {
    let mut archive = Archive {
        ids: BTreeSet::new(),
        files: 0,
        bad_lines: 0,
    };
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| IntegrityError::Exports {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let path = entry
                .map_err(|source| IntegrityError::Exports {
                    path: dir.clone(),
                    source,
                })?
                .path();
            if path.is_dir() {
                pending.push(path);
            } else if path.to_string_lossy().ends_with(".ndjson.gz") {
                read_file(&path, &mut archive)?;
            }
        }
    }
    Ok(archive)
}

fn read_file(path: &Path, archive: &mut Archive) -> Result<(), IntegrityError> {
    let io = |source| IntegrityError::Exports {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    // MultiGzDecoder: an archive appended to page by page is a series of gzip members.
    let reader = BufReader::new(flate2::read::MultiGzDecoder::new(file));
    archive.files += 1;
    for line in reader.lines() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let id = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("id").and_then(serde_json::Value::as_i64));
        match id {
            Some(id) => {
                archive.ids.insert(id);
            }
            None => archive.bad_lines += 1,
        }
    }
    Ok(())
}
