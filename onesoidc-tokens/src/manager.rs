//! [`TokenManager`]: one always-fresh token, its background refresh task,
//! its events and its state.
//!
//! Design (after smithy-rs's lazy identity cache):
//!
//! - The read path hands out an immutable [`Slot`], published in an
//!   [`ArcSwapOption`] with a version number. Each thread remembers the
//!   slots it read last as `Weak`s keyed by version: while the version is
//!   unchanged, a read is one atomic load and one weak upgrade (half the
//!   read-modify-writes of an arc-swap load plus an `Arc` clone), and the
//!   `Weak`s keep no tokens alive once replaced. A slot marked `fresh` is
//!   handed out without reading any clock: the background task promises to
//!   replace it before it needs refreshing. Any other slot is checked
//!   against tokio's clock. No lock, no allocation.
//! - Every write (store, clear, refresh result, expiry) happens under one
//!   `std::sync::Mutex` that is never held across an `.await`, and
//!   republishes the slot.
//! - One background task per manager runs every refresh, so there is never
//!   more than one in flight. Callers that need a token ask it for an
//!   attempt (or join the one running) and wait for that attempt's outcome.
//!   The task holds only a `Weak` to the manager; dropping the last handle
//!   aborts it.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use onesoidc_core::{Error, ExposeSecret, TokenSet, TransportError, TransportErrorKind};
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::Stream;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tracing::Instrument;

use crate::error::{TokenError, requires_reauth};
use crate::refresh::RefreshFn;
use crate::store::TokenStore;

/// Default [`TokenManagerBuilder::refresh_skew`]: refresh 60 s before expiry.
pub const DEFAULT_REFRESH_SKEW: Duration = Duration::from_secs(60);
/// Default [`TokenManagerBuilder::jitter`]: up to 30 s more lead, at random.
pub const DEFAULT_REFRESH_JITTER: Duration = Duration::from_secs(30);
/// Default first retry delay of [`TokenManagerBuilder::backoff`].
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// Default cap on the retry delay of [`TokenManagerBuilder::backoff`].
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Default [`TokenManagerBuilder::refresh_timeout`].
pub const DEFAULT_REFRESH_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`TokenManagerBuilder::event_capacity`].
pub const DEFAULT_EVENT_CAPACITY: usize = 16;

/// A slot is handed out without a clock check only while the background
/// task is due to wake at least this long before the token expires.
const FRESH_MARGIN: Duration = Duration::from_secs(5);

/// A source of jitter fractions in `[0, 1)`; see [`TokenManagerBuilder::jitter_source`].
pub type JitterSource = Arc<dyn Fn() -> f64 + Send + Sync>;

/// The wall clock; see [`TokenManagerBuilder::wall_clock`].
pub type WallClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// What happened to a manager's tokens; see [`TokenManager::events`].
///
/// Never carries a token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TokenEvent {
    /// A refresh succeeded: the manager holds new tokens.
    Refreshed {
        /// When the new access token expires, if known.
        expires_at: Option<SystemTime>,
    },
    /// Tokens were put in with [`TokenManager::store`] (e.g. after a login).
    Stored {
        /// When the access token expires, if known.
        expires_at: Option<SystemTime>,
    },
    /// A refresh failed.
    RefreshFailed {
        /// Why.
        error: Arc<Error>,
        /// The refresh token was rejected (or missing): the manager stops
        /// refreshing until new tokens are stored, as after a new login.
        /// Otherwise it retries with backoff while the token is valid.
        reauth_required: bool,
    },
    /// The access token expired without being replaced. From now on callers
    /// get an error until a refresh succeeds or tokens are stored.
    Expired,
    /// [`TokenManager::clear`] dropped the tokens.
    Cleared,
}

/// Where a manager stands; see [`TokenManager::state`] and
/// [`TokenManager::watch_state`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TokenState {
    /// No tokens: none fetched yet, or cleared.
    Empty,
    /// A valid access token.
    Valid {
        /// When it expires, if known.
        expires_at: Option<SystemTime>,
    },
    /// A valid access token, but refreshing it has failed; retries run with
    /// backoff while it stays valid.
    RefreshFailing {
        /// When the token expires, if known.
        expires_at: Option<SystemTime>,
        /// Failed attempts in a row.
        failures: u32,
        /// The last failure.
        error: Arc<Error>,
    },
    /// The access token expired; the next caller triggers a refresh (after
    /// the backoff delay, if the last one failed).
    Expired {
        /// The last refresh failure, if a refresh was tried.
        error: Option<Arc<Error>>,
    },
    /// No tokens, and fetching them failed.
    Failed {
        /// Why.
        error: Arc<Error>,
    },
    /// The refresh token was rejected, or there is none: log in again and
    /// [`store`](TokenManager::store) the new tokens. Until the current
    /// access token expires, it is still handed out.
    ReauthRequired {
        /// The provider's answer, or [`Error::LoginRequired`].
        error: Arc<Error>,
    },
    /// The manager was shut down; it hands out no more tokens once the
    /// current one expires.
    Stopped,
}

impl TokenState {
    /// Whether the manager holds a usable access token.
    pub fn is_valid(&self) -> bool {
        matches!(
            self,
            TokenState::Valid { .. } | TokenState::RefreshFailing { .. }
        )
    }
}

/// A valid access token, as handed out by [`TokenManager::access_token`].
///
/// A cheap handle (one `Arc`) on the tokens the manager held when it was
/// handed out; it keeps them alive while it lives, and a later refresh
/// does not change it. Read the token with [`ExposeSecret::expose_secret`];
/// `Debug` redacts it.
///
/// ```
/// # async fn run(manager: onesoidc_tokens::TokenManager) -> Result<(), onesoidc_tokens::TokenError> {
/// use onesoidc_core::ExposeSecret;
/// let token = manager.access_token().await?;
/// let header = format!("Bearer {}", token.expose_secret());
/// # let _ = header; Ok(()) }
/// ```
#[derive(Clone)]
pub struct AccessToken(Arc<Slot>);

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
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.0.tokens.expires_at
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
            .field("expires_at", &self.0.tokens.expires_at)
            .finish()
    }
}

/// Configures and builds a [`TokenManager`]. Every setting has a default,
/// given on its method.
#[must_use]
pub struct TokenManagerBuilder {
    name: String,
    refresh: RefreshFn,
    skew: Duration,
    jitter: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    refresh_timeout: Duration,
    event_capacity: usize,
    jitter_source: Option<JitterSource>,
    wall_clock: Option<WallClock>,
    store: Option<Arc<dyn TokenStore>>,
    initial: Option<TokenSet>,
}

