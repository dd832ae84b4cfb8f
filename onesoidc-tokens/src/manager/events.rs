//! What a manager reports: [`TokenEvent`]s as they happen and its
//! [`TokenState`].

use std::fmt;
use std::sync::Arc;

use onesoidc_core::{ClockOffset, Error, Expiry};

use crate::store::StoreError;

/// What happened to a manager's tokens; see [`TokenManager::events`](crate::TokenManager::events).
///
/// Never carries a token. `Display` gives a line for a log:
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use onesoidc_core::Expiry;
/// use onesoidc_tokens::TokenEvent;
/// let event = TokenEvent::Refreshed {
///     expires_at: Expiry::new(Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000))),
/// };
/// assert_eq!(event.to_string(), "refreshed; the token expires at 2027-01-15T08:00:00Z");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TokenEvent {
    /// A refresh succeeded: the manager holds new tokens.
    Refreshed {
        /// When the new access token expires.
        expires_at: Expiry,
    },
    /// Another process sharing the [store](crate::TokenManagerBuilder::store)
    /// had refreshed (or stored a new login): the manager took its tokens
    /// instead of refreshing.
    Loaded {
        /// When the access token expires.
        expires_at: Expiry,
    },
    /// Tokens were put in with [`TokenManager::store`](crate::TokenManager::store) (e.g. after a login).
    Stored {
        /// When the access token expires.
        expires_at: Expiry,
    },
    /// A refresh failed.
    RefreshFailed {
        /// Why.
        error: Arc<Error>,
        /// The refresh token was rejected (or missing): the manager stops
        /// refreshing until new tokens are stored, as after a new login.
        /// Otherwise it retries with backoff while the token is valid.
        reauth_required: bool,
    },
    /// The access token expired without being replaced. From now on callers
    /// get an error until a refresh succeeds or tokens are stored.
    Expired,
    /// [`TokenManager::clear`](crate::TokenManager::clear) dropped the
    /// tokens, or a refresh found them removed from the
    /// [store](crate::TokenManagerBuilder::store) by another process (a
    /// logout there).
    Cleared,
    /// The [store](crate::TokenManagerBuilder::store) failed (unreachable,
    /// not private, ...): the manager refreshes alone until it works again
    /// (but never spends a refresh token alone).
    /// Reported once, until [`StoreAvailable`](Self::StoreAvailable).
    StoreUnavailable {
        /// The store's error.
        error: Arc<StoreError>,
    },
    /// The store works again: refreshes are shared again.
    StoreAvailable,
    /// The provider's answer to a refresh (its `Date` header) shows the
    /// device clock off by more than the 60 s skew: ID tokens and client
    /// assertions may be refused until it is set right. Reported by
    /// [`user_refresh`](crate::user_refresh) (whatever the outcome) and
    /// [`device_refresh`](crate::device_refresh) (when it fails), before
    /// the refresh's outcome.
    DeviceClockOff {
        /// How far off it is.
        offset: ClockOffset,
    },
    /// A refresh's new ID token was not accepted (its signature or claims,
    /// e.g. with the device clock off, or the provider's keys out of
    /// reach): the manager holds the new access and refresh tokens (a
    /// rotated refresh token must not be lost) with the previous ID token.
    /// Reported by [`user_refresh`](crate::user_refresh), before
    /// [`Refreshed`](Self::Refreshed).
    IdTokenRejected {
        /// Why.
        error: Arc<Error>,
    },
}

/// Where a manager stands; see [`TokenManager::state`](crate::TokenManager::state) and
/// [`TokenManager::watch_state`](crate::TokenManager::watch_state).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TokenState {
    /// No tokens: none fetched yet, or cleared.
    Empty,
    /// A valid access token.
    Valid {
        /// When it expires.
        expires_at: Expiry,
    },
    /// A valid access token, but refreshing it has failed; retries run with
    /// backoff while it stays valid.
    RefreshFailing {
        /// When the token expires.
        expires_at: Expiry,
        /// Failed attempts in a row.
        failures: u32,
        /// The last failure.
        error: Arc<Error>,
    },
    /// The access token expired; the next caller triggers a refresh (after
    /// the backoff delay, if the last one failed).
    Expired {
        /// The last refresh failure, if a refresh was tried.
        error: Option<Arc<Error>>,
    },
    /// No tokens, and fetching them failed.
    Failed {
        /// Why.
        error: Arc<Error>,
    },
    /// The refresh token was rejected, or there is none: log in again and
    /// [`store`](crate::TokenManager::store) the new tokens. Until the current
    /// access token expires, it is still handed out.
    ReauthRequired {
        /// The provider's answer, or [`Error::LoginRequired`].
        error: Arc<Error>,
    },
    /// The manager was shut down; it hands out no more tokens once the
    /// current one expires.
    Stopped,
}

impl TokenState {
    /// Whether the manager holds a usable access token.
    pub fn is_valid(&self) -> bool {
        matches!(
            self,
            TokenState::Valid { .. } | TokenState::RefreshFailing { .. }
        )
    }
}

impl fmt::Display for TokenEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenEvent::Refreshed { expires_at } => {
                write!(f, "refreshed; the token expires {expires_at}")
            }
            TokenEvent::Loaded { expires_at } => {
                write!(
                    f,
                    "took the tokens another process refreshed; the token expires {expires_at}"
                )
            }
            TokenEvent::Stored { expires_at } => {
                write!(f, "tokens stored; the token expires {expires_at}")
            }
            TokenEvent::RefreshFailed {
                error,
                reauth_required: true,
            } => write!(f, "refresh failed; a new login is needed: {error}"),
            TokenEvent::RefreshFailed { error, .. } => {
                write!(
                    f,
                    "refresh failed; retrying while the token is valid: {error}"
                )
            }
            TokenEvent::Expired => f.write_str("the token expired without being refreshed"),
            TokenEvent::Cleared => f.write_str("tokens cleared"),
            TokenEvent::StoreUnavailable { error } => {
                write!(f, "refreshing alone: {error}")
            }
            TokenEvent::StoreAvailable => {
                f.write_str("the token store works again; refreshes are shared")
            }
            TokenEvent::DeviceClockOff { offset } => {
                write!(f, "{offset}; set the device clock right, e.g. with NTP")
            }
            TokenEvent::IdTokenRejected { error } => write!(
                f,
                "the refreshed ID token was not accepted; kept the new access and refresh tokens with the previous ID token: {error}"
            ),
        }
    }
}

impl fmt::Display for TokenState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenState::Empty => f.write_str("no tokens yet"),
            TokenState::Valid { expires_at } => write!(f, "valid; expires {expires_at}"),
            TokenState::RefreshFailing {
                expires_at,
                failures,
                error,
            } => write!(
                f,
                "valid until {}, but {failures} refreshes in a row failed: {error}",
                expires_at.to_string().trim_start_matches("at ")
            ),
            TokenState::Expired { error: Some(error) } => {
                write!(f, "expired; the last refresh failed: {error}")
            }
            TokenState::Expired { error: None } => f.write_str("expired"),
            TokenState::Failed { error } => write!(f, "no token; getting one failed: {error}"),
            TokenState::ReauthRequired { error } => {
                write!(f, "a new login is needed: {error}")
            }
            TokenState::Stopped => f.write_str("stopped"),
        }
    }
}
