//! The plaintext inside a backup's age encryption: a stream of named files followed by a
//! checksum manifest.
//!
//! ```text
//! MAGIC                                   "ft42-backup v1\n"
//! 'F' name_len:u16 name  (len:u32 bytes)* 0:u32    one per file, any size, streamed
//! 'M' len:u32 manifest-json                        sizes and SHA-256 of every file
//! 'E'                                              end
//! ```
//!
//! Files are framed in chunks so a dump can be streamed in without knowing its size (no
//! plaintext temporary file for `pg_dump`). The manifest comes last because the checksums are
//! only known then. A reader recomputes every checksum and compares them with the manifest, and
//! anything missing, extra, truncated or different is an error; age's own authenticated
//! encryption already rejects a modified or truncated ciphertext, so the manifest is a second,
//! end-to-end check of what was written.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const MAGIC: &[u8] = b"ft42-backup v1\n";
const CHUNK: usize = 1 << 20;
/// Largest manifest accepted when reading (a corrupted length must not allocate gigabytes).
const MAX_MANIFEST: u32 = 64 << 20;

/// The name of the database dump of an SQLite backup (a `VACUUM INTO` copy, gzipped: SQLite
/// pages compress about five to one, `pg_dump -Fc` is compressed already).
pub const SQLITE_FILE: &str = "database.sqlite.gz";
/// The name of the database dump of a PostgreSQL backup (`pg_dump -Fc`).
pub const PG_FILE: &str = "database.pgdump";
/// Archive files are stored under this prefix, with their path relative to the archive folder.
pub const ARCHIVE_PREFIX: &str = "archive/";

/// One file in a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// `database.sqlite`, `database.pgdump` or `archive/<relative path>`.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
}

/// What a backup holds. Never a secret: the database URL is stored with its password redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version of the container (1).
    pub format: u32,
    /// The ft42 version that wrote it.
    pub ft42_version: String,
    /// When the backup was made (RFC 3339, UTC).
    pub created_at: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The database it came from, password redacted.
    pub source: String,
    /// The newest migration applied to the database.
    pub schema_version: Option<String>,
    /// How the database was copied (`VACUUM INTO` or the `pg_dump --version` line).
    pub tool: String,
    /// PostgreSQL's `server_version_num`, for PostgreSQL backups.
    pub server_version_num: Option<u32>,
    /// Whether the raw page archive is included.
    pub includes_archive: bool,
    /// Every file, in stream order.
    pub files: Vec<FileEntry>,
    /// Total bytes of all files.
    pub total_size: u64,
    /// SHA-256 over the concatenated bytes of all files in order.
    pub payload_sha256: String,
}

impl Manifest {
    /// The database file's entry.
    pub fn database(&self) -> Option<&FileEntry> {
        self.files.iter().find(|f| is_database(&f.name))
    }

    /// The archive entries.
    pub fn archive_files(&self) -> impl Iterator<Item = &FileEntry> {
        self.files
            .iter()
            .filter(|f| f.name.starts_with(ARCHIVE_PREFIX))
    }
}

