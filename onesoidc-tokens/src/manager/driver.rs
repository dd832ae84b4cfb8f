//! The background task: one per manager, running every refresh (so one at
//! a time), each on its own task under the timeout.

use std::sync::{Arc, Weak};
use std::time::Duration;

use onesoidc_core::{Error, TokenSet, TransportError, TransportErrorKind};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::refresh::RefreshFn;

use super::state::Shared;

pub(super) enum Step {
    Sleep(Option<Instant>),
    Refresh(Attempt),
}

pub(super) struct Attempt {
    pub(super) seq: u64,
    pub(super) generation: u64,
    pub(super) current: Option<Arc<TokenSet>>,
    /// The deadline to announce if it passes during the attempt.
    pub(super) expiry: Option<Instant>,
    pub(super) refresh: RefreshFn,
    pub(super) timeout: Duration,
    pub(super) name: Arc<str>,
}

/// Lives in the background task's future: however the task ends (return,
/// abort, runtime shutdown, even before its first poll), the manager learns.
pub(super) struct DriverGuard(pub(super) Weak<Shared>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.driver_stopped();
        }
    }
}

pub(super) struct AbortOnDrop<T>(pub(super) JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The background task. Holds the manager only weakly (upgrading briefly,
/// never across an await), so dropping the last handle ends it.
pub(super) async fn drive(guard: DriverGuard, wake: Arc<Notify>) {
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
pub(super) async fn run_attempt(weak: &Weak<Shared>, attempt: Attempt) -> Result<TokenSet, Error> {
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
