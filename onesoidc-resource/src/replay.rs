//! The DPoP replay cache: a proof's `jti` is accepted once (RFC 9449 §11.1).
//! In memory, bounded; an entry lives as long as a proof with that `jti`
//! could still pass the `iat` window.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

/// How many `jti`s the in-memory replay cache holds by default.
pub const DEFAULT_DPOP_REPLAY_ENTRIES: usize = 100_000;

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
