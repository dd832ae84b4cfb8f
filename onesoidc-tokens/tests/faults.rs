//! Token managers against the local provider behind a fault-injecting
//! proxy, over real sockets and the real clock: the provider goes down,
//! hangs, or answers nonsense during refreshes. The old token keeps being
//! served while it is valid, failures are reported and retried with
//! backoff, the manager recovers when the provider does, an expired token
//! is never handed out, and the token file is never left corrupt.
//!
//! Token lifetimes are a few seconds, so each test takes a few seconds;
//! waits are on the manager's events, bounded by timeouts.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use onesoidc_core::{Error, ExposeSecret, KeyType, MAX_EXPIRES_IN, TransportErrorKind};
use onesoidc_devidp::faults::{Fault, FaultProxy, start_behind_proxy};
use onesoidc_devidp::{DevIdp, DevIdpConfig};
use onesoidc_flows::http_client::ReqwestClient;
use onesoidc_flows::{DeviceIdentity, OnesIdClient};
use onesoidc_tokens::{
    FileTokenStore, StoreKey, TokenError, TokenEvent, TokenManager, TokenManagerBuilder,
    TokenOwner, TokenState, TokenStore, device_refresh,
};
use serde_json::json;
use tokio::time::Instant;
use tokio_stream::{Stream, StreamExt};

const TOKEN_PATH: &str = "/oidc/token";
/// The HTTP client's whole-request timeout.
const HTTP_TIMEOUT: Duration = Duration::from_millis(800);
const BACKOFF_INITIAL: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_millis(400);

struct World {
    idp: DevIdp,
    proxy: FaultProxy,
    client: OnesIdClient,
    dir: tempfile::TempDir,
}

