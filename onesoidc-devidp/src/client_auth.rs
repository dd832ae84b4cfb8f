//! private_key_jwt client authentication (PROTOCOL §3, RFC 7523).
//!
//! Every failure is `401 invalid_client` with a description naming the
//! reason, including a missing `client_id`, `client_assertion_type` or
//! `client_assertion` ("no client authentication included", RFC 6749 §5.2).

use std::sync::Arc;

use crate::devices::Device;
use crate::error::ApiError;
use crate::form::Form;
use crate::jose::CompactJws;
use crate::state::{JtiUse, Provider, unix_now};

/// The only `client_assertion_type` accepted.
pub(crate) const CLIENT_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Longest accepted `exp - iat` of a client assertion, in seconds.
pub(crate) const MAX_ASSERTION_LIFETIME_SECS: i64 = 300;

/// The form fields that carry client authentication.
pub(crate) const CLIENT_AUTH_FIELDS: [&str; 3] =
    ["client_id", "client_assertion_type", "client_assertion"];

/// Authenticates the client of a request to `endpoint` (the URL the
/// assertion's `aud` must name).
pub(crate) fn authenticate(
    state: &Provider,
    form: &Form,
    endpoint: &str,
) -> Result<Arc<Device>, ApiError> {
    let client_id = form.get("client_id")?.ok_or_else(|| {
        ApiError::invalid_client("client authentication failed: `client_id` is missing")
    })?;
    let assertion_type = form.get("client_assertion_type")?.ok_or_else(|| {
        ApiError::invalid_client(
            "client authentication failed: `client_assertion_type` is missing (only private_key_jwt is supported)",
        )
    })?;
    if assertion_type != CLIENT_ASSERTION_TYPE {
        return Err(ApiError::invalid_client(format!(
            "client authentication failed: unsupported client_assertion_type {assertion_type:?}"
        )));
    }
    let assertion = form.get("client_assertion")?.ok_or_else(|| {
        ApiError::invalid_client("client authentication failed: `client_assertion` is missing")
    })?;
    let device = state.device(client_id).ok_or_else(|| {
        ApiError::invalid_client(format!(
            "client authentication failed: unknown client {client_id:?}"
        ))
    })?;
    let fail =
        |reason: String| ApiError::invalid_client(format!("client assertion rejected: {reason}"));
    let jws = CompactJws::parse(assertion).map_err(fail)?;
    jws.verify_with(&device.key).map_err(fail)?;
    let claims = &jws.claims;
    let iss = claims.required_string("iss").map_err(fail)?;
    let sub = claims.required_string("sub").map_err(fail)?;
    if iss != client_id || sub != client_id {
        return Err(fail(format!(
            "`iss` ({iss:?}) and `sub` ({sub:?}) must both be the client id {client_id:?}"
        )));
    }
    claims.audience_is(endpoint).map_err(fail)?;
    let exp = claims
        .check_lifetime(unix_now(), MAX_ASSERTION_LIFETIME_SECS)
        .map_err(fail)?;
    state
        .check_jti(client_id, JtiUse::ClientAssertion, claims, exp)
        .map_err(fail)?;
    tracing::debug!(client_id, device_id = %device.device_id, endpoint, "client authenticated");
    Ok(device)
}
