//! HTTP transport for onesoidc: the [`HttpClient`] trait the flows speak
//! through, and [`ReqwestClient`], a hardened default backend.
//!
//! The default backend uses rustls, pools connections, applies a connect
//! timeout (10 s) and a whole-request timeout (30 s), refuses bodies over
//! 1 MiB, never follows redirects, and refuses `http://` URLs except on
//! loopback unless you opt in (PROTOCOL §11).
//!
//! ```no_run
//! use std::sync::Arc;
//! use onesoidc_http::{HttpClient, ReqwestClient};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client: Arc<dyn HttpClient> = Arc::new(ReqwestClient::new()?);
//! let request = http::Request::get("https://idp-server.ones-now.com/oidc/.well-known/openid-configuration")
//!     .body(Vec::new())?;
//! let response = client.execute(request).await?;
//! println!("{}", response.status());
//! # Ok(()) }
//! ```
//!
//! # Another backend
//!
//! Implement one method. Anything that turns an `http::Request<Vec<u8>>`
//! into an `http::Response<Vec<u8>>` will do (a test double, hyper, a
//! corporate proxy client):
//!
//! ```
//! use onesoidc_http::{BoxFuture, HttpClient, HttpRequest, HttpResponse, TransportError};
//!
//! /// Answers every request with 503, as a provider under maintenance would.
//! struct Maintenance;
//!
//! impl HttpClient for Maintenance {
//!     fn execute(&self, _request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
//!         Box::pin(async {
//!             Ok(http::Response::builder().status(503).body(b"down".to_vec()).unwrap())
//!         })
//!     }
//! }
//!
//! let client: std::sync::Arc<dyn HttpClient> = std::sync::Arc::new(Maintenance);
//! # let _ = client;
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

pub use onesoidc_core::request::HttpRequest;
pub use onesoidc_core::response::HttpResponse;
pub use onesoidc_core::{TransportError, TransportErrorKind};

/// A boxed, `Send` future, so [`HttpClient`] stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sends one HTTP request and returns the whole response.
///
/// Hold it as `Arc<dyn HttpClient>`. A non-2xx status is a response, not an
/// error: only a failure to get a response at all is a [`TransportError`].
pub trait HttpClient: Send + Sync {
    /// Sends `request` and reads the full response body.
    fn execute(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>>;
}

/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default whole-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default response body limit (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// The default [`HttpClient`]: reqwest with rustls, pooled, hardened.
#[derive(Debug, Clone)]
pub struct ReqwestClient {
    inner: reqwest::Client,
    max_body_bytes: usize,
    allow_insecure_http: bool,
}

/// Builds a [`ReqwestClient`]; every setting has the documented default.
///
/// ```
/// use std::time::Duration;
/// let client = onesoidc_http::ReqwestClient::builder()
///     .timeout(Duration::from_secs(5))
///     .build()
///     .unwrap();
/// # let _ = client;
/// ```
#[derive(Debug, Clone)]
pub struct ReqwestClientBuilder {
    connect_timeout: Duration,
    timeout: Duration,
    max_body_bytes: usize,
    allow_insecure_http: bool,
    user_agent: String,
}

impl Default for ReqwestClientBuilder {
    fn default() -> Self {
        ReqwestClientBuilder {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            allow_insecure_http: false,
            user_agent: concat!("onesoidc/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

impl ReqwestClientBuilder {
    /// Connect timeout (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whole-request timeout, body included (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Largest response body accepted (default 1 MiB).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Allow `http://` to hosts other than loopback (default: refused).
    /// Only for closed test networks: tokens and assertions travel in clear.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// The `User-Agent` header (default `onesoidc/<version>`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<ReqwestClient, TransportError> {
        let inner = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(self.user_agent)
            .build()
            .map_err(|e| {
                TransportError::new(
                    TransportErrorKind::Other,
                    format!("cannot build the HTTP client: {e}"),
                )
            })?;
        Ok(ReqwestClient {
            inner,
            max_body_bytes: self.max_body_bytes,
            allow_insecure_http: self.allow_insecure_http,
        })
    }
}

impl ReqwestClient {
    /// A client with the default settings.
    pub fn new() -> Result<Self, TransportError> {
        Self::builder().build()
    }

    /// A builder with the default settings.
    pub fn builder() -> ReqwestClientBuilder {
        ReqwestClientBuilder::default()
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        check_scheme(request.uri(), self.allow_insecure_http)?;
        let request = reqwest::Request::try_from(request)
            .map_err(|e| TransportError::new(TransportErrorKind::InvalidRequest, e.to_string()))?;
        let mut response = self.inner.execute(request).await.map_err(classify)?;
        if let Some(length) = response.content_length()
            && length > self.max_body_bytes as u64
        {
            return Err(too_large(self.max_body_bytes));
        }
        let mut builder = http::Response::builder()
            .status(response.status())
            .version(response.version());
        if let Some(headers) = builder.headers_mut() {
            *headers = std::mem::take(response.headers_mut());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > self.max_body_bytes {
                return Err(too_large(self.max_body_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        builder
            .body(body)
            .map_err(|e| TransportError::new(TransportErrorKind::Other, e.to_string()))
    }
}

impl HttpClient for ReqwestClient {
    fn execute(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(self.send(request))
    }
}

fn too_large(limit: usize) -> TransportError {
    TransportError::new(
        TransportErrorKind::BodyTooLarge,
        format!("the response body is larger than {limit} bytes"),
    )
}

fn classify(e: reqwest::Error) -> TransportError {
    let kind = if e.is_timeout() {
        TransportErrorKind::Timeout
    } else if e.is_connect() {
        TransportErrorKind::Connect
    } else if e.is_builder() {
        TransportErrorKind::InvalidRequest
    } else {
        TransportErrorKind::Other
    };
    // reqwest's Display is terse; its sources say what actually failed.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    TransportError::new(kind, message)
}

/// Refuses `http://` to anything but loopback, unless allowed.
fn check_scheme(uri: &http::Uri, allow_insecure_http: bool) -> Result<(), TransportError> {
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if allow_insecure_http || uri.host().is_some_and(is_loopback) => Ok(()),
        Some("http") => Err(TransportError::new(
            TransportErrorKind::InsecureUrl,
            format!(
                "{uri} is plain http to a non-loopback host; use https (or opt in with allow_insecure_http)"
            ),
        )),
        _ => Err(TransportError::new(
            TransportErrorKind::InvalidRequest,
            format!("{uri:?} is not an http(s) URL"),
        )),
    }
}

/// Whether `host` (from a URI, IPv6 in brackets) is a loopback address or `localhost`.
///
/// ```
/// assert!(onesoidc_http::is_loopback("127.0.0.1"));
/// assert!(onesoidc_http::is_loopback("[::1]"));
/// assert!(onesoidc_http::is_loopback("localhost"));
/// assert!(!onesoidc_http::is_loopback("10.0.0.1"));
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
    }
}
