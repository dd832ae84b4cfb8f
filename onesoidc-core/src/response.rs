//! Turning HTTP responses into typed results or errors that name the
//! endpoint, the status and the OAuth error.
//!
//! A response is hostile input: its body may hold a token (the token,
//! backchannel, introspection and registration endpoints send them), or
//! be a proxy's echo of what we sent (a client assertion, a refresh token).
//! So an error about a response names the endpoint, the status, the content
//! type, the length, and the field or the parser's position; it never
//! quotes the body, except the start of a public document's (discovery,
//! JWKS), cut before anything that looks like a token. An OAuth
//! `error_description` is kept (the provider wrote it for us) but cut the
//! same way; callers cut it also before the values they sent
//! ([`Error::forget_values`]).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{Endpoint, Error};

/// An HTTP response as the core sees it.
pub type HttpResponse = http::Response<Vec<u8>>;

/// The longest piece of a public document quoted in an error.
const SNIPPET_CHARS: usize = 200;
/// The longest OAuth `error_description` kept.
const DESCRIPTION_CHARS: usize = 300;
/// The longest `Content-Type` named in an error.
const CONTENT_TYPE_CHARS: usize = 100;
/// A run of base64url characters at least this long is taken for a token.
const TOKEN_LIKE_CHARS: usize = 24;

/// The longest wait a provider can ask for with `Retry-After`; a longer
/// one is taken as this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Parses a 2xx JSON body as `T`; any other status becomes an [`Error`].
/// A body that does not parse names the parser's position and the error's
/// category, never the body's content.
pub fn parse_json<T: DeserializeOwned>(
    endpoint: &Endpoint,
    response: &HttpResponse,
) -> Result<T, Error> {
    if !response.status().is_success() {
        return Err(error_from_response(endpoint, response));
    }
    serde_json::from_slice(response.body())
        .map_err(|e| invalid_response(endpoint, response, describe_json_error(&e)))
}

/// Like [`parse_json`], for a public document (discovery, JWKS): an error
/// status quotes the start of its body ([`error_from_public_response`]).
pub fn parse_public_json<T: DeserializeOwned>(
    endpoint: &Endpoint,
    response: &HttpResponse,
) -> Result<T, Error> {
    if !response.status().is_success() {
        return Err(error_from_public_response(endpoint, response));
    }
    parse_json(endpoint, response)
}

/// What serde_json says about `e`, without the values it may quote
/// (`invalid type: string "<a token>"`): the category, and for a missing
/// field the field's name (which is ours).
fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = format!("line {}, column {}", e.line(), e.column());
    if let Some(member) = crate::json::duplicate_member(e) {
        return format!(
            "the object names member {member} twice (at {at}); refused, as another parser could read the other value"
        );
    }
    match e.classify() {
        Category::Eof => format!("the JSON ends early (truncated?) at {at}"),
        Category::Syntax => format!("not valid JSON: syntax error at {at}"),
        Category::Data => {
            let message = e.to_string();
            match message.strip_prefix("missing field ") {
                Some(rest) => format!(
                    "missing field {}",
                    rest.split(" at line").next().unwrap_or(rest)
                ),
                None => format!("a value has the wrong type or is not allowed, at {at}"),
            }
        }
        Category::Io => format!("cannot read the body at {at}"),
    }
}

/// A 2xx JSON object, read field by field with errors that name the field
/// and what it is, never its value.
pub(crate) struct Json<'a> {
    endpoint: &'a Endpoint,
    response: &'a HttpResponse,
    map: Map<String, Value>,
}

impl<'a> Json<'a> {
    /// The object of a 2xx answer; any other status is [`error_from_response`].
    /// An object that names a member twice (at any depth) is refused, the
    /// error naming the member.
    pub(crate) fn parse(endpoint: &'a Endpoint, response: &'a HttpResponse) -> Result<Self, Error> {
        if !response.status().is_success() {
            return Err(error_from_response(endpoint, response));
        }
        match crate::json::from_slice(response.body()) {
            Ok(Value::Object(map)) => Ok(Json {
                endpoint,
                response,
                map,
            }),
            Ok(other) => Err(invalid_response(
                endpoint,
                response,
                format!("the body is JSON {}, expected an object", kind(&other)),
            )),
            Err(e) if response.body().is_empty() => Err(invalid_response(
                endpoint,
                response,
                format!(
                    "empty body where JSON was expected ({})",
                    describe_json_error(&e)
                ),
            )),
            Err(e) => Err(invalid_response(
                endpoint,
                response,
                describe_json_error(&e),
            )),
        }
    }

    /// [`Error::InvalidResponse`] about this response.
    pub(crate) fn invalid(&self, reason: impl Into<String>) -> Error {
        invalid_response(self.endpoint, self.response, reason)
    }

