//! The pages' buttons: `POST /console/...`, each doing exactly what the
//! matching `/control/` route (and [`crate::DevIdp`] method) does, but only
//! with the console token in `X-DevIdp-Console-Token` (403 without it).
//!
//! Answers are JSON: `{"ok": true, "message": "..."}`, or the usual
//! `{"error", "error_description"}` (404 unknown, 409 no longer pending,
//! 400 unknown user, 403 no token).

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::pages::secure;
use crate::config::UserDecision;
use crate::error::ApiError;
use crate::form;
use crate::routes::Shared;
use crate::state::Provider;

/// Checks the token, runs `action`, answers with its message.
fn act(
    p: &Provider,
    headers: &HeaderMap,
    operation: &'static str,
    action: impl FnOnce() -> Result<String, ApiError>,
) -> Response {
    let result = p.console.check_post(headers).and_then(|()| action());
    let response = match result {
        Ok(message) => {
            tracing::info!(operation, %message, "console");
            Json(json!({"ok": true, "message": message})).into_response()
        }
        Err(e) => {
            tracing::info!(operation, error = e.error, description = %e.description, "console action refused");
            e.into_response()
        }
    };
    secure(response)
}

/// Who a CIBA request is for (for the answer's message).
fn ciba_user(p: &Provider, auth_req_id: &str) -> String {
    p.lock()
        .ciba
        .get(auth_req_id)
        .map(|r| r.info.login_hint.clone())
        .unwrap_or_default()
}

fn decide_ciba(p: &Provider, id: &str, decision: UserDecision) -> Result<String, ApiError> {
    p.decide_ciba(id, decision)?;
    let user = ciba_user(p, id);
    Ok(match decision {
        UserDecision::Approve => format!("Approved {user}'s login."),
        UserDecision::Deny => format!("Denied {user}'s login."),
    })
}

/// `POST /console/ciba/{auth_req_id}/approve`.
pub(crate) async fn ciba_approve(
    axum::extract::State(p): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    act(&p, &headers, "ciba_approve", || {
        decide_ciba(&p, &id, UserDecision::Approve)
    })
}

/// `POST /console/ciba/{auth_req_id}/deny`.
pub(crate) async fn ciba_deny(
    axum::extract::State(p): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    act(&p, &headers, "ciba_deny", || {
        decide_ciba(&p, &id, UserDecision::Deny)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanBody {
    username: String,
}

/// `POST /console/qr/{session_id}/scan`, `{"username": "alice"}`: the
/// phone scans, as `POST /control/qr/{session_id}/scan` does.
pub(crate) async fn qr_scan(
    axum::extract::State(p): Shared,
    Path(session_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    act(&p, &headers, "qr_scan", || {
        let body: ScanBody = form::json(body, false)?;
        p.scan_qr(&session_id, &body.username)?;
        Ok(format!("Scanned as {}.", body.username))
    })
}

/// `POST /console/qr/{session_id}/cancel`: the person cancels on the phone.
pub(crate) async fn qr_cancel(
    axum::extract::State(p): Shared,
    Path(session_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    act(&p, &headers, "qr_cancel", || {
        p.cancel_qr_on_phone(&session_id)?;
        Ok("Cancelled the QR login.".to_string())
    })
}

fn decide_registration(
    p: &Provider,
    code: &str,
    decision: UserDecision,
) -> Result<String, ApiError> {
    Ok(match p.decide_registration(code, decision)? {
        Some(ids) => format!("Approved {code}: client id {}.", ids.client_id),
        None => format!("Rejected {code}."),
    })
}

/// `POST /console/registrations/{code}/approve`.
pub(crate) async fn registration_approve(
    axum::extract::State(p): Shared,
    Path(code): Path<String>,
    headers: HeaderMap,
) -> Response {
    act(&p, &headers, "registration_approve", || {
        decide_registration(&p, &code, UserDecision::Approve)
    })
}

/// `POST /console/registrations/{code}/reject`.
pub(crate) async fn registration_reject(
    axum::extract::State(p): Shared,
    Path(code): Path<String>,
    headers: HeaderMap,
) -> Response {
    act(&p, &headers, "registration_reject", || {
        decide_registration(&p, &code, UserDecision::Deny)
    })
}