fn hex(digest: impl AsRef<[u8]>) -> String {
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `name` is one a backup may hold: the database file or a relative archive path
/// without `..`, so a crafted backup cannot write outside the restore folders.
pub fn valid_name(name: &str) -> bool {
    if is_database(name) {
        return true;
    }
    let Some(rest) = name.strip_prefix(ARCHIVE_PREFIX) else {
        return false;
    };
    !rest.is_empty()
        && !rest.starts_with('/')
        && !rest.contains('\\')
        && !rest.contains('\0')
        && rest
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// Whether `name` is the database file of a backup.
pub fn is_database(name: &str) -> bool {
    name == SQLITE_FILE || name == PG_FILE
}

/// Writes the container into `out` (the age encryptor).
pub struct Writer<W: Write> {
    out: W,
    files: Vec<FileEntry>,
    payload: Sha256,
    total: u64,
    buf: Vec<u8>,
}

impl<W: Write> Writer<W> {
    /// Starts a container.
    pub fn new(mut out: W) -> io::Result<Writer<W>> {
        out.write_all(MAGIC)?;
        Ok(Writer {
            out,
            files: Vec::new(),
            payload: Sha256::new(),
            total: 0,
            buf: vec![0; CHUNK],
        })
    }

    /// Copies all of `data` into the container as the file `name`; returns its entry.
    pub fn add(&mut self, name: &str, data: &mut dyn Read) -> io::Result<FileEntry> {
        assert!(valid_name(name), "invalid backup entry name {name:?}");
        let len = u16::try_from(name.len())
            .map_err(|_| io::Error::other(format!("file name too long: {name}")))?;
        self.out.write_all(b"F")?;
        self.out.write_all(&len.to_be_bytes())?;
        self.out.write_all(name.as_bytes())?;
        let mut hash = Sha256::new();
        let mut size = 0u64;
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let chunk = &self.buf[..n];
            self.out.write_all(&(n as u32).to_be_bytes())?;
            self.out.write_all(chunk)?;
            hash.update(chunk);
            self.payload.update(chunk);
            size += n as u64;
        }
        self.out.write_all(&0u32.to_be_bytes())?;
        self.total += size;
        let entry = FileEntry {
            name: name.to_owned(),
            size,
            sha256: hex(hash.finalize()),
        };
        self.files.push(entry.clone());
        Ok(entry)
    }

    /// Writes the manifest (with the checksums filled in) and the end mark; returns the
    /// manifest and the inner writer, which the caller still has to finish.
    pub fn finish(mut self, mut manifest: Manifest) -> io::Result<(Manifest, W)> {
        manifest.files = std::mem::take(&mut self.files);
        manifest.total_size = self.total;
        manifest.payload_sha256 = hex(self.payload.finalize());
        let json = serde_json::to_vec(&manifest).map_err(io::Error::other)?;
        self.out.write_all(b"M")?;
        self.out.write_all(&(json.len() as u32).to_be_bytes())?;
        self.out.write_all(&json)?;
        self.out.write_all(b"E")?;
        self.out.flush()?;
        Ok((manifest, self.out))
    }
}

/// What is wrong with a backup's content.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Reading failed: a truncated file, a damaged ciphertext (age's authentication) or I/O.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The content is not what ft42 writes, or does not match its manifest.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> FormatError {
    FormatError::Invalid(message.into())
}

