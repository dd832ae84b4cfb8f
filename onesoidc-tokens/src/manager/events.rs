//! What a manager reports: [`TokenEvent`]s as they happen and its
//! [`TokenState`].

use std::sync::Arc;
use std::time::SystemTime;

use onesoidc_core::Error;

/// What happened to a manager's tokens; see [`TokenManager::events`](crate::TokenManager::events).
///
/// Never carries a token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TokenEvent {
    /// A refresh succeeded: the manager holds new tokens.
    Refreshed {
        /// When the new access token expires, if known.
        expires_at: Option<SystemTime>,
    },
    /// Tokens were put in with [`TokenManager::store`](crate::TokenManager::store) (e.g. after a login).
    Stored {
        /// When the access token expires, if known.
        expires_at: Option<SystemTime>,
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
    /// [`TokenManager::clear`](crate::TokenManager::clear) dropped the tokens.
    Cleared,
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
        /// When it expires, if known.
        expires_at: Option<SystemTime>,
    },
    /// A valid access token, but refreshing it has failed; retries run with
    /// backoff while it stays valid.
    RefreshFailing {
        /// When the token expires, if known.
        expires_at: Option<SystemTime>,
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