impl fmt::Debug for TokenManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManagerBuilder")
            .field("name", &self.name)
            .field("refresh_skew", &self.skew)
            .field("jitter", &self.jitter)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("refresh_timeout", &self.refresh_timeout)
            .field("event_capacity", &self.event_capacity)
            .field("store", &self.store.is_some())
            .field("initial_tokens", &self.initial.is_some())
            .finish_non_exhaustive()
    }
}

impl TokenManagerBuilder {
    fn new(name: String, refresh: RefreshFn) -> Self {
        TokenManagerBuilder {
            name,
            refresh,
            skew: DEFAULT_REFRESH_SKEW,
            jitter: DEFAULT_REFRESH_JITTER,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            refresh_timeout: DEFAULT_REFRESH_TIMEOUT,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            jitter_source: None,
            wall_clock: None,
            store: None,
            initial: None,
        }
    }

    /// How long before expiry the background refresh starts. Default 60 s
    /// ([`DEFAULT_REFRESH_SKEW`]).
    ///
    /// The lead is `skew + jitter × u` (`u` from the
    /// [`jitter_source`](Self::jitter_source)), but never more than half the
    /// token's remaining life: a token that lives less than twice the lead is
    /// refreshed halfway through.
    pub fn refresh_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// The most extra lead, drawn at random per token so a fleet of managers
    /// whose tokens expire together does not refresh in the same second.
    /// Default 30 s ([`DEFAULT_REFRESH_JITTER`]): refreshes spread uniformly
    /// over 60–90 s before expiry.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Retry delays after a failed refresh: `initial`, then doubling, capped
    /// at `max`; each drawn uniformly from `(d/2, d]` (jitter). Defaults 1 s
    /// and 30 s ([`DEFAULT_BACKOFF_INITIAL`], [`DEFAULT_BACKOFF_MAX`]).
    /// `initial` is at least 1 ms and `max` at least `initial`.
    ///
    /// Background retries run only while the old token is valid. Once it
    /// has expired (or when there is none), the next caller's request
    /// triggers a refresh, but not before the delay since the last failure
    /// has passed: until then callers get the last error at once.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }

    /// How long one refresh may take before it counts as failed (a transport
    /// timeout). Default 30 s ([`DEFAULT_REFRESH_TIMEOUT`]); at least 1 ms.
    pub fn refresh_timeout(mut self, timeout: Duration) -> Self {
        self.refresh_timeout = timeout;
        self
    }

    /// How many events a slow [`events`](TokenManager::events) subscriber
    /// may fall behind before it skips the oldest. Default 16
    /// ([`DEFAULT_EVENT_CAPACITY`]); at least 1.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// Where jitter fractions come from: a function returning values in
    /// `[0, 1)` (others are clamped). Default: uniform random numbers from
    /// `rand`'s thread-local generator. Tests pass a constant, or a seeded
    /// generator, to make timing exact.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # let refresh = onesoidc_tokens::refresh_fn(|_| async { unimplemented!() });
    /// let builder = onesoidc_tokens::TokenManager::builder("device", refresh).jitter_source(|| 0.0);
    /// # let _ = builder;
    /// ```
    pub fn jitter_source(mut self, source: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.jitter_source = Some(Arc::new(source));
        self
    }

    /// The wall clock, read once per token to turn
    /// [`TokenSet::expires_at`] into a deadline on tokio's clock. Default
    /// [`SystemTime::now`]. All scheduling then uses tokio's clock, so a
    /// paused runtime (`#[tokio::test(start_paused = true)]`) with a fixed
    /// wall clock makes every time exact.
    ///
    /// tokio's clock is monotonic: on Linux it does not advance while the
    /// machine is suspended, so after a resume the deadlines lag by the
    /// suspended time. Call [`force_refresh`](TokenManager::force_refresh)
    /// after a resume if that matters (laptops; not servers).
    pub fn wall_clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.wall_clock = Some(Arc::new(clock));
        self
    }

    /// Keeps the tokens in `store` so a restart does not need a new login.
    /// Default: none (tokens live in memory only).
    ///
    /// [`build`](Self::build) loads the saved tokens (unless
    /// [`initial_tokens`](Self::initial_tokens) are given); every refresh and
    /// [`store`](TokenManager::store) saves, [`clear`](TokenManager::clear)
    /// removes. Saved tokens that have expired are still loaded, so a user
    /// manager can use their refresh token.
    pub fn store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Tokens to start with (saved to the store, if any). Default: none, or
    /// what the store holds; a manager without tokens fetches on first use.
    pub fn initial_tokens(mut self, tokens: TokenSet) -> Self {
        self.initial = Some(tokens);
        self
    }

    /// Builds the manager and starts its background task.
    ///
    /// The task is spawned on the current tokio runtime, which needs its
    /// time driver (`enable_all()` or `enable_time()`; `#[tokio::main]` and
    /// `#[tokio::test]` have it), and lives as long as the manager or that
    /// runtime, whichever ends first.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn build(self) -> TokenManager {
        let runtime = tokio::runtime::Handle::try_current().unwrap_or_else(|_| {
            panic!(
                "TokenManager `{}` must be built inside a tokio runtime",
                self.name
            )
        });
        let name: Arc<str> = self.name.into();
        let backoff_initial = self.backoff_initial.max(Duration::from_millis(1));
        let config = Config {
            refresh: self.refresh,
            skew: self.skew,
            jitter: self.jitter,
            backoff_initial,
            backoff_max: self.backoff_max.max(backoff_initial),
            refresh_timeout: self.refresh_timeout.max(Duration::from_millis(1)),
            event_capacity: self.event_capacity.max(1),
            jitter_source: self
                .jitter_source
                .unwrap_or_else(|| Arc::new(rand::random::<f64>)),
            wall_clock: self.wall_clock.unwrap_or_else(|| Arc::new(SystemTime::now)),
            store: self.store,
        };
        let (initial, save) = match self.initial {
            Some(tokens) => (Some(tokens), true),
            None => (load_from_store(&name, config.store.as_deref()), false),
        };
        let shared = Arc::new(Shared {
            name,
            config,
            slot: ArcSwapOption::empty(),
            slot_version: AtomicU64::new(NEXT_SLOT_VERSION.fetch_add(1, Ordering::Relaxed)),
            inner: Mutex::new(Inner {
                driver_alive: true,
                ..Inner::default()
            }),
            wake: Arc::new(Notify::new()),
            done: Notify::new(),
            task: Mutex::new(None),
            persist: Mutex::new(()),
        });
        if let Some(tokens) = initial {
            let tokens = Arc::new(tokens);
            {
                let mut inner = shared.lock();
                shared.install(&mut inner, tokens.clone(), Instant::now());
            }
            if save {
                shared.persist(&tokens);
            }
        }
        let driver = drive(DriverGuard(Arc::downgrade(&shared)), shared.wake.clone());
        let task = runtime.spawn(driver);
        *lock(&shared.task) = Some(task);
        TokenManager { shared }
    }
}

