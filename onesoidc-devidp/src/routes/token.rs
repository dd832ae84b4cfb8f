//! `POST /oidc/token`: client_credentials (§4), the CIBA grant (§5) and
//! refresh_token with rotation (§6).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use super::{Shared, finish, json_no_store};
use crate::activity::{TokenEvent, TokenOutcome, shorten, shorten_jkt};
use crate::ciba::CIBA_GRANT_TYPE;
use crate::client_auth::authenticate;
use crate::dpop::DPOP_NONCE;
use crate::error::{ApiError, code};
use crate::form::{Form, check_resource};
use crate::state::{Provider, unix_now_ms};
use crate::tokens::{Grant, TokenResponse};

/// What a request asked for, as far as it was read: for the console's log.
#[derive(Default)]
struct Asked {
    grant_type: Option<String>,
    client_id: Option<String>,
}

pub(super) async fn token(
    axum::extract::State(p): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut asked = Asked::default();
    let result = handle(&p, &headers, body, &mut asked);
    record(&p, asked, &result);
    let result = result.map(|tokens| json_no_store(StatusCode::OK, &tokens));
    let mut response = finish(&p, "token", result);
    if let Some(value) = p.dpop_nonce().and_then(|n| HeaderValue::from_str(&n).ok()) {
        response.headers_mut().insert(DPOP_NONCE, value);
    }
    response
}

/// Adds the request to the console's log: kinds and lifetimes only.
fn record(p: &Provider, asked: Asked, result: &Result<TokenResponse, ApiError>) {
    let outcome = match result {
        Ok(tokens) => TokenOutcome::Issued {
            expires_in: tokens.expires_in,
            refresh_token: tokens.refresh_token.is_some(),
            id_token: tokens.id_token.is_some(),
            dpop_jkt: tokens.jkt.as_deref().map(shorten_jkt),
        },
        Err(e) => TokenOutcome::Refused {
            error: e.error,
            description: shorten(&e.description),
        },
    };
    p.lock().token_log.push(TokenEvent {
        at_ms: unix_now_ms(),
        grant_type: asked.grant_type,
        client_id: asked.client_id,
        outcome,
        repeats: 1,
    });
    p.changed();
}

fn handle(
    p: &Provider,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    asked: &mut Asked,
) -> Result<TokenResponse, ApiError> {
    let form = Form::parse(headers, body)?;
    let grant_type = form.get("grant_type");
    asked.grant_type = grant_type.as_ref().ok().copied().flatten().map(shorten);
    asked.client_id = form.get("client_id").ok().flatten().map(shorten);
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
    let jkt = p.token_request_binding(headers)?;
    let jkt = jkt.as_deref();
    let tokens = match grant_type? {
        None => return Err(ApiError::invalid_request("`grant_type` is missing")),
        Some("client_credentials") => {
            let resource = single_resource(&form)?;
            p.check_dpop_required(resource.as_deref(), jkt.is_some())?;
            let grant = Grant {
                sub: device.client_id.clone(),
                client_id: device.client_id.clone(),
                scope: form.get("scope")?.map(str::to_string),
                resource,
                grant_id: None,
                auth_time: None,
            };
            p.issue_tokens(&grant, false, false, jkt)?
        }
        Some(CIBA_GRANT_TYPE) => {
            p.poll_ciba(&device.client_id, form.require("auth_req_id")?, jkt)?
        }
        Some("refresh_token") => p.refresh(
            &device.client_id,
            form.require("refresh_token")?,
            form.get("scope")?,
            jkt,
        )?,
        Some(other) => {
            return Err(ApiError::bad_request(
                code::UNSUPPORTED_GRANT_TYPE,
                format!("grant_type {other:?} is not supported"),
            ));
        }
    };
    Ok(tokens)
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
