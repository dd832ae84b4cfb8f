//! Who may read and write a file or directory, and the checks that refuse
//! one that is not ours alone.

use std::fs::Metadata;
use std::io;
use std::path::{Path, PathBuf};

/// Who may read and write a file, from its metadata (on Unix; elsewhere
/// every check passes).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let access = onesoidc_fs::Access::of(&std::fs::metadata(dir.path()).unwrap());
/// assert!(access.owned_by_current_user());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// The permission bits (`0o777` part of the mode).
    pub mode: u32,
    /// The owner's user id.
    pub owner: u32,
    /// The effective user id of this process.
    pub current_user: u32,
}

impl Access {
    /// The access of a file or directory with `metadata`.
    #[cfg(unix)]
    pub fn of(metadata: &Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Access {
            mode: metadata.mode() & 0o777,
            owner: metadata.uid(),
            current_user: rustix::process::geteuid().as_raw(),
        }
    }

    /// The access of a file or directory with `metadata`.
    #[cfg(not(unix))]
    pub fn of(_metadata: &Metadata) -> Self {
        Access {
            mode: 0o600,
            owner: 0,
            current_user: 0,
        }
    }

    /// Whether group or others may read it.
    pub fn readable_by_others(&self) -> bool {
        self.mode & 0o044 != 0
    }

    /// Whether group or others may write it.
    pub fn writable_by_others(&self) -> bool {
        self.mode & 0o022 != 0
    }

    /// Whether the current user owns it.
    pub fn owned_by_current_user(&self) -> bool {
        self.owner == self.current_user
    }

    /// `Ok` when it is owned by the current user and nobody else may write
    /// it; otherwise why not, naming `path` and the command that fixes it.
    pub fn check_private(&self, path: &Path) -> Result<(), NotPrivate> {
        if !self.owned_by_current_user() {
            return Err(NotPrivate::OtherOwner {
                path: path.to_path_buf(),
                owner: self.owner,
                current_user: self.current_user,
            });
        }
        if self.writable_by_others() {
            return Err(NotPrivate::WritableByOthers {
                path: path.to_path_buf(),
                mode: self.mode,
            });
        }
        Ok(())
    }
}

/// A file or directory that is not ours alone, so what it holds cannot be
/// trusted (another user could have put tokens or keys there).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotPrivate {
    /// Another user owns it.
    #[error(
        "{} belongs to user id {owner}, not to this user ({current_user}); remove it or run as its owner (chown {current_user} {})",
        path.display(), path.display()
    )]
    OtherOwner {
        /// The file or directory.
        path: PathBuf,
        /// Its owner's user id.
        owner: u32,
        /// This process's effective user id.
        current_user: u32,
    },
    /// Group or others may write it.
    #[error(
        "{} is writable by other users (mode {mode:04o}); run `chmod go-w {}`",
        path.display(), path.display()
    )]
    WritableByOthers {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It is a symbolic link, which could point anywhere.
    #[error(
        "{} is a symbolic link; refusing to follow it (replace it with the file itself)",
        path.display()
    )]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// It is not a regular file (a directory, a device, a FIFO).
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// It is not a directory.
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// Looking at it, reading or creating it failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done: `read`, `create directory`, ...
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// Creates `dir` and its missing parents; a directory this creates gets
/// mode 0700. An existing `dir` must be a directory (not a symlink) owned by
/// the current user and not writable by group or others.
///
/// ```
/// let base = tempfile::tempdir().unwrap();
/// let dir = base.path().join("tokens");
/// onesoidc_fs::create_private_dir(&dir).unwrap();
/// # #[cfg(unix)] {
/// use std::os::unix::fs::PermissionsExt;
/// assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
/// # }
/// onesoidc_fs::create_private_dir(&dir).unwrap(); // already there: checked
/// ```
pub fn create_private_dir(dir: &Path) -> Result<(), NotPrivate> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| NotPrivate::Io {
        action: "create directory",
        path: dir.to_path_buf(),
        source,
    })?;
    check_private_dir(dir).map(drop)
}

/// Checks an existing `dir` the way [`create_private_dir`] does, without
/// creating it: `Ok(false)` when there is nothing at `dir`.
///
/// ```
/// let base = tempfile::tempdir().unwrap();
/// assert!(!onesoidc_fs::check_private_dir(&base.path().join("absent")).unwrap());
/// onesoidc_fs::create_private_dir(&base.path().join("tokens")).unwrap();
/// assert!(onesoidc_fs::check_private_dir(&base.path().join("tokens")).unwrap());
/// ```
pub fn check_private_dir(dir: &Path) -> Result<bool, NotPrivate> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(NotPrivate::Io {
                action: "inspect",
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    if meta.file_type().is_symlink() {
        return Err(NotPrivate::Symlink {
            path: dir.to_path_buf(),
        });
    }
    if !meta.is_dir() {
        return Err(NotPrivate::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    Access::of(&meta).check_private(dir).map(|()| true)
}
