//! The age keys: recipients or a passphrase to encrypt with, an identity or the passphrase to
//! decrypt with. Key material comes only from settings that name files or public keys, never
//! from flags, and never appears in messages.

use std::path::Path;
use std::str::FromStr;

use age::secrecy::SecretString;

use crate::config::BackupSettings;
use crate::exit::{Classified, Exit};

/// How a backup is encrypted.
pub enum Encryption {
    /// To these age public keys (`FT42_BACKUP_RECIPIENT`).
    Recipients(Vec<age::x25519::Recipient>),
    /// With the passphrase in `FT42_BACKUP_PASSPHRASE_FILE`.
    Passphrase(SecretString),
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Encryption::Recipients(r) => write!(f, "Recipients({} keys)", r.len()),
            Encryption::Passphrase(_) => f.write_str("Passphrase([redacted])"),
        }
    }
}

fn usage(message: impl Into<String>) -> anyhow::Error {
    Classified::error(Exit::Usage, message)
}

/// Reads a passphrase file: the whole file without its trailing newline.
fn read_passphrase(path: &Path) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage(format!(
            "cannot read the backup passphrase from {} (FT42_BACKUP_PASSPHRASE_FILE): {e}",
            path.display()
        ))
    })?;
    let passphrase = text.trim_end_matches(['\n', '\r']);
    if passphrase.is_empty() {
        return Err(usage(format!(
            "the backup passphrase file {} (FT42_BACKUP_PASSPHRASE_FILE) is empty",
            path.display()
        )));
    }
    Ok(SecretString::from(passphrase.to_owned()))
}

/// Parses `FT42_BACKUP_RECIPIENT`: public keys (`age1...`, separated by commas or spaces), or
/// the path of a file with one key per line (`#` comments allowed).
fn recipients(value: &str) -> anyhow::Result<Vec<age::x25519::Recipient>> {
    let (text, from) = if value.trim_start().starts_with("age1") {
        (value.to_owned(), "FT42_BACKUP_RECIPIENT".to_owned())
    } else {
        let text = std::fs::read_to_string(value).map_err(|e| {
            usage(format!(
                "FT42_BACKUP_RECIPIENT is neither an age public key (age1...) nor a readable \
                 file: {value}: {e}"
            ))
        })?;
        (text, format!("{value} (FT42_BACKUP_RECIPIENT)"))
    };
    let keys: Vec<&str> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .flat_map(|l| l.split([',', ' ', '\t']))
        .filter(|k| !k.is_empty())
        .collect();
    if keys.is_empty() {
        return Err(usage(format!("no age public key in {from}")));
    }
    keys.iter()
        .map(|k| {
            age::x25519::Recipient::from_str(k).map_err(|e| {
                usage(format!(
                    "{from}: {k:?} is not an age public key ({e}); create a key pair with \
                     `ft42 backup keygen FILE`"
                ))
            })
        })
        .collect()
}

impl Encryption {
    /// The encryption the settings ask for. Exactly one of `FT42_BACKUP_RECIPIENT` and
    /// `FT42_BACKUP_PASSPHRASE_FILE` must be set (exit 2 otherwise): backups are never written
    /// in the clear.
    pub fn from_settings(settings: &BackupSettings) -> anyhow::Result<Encryption> {
        match (&settings.recipient, &settings.passphrase_file) {
            (Some(_), Some(_)) => Err(usage(
                "both FT42_BACKUP_RECIPIENT and FT42_BACKUP_PASSPHRASE_FILE are set; keep only \
                 one (a public key lets the backup host encrypt without being able to decrypt)",
            )),
            (Some(r), None) => Ok(Encryption::Recipients(recipients(r)?)),
            (None, Some(p)) => Ok(Encryption::Passphrase(read_passphrase(p)?)),
            (None, None) => Err(usage(
                "backups are always encrypted: set FT42_BACKUP_RECIPIENT to an age public key \
                 (create one with `ft42 backup keygen FILE`) or FT42_BACKUP_PASSPHRASE_FILE to \
                 a file holding a passphrase",
            )),
        }
    }

