//! Reading whole files with a size limit.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::access::{Access, NotPrivate};

/// Reads `path` whole (following symlinks), refusing a file larger than
/// `limit` bytes with [`io::ErrorKind::FileTooLarge`]: by its size when it
/// has one, without reading it; otherwise after reading one byte too many.
pub fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    read_open(File::open(path)?, limit)
}

fn read_open(file: File, limit: u64) -> io::Result<Vec<u8>> {
    let too_large = |size: &dyn std::fmt::Display| {
        let most = if limit.is_multiple_of(1024) {
            format!("{} KiB", limit / 1024)
        } else {
            format!("{limit} bytes")
        };
        io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("the file is {size}; at most {most} is read"),
        )
    };
    if let Ok(meta) = file.metadata()
        && meta.len() > limit
    {
        return Err(too_large(&format_args!("{} bytes", meta.len())));
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(&"larger than that"));
    }
    Ok(bytes)
}

/// Reads a file that must be ours alone: opened without following a
/// symlink (and without blocking on a FIFO), a regular file, owned by the
/// current user and not writable by group or others, at most `limit` bytes.
/// `Ok(None)` when there is no such file.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("device.json");
/// assert!(onesoidc_fs::read_private(&path, 1024).unwrap().is_none());
/// onesoidc_fs::write_atomically(&[onesoidc_fs::NewFile::new(&path, b"{}", 0o600)]).unwrap();
/// assert_eq!(onesoidc_fs::read_private(&path, 1024).unwrap().unwrap(), b"{}");
/// ```
pub fn read_private(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, NotPrivate> {
    let io_error = |action, source| NotPrivate::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let file = match open_no_follow(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if is_symlink_refusal(&e, path) => {
            return Err(NotPrivate::Symlink {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io_error("open", e)),
    };
    let meta = file.metadata().map_err(|e| io_error("inspect", e))?;
    if !meta.is_file() {
        return Err(NotPrivate::NotAFile {
            path: path.to_path_buf(),
        });
    }
    Access::of(&meta).check_private(path)?;
    read_open(file, limit)
        .map(Some)
        .map_err(|e| io_error("read", e))
}

#[cfg(unix)]
fn open_no_follow(path: &Path) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty())?;
    Ok(File::from(fd))
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// Whether opening with `O_NOFOLLOW` failed because `path` is a symlink
/// (Linux says `ELOOP`; check the path itself to be sure).
pub(crate) fn is_symlink_refusal(error: &io::Error, path: &Path) -> bool {
    #[cfg(unix)]
    if error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        return true;
    }
    let _ = error;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}
