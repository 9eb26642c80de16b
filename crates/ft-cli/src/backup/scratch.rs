//! Private scratch folders and partial files that must not outlive the process.
//!
//! Each one is registered while it exists; [`remove_all`] deletes every registered path, so a
//! SIGINT or SIGTERM during a backup or restore (which ends the process without running
//! destructors) leaves no plaintext copy and no partial backup behind. Dropping one removes
//! it as usual. Names start with [`PREFIX`], so the next backup can sweep the leftovers of a
//! process killed with SIGKILL.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Every scratch name starts with this (hidden, and recognisable for sweeping).
pub const PREFIX: &str = ".ft42-scratch-";

static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn register(path: &Path) {
    if let Ok(mut live) = LIVE.lock() {
        live.push(path.to_owned());
    }
}

fn unregister(path: &Path) {
    if let Ok(mut live) = LIVE.lock() {
        live.retain(|p| p != path);
    }
}

/// Deletes every live scratch folder and file (called on SIGINT/SIGTERM).
pub fn remove_all() {
    let paths = match LIVE.lock() {
        Ok(mut live) => std::mem::take(&mut *live),
        Err(_) => return,
    };
    for path in paths {
        let _ = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
    }
}

/// A private (0700) folder, removed with everything in it when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl ScratchDir {
    /// Creates one in `parent`.
    pub fn new_in(parent: &Path) -> io::Result<ScratchDir> {
        let mut builder = tempfile::Builder::new();
        builder.prefix(PREFIX);
        // Private: the folder may hold a plaintext copy of the database.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let dir = builder.tempdir_in(parent)?;
        let path = dir.path().to_owned();
        register(&path);
        Ok(ScratchDir {
            dir: Some(dir),
            path,
        })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        unregister(&self.path);
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// A hidden file (mode 0600) that becomes a backup with [`ScratchFile::finish`], or is deleted
/// when dropped.
#[derive(Debug)]
pub struct ScratchFile {
    file: Option<tempfile::NamedTempFile>,
    path: PathBuf,
}

impl ScratchFile {
    /// Creates one in `dir`.
    pub fn new_in(dir: &Path) -> io::Result<ScratchFile> {
        let file = tempfile::Builder::new()
            .prefix(PREFIX)
            .suffix(".partial")
            .tempfile_in(dir)?;
        let path = file.path().to_owned();
        register(&path);
        Ok(ScratchFile {
            file: Some(file),
            path,
        })
    }

    /// The open file.
    pub fn file_mut(&mut self) -> &mut fs::File {
        self.file
            .as_mut()
            .expect("the file lives until finish")
            .as_file_mut()
    }

    /// Syncs the file and renames it to `target` (never replacing an existing file); returns
    /// its size.
    pub fn finish(mut self, target: &Path) -> io::Result<u64> {
        let file = self.file.take().expect("finish is called once");
        file.as_file().sync_all()?;
        let size = file.as_file().metadata()?.len();
        let result = file.persist_noclobber(target);
        unregister(&self.path);
        match result {
            Ok(_) => Ok(size),
            Err(e) => {
                let _ = fs::remove_file(&self.path);
                Err(e.error)
            }
        }
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        unregister(&self.path);
        // Dropping the NamedTempFile deletes it.
        self.file.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`remove_all`] is process-wide: these tests must not run at the same time.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn scratch_is_private_and_removed_on_drop_or_signal() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let parent = tempfile::tempdir().unwrap();
        let a = ScratchDir::new_in(parent.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(a.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let a_path = a.path().to_owned();
        drop(a);
        assert!(!a_path.exists());

        let b = ScratchDir::new_in(parent.path()).unwrap();
        fs::write(b.path().join("plain.db"), b"secret rows").unwrap();
        let f = ScratchFile::new_in(parent.path()).unwrap();
        let (b_path, f_path) = (b.path().to_owned(), f.path.clone());
        remove_all();
        assert!(!b_path.exists() && !f_path.exists());
        // Dropping after a signal cleanup is harmless.
        drop(b);
        drop(f);
        assert_eq!(fs::read_dir(parent.path()).unwrap().count(), 0);
    }

    #[test]
    fn finish_renames_and_never_overwrites() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let mut f = ScratchFile::new_in(dir.path()).unwrap();
        std::io::Write::write_all(f.file_mut(), b"data").unwrap();
        let target = dir.path().join("b.age");
        assert_eq!(f.finish(&target).unwrap(), 4);
        let f = ScratchFile::new_in(dir.path()).unwrap();
        assert!(f.finish(&target).is_err());
        assert_eq!(fs::read(&target).unwrap(), b"data");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
