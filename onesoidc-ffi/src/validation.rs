//! Checking tokens: ID tokens against the provider's keys, access tokens
//! by introspection, and revocation.

use std::ffi::{c_char, c_int};

use onesoidc_core::{IdTokenClaims, Introspection, SecretString};

use crate::boundary::{FfiError, ONESOIDC_ERROR, arg_str, call, free_string, guard, owned_string};
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
            *slot = owned_string(&claims_to_json(&claims)?);
        }
        Ok(())
    })
}

/// Every claim as a JSON object.
fn claims_to_json(claims: &IdTokenClaims) -> Result<String, FfiError> {
    serde_json::to_string(&claims.all).map_err(|e| {
        FfiError::new(
            ONESOIDC_ERROR,
            format!("cannot write the claims as JSON: {e}"),
        )
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
            *slot = owned_string(&introspection_json(&info));
        }
        Ok(())
    })
}

/// The introspection answer as the JSON object the header documents.
fn introspection_json(info: &Introspection) -> String {
    serde_json::json!({
        "active": info.active,
        "sub": info.sub,
        "client_id": info.client_id.as_ref().map(ToString::to_string),
        "exp": info.exp,
        "iat": info.iat,
        "iss": info.iss,
        "scope": info.scope.as_ref().map(ToString::to_string),
        "aud": info.aud,
        "token_type": info.token_type,
    })
    .to_string()
}

/// An introspection answer field by field (`onesoidc_introspect_fields`),
/// for languages that would rather not parse JSON. The strings are the
/// caller's: `onesoidc_introspection_clear` frees them all.
#[repr(C)]
pub struct onesoidc_introspection {
    /// Whether the token is active (usable now).
    pub active: bool,
    /// `exp`: when the token expires, in seconds since the Unix epoch; -1
    /// when the provider did not say.
    pub exp: i64,
    /// `iat`: when it was issued, as `exp`; -1 when not said.
    pub iat: i64,
    /// `sub`: whom the token is about; NULL when not said.
    pub sub: *mut c_char,
    /// `scope`, space-separated; NULL when not said.
    pub scope: *mut c_char,
    /// `client_id`: whom the token was issued to; NULL when not said.
    pub client_id: *mut c_char,
    /// `aud`: the audiences, one per line (`\n` between them); NULL when none.
    pub aud: *mut c_char,
    /// The whole answer as a JSON object (as `onesoidc_introspect`'s).
    pub json: *mut c_char,
}

/// An ID token's validated claims field by field
/// (`onesoidc_validate_id_token_claims`). The strings are the caller's:
/// `onesoidc_id_token_claims_clear` frees them all.
#[repr(C)]
pub struct onesoidc_id_token_claims {
    /// `sub`: the person (e.g. the username). Never NULL once filled.
    pub sub: *mut c_char,
    /// `exp`, seconds since the Unix epoch.
    pub exp: i64,
    /// `iat`, seconds since the Unix epoch.
    pub iat: i64,
    /// `aud`: the audiences, one per line (`\n` between them).
    pub aud: *mut c_char,
    /// Every claim, as a JSON object.
    pub json: *mut c_char,
}

/// Seconds for a C `int64_t`: -1 for none (or beyond its range).
fn seconds(value: Option<u64>) -> i64 {
    value.and_then(|v| i64::try_from(v).ok()).unwrap_or(-1)
}

fn owned_or_null(text: Option<&str>) -> *mut c_char {
    text.map_or(std::ptr::null_mut(), owned_string)
}

