//! The read path: [`AccessToken`], the published `Slot`, the future of
//! `access_token()` and each thread's read cache.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use onesoidc_core::{Authorization, DpopKey, DpopNonces, Error, Expiry, ExposeSecret, TokenSet};
use tokio::time::Instant;

use crate::error::TokenError;

use super::state::Shared;

/// A valid access token, as handed out by [`TokenManager::access_token`](crate::TokenManager::access_token).
///
/// A cheap handle (one `Arc`) on the tokens the manager held when it was
/// handed out; it keeps them alive while it lives, and a later refresh
/// does not change it. Read the token with [`ExposeSecret::expose_secret`];
/// `Debug` redacts it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), onesoidc_tokens::TokenError> {
/// # let manager = onesoidc_tokens::TokenManager::builder("device", onesoidc_tokens::refresh_fn(|_| async { unreachable!() }))
/// #     .initial_tokens(onesoidc_core::TokenSet { access_token: "at".to_string().into(), token_type: "Bearer".into(),
/// #         expires_at: None, refresh_token: None, id_token: None, scope: None,
/// #         dpop_jkt: None, })
/// #     .build();
/// use onesoidc_core::ExposeSecret;
/// let token = manager.access_token().await?;
/// let header = format!("Bearer {}", token.expose_secret());
/// assert_eq!(header, "Bearer at");
/// assert_eq!(format!("{token:?}").contains("at\""), false, "Debug redacts it");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AccessToken(pub(super) Arc<Slot>, pub(super) Option<Arc<ManagerDpop>>);

/// A manager's DPoP key and the latest nonce of each application
/// ([`TokenManagerBuilder::dpop_key`](crate::TokenManagerBuilder::dpop_key)).
// Always behind an `Arc` (the builder makes one per manager): its size is moot.
#[allow(clippy::large_enum_variant)]
pub(crate) enum ManagerDpop {
    /// A key given to the builder, and the applications' nonces.
    Key { key: DpopKey, nonces: DpopNonces },
    /// The key (chosen on first use) and nonces of the client whose
    /// tokens the manager holds.
    #[cfg(feature = "flows")]
    Client(onesoidc_flows::OnesIdClient),
}

impl ManagerDpop {
    pub(crate) fn nonces(&self) -> &DpopNonces {
        match self {
            ManagerDpop::Key { nonces, .. } => nonces,
            #[cfg(feature = "flows")]
            ManagerDpop::Client(client) => client.dpop_nonces(),
        }
    }
}

impl AccessToken {
    /// All the tokens (refresh and ID token, scope, expiry).
    pub fn tokens(&self) -> &Arc<TokenSet> {
        &self.0.tokens
    }

    /// The tokens, owned.
    pub fn into_tokens(self) -> Arc<TokenSet> {
        self.0.tokens.clone()
    }

    /// The token type (`Bearer`).
    pub fn token_type(&self) -> &str {
        &self.0.tokens.token_type
    }

    /// When the access token expires, if known.
    pub fn expires_at(&self) -> Expiry {
        self.0.tokens.expiry()
    }

