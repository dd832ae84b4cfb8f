//! Building HTTP requests (`http::Request<Vec<u8>>`): no I/O here.

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request};

use crate::Endpoint;

/// An HTTP request as the core builds it.
pub type HttpRequest = Request<Vec<u8>>;

fn builder(method: Method, url: &Endpoint, bearer: Option<&str>) -> http::request::Builder {
    let mut b = Request::builder()
        .method(method)
        .uri(url.as_str())
        .header(ACCEPT, "application/json");
    if let Some(token) = bearer {
        b = b.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    b
}

/// Builds a request, or an [`crate::Error::InvalidUrl`] naming the URL.
fn finish(
    b: http::request::Builder,
    url: &Endpoint,
    body: Vec<u8>,
) -> Result<HttpRequest, crate::Error> {
    b.body(body).map_err(|e| crate::Error::InvalidUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

/// `GET url`, with a bearer token when given.
pub fn get(url: &Endpoint, bearer: Option<&str>) -> Result<HttpRequest, crate::Error> {
    finish(builder(Method::GET, url, bearer), url, Vec::new())
}

/// `POST url` with a JSON body and a bearer token.
pub fn post_json(
    url: &Endpoint,
    bearer: Option<&str>,
    body: &serde_json::Value,
) -> Result<HttpRequest, crate::Error> {
    let b = builder(Method::POST, url, bearer).header(CONTENT_TYPE, "application/json");
    finish(b, url, body.to_string().into_bytes())
}

/// `POST url` with an `application/x-www-form-urlencoded` body.
///
/// ```
/// let token = onesoidc_core::Endpoint::from("https://idp/oidc/token");
/// let req = onesoidc_core::request::post_form(&token, &[("grant_type", "client_credentials")]).unwrap();
/// assert_eq!(req.body(), b"grant_type=client_credentials");
/// ```
pub fn post_form(url: &Endpoint, fields: &[(&str, &str)]) -> Result<HttpRequest, crate::Error> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let b =
        builder(Method::POST, url, None).header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    finish(b, url, body.into_bytes())
}
