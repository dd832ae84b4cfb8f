//! What `watch` tells systemd when it runs as a `Type=notify` service
//! (sd_notify(3), through the `sd-notify` crate): `READY=1` once the first
//! token is in the store, `STATUS=` with the token's expiry, `WATCHDOG=1`
//! while the refresh loop runs. Outside systemd (no `NOTIFY_SOCKET`) every
//! call does nothing, and so does every call off Unix.

use std::time::Duration;

use onesoidc_core::Expiry;
#[cfg(unix)]
use sd_notify::NotifyState;

/// Off Unix there is no systemd: the states are never sent.
#[cfg(not(unix))]
#[allow(dead_code)]
enum NotifyState<'a> {
    Ready,
    Status(&'a str),
    Watchdog,
    Stopping,
}

/// The notification socket systemd gave this process, if any.
pub struct ServiceManager {
    watchdog: Option<Duration>,
}

impl ServiceManager {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from the
    /// environment.
    pub fn from_env() -> Self {
        let notifying = std::env::var_os("NOTIFY_SOCKET").is_some();
        #[cfg(unix)]
        let watchdog = sd_notify::watchdog_enabled().filter(|_| notifying);
        #[cfg(not(unix))]
        let watchdog = None.filter(|_| notifying);
        ServiceManager { watchdog }
    }

    /// How often to send `WATCHDOG=1`: half of `WatchdogSec=`, as
    /// sd_watchdog_enabled(3) advises; `None` without a watchdog (or with
    /// `WATCHDOG_USEC=0`, which systemd never sets).
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
            .map(|limit| limit / 2)
            .filter(|half| !half.is_zero())
    }

    /// The first token is in the store: the service is up.
    pub fn ready(&self, expiry: Expiry) {
        self.send(&[
            NotifyState::Ready,
            NotifyState::Status(&token_status(expiry)),
        ]);
    }

    /// A new token (refreshed here or by another process).
    pub fn token(&self, expiry: Expiry) {
        self.send(&[NotifyState::Status(&token_status(expiry))]);
    }

    /// A refresh failed; `error` names what went wrong, never a secret.
    pub fn refresh_failed(&self, error: &str) {
        self.send(&[NotifyState::Status(&format!(
            "the last refresh failed: {error}"
        ))]);
    }

    /// The refresh loop is alive.
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// `watch` is shutting down.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }

    #[cfg(not(unix))]
    fn send(&self, _state: &[NotifyState]) {}

    #[cfg(unix)]
    fn send(&self, state: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(state) {
            // The service keeps its token fresh either way; systemd will
            // say the unit failed to start or missed its watchdog.
            tracing::warn!("cannot notify systemd through NOTIFY_SOCKET: {e}");
        }
    }
}

/// `STATUS=` text: when the token expires, never the token.
fn token_status(expiry: Expiry) -> String {
    format!("the device token expires {expiry}")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn the_status_names_the_expiry() {
        let expiry = Expiry::new(Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000)));
        assert_eq!(
            token_status(expiry),
            "the device token expires at 2027-01-15T08:00:00Z"
        );
    }
}
