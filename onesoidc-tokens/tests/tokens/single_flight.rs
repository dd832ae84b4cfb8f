//! One refresh in flight, however many callers; store, clear, force, events.

use std::sync::atomic::{AtomicUsize, Ordering};

use onesoidc_tokens::TokenState;
use tokio::sync::Semaphore;

use super::*;

async fn call_concurrently(
    manager: &TokenManager,
    callers: usize,
) -> Vec<Result<Arc<TokenSet>, TokenError>> {
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let manager = manager.clone();
            tokio::spawn(async move { manager.tokens().await })
        })
        .collect();
    let mut results = Vec::with_capacity(callers);
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test(start_paused = true)]
async fn a_thousand_callers_on_an_expired_token_cause_one_refresh() {
    let clock = Clock::new();
    let calls = Calls::default();
    let manager = builder(scripted(clock, &calls, secs(1), hour_tokens), &clock)
        .initial_tokens(token("old", Some(clock.wall() - secs(1))))
        .build();
    let results = call_concurrently(&manager, 1000).await;
    assert_eq!(calls.count(), 1, "exactly one refresh request");
    assert_eq!(
        clock.elapsed(),
        secs(1),
        "all of them waited for that one refresh"
    );
    let first = results[0].as_ref().unwrap();
    assert_eq!(first.access_token.expose_secret(), "t1");
    assert!(
        results
            .iter()
            .all(|r| Arc::ptr_eq(r.as_ref().unwrap(), first))
    );
}