    /// The headers for a `method` request to `url` with this token:
    /// `Authorization: Bearer …` for a bearer token; for a DPoP-bound one
    /// `Authorization: DPoP …` and a `DPoP` proof (with `ath`, and the
    /// latest nonce `url`'s server gave, see [`TokenManager::dpop_nonces`](crate::TokenManager::dpop_nonces))
    /// signed by the manager's [DPoP key](crate::TokenManagerBuilder::dpop_key).
    /// Callers never branch on the kind of token. A signer that
    /// [blocks](onesoidc_core::Signer::blocks) (a TPM) signs on tokio's
    /// blocking pool.
    ///
    /// A bound token and a manager without its key is
    /// [`Error::InvalidRequest`] naming the thumbprints.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use onesoidc_core::{DpopKey, ExposeSecret, TokenSet};
    /// let key = DpopKey::generate().unwrap();
    /// let manager = onesoidc_tokens::TokenManager::builder("device", onesoidc_tokens::refresh_fn(|_| async { unreachable!() }))
    ///     .dpop_key(key.clone())
    ///     .initial_tokens(TokenSet { access_token: "at".to_string().into(), token_type: "DPoP".into(),
    ///         expires_at: None, refresh_token: None, id_token: None, scope: None,
    ///         dpop_jkt: Some(key.thumbprint().into()) })
    ///     .build();
    /// let url = url::Url::parse("https://app.example/api/me").unwrap();
    /// let headers = manager.access_token().await.unwrap().authorize("GET", &url).await.unwrap();
    /// assert_eq!(headers.authorization().expose_secret(), "DPoP at");
    /// assert!(headers.dpop().is_some());
    /// # }
    /// ```
    pub async fn authorize(&self, method: &str, url: &url::Url) -> Result<Authorization, Error> {
        let tokens = &self.0.tokens;
        if !tokens.is_dpop_bound() {
            return Ok(Authorization::bearer(&tokens.access_token));
        }
        let Some(dpop) = self.1.clone() else {
            return Authorization::for_tokens(
                tokens,
                None,
                method,
                url,
                None,
                std::time::SystemTime::now(),
            );
        };
        let key = match &*dpop {
            ManagerDpop::Key { key, .. } => key.clone(),
            #[cfg(feature = "flows")]
            ManagerDpop::Client(client) => return client.authorize(tokens, method, url).await,
        };
        let nonce = dpop.nonces().get(url);
        if !key.signer().blocks() {
            return Authorization::for_tokens(
                tokens,
                Some(&key),
                method,
                url,
                nonce.as_deref(),
                std::time::SystemTime::now(),
            );
        }
        let (tokens, method, url) = (tokens.clone(), method.to_string(), url.clone());
        tokio::task::spawn_blocking(move || {
            Authorization::for_tokens(
                &tokens,
                Some(&key),
                &method,
                &url,
                nonce.as_deref(),
                std::time::SystemTime::now(),
            )
        })
        .await
        .unwrap_or_else(|_| {
            Err(Error::Sign(onesoidc_core::SignError::Command {
                command: "the DPoP key's signer".into(),
                reason: "it panicked or was cancelled".into(),
            }))
        })
    }
}

impl ExposeSecret<str> for AccessToken {
    fn expose_secret(&self) -> &str {
        self.0.tokens.access_token.expose_secret()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.0.tokens.token_type)
            .field("expires_at", &self.0.tokens.expiry())
            .finish()
    }
}

/// What the read path sees. Immutable; replaced on every change.
pub(super) struct Slot {
    /// From [`NEXT_SLOT_VERSION`] when published; 0 for a slot that never
    /// was (the slow path's answer).
    pub(super) version: u64,
    pub(super) tokens: Arc<TokenSet>,
    /// The deadline on tokio's clock, if the token expires.
    pub(super) expires: Option<Instant>,
    /// The background task will replace this slot before the token needs
    /// refreshing (and so long before it expires): no clock check needed.
    pub(super) fresh: bool,
}

/// The future of [`TokenManager::access_token`](crate::TokenManager::access_token) and [`TokenManager::tokens`](crate::TokenManager::tokens).
///
/// Hand-written rather than an `async fn` so that `poll` inlines into the
/// caller: on a valid token it is the read cache's look-up and the
/// freshness check, without a state machine written to and read back from
/// memory (BENCHMARKS.md, item 1). Polled again after it completed, it
/// looks at the token again.
pub(super) struct Obtain<'a, T> {
    pub(super) shared: &'a Shared,
    /// The refresh being waited for, once the read path found no valid token.
    pub(super) slow: Option<SlowPath<'a>>,
    pub(super) output: PhantomData<fn() -> T>,
}

/// [`Shared::obtain`], boxed, so the read path's future stays a few words
/// long and the slow path's state is allocated only when it is taken.
pub(super) type SlowPath<'a> =
    Pin<Box<dyn Future<Output = Result<Arc<TokenSet>, TokenError>> + Send + 'a>>;

/// What [`Obtain`] yields: built from a published slot (the read path) or
/// from the tokens a refresh returned (the slow path).
pub(super) trait FromTokens {
    fn from_slot(slot: Arc<Slot>, shared: &Shared) -> Self;
    fn from_tokens(tokens: Arc<TokenSet>, shared: &Shared) -> Self;
}

impl FromTokens for AccessToken {
    #[inline]
    fn from_slot(slot: Arc<Slot>, shared: &Shared) -> Self {
        AccessToken(slot, shared.config.dpop.clone())
    }

    fn from_tokens(tokens: Arc<TokenSet>, shared: &Shared) -> Self {
        AccessToken(
            Arc::new(Slot {
                version: 0,
                tokens,
                expires: None,
                fresh: false,
            }),
            shared.config.dpop.clone(),
        )
    }
}

impl FromTokens for Arc<TokenSet> {
    #[inline]
    fn from_slot(slot: Arc<Slot>, _shared: &Shared) -> Self {
        slot.tokens.clone()
    }

    fn from_tokens(tokens: Arc<TokenSet>, _shared: &Shared) -> Self {
        tokens
    }
}

