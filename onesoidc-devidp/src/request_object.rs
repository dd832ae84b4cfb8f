//! The signed CIBA request object (PROTOCOL §5, CIBA Core §7.1.1).
//!
//! Errors, all 400:
//! - the JWT itself (signature, `alg`, `iss`, `aud`, `exp`/`nbf`/`iat`/`jti`,
//!   replay): `invalid_request_object`;
//! - `scope` missing, hints missing or more than one, `qr_session_id`
//!   without a `login_hint_token`, malformed values: `invalid_request`;
//! - `scope` without `openid`: `invalid_scope`;
//! - an unknown user (or an unrecognised hint token): `unknown_user_id`;
//! - `binding_message` over 120 characters: `invalid_binding_message`;
//! - a `resource` that is not an absolute URI: `invalid_target`;
//! - an expired `login_hint_token`: `expired_login_hint_token`.

use std::time::Duration;

use serde_json::Value;

use crate::ciba::CibaRequestInfo;
use crate::devices::Device;
use crate::error::{ApiError, code};
use crate::form::check_resource;
use crate::jose::{CLOCK_SKEW_SECS, Claims, CompactJws};
use crate::state::{JtiUse, Provider, unix_now};

/// Longest accepted `exp - iat` of a request object: 300 s plus the clock skew.
pub(crate) const MAX_REQUEST_OBJECT_LIFETIME_SECS: i64 = 300 + CLOCK_SKEW_SECS;

/// Longest `binding_message`, in characters.
pub(crate) const MAX_BINDING_MESSAGE_CHARS: usize = 120;

/// A checked authentication request, ready to become a CIBA request.
#[derive(Debug)]
pub(crate) struct AuthRequest {
    pub info: CibaRequestInfo,
    pub expires_in: Duration,
}

fn present_hints(claims: &Claims) -> Result<Vec<&'static str>, ApiError> {
    let mut present = Vec::new();
    for name in ["login_hint", "login_hint_token", "id_token_hint"] {
        let value = claims
            .string(name)
            .map_err(ApiError::invalid_request)?
            .filter(|s| !s.is_empty());
        if value.is_some() {
            present.push(name);
        }
    }
    Ok(present)
}

