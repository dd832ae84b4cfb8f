//! Turning HTTP responses into typed results or errors that name the
//! endpoint, the status and the OAuth error.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::{Endpoint, Error};

/// An HTTP response as the core sees it.
pub type HttpResponse = http::Response<Vec<u8>>;

/// The longest piece of a response body quoted in an error.
const SNIPPET_CHARS: usize = 200;

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Parses a 2xx JSON body as `T`; any other status becomes an [`Error`].
pub fn parse_json<T: DeserializeOwned>(
    endpoint: &Endpoint,
    response: &HttpResponse,
) -> Result<T, Error> {
    let status = response.status();
    if !status.is_success() {
        return Err(error_from_response(endpoint, response));
    }
    serde_json::from_slice(response.body()).map_err(|e| {
        let reason = if response.body().is_empty() {
            "empty body where JSON was expected".to_string()
        } else {
            format!("{e} (body starts: {})", snippet(response.body()))
        };
        invalid_response(endpoint, response, reason)
    })
}

/// [`Error::InvalidResponse`] for `response` from `endpoint`: a 2xx answer
/// whose body is not what the protocol says.
pub(crate) fn invalid_response(
    endpoint: &Endpoint,
    response: &HttpResponse,
    reason: impl Into<String>,
) -> Error {
    Error::InvalidResponse {
        endpoint: endpoint.to_string(),
        status: response.status().as_u16(),
        reason: reason.into(),
    }
}

/// The error for a non-2xx response: [`Error::OAuth`] when the body is an
/// OAuth error object, [`Error::HttpStatus`] otherwise.
pub fn error_from_response(endpoint: &Endpoint, response: &HttpResponse) -> Error {
    let status = response.status().as_u16();
    match serde_json::from_slice::<OAuthErrorBody>(response.body()) {
        Ok(body) => Error::OAuth {
            endpoint: endpoint.to_string(),
            status,
            error: body.error,
            description: body.error_description,
        },
        Err(_) => Error::HttpStatus {
            endpoint: endpoint.to_string(),
            status,
            body: snippet(response.body()),
        },
    }
}

/// The start of a body, on one line, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = one_line.chars().take(SNIPPET_CHARS).collect();
    if one_line.chars().count() > SNIPPET_CHARS {
        out.push('…');
    }
    out
}
