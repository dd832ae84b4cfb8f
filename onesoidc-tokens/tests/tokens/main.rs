//! Behaviour of the token managers, on tokio's paused clock: every time
//! asserted here is exact, and nothing sleeps for real.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use onesoidc_core::{Error, ExposeSecret, TokenSet};
use onesoidc_tokens::{
    AccessToken, RefreshFn, TokenError, TokenEvent, TokenManager, TokenManagerBuilder,
};
use tokio::time::Instant;
use tokio_stream::{Stream, StreamExt};

mod flows;
mod registry;
mod single_flight;
mod store;
mod timing;

/// The wall clock at the start of every test.
const BASE: u64 = 1_700_000_000;
const HOUR: Duration = Duration::from_secs(3600);
const ENDPOINT: &str = "https://idp.test/oidc/token";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Tokio's (paused) clock, and a wall clock that moves with it.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
}

impl Clock {
    fn new() -> Self {
        Clock {
            start: Instant::now(),
        }
    }

    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn wall(&self) -> SystemTime {
        UNIX_EPOCH + secs(BASE) + self.elapsed()
    }

    fn wall_fn(&self) -> impl Fn() -> SystemTime + Send + Sync + 'static {
        let clock = *self;
        move || clock.wall()
    }

    async fn sleep_until(&self, at: Duration) {
        tokio::time::sleep_until(self.start + at).await;
    }
}

fn token(access: &str, expires_at: Option<SystemTime>) -> TokenSet {
    TokenSet {
        access_token: access.to_string().into(),
        token_type: "Bearer".into(),
        expires_at,
        refresh_token: Some(format!("rt-of-{access}").into()),
        id_token: None,
        scope: None,
        dpop_jkt: None,
    }
}

fn unavailable() -> Error {
    Error::http_status_error(ENDPOINT, 503)
}

fn invalid_grant() -> Error {
    Error::oauth(
        ENDPOINT,
        400,
        "invalid_grant",
        Some("refresh token revoked".into()),
    )
}

/// Times (since the test started) at which a refresh function was called.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<Duration>>>);

impl Calls {
    fn record(&self, clock: &Clock) -> usize {
        let mut calls = self.0.lock().unwrap();
        calls.push(clock.elapsed());
        calls.len()
    }

    fn times(&self) -> Vec<Duration> {
        self.0.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A refresh function that records its calls and answers with `answer(n)`
/// (n = 1 for the first call), after `delay` of tokio time.
fn scripted(
    clock: Clock,
    calls: &Calls,
    delay: Duration,
    answer: impl Fn(usize, &Clock) -> Result<TokenSet, Error> + Send + Sync + 'static,
) -> RefreshFn {
    let calls = calls.clone();
    onesoidc_tokens::refresh_fn(move |_current| {
        let n = calls.record(&clock);
        let result = answer(n, &clock);
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            result
        }
    })
}

/// Fresh hour-long tokens named after the call: `t1`, `t2`, ...
fn hour_tokens(n: usize, clock: &Clock) -> Result<TokenSet, Error> {
    Ok(token(&format!("t{n}"), Some(clock.wall() + HOUR)))
}

/// A builder with exact settings: skew 60 s, jitter 30 s with fraction 0
/// (so no jitter), backoff 1 s doubling to 10 s.
fn builder(refresh: RefreshFn, clock: &Clock) -> TokenManagerBuilder {
    TokenManager::builder("device", refresh)
        .wall_clock(clock.wall_fn())
        .jitter_source(|| 0.0)
        .refresh_skew(secs(60))
        .jitter(secs(30))
        .backoff(secs(1), secs(10))
}

fn secret(token: &Result<AccessToken, TokenError>) -> String {
    match token {
        Ok(token) => token.expose_secret().to_string(),
        Err(e) => panic!("expected a token, got: {e}"),
    }
}

/// The next event and when (since the test started) it arrived.
async fn next_event(
    clock: &Clock,
    events: &mut (impl Stream<Item = TokenEvent> + Unpin),
) -> (Duration, TokenEvent) {
    // Two days of (paused) time: a broken manager fails the test at once
    // instead of hanging it.
    let event = tokio::time::timeout(secs(2 * 86_400), events.next())
        .await
        .expect("an event within two days")
        .expect("the event stream ended");
    (clock.elapsed(), event)
}

/// Lets spawned tasks run without moving the clock.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}
