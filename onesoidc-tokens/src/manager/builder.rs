//! [`TokenManagerBuilder`]: a manager's settings, each with a documented
//! default, and building it (loading saved tokens, starting its task).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use onesoidc_core::{DpopKey, TokenSet};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::refresh::RefreshFn;
use crate::store::{StoreKey, TokenOwner, TokenStore};

use super::TokenManager;
use super::driver::{DriverGuard, drive};
use super::read_path::{ManagerDpop, NEXT_SLOT_VERSION};
use super::state::{Inner, Shared, lock};

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
/// Default [`TokenManagerBuilder::store_lease`].
pub const DEFAULT_STORE_LEASE: Duration = Duration::from_secs(10);
/// Default [`TokenManagerBuilder::event_capacity`].
pub const DEFAULT_EVENT_CAPACITY: usize = 16;

/// A source of jitter fractions in `[0, 1)`; see [`TokenManagerBuilder::jitter_source`].
pub type JitterSource = Arc<dyn Fn() -> f64 + Send + Sync>;

/// The wall clock; see [`TokenManagerBuilder::wall_clock`].
pub type WallClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

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
    store_lease: Duration,
    event_capacity: usize,
    jitter_source: Option<JitterSource>,
    wall_clock: Option<WallClock>,
    store: Option<(Arc<dyn TokenStore>, TokenOwner)>,
    initial: Option<TokenSet>,
    dpop: Option<ManagerDpop>,
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
            .field("store_lease", &self.store_lease)
            .field("event_capacity", &self.event_capacity)
            .field("store", &self.store.as_ref().map(|(store, _)| store))
            .field("initial_tokens", &self.initial.is_some())
            .finish_non_exhaustive()
    }
}

