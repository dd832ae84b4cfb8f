//! The state machine: what a manager holds and decides (the schedule,
//! backoff, attempts and their outcomes), under one mutex never held
//! across an `.await`.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use onesoidc_core::{Error, TokenSet};
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::TokenError;
use crate::store::{SaveMode, Saved, StoreError, Stored};

use super::attempt::bounded;

use super::attempt::{Attempt, AttemptOutput, Fetched, StoreReport};
use super::builder::Config;
use super::driver::Step;
use super::events::{TokenEvent, TokenState};
use super::read_path::Slot;

/// A slot is handed out without a clock check only while the background
/// task is due to wake at least this long before the token expires.
pub(super) const FRESH_MARGIN: Duration = Duration::from_secs(5);

pub(crate) struct Shared {
    pub(super) name: Arc<str>,
    pub(super) config: Config,
    pub(super) slot: ArcSwapOption<Slot>,
    /// The version of the slot being published, from [`NEXT_SLOT_VERSION`];
    /// stored (Release) just before the slot itself (see
    /// [`Shared::set_slot`]), and equal to that slot's `version`.
    pub(super) slot_version: AtomicU64,
    pub(super) inner: Mutex<Inner>,
    /// Wakes the background task: the schedule changed or a caller needs a refresh.
    pub(super) wake: Arc<Notify>,
    /// Wakes callers waiting for an attempt's outcome.
    pub(super) done: Notify,
    /// Tells the background task to end (`shutdown`).
    pub(super) stop: Arc<Notify>,
    pub(super) task: Mutex<Option<JoinHandle<()>>>,
    /// Serializes [`persist`](Shared::persist) and [`persist_removal`](Shared::persist_removal).
    pub(super) persist: tokio::sync::Mutex<()>,
}

#[derive(Default)]
pub(super) struct Inner {
    pub(super) tokens: Option<Arc<TokenSet>>,
    /// Deadline of `tokens` on tokio's clock.
    pub(super) expires: Option<Instant>,
    pub(super) expiry_announced: bool,
    /// Next background refresh attempt.
    pub(super) refresh_at: Option<Instant>,
    pub(super) failures: u32,
    pub(super) last_failure: Option<Failure>,
    /// Set when the refresh token was rejected; cleared by store/clear/success.
    pub(super) reauth: Option<Arc<Error>>,
    /// Attempt ids; the first is 1.
    pub(super) last_seq: u64,
    /// An attempt callers asked for that has not started.
    pub(super) pending: Option<u64>,
    pub(super) running: Option<u64>,
    /// The last finished attempt.
    pub(super) outcome: Option<Outcome>,
    /// Bumped by store and clear: an attempt started before is discarded.
    pub(super) generation: u64,
    /// The store generation `tokens` were saved in or loaded from (see
    /// [`TokenStore`](crate::TokenStore)), when known: a refresh that finds
    /// another generation in the store knows a login or logout happened
    /// elsewhere.
    pub(super) store_generation: Option<u64>,
    /// How long `tokens` had to live when they were put in.
    pub(super) lifetime: Option<Duration>,
    /// True from build until the background task ends.
    pub(super) driver_alive: bool,
    pub(super) events: Option<broadcast::Sender<TokenEvent>>,
    pub(super) state: Option<watch::Sender<TokenState>>,
    /// The store's last call failed, with its error (reported once, until
    /// one works again).
    pub(super) store_failing: Option<Arc<StoreError>>,
}

pub(super) struct Failure {
    pub(super) error: Arc<Error>,
    /// No caller-triggered attempt before this.
    pub(super) retry_after: Instant,
}

#[derive(Clone)]
pub(super) struct Outcome {
    pub(super) seq: u64,
    pub(super) result: AttemptResult,
}

#[derive(Clone)]
pub(super) enum AttemptResult {
    Done(Arc<TokenSet>),
    Failed(TokenError),
    /// Tokens were stored or cleared meanwhile; look again.
    Superseded,
}

impl Inner {
    pub(super) fn is_valid(&self, now: Instant) -> bool {
        self.tokens.is_some() && self.expires.is_none_or(|at| at > now)
    }

    pub(super) fn valid_tokens(&self, now: Instant) -> Option<Arc<TokenSet>> {
        if self.is_valid(now) {
            self.tokens.clone()
        } else {
            None
        }
    }

