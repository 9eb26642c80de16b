//! One writer process per SQLite database: an exclusive lock on a file beside the database.
//!
//! SQLite serialises transactions, but its queue table is not built for several processes
//! claiming tasks at once (no `SKIP LOCKED`), and a second process would also spend the same
//! application's budget a second time. So a command that syncs (sync, worker, daemon) holds
//! [`WriterLock`] on `<database>.lock` for as long as it runs; a second one gets
//! [`StoreError::Locked`] naming the holder, or waits its turn. The lock is an OS file lock
//! (`flock`), so it is released when the process ends, however it ends: a killed process never
//! leaves a stale lock behind. PostgreSQL needs no such lock: any number of workers share its
//! queue (see `tasks.rs`) and its rate ledger (`rate_ledger.rs`).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::StoreError;
use crate::store::Store;
use crate::url::DatabaseUrl;

/// What to do when another process holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Fail at once with [`StoreError::Locked`].
    Fail,
    /// Wait up to this long for the other process to finish, then fail.
    Wait(Duration),
}

/// Proof that this process is the only writer of an SQLite database; released on drop (or when
/// the process ends).
#[derive(Debug)]
pub struct WriterLock {
    path: PathBuf,
    _file: File,
}

impl WriterLock {
    /// The lock file (`<database>.lock`).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// How often a waiting process tries the lock again.
const POLL: Duration = Duration::from_millis(100);

impl Store {
    /// Takes the one-writer lock of an SQLite database (`Some`), or does nothing on PostgreSQL
    /// (`None`: several workers are supported there). `holder` describes this process in the
    /// lock file (for example `ft42 worker`), so a refused process can say who holds it.
    pub fn writer_lock(
        &self,
        wait: LockWait,
        holder: &str,
    ) -> Result<Option<WriterLock>, StoreError> {
        // The stored URL is redacted, which leaves an SQLite path as it was.
        let path = match DatabaseUrl::parse(&self.url)?.sqlite_path() {
            None => return Ok(None),
            Some(path) => PathBuf::from(format!("{}.lock", path.display())),
        };
        let io_error = |e: std::io::Error| StoreError::LockFile {
            path: path.clone(),
            message: e.to_string(),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let limit = match wait {
                        LockWait::Fail => Duration::ZERO,
                        LockWait::Wait(d) => d,
                    };
                    if started.elapsed() >= limit {
                        let mut text = String::new();
                        let _ = file.read_to_string(&mut text);
                        return Err(StoreError::Locked {
                            path,
                            holder: text.trim().to_owned(),
                            waited: started.elapsed(),
                        });
                    }
                    std::thread::sleep(POLL.min(limit.saturating_sub(started.elapsed())));
                }
                Err(TryLockError::Error(e)) => return Err(io_error(e)),
            }
        }
        // Who holds it, for the next process that is refused. Best effort: the lock itself is
        // what matters.
        let host = std::env::var("HOSTNAME").unwrap_or_default();
        let note = format!(
            "{holder} (pid {} on {}, since {} UTC)\n",
            std::process::id(),
            if host.is_empty() { "this host" } else { &host },
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S")
        );
        let _ = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(note.as_bytes()))
            .and_then(|()| file.flush());
        Ok(Some(WriterLock { path, _file: file }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TestDb;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_name() {
        let db = TestDb::sqlite();
        let first = db
            .store()
            .writer_lock(LockWait::Fail, "ft42 worker")
            .unwrap()
            .expect("SQLite takes the lock");
        // flock locks belong to the open file description, so a second open in the same
        // process conflicts just like another process would.
        let other = Store::open(db.url()).unwrap();
        let err = other.writer_lock(LockWait::Fail, "ft42 sync").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Locked { .. }), "{msg}");
        assert!(
            msg.contains("ft42 worker") && msg.contains(&std::process::id().to_string()),
            "{msg}"
        );
        let waited = other
            .writer_lock(LockWait::Wait(Duration::from_millis(300)), "ft42 sync")
            .unwrap_err();
        assert!(
            matches!(waited, StoreError::Locked { waited, .. } if waited >= Duration::from_millis(300))
        );
        drop(first);
        assert!(
            other
                .writer_lock(LockWait::Fail, "ft42 sync")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn postgres_needs_no_lock() {
        let db = TestDb::postgres();
        assert!(
            db.store()
                .writer_lock(LockWait::Fail, "x")
                .unwrap()
                .is_none()
        );
    }
}
