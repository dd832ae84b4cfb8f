//! Lock files: opened (or created) privately, for `flock`-style locks.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::access::{Access, NotPrivate};

/// Opens the lock file at `path` for reading and writing, creating it with
/// mode 0600 if it is missing. Like [`read_private`](crate::read_private),
/// it refuses a symlink, anything but a regular file, and a file another
/// user owns or may write. Lock it with [`File::lock`] or
/// [`File::try_lock`]; the lock ends when the file is closed, or when the
/// process dies. Its content is the caller's (the token store keeps a
/// counter in one).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("device.lease");
/// let first = onesoidc_fs::open_lock_file(&path).unwrap();
/// first.lock().unwrap();
/// let second = onesoidc_fs::open_lock_file(&path).unwrap();
/// assert!(second.try_lock().is_err(), "held by the first open file");
/// drop(first);
/// assert!(second.try_lock().is_ok());
/// ```
pub fn open_lock_file(path: &Path) -> Result<File, NotPrivate> {
    let file = open_no_follow(path).map_err(|source| {
        if crate::read::is_symlink_refusal(&source, path) {
            NotPrivate::Symlink {
                path: path.to_path_buf(),
            }
        } else {
            NotPrivate::Io {
                action: "open",
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let meta = file.metadata().map_err(|source| NotPrivate::Io {
        action: "inspect",
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(NotPrivate::NotAFile {
            path: path.to_path_buf(),
        });
    }
    Access::of(&meta).check_private(path)?;
    Ok(file)
}

#[cfg(unix)]
fn open_no_follow(path: &Path) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let flags =
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::from_raw_mode(0o600))?;
    Ok(File::from(fd))
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}