fn load_from_store(name: &str, store: Option<&dyn TokenStore>) -> Option<TokenSet> {
    match store?.load(name) {
        Ok(tokens) => tokens,
        Err(error) => {
            tracing::warn!(manager = name, "cannot load saved tokens: {error}");
            None
        }
    }
}

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

    /// The tokens held now, valid or expired, without refreshing (e.g. to
    /// read the refresh token). `None` when there are none.
    pub fn current(&self) -> Option<Arc<TokenSet>> {
        self.shared.lock().tokens.clone()
    }

    /// Replaces the tokens (e.g. after a CIBA or QR login), resets failures,
    /// and schedules their refresh. Emits [`TokenEvent::Stored`]. A refresh
    /// in flight is discarded when it ends. With a store, saves before
    /// returning.
    pub fn store(&self, tokens: TokenSet) {
        let shared = &self.shared;
        let tokens = Arc::new(tokens);
        {
            let mut inner = shared.lock();
            inner.generation += 1;
            shared.supersede_pending(&mut inner);
            shared.install(&mut inner, tokens.clone(), Instant::now());
            shared.emit(
                &inner,
                TokenEvent::Stored {
                    expires_at: tokens.expires_at,
                },
            );
        }
        shared.wake.notify_one();
        shared.done.notify_waiters();
        shared.persist(&tokens);
    }

    /// Refreshes now, even if the token is valid, and returns the new tokens
    /// (joining a refresh already in flight). Also retries after a rejected
    /// refresh token or within the backoff delay. On failure the old token,
    /// if still valid, stays in use.
    pub async fn force_refresh(&self) -> Result<Arc<TokenSet>, TokenError> {
        self.shared.obtain(true).await
    }

    /// Drops the tokens (e.g. on logout) and removes them from the store.
    /// Emits [`TokenEvent::Cleared`]. The next
    /// [`access_token`](Self::access_token) fetches anew.
    pub fn clear(&self) {
        let shared = &self.shared;
        {
            let mut inner = shared.lock();
            inner.generation += 1;
            shared.supersede_pending(&mut inner);
            inner.tokens = None;
            inner.expires = None;
            inner.expiry_announced = false;
            inner.refresh_at = None;
            inner.failures = 0;
            inner.last_failure = None;
            inner.reauth = None;
            let now = Instant::now();
            shared.publish_slot(&inner, now);
            shared.publish_state(&inner, now);
            shared.emit(&inner, TokenEvent::Cleared);
        }
        shared.wake.notify_one();
        shared.done.notify_waiters();
        shared.persist_removal();
    }

    /// A stream of what happens from now on: [`TokenEvent::Refreshed`],
    /// [`TokenEvent::Stored`], [`TokenEvent::RefreshFailed`],
    /// [`TokenEvent::Expired`], [`TokenEvent::Cleared`].
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

    /// Stops the background task and waits for it to end. Afterwards the
    /// manager hands out its current token until it expires, then
    /// [`TokenError::Stopped`]; event streams end. Dropping every handle
    /// stops the task too, without waiting.
    pub async fn shutdown(&self) {
        let task = lock(&self.shared.task).take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    #[cfg(test)]
    pub(crate) fn downgrade(&self) -> (Weak<Shared>, Weak<Notify>) {
        (
            Arc::downgrade(&self.shared),
            Arc::downgrade(&self.shared.wake),
        )
    }
}

/// What the read path sees. Immutable; replaced on every change.
struct Slot {
    /// From [`NEXT_SLOT_VERSION`] when published; 0 for a slot that never
    /// was (the slow path's answer).
    version: u64,
    tokens: Arc<TokenSet>,
    /// The deadline on tokio's clock, if the token expires.
    expires: Option<Instant>,
    /// The background task will replace this slot before the token needs
    /// refreshing (and so long before it expires): no clock check needed.
    fresh: bool,
}

struct Config {
    refresh: RefreshFn,
    skew: Duration,
    jitter: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    refresh_timeout: Duration,
    event_capacity: usize,
    jitter_source: JitterSource,
    wall_clock: WallClock,
    store: Option<Arc<dyn TokenStore>>,
}

/// The future of [`TokenManager::access_token`] and [`TokenManager::tokens`].
///
/// Hand-written rather than an `async fn` so that `poll` inlines into the
/// caller: on a valid token it is the read cache's look-up and the
/// freshness check, without a state machine written to and read back from
/// memory (BENCHMARKS.md, item 1). Polled again after it completed, it
/// looks at the token again.
struct Obtain<'a, T> {
    shared: &'a Shared,
    /// The refresh being waited for, once the read path found no valid token.
    slow: Option<SlowPath<'a>>,
    output: PhantomData<fn() -> T>,
}

/// [`Shared::obtain`], boxed, so the read path's future stays a few words
/// long and the slow path's state is allocated only when it is taken.
type SlowPath<'a> = Pin<Box<dyn Future<Output = Result<Arc<TokenSet>, TokenError>> + Send + 'a>>;

/// What [`Obtain`] yields: built from a published slot (the read path) or
/// from the tokens a refresh returned (the slow path).
trait FromTokens {
    fn from_slot(slot: Arc<Slot>) -> Self;
    fn from_tokens(tokens: Arc<TokenSet>) -> Self;
}

impl FromTokens for AccessToken {
    #[inline]
    fn from_slot(slot: Arc<Slot>) -> Self {
        AccessToken(slot)
    }

    fn from_tokens(tokens: Arc<TokenSet>) -> Self {
        AccessToken(Arc::new(Slot {
            version: 0,
            tokens,
            expires: None,
            fresh: false,
        }))
    }
}

