//! The answers for opaque tokens, cached: keyed by the SHA-256 of the token
//! (the token itself is never kept), bounded (least recently used out),
//! active answers until `min(exp, max age)`, inactive ones never, and one
//! introspection call for however many concurrent checks of one token.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use onesoidc_core::AccessTokenClaims;
use tokio::sync::OnceCell;

use crate::Refusal;
use crate::claims_cache::{ClaimsCache, TokenHash, hash};

/// Entries kept at most, by default.
pub const DEFAULT_INTROSPECTION_CACHE_ENTRIES: usize = 10_000;
/// The longest an active answer is used, by default (shorter when the token expires sooner).
pub const DEFAULT_INTROSPECTION_CACHE_MAX_AGE: Duration = Duration::from_secs(300);

type Outcome = Result<Arc<AccessTokenClaims>, Refusal>;

/// Introspection answers by token hash, and the calls under way.
pub(crate) struct IntrospectionCache {
    answers: ClaimsCache,
    in_flight: Mutex<HashMap<TokenHash, Arc<OnceCell<Outcome>>>>,
}

impl IntrospectionCache {
    pub(crate) fn new(entries: NonZeroUsize, max_age: Duration) -> Self {
        IntrospectionCache {
            answers: ClaimsCache::new(entries, max_age),
            in_flight: Mutex::new(HashMap::new()),
        }
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
        if let Some(claims) = self.answers.get(&key) {
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
                if let Some(claims) = self.answers.get(&key) {
                    return Ok(claims);
                }
                let outcome = introspect().await.map(Arc::new);
                if let Ok(claims) = &outcome {
                    self.answers.put(key, claims, now);
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
        self.answers.len()
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
}
