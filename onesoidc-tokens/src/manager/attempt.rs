//! One refresh attempt, on its own task: alone, or through a shared store
//! (take the lease, use what another process refreshed, or refresh and
//! save, fenced by the generation loaded and the lease's fencing number),
//! under the refresh timeout, announcing expiry if it passes meanwhile.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use onesoidc_core::{Error, TokenSet, TransportError, TransportErrorKind};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::refresh::RefreshFn;
use crate::store::{Lease, SaveMode, Saved, StoreError, StoreKey, Stored, TokenStore, expiry_rank};

use super::builder::{StoreConfig, WallClock};
use super::state::{Shared, capped_lead};

/// The longest a store call may take before it counts as failed.
pub(super) const STORE_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Delays before trying a failed store call again (a blip of a few hundred
/// milliseconds is ridden out; then the attempt goes on without the store).
const STORE_RETRY_DELAYS: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
];

/// How many times an attempt takes the lease again after losing it
/// before spending a refresh token.
const LEASE_ROUNDS: usize = 3;

pub(super) struct Attempt {
    pub(super) seq: u64,
    pub(super) generation: u64,
    pub(super) current: Option<Arc<TokenSet>>,
    /// The store generation `current` came from, when known.
    pub(super) store_generation: Option<u64>,
    /// How long `current` had to live when it was put in.
    pub(super) lifetime: Option<Duration>,
    /// The deadline to announce if it passes during the attempt.
    pub(super) expiry: Option<Instant>,
    pub(super) refresh: RefreshFn,
    pub(super) timeout: Duration,
    pub(super) name: Arc<str>,
    pub(super) store: Option<Arc<StoreConfig>>,
    pub(super) lease_hold: Duration,
    pub(super) skew: Duration,
    pub(super) wall_clock: WallClock,
}

/// What an attempt got.
pub(super) enum Fetched {
    /// New tokens from the provider, saved in this store generation (if
    /// known).
    Refreshed(TokenSet, Option<u64>),
    /// Tokens from the store (another process refreshed them, or logged
    /// in), of this generation.
    Loaded(TokenSet, u64),
    /// The tokens were removed from the store (a logout in another
    /// process) in this generation: drop ours.
    Cleared(u64),
}

/// How the store did during an attempt or a save.
#[derive(Debug, Default)]
pub(super) enum StoreReport {
    /// No store, or not called.
    #[default]
    Unused,
    /// Every call worked.
    Worked,
    /// A call failed (the first failure).
    Failed(Arc<StoreError>),
}

impl StoreReport {
    pub(super) fn of<T>(result: &Result<T, Arc<StoreError>>) -> Self {
        match result {
            Ok(_) => StoreReport::Worked,
            Err(error) => StoreReport::Failed(error.clone()),
        }
    }

    fn add<T>(&mut self, result: &Result<T, Arc<StoreError>>) {
        match (&*self, result) {
            (StoreReport::Failed(_), _) => {}
            (_, Ok(_)) => *self = StoreReport::Worked,
            (_, Err(error)) => *self = StoreReport::Failed(error.clone()),
        }
    }
}

pub(super) struct AttemptOutput {
    pub(super) fetched: Result<Fetched, Error>,
    pub(super) store: StoreReport,
}

/// A store call under [`STORE_CALL_TIMEOUT`].
pub(super) async fn bounded<T>(
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, Arc<StoreError>> {
    bounded_by(STORE_CALL_TIMEOUT, "a call", call).await
}

async fn bounded_by<T>(
    limit: Duration,
    what: &str,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, Arc<StoreError>> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(Arc::new),
        Err(_) => Err(Arc::new(StoreError::Unavailable {
            store: "(the manager's store)".into(),
            message: format!("{what} took more than {limit:?}"),
        })),
    }
}

/// `call` under `limit`, tried again after [`STORE_RETRY_DELAYS`] while it
/// fails in a way that may pass (not when it ran out of time: it waited
/// long enough).
async fn retried<T, F: Future<Output = Result<T, StoreError>>>(
    limit: Duration,
    what: &str,
    mut call: impl FnMut() -> F,
) -> Result<T, Arc<StoreError>> {
    let mut delays = STORE_RETRY_DELAYS.iter();
    loop {
        match bounded_by(limit, what, async { Ok(call().await) }).await? {
            Ok(value) => return Ok(value),
            Err(error) => match delays.next() {
                Some(delay) if error.is_transient() => {
                    tracing::debug!(
                        "token store: {what} failed, trying again in {delay:?}: {error}"
                    );
                    tokio::time::sleep(*delay).await;
                }
                _ => return Err(Arc::new(error)),
            },
        }
    }
}

