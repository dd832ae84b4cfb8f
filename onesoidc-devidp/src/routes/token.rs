//! `POST /oidc/token`: client_credentials (§4), the CIBA grant (§5) and
//! refresh_token with rotation (§6).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{Shared, finish, json_no_store};
use crate::ciba::CIBA_GRANT_TYPE;
use crate::client_auth::authenticate;
use crate::error::{ApiError, code};
use crate::form::{Form, check_resource};
use crate::state::Provider;
use crate::tokens::Grant;

pub(super) async fn token(
    axum::extract::State(p): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = handle(&p, &headers, body);
    finish(&p, "token", result)
}

fn handle(
    p: &Provider,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let form = Form::parse(headers, body)?;
    let grant_type = form.get("grant_type");
    {
        let mut store = p.lock();
        let counts = &mut store.stats.token_requests;
        match grant_type.as_ref().ok().copied().flatten() {
            Some("client_credentials") => counts.client_credentials += 1,
            Some(CIBA_GRANT_TYPE) => counts.ciba += 1,
            Some("refresh_token") => counts.refresh_token += 1,
            _ => counts.other += 1,
        }
    }
    let device = authenticate(p, &form, &p.token_endpoint)?;
    let tokens = match grant_type? {
        None => return Err(ApiError::invalid_request("`grant_type` is missing")),
        Some("client_credentials") => {
            let resource = single_resource(&form)?;
            let grant = Grant {
                sub: device.client_id.clone(),
                client_id: device.client_id.clone(),
                scope: form.get("scope")?.map(str::to_string),
                resource,
                grant_id: None,
                auth_time: None,
            };
            p.issue_tokens(&grant, false, false)?
        }
        Some(CIBA_GRANT_TYPE) => p.poll_ciba(&device.client_id, form.require("auth_req_id")?)?,
        Some("refresh_token") => p.refresh(
            &device.client_id,
            form.require("refresh_token")?,
            form.get("scope")?,
        )?,
        Some(other) => {
            return Err(ApiError::bad_request(
                code::UNSUPPORTED_GRANT_TYPE,
                format!("grant_type {other:?} is not supported"),
            ));
        }
    };
    Ok(json_no_store(StatusCode::OK, &tokens))
}

fn single_resource(form: &Form) -> Result<Option<String>, ApiError> {
    if form.count("resource") > 1 {
        return Err(ApiError::bad_request(
            code::INVALID_TARGET,
            "only one `resource` is supported",
        ));
    }
    let resource = form.get("resource")?;
    if let Some(r) = resource {
        check_resource(r)?;
    }
    Ok(resource.map(str::to_string))
}