impl TokenManagerBuilder {
    pub(super) fn new(name: String, refresh: RefreshFn) -> Self {
        TokenManagerBuilder {
            name,
            refresh,
            skew: DEFAULT_REFRESH_SKEW,
            jitter: DEFAULT_REFRESH_JITTER,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            refresh_timeout: DEFAULT_REFRESH_TIMEOUT,
            store_lease: DEFAULT_STORE_LEASE,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            jitter_source: None,
            wall_clock: None,
            store: None,
            initial: None,
            dpop: None,
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

    /// How long a shared store's refresh lease lasts unless renewed.
    /// Default 10 s ([`DEFAULT_STORE_LEASE`]); at least 30 ms.
    ///
    /// The holder renews it every third of this while it loads, refreshes
    /// and saves, however long that takes, and makes sure it still holds
    /// it right before spending a refresh token; a holder that stops (or
    /// dies, or loses the store) loses it after at most this long, and
    /// another process takes over. Stores without time limits (a file
    /// lock, lost when its holder dies) do not use it.
    pub fn store_lease(mut self, lease: Duration) -> Self {
        self.store_lease = lease;
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
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::{Duration, SystemTime};
    /// use onesoidc_tokens::{StreamExt, TokenManager, refresh_fn};
    /// let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    /// let started = tokio::time::Instant::now();
    /// let now = move || wall + started.elapsed();
    /// let refresh = refresh_fn(move |_| async move {
    ///     Ok(onesoidc_core::TokenSet {
    ///         access_token: "t".to_string().into(),
    ///         token_type: "Bearer".into(),
    ///         expires_at: Some(now() + Duration::from_secs(3600)),
    ///         refresh_token: None,
    ///         id_token: None,
    ///         scope: None,
    ///         dpop_jkt: None,
    ///     })
    /// });
    /// let manager = TokenManager::builder("device", refresh)
    ///     .refresh_skew(Duration::from_secs(60))
    ///     .jitter(Duration::from_secs(30))
    ///     .jitter_source(|| 0.0) // no extra lead: refresh exactly 60 s before expiry
    ///     .wall_clock(now)
    ///     .build();
    /// let mut events = manager.events();
    /// manager.access_token().await.unwrap(); // the first fetch
    /// events.next().await;
    /// events.next().await; // the background refresh
    /// assert_eq!(started.elapsed(), Duration::from_secs(3540));
    /// # }
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

    /// Keeps the tokens in `store`, as tokens issued to `owner`, so a
    /// restart needs no new login, and managers of the same name in other
    /// processes (or machines) using the same store share one token and one
    /// refresh. Default: none (tokens live in this manager only).
    ///
    /// - The background task loads the saved tokens first thing (unless
    ///   [`initial_tokens`](Self::initial_tokens) are given, which it saves);
    ///   callers of [`access_token`](TokenManager::access_token) wait for
    ///   that. Saved tokens that have expired are loaded too, so a user
    ///   manager can use their refresh token. Tokens saved for another
    ///   owner are ignored (a new `device.yml` never uses an old identity's
    ///   tokens).
    /// - While its token is valid the manager never reads the store. When a
    ///   refresh is due it takes the store's lease, uses what is stored if
    ///   another process refreshed meanwhile (and it has more left than the
    ///   lead the refresh schedule would take: the
    ///   [`refresh_skew`](Self::refresh_skew), at most half the tokens'
    ///   life; [`TokenEvent::Loaded`](crate::TokenEvent::Loaded)),
    ///   otherwise refreshes and saves before handing the new token out.
    ///   The lease is renewed while held ([`store_lease`](Self::store_lease)).
    /// - [`store`](TokenManager::store) saves, [`clear`](TokenManager::clear)
    ///   removes (leaving a tombstone). Both win over any refresh already
    ///   running, here or in another process: its tokens are neither
    ///   handed out nor saved. A refresh that finds a logout from another
    ///   process in the store drops this manager's tokens too
    ///   ([`TokenEvent::Cleared`](crate::TokenEvent::Cleared)).
    /// - If the store fails, its calls are retried for about 1.5 s, then
    ///   the manager refreshes alone, reports
    ///   [`TokenEvent::StoreUnavailable`](crate::TokenEvent::StoreUnavailable)
    ///   once, and [`TokenEvent::StoreAvailable`](crate::TokenEvent::StoreAvailable)
    ///   when it works again. A failing store never fails a caller of
    ///   device tokens; tokens with a refresh token are not refreshed
    ///   alone (another process may be spending the same refresh token,
    ///   and spending it twice revokes the login): that refresh fails and
    ///   is retried with backoff while the old token is valid.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::sync::Arc;
    /// use onesoidc_tokens::{FileTokenStore, TokenManager, TokenOwner, refresh_fn};
    /// # let refresh = refresh_fn(|_| async {
    /// #     Err(onesoidc_core::Error::LoginRequired { reason: "no refresh token".into() })
    /// # });
    /// let dir = tempfile::tempdir().unwrap();
    /// let manager = TokenManager::builder("ciba_user", refresh)
    ///     .store(
    ///         Arc::new(FileTokenStore::new(dir.path())),
    ///         TokenOwner::new("https://idp.example.com/oidc", "device-1"),
    ///     )
    ///     .build();
    /// // Nothing saved and nothing to refresh with: log in, then `manager.store(tokens).await`.
    /// assert!(manager.access_token().await.unwrap_err().is_reauth_required());
    /// # }
    /// ```
    pub fn store(mut self, store: Arc<dyn TokenStore>, owner: TokenOwner) -> Self {
        self.store = Some((store, owner));
        self
    }

    /// The DPoP key the manager's bound tokens are used with
    /// ([`AccessToken::authorize`](crate::AccessToken::authorize)): the key
    /// of the client that gets them ([`OnesIdClient::dpop_key`](https://docs.rs/onesoidc-flows/latest/onesoidc_flows/struct.OnesIdClient.html#method.dpop_key)).
    /// Default: none (bearer tokens). With a store, give the owner the
    /// key's thumbprint too ([`TokenOwner::with_dpop_jkt`]), so a process
    /// with another key never adopts the tokens.
    pub fn dpop_key(mut self, key: DpopKey) -> Self {
        self.dpop = Some(ManagerDpop::Key {
            key,
            nonces: Default::default(),
        });
        self
    }

    /// Like [`dpop_key`](Self::dpop_key) with `client`'s DPoP key (chosen
    /// when first needed) and its nonces: for a manager of the tokens
    /// `client` gets (`device_manager` does this for a client with DPoP on).
    #[cfg(feature = "flows")]
    #[cfg_attr(docsrs, doc(cfg(feature = "flows")))]
    pub fn dpop_client(mut self, client: &onesoidc_flows::OnesIdClient) -> Self {
        self.dpop = Some(ManagerDpop::Client(client.clone()));
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
            store_lease: self.store_lease.max(Duration::from_millis(30)),
            event_capacity: self.event_capacity.max(1),
            jitter_source: self
                .jitter_source
                .unwrap_or_else(|| Arc::new(rand::random::<f64>)),
            wall_clock: self.wall_clock.unwrap_or_else(|| Arc::new(SystemTime::now)),
            dpop: self.dpop.map(Arc::new),
            store: self.store.map(|(store, owner)| {
                Arc::new(StoreConfig {
                    store,
                    key: StoreKey::new(&*name, owner),
                })
            }),
        };
        let startup = match (&config.store, &self.initial) {
            (None, _) => Startup::Ready,
            (Some(_), None) => Startup::Load,
            (Some(_), Some(_)) => Startup::Save,
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
            stop: Arc::new(Notify::new()),
            task: Mutex::new(None),
            persist: tokio::sync::Mutex::new(()),
        });
        if let Some(tokens) = self.initial {
            let mut inner = shared.lock();
            shared.install(&mut inner, Arc::new(tokens), Instant::now());
        }
        let driver = drive(
            DriverGuard(Arc::downgrade(&shared)),
            shared.wake.clone(),
            shared.stop.clone(),
            startup,
        );
        let task = runtime.spawn(driver);
        *lock(&shared.task) = Some(task);
        TokenManager { shared }
    }
}

/// What the background task does before anything else.
pub(super) enum Startup {
    /// Nothing: there is no store.
    Ready,
    /// Load the saved tokens.
    Load,
    /// Save the initial tokens.
    Save,
}

/// A manager's store and the key of its tokens there.
pub(crate) struct StoreConfig {
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) key: StoreKey,
}

pub(super) struct Config {
    pub(super) refresh: RefreshFn,
    pub(super) skew: Duration,
    pub(super) jitter: Duration,
    pub(super) backoff_initial: Duration,
    pub(super) backoff_max: Duration,
    pub(super) refresh_timeout: Duration,
    pub(super) store_lease: Duration,
    pub(super) event_capacity: usize,
    pub(super) jitter_source: JitterSource,
    pub(super) wall_clock: WallClock,
    pub(super) store: Option<Arc<StoreConfig>>,
    /// The DPoP key bound tokens are used with, if any.
    pub(super) dpop: Option<Arc<ManagerDpop>>,
}
