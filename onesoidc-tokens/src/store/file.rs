//! Persistence: [`TokenStore`] and the [`FileTokenStore`], so a restart
//! does not cost a new login. Opt-in, per manager, with
//! [`TokenManagerBuilder::store`](crate::TokenManagerBuilder::store).

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use onesoidc_core::{ExposeSecret, TokenSet};
use onesoidc_fs::{Access, NewFile, write_atomically};
use serde::{Deserialize, Serialize};

/// Where a manager keeps its tokens between runs.
///
/// A manager with a store loads from it when it is built (unless given
/// initial tokens), saves after every successful refresh and
/// [`store`](crate::TokenManager::store), and removes on
/// [`clear`](crate::TokenManager::clear). Failures are logged with
/// `tracing::warn!` and never stop the manager. Calls are synchronous and
/// should be quick (a manager's background task runs saves on tokio's
/// blocking pool).
pub trait TokenStore: Send + Sync {
    /// The tokens saved for manager `name`, or `None` if there are none (or
    /// what is there is unusable: corrupt, foreign, another version).
    fn load(&self, name: &str) -> Result<Option<TokenSet>, StoreError>;
    /// Saves `tokens` for manager `name`, replacing what was there.
    fn save(&self, name: &str, tokens: &TokenSet) -> Result<(), StoreError>;
    /// Forgets the tokens of manager `name` (no error if there are none).
    fn remove(&self, name: &str) -> Result<(), StoreError>;
}

/// The largest token file read (1 MiB; real ones are a few KiB). A larger
/// one is ignored with a warning, like any other file that is not ours.
pub const MAX_TOKEN_FILE_BYTES: u64 = 1024 * 1024;

/// A [`TokenStore`] failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading, writing or renaming a file failed.
    #[error("token store: cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `write`, `create directory`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The manager name cannot be used as a key.
    #[error("token store: invalid manager name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
}

/// `format` field of every file the [`FileTokenStore`] writes.
pub const FILE_FORMAT: &str = "onesoidc-tokens";
/// Current `version` of that format.
pub const FILE_FORMAT_VERSION: u32 = 1;

/// One JSON file per manager in a directory: `<dir>/<name>.json`.
///
/// - The directory is created with mode 0700 and each file with mode 0600
///   (on Unix); a file readable by others is still loaded, with a warning.
/// - Writes are atomic: a temporary file in the same directory is written,
///   fsynced and renamed over the old file, then the directory is fsynced.
///   A crash leaves the old file or the new one, never half of one.
/// - The file records its format, version and manager name. A file that is
///   corrupt, of another format or version, or written for another name is
///   ignored with a warning (`load` returns `Ok(None)`), never a crash.
/// - Characters of the name other than ASCII letters, digits, `-` and `_`
///   are written as `%XX`, so any name maps to one file inside the directory.
///
/// This file is the only place where the tokens are serialized; its
/// `Debug` shows the directory only.
///
/// ```
/// use onesoidc_tokens::{FileTokenStore, TokenStore};
/// let dir = tempfile::tempdir().unwrap();
/// let store = FileTokenStore::new(dir.path().join("tokens"));
/// assert_eq!(store.path_for("ciba_user").unwrap(), dir.path().join("tokens/ciba_user.json"));
/// assert!(store.load("ciba_user").unwrap().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct FileTokenStore {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct StoredFile {
    format: String,
    version: u32,
    name: String,
    tokens: StoredTokens,
}

#[derive(Serialize, Deserialize)]
struct StoredTokens {
    access_token: String,
    token_type: String,
    /// Seconds since the Unix epoch (rounded down), like a JWT `exp`.
    expires_at: Option<u64>,
    refresh_token: Option<String>,
    id_token: Option<String>,
    scope: Option<String>,
}

impl StoredTokens {
    fn from_tokens(tokens: &TokenSet) -> Self {
        StoredTokens {
            access_token: tokens.access_token.expose_secret().to_string(),
            token_type: tokens.token_type.clone(),
            expires_at: tokens.expires_at.map(|at| {
                at.duration_since(UNIX_EPOCH)
                    .unwrap_or(Duration::ZERO)
                    .as_secs()
            }),
            refresh_token: tokens
                .refresh_token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            id_token: tokens
                .id_token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            scope: tokens.scope.as_ref().map(|s| s.to_string()),
        }
    }

