//! One refresh attempt, on its own task: alone, or through a shared store
//! (take the lease, use what another process refreshed, or refresh and
//! save), under the refresh timeout, announcing expiry if it passes
//! meanwhile.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use onesoidc_core::{Error, TokenSet, TransportError, TransportErrorKind};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::refresh::RefreshFn;
use crate::store::{Lease, SaveMode, StoreError, expiry_rank};

use super::builder::{StoreConfig, WallClock};
use super::state::Shared;

/// The longest a store call may take before it counts as failed.
pub(super) const STORE_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How much longer than a refresh may take a lease is held for (a holder
/// that hangs loses it after `refresh_timeout + LEASE_MARGIN`).
pub(super) const LEASE_MARGIN: Duration = Duration::from_secs(2);

pub(super) struct Attempt {
    pub(super) seq: u64,
    pub(super) generation: u64,
    pub(super) current: Option<Arc<TokenSet>>,
    /// The deadline to announce if it passes during the attempt.
    pub(super) expiry: Option<Instant>,
    pub(super) refresh: RefreshFn,
    pub(super) timeout: Duration,
    pub(super) name: Arc<str>,
    pub(super) store: Option<Arc<StoreConfig>>,
    pub(super) skew: Duration,
    pub(super) wall_clock: WallClock,
}

/// What an attempt got.
pub(super) enum Fetched {
    /// New tokens from the provider.
    Refreshed(TokenSet),
    /// Tokens another process refreshed, from the store.
    Loaded(TokenSet),
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
                .map(Fetched::Refreshed),
            store: StoreReport::Unused,
        };
    };
    let StoreConfig { store, key } = &*store;
    let mut report = StoreReport::Unused;

    // Take turns with the other processes; if the store fails, go alone.
    // The holder keeps the lease at most `hold` (a store with time limits
    // ends it then), so a waiter normally gets it within that; it waits
    // twice as long in case another process runs with a longer timeout.
    let hold = attempt.timeout.saturating_add(LEASE_MARGIN);
    let wait = hold.saturating_mul(2).saturating_add(LEASE_MARGIN);
    let lease = bounded_by(
        wait,
        "waiting for the refresh lease",
        store.lease(key, hold),
    )
    .await;
    report.add(&lease);
    let lease: Option<Lease> = lease.ok().flatten();

    // Another process may have refreshed while we waited.
    let mut current = attempt.current.clone();
    let stored = bounded(store.load(key)).await;
    report.add(&stored);
    if let Ok(Some(stored)) = stored {
        let newer = current
            .as_ref()
            .is_none_or(|current| expiry_rank(&stored) > expiry_rank(current));
        if newer {
            if fresh_enough(&stored, attempt.skew, (attempt.wall_clock)()) {
                release(lease, &mut report).await;
                return AttemptOutput {
                    fetched: Ok(Fetched::Loaded(stored)),
                    store: report,
                };
            }
            // Due as well: refresh it (its refresh token is the newest).
            current = Some(Arc::new(stored));
        }
    }

    let fetched = refresh(&attempt, current).await;
    if let Ok(tokens) = &fetched {
        let saved = bounded(store.save(key, tokens, SaveMode::IfNewer)).await;
        report.add(&saved);
    }
    release(lease, &mut report).await;
    AttemptOutput {
        fetched: fetched.map(Fetched::Refreshed),
        store: report,
    }
}

async fn release(lease: Option<Lease>, report: &mut StoreReport) {
    if let Some(lease) = lease {
        let released = bounded(lease.release()).await;
        report.add(&released);
    }
}

/// Whether tokens from the store can be used as they are: more than `skew`
/// left (no expiry: always).
fn fresh_enough(tokens: &TokenSet, skew: Duration, now: SystemTime) -> bool {
    tokens
        .expires_at
        .is_none_or(|at| at.duration_since(now).is_ok_and(|left| left > skew))
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
