//! The provider's keys (JWKS), cached: for their lifetime
//! (`Cache-Control: max-age`, 5 min to 24 h, else 1 h), fetched again for a
//! token with an unknown `kid` at most once a minute, and fetched once for
//! however many validations wait at the same time.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use onesoidc_core::{Error, PublicJwkSet, parse_jwks_response};
use tokio::time::Instant;

use crate::OnesIdClient;

/// A token naming a `kid` the cached keys lack triggers a new fetch at most
/// this often (a provider that rotated its keys is seen within a minute; a
/// stream of forged `kid`s costs one request a minute).
pub const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(60);

/// The cached keys of one provider.
#[derive(Default)]
pub(crate) struct JwksCache {
    current: RwLock<Option<Cached>>,
    /// Held while fetching: the fetch is single flight.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Cached {
    keys: Keys,
    fetched_at: Instant,
    expires_at: Instant,
}

/// A fetched key set and which fetch it came from (1, 2, ...).
#[derive(Clone)]
pub(crate) struct Keys {
    pub(crate) set: Arc<PublicJwkSet>,
    pub(crate) fetch: u64,
}

/// Why the keys are wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
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
    fn current(&self) -> Option<Cached> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The cached keys if they serve `want` at `now`.
    fn usable(&self, want: Want, now: Instant) -> Option<Keys> {
        let cached = self.current()?;
        if now >= cached.expires_at {
            return None;
        }
        match want {
            Want::Fresh => Some(cached.keys),
            Want::NewerThan(seen) => {
                let newer = cached.keys.fetch > seen;
                let too_soon = now < cached.fetched_at + UNKNOWN_KID_REFETCH;
                (newer || too_soon).then_some(cached.keys)
            }
            Want::Refetched(seen) => (cached.keys.fetch > seen).then_some(cached.keys),
        }
    }

    /// The keys for `want`, fetched through `client` when needed; one fetch
    /// at a time, shared by every caller waiting meanwhile.
    pub(crate) async fn keys(&self, client: &OnesIdClient, want: Want) -> Result<Keys, Error> {
        if let Some(keys) = self.usable(want, Instant::now()) {
            return Ok(keys);
        }
        let _fetching = self.fetching.lock().await;
        // Whoever held the lock may have fetched what we need.
        if let Some(keys) = self.usable(want, Instant::now()) {
            return Ok(keys);
        }
        let endpoint = &client.provider_metadata().await?.jwks_uri;
        let response = client
            .send(endpoint, onesoidc_core::request::get(endpoint, None)?)
            .await?;
        let (set, lifetime) = parse_jwks_response(endpoint, &response)?;
        let now = Instant::now();
        let fetch = self.current().map_or(1, |c| c.keys.fetch + 1);
        let keys = Keys {
            set: Arc::new(set),
            fetch,
        };
        tracing::debug!(%endpoint, keys = keys.set.keys.len(), lifetime_s = lifetime.as_secs(), "provider keys fetched");
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Cached {
            keys: keys.clone(),
            fetched_at: now,
            expires_at: now + lifetime,
        });
        Ok(keys)
    }
}