    fn into_tokens(self) -> Result<TokenSet, &'static str> {
        if self.access_token.is_empty() {
            return Err("`access_token` is empty");
        }
        if self.token_type.is_empty() {
            return Err("`token_type` is empty");
        }
        let expires_at = match self.expires_at {
            None => None,
            Some(secs) => Some(
                UNIX_EPOCH
                    .checked_add(Duration::from_secs(secs))
                    .ok_or("`expires_at` is out of range")?,
            ),
        };
        Ok(TokenSet {
            access_token: self.access_token.into(),
            token_type: self.token_type,
            expires_at,
            refresh_token: self.refresh_token.filter(|t| !t.is_empty()).map(Into::into),
            id_token: self.id_token.filter(|t| !t.is_empty()).map(Into::into),
            scope: self.scope.map(onesoidc_core::Scope::new),
        })
    }
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

    /// The file holding manager `name`'s tokens.
    pub fn path_for(&self, name: &str) -> Result<PathBuf, StoreError> {
        if name.is_empty() {
            return Err(StoreError::InvalidName {
                name: name.into(),
                reason: "it is empty",
            });
        }
        let mut file = String::with_capacity(name.len() + 5);
        for byte in name.bytes() {
            if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
                file.push(char::from(byte));
            } else {
                file.push_str(&format!("%{byte:02X}"));
            }
        }
        file.push_str(".json");
        Ok(self.dir.join(file))
    }

    fn create_dir(&self) -> Result<(), StoreError> {
        onesoidc_fs::create_private_dir(&self.dir).map_err(|e| StoreError::Io {
            action: "create directory",
            path: self.dir.clone(),
            source: io::Error::other(e.to_string()),
        })
    }
}

fn warn_if_readable_by_others(path: &Path, file: &fs::File) {
    if let Ok(meta) = file.metadata() {
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

impl TokenStore for FileTokenStore {
    fn load(&self, name: &str) -> Result<Option<TokenSet>, StoreError> {
        let path = self.path_for(name)?;
        let io_error = |source| StoreError::Io {
            action: "read",
            path: path.clone(),
            source,
        };
        let mut file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(e)),
        };
        warn_if_readable_by_others(&path, &file);
        let mut bytes = Vec::new();
        io::Read::read_to_end(
            &mut io::Read::take(&mut file, MAX_TOKEN_FILE_BYTES + 1),
            &mut bytes,
        )
        .map_err(io_error)?;
        let ignore = |reason: &dyn fmt::Display| {
            tracing::warn!(path = %path.display(), manager = name, "ignoring token file: {reason}");
            Ok(None)
        };
        if bytes.len() as u64 > MAX_TOKEN_FILE_BYTES {
            return ignore(&format_args!(
                "it is larger than {MAX_TOKEN_FILE_BYTES} bytes"
            ));
        }
        let stored: StoredFile = match serde_json::from_slice(&bytes) {
            Ok(stored) => stored,
            // Not `{e}`: serde_json's message can quote a value, i.e. a token.
            Err(e) => {
                return ignore(&format_args!(
                    "not a token file ({:?} error at line {}, column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ));
            }
        };
        if stored.format != FILE_FORMAT {
            return ignore(&format_args!(
                "its format is {:?}, expected {FILE_FORMAT:?}",
                stored.format
            ));
        }
        if stored.version != FILE_FORMAT_VERSION {
            return ignore(&format_args!(
                "it is version {}, this build reads version {FILE_FORMAT_VERSION}",
                stored.version
            ));
        }
        if stored.name != name {
            return ignore(&format_args!(
                "it holds the tokens of manager {:?}",
                stored.name
            ));
        }
        match stored.tokens.into_tokens() {
            Ok(tokens) => Ok(Some(tokens)),
            Err(reason) => ignore(&reason),
        }
    }

    fn save(&self, name: &str, tokens: &TokenSet) -> Result<(), StoreError> {
        let path = self.path_for(name)?;
        self.create_dir()?;
        let stored = StoredFile {
            format: FILE_FORMAT.into(),
            version: FILE_FORMAT_VERSION,
            name: name.into(),
            tokens: StoredTokens::from_tokens(tokens),
        };
        // Serializing plain strings and integers cannot fail.
        let mut bytes = serde_json::to_vec_pretty(&stored).unwrap_or_default();
        bytes.push(b'\n');
        write_atomically(&[NewFile::new(&path, &bytes, 0o600)]).map_err(|source| StoreError::Io {
            action: "write",
            path,
            source,
        })
    }

    fn remove(&self, name: &str) -> Result<(), StoreError> {
        let path = self.path_for(name)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                action: "remove",
                path,
                source,
            }),
        }
    }
}
