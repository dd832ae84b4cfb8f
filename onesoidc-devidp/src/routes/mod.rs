//! The HTTP surface: OnesID's routes (PROTOCOL §2–§10), the control
//! surface under `/control/` and the console (`/`, `/console/`, and `GET`
//! of a QR code's `cb_url`); the last two are not part of OnesID.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use crate::error::{ApiError, code};
use crate::form::{BODY_LIMIT, TokenScheme, bearer};
use crate::state::Provider;

mod applications;
mod backchannel;
mod control;
mod discovery;
mod introspection;
mod qr;
mod registration;
mod token;

/// The shared state handlers receive.
pub(crate) type Shared = axum::extract::State<Arc<Provider>>;

/// Every route of the provider.
pub(crate) fn router(provider: Arc<Provider>) -> Router {
    Router::new()
        .route(
            "/oidc/.well-known/openid-configuration",
            get(discovery::configuration),
        )
        .route("/oidc/jwks", get(discovery::jwks))
        .route("/oidc/token", post(token::token))
        .route("/oidc/token/introspection", post(introspection::introspect))
        .route("/oidc/token/revocation", post(introspection::revoke))
        .route("/oidc/backchannel", post(backchannel::backchannel))
        .route("/oidc/qr/sessions", post(qr::create))
        .route(
            "/oidc/qr/sessions/{session_id}",
            get(qr::status).delete(qr::cancel),
        )
        .route(
            "/oidc/qr/sessions/{session_id}/scan",
            get(crate::console::phone_page).post(qr::scan),
        )
        .route("/oidc/.well-known/applications", get(applications::list))
        .route("/devices/registration", post(registration::create))
        .route(
            "/devices/registration/status/{verification_code}",
            get(registration::status),
        )
        .nest("/control", control::router(provider.clone()))
        .merge(crate::console::router())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(provider)
}

async fn not_found() -> Response {
    ApiError::not_found("no such route").into_response()
}

/// A JSON response with `Cache-Control: no-store`.
pub(crate) fn json_no_store(status: StatusCode, body: &impl Serialize) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    no_store(&mut response);
    response
}

/// `Cache-Control: no-store` and `Pragma: no-cache`, as OAuth wants on
/// every answer that carries or refuses a token.
pub(crate) fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Logs the outcome of a OnesID route and counts error responses.
pub(crate) fn finish(
    provider: &Provider,
    route: &'static str,
    result: Result<Response, ApiError>,
) -> Response {
    match result {
        Ok(response) => {
            tracing::debug!(route, status = response.status().as_u16(), "request served");
            response
        }
        Err(e) => {
            provider.lock().count_rejection(e.error);
            tracing::debug!(
                route,
                status = e.status.as_u16(),
                error = e.error,
                description = %e.description,
                "request rejected"
            );
            e.into_response()
        }
    }
}

/// The access token record of the request's access token, if it is
/// active. A DPoP-bound token must come as `Authorization: DPoP` with a
/// proof of its key (RFC 9449 §7); a bound token sent as `Bearer` is refused.
fn active_bearer(
    provider: &Provider,
    request: &Parts,
) -> Result<crate::tokens::AccessRecord, ApiError> {
    let (scheme, token) = bearer(&request.headers)?;
    let record = provider.active_access_token(token).ok_or_else(|| {
        ApiError::invalid_token("the bearer token is not an active access token of this provider")
    })?;
    match (scheme, record.jkt.as_deref()) {
        (TokenScheme::Bearer, None) => {}
        (TokenScheme::Bearer, Some(_)) => {
            return Err(ApiError::dpop_unauthorized(
                code::INVALID_TOKEN,
                "the access token is DPoP-bound: send it as `Authorization: DPoP <token>` with a `DPoP` proof of its key, not as Bearer",
            ));
        }
        (TokenScheme::Dpop, None) => {
            return Err(ApiError::invalid_token(
                "the access token is not DPoP-bound: send it as `Authorization: Bearer <token>`",
            ));
        }
        (TokenScheme::Dpop, Some(jkt)) => {
            provider.check_resource_proof(request, token, jkt)?;
        }
    }
    Ok(record)
}

/// The client id of the device whose access token is the bearer token.
pub(crate) fn device_bearer(provider: &Provider, request: &Parts) -> Result<String, ApiError> {
    let record = active_bearer(provider, request)?;
    if record.sub != record.client_id || provider.device(&record.client_id).is_none() {
        return Err(ApiError::invalid_token(
            "the bearer token is not a device access token (client_credentials)",
        ));
    }
    Ok(record.client_id)
}

/// The user whose access token is the bearer token.
pub(crate) fn user_bearer(provider: &Provider, request: &Parts) -> Result<String, ApiError> {
    let record = active_bearer(provider, request)?;
    if !provider.is_user(&record.sub) {
        return Err(ApiError::invalid_token(
            "the bearer token was not issued to a user",
        ));
    }
    Ok(record.sub)
}
