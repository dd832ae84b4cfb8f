//! Races between a refresh and a logout, a login or another process, run
//! against any store: the file store (`tests/tokens/store.rs`, on tokio's
//! paused clock) and Redis (`tests/shared`, in real time).
//!
//! The refresh function here is a user's: it spends the current tokens'
//! refresh token (`rt-A` gives `A'` with `rt-A'`) and counts how often each
//! refresh token was spent; without tokens it needs a new login.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use onesoidc_core::{Error, ExposeSecret, TokenSet};
use onesoidc_tokens::{
    RefreshFn, SaveMode, Saved, StoreKey, TokenEvent, TokenManager, TokenOwner, TokenStore,
    refresh_fn,
};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

pub const NAME: &str = "ciba_user";
const HOUR: Duration = Duration::from_secs(3600);

pub fn owner() -> TokenOwner {
    TokenOwner::new("https://idp.example.com/oidc", "races")
}

pub fn key() -> StoreKey {
    StoreKey::new(NAME, owner())
}

/// Tokens `access` with refresh token `rt-<access>`, living `lifetime`.
pub fn user_tokens(access: &str, lifetime: Duration) -> TokenSet {
    TokenSet {
        access_token: access.to_string().into(),
        token_type: "Bearer".into(),
        expires_at: Some(SystemTime::now() + lifetime),
        refresh_token: Some(format!("rt-{access}").into()),
        id_token: None,
        scope: None,
        dpop_jkt: None,
    }
}

/// A user's refresh taking `delay`: says on `started` whose tokens it
/// refreshes, counts each refresh token spent, and answers `<access>'`
/// living two hours.
#[derive(Clone)]
pub struct UserRefresh {
    pub spent: Arc<Mutex<BTreeMap<String, usize>>>,
    started: mpsc::UnboundedSender<String>,
}

impl UserRefresh {
    pub fn new(delay: Duration) -> (Self, RefreshFn, mpsc::UnboundedReceiver<String>) {
        let (started, receiver) = mpsc::unbounded_channel();
        let this = UserRefresh {
            spent: Arc::default(),
            started,
        };
        let shared = this.clone();
        let refresh = refresh_fn(move |current: Option<Arc<TokenSet>>| {
            let this = shared.clone();
            async move {
                let Some(current) = current else {
                    return Err(Error::LoginRequired {
                        reason: "no user tokens to refresh".into(),
                    });
                };
                let access = current.access_token.expose_secret().to_string();
                let rt = current.refresh_token.as_ref().unwrap().expose_secret();
                *this
                    .spent
                    .lock()
                    .unwrap()
                    .entry(rt.to_string())
                    .or_default() += 1;
                let _ = this.started.send(access.clone());
                tokio::time::sleep(delay).await;
                Ok(user_tokens(&format!("{access}'"), 2 * HOUR))
            }
        });
        (this, refresh, receiver)
    }

    /// The refresh tokens spent more than once.
    pub fn spent_twice(&self) -> Vec<(String, usize)> {
        let spent = self.spent.lock().unwrap();
        spent
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(rt, n)| (rt.clone(), *n))
            .collect()
    }
}

fn manager(store: &Arc<dyn TokenStore>, refresh: &RefreshFn) -> TokenManager {
    TokenManager::builder(NAME, refresh.clone())
        .store(store.clone(), owner())
        .build()
}

fn access(tokens: &TokenSet) -> &str {
    tokens.access_token.expose_secret()
}

/// The generation rules of [`SaveMode`], on the store itself.
pub async fn generations(store: Arc<dyn TokenStore>) {
    let key = key();
    let a = user_tokens("A", HOUR);
    let refreshed = |generation| SaveMode::Refreshed {
        generation,
        fence: None,
    };
    let written = |saved: Saved| match saved {
        Saved::Written { generation } => generation,
        other => panic!("expected a write, got {other:?}"),
    };
    let g1 = written(store.save(&key, &a, SaveMode::Replace).await.unwrap());
    assert_eq!(store.load(&key).await.unwrap().generation, g1);
    let a1 = user_tokens("A'", 2 * HOUR);
    assert_eq!(
        written(store.save(&key, &a1, refreshed(g1)).await.unwrap()),
        g1
    );

    let g2 = store.remove(&key).await.unwrap();
    assert!(g2 > g1);
    let tombstone = store.load(&key).await.unwrap();
    assert!(tombstone.is_tombstone() && tombstone.generation == g2);
    match store.save(&key, &a1, refreshed(g1)).await.unwrap() {
        Saved::Superseded(now) => assert!(now.is_tombstone(), "{now:?}"),
        other => panic!("a late save brought back logged-out tokens: {other:?}"),
    }
    assert!(store.load(&key).await.unwrap().tokens.is_none());

    let b = user_tokens("B", HOUR);
    let g3 = written(store.save(&key, &b, SaveMode::Replace).await.unwrap());
    assert!(g3 > g2);
    match store.save(&key, &a1, refreshed(g2)).await.unwrap() {
        Saved::Superseded(now) => assert_eq!(access(now.tokens.as_ref().unwrap()), "B"),
        other => panic!("a refresh of A overwrote B's login: {other:?}"),
    }
    let stored = store.load(&key).await.unwrap();
    assert_eq!(access(stored.tokens.as_ref().unwrap()), "B");
    store.remove(&key).await.unwrap();
}