/// As `onesoidc_introspect`, with the answer's fields in `*fields` (every
/// string NULL and the numbers -1 after a failure). Free the strings with
/// `onesoidc_introspection_clear`.
///
/// # Safety
///
/// `client` is a live client; `token` is a NUL-terminated string; `fields`
/// points to a writable `onesoidc_introspection` (its old strings, if any,
/// are not freed: clear it first).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_introspect_fields(
    client: *mut onesoidc_client,
    token: *const c_char,
    fields: *mut onesoidc_introspection,
) -> c_int {
    call("onesoidc_introspect_fields", || {
        // SAFETY: the caller passes a writable struct or NULL.
        let fields =
            unsafe { fields.as_mut() }.ok_or_else(|| FfiError::argument("fields", "is NULL"))?;
        *fields = onesoidc_introspection {
            active: false,
            exp: -1,
            iat: -1,
            sub: std::ptr::null_mut(),
            scope: std::ptr::null_mut(),
            client_id: std::ptr::null_mut(),
            aud: std::ptr::null_mut(),
            json: std::ptr::null_mut(),
        };
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller passes a NUL-terminated string.
        let token = SecretString::from(unsafe { arg_str(token, "token") }?.to_string());
        let info = block_on(client.introspect(&token, None))??;
        let scope = info.scope.as_ref().map(ToString::to_string);
        let client_id = info.client_id.as_ref().map(ToString::to_string);
        let aud = (!info.aud.is_empty()).then(|| info.aud.join("\n"));
        *fields = onesoidc_introspection {
            active: info.active,
            exp: seconds(info.exp),
            iat: seconds(info.iat),
            sub: owned_or_null(info.sub.as_deref()),
            scope: owned_or_null(scope.as_deref()),
            client_id: owned_or_null(client_id.as_deref()),
            aud: owned_or_null(aud.as_deref()),
            json: owned_string(&introspection_json(&info)),
        };
        Ok(())
    })
}

/// Frees the strings of `*fields` and sets them to NULL (NULL is ignored;
/// clearing twice is harmless).
///
/// # Safety
///
/// `fields` is NULL or an `onesoidc_introspection` filled by
/// `onesoidc_introspect_fields` (or cleared), its strings unchanged.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_introspection_clear(fields: *mut onesoidc_introspection) {
    guard("onesoidc_introspection_clear", (), || {
        // SAFETY: the caller passes a filled struct or NULL.
        if let Some(fields) = unsafe { fields.as_mut() } {
            for slot in [
                &mut fields.sub,
                &mut fields.scope,
                &mut fields.client_id,
                &mut fields.aud,
                &mut fields.json,
            ] {
                // SAFETY: each is NULL or a string of ours, freed once
                // (set to NULL right after).
                unsafe { free_string(std::mem::replace(slot, std::ptr::null_mut())) };
            }
        }
    });
}

/// As `onesoidc_validate_id_token`, with the claims' fields in `*claims`
/// (every string NULL and the numbers -1 after a failure). Free the
/// strings with `onesoidc_id_token_claims_clear`.
///
/// # Safety
///
/// `client` is a live client; `id_token` is a NUL-terminated string;
/// `claims` points to a writable `onesoidc_id_token_claims` (its old
/// strings, if any, are not freed: clear it first).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_validate_id_token_claims(
    client: *mut onesoidc_client,
    id_token: *const c_char,
    claims: *mut onesoidc_id_token_claims,
) -> c_int {
    call("onesoidc_validate_id_token_claims", || {
        // SAFETY: the caller passes a writable struct or NULL.
        let slot =
            unsafe { claims.as_mut() }.ok_or_else(|| FfiError::argument("claims", "is NULL"))?;
        *slot = onesoidc_id_token_claims {
            sub: std::ptr::null_mut(),
            exp: -1,
            iat: -1,
            aud: std::ptr::null_mut(),
            json: std::ptr::null_mut(),
        };
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller passes a NUL-terminated string.
        let id_token = unsafe { arg_str(id_token, "id_token") }?;
        let claims = block_on(client.validate_id_token(id_token))??;
        let json = claims_to_json(&claims)?;
        *slot = onesoidc_id_token_claims {
            sub: owned_string(&claims.sub),
            exp: seconds(Some(claims.exp)),
            iat: seconds(Some(claims.iat)),
            aud: owned_string(&claims.aud.join("\n")),
            json: owned_string(&json),
        };
        Ok(())
    })
}

/// Frees the strings of `*claims` and sets them to NULL (NULL is ignored;
/// clearing twice is harmless).
///
/// # Safety
///
/// `claims` is NULL or an `onesoidc_id_token_claims` filled by
/// `onesoidc_validate_id_token_claims` (or cleared), its strings unchanged.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_id_token_claims_clear(claims: *mut onesoidc_id_token_claims) {
    guard("onesoidc_id_token_claims_clear", (), || {
        // SAFETY: the caller passes a filled struct or NULL.
        if let Some(claims) = unsafe { claims.as_mut() } {
            for slot in [&mut claims.sub, &mut claims.aud, &mut claims.json] {
                // SAFETY: each is NULL or a string of ours, freed once
                // (set to NULL right after).
                unsafe { free_string(std::mem::replace(slot, std::ptr::null_mut())) };
            }
        }
    });
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
