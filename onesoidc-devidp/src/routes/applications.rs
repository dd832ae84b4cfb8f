//! `GET /oidc/.well-known/applications` (PROTOCOL §9).

use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::json;

use super::{Shared, device_bearer, finish, json_no_store};

pub(super) async fn list(axum::extract::State(p): Shared, request: Parts) -> Response {
    let result = device_bearer(&p, &request).map(|_| {
        json_no_store(
            StatusCode::OK,
            &json!({"applications": p.config.applications}),
        )
    });
    finish(&p, "applications", result)
}