#[tokio::test(start_paused = true)]
async fn a_thousand_callers_on_an_empty_manager_share_one_failure() {
    let clock = Clock::new();
    let calls = Calls::default();
    let manager = builder(
        scripted(clock, &calls, secs(1), |_, _| Err(unavailable())),
        &clock,
    )
    .build();
    let results = call_concurrently(&manager, 1000).await;
    assert_eq!(calls.count(), 1);
    let first = results[0].as_ref().unwrap_err().cause().unwrap().clone();
    for result in &results {
        let error = result.as_ref().unwrap_err();
        assert!(matches!(error, TokenError::RefreshFailed { .. }));
        assert!(
            Arc::ptr_eq(error.cause().unwrap(), &first),
            "the same error"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_callers_on_threads_cause_one_refresh() {
    let gate = Arc::new(Semaphore::new(0));
    let refreshes = Arc::new(AtomicUsize::new(0));
    let refresh = {
        let gate = gate.clone();
        let refreshes = refreshes.clone();
        onesoidc_tokens::refresh_fn(move |_| {
            refreshes.fetch_add(1, Ordering::SeqCst);
            let gate = gate.clone();
            async move {
                let _permit = gate.acquire().await.unwrap();
                Ok(token("shared", Some(SystemTime::now() + HOUR)))
            }
        })
    };
    let manager = TokenManager::new("device", refresh);
    let started = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let manager = manager.clone();
            let started = started.clone();
            tokio::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                manager.access_token().await
            })
        })
        .collect();
    while started.load(Ordering::SeqCst) < 1000 {
        tokio::task::yield_now().await;
    }
    settle().await;
    gate.add_permits(1);
    for task in tasks {
        assert_eq!(secret(&task.await.unwrap()), "shared");
    }
    assert_eq!(refreshes.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn force_refresh_replaces_a_valid_token() {
    let clock = Clock::new();
    let calls = Calls::default();
    let manager = builder(scripted(clock, &calls, Duration::ZERO, hour_tokens), &clock)
        .initial_tokens(token("initial", Some(clock.wall() + HOUR)))
        .build();
    let mut events = manager.events();
    let tokens = manager.force_refresh().await.unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "t1");
    assert!(matches!(
        events.next().await,
        Some(TokenEvent::Refreshed { .. })
    ));
    assert_eq!(secret(&manager.access_token().await), "t1");
    assert_eq!(calls.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn store_clear_and_a_late_subscribers_view() {
    let clock = Clock::new();
    let calls = Calls::default();
    let manager = builder(scripted(clock, &calls, Duration::ZERO, hour_tokens), &clock).build();
    assert!(matches!(manager.state(), TokenState::Empty));
    let mut events = manager.events();

    manager
        .store(token("login", Some(clock.wall() + HOUR)))
        .await;
    assert!(matches!(
        events.next().await,
        Some(TokenEvent::Stored { expires_at }) if expires_at.at() == Some(clock.wall() + HOUR)
    ));
    assert_eq!(secret(&manager.access_token().await), "login");
    assert_eq!(calls.count(), 0);

    // A late subscriber sees where things stand at once.
    let state = manager.watch_state();
    assert!(matches!(&*state.borrow(), TokenState::Valid { .. }));

    manager.clear().await;
    assert!(matches!(events.next().await, Some(TokenEvent::Cleared)));
    assert!(matches!(&*state.borrow(), TokenState::Empty));
    assert!(manager.current().is_none());

    // A device manager fetches anew.
    assert_eq!(secret(&manager.access_token().await), "t1");
    assert!(matches!(
        events.next().await,
        Some(TokenEvent::Refreshed { .. })
    ));
    assert!(matches!(&*state.borrow(), TokenState::Valid { .. }));
}

#[tokio::test(start_paused = true)]
async fn a_store_during_a_refresh_wins() {
    let clock = Clock::new();
    let calls = Calls::default();
    let manager = builder(scripted(clock, &calls, secs(10), hour_tokens), &clock).build();
    let waiter = {
        let manager = manager.clone();
        tokio::spawn(async move { manager.access_token().await })
    };
    settle().await;
    assert_eq!(calls.count(), 1, "the refresh is in flight");
    manager
        .store(token("login", Some(clock.wall() + HOUR)))
        .await;
    // The waiting caller gets the stored token without waiting for the refresh.
    assert_eq!(secret(&waiter.await.unwrap()), "login");
    assert_eq!(clock.elapsed(), Duration::ZERO);
    // The refresh's result, when it comes, is discarded.
    clock.sleep_until(secs(11)).await;
    assert_eq!(secret(&manager.access_token().await), "login");
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_streams_and_stale_tokens_are_never_served() {
    let clock = Clock::new();
    let calls = Calls::default();
    let manager = builder(scripted(clock, &calls, Duration::ZERO, hour_tokens), &clock)
        .initial_tokens(token("initial", Some(clock.wall() + HOUR)))
        .build();
    let mut events = manager.events();
    let state = manager.watch_state();
    manager.shutdown().await;
    assert!(events.next().await.is_none(), "the stream ends");
    assert!(matches!(&*state.borrow(), TokenState::Stopped));
    assert!(matches!(manager.state(), TokenState::Stopped));
    // Still valid: still served. No background refresh any more.
    assert_eq!(secret(&manager.access_token().await), "initial");
    clock.sleep_until(HOUR).await;
    assert!(matches!(
        manager.access_token().await,
        Err(TokenError::Stopped { .. })
    ));
    assert_eq!(calls.count(), 0);
    assert!(manager.events().next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_slow_subscriber_skips_what_it_missed() {
    let clock = Clock::new();
    let calls = Calls::default();
    let manager = builder(scripted(clock, &calls, Duration::ZERO, hour_tokens), &clock)
        .event_capacity(2)
        .build();
    let events = manager.events();
    for i in 1..=5 {
        manager
            .store(token(&format!("s{i}"), Some(clock.wall() + secs(i))))
            .await;
    }
    drop(manager);
    let received: Vec<TokenEvent> = events.collect().await;
    let expiries: Vec<_> = received
        .iter()
        .map(|event| match event {
            TokenEvent::Stored { expires_at } => expires_at.at().unwrap(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(expiries, [clock.wall() + secs(4), clock.wall() + secs(5)]);
}

#[tokio::test(start_paused = true)]
async fn tokens_stay_out_of_debug_output() {
    let clock = Clock::new();
    let calls = Calls::default();
    let manager = builder(scripted(clock, &calls, Duration::ZERO, hour_tokens), &clock)
        .initial_tokens(token("s3cr3t-access", Some(clock.wall() + HOUR)))
        .build();
    let token = manager.access_token().await.unwrap();
    assert_eq!(token.expose_secret(), "s3cr3t-access");
    assert_eq!(token.token_type(), "Bearer");
    for text in [
        format!("{token:?}"),
        format!("{manager:?}"),
        format!("{:?}", manager.state()),
        format!("{:?}", manager.current()),
    ] {
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}