/// A provider issuing access tokens that live `ttl`, behind a proxy, and a
/// device client with a short HTTP timeout.
async fn world(ttl: Duration) -> World {
    let (idp, proxy) = start_behind_proxy(DevIdpConfig {
        access_token_ttl: ttl,
        ..DevIdpConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp.provision_device(dir.path(), KeyType::EccP256).unwrap();
    let identity = DeviceIdentity::load(&paths).unwrap();
    let http = ReqwestClient::builder()
        .connect_timeout(HTTP_TIMEOUT)
        .timeout(HTTP_TIMEOUT)
        .build()
        .unwrap();
    let client = OnesIdClient::new(identity, http).unwrap();
    World {
        idp,
        proxy,
        client,
        dir,
    }
}

impl World {
    /// A device manager: refresh as late as half the token's life (the skew
    /// is more than the lifetimes used here), no jitter, short backoff.
    fn manager(&self) -> TokenManagerBuilder {
        TokenManager::builder("device", device_refresh(self.client.clone()))
            .refresh_skew(Duration::from_secs(60))
            .jitter(Duration::ZERO)
            .jitter_source(|| 0.0)
            .backoff(BACKOFF_INITIAL, BACKOFF_MAX)
            .refresh_timeout(Duration::from_secs(5))
    }

    fn store(&self) -> FileTokenStore {
        FileTokenStore::new(self.dir.path().join("tokens"))
    }

    fn key(&self) -> StoreKey {
        StoreKey::new("device", TokenOwner::of(&self.client))
    }

    /// A device manager keeping its tokens in [`store`](Self::store).
    fn stored_manager(&self) -> TokenManager {
        self.manager()
            .store(Arc::new(self.store()), TokenOwner::of(&self.client))
            .build()
    }

    /// The token file parses and holds `expected` (a refresh is saved before
    /// its token is handed out); no temporary file is left.
    async fn assert_stored(&self, expected: &str) {
        let store = self.store();
        let saved = store
            .load(&self.key())
            .await
            .expect("the token file is readable")
            .tokens
            .expect("the token file holds tokens");
        assert_eq!(saved.access_token.expose_secret(), expected);
        let mut files: Vec<String> = std::fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(
            files,
            ["device.json", "device.lease", "device.lock"],
            "the token file and its lock files, no temp files"
        );
    }
}

/// The next event for which `pred` holds, skipping others; panics after `within`.
async fn wait_for(
    events: &mut (impl Stream<Item = TokenEvent> + Unpin),
    within: Duration,
    what: &str,
    mut pred: impl FnMut(&TokenEvent) -> bool,
) -> TokenEvent {
    let deadline = Instant::now() + within;
    loop {
        let event = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap_or_else(|_| panic!("no {what} within {within:?}"))
            .expect("the event stream ended");
        if pred(&event) {
            return event;
        }
    }
}

/// The transport kind or HTTP status behind a failed refresh.
fn failure_of(event: &TokenEvent) -> Option<(&Error, bool)> {
    match event {
        TokenEvent::RefreshFailed {
            error,
            reauth_required,
        } => Some((error.as_ref(), *reauth_required)),
        _ => None,
    }
}

fn transport_kind(error: &Error) -> Option<TransportErrorKind> {
    match error {
        Error::Transport { source, .. } => Some(source.kind),
        _ => None,
    }
}

async fn token_of(manager: &TokenManager) -> String {
    manager
        .access_token()
        .await
        .unwrap()
        .expose_secret()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_failing_during_refresh_keeps_the_old_token_then_recovers() {
    // Lives 5 s: refreshed at 2.5 s, retried at 2.7, 3.1, 3.5, ... while valid.
    let w = world(Duration::from_secs(5)).await;
    let manager = w.stored_manager();
    let mut events = manager.events();
    let first = token_of(&manager).await;
    wait_for(&mut events, Duration::from_secs(1), "Refreshed", |e| {
        matches!(e, TokenEvent::Refreshed { .. })
    })
    .await;
    w.assert_stored(&first).await;

    // 503 with an HTML page.
    w.proxy.set(Fault::html(503, "Service Unavailable")).await;
    let event = wait_for(&mut events, Duration::from_secs(5), "RefreshFailed", |e| {
        failure_of(e).is_some()
    })
    .await;
    let (error, reauth_required) = failure_of(&event).unwrap();
    assert_eq!(error.http_status(), Some(503), "{error}");
    assert!(!reauth_required);
    let first_failure = Instant::now();
    assert_eq!(token_of(&manager).await, first, "the old token is served");
    assert!(
        matches!(
            manager.state(),
            TokenState::RefreshFailing { failures: 1, .. }
        ),
        "{:?}",
        manager.state()
    );
    w.assert_stored(&first).await;

    // Then down altogether: the retry (after the backoff) fails to connect.
    w.proxy.set(Fault::Down).await;
    let event = wait_for(
        &mut events,
        Duration::from_secs(3),
        "a Connect failure",
        |e| {
            failure_of(e).is_some_and(|(error, _)| {
                transport_kind(error) == Some(TransportErrorKind::Connect)
            })
        },
    )
    .await;
    assert!(!failure_of(&event).unwrap().1, "not a reauth");
    assert!(
        first_failure.elapsed() >= BACKOFF_INITIAL - Duration::from_millis(20),
        "retried after the backoff, not at once: {:?}",
        first_failure.elapsed()
    );
    assert_eq!(token_of(&manager).await, first, "still the old token");
    assert!(manager.state().is_valid());
    w.assert_stored(&first).await;

    // Back: the next retry succeeds, before the old token expires.
    w.proxy.set(Fault::Forward).await;
    let event = wait_for(&mut events, Duration::from_secs(3), "Refreshed", |e| {
        assert!(!matches!(e, TokenEvent::Expired), "expired before recovery");
        matches!(e, TokenEvent::Refreshed { .. })
    })
    .await;
    let TokenEvent::Refreshed { expires_at } = event else {
        unreachable!()
    };
    assert!(expires_at.at().unwrap() > SystemTime::now() + Duration::from_secs(3));
    let second = token_of(&manager).await;
    assert_ne!(second, first);
    assert!(
        matches!(manager.state(), TokenState::Valid { .. }),
        "{:?}",
        manager.state()
    );
    w.assert_stored(&second).await;
    assert!(
        w.client
            .introspect(&second.as_str().into(), None)
            .await
            .unwrap()
            .active
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_down_past_expiry_emits_expired_and_never_serves_the_stale_token() {
    // Lives 2 s: refreshed at 1 s, retried with backoff until it expires.
    let w = world(Duration::from_secs(2)).await;
    let manager = w.stored_manager();
    let mut events = manager.events();
    let first = token_of(&manager).await;
    wait_for(&mut events, Duration::from_secs(1), "Refreshed", |e| {
        matches!(e, TokenEvent::Refreshed { .. })
    })
    .await;
    w.assert_stored(&first).await;
    w.proxy.set(Fault::Down).await;

    let mut failures = 0;
    wait_for(&mut events, Duration::from_secs(4), "Expired", |e| {
        if let Some((error, reauth_required)) = failure_of(e) {
            assert_eq!(
                transport_kind(error),
                Some(TransportErrorKind::Connect),
                "{error}"
            );
            assert!(!reauth_required);
            failures += 1;
        }
        assert!(!matches!(e, TokenEvent::Refreshed { .. }));
        matches!(e, TokenEvent::Expired)
    })
    .await;
    assert!(failures >= 2, "retried with backoff ({failures} failures)");

    // Callers now get an error, never the expired token.
    for _ in 0..3 {
        match manager.access_token().await {
            Err(TokenError::Expired { source, .. }) => {
                assert_eq!(
                    transport_kind(&source),
                    Some(TransportErrorKind::Connect),
                    "{source}"
                );
            }
            Err(other) => panic!("expected TokenError::Expired, got {other}"),
            Ok(token) => panic!(
                "served a token after expiry (the stale one: {})",
                token.expose_secret() == first
            ),
        }
    }
    assert!(
        matches!(manager.state(), TokenState::Expired { error: Some(_) }),
        "{:?}",
        manager.state()
    );
    // The file still holds the old tokens, whole.
    w.assert_stored(&first).await;

    // Back: once the backoff delay has passed, the next caller gets a new token.
    w.proxy.set(Fault::Forward).await;
    tokio::time::sleep(BACKOFF_MAX).await;
    let second = token_of(&manager).await;
    assert_ne!(second, first);
    wait_for(&mut events, Duration::from_secs(1), "Refreshed", |e| {
        matches!(e, TokenEvent::Refreshed { .. })
    })
    .await;
    w.assert_stored(&second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_provider_fails_the_refresh_at_the_manager_timeout() {
    // Lives 3 s: refreshed at 1.5 s. The manager gives a refresh 300 ms,
    // less than the HTTP timeout: its own bound applies.
    let w = world(Duration::from_secs(3)).await;
    let manager = w
        .manager()
        .refresh_timeout(Duration::from_millis(300))
        .build();
    let mut events = manager.events();
    let first = token_of(&manager).await;
    w.proxy
        .set(Fault::Slow {
            delay: Duration::from_secs(60),
        })
        .await;
    let hung_at = Instant::now();
    let event = wait_for(&mut events, Duration::from_secs(4), "RefreshFailed", |e| {
        failure_of(e).is_some()
    })
    .await;
    let (error, reauth_required) = failure_of(&event).unwrap();
    assert_eq!(
        transport_kind(error),
        Some(TransportErrorKind::Timeout),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("refresh of token manager `device`")
    );
    assert!(!reauth_required);
    // Refresh due at ~1.5 s, failed 300 ms later.
    assert!(
        hung_at.elapsed() < Duration::from_secs(3),
        "{:?}",
        hung_at.elapsed()
    );
    assert_eq!(token_of(&manager).await, first);

    w.proxy.set(Fault::Forward).await;
    wait_for(&mut events, Duration::from_secs(2), "Refreshed", |e| {
        matches!(e, TokenEvent::Refreshed { .. })
    })
    .await;
    assert_ne!(token_of(&manager).await, first);
    // The hung requests never reached the provider.
    assert_eq!(w.idp.stats().token_requests.client_credentials, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expires_in_zero_is_not_served_and_causes_no_refresh_loop() {
    let w = world(Duration::from_secs(300)).await;
    w.client.provider_metadata().await.unwrap();
    w.proxy
        .set_for(
            TOKEN_PATH,
            Fault::json(&json!({"access_token": "zero", "token_type": "Bearer", "expires_in": 0})),
        )
        .await;
    let manager = w.stored_manager();
    let mut events = manager.events();

    // A caller asking every 10 ms for a second.
    let until = Instant::now() + Duration::from_secs(1);
    let mut calls = 0;
    while Instant::now() < until {
        match manager.access_token().await {
            Ok(token) => panic!(
                "handed out a token that expired on arrival ({})",
                token.expose_secret()
            ),
            Err(TokenError::Expired { source, .. } | TokenError::RefreshFailed { source, .. }) => {
                assert!(
                    matches!(source.as_ref(), Error::InvalidResponse { .. }),
                    "{source}"
                );
            }
            Err(other) => panic!("{other}"),
        }
        calls += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Backoff 200 ms, 400 ms, 400 ms...: attempts at about 0, 0.2, 0.6, 1.0 s.
    let requests = w.proxy.requests_to(TOKEN_PATH);
    assert!(calls >= 20, "{calls} calls");
    assert!(
        (1..=6).contains(&requests),
        "{requests} token requests for {calls} calls"
    );
    // Nobody asking: nothing happens in the background.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(w.proxy.requests_to(TOKEN_PATH), requests);
    // It was reported, not swallowed, and it is not a reauth.
    let event = wait_for(&mut events, Duration::from_secs(1), "RefreshFailed", |e| {
        failure_of(e).is_some()
    })
    .await;
    assert!(!failure_of(&event).unwrap().1);
    // The tokens were kept (a rotated refresh token must not be lost), whole.
    w.assert_stored("zero").await;

    // A sane answer again: the next caller after the backoff gets it.
    w.proxy.set_for(TOKEN_PATH, Fault::Forward).await;
    tokio::time::sleep(BACKOFF_MAX).await;
    let token = token_of(&manager).await;
    assert_ne!(token, "zero");
    w.assert_stored(&token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expires_in_missing_or_huge_is_served_without_refreshing() {
    let w = world(Duration::from_secs(300)).await;
    w.client.provider_metadata().await.unwrap();
    for (expires_in, expected) in [
        (None, None),
        (Some(json!(1e300)), Some(MAX_EXPIRES_IN)),
        (Some(json!(u64::MAX)), Some(MAX_EXPIRES_IN)),
    ] {
        let mut body = json!({"access_token": "long", "token_type": "Bearer"});
        if let Some(expires_in) = expires_in {
            body["expires_in"] = expires_in;
        }
        w.proxy.set_for(TOKEN_PATH, Fault::json(&body)).await;
        let before = w.proxy.requests_to(TOKEN_PATH);
        let manager = w.manager().build();
        let started = SystemTime::now();
        for _ in 0..10 {
            assert_eq!(token_of(&manager).await, "long");
        }
        assert_eq!(w.proxy.requests_to(TOKEN_PATH), before + 1, "fetched once");
        match (manager.state(), expected) {
            (TokenState::Valid { expires_at }, None) if expires_at.at().is_none() => {}
            (TokenState::Valid { expires_at }, Some(cap)) if expires_at.at().is_some() => {
                let at = expires_at.at().unwrap();
                assert!(at >= started + cap && at <= SystemTime::now() + cap);
            }
            (state, _) => panic!("{state:?}"),
        }
        manager.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negative_expires_in_or_a_dpop_token_is_a_failed_fetch_with_backoff() {
    let w = world(Duration::from_secs(300)).await;
    w.client.provider_metadata().await.unwrap();
    for body in [
        json!({"access_token": "at", "token_type": "Bearer", "expires_in": -5}),
        json!({"access_token": "at", "token_type": "DPoP", "expires_in": 300}),
    ] {
        w.proxy.set_for(TOKEN_PATH, Fault::json(&body)).await;
        let before = w.proxy.requests_to(TOKEN_PATH);
        let manager = w.stored_manager();
        for _ in 0..5 {
            match manager.access_token().await {
                Err(TokenError::RefreshFailed { source, .. }) => assert!(
                    matches!(source.as_ref(), Error::InvalidResponse { status: 200, .. }),
                    "{source}"
                ),
                other => panic!("{body}: {other:?}"),
            }
        }
        assert_eq!(
            w.proxy.requests_to(TOKEN_PATH),
            before + 1,
            "callers within the backoff get the error without a new request"
        );
        assert!(matches!(manager.state(), TokenState::Failed { .. }));
        assert!(
            w.store().load(&w.key()).await.unwrap().tokens.is_none(),
            "nothing saved"
        );
        manager.shutdown().await;
    }
}
