//! Reading request bodies and headers without trusting them: form bodies
//! (duplicate parameters are errors, RFC 6749 §3.2), JSON bodies, bearer tokens.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, code};

/// Largest request body any route accepts.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// Turns a body that could not be read (too large, connection error) into a JSON error.
pub(crate) fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        let status = if status == StatusCode::PAYLOAD_TOO_LARGE {
            status
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(
            status,
            code::INVALID_REQUEST,
            format!("cannot read the request body: {}", rejection.body_text()),
        )
    })
}

/// An `application/x-www-form-urlencoded` body.
#[derive(Debug, Default)]
pub(crate) struct Form {
    fields: HashMap<String, Vec<String>>,
}

impl Form {
    /// Parses the body, requiring the form content type.
    pub fn parse(
        headers: &HeaderMap,
        raw: Result<Bytes, BytesRejection>,
    ) -> Result<Form, ApiError> {
        let raw = body(raw)?;
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(ApiError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let mut fields: HashMap<String, Vec<String>> = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(&raw) {
            fields
                .entry(name.into_owned())
                .or_default()
                .push(value.into_owned());
        }
        Ok(Form { fields })
    }

    /// A parameter; empty values count as absent (RFC 6749 §3.1), and a
    /// parameter sent twice is `invalid_request`.
    pub fn get(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let values: Vec<&str> = self
            .fields
            .get(name)
            .map(|v| {
                v.iter()
                    .map(String::as_str)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        match values.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => Err(ApiError::invalid_request(format!(
                "parameter `{name}` is included more than once"
            ))),
        }
    }

    /// A required parameter.
    pub fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)?.ok_or_else(|| {
            ApiError::invalid_request(format!("the required parameter `{name}` is missing"))
        })
    }

    /// The names of all parameters sent.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }

    /// How many values `name` has (for multi-valued parameters like `resource`).
    pub fn count(&self, name: &str) -> usize {
        self.fields.get(name).map_or(0, Vec::len)
    }
}

/// Parses a JSON body into `T`; an empty body parses as `{}` when `empty_ok`.
pub(crate) fn json<T: DeserializeOwned>(
    raw: Result<Bytes, BytesRejection>,
    empty_ok: bool,
) -> Result<T, ApiError> {
    let raw = body(raw)?;
    let text: &[u8] = if raw.iter().all(u8::is_ascii_whitespace) && empty_ok {
        b"{}"
    } else {
        &raw
    };
    serde_json::from_slice(text)
        .map_err(|e| ApiError::invalid_request(format!("the body is not the expected JSON: {e}")))
}

/// The token of an `Authorization: Bearer <token>` (or `DPoP <token>`) header.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<(TokenScheme, &str), ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::invalid_token("the Authorization: Bearer header is missing"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::invalid_token("the Authorization header is not ASCII"))?;
    let (scheme, token) = match value.split_once(' ') {
        Some((scheme, token)) if !token.trim().is_empty() => (scheme, token.trim()),
        _ => {
            return Err(ApiError::invalid_token(
                "the Authorization header is not `Bearer <token>` (or `DPoP <token>`)",
            ));
        }
    };
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok((TokenScheme::Bearer, token))
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Ok((TokenScheme::Dpop, token))
    } else {
        Err(ApiError::invalid_token(
            "the Authorization header is not `Bearer <token>` (or `DPoP <token>`)",
        ))
    }
}

/// How an access token was sent: `Authorization: Bearer` or `DPoP` (RFC 9449 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenScheme {
    Bearer,
    Dpop,
}

/// A resource indicator (RFC 8707): an absolute URI without a fragment.
pub(crate) fn check_resource(resource: &str) -> Result<(), ApiError> {
    match url::Url::parse(resource) {
        Ok(url) if url.fragment().is_none() => Ok(()),
        _ => Err(ApiError::bad_request(
            code::INVALID_TARGET,
            format!("resource {resource:?} is not an absolute URI without a fragment"),
        )),
    }
}