    pub(super) fn next_seq(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    /// The deadline the task still has to announce.
    pub(super) fn pending_expiry(&self) -> Option<Instant> {
        if self.tokens.is_some() && !self.expiry_announced {
            self.expires
        } else {
            None
        }
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How long before expiry tokens that live `lifetime` are refreshed, for a
/// `lead` (skew, plus jitter when scheduling): never more than half their
/// life, so short tokens are refreshed halfway. The one rule for
/// scheduling a refresh and for using tokens another process stored.
pub(super) fn capped_lead(lead: Duration, lifetime: Duration) -> Duration {
    lead.min(lifetime / 2)
}

/// `now + d`, saturating at about 30 years.
pub(super) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
}

pub(super) fn compute_state(inner: &Inner, now: Instant) -> TokenState {
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
                expires_at: tokens.expiry(),
            },
            Some(error) => TokenState::RefreshFailing {
                expires_at: tokens.expiry(),
                failures: inner.failures,
                error,
            },
        },
        Some(_) => TokenState::Expired { error: last_error },
    }
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    pub(super) fn jitter_fraction(&self) -> f64 {
        let u = (self.config.jitter_source)();
        if u.is_finite() {
            u.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// `tokens.expires_at` as a deadline on tokio's clock.
    pub(super) fn deadline(&self, tokens: &TokenSet, now: Instant) -> Option<Instant> {
        let at = tokens.expires_at?;
        let left = at
            .duration_since((self.config.wall_clock)())
            .unwrap_or(Duration::ZERO);
        // Too far away to represent: it never expires in practice.
        now.checked_add(left)
    }

    /// When to refresh a token that expires at `expires`.
    pub(super) fn schedule_refresh(&self, now: Instant, expires: Instant) -> Option<Instant> {
        let remaining = expires.saturating_duration_since(now);
        if remaining.is_zero() {
            return None;
        }
        let jitter = self.config.jitter.as_secs_f64() * self.jitter_fraction();
        let jitter = Duration::try_from_secs_f64(jitter).unwrap_or(self.config.jitter);
        let lead = capped_lead(self.config.skew.saturating_add(jitter), remaining);
        Some(expires - lead)
    }

    /// The delay after the `failures`-th failure in a row (1-based).
    pub(super) fn backoff_delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let full = self
            .config
            .backoff_initial
            .saturating_mul(1 << doublings)
            .min(self.config.backoff_max);
        full.saturating_sub(full.mul_f64(self.jitter_fraction() / 2.0))
    }

    pub(super) fn publish_slot(&self, inner: &Inner, now: Instant) {
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

    pub(super) fn publish_state(&self, inner: &Inner, now: Instant) {
        if let Some(sender) = &inner.state {
            sender.send_replace(compute_state(inner, now));
        }
    }

    pub(super) fn emit(&self, inner: &Inner, event: TokenEvent) {
        tracing::debug!(manager = %self.name, ?event, "token event");
        if let Some(sender) = &inner.events {
            // No subscriber is fine.
            let _ = sender.send(event);
        }
    }

    /// Puts in new tokens (stored or refreshed) and schedules their refresh.
    pub(super) fn install(&self, inner: &mut Inner, tokens: Arc<TokenSet>, now: Instant) {
        inner.expires = self.deadline(&tokens, now);
        inner.lifetime = inner
            .expires
            .map(|expires| expires.saturating_duration_since(now));
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
    pub(super) fn supersede_pending(&self, inner: &mut Inner) {
        if let Some(seq) = inner.pending.take() {
            inner.outcome = Some(Outcome {
                seq,
                result: AttemptResult::Superseded,
            });
        }
    }

    pub(super) fn expire_if_due(&self, inner: &mut Inner, now: Instant) {
        if inner.pending_expiry().is_some_and(|at| at <= now) {
            inner.expiry_announced = true;
            inner.refresh_at = None;
            self.publish_slot(inner, now);
            self.publish_state(inner, now);
            tracing::warn!(manager = %self.name, "access token expired without being refreshed");
            self.emit(inner, TokenEvent::Expired);
        }
    }

    pub(super) fn error_for(&self, inner: &Inner, error: Arc<Error>, now: Instant) -> TokenError {
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

    pub(super) fn stopped(&self) -> TokenError {
        TokenError::Stopped {
            name: self.name.to_string(),
        }
    }

    /// The slow path: a valid token, or the outcome of a refresh.
    pub(super) async fn obtain(&self, mut force: bool) -> Result<Arc<TokenSet>, TokenError> {
        loop {
            let (seq, generation) = {
                let now = Instant::now();
                let mut inner = self.lock();
                if !force && let Some(tokens) = inner.valid_tokens(now) {
                    return Ok(tokens);
                }
                if !inner.driver_alive {
                    return Err(self.stopped());
                }
                if !force {
                    if let Some(error) = &inner.reauth {
                        return Err(self.error_for(&inner, error.clone(), now));
                    }
                    if let Some(failure) = &inner.last_failure
                        && now < failure.retry_after
                    {
                        return Err(self.error_for(&inner, failure.error.clone(), now));
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
    pub(super) async fn wait_outcome(&self, seq: u64, generation: u64) -> AttemptResult {
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
    pub(super) fn next_step(&self, now: Instant) -> Step {
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
                    store_generation: inner.store_generation,
                    lifetime: inner.lifetime,
                    expiry: inner.pending_expiry(),
                    refresh: self.reporting_refresh(&inner),
                    timeout: self.config.refresh_timeout,
                    name: self.name.clone(),
                    store: self.config.store.clone(),
                    lease_hold: self.config.store_lease,
                    skew: self.config.skew,
                    wall_clock: self.config.wall_clock.clone(),
                })
            }
            None => Step::Sleep(match (inner.refresh_at, inner.pending_expiry()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }),
        }
    }

    /// The refresh function, its notices (the device clock, an ID token
    /// not accepted) emitted as events and logged before its outcome.
    fn reporting_refresh(&self, inner: &Inner) -> crate::refresh::RefreshFn {
        let (name, events) = (self.name.clone(), inner.events.clone());
        crate::refresh::reporting(
            self.config.refresh.clone(),
            Arc::new(move |event| {
                tracing::warn!(manager = %name, "{event}");
                if let Some(events) = &events {
                    let _ = events.send(event);
                }
            }),
        )
    }

    pub(super) fn expire_now(&self, now: Instant) {
        let mut inner = self.lock();
        self.expire_if_due(&mut inner, now);
    }

    /// Records an attempt's result.
    pub(super) fn finish(&self, seq: u64, generation: u64, output: AttemptOutput, now: Instant) {
        let mut inner = self.lock();
        self.note_store(&mut inner, output.store);
        inner.running = None;
        let result = if inner.generation != generation {
            tracing::debug!(manager = %self.name, "discarding a refresh: tokens were stored or cleared meanwhile");
            self.publish_slot(&inner, now);
            AttemptResult::Superseded
        } else {
            match output.fetched {
                Ok(Fetched::Cleared(store_generation)) => {
                    tracing::info!(manager = %self.name, "the tokens were removed from the store (a logout in another process); dropping ours");
                    inner.generation += 1;
                    inner.store_generation = Some(store_generation);
                    self.drop_tokens(&mut inner, now);
                    AttemptResult::Superseded
                }
                Ok(fetched) => {
                    let (tokens, loaded, store_generation) = match fetched {
                        Fetched::Refreshed(tokens, generation) => {
                            (Arc::new(tokens), false, generation)
                        }
                        Fetched::Loaded(tokens, generation) => {
                            (Arc::new(tokens), true, Some(generation))
                        }
                        Fetched::Cleared(_) => unreachable!("handled above"),
                    };
                    if store_generation.is_some() {
                        inner.store_generation = store_generation;
                    }
                    let failures = inner.failures;
                    self.install(&mut inner, tokens.clone(), now);
                    if inner.is_valid(now) {
                        let expires_at = tokens.expiry();
                        let expires_in_s = inner
                            .expires
                            .map(|at| at.saturating_duration_since(now).as_secs());
                        if loaded {
                            tracing::info!(manager = %self.name, expires_in_s, "tokens taken from the store: another process refreshed them");
                            self.emit(&inner, TokenEvent::Loaded { expires_at });
                        } else {
                            tracing::info!(manager = %self.name, expires_in_s, "tokens refreshed");
                            self.emit(&inner, TokenEvent::Refreshed { expires_at });
                        }
                        AttemptResult::Done(tokens)
                    } else {
                        // Expired on arrival (`expires_in: 0`). Keep the tokens
                        // (a rotated refresh token must not be lost) but never
                        // hand them out, and back off as after any failure
                        // instead of asking again on every call.
                        inner.failures = failures;
                        let error = Error::invalid_response(
                            format!("refresh of token manager `{}`", self.name),
                            200,
                            "the new access token had already expired when it arrived (expires_in 0)",
                        );
                        AttemptResult::Failed(self.failed(&mut inner, error, now))
                    }
                }
                Err(error) => AttemptResult::Failed(self.failed(&mut inner, error, now)),
            }
        };
        inner.outcome = Some(Outcome { seq, result });
        drop(inner);
        self.done.notify_waiters();
    }

    /// Puts in the tokens the background task loaded from the store at
    /// start-up; callers waiting meanwhile look again.
    pub(super) fn loaded_at_startup(&self, stored: Option<Stored>, report: StoreReport) {
        let now = Instant::now();
        let mut inner = self.lock();
        self.note_store(&mut inner, report);
        let Some(stored) = stored else {
            return;
        };
        if inner.tokens.is_some() || inner.generation != 0 {
            // Tokens were stored or cleared meanwhile; that counts.
            return;
        }
        inner.store_generation = Some(stored.generation);
        if let Some(tokens) = stored.tokens {
            tracing::debug!(manager = %self.name, "loaded saved tokens");
            inner.generation += 1;
            self.supersede_pending(&mut inner);
            self.install(&mut inner, Arc::new(tokens), now);
            drop(inner);
            self.done.notify_waiters();
        }
    }

    /// Reports the store failing (once) and working again.
    pub(super) fn note_store(&self, inner: &mut Inner, report: StoreReport) {
        match report {
            StoreReport::Unused => {}
            StoreReport::Worked => {
                if inner.store_failing.take().is_some() {
                    tracing::info!(manager = %self.name, "the token store works again; sharing refreshes through it");
                    self.emit(inner, TokenEvent::StoreAvailable);
                }
            }
            StoreReport::Failed(error) => {
                if inner.store_failing.is_none() {
                    inner.store_failing = Some(error.clone());
                    tracing::warn!(manager = %self.name, "token store failed; refreshing alone until it works again: {error}");
                    self.emit(inner, TokenEvent::StoreUnavailable { error });
                } else {
                    tracing::debug!(manager = %self.name, "token store still failing: {error}");
                }
            }
        }
    }

    pub(super) fn failed(&self, inner: &mut Inner, error: Error, now: Instant) -> TokenError {
        let error = Arc::new(error);
        let reauth_required = error.requires_login();
        inner.failures = inner.failures.saturating_add(1);
        // Never sooner than the provider asked (`Retry-After` on a 429 or 503).
        let delay = self
            .backoff_delay(inner.failures)
            .max(error.retry_after().unwrap_or_default());
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
    pub(super) fn driver_stopped(&self) {
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

    /// Saves tokens put in with `store()`, unless newer ones replaced them
    /// meanwhile (their own save wins).
    pub(super) async fn persist(&self, tokens: &Arc<TokenSet>) {
        let Some(config) = &self.config.store else {
            return;
        };
        let _serial = self.persist.lock().await;
        let current = self.lock().tokens.clone();
        if !current.is_some_and(|current| Arc::ptr_eq(&current, tokens)) {
            return;
        }
        let saved = bounded(config.store.save(&config.key, tokens, SaveMode::Replace)).await;
        let mut inner = self.lock();
        self.note_store(&mut inner, StoreReport::of(&saved));
        if let Ok(Saved::Written { generation }) = saved
            && inner
                .tokens
                .as_ref()
                .is_some_and(|current| Arc::ptr_eq(current, tokens))
        {
            inner.store_generation = Some(generation);
        }
    }

    /// Removes the saved tokens after `clear()`, unless tokens were put in
    /// again meanwhile.
    pub(super) async fn persist_removal(&self) {
        let Some(config) = &self.config.store else {
            return;
        };
        let _serial = self.persist.lock().await;
        if self.lock().tokens.is_some() {
            return;
        }
        let removed = bounded(config.store.remove(&config.key)).await;
        let mut inner = self.lock();
        self.note_store(&mut inner, StoreReport::of(&removed));
        if let Ok(generation) = removed
            && inner.tokens.is_none()
        {
            inner.store_generation = Some(generation);
        }
    }

    /// Forgets the tokens and their schedule, failures included (`clear()`,
    /// or a logout seen in the store), and says so.
    pub(super) fn drop_tokens(&self, inner: &mut Inner, now: Instant) {
        self.supersede_pending(inner);
        inner.tokens = None;
        inner.expires = None;
        inner.lifetime = None;
        inner.expiry_announced = false;
        inner.refresh_at = None;
        inner.failures = 0;
        inner.last_failure = None;
        inner.reauth = None;
        self.publish_slot(inner, now);
        self.publish_state(inner, now);
        self.emit(inner, TokenEvent::Cleared);
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
