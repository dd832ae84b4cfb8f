//! Checked claims by token hash: the SHA-256 of the whole token is the key
//! (the token itself is never kept), bounded (least recently used out), an
//! entry kept until `min(exp, max age)`. The introspection answers and the
//! verified JWTs are each kept in one.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use lru::LruCache;
use onesoidc_core::{AccessTokenClaims, unix_seconds};
use tokio::time::Instant;

/// SHA-256 of a token.
pub(crate) type TokenHash = [u8; 32];

/// The cache key of `token`.
pub(crate) fn hash(token: &str) -> TokenHash {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

struct Entry {
    claims: Arc<AccessTokenClaims>,
    until: Instant,
}

/// Claims by token hash. How long an entry is kept is measured on tokio's
/// clock (paused in tests); the token's `exp` against the `now` given.
pub(crate) struct ClaimsCache {
    entries: Mutex<LruCache<TokenHash, Entry>>,
    max_age: Duration,
}

impl ClaimsCache {
    /// At most `entries` entries, each at most `max_age` (zero: nothing is kept).
    pub(crate) fn new(entries: NonZeroUsize, max_age: Duration) -> Self {
        ClaimsCache {
            entries: Mutex::new(LruCache::new(entries)),
            max_age,
        }
    }

    /// The claims kept for `key`, if not too old.
    pub(crate) fn get(&self, key: &TokenHash) -> Option<Arc<AccessTokenClaims>> {
        if self.max_age.is_zero() {
            return None;
        }
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

    /// Keeps `claims` until `min(exp, max age)` from `now`.
    pub(crate) fn put(&self, key: TokenHash, claims: &Arc<AccessTokenClaims>, now: SystemTime) {
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

    /// How many entries are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_a_hash_not_the_token() {
        let key = hash("secret-opaque-token");
        assert!(!key.windows(6).any(|w| w == b"secret"));
        assert_eq!(key, hash("secret-opaque-token"));
        assert_ne!(key, hash("secret-opaque-tokeN"));
    }
}
