//! [`FileTokenStore`]: one directory, one machine.

use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use onesoidc_core::TokenSet;
use onesoidc_fs::{
    Access, NewFile, NotPrivate, check_private_dir, create_private_dir, open_lock_file,
    read_private, write_atomically,
};

use super::record::{decode, encode, expiry_rank};
use super::{
    HeldLease, Lease, SaveMode, Saved, StoreError, StoreFuture, StoreKey, Stored, TokenStore,
};

/// How often a waiter tries the lease again while another process holds it.
const LEASE_POLL: Duration = Duration::from_millis(50);

/// The largest token file read (1 MiB; real ones are a few KiB). A larger
/// one is ignored with a warning, like any other file that is not ours.
pub const MAX_TOKEN_FILE_BYTES: u64 = 1024 * 1024;

/// One JSON file per manager in a directory, shared by every process on the
/// machine that uses the directory.
///
/// - `<dir>/<name>.json` holds the tokens with their owner (issuer, client
///   id) and generation, or after [`remove`](TokenStore::remove) a
///   tombstone (the generation, no tokens); `<name>.lease` is the refresh
///   lease (an OS lock on it: a process that dies loses it at once);
///   `<name>.lock` serializes writes and holds the last fencing number
///   granted (as decimal digits). Every conditional save is decided and
///   written under the lock of `<name>.lock`.
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
/// assert!(store.load(&key).await.unwrap().tokens.is_none());
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

    fn load_now(&self, key: &StoreKey) -> Result<Stored, StoreError> {
        if !check_private_dir(&self.dir)? {
            return Ok(Stored::default());
        }
        let path = self.path_for(key);
        let bytes = match read_private(&path, MAX_TOKEN_FILE_BYTES) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(Stored::default()),
            Err(NotPrivate::Io { source, .. }) if source.kind() == io::ErrorKind::FileTooLarge => {
                tracing::warn!(path = %path.display(), manager = key.name(), "ignoring token file: {source}");
                return Ok(Stored::default());
            }
            Err(e) => return Err(e.into()),
        };
        warn_if_readable_by_others(&path);
        match decode(key, &bytes) {
            Ok(stored) => Ok(stored),
            Err(ignored) => {
                ignored.log(&path.display(), key.name());
                Ok(Stored::default())
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
        let writing = self.lock(key, "lock")?;
        let stored = self.load_now(key)?;
        let generation = match mode {
            SaveMode::Replace => stored.generation.saturating_add(1),
            SaveMode::Refreshed { generation, fence } => {
                if fence.is_some_and(|fence| read_fence(&writing, &self.file(key, "lock")) > fence)
                {
                    return Ok(Saved::Fenced);
                }
                let exists = stored.tokens.is_some() || stored.generation > 0;
                if exists && stored.generation != generation {
                    return Ok(Saved::Superseded(Box::new(stored)));
                }
                if let Some(kept) = stored.tokens
                    && expiry_rank(&kept) > expiry_rank(tokens)
                {
                    return Ok(Saved::KeptNewer(Box::new(kept)));
                }
                generation
            }
        };
        self.write(key, Some(tokens), generation)?;
        Ok(Saved::Written { generation })
    }

    /// Leaves a tombstone of the next generation.
    fn remove_now(&self, key: &StoreKey) -> Result<u64, StoreError> {
        create_private_dir(&self.dir)?;
        let _writing = self.lock(key, "lock")?;
        let generation = self.load_now(key)?.generation.saturating_add(1);
        self.write(key, None, generation)?;
        Ok(generation)
    }

    fn write(
        &self,
        key: &StoreKey,
        tokens: Option<&TokenSet>,
        generation: u64,
    ) -> Result<(), StoreError> {
        let path = self.path_for(key);
        write_atomically(&[NewFile::new(&path, &encode(key, tokens, generation), 0o600)]).map_err(
            |source| StoreError::Io {
                action: "write",
                path,
                source,
            },
        )
    }

    /// Takes `<name>.lease` if no other process holds it, with the next
    /// fencing number (counted in `<name>.lock`).
    fn try_lease(&self, key: &StoreKey) -> Result<Option<FileLease>, StoreError> {
        create_private_dir(&self.dir)?;
        let path = self.file(key, "lease");
        let file = open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(StoreError::Io {
                    action: "lock",
                    path,
                    source,
                });
            }
        }
        let counting = self.lock(key, "lock")?;
        let counter = self.file(key, "lock");
        let fence = read_fence(&counting, &counter).saturating_add(1);
        write_fence(&counting, fence).map_err(|source| StoreError::Io {
            action: "write the fencing number to",
            path: counter,
            source,
        })?;
        Ok(Some(FileLease { _file: file, fence }))
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

/// The fencing number last granted, kept in `<name>.lock` (read with its
/// lock held). Empty (a new file): 0. Anything else than digits is
/// ignored with a warning.
fn read_fence(mut file: &File, path: &Path) -> u64 {
    let mut text = String::new();
    let read = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.take(32).read_to_string(&mut text));
    match read.map(|_| text.trim()) {
        Ok("") => 0,
        Ok(digits) => digits.parse().unwrap_or_else(|_| {
            tracing::warn!(path = %path.display(), "the lock file holds no fencing number; counting from 0");
            0
        }),
        Err(e) => {
            tracing::warn!(path = %path.display(), "cannot read the fencing number: {e}; counting from 0");
            0
        }
    }
}

/// Writes `fence` over the old number (never shorter, as numbers only grow,
/// so no truncation is needed).
fn write_fence(mut file: &File, fence: u64) -> io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    file.write_all(fence.to_string().as_bytes())
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

/// The lease: an OS lock on `<name>.lease`, held while the file is open
/// (never lost while this process lives), and its fencing number.
struct FileLease {
    _file: File,
    fence: u64,
}

impl HeldLease for FileLease {
    fn fence(&self) -> Option<u64> {
        Some(self.fence)
    }

    fn release(self: Box<Self>) -> StoreFuture<'static, ()> {
        drop(self);
        Box::pin(async { Ok(()) })
    }
}

impl TokenStore for FileTokenStore {
    fn load<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Stored> {
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

    fn remove<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, u64> {
        let (store, key) = (self.clone(), key.clone());
        Box::pin(blocking(move || store.remove_now(&key)))
    }

    /// Takes the OS lock on `<name>.lease`, trying every 50 ms while
    /// another process holds it (without a limit: bound it with a
    /// timeout; managers do). The kernel releases it when the holder
    /// closes the file or dies; it has no time limit, so `hold` is not used.
    fn lease<'a>(&'a self, key: &'a StoreKey, _hold: Duration) -> StoreFuture<'a, Option<Lease>> {
        Box::pin(async move {
            loop {
                let (store, key) = (self.clone(), key.clone());
                if let Some(lease) = blocking(move || store.try_lease(&key)).await? {
                    return Ok(Some(Lease::new(lease)));
                }
                tokio::time::sleep(LEASE_POLL).await;
            }
        })
    }
}
