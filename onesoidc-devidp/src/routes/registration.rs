//! Device registration (PROTOCOL §10), at the host root:
//! `POST /devices/registration`, `GET /devices/registration/status/{code}`.

use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::Response;
use onesoidc_core::PublicJwk;
use serde_json::{Map, Value, json};

use super::{Shared, finish, json_no_store};
use crate::error::ApiError;
use crate::form;
use crate::state::{Provider, ceil_secs};

/// JWK members that only private keys have.
const PRIVATE_MEMBERS: [&str; 6] = ["d", "p", "q", "dp", "dq", "qi"];

pub(super) async fn create(
    axum::extract::State(p): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    p.lock().stats.registration_requests += 1;
    let result = handle(&p, body);
    finish(&p, "registration", result)
}

fn handle(
    p: &std::sync::Arc<Provider>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut request: Map<String, Value> = form::json(body, false)?;
    let public_key = request
        .remove("publicKey")
        .ok_or_else(|| ApiError::invalid_request("`publicKey` is missing"))?;
    let key = match public_key
        .get("keys")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        Some([key, ..]) => key.clone(),
        _ => {
            return Err(ApiError::invalid_request(
                "`publicKey.keys` must be a non-empty array of JWKs",
            ));
        }
    };
    let Value::Object(members) = &key else {
        return Err(ApiError::invalid_request(
            "`publicKey.keys[0]` is not a JWK object",
        ));
    };
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| members.contains_key(**m)) {
        return Err(ApiError::invalid_request(format!(
            "`publicKey.keys[0]` has the private key member `{member}`; send only the public key"
        )));
    }
    if !members.contains_key("alg") {
        return Err(ApiError::invalid_request(
            "`publicKey.keys[0]` has no `alg`",
        ));
    }
    let jwk: PublicJwk = serde_json::from_value(key)
        .map_err(|e| ApiError::invalid_request(format!("`publicKey.keys[0]` is not a JWK: {e}")))?;
    let details: Map<String, Value> = request
        .into_iter()
        .filter(|(_, v)| !v.is_object() && !v.is_array())
        .collect();
    let code = p.create_registration(jwk, details)?;
    Ok(json_no_store(
        StatusCode::CREATED,
        &json!({
            "verification_code": code,
            "interval": ceil_secs(p.config.registration_poll_interval),
        }),
    ))
}

pub(super) async fn status(axum::extract::State(p): Shared, Path(code): Path<String>) -> Response {
    let result = p
        .registration_status(&code)
        .map(|body| json_no_store(StatusCode::OK, &body))
        .ok_or_else(|| ApiError::not_found(format!("unknown verification code {code:?}")));
    finish(&p, "registration_status", result)
}
