//! [`TokenManager`]: one always-fresh token, its background refresh task,
//! its events and its state.
//!
//! Design (after smithy-rs's lazy identity cache), one file per part:
//!
//! - `read_path.rs`: the read path hands out an immutable `Slot`,
//!   published in an `ArcSwapOption` with a version number. Each thread
//!   remembers the slots it read last as `Weak`s keyed by version: while
//!   the version is unchanged, a read is one atomic load and one weak
//!   upgrade (half the read-modify-writes of an arc-swap load plus an `Arc`
//!   clone), and the `Weak`s keep no tokens alive once replaced. A slot
//!   marked `fresh` is handed out without reading any clock: the background
//!   task promises to replace it before it needs refreshing. Any other slot
//!   is checked against tokio's clock. No lock, no allocation.
//! - `state.rs`: every write (store, clear, refresh result, expiry) happens
//!   under one `std::sync::Mutex` that is never held across an `.await`,
//!   and republishes the slot; the schedule, backoff and outcomes live there.
//! - `driver.rs`: one background task per manager runs every refresh, so
//!   there is never more than one in flight. Callers that need a token ask
//!   it for an attempt (or join the one running) and wait for that
//!   attempt's outcome. The task holds only a `Weak` to the manager;
//!   dropping the last handle aborts it.
//! - `attempt.rs`: one attempt, alone or through a shared store (lease,
//!   load what another process refreshed, or refresh and save).
//! - `builder.rs`: the settings and their defaults; `events.rs`: what a
//!   manager reports.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use onesoidc_core::TokenSet;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_stream::Stream;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::error::TokenError;
use crate::refresh::RefreshFn;
use crate::store::StoreError;

mod attempt;
mod builder;
mod driver;
mod events;
mod read_path;
mod state;
#[cfg(test)]
mod tests;

pub use builder::{
    DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX, DEFAULT_EVENT_CAPACITY, DEFAULT_REFRESH_JITTER,
    DEFAULT_REFRESH_SKEW, DEFAULT_REFRESH_TIMEOUT, DEFAULT_STORE_LEASE, JitterSource,
    TokenManagerBuilder, WallClock,
};
pub use events::{TokenEvent, TokenState};
pub use read_path::AccessToken;
use read_path::{ManagerDpop, Obtain};
pub(crate) use state::Shared;
use state::{compute_state, lock};

/// Keeps one set of tokens valid: hands out the access token, refreshes it
/// ahead of expiry in the background, and reports what happens.
///
/// - [`access_token`](Self::access_token) returns a valid token. While the
///   token is valid this is one atomic load and an `Arc` clone. When it has
///   expired (or there is none), one refresh runs however many callers
///   wait, and all of them get its result.
/// - A background task refreshes `skew + jitter` before expiry, retries
///   failures with capped exponential backoff while the old token is valid,
///   and emits [`TokenEvent::Expired`] at expiry if it could not refresh.
///   Callers never get an expired token.
/// - A rejected refresh token (`invalid_grant`), or none at all, stops refreshing:
///   [`TokenEvent::RefreshFailed`] with `reauth_required: true`, and
///   [`TokenError::ReauthRequired`] once the token has expired.
///
/// Cheap to clone (an `Arc`); clones share everything. When the last clone
/// is dropped the background task ends.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::{Duration, SystemTime};
/// use onesoidc_core::{ExposeSecret, TokenSet};
/// use onesoidc_tokens::{TokenManager, refresh_fn};
///
/// let manager = TokenManager::builder("device", refresh_fn(|_current| async {
///     Ok(TokenSet {
///         access_token: "fresh".to_string().into(),
///         token_type: "Bearer".into(),
///         expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
///         refresh_token: None,
///         id_token: None,
///         scope: None,
///         dpop_jkt: None,
///     })
/// }))
/// .refresh_skew(Duration::from_secs(120))
/// .build();
/// // No tokens yet: the first call fetches them.
/// assert_eq!(manager.access_token().await.unwrap().expose_secret(), "fresh");
/// assert!(manager.state().is_valid());
/// # }
/// ```
#[derive(Clone)]
pub struct TokenManager {
    shared: Arc<Shared>,
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("name", &self.name())
            .field("state", &self.state())
            .finish()
    }
}

