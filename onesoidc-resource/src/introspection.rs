//! The answers for opaque tokens, cached: keyed by the SHA-256 of the token
//! (the token itself is never kept), bounded (least recently used out),
//! active answers until `min(exp, max age)`, inactive ones never, and one
//! introspection call for however many concurrent checks of one token.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use lru::LruCache;
use onesoidc_core::{AccessTokenClaims, unix_seconds};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::Refusal;

/// Entries kept at most, by default.
pub const DEFAULT_INTROSPECTION_CACHE_ENTRIES: usize = 10_000;
/// The longest an active answer is used, by default (shorter when the token expires sooner).
pub const DEFAULT_INTROSPECTION_CACHE_MAX_AGE: Duration = Duration::from_secs(300);

/// SHA-256 of a token.
type TokenHash = [u8; 32];

type Outcome = Result<Arc<AccessTokenClaims>, Refusal>;

struct Entry {
    claims: Arc<AccessTokenClaims>,
    until: Instant,
}

/// Introspection answers by token hash. Time is tokio's clock.
pub(crate) struct IntrospectionCache {
    entries: Mutex<LruCache<TokenHash, Entry>>,
    in_flight: Mutex<HashMap<TokenHash, Arc<OnceCell<Outcome>>>>,
    max_age: Duration,
}

fn hash(token: &str) -> TokenHash {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

impl IntrospectionCache {
    pub(crate) fn new(entries: NonZeroUsize, max_age: Duration) -> Self {
        IntrospectionCache {
            entries: Mutex::new(LruCache::new(entries)),
            in_flight: Mutex::new(HashMap::new()),
            max_age,
        }
    }

    fn cached(&self, key: &TokenHash) -> Option<Arc<AccessTokenClaims>> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(key) {
            Some(entry) if Instant::now() < entry.until => Some(entry.claims.clone()),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        }
    }

    fn remember(&self, key: TokenHash, claims: &Arc<AccessTokenClaims>, now: SystemTime) {
        let left = Duration::from_secs(claims.exp.saturating_sub(unix_seconds(now)));
        let keep = left.min(self.max_age);
        if keep.is_zero() {
            return;
        }
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .put(
                key,
                Entry {
                    claims: claims.clone(),
                    until: Instant::now() + keep,
                },
            );
    }

    /// The claims of `token`: cached, or from `introspect` (called at most
    /// once for all the concurrent checks of one token). `now` is the
    /// wall-clock time the token's `exp` is compared with.
    pub(crate) async fn check<F, Fut>(&self, token: &str, now: SystemTime, introspect: F) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessTokenClaims, Refusal>>,
    {
        let key = hash(token);
        if let Some(claims) = self.cached(&key) {
            return Ok(claims);
        }
        let cell = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .clone();
        let outcome = cell
            .get_or_init(|| async {
                // A call that finished between our look-up and now left its answer here.
                if let Some(claims) = self.cached(&key) {
                    return Ok(claims);
                }
                let outcome = introspect().await.map(Arc::new);
                if let Ok(claims) = &outcome {
                    self.remember(key, claims, now);
                }
                outcome
            })
            .await
            .clone();
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if in_flight.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            in_flight.remove(&key);
        }
        outcome
    }

    /// How many answers are cached.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use onesoidc_core::{AccessTokenError, AccessTokenExpectations, Introspection, Issuer};

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn claims(exp: u64) -> AccessTokenClaims {
        let issuer = Issuer::new("https://idp/oidc").unwrap();
        let mut info = Introspection::new(true);
        info.sub = Some("alice".into());
        info.client_id = Some("kiosk".into());
        info.exp = Some(exp);
        info.aud = vec!["https://app".into()];
        onesoidc_core::claims_from_introspection(
            &info,
            AccessTokenExpectations::new(&issuer, "https://app"),
            now(),
        )
        .unwrap()
    }

    fn cache(entries: usize) -> IntrospectionCache {
        IntrospectionCache::new(
            NonZeroUsize::new(entries).unwrap(),
            DEFAULT_INTROSPECTION_CACHE_MAX_AGE,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_is_kept_until_the_token_expires_or_the_max_age() {
        let cache = cache(10);
        let calls = AtomicUsize::new(0);
        let check = |token: &'static str, exp: u64| {
            let calls = &calls;
            let cache = &cache;
            async move {
                cache
                    .check(token, now(), || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        Ok(claims(exp))
                    })
                    .await
                    .unwrap()
            }
        };
        // Expires in 10 s: cached for 10 s.
        check("short", NOW + 10).await;
        check("short", NOW + 10).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_secs(10)).await;
        check("short", NOW + 10).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2, "asked again once expired");

        // Expires in an hour: cached for the 5 min max age.
        check("long", NOW + 3600).await;
        tokio::time::sleep(Duration::from_secs(299)).await;
        check("long", NOW + 3600).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        tokio::time::sleep(Duration::from_secs(1)).await;
        check("long", NOW + 3600).await;
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn inactive_answers_are_never_cached() {
        let cache = cache(10);
        let calls = AtomicUsize::new(0);
        for _ in 0..3 {
            let refused = cache
                .check("revoked", now(), || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(Refusal::InvalidToken(AccessTokenError::Inactive))
                })
                .await;
            assert!(matches!(refused, Err(Refusal::InvalidToken(_))));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(cache.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_least_recently_used_answer_goes_first() {
        let cache = cache(2);
        let calls = AtomicUsize::new(0);
        let check = |token: &'static str| {
            let (calls, cache) = (&calls, &cache);
            async move {
                cache
                    .check(token, now(), || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        Ok(claims(NOW + 3600))
                    })
                    .await
                    .unwrap();
            }
        };
        check("a").await;
        check("b").await;
        check("a").await; // a is now the most recently used
        check("c").await; // b goes
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        check("a").await;
        assert_eq!(calls.load(Ordering::SeqCst), 3, "a stayed");
        check("b").await;
        assert_eq!(calls.load(Ordering::SeqCst), 4, "b was dropped");
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn the_key_is_a_hash_not_the_token() {
        let key = hash("secret-opaque-token");
        assert!(!key.windows(6).any(|w| w == b"secret"));
        assert_eq!(key, hash("secret-opaque-token"));
        assert_ne!(key, hash("secret-opaque-tokeN"));
    }
}
