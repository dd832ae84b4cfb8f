//! `POST /oidc/backchannel`: CIBA authentication requests (PROTOCOL §5).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{Shared, finish, json_no_store};
use crate::ciba::BackchannelResponse;
use crate::client_auth::{CLIENT_AUTH_FIELDS, authenticate};
use crate::error::ApiError;
use crate::form::Form;
use crate::request_object;
use crate::state::{Provider, ceil_secs};

pub(super) async fn backchannel(
    axum::extract::State(p): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    p.lock().stats.backchannel_requests += 1;
    let result = handle(&p, &headers, body);
    finish(&p, "backchannel", result)
}

fn handle(
    p: &std::sync::Arc<Provider>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let form = Form::parse(headers, body)?;
    let device = authenticate(p, &form, &p.backchannel_endpoint)?;
    let request = form.require("request")?;
    if let Some(name) = form
        .names()
        .find(|n| *n != "request" && !CLIENT_AUTH_FIELDS.contains(n))
    {
        return Err(ApiError::invalid_request(format!(
            "parameter `{name}` must be inside the signed request object"
        )));
    }
    let auth = request_object::validate(p, &device, request)?;
    let response = BackchannelResponse {
        auth_req_id: auth.info.auth_req_id.clone(),
        expires_in: ceil_secs(auth.expires_in),
        interval: ceil_secs(p.config.ciba_interval),
    };
    p.create_ciba(auth.info, auth.expires_in);
    Ok(json_no_store(StatusCode::OK, &response))
}
