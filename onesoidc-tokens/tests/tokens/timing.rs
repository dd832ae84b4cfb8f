//! When refreshes, retries and expiry happen.

use std::sync::Mutex;

use onesoidc_core::TransportErrorKind;
use onesoidc_tokens::TokenState;
use rand::{Rng, SeedableRng};

use super::*;

#[tokio::test(start_paused = true)]
async fn refreshes_at_expiry_minus_skew() {
    let clock = Clock::new();
    let calls = Calls::default();
    let manager = builder(scripted(clock, &calls, Duration::ZERO, hour_tokens), &clock)
        .initial_tokens(token("initial", Some(clock.wall() + HOUR)))
        .build();
    let mut events = manager.events();
    assert_eq!(secret(&manager.access_token().await), "initial");
    assert_eq!(calls.count(), 0, "a valid token needs no refresh");

    let (at, event) = next_event(&clock, &mut events).await;
    assert!(
        matches!(event, TokenEvent::Refreshed { expires_at } if expires_at.at() == Some(clock.wall() + HOUR))
    );
    assert_eq!(at, secs(3540));
    assert_eq!(secret(&manager.access_token().await), "t1");

    // The new token is again refreshed 60 s before its expiry.
    let (at, _) = next_event(&clock, &mut events).await;
    assert_eq!(at, secs(3540 + 3540));
    assert_eq!(calls.times(), [secs(3540), secs(7080)]);
}