    /// The age encryptor.
    pub fn encryptor(&self) -> anyhow::Result<age::Encryptor> {
        match self {
            Encryption::Recipients(keys) => Ok(age::Encryptor::with_recipients(
                keys.iter().map(|k| k as &dyn age::Recipient),
            )?),
            Encryption::Passphrase(p) => Ok(age::Encryptor::with_user_passphrase(p.clone())),
        }
    }

    /// `"to an age public key"` or `"with a passphrase"`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Encryption::Recipients(_) => "to an age public key",
            Encryption::Passphrase(_) => "with a passphrase",
        }
    }
}

/// The identities that can decrypt a file whose header is a passphrase one (`scrypt`) or not.
pub fn identities(
    settings: &BackupSettings,
    scrypt: bool,
) -> anyhow::Result<Vec<Box<dyn age::Identity + Send + Sync>>> {
    if scrypt {
        let Some(path) = &settings.passphrase_file else {
            return Err(usage(
                "this backup is encrypted with a passphrase: set FT42_BACKUP_PASSPHRASE_FILE to \
                 the file holding it",
            ));
        };
        return Ok(vec![Box::new(age::scrypt::Identity::new(read_passphrase(
            path,
        )?))]);
    }
    let Some(path) = &settings.identity_file else {
        return Err(usage(
            "this backup is encrypted to an age public key: set FT42_BACKUP_IDENTITY_FILE to the \
             file holding its secret key (AGE-SECRET-KEY-1...)",
        ));
    };
    let unreadable = |e: &dyn std::fmt::Display| {
        usage(format!(
            "cannot read the age identity file {} (FT42_BACKUP_IDENTITY_FILE): {e}",
            path.display()
        ))
    };
    let file = age::IdentityFile::from_file(path.to_string_lossy().into_owned())
        .map_err(|e| unreadable(&e))?;
    let identities = file.into_identities().map_err(|e| unreadable(&e))?;
    if identities.is_empty() {
        return Err(unreadable(&"no AGE-SECRET-KEY-1 line in the file"));
    }
    Ok(identities)
}

/// Writes a new age identity to `path` (mode 0600, refusing to overwrite) and returns its public
/// key, for `ft42 backup keygen`.
pub fn keygen(path: &Path) -> anyhow::Result<String> {
    use age::secrecy::ExposeSecret;
    use std::io::Write;
    let identity = age::x25519::Identity::generate();
    let public = identity.to_public().to_string();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| {
        usage(format!(
            "cannot create {} (an existing key is never overwritten): {e}",
            path.display()
        ))
    })?;
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    writeln!(
        file,
        "# created: {created} by ft42 backup keygen\n# public key: {public}\n{}",
        identity.to_string().expose_secret()
    )?;
    file.sync_all()?;
    Ok(public)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_come_from_keys_or_a_file() {
        let a = age::x25519::Identity::generate().to_public().to_string();
        let b = age::x25519::Identity::generate().to_public().to_string();
        assert_eq!(recipients(&format!("{a}, {b}")).unwrap().len(), 2);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.txt");
        std::fs::write(&file, format!("# backup key\n{a}\n\n{b} # second\n")).unwrap();
        assert_eq!(recipients(file.to_str().unwrap()).unwrap().len(), 2);
        assert!(recipients("age1notakey").is_err());
        assert!(recipients("/nonexistent/r.txt").is_err());
    }

    #[test]
    fn no_key_at_all_is_a_usage_error() {
        let err = Encryption::from_settings(&BackupSettings::default()).unwrap_err();
        assert_eq!(crate::exit::classify(&err), Exit::Usage);
        assert!(err.to_string().contains("FT42_BACKUP_RECIPIENT"), "{err}");
    }

    #[test]
    fn keygen_writes_a_private_identity_that_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backup.key");
        let public = keygen(&path).unwrap();
        assert!(public.starts_with("age1"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let settings = BackupSettings {
            identity_file: Some(path.clone()),
            ..BackupSettings::default()
        };
        assert_eq!(identities(&settings, false).unwrap().len(), 1);
        assert!(keygen(&path).is_err());
    }
}
