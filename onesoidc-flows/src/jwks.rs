//! The provider's keys (JWKS), cached: for their lifetime
//! (`Cache-Control: max-age`, 5 min to 24 h, else 1 h), fetched again for a
//! token with an unknown `kid` at most once a minute, fetched once for
//! however many validations wait at the same time, and kept in use when a
//! fetch fails (stale-if-error). One cache serves the ID tokens a device
//! validates ([`OnesIdClient::validate_id_token`]) and the access tokens an
//! application checks (`onesoidc-resource`).

use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use onesoidc_core::{Endpoint, Error, PublicJwkSet, parse_jwks_response};
use onesoidc_http::HttpClient;
use tokio::time::Instant;

use crate::OnesIdClient;

/// A token naming a `kid` the cached keys lack triggers a new fetch at most
/// this often (a provider that rotated its keys is seen within a minute; a
/// stream of forged `kid`s costs one request a minute). A failed fetch is
/// retried no sooner either.
pub const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(60);

/// How long past their lifetime keys are still used while every fetch
/// fails (stale-if-error). After that, checks fail until a fetch works.
pub const JWKS_STALE_IF_ERROR: Duration = Duration::from_secs(24 * 3600);

/// The cached keys of one provider. Time is tokio's clock (pausable in
/// tests).
///
/// ```
/// # async fn run() -> Result<(), onesoidc_flows::Error> {
/// use std::time::Duration;
/// use onesoidc_flows::{JwksCache, Want};
/// use onesoidc_flows::core::PublicJwkSet;
///
/// let cache = JwksCache::new();
/// let keys = cache
///     .keys_from(Want::Fresh, || async { Ok((PublicJwkSet { keys: vec![] }, Duration::from_secs(600))) })
///     .await?;
/// assert_eq!(keys.fetch, 1);
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct JwksCache {
    current: RwLock<Option<Cached>>,
    /// Held while fetching: the fetch is single flight.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let current = self.current();
        f.debug_struct("JwksCache")
            .field("fetch", &current.as_ref().map(|c| c.keys.fetch))
            .field("keys", &current.as_ref().map(|c| c.keys.set.keys.len()))
            .finish()
    }
}

#[derive(Clone)]
struct Cached {
    keys: JwksKeys,
    /// The last fetch attempt, successful or not.
    attempted_at: Instant,
    /// The end of the keys' lifetime.
    fresh_until: Instant,
    /// While the keys are stale after a failed fetch: the next attempt.
    retry_at: Instant,
}

/// A fetched key set and which fetch it came from (1, 2, ...).
#[derive(Debug, Clone)]
pub struct JwksKeys {
    /// The keys.
    pub set: Arc<PublicJwkSet>,
    /// The number of the successful fetch they came from.
    pub fetch: u64,
}

/// Why the keys are wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Any keys that are still fresh.
    Fresh,
    /// Keys from a later fetch than this one (a token named an unknown
    /// `kid`), if the last fetch was at least [`UNKNOWN_KID_REFETCH`] ago.
    NewerThan(u64),
    /// Keys from a later fetch than this one, fetched now if need be (a
    /// refresh's ID token did not verify with the cached keys).
    Refetched(u64),
}

impl JwksCache {
    /// An empty cache: the first call fetches.
    pub fn new() -> Self {
        Self::default()
    }

    fn current(&self) -> Option<Cached> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn store(&self, cached: Cached) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(cached);
    }

    /// The cached keys if they serve `want` at `now`.
    fn usable(&self, want: Want, now: Instant) -> Option<JwksKeys> {
        let cached = self.current()?;
        let fresh = now < cached.fresh_until;
        let stale_but_waiting = now < cached.retry_at;
        if !fresh && !stale_but_waiting {
            return None;
        }
        match want {
            Want::Fresh => Some(cached.keys),
            Want::NewerThan(seen) => {
                let newer = cached.keys.fetch > seen;
                let too_soon = now < cached.attempted_at + UNKNOWN_KID_REFETCH;
                (newer || too_soon).then_some(cached.keys)
            }
            Want::Refetched(seen) => (cached.keys.fetch > seen).then_some(cached.keys),
        }
    }

    /// The keys for `want`, calling `fetch` (which answers the key set and
    /// its lifetime, e.g. [`fetch_jwks`]) when needed: one fetch at a
    /// time, shared by every caller waiting meanwhile. When a fetch fails
    /// and keys are cached (for at most [`JWKS_STALE_IF_ERROR`] past their
    /// lifetime), those keys are returned, a `warn` event says so, and the
    /// next attempt waits [`UNKNOWN_KID_REFETCH`].
    pub async fn keys_from<F, Fut>(&self, want: Want, fetch: F) -> Result<JwksKeys, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(PublicJwkSet, Duration), Error>>,
    {
        if let Some(keys) = self.usable(want, Instant::now()) {
            return Ok(keys);
        }
        let _fetching = self.fetching.lock().await;
        // Whoever held the lock may have fetched what we need.
        if let Some(keys) = self.usable(want, Instant::now()) {
            return Ok(keys);
        }
        let fetched = fetch().await;
        let now = Instant::now();
        let previous = self.current();
        match (fetched, previous) {
            (Ok((set, lifetime)), previous) => {
                let keys = JwksKeys {
                    set: Arc::new(set),
                    fetch: previous.map_or(1, |c| c.keys.fetch + 1),
                };
                tracing::debug!(
                    keys = keys.set.keys.len(),
                    lifetime_s = lifetime.as_secs(),
                    fetch = keys.fetch,
                    "provider keys fetched"
                );
                self.store(Cached {
                    keys: keys.clone(),
                    attempted_at: now,
                    fresh_until: now + lifetime,
                    retry_at: now,
                });
                Ok(keys)
            }
            (Err(error), Some(mut cached)) if now < cached.fresh_until + JWKS_STALE_IF_ERROR => {
                tracing::warn!(
                    %error,
                    fetch = cached.keys.fetch,
                    stale_s = now.saturating_duration_since(cached.fresh_until).as_secs(),
                    retry_in_s = UNKNOWN_KID_REFETCH.as_secs(),
                    "cannot fetch the provider's keys; still using the keys fetched before (stale-if-error)"
                );
                cached.attempted_at = now;
                cached.retry_at = now + UNKNOWN_KID_REFETCH;
                let keys = cached.keys.clone();
                self.store(cached);
                Ok(keys)
            }
            (Err(error), _) => Err(error),
        }
    }

    /// The keys for `want`, fetched from `client`'s provider when needed
    /// (see [`keys_from`](Self::keys_from)).
    pub async fn keys(&self, client: &OnesIdClient, want: Want) -> Result<JwksKeys, Error> {
        self.keys_from(want, || async {
            let endpoint = &client.provider_metadata().await?.jwks_uri;
            fetch_jwks(client.http(), endpoint).await
        })
        .await
    }
}

/// Fetches the key set at `jwks_uri` through `http` and reads its lifetime
/// (`Cache-Control: max-age` bounded to 5 min – 24 h, else 1 h).
pub async fn fetch_jwks(
    http: &dyn HttpClient,
    jwks_uri: &Endpoint,
) -> Result<(PublicJwkSet, Duration), Error> {
    let request = onesoidc_core::request::get(jwks_uri, None)?;
    let response = crate::client::send(http, jwks_uri, request).await?;
    parse_jwks_response(jwks_uri, &response)
}
