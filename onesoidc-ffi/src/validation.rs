//! Checking tokens: ID tokens against the provider's keys, access tokens
//! by introspection, and revocation.

use std::ffi::{c_char, c_int};

use onesoidc_core::SecretString;

use crate::boundary::{FfiError, ONESOIDC_ERROR, arg_str, call, owned_string};
use crate::client::{client_ref, onesoidc_client};
use crate::runtime::block_on;

/// Validates an ID token: its signature with the provider's keys (fetched
/// and cached; fetched again for an unknown key id), the algorithm, `iss`,
/// `aud` (this device), `exp` and `iat`.
///
/// On success `*subject` is its `sub` and `*claims_json` every claim as a
/// JSON object (each optional: pass NULL for what you do not want; free
/// each with `onesoidc_string_free`). A token that fails validation is
/// `ONESOIDC_ERROR`, the message saying which check failed.
///
/// # Safety
///
/// `client` is a live client; `id_token` is a NUL-terminated string;
/// `subject` and `claims_json` are NULL or point to writable storage for a
/// pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_validate_id_token(
    client: *mut onesoidc_client,
    id_token: *const c_char,
    subject: *mut *mut c_char,
    claims_json: *mut *mut c_char,
) -> c_int {
    call("onesoidc_validate_id_token", || {
        // SAFETY: the caller passes writable storage or NULL.
        let subject = unsafe { optional_out(subject) };
        // SAFETY: as above.
        let claims_json = unsafe { optional_out(claims_json) };
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller passes a NUL-terminated string.
        let id_token = unsafe { arg_str(id_token, "id_token") }?;
        let claims = block_on(client.validate_id_token(id_token))??;
        if let Some(slot) = subject {
            *slot = owned_string(&claims.sub);
        }
        if let Some(slot) = claims_json {
            let json = serde_json::to_string(&claims.all).map_err(|e| {
                FfiError::new(
                    ONESOIDC_ERROR,
                    format!("cannot write the claims as JSON: {e}"),
                )
            })?;
            *slot = owned_string(&json);
        }
        Ok(())
    })
}

/// An optional out-parameter, set to NULL when given.
///
/// # Safety
///
/// `ptr` is NULL or points to writable storage for a pointer.
unsafe fn optional_out<'a>(ptr: *mut *mut c_char) -> Option<&'a mut *mut c_char> {
    // SAFETY: forwarded from the caller.
    let slot = unsafe { ptr.as_mut() }?;
    *slot = std::ptr::null_mut();
    Some(slot)
}

/// Asks the provider whether an access (or refresh) token is active
/// (RFC 7662). On success `*active` says so and, when `json` is not NULL,
/// `*json` is the provider's answer as a JSON object (`active`, `sub`,
/// `client_id`, `exp`, `iat`, `iss`, `scope`, `aud`, `token_type`; free
/// with `onesoidc_string_free`).
///
/// # Safety
///
/// `client` is a live client; `token` is a NUL-terminated string; `active`
/// points to a writable bool; `json` is NULL or points to writable storage
/// for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_introspect(
    client: *mut onesoidc_client,
    token: *const c_char,
    active: *mut bool,
    json: *mut *mut c_char,
) -> c_int {
    call("onesoidc_introspect", || {
        // SAFETY: the caller passes a writable bool or NULL.
        let active =
            unsafe { active.as_mut() }.ok_or_else(|| FfiError::argument("active", "is NULL"))?;
        *active = false;
        // SAFETY: the caller passes writable storage or NULL.
        let json = unsafe { optional_out(json) };
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller passes a NUL-terminated string.
        let token = SecretString::from(unsafe { arg_str(token, "token") }?.to_string());
        let info = block_on(client.introspect(&token, None))??;
        *active = info.active;
        if let Some(slot) = json {
            let text = serde_json::json!({
                "active": info.active,
                "sub": info.sub,
                "client_id": info.client_id.as_ref().map(ToString::to_string),
                "exp": info.exp,
                "iat": info.iat,
                "iss": info.iss,
                "scope": info.scope.as_ref().map(ToString::to_string),
                "aud": info.aud,
                "token_type": info.token_type,
            });
            *slot = owned_string(&text.to_string());
        }
        Ok(())
    })
}

/// Revokes an access or refresh token (RFC 7009). Revoking a token the
/// provider does not know also succeeds, as the RFC says.
///
/// # Safety
///
/// `client` is a live client; `token` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_revoke(
    client: *mut onesoidc_client,
    token: *const c_char,
) -> c_int {
    call("onesoidc_revoke", || {
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller passes a NUL-terminated string.
        let token = SecretString::from(unsafe { arg_str(token, "token") }?.to_string());
        block_on(client.revoke(&token, None))??;
        Ok(())
    })
}
