//! Replacing files all or nothing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file for [`write_atomically`]: where it goes, what it holds, and its
/// permission bits (set when it is created, so a secret is never readable
/// by others, even briefly).
#[derive(Clone, Copy)]
pub struct NewFile<'a> {
    /// Where the file goes.
    pub path: &'a Path,
    /// Its contents.
    pub bytes: &'a [u8],
    /// Its permission bits on Unix, e.g. `0o600`.
    pub mode: u32,
}

impl std::fmt::Debug for NewFile<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the bytes: they may be a key or a token.
        f.debug_struct("NewFile")
            .field("path", &self.path)
            .field("len", &self.bytes.len())
            .field("mode", &format_args!("{:04o}", self.mode))
            .finish()
    }
}

impl<'a> NewFile<'a> {
    /// `bytes` for `path`, with permission bits `mode`.
    pub fn new(path: &'a Path, bytes: &'a [u8], mode: u32) -> Self {
        NewFile { path, bytes, mode }
    }
}

/// Replaces `files` all or nothing, as far as a crash allows:
///
/// 1. each is written to a new temporary file beside it (missing parent
///    directories are created with mode 0700), with its mode, and fsynced;
/// 2. only when every one is on disk are they renamed into place, in the
///    order given (put the file that makes the set valid last);
/// 3. each directory is fsynced, so the renames survive a crash.
///
/// If writing any of them fails, the temporary files are removed and no
/// file is replaced. Errors name the file.
pub fn write_atomically(files: &[NewFile<'_>]) -> io::Result<()> {
    let mut staged: Vec<(PathBuf, &Path)> = Vec::with_capacity(files.len());
    let result = stage_and_rename(files, &mut staged);
    if result.is_err() {
        for (temp, _) in &staged {
            let _ = fs::remove_file(temp);
        }
    }
    result
}

fn stage_and_rename<'a>(
    files: &[NewFile<'a>],
    staged: &mut Vec<(PathBuf, &'a Path)>,
) -> io::Result<()> {
    for file in files {
        create_missing_dir(parent(file.path))?;
        let temp = temp_path(file.path);
        write_new_synced(&temp, file.bytes, file.mode).map_err(|e| {
            let _ = fs::remove_file(&temp);
            naming(file.path, e)
        })?;
        staged.push((temp, file.path));
    }
    for (temp, path) in staged.iter() {
        fs::rename(temp, path).map_err(|e| naming(path, e))?;
    }
    staged.clear();
    let mut synced: Vec<&Path> = Vec::new();
    for file in files {
        let dir = parent(file.path);
        if !synced.contains(&dir) {
            sync_dir(dir).map_err(|e| naming(dir, e))?;
            synced.push(dir);
        }
    }
    Ok(())
}

/// Creates `file` all or nothing unless its path exists already: the
/// bytes are written and fsynced beside it, then linked into place (which
/// fails if another writer got there first), and the directory fsynced.
/// Returns whether this call created it (`false`: it was there already,
/// and is left as it was; read it). Two processes creating the same file
/// at once thus end up with one of the two, both knowing which.
///
/// ```
/// use onesoidc_fs::{NewFile, create_new_atomically};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("keys/dpop.pem");
/// assert!(create_new_atomically(NewFile::new(&path, b"first", 0o600)).unwrap());
/// assert!(!create_new_atomically(NewFile::new(&path, b"second", 0o600)).unwrap());
/// assert_eq!(std::fs::read(&path).unwrap(), b"first");
/// ```
pub fn create_new_atomically(file: NewFile<'_>) -> io::Result<bool> {
    let dir = parent(file.path);
    create_missing_dir(dir)?;
    let temp = temp_path(file.path);
    let written = write_new_synced(&temp, file.bytes, file.mode)
        .and_then(|()| fs::hard_link(&temp, file.path));
    let _ = fs::remove_file(&temp);
    match written {
        Ok(()) => {
            sync_dir(dir).map_err(|e| naming(dir, e))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(naming(file.path, e)),
    }
}

/// Creates `dir` and its missing parents with mode 0700 if it is missing.
pub(crate) fn create_missing_dir(dir: &Path) -> io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| naming(dir, e))
}

/// Fsyncs directory `dir`, so renames and new files in it survive a crash.
/// A platform that cannot open directories (Windows) skips it.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    return File::open(dir)?.sync_all();
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// `.{name}.{pid}.{n}.tmp` beside `path`: unique within this process and
/// across processes writing the same directory.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// The same error, with the path it is about in its message.
fn naming(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

pub(crate) fn write_new_synced(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_replaces_nothing_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        fs::write(&a, b"old").unwrap();
        // The second file's parent is a file: it cannot be written.
        let blocker = dir.path().join("blocker");
        fs::write(&blocker, b"").unwrap();
        let b = blocker.join("b");
        let err = write_atomically(&[
            NewFile::new(&a, b"new", 0o600),
            NewFile::new(&b, b"x", 0o600),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("blocker"), "{err}");
        assert_eq!(fs::read(&a).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "only a and blocker: {names:?}");
    }

    #[cfg(unix)]
    #[test]
    fn modes_are_set_when_created_and_missing_directories_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let key = base.path().join("keys/private.pem");
        let public = base.path().join("keys/public.pem");
        write_atomically(&[
            NewFile::new(&key, b"k", 0o600),
            NewFile::new(&public, b"p", 0o644),
        ])
        .unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&public), 0o644 & !umask());
        assert_eq!(mode(&base.path().join("keys")), 0o700);
    }

    #[cfg(unix)]
    fn umask() -> u32 {
        // The mode of a file created with 0o777 shows the umask.
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        write_new_synced(&probe, b"", 0o777).unwrap();
        !fs::metadata(&probe).unwrap().permissions().mode() & 0o777
    }
}
