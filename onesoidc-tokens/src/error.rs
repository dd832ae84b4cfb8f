//! [`TokenError`]: what a caller of a token manager can get instead of a token.

use std::sync::Arc;

use onesoidc_core::Error;

/// Why a [`TokenManager`](crate::TokenManager) could not hand out a valid token.
///
/// Cheap to clone: every caller waiting on the same refresh gets the same
/// error. The underlying [`onesoidc_core::Error`] (endpoint, HTTP status,
/// OAuth error) is the [`source`](std::error::Error::source) and is also
/// named in the message. Tokens never appear in it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token expired (or was never valid) and refreshing it failed.
    ///
    /// Retried on the next call once the backoff delay has passed.
    #[error("token manager `{name}`: the token expired and refreshing failed: {source}")]
    Expired {
        /// The manager's name.
        name: String,
        /// Why the last refresh failed.
        source: Arc<Error>,
    },
    /// Getting a token failed: the first fetch of a manager that holds no
    /// tokens, or an explicit [`force_refresh`](crate::TokenManager::force_refresh).
    #[error("token manager `{name}`: getting a token failed: {source}")]
    RefreshFailed {
        /// The manager's name.
        name: String,
        /// Why the refresh failed.
        source: Arc<Error>,
    },
    /// The refresh token was rejected (`invalid_grant`) or there is none: the
    /// user has to log in again (CIBA or QR) and the new tokens must be
    /// [`store`](crate::TokenManager::store)d. The manager does not retry.
    #[error(
        "token manager `{name}` needs a new login (the refresh token was rejected or is missing); log in again and store the new tokens: {source}"
    )]
    ReauthRequired {
        /// The manager's name.
        name: String,
        /// The provider's answer (usually OAuth error `invalid_grant`).
        source: Arc<Error>,
    },
    /// The manager's background task has stopped: its registry or the manager
    /// was shut down, or the tokio runtime it was built in has shut down.
    #[error(
        "token manager `{name}` is shut down (its registry or tokio runtime stopped); build a new one"
    )]
    Stopped {
        /// The manager's name.
        name: String,
    },
    /// A registry already holds a manager under this name.
    #[error(
        "a token manager named `{name}` already exists in this registry; use get() or remove() it first"
    )]
    AlreadyExists {
        /// The name.
        name: String,
    },
}

impl TokenError {
    /// The provider or transport error behind this one, if any.
    pub fn cause(&self) -> Option<&Arc<Error>> {
        match self {
            TokenError::Expired { source, .. }
            | TokenError::RefreshFailed { source, .. }
            | TokenError::ReauthRequired { source, .. } => Some(source),
            TokenError::Stopped { .. } | TokenError::AlreadyExists { .. } => None,
        }
    }

    /// Whether the user has to log in again before this manager can work.
    pub fn is_reauth_required(&self) -> bool {
        matches!(self, TokenError::ReauthRequired { .. })
    }
}

/// A token manager's failure as an [`onesoidc_core::Error`]
/// ([`Error::Other`]), so `?` works in a function returning the flows'
/// error; its predicates (`is_network()`, `requires_login()`, ...) look
/// through to the provider's answer.
///
/// ```
/// use std::sync::Arc;
/// use onesoidc_core::Error;
/// use onesoidc_tokens::TokenError;
/// let rejected = Error::oauth("https://idp/oidc/token", 400, "invalid_grant", None);
/// let failed = TokenError::ReauthRequired { name: "ciba_user".into(), source: Arc::new(rejected) };
/// let error = Error::from(failed);
/// assert!(error.requires_login());
/// assert!(error.to_string().contains("ciba_user"));
/// ```
impl From<TokenError> for Error {
    fn from(error: TokenError) -> Self {
        Error::Other(Box::new(error))
    }
}
