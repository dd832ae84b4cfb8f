//! Server-issued DPoP nonces (RFC 9449 §8–9), rotating and stateless: the
//! nonce of a time window is `base64url(HMAC-SHA256(secret, audience ‖
//! window number))`, so every instance of the application that shares the
//! secret issues and accepts the same nonces without talking to the
//! others. The current window's nonce and the previous one's are accepted:
//! a nonce is good for one to two windows.

use std::time::{Duration, SystemTime};

use aws_lc_rs::hmac;
use onesoidc_core::{DpopNonceWindows, unix_seconds};

/// How long one nonce is issued, by default (it is accepted for one more
/// window after that).
pub const DEFAULT_DPOP_NONCE_WINDOW: Duration = Duration::from_secs(60);

/// The shortest secret accepted, in bytes (RFC 2104 §3: at least the
/// hash's output length).
pub const MIN_DPOP_NONCE_SECRET_BYTES: usize = 32;

/// Issues and checks the nonces of one application.
pub(crate) struct DpopNonces {
    windows: DpopNonceWindows,
    window_secs: u64,
}

impl DpopNonces {
    /// Nonces from `secret` for `audience`, each window `window` long (at
    /// least a second).
    pub(crate) fn new(key: hmac::Key, audience: &str, window: Duration) -> Self {
        let context = [b"onesoidc DPoP-Nonce\0", audience.as_bytes(), b"\0"].concat();
        DpopNonces {
            windows: DpopNonceWindows::new(key, &context),
            window_secs: window.as_secs().max(1),
        }
    }

    fn window(&self, now: SystemTime) -> u64 {
        unix_seconds(now) / self.window_secs
    }

    /// The nonce to give clients at `now`.
    pub(crate) fn current(&self, now: SystemTime) -> String {
        self.windows.nonce(self.window(now))
    }

    /// Whether `nonce` is the current window's or the previous one's.
    pub(crate) fn accepts(&self, nonce: &str, now: SystemTime) -> bool {
        self.windows.accepts(nonce, self.window(now))
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
