//! The background task: one per manager, running every refresh (so one at
//! a time), each on its own task ([`attempt`](super::attempt)).

use std::sync::{Arc, Weak};

use onesoidc_core::TokenSet;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::attempt::{Attempt, StoreReport, bounded, run_attempt};
use super::builder::Startup;
use super::state::Shared;

pub(super) enum Step {
    Sleep(Option<Instant>),
    Refresh(Attempt),
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

/// The background task. Holds the manager only weakly (upgrading briefly,
/// never across an await, except to load or save at start-up), so dropping
/// the last handle ends it; so does `stop` (after the start-up step).
pub(super) async fn drive(
    guard: DriverGuard,
    wake: Arc<Notify>,
    stop: Arc<Notify>,
    startup: Startup,
) {
    match startup {
        Startup::Ready => {}
        Startup::Load => {
            let Some(shared) = guard.0.upgrade() else {
                return;
            };
            if let Some(config) = &shared.config.store {
                let loaded = bounded(config.store.load(&config.key)).await;
                let report = StoreReport::of(&loaded);
                shared.loaded_at_startup(loaded.ok(), report);
            }
        }
        Startup::Save => {
            let Some(shared) = guard.0.upgrade() else {
                return;
            };
            let initial: Option<Arc<TokenSet>> = shared.lock().tokens.clone();
            if let Some(tokens) = initial {
                shared.persist(&tokens).await;
            }
        }
    }
    loop {
        let step = match guard.0.upgrade() {
            Some(shared) => shared.next_step(Instant::now()),
            None => return,
        };
        match step {
            Step::Sleep(until) => {
                let forever = std::future::pending();
                let sleep = async {
                    match until {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => forever.await,
                    }
                };
                tokio::select! {
                    () = sleep => {}
                    () = wake.notified() => {}
                    () = stop.notified() => return,
                }
            }
            Step::Refresh(attempt) => {
                let (seq, generation) = (attempt.seq, attempt.generation);
                let output = tokio::select! {
                    output = run_attempt(&guard.0, attempt) => output,
                    () = stop.notified() => return,
                };
                let Some(shared) = guard.0.upgrade() else {
                    return;
                };
                shared.finish(seq, generation, output, Instant::now());
            }
        }
    }
}