#[tokio::test(start_paused = true)]
async fn jitter_adds_lead_within_its_bounds() {
    // A fraction of one half: 60 s + 15 s before expiry, exactly.
    let clock = Clock::new();
    let calls = Calls::default();
    let manager = builder(scripted(clock, &calls, Duration::ZERO, hour_tokens), &clock)
        .jitter_source(|| 0.5)
        .initial_tokens(token("initial", Some(clock.wall() + HOUR)))
        .build();
    let mut events = manager.events();
    let (at, _) = next_event(&clock, &mut events).await;
    assert_eq!(at, secs(3600 - 75));

    // Random fractions (seeded): every refresh falls in [expiry - 90 s,
    // expiry - 60 s], and they do not all fall together.
    let clock = Clock::new();
    let calls = Calls::default();
    let rng = Arc::new(Mutex::new(rand::rngs::StdRng::seed_from_u64(7)));
    let refresh = scripted(clock, &calls, Duration::ZERO, hour_tokens);
    let mut managers = Vec::new();
    for i in 0..50 {
        let rng = rng.clone();
        managers.push(
            builder(refresh.clone(), &clock)
                .jitter_source(move || rng.lock().unwrap().random::<f64>())
                .initial_tokens(token(&format!("m{i}"), Some(clock.wall() + HOUR)))
                .build(),
        );
    }
    clock.sleep_until(secs(3600)).await;
    let times = calls.times();
    assert_eq!(times.len(), 50);
    assert!(
        times.iter().all(|t| *t >= secs(3510) && *t <= secs(3540)),
        "{times:?}"
    );
    let spread = *times.iter().max().unwrap() - *times.iter().min().unwrap();
    assert!(
        spread > secs(20),
        "jitter should spread refreshes: {times:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_short_lived_token_is_refreshed_halfway() {
    let clock = Clock::new();
    let calls = Calls::default();
    let manager = builder(scripted(clock, &calls, Duration::ZERO, hour_tokens), &clock)
        .initial_tokens(token("short", Some(clock.wall() + secs(100))))
        .build();
    let mut events = manager.events();
    let (at, _) = next_event(&clock, &mut events).await;
    assert_eq!(
        at,
        secs(50),
        "skew + jitter (60 s) is capped at half the life left"
    );
}

#[tokio::test(start_paused = true)]
async fn failed_refreshes_back_off_then_the_token_expires() {
    let clock = Clock::new();
    let calls = Calls::default();
    let manager = builder(
        scripted(clock, &calls, Duration::ZERO, |_, _| Err(unavailable())),
        &clock,
    )
    .initial_tokens(token("initial", Some(clock.wall() + HOUR)))
    .build();
    let mut events = manager.events();

    let mut failures = Vec::new();
    let expired_at = loop {
        match next_event(&clock, &mut events).await {
            (
                at,
                TokenEvent::RefreshFailed {
                    error,
                    reauth_required,
                },
            ) => {
                assert!(!reauth_required);
                assert_eq!(error.http_status(), Some(503));
                failures.push(at);
            }
            (at, TokenEvent::Expired) => break at,
            (_, other) => panic!("unexpected {other:?}"),
        }
    };
    // First try at expiry - 60 s, then 1, 2, 4, 8 s later, then every 10 s
    // (the cap) while the retry still falls before expiry.
    let expected: Vec<Duration> = [3540, 3541, 3543, 3547, 3555, 3565, 3575, 3585, 3595]
        .into_iter()
        .map(secs)
        .collect();
    assert_eq!(failures, expected);
    assert_eq!(calls.times(), expected);
    assert_eq!(expired_at, HOUR, "Expired exactly at expiry");
    assert!(matches!(
        manager.state(),
        TokenState::Expired { error: Some(_) }
    ));

    // Never a stale token: the last failure's backoff (10 s) has not passed,
    // so callers get the error at once, without a new request.
    let error = manager.access_token().await.unwrap_err();
    assert!(matches!(error, TokenError::Expired { .. }));
    assert_eq!(
        error.to_string(),
        "token manager `device`: the token expired and refreshing failed: \
         https://idp.test/oidc/token answered HTTP 503 (a server error: try again later)"
    );
    assert_eq!(calls.count(), 9);

    // Once it has passed, the next caller triggers one more attempt.
    clock.sleep_until(secs(3605)).await;
    let error = manager.access_token().await.unwrap_err();
    assert!(matches!(error, TokenError::Expired { .. }));
    assert_eq!(calls.times().last(), Some(&secs(3605)));
    assert_eq!(calls.count(), 10);
}

#[tokio::test(start_paused = true)]
async fn the_old_token_is_served_until_the_last_millisecond() {
    let clock = Clock::new();
    let calls = Calls::default();
    let manager = builder(
        scripted(clock, &calls, Duration::ZERO, |_, _| Err(unavailable())),
        &clock,
    )
    .initial_tokens(token("initial", Some(clock.wall() + HOUR)))
    .build();
    clock.sleep_until(HOUR - millis(1)).await;
    assert_eq!(secret(&manager.access_token().await), "initial");
    assert!(matches!(
        manager.state(),
        TokenState::RefreshFailing { failures: 9, .. }
    ));
    clock.sleep_until(HOUR).await;
    assert!(manager.access_token().await.is_err());
    assert!(manager.tokens().await.is_err());
    // The expired tokens are still there (for their refresh token).
    assert_eq!(
        manager.current().unwrap().access_token.expose_secret(),
        "initial"
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_delays_are_jittered() {
    // Fraction 0.5: the lead is 75 s and every delay is 3/4 of the full one.
    let clock = Clock::new();
    let calls = Calls::default();
    let _manager = builder(
        scripted(clock, &calls, Duration::ZERO, |_, _| Err(unavailable())),
        &clock,
    )
    .jitter_source(|| 0.5)
    .initial_tokens(token("initial", Some(clock.wall() + HOUR)))
    .build();
    clock.sleep_until(HOUR + secs(1)).await;
    let mut expected = vec![secs(3525)];
    let mut full = secs(1);
    loop {
        let next = *expected.last().unwrap() + full * 3 / 4;
        if next >= HOUR {
            break;
        }
        expected.push(next);
        full = (full * 2).min(secs(10));
    }
    assert_eq!(expected[1], secs(3525) + millis(750));
    assert_eq!(calls.times(), expected);
}

/// A provider under load is obeyed: a refresh answered 503 with
/// `Retry-After: 45` is tried again 45 s later, not after the 1 s backoff;
/// a `Retry-After` shorter than the backoff does not shorten it.
#[tokio::test(start_paused = true)]
async fn retry_after_sets_the_earliest_next_refresh() {
    let clock = Clock::new();
    let calls = Calls::default();
    let busy =
        |after: u64| move |_: usize, _: &Clock| Err(unavailable().with_retry_after(secs(after)));
    let manager = builder(scripted(clock, &calls, Duration::ZERO, busy(45)), &clock)
        .jitter_source(|| 0.0)
        .initial_tokens(token("initial", Some(clock.wall() + HOUR)))
        .build();
    clock.sleep_until(secs(3601)).await;
    // 3540 + 45 = 3585; the next, at 3630, would come after expiry (3600).
    assert_eq!(calls.times(), [secs(3540), secs(3585)]);
    assert!(manager.access_token().await.is_err());
    assert_eq!(calls.count(), 2, "a caller does not ask before 3630 either");
    clock.sleep_until(secs(3630)).await;
    assert!(manager.access_token().await.is_err());
    assert_eq!(calls.times(), [secs(3540), secs(3585), secs(3630)]);

    let clock = Clock::new();
    let calls = Calls::default();
    let _manager = builder(scripted(clock, &calls, Duration::ZERO, busy(0)), &clock)
        .jitter_source(|| 0.0)
        .initial_tokens(token("initial", Some(clock.wall() + HOUR)))
        .build();
    clock.sleep_until(secs(3540 + 1 + 2 + 1)).await;
    assert_eq!(
        calls.times(),
        [secs(3540), secs(3541), secs(3543)],
        "the backoff (1 s, 2 s) as without Retry-After"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rejected_refresh_token_stops_refreshing() {
    let clock = Clock::new();
    let calls = Calls::default();
    let manager = builder(
        scripted(clock, &calls, Duration::ZERO, |_, _| Err(invalid_grant())),
        &clock,
    )
    .initial_tokens(token("user", Some(clock.wall() + HOUR)))
    .build();
    let mut events = manager.events();

    let (at, event) = next_event(&clock, &mut events).await;
    assert_eq!(at, secs(3540));
    assert!(matches!(
        event,
        TokenEvent::RefreshFailed { reauth_required: true, ref error } if error.oauth_error() == Some("invalid_grant")
    ));
    assert!(matches!(manager.state(), TokenState::ReauthRequired { .. }));
    // Still valid: still handed out.
    assert_eq!(secret(&manager.access_token().await), "user");

    // No retry loop: the next event is the expiry.
    let (at, event) = next_event(&clock, &mut events).await;
    assert_eq!(at, HOUR);
    assert!(matches!(event, TokenEvent::Expired));
    assert_eq!(calls.count(), 1);

    let error = manager.access_token().await.unwrap_err();
    assert!(error.is_reauth_required());
    assert!(
        error
            .to_string()
            .starts_with("token manager `device` needs a new login"),
        "{error}"
    );
    clock.sleep_until(HOUR * 48).await;
    assert!(
        manager
            .access_token()
            .await
            .unwrap_err()
            .is_reauth_required()
    );
    assert_eq!(
        calls.count(),
        1,
        "callers do not retry a rejected refresh token"
    );

    // A new login puts it back in business.
    manager
        .store(token("relogged", Some(clock.wall() + HOUR)))
        .await;
    assert_eq!(secret(&manager.access_token().await), "relogged");
    assert!(matches!(manager.state(), TokenState::Valid { .. }));
}

#[tokio::test(start_paused = true)]
async fn callers_wait_out_the_backoff_after_a_failed_fetch() {
    let clock = Clock::new();
    let calls = Calls::default();
    let manager = builder(
        scripted(clock, &calls, Duration::ZERO, |_, _| Err(unavailable())),
        &clock,
    )
    .build();
    let error = manager.access_token().await.unwrap_err();
    assert!(
        matches!(error, TokenError::RefreshFailed { .. }),
        "{error:?}"
    );
    assert!(matches!(manager.state(), TokenState::Failed { .. }));
    assert!(manager.access_token().await.is_err());
    assert_eq!(calls.count(), 1, "within the 1 s backoff: no new request");
    clock.sleep_until(secs(1)).await;
    assert!(manager.access_token().await.is_err());
    assert!(manager.access_token().await.is_err());
    clock.sleep_until(secs(3)).await;
    assert!(manager.access_token().await.is_err());
    assert_eq!(calls.times(), [secs(0), secs(1), secs(3)]);
    // force_refresh does not wait.
    assert!(manager.force_refresh().await.is_err());
    assert_eq!(calls.count(), 4);
}

#[tokio::test(start_paused = true)]
async fn tokens_without_expiry_are_never_refreshed() {
    let clock = Clock::new();
    let calls = Calls::default();
    let manager = builder(scripted(clock, &calls, Duration::ZERO, hour_tokens), &clock)
        .initial_tokens(token("forever", None))
        .build();
    clock.sleep_until(HOUR * 24 * 365).await;
    assert_eq!(secret(&manager.access_token().await), "forever");
    assert_eq!(calls.count(), 0);
    assert!(matches!(
        manager.state(),
        TokenState::Valid { expires_at } if expires_at.at().is_none()
    ));
}

#[tokio::test(start_paused = true)]
async fn a_slow_refresh_times_out() {
    let clock = Clock::new();
    let calls = Calls::default();
    let manager = builder(scripted(clock, &calls, HOUR, hour_tokens), &clock)
        .refresh_timeout(secs(5))
        .build();
    let error = manager.access_token().await.unwrap_err();
    assert_eq!(clock.elapsed(), secs(5));
    match error.cause().map(|e| &**e) {
        Some(Error::Transport { source, .. }) => {
            assert_eq!(source.kind, TransportErrorKind::Timeout)
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn expiry_is_announced_during_a_hanging_refresh() {
    let clock = Clock::new();
    let calls = Calls::default();
    let manager = builder(scripted(clock, &calls, HOUR, hour_tokens), &clock)
        .refresh_timeout(secs(120))
        .initial_tokens(token("initial", Some(clock.wall() + HOUR)))
        .build();
    let mut events = manager.events();
    let (at, event) = next_event(&clock, &mut events).await;
    assert!(matches!(event, TokenEvent::Expired));
    assert_eq!(at, HOUR);
    assert_eq!(calls.times(), [secs(3540)]);
    let (at, event) = next_event(&clock, &mut events).await;
    assert!(matches!(event, TokenEvent::RefreshFailed { .. }));
    assert_eq!(at, secs(3540 + 120));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_refresh_function_is_a_failed_refresh() {
    let clock = Clock::new();
    let calls = Calls::default();
    let recorder = calls.clone();
    let refresh = onesoidc_tokens::refresh_fn(move |_| {
        let n = recorder.record(&clock);
        async move {
            if n == 1 {
                panic!("a bug in the refresh function");
            }
            hour_tokens(n, &clock)
        }
    });
    let manager = builder(refresh, &clock).build();
    let error = manager.access_token().await.unwrap_err();
    assert!(error.to_string().contains("panicked"), "{error}");
    // The manager survives the panic.
    assert!(matches!(manager.state(), TokenState::Failed { .. }));
    clock.sleep_until(secs(1)).await;
    assert_eq!(secret(&manager.access_token().await), "t2");
}