    fn wrong_type(&self, field: &str, value: &Value, expected: &str) -> Error {
        self.invalid(format!("`{field}` is {}, expected {expected}", kind(value)))
    }

    /// A string field; absent or `null` is `None`.
    pub(crate) fn str(&self, field: &str) -> Result<Option<&str>, Error> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(field, other, "a string")),
        }
    }

    /// A string field that must be there and not be empty.
    pub(crate) fn required_str(&self, field: &str) -> Result<&str, Error> {
        match self.str(field)? {
            Some(s) if !s.is_empty() => Ok(s),
            Some(_) => Err(self.invalid(format!("`{field}` is empty"))),
            None => Err(self.invalid(format!("`{field}` is missing"))),
        }
    }

    /// A boolean field.
    pub(crate) fn bool(&self, field: &str) -> Result<Option<bool>, Error> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong_type(field, other, "true or false")),
        }
    }

    /// A non-negative whole number field (seconds since the epoch, say).
    pub(crate) fn u64(&self, field: &str) -> Result<Option<u64>, Error> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
                self.invalid(format!("`{field}` is not a whole number of 0 or more"))
            }),
            Some(other) => Err(self.wrong_type(field, other, "a number")),
        }
    }

    /// A duration in seconds: a number (whole or not) of 0 or more, or such
    /// a number as a string; longer than `cap` is taken as `cap`.
    pub(crate) fn seconds(&self, field: &str, cap: Duration) -> Result<Option<Duration>, Error> {
        let secs = match self.map.get(field) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            Some(other) => return Err(self.wrong_type(field, other, "a number of seconds")),
        };
        match secs {
            Some(secs) if secs.is_finite() && secs >= 0.0 => Ok(Some(
                Duration::try_from_secs_f64(secs).unwrap_or(cap).min(cap),
            )),
            _ => Err(self.invalid(format!("`{field}` is not a number of seconds of 0 or more"))),
        }
    }

    /// `cnf.jkt` (RFC 9449 §6): absent when there is no `cnf` or it has no
    /// `jkt`; a `cnf` that is not an object, or a `jkt` that is not a
    /// string, is an error (a binding that cannot be read is never dropped).
    pub(crate) fn cnf_jkt(&self) -> Result<Option<String>, Error> {
        match self.map.get("cnf") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(cnf)) => match cnf.get("jkt") {
                None => Ok(None),
                Some(Value::String(jkt)) => Ok(Some(jkt.clone())),
                Some(other) => Err(self.wrong_type("cnf.jkt", other, "a string")),
            },
            Some(other) => Err(self.wrong_type("cnf", other, "an object")),
        }
    }

    /// A string or a list of strings (an `aud`); absent is empty.
    pub(crate) fn strings(&self, field: &str) -> Result<Vec<String>, Error> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.wrong_type(&format!("{field}[]"), other, "a string")),
                })
                .collect(),
            Some(other) => Err(self.wrong_type(field, other, "a string or a list of strings")),
        }
    }
}

/// What a JSON value is, without saying what it holds.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// [`Error::InvalidResponse`] for `response` from `endpoint`: a 2xx answer
/// whose body is not what the protocol says. `reason` must not quote the body.
pub(crate) fn invalid_response(
    endpoint: &Endpoint,
    response: &HttpResponse,
    reason: impl Into<String>,
) -> Error {
    Error::InvalidResponse {
        endpoint: endpoint.to_string(),
        status: response.status().as_u16(),
        content_type: content_type(response),
        length: response.body().len(),
        reason: reason.into(),
    }
}

/// The error for a non-2xx response: [`Error::OAuth`] when the body is an
/// OAuth error object, [`Error::HttpStatus`] (without the body) otherwise.
/// Either carries the `Retry-After` the provider sent.
pub fn error_from_response(endpoint: &Endpoint, response: &HttpResponse) -> Error {
    error_with_body(endpoint, response, false)
}

/// Like [`error_from_response`], for a public document (discovery, JWKS):
/// a body that is not an OAuth error is quoted (its start, on one line, cut
/// before anything that looks like a token).
pub fn error_from_public_response(endpoint: &Endpoint, response: &HttpResponse) -> Error {
    error_with_body(endpoint, response, true)
}

fn error_with_body(endpoint: &Endpoint, response: &HttpResponse, quote: bool) -> Error {
    let status = response.status().as_u16();
    let retry_after = retry_after(response);
    if let Some((error, description)) = oauth_error_body(response.body()) {
        return Error::OAuth {
            endpoint: endpoint.to_string(),
            status,
            error,
            description,
            retry_after,
        };
    }
    Error::HttpStatus {
        endpoint: endpoint.to_string(),
        status,
        content_type: content_type(response),
        length: response.body().len(),
        body: quote.then(|| snippet(response.body())),
        retry_after,
    }
}