/// Runs one attempt on its own task (so a panic is an error, not a dead
/// manager), announcing expiry if it passes meanwhile.
pub(super) async fn run_attempt(weak: &Weak<Shared>, attempt: Attempt) -> AttemptOutput {
    let span =
        tracing::info_span!("refresh_tokens", manager = %attempt.name, attempt = attempt.seq);
    let mut expiry = attempt.expiry;
    let name = attempt.name.clone();
    let mut task = AbortOnDrop(tokio::spawn(run(attempt).instrument(span)));
    loop {
        tokio::select! {
            joined = &mut task.0 => {
                return joined.unwrap_or_else(|join_error| AttemptOutput {
                    fetched: Err(Error::Transport {
                        endpoint: format!("refresh function of token manager `{name}`"),
                        source: TransportError::new(
                            TransportErrorKind::Other,
                            if join_error.is_panic() { "it panicked" } else { "it was cancelled" },
                        ),
                    }),
                    store: StoreReport::Unused,
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

async fn run(attempt: Attempt) -> AttemptOutput {
    let Some(store) = attempt.store.clone() else {
        return AttemptOutput {
            fetched: refresh(&attempt, attempt.current.clone())
                .await
                .map(|tokens| Fetched::Refreshed(tokens, None)),
            store: StoreReport::Unused,
        };
    };
    let StoreConfig { store, key } = &*store;
    let mut report = StoreReport::Unused;
    for _ in 0..LEASE_ROUNDS {
        match shared_round(&attempt, &**store, key, &mut report).await {
            Round::Done(fetched) => {
                return AttemptOutput {
                    fetched,
                    store: report,
                };
            }
            Round::LeaseLost => {}
        }
    }
    AttemptOutput {
        fetched: Err(not_alone(format!(
            "the refresh lease was lost {LEASE_ROUNDS} times in a row before the refresh token could be spent"
        ))),
        store: report,
    }
}

enum Round {
    Done(Result<Fetched, Error>),
    /// The lease ran out before the refresh token was spent: start over.
    LeaseLost,
}

/// Takes the lease (waiting for other processes), loads, and uses what is
/// stored or refreshes and saves.
async fn shared_round(
    attempt: &Attempt,
    store: &dyn TokenStore,
    key: &StoreKey,
    report: &mut StoreReport,
) -> Round {
    // A live holder keeps the lease (renewing it) while it loads, refreshes
    // and saves; wait that long, and a lease's time limit more.
    let wait = attempt
        .timeout
        .saturating_add(STORE_CALL_TIMEOUT.saturating_mul(3))
        .saturating_add(attempt.lease_hold);
    let lease = retried(wait, "waiting for the refresh lease", || {
        store.lease(key, attempt.lease_hold)
    })
    .await;
    report.add(&lease);
    let lease: Option<Lease> = match lease {
        Ok(lease) => lease,
        Err(error) => return Round::Done(alone(attempt, &error).await),
    };
    let stored = retried(STORE_CALL_TIMEOUT, "reading the tokens", || store.load(key)).await;
    report.add(&stored);
    let stored = match stored {
        Ok(stored) => stored,
        Err(error) => {
            release(lease, report).await;
            return Round::Done(alone(attempt, &error).await);
        }
    };

    let current = match decide(attempt, stored.clone()) {
        Decision::Use(fetched) => {
            release(lease, report).await;
            return Round::Done(Ok(fetched));
        }
        Decision::Refresh(current) => current,
    };
    // Only one holder may spend a refresh token: make sure the lease is
    // still ours (a process stopped past its lease has lost it).
    if let Some(lease) = &lease
        && current.as_ref().is_some_and(|c| c.refresh_token.is_some())
        && let Err(error) = lease.confirm().await
    {
        tracing::warn!(manager = %attempt.name, "not spending the refresh token: {error}");
        return Round::LeaseLost;
    }
    let fetched = match refresh(attempt, current).await {
        Ok(tokens) => tokens,
        Err(error) => {
            release(lease, report).await;
            return Round::Done(Err(error));
        }
    };
    let mode = SaveMode::Refreshed {
        generation: stored.generation,
        fence: lease.as_ref().and_then(Lease::fence),
    };
    let saved = bounded(store.save(key, &fetched, mode)).await;
    report.add(&saved);
    release(lease, report).await;
    Round::Done(Ok(match saved {
        Ok(Saved::Superseded(now)) => match *now {
            Stored {
                tokens: Some(tokens),
                generation,
                ..
            } => {
                tracing::info!(manager = %attempt.name, "tokens were stored by another process during the refresh; using those");
                Fetched::Loaded(tokens, generation)
            }
            now if now.is_tombstone() => {
                tracing::info!(manager = %attempt.name, "the tokens were removed (a logout) during the refresh; dropping the refreshed ones");
                Fetched::Cleared(now.generation)
            }
            _ => Fetched::Refreshed(fetched, None),
        },
        Ok(Saved::Fenced) => {
            tracing::warn!(manager = %attempt.name, "not saving the refreshed tokens: a newer refresh lease was granted meanwhile");
            Fetched::Refreshed(fetched, Some(stored.generation))
        }
        Ok(_) => Fetched::Refreshed(fetched, Some(stored.generation)),
        Err(_) => Fetched::Refreshed(fetched, None),
    }))
}

enum Decision {
    /// What the store holds settles it.
    Use(Fetched),
    /// Refresh these tokens.
    Refresh(Option<Arc<TokenSet>>),
}

/// What to do with what the store holds.
fn decide(attempt: &Attempt, stored: Stored) -> Decision {
    let since_ours = attempt
        .store_generation
        .is_some_and(|ours| ours != stored.generation);
    let Some(tokens) = stored.tokens else {
        if since_ours && stored.generation > 0 {
            // A logout elsewhere since our tokens were saved or loaded.
            return Decision::Use(Fetched::Cleared(stored.generation));
        }
        return Decision::Refresh(attempt.current.clone());
    };
    // Another process refreshed (later expiry), or logged in (a new
    // generation: its tokens replace ours whatever they expire).
    let newer = since_ours
        || attempt
            .current
            .as_ref()
            .is_none_or(|current| expiry_rank(&tokens) > expiry_rank(current));
    if !newer {
        return Decision::Refresh(attempt.current.clone());
    }
    let now = (attempt.wall_clock)();
    if fresh_enough(&tokens, attempt.skew, attempt.lifetime, now) {
        return Decision::Use(Fetched::Loaded(tokens, stored.generation));
    }
    // Due as well: refresh it (its refresh token is the newest).
    Decision::Refresh(Some(Arc::new(tokens)))
}

/// The store failed (after retries): refresh without it, unless that
/// would spend a refresh token another process may be spending.
async fn alone(attempt: &Attempt, error: &StoreError) -> Result<Fetched, Error> {
    if attempt
        .current
        .as_ref()
        .is_some_and(|current| current.refresh_token.is_some())
    {
        return Err(not_alone(format!("the token store failed: {error}")));
    }
    refresh(attempt, attempt.current.clone())
        .await
        .map(|tokens| Fetched::Refreshed(tokens, None))
}

/// Why a refresh token was not spent.
#[derive(Debug, thiserror::Error)]
#[error(
    "not refreshing alone: {0}; another process sharing the token store may be spending the same refresh token (spending it twice revokes the login), so the refresh is retried later"
)]
struct NotAlone(String);

fn not_alone(reason: String) -> Error {
    Error::Other(Box::new(NotAlone(reason)))
}

async fn release(lease: Option<Lease>, report: &mut StoreReport) {
    if let Some(lease) = lease {
        let released = bounded(lease.release()).await;
        report.add(&released);
    }
}

/// Whether tokens from the store can be used as they are: more left than
/// the lead the refresh schedule would take for tokens of this lifetime
/// (`lifetime`: of the tokens held; else what the stored ones have left).
/// No expiry: always.
fn fresh_enough(
    tokens: &TokenSet,
    skew: Duration,
    lifetime: Option<Duration>,
    now: SystemTime,
) -> bool {
    tokens.expires_at.is_none_or(|at| {
        at.duration_since(now).is_ok_and(|left| {
            let lead = capped_lead(skew, lifetime.unwrap_or(left));
            left > lead
        })
    })
}

/// The refresh function under the timeout.
async fn refresh(attempt: &Attempt, current: Option<Arc<TokenSet>>) -> Result<TokenSet, Error> {
    let timeout = attempt.timeout;
    match tokio::time::timeout(timeout, (attempt.refresh)(current)).await {
        Ok(result) => result,
        Err(_) => Err(Error::Transport {
            endpoint: format!("refresh of token manager `{}`", attempt.name),
            source: TransportError::new(
                TransportErrorKind::Timeout,
                format!("no result within {timeout:?}"),
            ),
        }),
    }
}

pub(super) struct AbortOnDrop<T>(pub(super) JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
