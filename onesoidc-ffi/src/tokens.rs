//! A person's (or the device's) tokens as one object: what a login returns
//! and what a token manager stores.

use std::ffi::{c_char, c_int};
use std::time::UNIX_EPOCH;

use onesoidc_core::{ExposeSecret, IdTokenClaims, TokenSet};
use onesoidc_flows::Login;

use crate::boundary::{call, free_handle, guard, handle, out, owned_string, secret_string};

/// Tokens from a login (CIBA or QR): the access token, the ID token and its
/// validated claims, and a refresh token kept inside (hand the object to
/// `onesoidc_manager_store` to keep them fresh). Free with
/// `onesoidc_tokens_free`. Immutable: safe to read from several threads.
pub struct onesoidc_tokens {
    pub(crate) tokens: TokenSet,
    pub(crate) claims: Option<IdTokenClaims>,
}

impl From<Login> for onesoidc_tokens {
    fn from(login: Login) -> Self {
        onesoidc_tokens {
            tokens: login.tokens,
            claims: login.claims,
        }
    }
}

/// Copies the access token into `*access_token` (free with
/// `onesoidc_string_free`, which zeroes it).
///
/// # Safety
///
/// `tokens` is a live object; `access_token` points to writable storage
/// for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_tokens_access_token(
    tokens: *const onesoidc_tokens,
    access_token: *mut *mut c_char,
) -> c_int {
    call("onesoidc_tokens_access_token", || {
        // SAFETY: the caller passes writable storage.
        let access_token = unsafe { out(access_token, "access_token") }?;
        // SAFETY: the caller passes a live object.
        let tokens = unsafe { handle(tokens, "tokens") }?;
        *access_token = secret_string(tokens.tokens.access_token.expose_secret());
        Ok(())
    })
}

/// Copies the ID token into `*id_token` (free with `onesoidc_string_free`);
/// NULL when the provider sent none.
///
/// # Safety
///
/// As `onesoidc_tokens_access_token`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_tokens_id_token(
    tokens: *const onesoidc_tokens,
    id_token: *mut *mut c_char,
) -> c_int {
    call("onesoidc_tokens_id_token", || {
        // SAFETY: the caller passes writable storage.
        let id_token = unsafe { out(id_token, "id_token") }?;
        // SAFETY: the caller passes a live object.
        let tokens = unsafe { handle(tokens, "tokens") }?;
        if let Some(token) = &tokens.tokens.id_token {
            *id_token = secret_string(token.expose_secret());
        }
        Ok(())
    })
}

/// Copies the access token's type (`Bearer`, as the provider said) into
/// `*token_type` (free with `onesoidc_string_free`).
///
/// # Safety
///
/// `tokens` is a live object; `token_type` points to writable storage for
/// a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_tokens_token_type(
    tokens: *const onesoidc_tokens,
    token_type: *mut *mut c_char,
) -> c_int {
    call("onesoidc_tokens_token_type", || {
        // SAFETY: the caller passes writable storage.
        let token_type = unsafe { out(token_type, "token_type") }?;
        // SAFETY: the caller passes a live object.
        let tokens = unsafe { handle(tokens, "tokens") }?;
        *token_type = owned_string(&tokens.tokens.token_type);
        Ok(())
    })
}

/// Copies the person's subject (`sub` of the validated ID token, e.g. the
/// username) into `*subject` (free with `onesoidc_string_free`); NULL
/// when there was no ID token.
///
/// # Safety
///
/// `tokens` is a live object; `subject` points to writable storage for a
/// pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_tokens_subject(
    tokens: *const onesoidc_tokens,
    subject: *mut *mut c_char,
) -> c_int {
    call("onesoidc_tokens_subject", || {
        // SAFETY: the caller passes writable storage.
        let subject = unsafe { out(subject, "subject") }?;
        // SAFETY: the caller passes a live object.
        let tokens = unsafe { handle(tokens, "tokens") }?;
        if let Some(claims) = &tokens.claims {
            *subject = owned_string(&claims.sub);
        }
        Ok(())
    })
}

/// When the access token expires, in seconds since the Unix epoch; -1 when
/// the provider did not say (or `tokens` is NULL).
///
/// # Safety
///
/// `tokens` is NULL or a live object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_tokens_expires_at(tokens: *const onesoidc_tokens) -> i64 {
    guard("onesoidc_tokens_expires_at", -1, || {
        // SAFETY: the caller passes a live object or NULL.
        let Ok(tokens) = (unsafe { handle(tokens, "tokens") }) else {
            return -1;
        };
        tokens
            .tokens
            .expires_at
            .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok())
            .unwrap_or(-1)
    })
}

/// Whether the tokens carry a refresh token (so a manager with
/// `ONESOIDC_REFRESH_USER` can keep them fresh). False for NULL.
///
/// # Safety
///
/// `tokens` is NULL or a live object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_tokens_has_refresh_token(tokens: *const onesoidc_tokens) -> bool {
    guard("onesoidc_tokens_has_refresh_token", false, || {
        // SAFETY: the caller passes a live object or NULL.
        unsafe { handle(tokens, "tokens") }.is_ok_and(|t| t.tokens.refresh_token.is_some())
    })
}

/// Frees tokens (NULL is ignored); the secrets are zeroed.
///
/// # Safety
///
/// `tokens` is NULL or an object from this library, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_tokens_free(tokens: *mut onesoidc_tokens) {
    // SAFETY: the caller passes a live object or NULL, freed once.
    guard("onesoidc_tokens_free", (), || unsafe {
        free_handle(tokens)
    });
}
