//! `POST /oidc/token/introspection` (RFC 7662) and
//! `POST /oidc/token/revocation` (RFC 7009), PROTOCOL §7.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{Shared, finish, json_no_store, no_store};
use crate::client_auth::authenticate;
use crate::error::ApiError;
use crate::form::Form;
use crate::state::Provider;

pub(super) async fn introspect(
    axum::extract::State(p): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    p.lock().stats.introspection_requests += 1;
    let result = handle_introspect(&p, &headers, body);
    finish(&p, "introspection", result)
}

fn handle_introspect(
    p: &Provider,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let form = Form::parse(headers, body)?;
    authenticate(p, &form, &p.introspection_endpoint)?;
    let token = form.require("token")?;
    form.get("token_type_hint")?;
    Ok(json_no_store(StatusCode::OK, &p.introspect(token)))
}

pub(super) async fn revoke(
    axum::extract::State(p): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    p.lock().stats.revocation_requests += 1;
    let result = handle_revoke(&p, &headers, body);
    finish(&p, "revocation", result)
}

fn handle_revoke(
    p: &Provider,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let form = Form::parse(headers, body)?;
    let device = authenticate(p, &form, &p.revocation_endpoint)?;
    let token = form.require("token")?;
    form.get("token_type_hint")?;
    let revoked = p.revoke(&device.client_id, token);
    tracing::debug!(revoked, "revocation");
    let mut response = StatusCode::OK.into_response();
    no_store(&mut response);
    Ok(response)
}
