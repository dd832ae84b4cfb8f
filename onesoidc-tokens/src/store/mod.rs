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
//! ([`SaveMode::Refreshed`]: only if no login or logout happened since it
//! loaded, and no newer lease was granted) and releases the lease. If the
//! store fails (after a few retries), the manager refreshes alone and says
//! so in its events, unless that would spend a refresh token another
//! process may be spending.

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
/// store records the owner with the tokens and `load` returns no tokens
/// (with a warning) for tokens of another owner, so a new `device.yml`
/// never picks up an old identity's tokens.
///
/// Each record has a **generation**: a new login ([`SaveMode::Replace`])
/// and [`remove`](Self::remove) start a new one, and `remove` leaves a
/// *tombstone* (a record without tokens) rather than nothing. A refresh
/// saves with [`SaveMode::Refreshed`], naming the generation it loaded:
/// if a login or a logout happened meanwhile, in any process, nothing is
/// written ([`Saved::Superseded`]), so a refresh that was already running
/// can neither undo a logout nor overwrite another person's login.
///
/// A store for one process needs only `load`, `save` and `remove`; the
/// default [`lease`](Self::lease) says "not shared". Errors are reported
/// by managers as [`TokenEvent::StoreUnavailable`](crate::TokenEvent::StoreUnavailable)
/// and never stop them.
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// What is saved under `key`: the tokens and the record's generation.
    /// No tokens when there are none (never saved, removed) or what is
    /// there is not usable (corrupt, another owner's, another version):
    /// those are ignored with a warning, as generation 0.
    fn load<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Stored>;

    /// Saves `tokens` under `key`; see [`SaveMode`] for when it writes
    /// and [`Saved`] for what it did.
    fn save<'a>(
        &'a self,
        key: &'a StoreKey,
        tokens: &'a TokenSet,
        mode: SaveMode,
    ) -> StoreFuture<'a, Saved>;

    /// Forgets the tokens under `key`: leaves a tombstone of a new
    /// generation, which it returns, so that no refresh that loaded an
    /// older generation can save them again.
    fn remove<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, u64>;

    /// Takes the refresh lease for `key`, waiting while another holder has
    /// it. A store with time limits gives it for `hold` and renews it every
    /// third of that while the [`Lease`] lives, so a holder that stops or
    /// dies loses it within `hold` (a file lock: at once when it dies).
    /// Each lease has a fencing number ([`Lease::fence`]), larger than any
    /// granted before for the key. `Ok(None)`: this store is not shared;
    /// refresh alone.
    ///
    /// The default is `Ok(None)`.
    fn lease<'a>(&'a self, key: &'a StoreKey, hold: Duration) -> StoreFuture<'a, Option<Lease>> {
        let _ = (key, hold);
        Box::pin(async { Ok(None) })
    }
}

/// What a [`TokenStore`] holds under a key.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Stored {
    /// The tokens; `None` when there are none or they are not usable.
    pub tokens: Option<TokenSet>,
    /// The record's generation; 0 when there is no usable record.
    pub generation: u64,
}

impl Stored {
    /// `tokens` saved in `generation`.
    pub fn new(tokens: Option<TokenSet>, generation: u64) -> Self {
        Stored { tokens, generation }
    }

    /// A tombstone: the tokens were removed (a logout) in this generation.
    pub fn is_tombstone(&self) -> bool {
        self.tokens.is_none() && self.generation > 0
    }
}

/// How [`TokenStore::save`] treats what is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaveMode {
    /// A new login, stored by the application: replaces whatever is there
    /// (tokens or a tombstone) and starts a new generation.
    Replace,
    /// A refresh's result. Written only if
    /// - the record is still of `generation` (the one the refresh loaded;
    ///   a record that is gone, say expired in Redis, counts as any):
    ///   otherwise [`Saved::Superseded`];
    /// - no lease with a fencing number above `fence` was granted since
    ///   (`None`: the refresh held no lease): otherwise [`Saved::Fenced`];
    /// - the stored tokens do not expire later (tokens without an expiry
    ///   count as the newest): otherwise [`Saved::KeptNewer`].
    Refreshed {
        /// The generation the refresh started from.
        generation: u64,
        /// The fencing number of the lease the refresh held.
        fence: Option<u64>,
    },
}

/// What [`TokenStore::save`] did.
#[derive(Debug)]
#[non_exhaustive]
pub enum Saved {
    /// The tokens were written, in this generation.
    Written {
        /// The record's generation now.
        generation: u64,
    },
    /// Newer tokens were there and were kept ([`SaveMode::Refreshed`]).
    KeptNewer(Box<TokenSet>),
    /// A login or a logout happened since the refresh loaded: nothing was
    /// written. What is stored now (no tokens: a logout).
    Superseded(Box<Stored>),
    /// A newer lease was granted since this refresh's: nothing was written.
    Fenced,
}

/// The right to refresh a key's tokens, held until
/// [`release`](Self::release)d or dropped (then it ends when the store can
/// tell: at once for a file lock, within its time limit for Redis).
#[must_use = "the lease is released when dropped"]
pub struct Lease(Box<dyn HeldLease>);

impl Lease {
    /// Wraps a store's own lease.
    pub fn new(held: impl HeldLease + 'static) -> Self {
        Lease(Box::new(held))
    }

    /// The lease's fencing number: larger than that of every lease granted
    /// before it for the same key (`None`: the store has none).
    pub fn fence(&self) -> Option<u64> {
        self.0.fence()
    }

    /// Checks (and renews) that the lease is still held, right before
    /// spending something only one holder may spend (a refresh token).
    /// An error when it was lost (its time limit passed: a stopped process,
    /// a store too slow) or cannot be checked.
    pub async fn confirm(&self) -> Result<(), StoreError> {
        self.0.confirm().await
    }

    /// Ends the lease and wakes whoever waits for it.
    pub async fn release(self) -> Result<(), StoreError> {
        self.0.release().await
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("fence", &self.fence())
            .finish()
    }
}

/// A store's lease; see [`Lease`].
pub trait HeldLease: Send + Sync {
    /// The fencing number; see [`Lease::fence`]. Default `None`.
    fn fence(&self) -> Option<u64> {
        None
    }

    /// See [`Lease::confirm`]. Default: always held.
    fn confirm(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

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

impl StoreError {
    /// Whether trying again soon may work: the server failed or did not
    /// answer (a blip), as opposed to a store that is misconfigured or not
    /// private.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}
