//! The tower [`Layer`]s: [`ResourceServer::layer`] checks every request's
//! token and hands its claims to the handler as [`Authenticated`];
//! [`require_scope`] refuses a request whose token lacks a scope.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue, Request, Response};
use onesoidc_core::AccessTokenClaims;
use tower_layer::Layer;
use tower_service::Service;

use crate::{DPOP_NONCE, Refusal, ResourceServer};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The claims of the request's checked access token, put in the request's
/// extensions by [`ResourceServer::layer`]. In axum, an extractor:
///
/// ```
/// use onesoidc_resource::Authenticated;
/// async fn me(Authenticated(claims): Authenticated) -> String {
///     format!("{} ({})", claims.sub, claims.scope)
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<AccessTokenClaims>);

impl std::ops::Deref for Authenticated {
    type Target = AccessTokenClaims;
    fn deref(&self) -> &AccessTokenClaims {
        &self.0
    }
}

impl<S: Send + Sync> axum_core::extract::FromRequestParts<S> for Authenticated {
    type Rejection = Refusal;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Refusal> {
        parts
            .extensions
            .get::<Authenticated>()
            .cloned()
            .ok_or(Refusal::NotChecked)
    }
}

impl ResourceServer {
    /// A tower layer that checks every request's access token: a refused
    /// one gets its RFC 6750 answer (401/400, `WWW-Authenticate`) and never
    /// reaches the service; an accepted one reaches it with
    /// [`Authenticated`] in its extensions.
    ///
    /// ```no_run
    /// # async fn run(server: onesoidc_resource::ResourceServer) {
    /// use axum::{Router, routing::get};
    /// use onesoidc_resource::{Authenticated, require_scope};
    /// let app: Router = Router::new()
    ///     .route("/me", get(|who: Authenticated| async move { who.sub.clone() }))
    ///     .route("/records", get(|| async { "..." }).route_layer(require_scope("read")))
    ///     .layer(server.layer());
    /// # }
    /// ```
    pub fn layer(&self) -> ResourceLayer {
        ResourceLayer {
            server: self.clone(),
        }
    }
}

/// See [`ResourceServer::layer`].
#[derive(Debug, Clone)]
pub struct ResourceLayer {
    server: ResourceServer,
}

impl<S> Layer<S> for ResourceLayer {
    type Service = CheckAccessToken<S>;

    fn layer(&self, inner: S) -> CheckAccessToken<S> {
        CheckAccessToken {
            inner,
            server: self.server.clone(),
        }
    }
}

/// The service [`ResourceLayer`] wraps around another.
#[derive(Debug, Clone)]
pub struct CheckAccessToken<S> {
    inner: S,
    server: ResourceServer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CheckAccessToken<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let server = self.server.clone();
        Box::pin(async move {
            let nonce = match is_dpop_request(request.headers()) {
                true => server.dpop_nonce(),
                false => None,
            };
            let mut response = match server
                .check_request(request.method(), request.headers(), request.uri())
                .await
            {
                Ok(claims) => {
                    request.extensions_mut().insert(Authenticated(claims));
                    inner.call(request).await?
                }
                Err(refusal) => refusal.to_response(),
            };
            // RFC 9449 §8.2: the client keeps the latest nonce it was given.
            if let Some(nonce) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
                response.headers_mut().insert(DPOP_NONCE, nonce);
            }
            Ok(response)
        })
    }
}

/// Whether the request uses DPoP: `Authorization: DPoP …` or a `DPoP` header.
fn is_dpop_request(headers: &HeaderMap) -> bool {
    headers.contains_key("dpop")
        || headers
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .any(|value| {
                value
                    .as_bytes()
                    .get(..5)
                    .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"dpop "))
            })
}

/// A layer that lets through only requests whose token has `scope`, and
/// answers the others `403` with `WWW-Authenticate: Bearer
/// error="insufficient_scope", scope="..."`. It goes inside
/// [`ResourceServer::layer`] (in axum: `route_layer` on the route, with
/// the server's layer on the router).
pub fn require_scope(scope: impl Into<String>) -> RequireScopeLayer {
    RequireScopeLayer {
        scope: Arc::from(scope.into()),
    }
}

/// See [`require_scope`].
#[derive(Debug, Clone)]
pub struct RequireScopeLayer {
    scope: Arc<str>,
}

impl<S> Layer<S> for RequireScopeLayer {
    type Service = RequireScope<S>;

    fn layer(&self, inner: S) -> RequireScope<S> {
        RequireScope {
            inner,
            scope: self.scope.clone(),
        }
    }
}

/// The service [`RequireScopeLayer`] wraps around another.
#[derive(Debug, Clone)]
pub struct RequireScope<S> {
    inner: S,
    scope: Arc<str>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScope<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let refusal = match request.extensions().get::<Authenticated>() {
            Some(who) if who.has_scope(&self.scope) => None,
            Some(_) => Some(Refusal::InsufficientScope(self.scope.to_string())),
            None => Some(Refusal::NotChecked),
        };
        match refusal {
            None => Box::pin(self.inner.call(request)),
            Some(refusal) => {
                let response = refusal.to_response();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}