impl<'a, T> Obtain<'a, T> {
    pub(super) fn new(shared: &'a Shared) -> Self {
        Obtain {
            shared,
            slow: None,
            output: PhantomData,
        }
    }
}

impl<T: FromTokens> Future for Obtain<'_, T> {
    type Output = Result<T, TokenError>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let slow = match &mut this.slow {
            Some(slow) => slow,
            None => {
                if let Some(slot) = this.shared.cached() {
                    return Poll::Ready(Ok(T::from_slot(slot, this.shared)));
                }
                this.slow.insert(Box::pin(this.shared.obtain(false)))
            }
        };
        let result = std::task::ready!(slow.as_mut().poll(cx));
        this.slow = None;
        Poll::Ready(result.map(|tokens| T::from_tokens(tokens, this.shared)))
    }
}

/// Versions of published slots, unique across all managers, so that a
/// thread's read cache can key on the version alone.
pub(super) static NEXT_SLOT_VERSION: AtomicU64 = AtomicU64::new(1);

/// Entries of each thread's read cache: the managers a thread read most
/// recently are served from it; others take the arc-swap load.
pub(super) const READ_CACHE_ENTRIES: usize = 4;

thread_local! {
    /// The slots this thread read last.
    pub(super) static READ_CACHE: RefCell<ReadCache> = const { RefCell::new(ReadCache::new()) };
}

/// One thread's read cache: `Weak`s to the slots it read last, found by
/// version (unique across managers). A `Weak` adds no reference to the
/// slot's tokens: once a slot is replaced and no [`AccessToken`] holds it,
/// it is dropped as before and its entry no longer upgrades. A hit is one
/// weak upgrade, half the atomic read-modify-writes of an arc-swap load
/// plus an `Arc` clone.
pub(super) struct ReadCache {
    /// `(slot.version, slot)`: the version is kept beside the `Weak` so a
    /// look-up upgrades only the entry it wants.
    pub(super) entries: [(u64, Weak<Slot>); READ_CACHE_ENTRIES],
    /// Where the next slot goes when no entry is dead (round robin).
    pub(super) next: usize,
}

impl ReadCache {
    const fn new() -> Self {
        ReadCache {
            entries: [const { (0, Weak::new()) }; READ_CACHE_ENTRIES],
            next: 0,
        }
    }

    /// The slot of `version`, if this thread holds it and it is alive.
    #[inline]
    pub(super) fn get(&self, version: u64) -> Option<Arc<Slot>> {
        let (_, slot) = self.entries.iter().find(|(v, _)| *v == version)?;
        slot.upgrade()
    }

    /// Remembers `slot`, in a dead entry if there is one.
    pub(super) fn remember(&mut self, slot: &Arc<Slot>) {
        let dead = self.entries.iter().position(|(_, w)| w.strong_count() == 0);
        let at = match dead {
            Some(dead) => dead,
            None => {
                let at = self.next;
                self.next = (at + 1) % READ_CACHE_ENTRIES;
                at
            }
        };
        self.entries[at] = (slot.version, Arc::downgrade(slot));
    }
}

impl Shared {
    /// The read path: the current token if valid, without locking.
    #[inline]
    pub(super) fn cached(&self) -> Option<Arc<Slot>> {
        let version = self.slot_version.load(Ordering::Acquire);
        let slot = READ_CACHE
            .try_with(|cache| cache.try_borrow().ok()?.get(version))
            .ok()
            .flatten()
            .or_else(|| self.load_slot())?;
        if slot.fresh || slot.expires.is_none_or(|at| Instant::now() < at) {
            Some(slot)
        } else {
            None
        }
    }

    /// The read path without the cache hit: loads the slot and remembers
    /// it for this thread under its own version.
    #[cold]
    pub(super) fn load_slot(&self) -> Option<Arc<Slot>> {
        let slot = self.slot.load_full()?;
        let _ = READ_CACHE.try_with(|cache| {
            if let Ok(mut cache) = cache.try_borrow_mut() {
                cache.remember(&slot);
            }
        });
        Some(slot)
    }

    /// Publishes `slot` to the read path under a new version. Called with
    /// `inner` locked, so versions follow the order of the slots. The
    /// version is published first: a reader that loads the new slot has
    /// synchronized with the version's store, so neither it nor anyone it
    /// hands over to can go back to a cache entry of the old version.
    pub(super) fn set_slot(&self, slot: Option<Slot>) {
        let version = NEXT_SLOT_VERSION.fetch_add(1, Ordering::Relaxed);
        self.slot_version.store(version, Ordering::Release);
        self.slot
            .store(slot.map(|slot| Arc::new(Slot { version, ..slot })));
    }
}
