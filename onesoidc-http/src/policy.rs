//! [`Policy`]: the rules of [PROTOCOL §11](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#11-http-hygiene), applied above any backend.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::{BoxFuture, HttpClient, HttpRequest, HttpResponse, TransportError, TransportErrorKind};

/// Default time one exchange may take, body included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default response body limit (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// The URL a response came from, set as a response extension by a backend
/// that could follow redirects (the reqwest backend does). [`Policy`]
/// refuses a response whose `ResponseUri` is not the request's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseUri(pub http::Uri);

/// The HTTP rules every request of onesoidc obeys ([PROTOCOL §11](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#11-http-hygiene)), whatever
/// backend sends it. Every setting has a documented default.
///
/// - Only `https://`; plain `http://` only to loopback (`127.0.0.0/8`,
///   `::1`, `localhost`) unless [`allow_insecure_http`](Self::allow_insecure_http).
///   Checked before anything is sent.
/// - Redirects are never followed: a 3xx answer is a
///   [`TransportErrorKind::Redirect`] error naming where it pointed (without
///   its query), and so is a response a backend reports ([`ResponseUri`])
///   from another URL.
/// - A body over [`max_body_bytes`](Self::max_body_bytes) (default 1 MiB)
///   is refused. A backend should also stop reading there (the reqwest one
///   does); the policy can only refuse what a backend already read.
/// - Each exchange has [`timeout`](Self::timeout) (default 30 s). A
///   connect timeout can only be set in the backend.
///
/// ```
/// use std::time::Duration;
/// use onesoidc_http::{Policy, TransportErrorKind};
/// let policy = Policy::default().timeout(Duration::from_secs(5));
/// let plain = http::Request::get("http://idp.example.com/oidc/token").body(Vec::new()).unwrap();
/// assert_eq!(policy.check_request(&plain).unwrap_err().kind, TransportErrorKind::InsecureUrl);
/// let local = http::Request::get("http://127.0.0.1:8080/oidc/token").body(Vec::new()).unwrap();
/// assert!(policy.check_request(&local).is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    allow_insecure_http: bool,
    max_body_bytes: usize,
    timeout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allow_insecure_http: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl Policy {
    /// Allow `http://` to hosts other than loopback (default: refused).
    /// Only for closed test networks: tokens and assertions travel in clear.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Largest response body accepted (default 1 MiB).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// How long one exchange may take, body included (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether plain `http://` to other hosts than loopback is allowed.
    pub fn insecure_http_allowed(&self) -> bool {
        self.allow_insecure_http
    }

    /// The body limit.
    pub fn body_limit(&self) -> usize {
        self.max_body_bytes
    }

    /// The timeout of one exchange.
    pub fn exchange_timeout(&self) -> Duration {
        self.timeout
    }

    /// Refuses a request the policy does not allow to be sent.
    pub fn check_request(&self, request: &HttpRequest) -> Result<(), TransportError> {
        check_scheme(request.uri(), self.allow_insecure_http)
    }

    /// Refuses a response to a request for `requested` that the policy does
    /// not accept: a redirect, a response from another URL, an oversized body.
    pub fn check_response(
        &self,
        requested: &http::Uri,
        response: &HttpResponse,
    ) -> Result<(), TransportError> {
        if response.status().is_redirection() {
            let target = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(|location| format!(" to {}", without_query(location)))
                .unwrap_or_default();
            return Err(TransportError::new(
                TransportErrorKind::Redirect,
                format!(
                    "the server answered HTTP {} with a redirect{target}; redirects are never followed: point the device at the final URL",
                    response.status().as_u16()
                ),
            ));
        }
        if let Some(ResponseUri(from)) = response.extensions().get::<ResponseUri>()
            && !same_url(from, requested)
        {
            return Err(TransportError::new(
                TransportErrorKind::Redirect,
                format!(
                    "the HTTP client followed a redirect to {}; redirects are never followed: configure it not to follow them",
                    without_query(&from.to_string())
                ),
            ));
        }
        if response.body().len() > self.max_body_bytes {
            return Err(body_too_large(self.max_body_bytes));
        }
        Ok(())
    }

    /// `backend` with this policy around every exchange.
    pub fn apply(self, backend: impl HttpClient + 'static) -> PolicyClient {
        PolicyClient {
            backend: Arc::new(backend),
            policy: self,
        }
    }
}

/// An [`HttpClient`] that applies a [`Policy`] around another; build one
/// with [`Policy::apply`]. Cheap to clone.
#[derive(Clone)]
pub struct PolicyClient {
    backend: Arc<dyn HttpClient>,
    policy: Policy,
}

impl std::fmt::Debug for PolicyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyClient")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl PolicyClient {
    /// The policy it applies.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        self.policy.check_request(&request)?;
        let requested = request.uri().clone();
        let timeout = self.policy.timeout;
        let response = tokio::time::timeout(timeout, self.backend.execute(request))
            .await
            .map_err(|_| {
                TransportError::new(
                    TransportErrorKind::Timeout,
                    format!("no complete response within {} s", timeout.as_secs_f64()),
                )
            })??;
        self.policy.check_response(&requested, &response)?;
        Ok(response)
    }
}

