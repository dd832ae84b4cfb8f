//! QR sessions (PROTOCOL §8): create and check with the device's bearer
//! token, scan (the `cb_url`) with a user's bearer token. `DELETE` of a
//! session (status `cancelled`) is a dev IdP extension.

use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{Shared, device_bearer, finish, json_no_store, user_bearer};
use crate::error::{ApiError, ControlError};
use crate::form;

/// `POST /oidc/qr/sessions`, body `{}`.
pub(super) async fn create(
    axum::extract::State(p): Shared,
    request: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = device_bearer(&p, &request).and_then(|client_id| {
        let _: Map<String, Value> = form::json(body, true)?;
        Ok(json_no_store(StatusCode::CREATED, &p.create_qr(&client_id)))
    });
    finish(&p, "qr_create", result)
}

/// `GET /oidc/qr/sessions/{session_id}`.
pub(super) async fn status(
    axum::extract::State(p): Shared,
    Path(session_id): Path<String>,
    request: Parts,
) -> Response {
    let result = device_bearer(&p, &request).and_then(|client_id| {
        let body = p.qr_status(&client_id, &session_id)?;
        Ok(json_no_store(StatusCode::OK, &body))
    });
    finish(&p, "qr_status", result)
}

/// `DELETE /oidc/qr/sessions/{session_id}` (dev IdP extension).
pub(super) async fn cancel(
    axum::extract::State(p): Shared,
    Path(session_id): Path<String>,
    request: Parts,
) -> Response {
    let result = device_bearer(&p, &request).and_then(|client_id| {
        p.cancel_qr(&client_id, &session_id)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    });
    finish(&p, "qr_cancel", result)
}

/// `POST {cb_url}` = `/oidc/qr/sessions/{session_id}/scan`, with the user's bearer token.
pub(super) async fn scan(
    axum::extract::State(p): Shared,
    Path(session_id): Path<String>,
    request: Parts,
) -> Response {
    let result = user_bearer(&p, &request).and_then(|username| {
        p.scan_qr(&session_id, &username).map_err(|e| match e {
            ControlError::QrSessionNotPending { .. } => ApiError::invalid_request(e.to_string()),
            other => ApiError::from(other),
        })?;
        Ok(json_no_store(
            StatusCode::OK,
            &json!({"session_id": session_id, "status": "scanned"}),
        ))
    });
    finish(&p, "qr_scan", result)
}
