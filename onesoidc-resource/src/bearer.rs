//! The access token of a request: from its `Authorization: Bearer` header
//! only (RFC 6750 §2.1). A token in the query string (§2.3) is refused, so
//! it never lands in access logs as an accepted practice.

use http::{HeaderMap, Uri, header};

use crate::Refusal;

/// The bearer token of a request with `headers` and `uri`.
///
/// ```
/// use http::{HeaderMap, HeaderValue, Uri};
/// use onesoidc_resource::{Refusal, bearer_token};
/// let mut headers = HeaderMap::new();
/// let uri: Uri = "/me".parse().unwrap();
/// assert!(matches!(bearer_token(&headers, &uri), Err(Refusal::MissingToken)));
/// headers.insert("authorization", HeaderValue::from_static("Bearer mF_9.B5f-4.1JqM"));
/// assert_eq!(bearer_token(&headers, &uri).unwrap(), "mF_9.B5f-4.1JqM");
/// let leaky: Uri = "/me?access_token=mF_9".parse().unwrap();
/// assert!(matches!(bearer_token(&headers, &leaky), Err(Refusal::InvalidRequest(_))));
/// ```
pub fn bearer_token<'a>(headers: &'a HeaderMap, uri: &Uri) -> Result<&'a str, Refusal> {
    match access_token(headers, uri)? {
        (TokenScheme::Bearer, token) => Ok(token),
        (TokenScheme::Dpop, _) => Err(Refusal::MissingToken),
    }
}

/// How the request presents its access token (`Authorization: <scheme> <token>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScheme {
    /// `Bearer` (RFC 6750).
    Bearer,
    /// `DPoP` (RFC 9449 §7.1): the request carries a `DPoP` proof header.
    Dpop,
}

/// The access token of a request and its scheme, `Bearer` or `DPoP`; the
/// same rules as [`bearer_token`] otherwise.
///
/// ```
/// use http::{HeaderMap, HeaderValue, Uri};
/// use onesoidc_resource::{TokenScheme, access_token};
/// let mut headers = HeaderMap::new();
/// headers.insert("authorization", HeaderValue::from_static("DPoP mF_9.B5f-4.1JqM"));
/// let uri: Uri = "/me".parse().unwrap();
/// assert_eq!(access_token(&headers, &uri).unwrap(), (TokenScheme::Dpop, "mF_9.B5f-4.1JqM"));
/// ```
pub fn access_token<'a>(
    headers: &'a HeaderMap,
    uri: &Uri,
) -> Result<(TokenScheme, &'a str), Refusal> {
    let in_query = uri.query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some("access_token"))
    });
    if in_query {
        return Err(Refusal::InvalidRequest(
            "a token in the query string (`access_token`); send it in the Authorization header",
        ));
    }
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return match headers.contains_key(header::AUTHORIZATION) {
            true => Err(Refusal::InvalidRequest(
                "more than one Authorization header",
            )),
            false => Err(Refusal::MissingToken),
        };
    };
    let value = value
        .to_str()
        .map_err(|_| Refusal::InvalidRequest("an Authorization header that is not ASCII"))?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return match value.eq_ignore_ascii_case("bearer") || value.eq_ignore_ascii_case("dpop") {
            true => Err(Refusal::InvalidRequest(
                "`Authorization: Bearer` without a token",
            )),
            false => Err(Refusal::MissingToken),
        };
    };
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        TokenScheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        TokenScheme::Dpop
    } else {
        return Err(Refusal::MissingToken);
    };
    if !is_b64token(token) {
        return Err(Refusal::InvalidRequest(
            "a bearer token that is not a b64token (RFC 6750 §2.1)",
        ));
    }
    Ok((scheme, token))
}

/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}
