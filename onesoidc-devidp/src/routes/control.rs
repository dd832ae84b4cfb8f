//! The control surface under `/control/`, for tests and the demo.
//!
//! **Not part of OnesID**: a real provider has nothing like it. Every
//! response carries `X-Onesoidc-DevIdp: control surface, not part of OnesID`.
//! Errors are JSON `{"error", "error_description"}`: 404 `not_found`,
//! 409 `conflict` (not pending any more), 400 `invalid_request` /
//! `unknown_user_id`; 403 `forbidden` for a `Host` that is not the
//! provider's, 415 `invalid_request` for a request other than `GET`/`HEAD`
//! without `Content-Type: application/json` (the console's protections
//! against other sites in the developer's browser).

use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use onesoidc_core::PublicJwk;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

use super::Shared;
use crate::config::{AutoApprove, AutoApproveJson, UserDecision};
use crate::devices::RegisteredDevice;
use crate::error::{ApiError, code};
use crate::form;
use crate::state::Provider;

/// The header that marks control responses.
const MARKER: (&str, &str) = ("x-onesoidc-devidp", "control surface, not part of OnesID");

pub(super) fn router(provider: Arc<Provider>) -> Router<Arc<Provider>> {
    Router::new()
        .route("/ciba", get(ciba_pending))
        .route("/ciba/{auth_req_id}/approve", post(ciba_approve))
        .route("/ciba/{auth_req_id}/deny", post(ciba_deny))
        .route("/qr", get(qr_pending))
        .route("/qr/{session_id}/scan", post(qr_scan))
        .route("/qr/{session_id}/cancel", post(qr_cancel))
        .route("/registrations", get(registrations_pending))
        .route("/registrations/{code}/approve", post(registration_approve))
        .route("/registrations/{code}/reject", post(registration_reject))
        .route("/devices", post(add_device))
        .route("/stats", get(stats))
        .route("/auto-approve", get(auto_approve_get).put(auto_approve_put))
        .route("/keys/rotate", post(rotate_key))
        .route("/dpop/nonce/rotate", post(rotate_dpop_nonce))
        .layer(axum::middleware::from_fn_with_state(provider, guard))
        .layer(axum::middleware::map_response(mark))
}

/// The console's protections, for scripts instead of pages: the `Host`
/// must name this provider (so a DNS-rebinding page cannot read pending
/// logins), and every request but `GET`/`HEAD` must say
/// `Content-Type: application/json`, which a cross-site page can only send
/// after a CORS preflight that nothing here answers (a `no-cors` `text/plain`
/// POST is refused with 415 before it changes anything).
async fn guard(
    axum::extract::State(p): Shared,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Err(e) = p.console.check_host(request.headers()) {
        return reply("control_guard", Err(e));
    }
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if !reads && !is_json(request.headers()) {
        return reply(
            "control_guard",
            Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code::INVALID_REQUEST,
                "the control API takes only `Content-Type: application/json` (send it even with an empty body)",
            )),
        );
    }
    next.run(request).await
}

/// Whether the `Content-Type` is `application/json` (parameters allowed).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

async fn mark(mut response: Response) -> Response {
    response.headers_mut().insert(
        HeaderName::from_static(MARKER.0),
        HeaderValue::from_static(MARKER.1),
    );
    response
}

fn reply(operation: &'static str, result: Result<Response, ApiError>) -> Response {
    match result {
        Ok(response) => {
            tracing::debug!(operation, "control operation done");
            response
        }
        Err(e) => {
            tracing::debug!(operation, error = e.error, description = %e.description, "control operation failed");
            e.into_response()
        }
    }
}

async fn ciba_pending(axum::extract::State(p): Shared) -> Response {
    Json(json!({"requests": p.pending_ciba()})).into_response()
}

fn decide_ciba(p: &Provider, id: &str, decision: UserDecision) -> Result<Response, ApiError> {
    p.decide_ciba(id, decision)?;
    let status = match decision {
        UserDecision::Approve => "approved",
        UserDecision::Deny => "denied",
    };
    Ok(Json(json!({"auth_req_id": id, "status": status})).into_response())
}

async fn ciba_approve(axum::extract::State(p): Shared, Path(id): Path<String>) -> Response {
    reply("ciba_approve", decide_ciba(&p, &id, UserDecision::Approve))
}

