//! Unit tests of the manager's internals (the public behaviour is tested
//! in `tests/tokens/`).

use std::future::Future;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use onesoidc_core::{Error, ExposeSecret, TokenSet};
use tokio::time::Instant;

use super::read_path::{READ_CACHE, READ_CACHE_ENTRIES};
use super::*;
use crate::refresh::RefreshFn;
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
        dpop_jkt: None,
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
    manager.store(newer).await;
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

    manager.clear().await;
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
        manager.store(generation(n)).await;
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
            Err(Error::http_status_error("https://idp.test/oidc/token", 503))
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
