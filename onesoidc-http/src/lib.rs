//! HTTP transport for onesoidc: the [`HttpClient`] trait the flows speak
//! through, the [`Policy`] every request obeys whatever the backend, and
//! (feature `reqwest`, on by default) [`ReqwestClient`], a hardened
//! default backend.
//!
//! The policy is [PROTOCOL §11](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#11-http-hygiene): `https://` only (plain `http://` on
//! loopback, or with an explicit opt-in), redirects never followed (a 3xx
//! answer is an error), bodies over 1 MiB refused, and a timeout around
//! each exchange (30 s). `onesoidc-flows` applies it above whichever
//! backend it is given, so a custom backend keeps every rule; the reqwest
//! backend enforces them again itself.
//!
//! ```no_run
//! # #[cfg(feature = "reqwest")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use onesoidc_http::{HttpClient, Policy, ReqwestClient};
//!
//! let client = Policy::default().apply(ReqwestClient::new()?);
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
//! corporate proxy client); the workspace's `examples/hyper-backend` does it
//! on hyper-util with no reqwest at all. A backend must not follow
//! redirects; one that can (a configured client) reports the URL its
//! response came from as a [`ResponseUri`] extension, and the policy
//! refuses a response from anywhere else.
//!
//! ```
//! use onesoidc_http::{BoxFuture, HttpClient, HttpRequest, HttpResponse, Policy, TransportError};
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
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // What onesoidc-flows does with any backend it is given:
//! let client = Policy::default().apply(Maintenance);
//! let get = |url| http::Request::get(url).body(Vec::new()).unwrap();
//! // The backend's answer comes through...
//! let answer = client.execute(get("https://idp.example.com/oidc/jwks")).await.unwrap();
//! assert_eq!(answer.status(), 503);
//! // ...but the policy stops plain http off loopback before the backend sees it.
//! let refused = client.execute(get("http://idp.example.com/oidc/jwks")).await.unwrap_err();
//! assert_eq!(refused.kind, onesoidc_http::TransportErrorKind::InsecureUrl);
//! # }
//! ```
//!
//! # Features
//!
//! - `reqwest` (default): [`ReqwestClient`]. Without it this crate is the
//!   trait and the policy, and pulls in neither reqwest nor hyper.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod policy;
#[cfg(feature = "reqwest")]
mod reqwest_backend;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use onesoidc_core::request::HttpRequest;
pub use onesoidc_core::response::HttpResponse;
pub use onesoidc_core::{TransportError, TransportErrorKind};
pub use policy::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT, Policy, PolicyClient, ResponseUri, is_loopback,
};
#[cfg(feature = "reqwest")]
pub use reqwest_backend::{DEFAULT_CONNECT_TIMEOUT, ReqwestClient, ReqwestClientBuilder};

/// A boxed, `Send` future, so [`HttpClient`] stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sends one HTTP request and returns the whole response.
///
/// Hold it as `Arc<dyn HttpClient>` or by value. A non-2xx status is a
/// response, not an error: only a failure to get a response at all is a
/// [`TransportError`]. Must not follow redirects (see [`ResponseUri`]).
pub trait HttpClient: Send + Sync {
    /// Sends `request` and reads the full response body.
    fn execute(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>>;
}

impl<T: HttpClient + ?Sized> HttpClient for Arc<T> {
    fn execute(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        (**self).execute(request)
    }
}

impl<T: HttpClient + ?Sized> HttpClient for Box<T> {
    fn execute(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        (**self).execute(request)
    }
}
