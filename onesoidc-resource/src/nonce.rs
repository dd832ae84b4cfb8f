//! Server-issued DPoP nonces (RFC 9449 §8–9), rotating and stateless: the
//! nonce of a time window is `base64url(HMAC-SHA256(secret, audience ‖
//! window number))`, so every instance of the application that shares the
//! secret issues and accepts the same nonces without talking to the
//! others. The current window's nonce and the previous one's are accepted:
//! a nonce is good for one to two windows.

use std::time::{Duration, SystemTime};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onesoidc_core::unix_seconds;

/// How long one nonce is issued, by default (it is accepted for one more
/// window after that).
pub const DEFAULT_DPOP_NONCE_WINDOW: Duration = Duration::from_secs(60);

/// The shortest secret accepted, in bytes (RFC 2104 §3: at least the
/// hash's output length).
pub const MIN_DPOP_NONCE_SECRET_BYTES: usize = 32;

/// Issues and checks the nonces of one application.
pub(crate) struct DpopNonces {
    key: hmac::Key,
    audience: String,
    window_secs: u64,
}

impl DpopNonces {
    /// Nonces from `secret` for `audience`, each window `window` long (at
    /// least a second).
    pub(crate) fn new(key: hmac::Key, audience: &str, window: Duration) -> Self {
        DpopNonces {
            key,
            audience: audience.to_string(),
            window_secs: window.as_secs().max(1),
        }
    }

    fn window(&self, now: SystemTime) -> u64 {
        unix_seconds(now) / self.window_secs
    }

    fn nonce_of(&self, window: u64) -> String {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(b"onesoidc DPoP-Nonce\0");
        context.update(self.audience.as_bytes());
        context.update(b"\0");
        context.update(&window.to_be_bytes());
        URL_SAFE_NO_PAD.encode(context.sign().as_ref())
    }

    /// The nonce to give clients at `now`.
    pub(crate) fn current(&self, now: SystemTime) -> String {
        self.nonce_of(self.window(now))
    }

    /// Whether `nonce` is the current window's or the previous one's.
    pub(crate) fn accepts(&self, nonce: &str, now: SystemTime) -> bool {
        let window = self.window(now);
        nonce == self.nonce_of(window)
            || window
                .checked_sub(1)
                .is_some_and(|previous| nonce == self.nonce_of(previous))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonces(secret: &[u8], audience: &str) -> DpopNonces {
        DpopNonces::new(
            hmac::Key::new(hmac::HMAC_SHA256, secret),
            audience,
            Duration::from_secs(60),
        )
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_nonce_is_accepted_in_its_window_and_the_next_then_refused() {
        let n = nonces(&[7; 32], "https://app.example");
        let issued = n.current(at(6_000));
        assert_eq!(issued.len(), 43, "base64url of 32 bytes");
        assert_eq!(n.current(at(6_059)), issued, "same window");
        assert!(n.accepts(&issued, at(6_059)));
        assert_ne!(n.current(at(6_060)), issued, "rotated");
        assert!(n.accepts(&issued, at(6_119)), "the previous window's");
        assert!(!n.accepts(&issued, at(6_120)), "two windows on");
        assert!(!n.accepts("", at(6_000)));
    }

    #[test]
    fn the_nonce_depends_on_the_secret_and_the_audience_only() {
        let now = at(1_800_000_000);
        let a = nonces(&[7; 32], "https://app.example");
        assert_eq!(
            a.current(now),
            nonces(&[7; 32], "https://app.example").current(now),
            "another instance with the same secret"
        );
        assert_ne!(
            a.current(now),
            nonces(&[8; 32], "https://app.example").current(now)
        );
        assert_ne!(
            a.current(now),
            nonces(&[7; 32], "https://other.example").current(now)
        );
    }
}
