//! The DPoP replay cache: a proof's `jti` is accepted once (RFC 9449 §11.1).
//! In memory (bounded) by default, or in Redis (feature `redis`) for
//! several instances of one application; an entry lives as long as a proof
//! with that `jti` could still pass the `iat` window.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

/// How many `jti`s the in-memory replay cache holds by default.
pub const DEFAULT_DPOP_REPLAY_ENTRIES: usize = 100_000;

/// The Redis key prefix of the replay cache by default (then the proof
/// key's thumbprint, `:` and the `jti`).
pub const DEFAULT_DPOP_REPLAY_PREFIX: &str = "onesoidc:dpop:";

/// Where seen proof ids are kept.
pub(crate) enum ReplayStore {
    Memory(ReplayCache),
    #[cfg(feature = "redis")]
    Redis(Box<redis_store::RedisReplay>),
}

impl ReplayStore {
    /// Records `id` until `expires` (seconds since the epoch); `Ok(false)`
    /// for a replay, `Err` when the shared store cannot say.
    pub(crate) async fn first_use(
        &self,
        id: &str,
        now: u64,
        expires: u64,
    ) -> Result<bool, onesoidc_core::Error> {
        match self {
            ReplayStore::Memory(cache) => Ok(cache.first_use(id, now, expires)),
            #[cfg(feature = "redis")]
            ReplayStore::Redis(redis) => redis.first_use(id, now, expires).await,
        }
    }
}

#[cfg(feature = "redis")]
pub(crate) mod redis_store {
    use std::time::Duration;

    use redis::AsyncConnectionConfig;
    use redis::aio::MultiplexedConnection;

    /// How long connecting and each answer may take.
    const TIMEOUT: Duration = Duration::from_secs(2);

    /// `SET <prefix><id> 1 NX PX <ms>` per proof: the first instance to
    /// set it accepts the proof, every other sees a replay.
    pub(crate) struct RedisReplay {
        client: redis::Client,
        prefix: String,
        connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    }

    fn unavailable(what: &str, error: impl std::fmt::Display) -> onesoidc_core::Error {
        onesoidc_core::Error::Other(
            format!("the DPoP replay cache in Redis {what}: {error}").into(),
        )
    }

    impl RedisReplay {
        /// Fails on a URL the `redis` crate cannot use; connects on first use.
        pub(crate) fn new(url: &str, prefix: String) -> Result<Self, redis::RedisError> {
            Ok(RedisReplay {
                client: redis::Client::open(url)?,
                prefix,
                connection: tokio::sync::Mutex::new(None),
            })
        }

        async fn connection(&self) -> Result<MultiplexedConnection, onesoidc_core::Error> {
            let mut slot = self.connection.lock().await;
            if let Some(connection) = &*slot {
                return Ok(connection.clone());
            }
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(TIMEOUT))
                .set_response_timeout(Some(TIMEOUT));
            let connection = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| unavailable("cannot be reached", e))?;
            *slot = Some(connection.clone());
            Ok(connection)
        }

        pub(crate) async fn first_use(
            &self,
            id: &str,
            now: u64,
            expires: u64,
        ) -> Result<bool, onesoidc_core::Error> {
            let mut connection = self.connection().await?;
            let millis = expires.saturating_sub(now).max(1) * 1000;
            let set: redis::RedisResult<Option<String>> = redis::cmd("SET")
                .arg(format!("{}{id}", self.prefix))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(millis)
                .query_async(&mut connection)
                .await;
            match set {
                Ok(answer) => Ok(answer.is_some()),
                Err(error) => {
                    // The next call reconnects.
                    *self.connection.lock().await = None;
                    Err(unavailable("did not answer", error))
                }
            }
        }
    }
}

/// Seen proof ids, each until its expiry (seconds since the epoch).
pub(crate) struct ReplayCache {
    seen: Mutex<LruCache<String, u64>>,
}

impl ReplayCache {
    pub(crate) fn new(entries: NonZeroUsize) -> Self {
        ReplayCache {
            seen: Mutex::new(LruCache::new(entries)),
        }
    }

    /// Records `jti` until `expires`; `false` when it is already recorded
    /// and not expired (a replay). When full, the least recently seen id
    /// goes first: a replay of it then passes, so size the cache for the
    /// proofs of one window (`entries` ≥ requests per 2 × window).
    pub(crate) fn first_use(&self, jti: &str, now: u64, expires: u64) -> bool {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match seen.get(jti) {
            Some(&until) if until > now => false,
            _ => {
                seen.put(jti.to_string(), expires);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_accepted_once_until_it_expires() {
        let cache = ReplayCache::new(NonZeroUsize::new(2).unwrap());
        assert!(cache.first_use("a", 100, 220));
        assert!(!cache.first_use("a", 219, 339));
        assert!(cache.first_use("a", 220, 340));
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = ReplayCache::new(NonZeroUsize::new(2).unwrap());
        for jti in ["a", "b", "c"] {
            assert!(cache.first_use(jti, 100, 220));
        }
        assert_eq!(cache.seen.lock().unwrap().len(), 2);
        assert!(!cache.first_use("c", 100, 220));
    }
}