/// Every lease has a larger fencing number than the last, and a save with
/// an older one than the newest granted is refused.
pub async fn fencing(store: Arc<dyn TokenStore>) {
    let key = key();
    let hold = Duration::from_secs(5);
    let first = store.lease(&key, hold).await.unwrap().unwrap();
    let old = first.fence().expect("a shared store numbers its leases");
    first.release().await.unwrap();
    let second = store.lease(&key, hold).await.unwrap().unwrap();
    let new = second.fence().unwrap();
    assert!(new > old, "{new} > {old}");
    let generation = store.load(&key).await.unwrap().generation;
    let stale = SaveMode::Refreshed {
        generation,
        fence: Some(old),
    };
    assert!(matches!(
        store
            .save(&key, &user_tokens("stale", HOUR), stale)
            .await
            .unwrap(),
        Saved::Fenced
    ));
    let current = SaveMode::Refreshed {
        generation,
        fence: Some(new),
    };
    assert!(matches!(
        store
            .save(&key, &user_tokens("current", HOUR), current)
            .await
            .unwrap(),
        Saved::Written { .. }
    ));
    second.release().await.unwrap();
    assert_eq!(
        access(store.load(&key).await.unwrap().tokens.as_ref().unwrap()),
        "current"
    );
    store.remove(&key).await.unwrap();
}

/// Who logs out or logs in while a refresh runs.
#[derive(Clone, Copy, Debug)]
pub enum Who {
    /// The manager that refreshes.
    Same,
    /// Another manager on the same store (another process).
    Other,
}

/// `store(A)`, `force_refresh()` in flight (300 ms), `clear()` during it:
/// the refresh neither returns `A'` as current nor saves it, and a fresh
/// manager on the store has nothing to serve.
pub async fn logout_during_refresh(store: Arc<dyn TokenStore>, who: Who) {
    let (counter, refresh, mut started) = UserRefresh::new(Duration::from_millis(300));
    let manager_a = manager(&store, &refresh);
    manager_a.store(user_tokens("A", HOUR)).await;
    let mut events = manager_a.events();
    let refreshing = {
        let manager_a = manager_a.clone();
        tokio::spawn(async move { manager_a.force_refresh().await })
    };
    assert_eq!(started.recv().await.as_deref(), Some("A"));
    match who {
        Who::Same => manager_a.clear().await,
        Who::Other => {
            let other = manager(&store, &refresh);
            other.clear().await;
            other.shutdown().await;
        }
    }
    let result = refreshing.await.unwrap();
    if let Ok(tokens) = &result {
        panic!(
            "{who:?}: a refresh that started before the logout returned {:?} as current",
            access(tokens)
        );
    }
    assert!(
        result.as_ref().unwrap_err().is_reauth_required(),
        "{who:?}: {result:?}"
    );
    assert!(manager_a.current().is_none(), "{who:?}: tokens kept");
    let stored = store.load(&key()).await.unwrap();
    assert!(
        stored.is_tombstone(),
        "{who:?}: the refreshed tokens were saved after the logout: {stored:?}"
    );
    if let Who::Other = who {
        // This manager learnt of the logout from the store.
        let mut cleared = false;
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(10), events.next()).await
        {
            cleared |= matches!(event, TokenEvent::Cleared);
        }
        assert!(cleared, "Cleared was emitted");
    }
    manager_a.shutdown().await;

    let fresh = manager(&store, &refresh);
    let served = fresh.access_token().await;
    assert!(
        served.as_ref().is_err_and(|e| e.is_reauth_required()),
        "{who:?}: a fresh manager served {served:?}"
    );
    fresh.shutdown().await;
    assert!(counter.spent_twice().is_empty());
    store.remove(&key()).await.unwrap();
}

/// `store(A)`, `force_refresh()` in flight, `store(B)` during it: the
/// refresh of A (whose tokens expire later than B's) neither returns nor
/// saves `A'`; B's login stays.
pub async fn login_during_refresh(store: Arc<dyn TokenStore>, who: Who) {
    let (_counter, refresh, mut started) = UserRefresh::new(Duration::from_millis(300));
    let manager_a = manager(&store, &refresh);
    manager_a.store(user_tokens("A", HOUR)).await;
    let refreshing = {
        let manager_a = manager_a.clone();
        tokio::spawn(async move { manager_a.force_refresh().await })
    };
    assert_eq!(started.recv().await.as_deref(), Some("A"));
    match who {
        Who::Same => manager_a.store(user_tokens("B", HOUR)).await,
        Who::Other => {
            let other = manager(&store, &refresh);
            other.store(user_tokens("B", HOUR)).await;
            other.shutdown().await;
        }
    }
    let result = refreshing.await.unwrap().expect("B's tokens");
    assert_eq!(access(&result), "B", "{who:?}: the refresh of A returned");
    if let Who::Same = who {
        // store(B) answered at once; this joins the refresh of A, still
        // running, and returns when it has ended (and tried to save).
        let again = manager_a.force_refresh().await.expect("B's tokens");
        assert_eq!(access(&again), "B");
    }
    assert_eq!(access(&manager_a.current().unwrap()), "B");
    let stored = store.load(&key()).await.unwrap();
    assert_eq!(
        access(stored.tokens.as_ref().unwrap()),
        "B",
        "{who:?}: a refresh of A overwrote B's login"
    );
    manager_a.shutdown().await;
    let fresh = manager(&store, &refresh);
    assert_eq!(fresh.access_token().await.unwrap().expose_secret(), "B");
    fresh.shutdown().await;
    store.remove(&key()).await.unwrap();
}