impl FromTokens for Arc<TokenSet> {
    #[inline]
    fn from_slot(slot: Arc<Slot>) -> Self {
        slot.tokens.clone()
    }

    fn from_tokens(tokens: Arc<TokenSet>) -> Self {
        tokens
    }
}

impl<'a, T> Obtain<'a, T> {
    fn new(shared: &'a Shared) -> Self {
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
                    return Poll::Ready(Ok(T::from_slot(slot)));
                }
                this.slow.insert(Box::pin(this.shared.obtain(false)))
            }
        };
        let result = std::task::ready!(slow.as_mut().poll(cx));
        this.slow = None;
        Poll::Ready(result.map(T::from_tokens))
    }
}

/// Versions of published slots, unique across all managers, so that a
/// thread's read cache can key on the version alone.
static NEXT_SLOT_VERSION: AtomicU64 = AtomicU64::new(1);

/// Entries of each thread's read cache: the managers a thread read most
/// recently are served from it; others take the arc-swap load.
const READ_CACHE_ENTRIES: usize = 4;

thread_local! {
    /// The slots this thread read last.
    static READ_CACHE: RefCell<ReadCache> = const { RefCell::new(ReadCache::new()) };
}

/// One thread's read cache: `Weak`s to the slots it read last, found by
/// version (unique across managers). A `Weak` adds no reference to the
/// slot's tokens: once a slot is replaced and no [`AccessToken`] holds it,
/// it is dropped as before and its entry no longer upgrades. A hit is one
/// weak upgrade, half the atomic read-modify-writes of an arc-swap load
/// plus an `Arc` clone.
struct ReadCache {
    /// `(slot.version, slot)`: the version is kept beside the `Weak` so a
    /// look-up upgrades only the entry it wants.
    entries: [(u64, Weak<Slot>); READ_CACHE_ENTRIES],
    /// Where the next slot goes when no entry is dead (round robin).
    next: usize,
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
    fn get(&self, version: u64) -> Option<Arc<Slot>> {
        let (_, slot) = self.entries.iter().find(|(v, _)| *v == version)?;
        slot.upgrade()
    }

