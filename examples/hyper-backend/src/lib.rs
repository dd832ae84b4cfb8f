//! An [`HttpClient`] for onesoidc on hyper-util's client, for programs that
//! already use hyper and want no reqwest in their build.
//!
//! It depends on `onesoidc-flows` and `onesoidc-tokens` with their default
//! features off: `cargo tree -p onesoidc-example-hyper-backend -e normal`
//! shows no reqwest. The flows apply the HTTP policy (https except
//! loopback, no redirects, 1 MiB bodies, a timeout per exchange) above it;
//! it caps bodies itself too, so a huge answer is never read whole.
//!
//! ```no_run
//! use onesoidc_example_hyper_backend::HyperClient;
//! use onesoidc_flows::OnesIdClient;
//!
//! # async fn run() -> Result<(), onesoidc_flows::Error> {
//! let client = OnesIdClient::builder().http(HyperClient::new()?).build()?;
//! let tokens = client.device_token().await?;
//! println!("the device token expires {}", tokens.expiry());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use onesoidc_flows::http_client::{
    BoxFuture, DEFAULT_MAX_BODY_BYTES, HttpClient, HttpRequest, HttpResponse, TransportError,
    TransportErrorKind,
};

/// hyper-util's pooled client with rustls (the system's root certificates),
/// HTTP/1.1, never following redirects (hyper does not).
#[derive(Clone)]
pub struct HyperClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for HyperClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HyperClient")
    }
}

impl HyperClient {
    /// A client trusting the system's root certificates.
    pub fn new() -> Result<Self, TransportError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| {
                TransportError::new(
                    TransportErrorKind::Other,
                    format!("no usable root certificates on this system: {e}"),
                )
            })?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(HyperClient {
            inner: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let request = request.map(|body| Full::new(Bytes::from(body)));
        let response = self.inner.request(request).await.map_err(|e| {
            let kind = if e.is_connect() {
                TransportErrorKind::Connect
            } else {
                TransportErrorKind::Other
            };
            TransportError::new(kind, error_chain(&e))
        })?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, DEFAULT_MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    TransportError::new(
                        TransportErrorKind::BodyTooLarge,
                        format!("the response body is larger than {DEFAULT_MAX_BODY_BYTES} bytes"),
                    )
                } else {
                    TransportError::new(TransportErrorKind::Other, e.to_string())
                }
            })?
            .to_bytes();
        Ok(http::Response::from_parts(parts, body.to_vec()))
    }
}

impl HttpClient for HyperClient {
    fn execute(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(self.send(request))
    }
}

/// An error and its sources on one line (hyper's own message is terse).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