async fn ciba_deny(axum::extract::State(p): Shared, Path(id): Path<String>) -> Response {
    reply("ciba_deny", decide_ciba(&p, &id, UserDecision::Deny))
}

async fn qr_pending(axum::extract::State(p): Shared) -> Response {
    let sessions: Vec<_> = p
        .pending_qr()
        .into_iter()
        .map(|(session_id, client_id)| {
            json!({"session_id": session_id, "client_id": client_id, "cb_url": p.cb_url(&session_id)})
        })
        .collect();
    Json(json!({"sessions": sessions})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanBody {
    username: String,
}

async fn qr_scan(
    axum::extract::State(p): Shared,
    Path(session_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = form::json::<ScanBody>(body, false).and_then(|body| {
        p.scan_qr(&session_id, &body.username)?;
        Ok(
            Json(json!({"session_id": session_id, "status": "scanned", "username": body.username}))
                .into_response(),
        )
    });
    reply("qr_scan", result)
}

async fn qr_cancel(axum::extract::State(p): Shared, Path(session_id): Path<String>) -> Response {
    let result = p
        .cancel_qr_on_phone(&session_id)
        .map(|()| Json(json!({"session_id": session_id, "status": "cancelled"})).into_response());
    reply("qr_cancel", result.map_err(Into::into))
}

async fn registrations_pending(axum::extract::State(p): Shared) -> Response {
    Json(json!({"registrations": p.pending_registrations()})).into_response()
}

fn decide_registration(
    p: &Provider,
    code: &str,
    decision: UserDecision,
) -> Result<Response, ApiError> {
    let body = match p.decide_registration(code, decision)? {
        Some(ids) => json!({
            "verification_code": code, "status": "approved",
            "device_id": ids.device_id, "client_id": ids.client_id,
        }),
        None => json!({"verification_code": code, "status": "rejected"}),
    };
    Ok(Json(body).into_response())
}

async fn registration_approve(
    axum::extract::State(p): Shared,
    Path(code): Path<String>,
) -> Response {
    reply(
        "registration_approve",
        decide_registration(&p, &code, UserDecision::Approve),
    )
}

async fn registration_reject(
    axum::extract::State(p): Shared,
    Path(code): Path<String>,
) -> Response {
    reply(
        "registration_reject",
        decide_registration(&p, &code, UserDecision::Deny),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceBody {
    public_jwk: PublicJwk,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
}

async fn add_device(
    axum::extract::State(p): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = form::json::<DeviceBody>(body, false).and_then(|body| {
        let fresh = RegisteredDevice::fresh();
        let ids = RegisteredDevice {
            device_id: body.device_id.unwrap_or(fresh.device_id),
            client_id: body.client_id.unwrap_or(fresh.client_id),
        };
        p.add_device(&ids, &body.public_jwk)?;
        Ok((StatusCode::CREATED, Json(ids)).into_response())
    });
    reply("add_device", result)
}

async fn stats(axum::extract::State(p): Shared) -> Response {
    Json(p.lock().stats.clone()).into_response()
}

async fn auto_approve_get(axum::extract::State(p): Shared) -> Response {
    Json(p.auto_approve().map(AutoApproveJson::from)).into_response()
}

async fn auto_approve_put(
    axum::extract::State(p): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = form::json::<Option<AutoApproveJson>>(body, false).map(|policy| {
        let policy = policy.map(AutoApprove::from);
        p.lock().auto_approve = policy;
        Json(policy.map(AutoApproveJson::from)).into_response()
    });
    reply("auto_approve", result)
}

async fn rotate_key(axum::extract::State(p): Shared) -> Response {
    let result = match tokio::task::spawn_blocking(crate::provider_key::ProviderKey::generate).await
    {
        Ok(Ok(key)) => {
            let (kid, previous_kid) = p.rotate_key(key);
            Ok(Json(json!({"kid": kid, "previous_kid": previous_kid})).into_response())
        }
        Ok(Err(reason)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            reason,
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "generating the key was cancelled",
        )),
    };
    reply("rotate_key", result)
}

async fn rotate_dpop_nonce(axum::extract::State(p): Shared) -> Response {
    let nonce = p.dpop_nonces.rotate();
    tracing::info!("DPoP nonce rotated");
    reply(
        "rotate_dpop_nonce",
        Ok(Json(json!({ "nonce": nonce })).into_response()),
    )
}