impl TokenManager {
    /// A builder for a manager called `name` that gets tokens with `refresh`.
    pub fn builder(name: impl Into<String>, refresh: RefreshFn) -> TokenManagerBuilder {
        TokenManagerBuilder::new(name.into(), refresh)
    }

    /// A manager with every default; see [`TokenManagerBuilder`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn new(name: impl Into<String>, refresh: RefreshFn) -> Self {
        Self::builder(name, refresh).build()
    }

    /// The manager's name (e.g. `"device"`, `"ciba_user"`).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// A valid access token, refreshing first if there is none.
    ///
    /// Errors: [`TokenError::Expired`] or [`TokenError::RefreshFailed`] when
    /// refreshing failed (callers within the backoff delay get the same
    /// error without a new attempt), [`TokenError::ReauthRequired`] when the
    /// refresh token was rejected, [`TokenError::Stopped`] after shutdown.
    ///
    /// On a valid token the future is ready when first polled: no lock, no
    /// allocation, no clock read while a refresh is scheduled well ahead.
    pub fn access_token(
        &self,
    ) -> impl Future<Output = Result<AccessToken, TokenError>> + Send + '_ {
        Obtain::new(&self.shared)
    }

    /// Like [`access_token`](Self::access_token), returning all the tokens.
    pub fn tokens(&self) -> impl Future<Output = Result<Arc<TokenSet>, TokenError>> + Send + '_ {
        Obtain::new(&self.shared)
    }

    /// The latest `DPoP-Nonce` of each application this manager's bound
    /// tokens are used at: [`AccessToken::authorize`] sends it. Keep an
    /// application's answers' nonces here (RFC 9449 §9), e.g.
    /// `manager.dpop_nonces().map(|n| n.set(&url, nonce))`. `None` without a
    /// [DPoP key](TokenManagerBuilder::dpop_key).
    pub fn dpop_nonces(&self) -> Option<&onesoidc_core::DpopNonces> {
        self.shared.config.dpop.as_deref().map(ManagerDpop::nonces)
    }

    /// The tokens held now, valid or expired, without refreshing (e.g. to
    /// read the refresh token). `None` when there are none.
    pub fn current(&self) -> Option<Arc<TokenSet>> {
        self.shared.lock().tokens.clone()
    }

    /// Replaces the tokens (e.g. after a CIBA or QR login), resets failures,
    /// and schedules their refresh. Emits [`TokenEvent::Stored`]. A refresh
    /// in flight (here, or in another process sharing the store) is
    /// discarded when it ends: its tokens are neither handed out nor saved.
    /// With a store, saves (replacing what is there, in a new generation)
    /// before the future completes; the new tokens are in use from the
    /// first poll.
    pub async fn store(&self, tokens: TokenSet) {
        let shared = &self.shared;
        let tokens = Arc::new(tokens);
        {
            let mut inner = shared.lock();
            inner.generation += 1;
            // Known again once saved.
            inner.store_generation = None;
            shared.supersede_pending(&mut inner);
            shared.install(&mut inner, tokens.clone(), Instant::now());
            shared.emit(
                &inner,
                TokenEvent::Stored {
                    expires_at: tokens.expiry(),
                },
            );
        }
        shared.wake.notify_one();
        shared.done.notify_waiters();
        shared.persist(&tokens).await;
    }

    /// Refreshes now, even if the token is valid, and returns the new tokens
    /// (joining a refresh already in flight). Also retries after a rejected
    /// refresh token or within the backoff delay. On failure the old token,
    /// if still valid, stays in use.
    pub async fn force_refresh(&self) -> Result<Arc<TokenSet>, TokenError> {
        self.shared.obtain(true).await
    }

    /// Drops the tokens (e.g. on logout) and removes them from the store
    /// (leaving a tombstone) before the future completes. Emits
    /// [`TokenEvent::Cleared`]. A refresh in flight, here or in another
    /// process sharing the store, is discarded when it ends: its tokens are
    /// neither handed out nor saved, and a manager in another process drops
    /// its tokens at its next refresh. The next
    /// [`access_token`](Self::access_token) fetches anew.
    pub async fn clear(&self) {
        let shared = &self.shared;
        {
            let mut inner = shared.lock();
            inner.generation += 1;
            shared.drop_tokens(&mut inner, Instant::now());
        }
        shared.wake.notify_one();
        shared.done.notify_waiters();
        shared.persist_removal().await;
    }

    /// A stream of what happens from now on: [`TokenEvent::Refreshed`],
    /// [`TokenEvent::Loaded`], [`TokenEvent::Stored`],
    /// [`TokenEvent::RefreshFailed`], [`TokenEvent::Expired`],
    /// [`TokenEvent::Cleared`], and with a store
    /// [`TokenEvent::StoreUnavailable`] and [`TokenEvent::StoreAvailable`].
    ///
    /// Each subscriber gets every event; one that falls more than
    /// [`event_capacity`](TokenManagerBuilder::event_capacity) events behind
    /// skips the oldest. The stream ends when the manager is shut down or
    /// dropped. To know where things stand when subscribing, read
    /// [`state`](Self::state) or use [`watch_state`](Self::watch_state).
    pub fn events(&self) -> impl Stream<Item = TokenEvent> + Send + Unpin + 'static {
        let receiver = {
            let mut inner = self.shared.lock();
            if inner.driver_alive {
                let capacity = self.shared.config.event_capacity;
                inner
                    .events
                    .get_or_insert_with(|| broadcast::channel(capacity).0)
                    .subscribe()
            } else {
                broadcast::channel(1).1
            }
        };
        let name = self.shared.name.clone();
        tokio_stream::StreamExt::filter_map(
            BroadcastStream::new(receiver),
            move |item| match item {
                Ok(event) => Some(event),
                Err(BroadcastStreamRecvError::Lagged(skipped)) => {
                    tracing::debug!(manager = %name, skipped, "slow event subscriber skipped events");
                    None
                }
            },
        )
    }

    /// The store's error while it is failing: its last call failed and
    /// none has worked since (the state a late subscriber to
    /// [`events`](Self::events) missed [`TokenEvent::StoreUnavailable`]
    /// for); `None` with no store or a working one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use onesoidc_tokens::TokenManager;
    /// let manager = TokenManager::new("device", onesoidc_tokens::refresh_fn(|_| async {
    ///     Err(onesoidc_core::Error::LoginRequired { reason: "none".into() })
    /// }));
    /// assert!(manager.store_unavailable().is_none());
    /// # }
    /// ```
    pub fn store_unavailable(&self) -> Option<Arc<StoreError>> {
        self.shared.lock().store_failing.clone()
    }

    /// Where the manager stands now.
    pub fn state(&self) -> TokenState {
        let shared = &self.shared;
        compute_state(&shared.lock(), Instant::now())
    }

    /// The state now and every change from here on (a `watch` channel: a
    /// late subscriber sees the current state at once).
    pub fn watch_state(&self) -> watch::Receiver<TokenState> {
        let mut inner = self.shared.lock();
        if let Some(sender) = &inner.state {
            return sender.subscribe();
        }
        let (sender, receiver) = watch::channel(compute_state(&inner, Instant::now()));
        if inner.driver_alive {
            inner.state = Some(sender);
        }
        receiver
    }

    /// Stops the background task and waits for it to end: a refresh in
    /// flight is abandoned, but loading or saving the tokens it was built
    /// with finishes first. Afterwards the manager hands out its current
    /// token until it expires, then [`TokenError::Stopped`]; event streams
    /// end. Dropping every handle stops the task too, without waiting.
    pub async fn shutdown(&self) {
        let task = lock(&self.shared.task).take();
        if let Some(task) = task {
            self.shared.stop.notify_one();
            let _ = task.await;
        }
    }

    /// A weak link to this manager's state (for a client it lends its token to).
    #[cfg_attr(not(feature = "flows"), allow(dead_code))]
    pub(crate) fn downgrade_shared(&self) -> std::sync::Weak<Shared> {
        std::sync::Arc::downgrade(&self.shared)
    }

    /// The manager of `shared`.
    #[cfg_attr(not(feature = "flows"), allow(dead_code))]
    pub(crate) fn from_shared(shared: std::sync::Arc<Shared>) -> Self {
        TokenManager { shared }
    }

    #[cfg(test)]
    pub(crate) fn downgrade(
        &self,
    ) -> (
        std::sync::Weak<Shared>,
        std::sync::Weak<tokio::sync::Notify>,
    ) {
        (
            Arc::downgrade(&self.shared),
            Arc::downgrade(&self.shared.wake),
        )
    }
}
