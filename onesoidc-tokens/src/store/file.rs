//! [`FileTokenStore`]: one directory, one machine.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use onesoidc_core::TokenSet;
use onesoidc_fs::{
    Access, NewFile, NotPrivate, check_private_dir, create_private_dir, open_lock_file,
    read_private, write_atomically,
};

use super::record::{decode, encode, expiry_rank};
use super::{HeldLease, Lease, SaveMode, Saved, StoreError, StoreFuture, StoreKey, TokenStore};

/// The largest token file read (1 MiB; real ones are a few KiB). A larger
/// one is ignored with a warning, like any other file that is not ours.
pub const MAX_TOKEN_FILE_BYTES: u64 = 1024 * 1024;

/// One JSON file per manager in a directory, shared by every process on the
/// machine that uses the directory.
///
/// - `<dir>/<name>.json` holds the tokens with their owner (issuer, client
///   id); `<name>.lease` is the refresh lease (an OS lock on it: a process
///   that dies loses it at once); `<name>.lock` serializes writes.
/// - The directory is created with mode 0700 and files with mode 0600 (on
///   Unix). A directory or file that is a symlink, is owned by another
///   user, or is writable by group or others is refused: every call fails
///   with [`StoreError::NotPrivate`], naming the path and the fix. A token
///   file readable by others is used, with a warning.
/// - Writes are atomic: a temporary file in the same directory is written,
///   fsynced and renamed over the old file, then the directory is fsynced.
///   A crash leaves the old file or the new one, never half of one.
/// - A file that is corrupt, of another format or version, written for
///   another name or another owner, or larger than
///   [`MAX_TOKEN_FILE_BYTES`], is ignored with a warning (`load` returns
///   `None`), never a crash.
/// - Characters of the name other than ASCII letters, digits, `-` and `_`
///   are written as `%XX`, so any name maps to files inside the directory.
///
/// File operations run on tokio's blocking pool; its `Debug` shows the
/// directory only.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use onesoidc_tokens::{FileTokenStore, StoreKey, TokenOwner, TokenStore};
/// let dir = tempfile::tempdir().unwrap();
/// let store = FileTokenStore::new(dir.path().join("tokens"));
/// let key = StoreKey::new("ciba_user", TokenOwner::new("https://idp.example.com/oidc", "d1"));
/// assert_eq!(store.path_for(&key), dir.path().join("tokens/ciba_user.json"));
/// assert!(store.load(&key).await.unwrap().is_none());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FileTokenStore {
    dir: PathBuf,
}

impl FileTokenStore {
    /// A store keeping its files in `dir` (created on first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileTokenStore { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding the tokens of `key`.
    pub fn path_for(&self, key: &StoreKey) -> PathBuf {
        self.file(key, "json")
    }

    fn file(&self, key: &StoreKey, extension: &str) -> PathBuf {
        self.dir.join(format!("{}.{extension}", key.escaped_name()))
    }