/// Checks `request` (the `request` form parameter) sent by `device`.
pub(crate) fn validate(
    state: &Provider,
    device: &Device,
    request: &str,
) -> Result<AuthRequest, ApiError> {
    let client_id = device.client_id.as_str();
    let fail = |reason: String| {
        ApiError::invalid_request_object(format!("request object rejected: {reason}"))
    };
    let jws = CompactJws::parse(request).map_err(fail)?;
    jws.verify_with(&device.key).map_err(fail)?;
    let claims = &jws.claims;
    let iss = claims.required_string("iss").map_err(fail)?;
    if iss != client_id {
        return Err(fail(format!(
            "`iss` {iss:?} is not the client id {client_id:?}"
        )));
    }
    match claims.string("client_id").map_err(fail)? {
        Some(claimed) if claimed != client_id => {
            return Err(fail(format!(
                "`client_id` {claimed:?} is not the authenticated client"
            )));
        }
        _ => {}
    }
    claims.audience_is(&state.issuer).map_err(fail)?;
    let now = unix_now();
    let exp = claims
        .check_lifetime(now, MAX_REQUEST_OBJECT_LIFETIME_SECS)
        .map_err(fail)?;
    let nbf = claims.required_time("nbf").map_err(fail)?;
    if nbf > now.saturating_add(CLOCK_SKEW_SECS) {
        return Err(fail(format!("`nbf` {nbf} is in the future (now {now})")));
    }
    state
        .check_jti(client_id, JtiUse::RequestObject, claims, exp)
        .map_err(fail)?;

    let scope = claims
        .string("scope")
        .map_err(ApiError::invalid_request)?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ApiError::invalid_request("`scope` is required"))?;
    if !scope.split_whitespace().any(|s| s == "openid") {
        return Err(ApiError::bad_request(
            code::INVALID_SCOPE,
            format!("scope {scope:?} must contain `openid`"),
        ));
    }
    let hints = present_hints(claims)?;
    if hints.len() != 1 {
        return Err(ApiError::invalid_request(format!(
            "exactly one of login_hint, login_hint_token, id_token_hint is required; found {}",
            if hints.is_empty() {
                "none".to_string()
            } else {
                hints.join(", ")
            }
        )));
    }
    let binding_message = claims
        .string("binding_message")
        .map_err(ApiError::invalid_request)?;
    if let Some(message) = binding_message {
        let chars = message.chars().count();
        if chars > MAX_BINDING_MESSAGE_CHARS {
            return Err(ApiError::bad_request(
                code::INVALID_BINDING_MESSAGE,
                format!(
                    "binding_message is {chars} characters; at most {MAX_BINDING_MESSAGE_CHARS} are allowed"
                ),
            ));
        }
    }
    let resource = match claims.0.get("resource") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => {
            check_resource(r)?;
            Some(r.clone())
        }
        Some(Value::Array(_)) => {
            return Err(ApiError::bad_request(
                code::INVALID_TARGET,
                "only one `resource` is supported",
            ));
        }
        Some(_) => return Err(ApiError::invalid_request("`resource` is not a string")),
    };
    let expires_in = requested_expiry(claims)?.map_or(state.config.ciba_expires_in, |secs| {
        state.config.ciba_expires_in.min(Duration::from_secs(secs))
    });
    let qr_session_id = claims
        .string("qr_session_id")
        .map_err(ApiError::invalid_request)?
        .filter(|s| !s.is_empty());

    if qr_session_id.is_some() && hints[0] != "login_hint_token" {
        return Err(ApiError::invalid_request(
            "`qr_session_id` is only allowed with a login_hint_token",
        ));
    }
    // Resolve the user last: using a login_hint_token consumes it.
    let username = match hints[0] {
        "login_hint" => {
            let user = claims
                .required_string("login_hint")
                .map_err(ApiError::invalid_request)?;
            if !state.is_user(user) {
                return Err(ApiError::bad_request(
                    code::UNKNOWN_USER_ID,
                    format!("unknown user {user:?}"),
                ));
            }
            user.to_string()
        }
        "id_token_hint" => {
            let hint = claims
                .required_string("id_token_hint")
                .map_err(ApiError::invalid_request)?;
            // Any key still published: the hint may predate a rotation.
            let hinted = state
                .published_keys()
                .iter()
                .map(|key| key.verify_own(hint, &state.issuer))
                .reduce(|first, next| first.or(next))
                .unwrap_or_else(|| Err("the provider has no key".into()))
                .map_err(|e| {
                    ApiError::invalid_request(format!("id_token_hint is not valid: {e}"))
                })?;
            match hinted.get("sub") {
                Some(Value::String(sub)) if state.is_user(sub) => sub.clone(),
                _ => {
                    return Err(ApiError::bad_request(
                        code::UNKNOWN_USER_ID,
                        "the id_token_hint's `sub` is not a known user",
                    ));
                }
            }
        }
        _ => {
            let token = claims
                .required_string("login_hint_token")
                .map_err(ApiError::invalid_request)?;
            state.use_login_hint_token(client_id, token, qr_session_id)?
        }
    };
    Ok(AuthRequest {
        info: CibaRequestInfo {
            auth_req_id: crate::state::random_token(""),
            client_id: client_id.to_string(),
            login_hint: username,
            binding_message: binding_message.map(str::to_string),
            scope: scope.to_string(),
            resource,
            qr_session_id: qr_session_id.map(str::to_string),
        },
        expires_in,
    })
}

/// `requested_expiry`: a positive integer, as a number or a string (CIBA §7.1).
fn requested_expiry(claims: &Claims) -> Result<Option<u64>, ApiError> {
    let invalid = || ApiError::invalid_request("`requested_expiry` must be a positive integer");
    let secs = match claims.0.get("requested_expiry") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(invalid)?,
        Some(Value::String(s)) => s.trim().parse::<u64>().map_err(|_| invalid())?,
        Some(_) => return Err(invalid()),
    };
    if secs == 0 {
        return Err(invalid());
    }
    Ok(Some(secs))
}
