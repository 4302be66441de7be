//! Files that hold secrets (the server's signing key, the QUIC private key,
//! the command line's tokens): written in one place, owner-only from the
//! first byte, and refused when other users can read them.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt, PermissionsExt};

/// The mode of every secret file: read and write for its owner only.
pub(crate) const SECRET_MODE: u32 = 0o600;

/// The mode of a directory created to hold secrets: its owner's only.
pub(crate) const PRIVATE_DIR_MODE: u32 = 0o700;

/// The permission bits that let other users (group or others) at a file.
const OTHERS: u32 = 0o077;

/// Why a secret file could not be written or may not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The secret file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Users other than the owner may read or write the file.
    #[error(
        "{path} holds a secret but its mode is {mode:03o}: other users on this machine can read or change it"
    )]
    Exposed {
        /// The secret file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

impl SecretFileError {
    /// The command that makes the file private again, for an exposed file.
    pub fn chmod_hint(&self) -> Option<String> {
        match self {
            Self::Exposed { path, .. } => Some(format!(
                "make it private with `chmod 600 {}` (and consider replacing the secret: \
                 others may have read it)",
                path.display()
            )),
            Self::Io { .. } => None,
        }
    }
}

/// Writes `bytes` as file `name` in `dir`, atomically and durably, with
/// mode 0600 from the moment the file exists: a new temporary file is
/// created owner-only, written and fsynced, renamed over `name`, and the
/// directory is fsynced. `shown` is the directory's path, for errors.
pub(crate) fn write_secret(
    dir: &Dir,
    shown: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<(), SecretFileError> {
    let temporary = format!(".{name}.tmp");
    let io = |file: &str| {
        let path = shown.join(file);
        move |source| SecretFileError::Io { path, source }
    };
    // A temporary file left by a crash may have any mode; start afresh.
    match dir.remove_file(&temporary) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&temporary)(e)),
    }
    let mut file = dir
        .open_with(
            &temporary,
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(SECRET_MODE),
        )
        .map_err(io(&temporary))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(&temporary))?;
    drop(file);
    dir.rename(&temporary, dir, name).map_err(io(name))?;
    dir.open(".").and_then(|d| d.sync_all()).map_err(io("."))
}

/// Creates directory `path` and any missing parents with mode 0700, as the
/// XDG base directory specification asks of the directories it names:
/// directories that hold secrets are the user's only. Directories that
/// already exist keep their mode.
pub fn create_private_dir_all(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(path)
}

/// Creates directory `path` (and missing parents) and gives it mode 0700
/// even if it already existed wider: for directories the server alone
/// reads, such as its compiled-component cache.
pub(crate) fn make_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE_DIR_MODE))
}

/// [`write_secret`] for a file named by its path; its directory must exist.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> Result<(), SecretFileError> {
    let (dir, parent, name) = open_parent(path)?;
    write_secret(&dir, &parent, &name, bytes)
}

/// Fails with [`SecretFileError::Exposed`] if file `name` in `dir` can be
/// read or written by anyone but its owner. `shown` is the directory's path,
/// for errors.
pub(crate) fn check_secret(dir: &Dir, shown: &Path, name: &str) -> Result<(), SecretFileError> {
    let path = shown.join(name);
    let mode = dir
        .metadata(name)
        .map_err(|source| SecretFileError::Io {
            path: path.clone(),
            source,
        })?
        .permissions()
        .mode();
    if mode & OTHERS != 0 {
        return Err(SecretFileError::Exposed {
            path,
            mode: mode & 0o777,
        });
    }
    Ok(())
}

/// [`check_secret`] for a file named by its path.
pub fn check_secret_file(path: &Path) -> Result<(), SecretFileError> {
    let (dir, parent, name) = open_parent(path)?;
    check_secret(&dir, &parent, &name)
}

/// A file's directory (`.` for a bare name), opened, with its path, and the file's name.
fn open_parent(path: &Path) -> Result<(Dir, PathBuf, String), SecretFileError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| SecretFileError::Io {
            path: path.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a file name in UTF-8",
            ),
        })?;
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let dir = Dir::open_ambient_dir(&parent, ambient_authority()).map_err(|source| {
        SecretFileError::Io {
            path: parent.clone(),
            source,
        }
    })?;
    Ok((dir, parent, name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("worldline-secret-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    // #9 item 3
    #[test]
    fn secrets_are_written_owner_only_even_over_an_open_file() {
        let dir = temp_dir("write");
        let path = dir.join("key");
        std::fs::write(&path, b"old").unwrap();
        std::fs::write(dir.join(".key.tmp"), b"stale").unwrap();
        std::fs::set_permissions(
            dir.join(".key.tmp"),
            std::os::unix::fs::PermissionsExt::from_mode(0o666),
        )
        .unwrap();
        write_secret_file(&path, b"new secret").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new secret");
        assert_eq!(mode(&path), 0o600);
        assert!(!dir.join(".key.tmp").exists());
        check_secret_file(&path).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    // #9 item 3
    #[test]
    fn a_secret_others_can_read_is_refused_with_a_chmod_hint() {
        let dir = temp_dir("check");
        let path = dir.join("key");
        write_secret_file(&path, b"secret").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let err = check_secret_file(&path).unwrap_err();
        assert!(err.to_string().contains("644"), "{err}");
        assert!(
            err.chmod_hint()
                .unwrap()
                .contains(&format!("chmod 600 {}", path.display()))
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