    /// Remembers `slot`, in a dead entry if there is one.
    fn remember(&mut self, slot: &Arc<Slot>) {
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

pub(crate) struct Shared {
    name: Arc<str>,
    config: Config,
    slot: ArcSwapOption<Slot>,
    /// The version of the slot being published, from [`NEXT_SLOT_VERSION`];
    /// stored (Release) just before the slot itself (see
    /// [`Shared::set_slot`]), and equal to that slot's `version`.
    slot_version: AtomicU64,
    inner: Mutex<Inner>,
    /// Wakes the background task: the schedule changed or a caller needs a refresh.
    wake: Arc<Notify>,
    /// Wakes callers waiting for an attempt's outcome.
    done: Notify,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Serializes writes to the store.
    persist: Mutex<()>,
}

#[derive(Default)]
struct Inner {
    tokens: Option<Arc<TokenSet>>,
    /// Deadline of `tokens` on tokio's clock.
    expires: Option<Instant>,
    expiry_announced: bool,
    /// Next background refresh attempt.
    refresh_at: Option<Instant>,
    failures: u32,
    last_failure: Option<Failure>,
    /// Set when the refresh token was rejected; cleared by store/clear/success.
    reauth: Option<Arc<Error>>,
    /// Attempt ids; the first is 1.
    last_seq: u64,
    /// An attempt callers asked for that has not started.
    pending: Option<u64>,
    running: Option<u64>,
    /// The last finished attempt.
    outcome: Option<Outcome>,
    /// Bumped by store and clear: an attempt started before is discarded.
    generation: u64,
    /// True from build until the background task ends.
    driver_alive: bool,
    events: Option<broadcast::Sender<TokenEvent>>,
    state: Option<watch::Sender<TokenState>>,
}

struct Failure {
    error: Arc<Error>,
    /// No caller-triggered attempt before this.
    retry_after: Instant,
}

#[derive(Clone)]
struct Outcome {
    seq: u64,
    result: AttemptResult,
}

#[derive(Clone)]
enum AttemptResult {
    Done(Arc<TokenSet>),
    Failed(TokenError),
    /// Tokens were stored or cleared meanwhile; look again.
    Superseded,
}

impl Inner {
    fn is_valid(&self, now: Instant) -> bool {
        self.tokens.is_some() && self.expires.is_none_or(|at| at > now)
    }

    fn valid_tokens(&self, now: Instant) -> Option<Arc<TokenSet>> {
        if self.is_valid(now) {
            self.tokens.clone()
        } else {
            None
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    /// The deadline the task still has to announce.
    fn pending_expiry(&self) -> Option<Instant> {
        if self.tokens.is_some() && !self.expiry_announced {
            self.expires
        } else {
            None
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `now + d`, saturating at about 30 years.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
}

fn compute_state(inner: &Inner, now: Instant) -> TokenState {
    if !inner.driver_alive {
        return TokenState::Stopped;
    }
    if let Some(error) = &inner.reauth {
        return TokenState::ReauthRequired {
            error: error.clone(),
        };
    }
    let last_error = inner.last_failure.as_ref().map(|f| f.error.clone());
    match &inner.tokens {
        None => match last_error {
            None => TokenState::Empty,
            Some(error) => TokenState::Failed { error },
        },
        Some(tokens) if inner.is_valid(now) => match last_error {
            None => TokenState::Valid {
                expires_at: tokens.expires_at,
            },
            Some(error) => TokenState::RefreshFailing {
                expires_at: tokens.expires_at,
                failures: inner.failures,
                error,
            },
        },
        Some(_) => TokenState::Expired { error: last_error },
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// The read path: the current token if valid, without locking.
    #[inline]
    fn cached(&self) -> Option<Arc<Slot>> {
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
    fn load_slot(&self) -> Option<Arc<Slot>> {
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
    fn set_slot(&self, slot: Option<Slot>) {
        let version = NEXT_SLOT_VERSION.fetch_add(1, Ordering::Relaxed);
        self.slot_version.store(version, Ordering::Release);
        self.slot
            .store(slot.map(|slot| Arc::new(Slot { version, ..slot })));
    }

    fn jitter_fraction(&self) -> f64 {
        let u = (self.config.jitter_source)();
        if u.is_finite() {
            u.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// `tokens.expires_at` as a deadline on tokio's clock.
    fn deadline(&self, tokens: &TokenSet, now: Instant) -> Option<Instant> {
        let at = tokens.expires_at?;
        let left = at
            .duration_since((self.config.wall_clock)())
            .unwrap_or(Duration::ZERO);
        // Too far away to represent: it never expires in practice.
        now.checked_add(left)
    }

    /// When to refresh a token that expires at `expires`.
    fn schedule_refresh(&self, now: Instant, expires: Instant) -> Option<Instant> {
        let remaining = expires.saturating_duration_since(now);
        if remaining.is_zero() {
            return None;
        }
        let jitter = self.config.jitter.as_secs_f64() * self.jitter_fraction();
        let jitter = Duration::try_from_secs_f64(jitter).unwrap_or(self.config.jitter);
        let lead = self.config.skew.saturating_add(jitter).min(remaining / 2);
        Some(expires - lead)
    }

    /// The delay after the `failures`-th failure in a row (1-based).
    fn backoff_delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let full = self
            .config
            .backoff_initial
            .saturating_mul(1 << doublings)
            .min(self.config.backoff_max);
        full.saturating_sub(full.mul_f64(self.jitter_fraction() / 2.0))
    }

    fn publish_slot(&self, inner: &Inner, now: Instant) {
        let slot = match &inner.tokens {
            Some(tokens) if inner.is_valid(now) => {
                // Fresh: the task will wake (and republish) well before expiry,
                // with a margin in case its timer fires late.
                let fresh = inner.driver_alive
                    && inner.running.is_none()
                    && match inner.expires {
                        None => true,
                        Some(expires) => inner
                            .refresh_at
                            .is_some_and(|at| at > now && later(at, FRESH_MARGIN) < expires),
                    };
                Some(Slot {
                    version: 0,
                    tokens: tokens.clone(),
                    expires: inner.expires,
                    fresh,
                })
            }
            _ => None,
        };
        self.set_slot(slot);
    }

    fn publish_state(&self, inner: &Inner, now: Instant) {
        if let Some(sender) = &inner.state {
            sender.send_replace(compute_state(inner, now));
        }
    }

    fn emit(&self, inner: &Inner, event: TokenEvent) {
        tracing::debug!(manager = %self.name, ?event, "token event");
        if let Some(sender) = &inner.events {
            // No subscriber is fine.
            let _ = sender.send(event);
        }
    }

    /// Puts in new tokens (stored or refreshed) and schedules their refresh.
    fn install(&self, inner: &mut Inner, tokens: Arc<TokenSet>, now: Instant) {
        inner.expires = self.deadline(&tokens, now);
        inner.tokens = Some(tokens);
        inner.expiry_announced = false;
        inner.failures = 0;
        inner.last_failure = None;
        inner.reauth = None;
        inner.refresh_at = inner
            .expires
            .and_then(|expires| self.schedule_refresh(now, expires));
        self.publish_slot(inner, now);
        self.publish_state(inner, now);
    }

    /// Callers waiting for an attempt that has not started look again.
    fn supersede_pending(&self, inner: &mut Inner) {
        if let Some(seq) = inner.pending.take() {
            inner.outcome = Some(Outcome {
                seq,
                result: AttemptResult::Superseded,
            });
        }
    }

    fn expire_if_due(&self, inner: &mut Inner, now: Instant) {
        if inner.pending_expiry().is_some_and(|at| at <= now) {
            inner.expiry_announced = true;
            inner.refresh_at = None;
            self.publish_slot(inner, now);
            self.publish_state(inner, now);
            tracing::warn!(manager = %self.name, "access token expired without being refreshed");
            self.emit(inner, TokenEvent::Expired);
        }
    }

    fn error_for(&self, inner: &Inner, error: Arc<Error>, now: Instant) -> TokenError {
        let name = self.name.to_string();
        if inner.reauth.is_some() {
            TokenError::ReauthRequired {
                name,
                source: error,
            }
        } else if inner.tokens.is_some() && !inner.is_valid(now) {
            TokenError::Expired {
                name,
                source: error,
            }
        } else {
            TokenError::RefreshFailed {
                name,
                source: error,
            }
        }
    }

    fn stopped(&self) -> TokenError {
        TokenError::Stopped {
            name: self.name.to_string(),
        }
    }

    /// The slow path: a valid token, or the outcome of a refresh.
    async fn obtain(&self, mut force: bool) -> Result<Arc<TokenSet>, TokenError> {
        loop {
            let (seq, generation) = {
                let now = Instant::now();
                let mut inner = self.lock();
                if !force {
                    if let Some(tokens) = inner.valid_tokens(now) {
                        return Ok(tokens);
                    }
                }
                if !inner.driver_alive {
                    return Err(self.stopped());
                }
                if !force {
                    if let Some(error) = &inner.reauth {
                        return Err(self.error_for(&inner, error.clone(), now));
                    }
                    if let Some(failure) = &inner.last_failure {
                        if now < failure.retry_after {
                            return Err(self.error_for(&inner, failure.error.clone(), now));
                        }
                    }
                }
                let seq = match inner.running.or(inner.pending) {
                    Some(seq) => seq,
                    None => {
                        let seq = inner.next_seq();
                        inner.pending = Some(seq);
                        self.wake.notify_one();
                        seq
                    }
                };
                (seq, inner.generation)
            };
            match self.wait_outcome(seq, generation).await {
                AttemptResult::Done(tokens) => return Ok(tokens),
                AttemptResult::Failed(error) => return Err(error),
                AttemptResult::Superseded => force = false,
            }
        }
    }

    /// Waits for attempt `seq` (or a later one) to end, or for tokens to be
    /// stored or cleared (`Superseded`: the caller looks again).
    async fn wait_outcome(&self, seq: u64, generation: u64) -> AttemptResult {
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            // Register before looking, so an outcome published in between
            // still wakes us.
            notified.as_mut().enable();
            {
                let inner = self.lock();
                if let Some(outcome) = inner.outcome.as_ref().filter(|o| o.seq >= seq) {
                    return outcome.result.clone();
                }
                if inner.generation != generation {
                    return AttemptResult::Superseded;
                }
            }
            notified.await;
        }
    }

    /// Decides what the background task does next.
    fn next_step(&self, now: Instant) -> Step {
        let mut inner = self.lock();
        self.expire_if_due(&mut inner, now);
        let seq = if let Some(seq) = inner.pending.take() {
            Some(seq)
        } else if inner.refresh_at.is_some_and(|at| at <= now) {
            inner.refresh_at = None;
            Some(inner.next_seq())
        } else {
            None
        };
        match seq {
            Some(seq) => {
                inner.running = Some(seq);
                self.publish_slot(&inner, now);
                Step::Refresh(Attempt {
                    seq,
                    generation: inner.generation,
                    current: inner.tokens.clone(),
                    expiry: inner.pending_expiry(),
                    refresh: self.config.refresh.clone(),
                    timeout: self.config.refresh_timeout,
                    name: self.name.clone(),
                })
            }
            None => Step::Sleep(match (inner.refresh_at, inner.pending_expiry()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }),
        }
    }

    fn expire_now(&self, now: Instant) {
        let mut inner = self.lock();
        self.expire_if_due(&mut inner, now);
    }

    /// Records an attempt's result; returns tokens to save.
    fn finish(
        &self,
        seq: u64,
        generation: u64,
        result: Result<TokenSet, Error>,
        now: Instant,
    ) -> Option<Arc<TokenSet>> {
        let mut inner = self.lock();
        inner.running = None;
        let mut save = None;
        let result = if inner.generation != generation {
            tracing::debug!(manager = %self.name, "discarding a refresh: tokens were stored or cleared meanwhile");
            self.publish_slot(&inner, now);
            AttemptResult::Superseded
        } else {
            match result {
                Ok(tokens) => {
                    let tokens = Arc::new(tokens);
                    let failures = inner.failures;
                    self.install(&mut inner, tokens.clone(), now);
                    save = Some(tokens.clone());
                    if inner.is_valid(now) {
                        tracing::info!(
                            manager = %self.name,
                            expires_in_s = inner.expires.map(|at| at.saturating_duration_since(now).as_secs()),
                            "tokens refreshed"
                        );
                        self.emit(
                            &inner,
                            TokenEvent::Refreshed {
                                expires_at: tokens.expires_at,
                            },
                        );
                        AttemptResult::Done(tokens)
                    } else {
                        // Expired on arrival (`expires_in: 0`). Keep the tokens
                        // (a rotated refresh token must not be lost) but never
                        // hand them out, and back off as after any failure
                        // instead of asking again on every call.
                        inner.failures = failures;
                        let error = Error::InvalidResponse {
                            endpoint: format!("refresh of token manager `{}`", self.name),
                            status: 200,
                            reason: "the new access token had already expired when it arrived (expires_in 0)".into(),
                        };
                        AttemptResult::Failed(self.failed(&mut inner, error, now))
                    }
                }
                Err(error) => AttemptResult::Failed(self.failed(&mut inner, error, now)),
            }
        };
        inner.outcome = Some(Outcome { seq, result });
        drop(inner);
        self.done.notify_waiters();
        save
    }

    fn failed(&self, inner: &mut Inner, error: Error, now: Instant) -> TokenError {
        let error = Arc::new(error);
        let reauth_required = requires_reauth(&error);
        inner.failures = inner.failures.saturating_add(1);
        let delay = self.backoff_delay(inner.failures);
        let retry_after = later(now, delay);
        inner.last_failure = Some(Failure {
            error: error.clone(),
            retry_after,
        });
        inner.refresh_at = None;
        if reauth_required {
            inner.reauth = Some(error.clone());
            tracing::warn!(manager = %self.name, "refresh token rejected; a new login is needed: {error}");
        } else if inner.is_valid(now) {
            if inner.expires.is_some_and(|expires| retry_after < expires) {
                inner.refresh_at = Some(retry_after);
                tracing::warn!(
                    manager = %self.name,
                    failures = inner.failures,
                    retry_in_ms = delay.as_millis() as u64,
                    "refresh failed, will retry: {error}"
                );
            } else {
                tracing::warn!(manager = %self.name, failures = inner.failures, "refresh failed; no time left to retry before expiry: {error}");
            }
        } else {
            tracing::warn!(manager = %self.name, failures = inner.failures, "refresh failed: {error}");
        }
        self.publish_slot(inner, now);
        self.publish_state(inner, now);
        self.emit(
            inner,
            TokenEvent::RefreshFailed {
                error: error.clone(),
                reauth_required,
            },
        );
        self.error_for(inner, error, now)
    }

    /// The background task has ended (shutdown, runtime shutdown, or abort).
    fn driver_stopped(&self) {
        let mut inner = self.lock();
        inner.driver_alive = false;
        inner.pending = None;
        inner.running = None;
        inner.refresh_at = None;
        // Without the task nobody flips `fresh`: check the clock from now on.
        if let Some(slot) = self.slot.load_full() {
            self.set_slot(Some(Slot {
                version: 0,
                tokens: slot.tokens.clone(),
                expires: slot.expires,
                fresh: false,
            }));
        }
        inner.outcome = Some(Outcome {
            seq: u64::MAX,
            result: AttemptResult::Failed(self.stopped()),
        });
        if let Some(sender) = inner.state.take() {
            sender.send_replace(TokenState::Stopped);
        }
        // Ends every event stream.
        inner.events = None;
        drop(inner);
        self.done.notify_waiters();
        tracing::debug!(manager = %self.name, "token manager stopped");
    }

    fn persist(&self, tokens: &Arc<TokenSet>) {
        let Some(store) = &self.config.store else {
            return;
        };
        let _serial = lock(&self.persist);
        let current = self.lock().tokens.clone();
        // A newer set was installed: its own save wins.
        if !current.is_some_and(|current| Arc::ptr_eq(&current, tokens)) {
            return;
        }
        if let Err(error) = store.save(&self.name, tokens) {
            tracing::warn!(manager = %self.name, "cannot save tokens: {error}");
        }
    }

    fn persist_removal(&self) {
        let Some(store) = &self.config.store else {
            return;
        };
        let _serial = lock(&self.persist);
        if self.lock().tokens.is_some() {
            return;
        }
        if let Err(error) = store.remove(&self.name) {
            tracing::warn!(manager = %self.name, "cannot remove saved tokens: {error}");
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

enum Step {
    Sleep(Option<Instant>),
    Refresh(Attempt),
}

struct Attempt {
    seq: u64,
    generation: u64,
    current: Option<Arc<TokenSet>>,
    /// The deadline to announce if it passes during the attempt.
    expiry: Option<Instant>,
    refresh: RefreshFn,
    timeout: Duration,
    name: Arc<str>,
}

/// Lives in the background task's future: however the task ends (return,
/// abort, runtime shutdown, even before its first poll), the manager learns.
struct DriverGuard(Weak<Shared>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.driver_stopped();
        }
    }
}

struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The background task. Holds the manager only weakly (upgrading briefly,
/// never across an await), so dropping the last handle ends it.
async fn drive(guard: DriverGuard, wake: Arc<Notify>) {
    loop {
        let step = match guard.0.upgrade() {
            Some(shared) => shared.next_step(Instant::now()),
            None => return,
        };
        match step {
            Step::Sleep(until) => {
                let notified = wake.notified();
                match until {
                    Some(at) => {
                        tokio::select! {
                            () = tokio::time::sleep_until(at) => {}
                            () = notified => {}
                        }
                    }
                    None => notified.await,
                }
            }
            Step::Refresh(attempt) => {
                let (seq, generation) = (attempt.seq, attempt.generation);
                let result = run_attempt(&guard.0, attempt).await;
                let Some(shared) = guard.0.upgrade() else {
                    return;
                };
                if let Some(tokens) = shared.finish(seq, generation, result, Instant::now()) {
                    if shared.config.store.is_some() {
                        let _ = tokio::task::spawn_blocking(move || shared.persist(&tokens)).await;
                    }
                }
            }
        }
    }
}

/// Runs one refresh on its own task (so a panic is an error, not a dead
/// manager), under the timeout, announcing expiry if it passes meanwhile.
async fn run_attempt(weak: &Weak<Shared>, attempt: Attempt) -> Result<TokenSet, Error> {
    let Attempt {
        seq,
        current,
        mut expiry,
        refresh,
        timeout,
        name,
        ..
    } = attempt;
    let span = tracing::info_span!("refresh_tokens", manager = %name, attempt = seq);
    let load = refresh(current);
    let timeout_name = name.clone();
    let mut task = AbortOnDrop(tokio::spawn(
        async move {
            match tokio::time::timeout(timeout, load).await {
                Ok(result) => result,
                Err(_) => Err(Error::Transport {
                    endpoint: format!("refresh of token manager `{timeout_name}`"),
                    source: TransportError::new(
                        TransportErrorKind::Timeout,
                        format!("no result within {timeout:?}"),
                    ),
                }),
            }
        }
        .instrument(span),
    ));
    loop {
        tokio::select! {
            joined = &mut task.0 => {
                return joined.unwrap_or_else(|join_error| {
                    Err(Error::Transport {
                        endpoint: format!("refresh function of token manager `{name}`"),
                        source: TransportError::new(
                            TransportErrorKind::Other,
                            if join_error.is_panic() { "it panicked" } else { "it was cancelled" },
                        ),
                    })
                });
            }
            () = tokio::time::sleep_until(expiry.unwrap_or_else(Instant::now)), if expiry.is_some() => {
                expiry = None;
                if let Some(shared) = weak.upgrade() {
                    shared.expire_now(Instant::now());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refresh_fn;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn tokens(lifetime: Duration) -> TokenSet {
        TokenSet {
            access_token: "at".to_string().into(),
            token_type: "Bearer".into(),
            expires_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000) + lifetime),
            refresh_token: None,
            id_token: None,
            scope: None,
        }
    }

    fn counting() -> (RefreshFn, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let refresh = refresh_fn(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok(tokens(Duration::from_secs(3600))) }
        });
        (refresh, calls)
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    fn fresh(manager: &TokenManager) -> Option<bool> {
        manager.shared.slot.load().as_ref().map(|slot| slot.fresh)
    }

    /// Polls once with a waker that does nothing.
    fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
        let mut future = std::pin::pin!(future);
        future
            .as_mut()
            .poll(&mut Context::from_waker(std::task::Waker::noop()))
    }

    #[tokio::test(start_paused = true)]
    async fn the_read_cache_follows_store_and_clear_and_keeps_no_tokens_alive() {
        let (refresh, calls) = counting();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let manager = TokenManager::builder("device", refresh)
            .wall_clock(move || wall)
            .initial_tokens(tokens(Duration::from_secs(3600)))
            .build();
        // Twice: the second read is served by this thread's cache.
        let first = manager.access_token().await.unwrap();
        let version = manager.shared.slot_version.load(Ordering::Acquire);
        let hit = READ_CACHE.with(|cache| cache.borrow().get(version));
        assert!(hit.is_some_and(|slot| Arc::ptr_eq(&slot, &first.0)));
        let again = manager.access_token().await.unwrap();
        assert!(
            Arc::ptr_eq(&first.0, &again.0),
            "the same slot, from the cache"
        );
        let old = Arc::downgrade(first.tokens());
        drop((first, again));

        let mut newer = tokens(Duration::from_secs(7200));
        newer.access_token = "at-2".to_string().into();
        manager.store(newer);
        let token = manager.access_token().await.unwrap();
        assert_eq!(
            token.expose_secret(),
            "at-2",
            "a store replaces what the cache had"
        );
        assert!(
            old.upgrade().is_none(),
            "replaced tokens are dropped, not kept by the read cache"
        );

        manager.clear();
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(manager.access_token().await.unwrap().expose_secret(), "at");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "after clear, a fetch");
    }

    /// Readers on four worker threads, their caches warm, while tokens are
    /// stored one generation after another: no reader ever gets an older
    /// generation after a newer one, and all see the last.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn readers_on_many_threads_never_go_back_to_an_older_token() {
        const GENERATIONS: u32 = 300;
        let generation = |n: u32| {
            let mut set = tokens(Duration::from_secs(u32::MAX.into()));
            set.access_token = format!("{n}").into();
            set
        };
        let manager = TokenManager::builder("device", counting().0)
            .initial_tokens(generation(0))
            .build();
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let manager = manager.clone();
                tokio::spawn(async move {
                    let mut last = 0;
                    while last < GENERATIONS {
                        let token = manager.access_token().await.unwrap();
                        let seen: u32 = token.expose_secret().parse().unwrap();
                        assert!(seen >= last, "went back from {last} to {seen}");
                        last = seen;
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for n in 1..=GENERATIONS {
            manager.store(generation(n));
            tokio::task::yield_now().await;
        }
        for reader in readers {
            tokio::time::timeout(Duration::from_secs(30), reader)
                .await
                .expect("every reader sees the last generation")
                .unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn more_managers_than_cache_entries_each_get_their_own_token() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let managers: Vec<TokenManager> = (0..READ_CACHE_ENTRIES * 2 + 1)
            .map(|i| {
                let mut own = tokens(Duration::from_secs(3600));
                own.access_token = format!("at-{i}").into();
                TokenManager::builder(format!("m{i}"), counting().0)
                    .wall_clock(move || wall)
                    .initial_tokens(own)
                    .build()
            })
            .collect();
        for _ in 0..3 {
            for (i, manager) in managers.iter().enumerate() {
                let token = manager.access_token().await.unwrap();
                assert_eq!(token.expose_secret(), format!("at-{i}"));
            }
        }
    }

    /// The read path's contract, whichever path serves it: a valid token is
    /// ready at the first poll without a refresh; a missing one is fetched;
    /// a future polled again after it completed looks again (no panic).
    #[tokio::test(start_paused = true)]
    async fn a_valid_token_is_ready_at_the_first_poll_and_a_missing_one_is_fetched() {
        let (refresh, calls) = counting();
        let manager = TokenManager::builder("device", refresh)
            .initial_tokens(tokens(Duration::from_secs(u32::MAX.into())))
            .build();
        let Poll::Ready(Ok(token)) = poll_once(manager.access_token()) else {
            panic!("a valid token must not wait");
        };
        assert_eq!(token.expose_secret(), "at");
        assert!(matches!(poll_once(manager.tokens()), Poll::Ready(Ok(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        let (refresh, calls) = counting();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let empty = TokenManager::builder("empty", refresh)
            .wall_clock(move || wall)
            .build();
        let mut fetching = std::pin::pin!(empty.access_token());
        assert!(poll_once(fetching.as_mut()).is_pending());
        assert_eq!((&mut fetching).await.unwrap().expose_secret(), "at");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(matches!(poll_once(fetching), Poll::Ready(Ok(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn clock_free_reads_only_while_the_task_will_wake_well_before_expiry() {
        let start = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let permits = gate.clone();
        let refresh = refresh_fn(move |_| {
            let gate = permits.clone();
            async move {
                gate.acquire().await.unwrap().forget();
                Err(Error::HttpStatus {
                    endpoint: "https://idp.test/oidc/token".into(),
                    status: 503,
                    body: String::new(),
                })
            }
        });
        let manager = TokenManager::builder("device", refresh)
            .wall_clock(move || wall)
            .jitter_source(|| 0.0)
            .backoff(Duration::from_secs(1), Duration::from_secs(10))
            .initial_tokens(tokens(Duration::from_secs(3600)))
            .build();
        assert_eq!(fresh(&manager), Some(true));
        // At expiry - 60 s the refresh starts: reads check the clock.
        tokio::time::sleep_until(start + Duration::from_secs(3540)).await;
        settle().await;
        assert_eq!(fresh(&manager), Some(false));
        // It fails; the retry (1 s later) is far from expiry: clock-free again.
        gate.add_permits(1);
        settle().await;
        assert_eq!(fresh(&manager), Some(true));
        // Retries at 3541, 3543, 3547, 3555, 3565, 3575, 3585 fail; the next
        // one, at 3595, is within 5 s of expiry: clock checks from 3585 on.
        for at in [3541, 3543, 3547, 3555, 3565, 3575, 3585] {
            tokio::time::sleep_until(start + Duration::from_secs(at)).await;
            settle().await;
            gate.add_permits(1);
            settle().await;
            assert_eq!(
                fresh(&manager),
                Some(at < 3585),
                "after the attempt at {at}"
            );
        }
        manager.shutdown().await;
        assert_eq!(
            fresh(&manager),
            Some(false),
            "no task: always check the clock"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_last_handle_ends_the_background_task() {
        let (refresh, _) = counting();
        let manager = TokenManager::builder("device", refresh.clone())
            .wall_clock(|| SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
            .initial_tokens(tokens(Duration::from_secs(3600)))
            .build();
        settle().await;
        let (shared, task) = manager.downgrade();
        assert!(shared.upgrade().is_some());
        assert!(task.upgrade().is_some());
        let clone = manager.clone();
        drop(manager);
        settle().await;
        assert!(shared.upgrade().is_some(), "a clone still holds it");
        drop(clone);
        settle().await;
        assert!(
            shared.upgrade().is_none(),
            "the task must not keep the manager alive"
        );
        assert!(task.upgrade().is_none(), "the task must have ended");
        assert_eq!(Arc::strong_count(&refresh), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_during_a_refresh_ends_the_task_and_the_refresh() {
        let started = Arc::new(AtomicUsize::new(0));
        let counter = started.clone();
        let refresh = refresh_fn(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            std::future::pending()
        });
        let manager = TokenManager::new("device", refresh.clone());
        let waiter = {
            let manager = manager.clone();
            tokio::spawn(async move { manager.access_token().await.map(|_| ()) })
        };
        settle().await;
        assert_eq!(started.load(Ordering::SeqCst), 1);
        let (shared, task) = manager.downgrade();
        waiter.abort();
        drop(manager);
        settle().await;
        assert!(shared.upgrade().is_none());
        assert!(task.upgrade().is_none());
        assert_eq!(
            Arc::strong_count(&refresh),
            1,
            "the refresh future was dropped"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn registry_shutdown_and_drop_end_all_tasks() {
        let (refresh, _) = counting();
        let registry = crate::TokenManagerRegistry::new();
        let mut links = Vec::new();
        for name in ["device", "ciba_user", "other"] {
            let manager = registry.create(name, refresh.clone()).unwrap();
            links.push(manager.downgrade());
        }
        let kept = registry.get("device").unwrap();
        settle().await;
        registry.shutdown().await;
        assert!(registry.names().is_empty());
        for (shared, task) in &links {
            // Only the manager itself (if a handle keeps it) still holds the
            // task's wake-up link: the task is gone.
            let alive = usize::from(shared.upgrade().is_some());
            assert_eq!(Weak::strong_count(task), alive);
        }
        assert_eq!(Weak::strong_count(&links[0].0), 1, "`kept` holds `device`");
        assert!(matches!(
            kept.access_token().await,
            Err(TokenError::Stopped { .. })
        ));
        drop(kept);

        let registry = crate::TokenManagerRegistry::new();
        let manager = registry.create("device", refresh.clone()).unwrap();
        let (shared, task) = manager.downgrade();
        drop(manager);
        settle().await;
        drop(registry);
        settle().await;
        assert!(shared.upgrade().is_none());
        assert!(task.upgrade().is_none());
    }
}
