//! `GET /oidc/.well-known/applications` (PROTOCOL §9).

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::{Shared, device_bearer, finish, json_no_store};

pub(super) async fn list(axum::extract::State(p): Shared, headers: HeaderMap) -> Response {
    let result = device_bearer(&p, &headers).map(|_| {
        json_no_store(
            StatusCode::OK,
            &json!({"applications": p.config.applications}),
        )
    });
    finish(&p, "applications", result)
}
