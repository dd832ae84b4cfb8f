//! [`InProcessClient`]: talk to the provider without sockets.

use onesoidc_http::{
    BoxFuture, HttpClient, HttpRequest, HttpResponse, TransportError, TransportErrorKind,
};
use tower::ServiceExt;

/// Largest response body read, as the real client caps it.
const MAX_BODY: usize = 1024 * 1024;

/// An [`HttpClient`] that calls the provider's routes directly; get one from
/// [`DevIdp::in_process_client`](crate::DevIdp::in_process_client).
#[derive(Clone)]
pub struct InProcessClient {
    router: axum::Router,
}

impl std::fmt::Debug for InProcessClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InProcessClient")
    }
}

impl InProcessClient {
    pub(crate) fn new(router: axum::Router) -> Self {
        InProcessClient { router }
    }
}

impl HttpClient for InProcessClient {
    fn execute(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        let router = self.router.clone();
        Box::pin(async move {
            let request = request.map(axum::body::Body::from);
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
                TransportError::new(TransportErrorKind::BodyTooLarge, e.to_string())
            })?;
            Ok(http::Response::from_parts(parts, bytes.to_vec()))
        })
    }
}