/// Reads a container from `input`, handing each file's bytes to the writer `sink(name)`
/// returns, and checks every size and checksum against the manifest at the end. Returns the
/// manifest only when everything matches: callers must treat what the sinks received as
/// untrusted until then.
pub fn read(
    input: &mut dyn Read,
    sink: &mut dyn FnMut(&str) -> io::Result<Box<dyn Write>>,
) -> Result<Manifest, FormatError> {
    let mut magic = [0u8; MAGIC.len()];
    input.read_exact(&mut magic)?;
    if magic != MAGIC {
        return Err(invalid("not an ft42 backup (unknown content header)"));
    }
    let mut seen: Vec<FileEntry> = Vec::new();
    let mut payload = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let mut tag = [0u8; 1];
        input.read_exact(&mut tag)?;
        match tag[0] {
            b'F' => {
                let mut len = [0u8; 2];
                input.read_exact(&mut len)?;
                let mut name = vec![0u8; usize::from(u16::from_be_bytes(len))];
                input.read_exact(&mut name)?;
                let name = String::from_utf8(name)
                    .map_err(|_| invalid("a file name in the backup is not UTF-8"))?;
                if !valid_name(&name) || seen.iter().any(|f| f.name == name) {
                    return Err(invalid(format!("unexpected file {name:?} in the backup")));
                }
                let mut out = sink(&name)?;
                let mut hash = Sha256::new();
                let mut size = 0u64;
                loop {
                    let mut n = [0u8; 4];
                    input.read_exact(&mut n)?;
                    let n = u32::from_be_bytes(n) as usize;
                    if n == 0 {
                        break;
                    }
                    if n > CHUNK {
                        return Err(invalid("a chunk is larger than ft42 writes"));
                    }
                    input.read_exact(&mut buf[..n])?;
                    out.write_all(&buf[..n])?;
                    hash.update(&buf[..n]);
                    payload.update(&buf[..n]);
                    size += n as u64;
                }
                out.flush()?;
                seen.push(FileEntry {
                    name,
                    size,
                    sha256: hex(hash.finalize()),
                });
            }
            b'M' => {
                let mut len = [0u8; 4];
                input.read_exact(&mut len)?;
                let len = u32::from_be_bytes(len);
                if len > MAX_MANIFEST {
                    return Err(invalid("the manifest is larger than ft42 writes"));
                }
                let mut json = vec![0u8; len as usize];
                input.read_exact(&mut json)?;
                let mut end = [0u8; 1];
                input.read_exact(&mut end)?;
                if end[0] != b'E' {
                    return Err(invalid("no end mark after the manifest"));
                }
                let manifest: Manifest = serde_json::from_slice(&json)
                    .map_err(|e| invalid(format!("the manifest is unreadable: {e}")))?;
                if manifest.format != 1 {
                    return Err(invalid(format!(
                        "backup format {} is newer than this ft42 understands; upgrade ft42",
                        manifest.format
                    )));
                }
                if manifest.files != seen {
                    let names = |files: &[FileEntry]| {
                        files.iter().map(|f| f.name.clone()).collect::<Vec<_>>()
                    };
                    let differ: Vec<String> = manifest
                        .files
                        .iter()
                        .filter(|f| !seen.contains(f))
                        .map(|f| f.name.clone())
                        .collect();
                    return Err(invalid(format!(
                        "checksum mismatch: the content does not match the manifest \
                         (differing: {}; manifest lists {} files, found {})",
                        differ.join(", "),
                        names(&manifest.files).len(),
                        seen.len()
                    )));
                }
                let total: u64 = seen.iter().map(|f| f.size).sum();
                if manifest.total_size != total
                    || manifest.payload_sha256 != hex(payload.finalize())
                {
                    return Err(invalid("checksum mismatch over the whole payload"));
                }
                if manifest.database().is_none() {
                    return Err(invalid("the backup holds no database"));
                }
                return Ok(manifest);
            }
            other => {
                return Err(invalid(format!(
                    "unexpected record {other:#04x} in the backup"
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: 1,
            ft42_version: "0.1.0".into(),
            created_at: "2026-11-28T04:30:00Z".into(),
            backend: "sqlite".into(),
            source: "sqlite://x.db".into(),
            schema_version: Some("1".into()),
            tool: "VACUUM INTO".into(),
            server_version_num: None,
            includes_archive: true,
            files: vec![],
            total_size: 0,
            payload_sha256: String::new(),
        }
    }

    fn container() -> (Vec<u8>, Manifest) {
        let mut w = Writer::new(Vec::new()).unwrap();
        let big = vec![7u8; CHUNK + 10];
        w.add(SQLITE_FILE, &mut big.as_slice()).unwrap();
        w.add("archive/users/p1.ndjson.gz", &mut &b"abc"[..])
            .unwrap();
        let (m, bytes) = w.finish(manifest()).unwrap();
        (bytes, m)
    }

    /// Files read back: name and bytes.
    type Files = Vec<(String, Vec<u8>)>;
    type Shared = std::rc::Rc<std::cell::RefCell<Files>>;

    fn read_all(bytes: &[u8]) -> Result<(Manifest, Files), FormatError> {
        let got: Shared = Default::default();
        struct Sink(Shared);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0
                    .borrow_mut()
                    .last_mut()
                    .unwrap()
                    .1
                    .extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let g = got.clone();
        let m = read(&mut &bytes[..], &mut |name| {
            g.borrow_mut().push((name.to_owned(), Vec::new()));
            Ok(Box::new(Sink(g.clone())))
        })?;
        let files = got.borrow().clone();
        Ok((m, files))
    }

    #[test]
    fn round_trip_keeps_every_byte_and_checksum() {
        let (bytes, written) = container();
        assert_eq!(written.files.len(), 2);
        assert_eq!(written.total_size, (CHUNK + 13) as u64);
        let (m, files) = read_all(&bytes).unwrap();
        assert_eq!(m, written);
        assert_eq!(files[0].1.len(), CHUNK + 10);
        assert_eq!(
            files[1],
            ("archive/users/p1.ndjson.gz".into(), b"abc".to_vec())
        );
    }

    #[test]
    fn any_flipped_payload_byte_or_truncation_is_rejected() {
        let (bytes, _) = container();
        // A byte inside the first file's data.
        let mut bad = bytes.clone();
        bad[MAGIC.len() + 1 + 2 + SQLITE_FILE.len() + 4 + 100] ^= 1;
        let err = read_all(&bad).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        for cut in [10, bytes.len() / 2, bytes.len() - 1] {
            assert!(read_all(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn names_that_escape_the_restore_folders_are_refused() {
        for ok in [SQLITE_FILE, PG_FILE, "archive/a/b.ndjson.gz"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "archive/../etc/passwd",
            "archive//x",
            "archive/",
            "/etc/passwd",
            "archive/a/./b",
            "other",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