/// `error` and `error_description` of an RFC 6749 §5.2 body; `None` when
/// the body is not one (an `error` that is not a plausible code, say).
fn oauth_error_body(body: &[u8]) -> Option<(String, Option<String>)> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    let error = map.get("error")?.as_str()?;
    // RFC 6749 §5.2 allows printable ASCII; every registered code is a
    // short lower-case word (`invalid_grant`). Anything else (a token, an
    // echoed form) is not trusted as a code, and never shown.
    let plausible = !error.is_empty()
        && error.len() <= 64
        && error.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        });
    if !plausible {
        return None;
    }
    let description = map
        .get("error_description")
        .and_then(Value::as_str)
        .map(|d| one_line(cut_before_secrets(d), DESCRIPTION_CHARS))
        .filter(|d| !d.is_empty());
    Some((error.to_string(), description))
}

/// The `Content-Type` header, printable and short.
fn content_type(response: &HttpResponse) -> Option<String> {
    let value = response
        .headers()
        .get(http::header::CONTENT_TYPE)?
        .to_str()
        .ok()?;
    let clean: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(CONTENT_TYPE_CHARS)
        .collect();
    (!clean.is_empty()).then_some(clean)
}

/// `Retry-After` (RFC 9110 §10.2.3): seconds, or an HTTP date taken
/// relative to the response's own `Date` (so no local clock is read and
/// clock skew does not matter); at most [`MAX_RETRY_AFTER`].
///
/// ```
/// let r = http::Response::builder().status(503)
///     .header("retry-after", "120").body(Vec::new()).unwrap();
/// assert_eq!(onesoidc_core::response::retry_after(&r), Some(std::time::Duration::from_secs(120)));
/// let r = http::Response::builder().status(429)
///     .header("date", "Sun, 06 Nov 1994 08:49:37 GMT")
///     .header("retry-after", "Sun, 06 Nov 1994 08:50:07 GMT").body(Vec::new()).unwrap();
/// assert_eq!(onesoidc_core::response::retry_after(&r), Some(std::time::Duration::from_secs(30)));
/// ```
pub fn retry_after(response: &HttpResponse) -> Option<Duration> {
    let value = response
        .headers()
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            let date = response.headers().get(http::header::DATE)?.to_str().ok()?;
            let now = httpdate::parse_http_date(date.trim()).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// The start of a body, on one line, cut before anything that looks like a
/// token, for errors about public documents.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    one_line(cut_before_secrets(&text), SNIPPET_CHARS)
}

/// `text` on one line (whitespace runs become one space), at most `max`
/// characters (then `…`).
fn one_line(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = line.chars().take(max).collect();
    if line.chars().count() > max {
        out.push('…');
    }
    out
}

/// `text` up to (not including) the first thing that looks like a token: a
/// JWT (`eyJ` followed by base64url), or a run of 24 or more base64url
/// characters mixing at least two of lower case, upper case and digits (an
/// opaque token, a refresh token, a signature; not a `snake_case_word`).
///
/// ```
/// use onesoidc_core::response::cut_before_secrets;
/// assert_eq!(cut_before_secrets("bad grant: refresh_token=Zk2xPq9Lm3Vt7Rw1Ny8Ha5Jc0Ue6Gs4B"), "bad grant: refresh_token=");
/// assert_eq!(cut_before_secrets("assertion eyJhbGciOi.x.y expired"), "assertion ");
/// assert_eq!(cut_before_secrets("client_id is not registered"), "client_id is not registered");
/// assert_eq!(cut_before_secrets("invalid_authorization_details_here"), "invalid_authorization_details_here");
/// ```
pub fn cut_before_secrets(text: &str) -> &str {
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_');
    let token_like = |run: &str| {
        if run.starts_with("eyJ") {
            return true;
        }
        let classes = [
            run.bytes().any(|b| b.is_ascii_lowercase()),
            run.bytes().any(|b| b.is_ascii_uppercase()),
            run.bytes().any(|b| b.is_ascii_digit()),
        ];
        run.len() >= TOKEN_LIKE_CHARS && classes.iter().filter(|c| **c).count() >= 2
    };
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (is_b64(c) && i < text.len(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if token_like(&text[s..i]) {
                    return &text[..s];
                }
                start = None;
            }
            _ => {}
        }
    }
    text
}

/// `text` up to the first occurrence of any of `values` (8 characters or
/// longer: shorter ones, like `openid`, are no secret and would cut
/// innocent text).
pub(crate) fn cut_before_values<'t>(text: &'t str, values: &[&str]) -> &'t str {
    let cut = values
        .iter()
        .filter(|v| v.len() >= 8)
        .filter_map(|v| text.find(v))
        .min();
    match cut {
        Some(at) => &text[..at],
        None => text,
    }
}