impl HttpClient for PolicyClient {
    fn execute(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(self.send(request))
    }
}

pub(crate) fn body_too_large(limit: usize) -> TransportError {
    TransportError::new(
        TransportErrorKind::BodyTooLarge,
        format!("the response body is larger than {limit} bytes"),
    )
}

/// Refuses `http://` to anything but loopback, unless allowed.
pub(crate) fn check_scheme(
    uri: &http::Uri,
    allow_insecure_http: bool,
) -> Result<(), TransportError> {
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if allow_insecure_http || uri.host().is_some_and(is_loopback) => Ok(()),
        Some("http") => Err(TransportError::new(
            TransportErrorKind::InsecureUrl,
            format!(
                "{} is plain http to a non-loopback host; use https (or opt in to insecure http on a closed test network)",
                without_query(&uri.to_string())
            ),
        )),
        _ => Err(TransportError::new(
            TransportErrorKind::InvalidRequest,
            format!(
                "{:?} is not an http(s) URL",
                without_query(&uri.to_string())
            ),
        )),
    }
}

/// `url` without its query and fragment (which may carry a code or token).
fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// Whether two URIs name the same resource (as URLs, so `https://a` and
/// `https://a/`, or an explicit default port, compare equal).
fn same_url(a: &http::Uri, b: &http::Uri) -> bool {
    match (
        url::Url::parse(&a.to_string()),
        url::Url::parse(&b.to_string()),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Whether `host` (from a URI, IPv6 in brackets) is a loopback address or `localhost`.
///
/// ```
/// assert!(onesoidc_http::is_loopback("127.0.0.1"));
/// assert!(onesoidc_http::is_loopback("[::1]"));
/// assert!(onesoidc_http::is_loopback("localhost"));
/// assert!(!onesoidc_http::is_loopback("10.0.0.1"));
/// assert!(!onesoidc_http::is_loopback("localhost.evil.com"));
/// ```
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_is_refused_off_loopback() {
        let check = |url: &str, allow| check_scheme(&url.parse().unwrap(), allow);
        assert!(check("https://idp.example.com/oidc", false).is_ok());
        assert!(check("http://127.0.0.1:8080/oidc", false).is_ok());
        assert!(check("http://127.1.2.3/oidc", false).is_ok());
        assert!(check("http://[::1]:9/oidc", false).is_ok());
        assert!(check("http://localhost/oidc", false).is_ok());
        let err = check("http://idp.example.com/oidc", false).unwrap_err();
        assert_eq!(err.kind, TransportErrorKind::InsecureUrl);
        assert!(check("http://idp.example.com/oidc", true).is_ok());
        assert!(check("http://localhost.evil.com/oidc", false).is_err());
        let err = check("ftp://idp.example.com/oidc", true).unwrap_err();
        assert_eq!(err.kind, TransportErrorKind::InvalidRequest);
    }

    fn response(status: u16, location: Option<&str>, body: usize) -> HttpResponse {
        let mut builder = http::Response::builder().status(status);
        if let Some(location) = location {
            builder = builder.header("location", location);
        }
        builder.body(vec![b'x'; body]).unwrap()
    }

    #[test]
    fn redirects_oversized_bodies_and_other_urls_are_refused() {
        let policy = Policy::default();
        let uri: http::Uri = "https://idp.example.com/oidc/token".parse().unwrap();
        assert!(
            policy
                .check_response(&uri, &response(200, None, 10))
                .is_ok()
        );
        let err = policy
            .check_response(
                &uri,
                &response(302, Some("https://evil.example.com/x?code=secret"), 0),
            )
            .unwrap_err();
        assert_eq!(err.kind, TransportErrorKind::Redirect);
        assert!(err.message.contains("https://evil.example.com/x"), "{err}");
        assert!(!err.message.contains("secret"), "{err}");
        let err = policy
            .check_response(&uri, &response(200, None, DEFAULT_MAX_BODY_BYTES + 1))
            .unwrap_err();
        assert_eq!(err.kind, TransportErrorKind::BodyTooLarge);
        assert!(
            policy
                .check_response(&uri, &response(200, None, DEFAULT_MAX_BODY_BYTES))
                .is_ok()
        );

        let mut moved = response(200, None, 0);
        moved
            .extensions_mut()
            .insert(ResponseUri("https://other.example.com/t".parse().unwrap()));
        let err = policy.check_response(&uri, &moved).unwrap_err();
        assert_eq!(err.kind, TransportErrorKind::Redirect);
        let mut same = response(200, None, 0);
        same.extensions_mut().insert(ResponseUri(
            "https://idp.example.com:443/oidc/token".parse().unwrap(),
        ));
        assert!(policy.check_response(&uri, &same).is_ok());
    }
}