    fn load_now(&self, key: &StoreKey) -> Result<Option<TokenSet>, StoreError> {
        if !check_private_dir(&self.dir)? {
            return Ok(None);
        }
        let path = self.path_for(key);
        let bytes = match read_private(&path, MAX_TOKEN_FILE_BYTES) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(NotPrivate::Io { source, .. }) if source.kind() == io::ErrorKind::FileTooLarge => {
                tracing::warn!(path = %path.display(), manager = key.name(), "ignoring token file: {source}");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        warn_if_readable_by_others(&path);
        match decode(key, &bytes) {
            Ok(tokens) => Ok(Some(tokens)),
            Err(reason) => {
                tracing::warn!(path = %path.display(), manager = key.name(), "ignoring token file: {reason}");
                Ok(None)
            }
        }
    }

    fn save_now(
        &self,
        key: &StoreKey,
        tokens: &TokenSet,
        mode: SaveMode,
    ) -> Result<Saved, StoreError> {
        create_private_dir(&self.dir)?;
        let _writing = self.lock(key, "lock")?;
        if mode == SaveMode::IfNewer
            && let Some(stored) = self.load_now(key)?
            && expiry_rank(&stored) > expiry_rank(tokens)
        {
            return Ok(Saved::KeptNewer(Box::new(stored)));
        }
        let path = self.path_for(key);
        write_atomically(&[NewFile::new(&path, &encode(key, tokens), 0o600)]).map_err(
            |source| StoreError::Io {
                action: "write",
                path,
                source,
            },
        )?;
        Ok(Saved::Written)
    }

    fn remove_now(&self, key: &StoreKey) -> Result<(), StoreError> {
        if !check_private_dir(&self.dir)? {
            return Ok(());
        }
        let _writing = self.lock(key, "lock")?;
        let path = self.path_for(key);
        match std::fs::remove_file(&path) {
            Ok(()) => onesoidc_fs::sync_dir(&self.dir).map_err(|source| StoreError::Io {
                action: "sync",
                path: self.dir.clone(),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                action: "remove",
                path,
                source,
            }),
        }
    }

    /// Opens `<name>.<extension>` and waits for its lock.
    fn lock(&self, key: &StoreKey, extension: &str) -> Result<File, StoreError> {
        let path = self.file(key, extension);
        let file = open_lock_file(&path)?;
        file.lock().map_err(|source| StoreError::Io {
            action: "lock",
            path,
            source,
        })?;
        Ok(file)
    }
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let access = Access::of(&meta);
        if access.readable_by_others() {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:04o}", access.mode),
                "token file is readable by other users; it should be mode 0600 (chmod 600)"
            );
        }
    }
}

/// Runs `job` on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(job).await.unwrap_or_else(|e| {
        Err(StoreError::Io {
            action: "run",
            path: PathBuf::from("token store task"),
            source: io::Error::other(e.to_string()),
        })
    })
}

/// The lease: an OS lock on `<name>.lease`, held while the file is open.
struct FileLease(File);

impl HeldLease for FileLease {
    fn release(self: Box<Self>) -> StoreFuture<'static, ()> {
        drop(self.0);
        Box::pin(async { Ok(()) })
    }
}

impl TokenStore for FileTokenStore {
    fn load<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<TokenSet>> {
        let (store, key) = (self.clone(), key.clone());
        Box::pin(blocking(move || store.load_now(&key)))
    }

    fn save<'a>(
        &'a self,
        key: &'a StoreKey,
        tokens: &'a TokenSet,
        mode: SaveMode,
    ) -> StoreFuture<'a, Saved> {
        let (store, key, tokens) = (self.clone(), key.clone(), tokens.clone());
        Box::pin(blocking(move || store.save_now(&key, &tokens, mode)))
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, ()> {
        let (store, key) = (self.clone(), key.clone());
        Box::pin(blocking(move || store.remove_now(&key)))
    }

    /// Waits for the OS lock on `<name>.lease` (at most twice `hold`; then
    /// an error). The kernel releases it when the holder closes the file or
    /// dies, and wakes the next waiter at once.
    fn lease<'a>(&'a self, key: &'a StoreKey, hold: Duration) -> StoreFuture<'a, Option<Lease>> {
        let (store, key) = (self.clone(), key.clone());
        Box::pin(async move {
            let path = store.file(&key, "lease");
            let waiting = blocking(move || {
                create_private_dir(&store.dir)?;
                store.lock(&key, "lease")
            });
            let most = hold.saturating_mul(2);
            match tokio::time::timeout(most, waiting).await {
                Ok(file) => Ok(Some(Lease::new(FileLease(file?)))),
                Err(_) => Err(StoreError::Io {
                    action: "take the refresh lease",
                    path,
                    source: io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("another process has held it for more than {most:?}"),
                    ),
                }),
            }
        })
    }
}
