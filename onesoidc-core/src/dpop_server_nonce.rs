//! Server-issued DPoP nonces (RFC 9449 §8–9), sans-IO and stateless: the
//! nonce of window number `w` is `base64url(HMAC-SHA256(key, context ‖
//! w))`. The caller numbers the windows (from a clock, plus forced
//! rotations if it has them); whoever shares the key and context issues
//! and accepts the same nonces without talking to the others.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The nonces of numbered time windows; a nonce is accepted in its own
/// window and the next one.
///
/// ```
/// use aws_lc_rs::hmac;
/// let nonces = onesoidc_core::DpopNonceWindows::new(
///     hmac::Key::new(hmac::HMAC_SHA256, &[7; 32]), b"app");
/// let issued = nonces.nonce(100);
/// assert!(nonces.accepts(&issued, 100) && nonces.accepts(&issued, 101));
/// assert!(!nonces.accepts(&issued, 102));
/// ```
pub struct DpopNonceWindows {
    key: hmac::Key,
    context: Vec<u8>,
}

impl std::fmt::Debug for DpopNonceWindows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopNonceWindows").finish_non_exhaustive()
    }
}

impl DpopNonceWindows {
    /// Nonces under `key`, with `context` (e.g. the audience) signed
    /// before each window number, so two uses of one key differ.
    pub fn new(key: hmac::Key, context: &[u8]) -> Self {
        DpopNonceWindows {
            key,
            context: context.to_vec(),
        }
    }

    /// The nonce of window `window`.
    pub fn nonce(&self, window: u64) -> String {
        let mut hmac = hmac::Context::with_key(&self.key);
        hmac.update(&self.context);
        hmac.update(&window.to_be_bytes());
        URL_SAFE_NO_PAD.encode(hmac.sign().as_ref())
    }

    /// Whether `nonce` is the nonce of `window` or of the one before it.
    pub fn accepts(&self, nonce: &str, window: u64) -> bool {
        nonce == self.nonce(window)
            || window
                .checked_sub(1)
                .is_some_and(|previous| nonce == self.nonce(previous))
    }
}
