//! Persistence and sharing: the [`TokenStore`] a manager keeps its tokens
//! in, so a restart needs no new login and managers in several processes
//! (or on several machines) share one token and one refresh.
//!
//! - [`FileTokenStore`]: one directory, one machine; the refresh lease is an
//!   OS file lock.
//! - `RedisTokenStore` (feature `redis`): many machines; the lease is a
//!   Redis key with a time limit, released with a notification.
//!
//! How a manager uses a store (see [`TokenManagerBuilder::store`](crate::TokenManagerBuilder::store)):
//! while its own copy of the token is valid it never looks at the store.
//! When a refresh is due it takes the store's [lease](TokenStore::lease)
//! (waiting while another process holds it), loads what is stored, and
//! uses that if another process has refreshed meanwhile; only otherwise
//! does it ask the provider, then saves the new tokens
//! ([`SaveMode::IfNewer`]) and releases the lease. If the store fails, the
//! manager refreshes alone and says so in its events.

mod file;
mod owner;
mod record;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use onesoidc_core::TokenSet;

pub use file::{FileTokenStore, MAX_TOKEN_FILE_BYTES};
pub use owner::{StoreKey, TokenOwner};
pub(crate) use record::expiry_rank;
pub use record::{FILE_FORMAT, FILE_FORMAT_VERSION};
#[cfg(feature = "redis")]
pub use redis::{RedisTokenStore, RedisTokenStoreBuilder};

/// The future a [`TokenStore`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where managers keep their tokens, and (for a shared store) how they take
/// turns refreshing them.
///
/// Every method is keyed by a [`StoreKey`]: the manager's name and the
/// [`TokenOwner`] (issuer and client id) the tokens were issued to. A
/// store records the owner with the tokens and `load` returns `None` (with
/// a warning) for tokens of another owner, so a new `device.yml` never
/// picks up an old identity's tokens.
///
/// A store for one process needs only `load`, `save` and `remove`; the
/// default [`lease`](Self::lease) says "not shared". Errors are reported
/// by managers as [`TokenEvent::StoreUnavailable`](crate::TokenEvent::StoreUnavailable)
/// and never stop them.
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// The tokens saved under `key`, or `None` if there are none, or what is
    /// there is not usable (corrupt, another owner's, another version):
    /// those are ignored with a warning.
    fn load<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<TokenSet>>;

    /// Saves `tokens` under `key`. With [`SaveMode::IfNewer`] the write is
    /// fenced: tokens that expire later than `tokens` are kept, and
    /// returned as [`Saved::KeptNewer`].
    fn save<'a>(
        &'a self,
        key: &'a StoreKey,
        tokens: &'a TokenSet,
        mode: SaveMode,
    ) -> StoreFuture<'a, Saved>;

    /// Forgets the tokens under `key` (no error if there are none).
    fn remove<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, ()>;

    /// Takes the refresh lease for `key`, waiting while another holder has
    /// it, for at most `hold` after the holder took it (a holder that dies
    /// loses it at once where the store can tell, or when `hold` has
    /// passed). `Ok(None)`: this store is not shared; refresh alone.
    ///
    /// The default is `Ok(None)`.
    fn lease<'a>(&'a self, key: &'a StoreKey, hold: Duration) -> StoreFuture<'a, Option<Lease>> {
        let _ = (key, hold);
        Box::pin(async { Ok(None) })
    }
}

/// How [`TokenStore::save`] treats tokens already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveMode {
    /// Replace whatever is there (a new login, stored by the application).
    Replace,
    /// Replace it unless it expires later than the new tokens (a refresh:
    /// a slow writer never puts back an older token). Tokens without an
    /// expiry count as the newest.
    IfNewer,
}

/// What [`TokenStore::save`] did.
#[derive(Debug)]
#[non_exhaustive]
pub enum Saved {
    /// The tokens were written.
    Written,
    /// Newer tokens were there and were kept ([`SaveMode::IfNewer`]).
    KeptNewer(Box<TokenSet>),
}

/// The right to refresh a key's tokens, held until
/// [`release`](Self::release)d or dropped (then it ends when the store can
/// tell: at once for a file lock, after its time limit for Redis).
#[must_use = "the lease is released when dropped"]
pub struct Lease(Box<dyn HeldLease>);

impl Lease {
    /// Wraps a store's own lease.
    pub fn new(held: impl HeldLease + 'static) -> Self {
        Lease(Box::new(held))
    }

    /// Ends the lease and wakes whoever waits for it.
    pub async fn release(self) -> Result<(), StoreError> {
        self.0.release().await
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Lease")
    }
}

/// A store's lease; see [`Lease`].
pub trait HeldLease: Send {
    /// Ends the lease and wakes whoever waits for it.
    fn release(self: Box<Self>) -> StoreFuture<'static, ()>;
}

/// A [`TokenStore`] failure. `Display` names the store, the file or server,
/// and what to do; it never contains a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading, writing, locking or renaming a file failed.
    #[error("token store: cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `write`, `lock`, ...).
        action: &'static str,
        /// The file or directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file or directory of the store is not ours alone (another owner,
    /// writable by others, a symlink): nothing in it is trusted.
    #[error("token store: {0}")]
    NotPrivate(#[from] onesoidc_fs::NotPrivate),
    /// The store's server failed or could not be reached.
    #[error("token store {store}: {message}")]
    Unavailable {
        /// The store (a URL without its password).
        store: String,
        /// What failed.
        message: String,
    },
    /// The store's configuration is wrong (a URL that cannot be used, ...).
    #[error("token store: {0}")]
    Config(String),
}
