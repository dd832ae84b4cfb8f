//! Why a request is refused, and what the client is told (RFC 6750 §3):
//! a status and a `WWW-Authenticate` header naming only the error code.
//! The reason itself goes to `tracing` at debug level, never to the client.

use std::sync::Arc;

use http::{HeaderValue, StatusCode, header};
use onesoidc_core::{AccessTokenError, DEFAULT_DPOP_ALGORITHMS, DpopProofError, Error};

/// The response header that carries a server-issued DPoP nonce (RFC 9449 §8).
pub const DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// A refused request. [`status`](Self::status) and
/// [`www_authenticate`](Self::www_authenticate) are what the client sees;
/// `Display` (the reason) is for logs.
///
/// ```
/// use onesoidc_resource::Refusal;
/// let refusal = Refusal::InsufficientScope("read".into());
/// assert_eq!(refusal.status(), 403);
/// assert_eq!(refusal.www_authenticate().unwrap(), r#"Bearer error="insufficient_scope", scope="read""#);
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No `Authorization: Bearer` header: `401`, `WWW-Authenticate: Bearer`
    /// (RFC 6750 §3.1: no error code when no credentials were sent).
    #[error("the request has no `Authorization: Bearer` header")]
    MissingToken,
    /// The request is malformed: `400 invalid_request` (a token in the
    /// query string, two `Authorization` headers, a token that is not a
    /// b64token).
    #[error("the request is malformed: {0}")]
    InvalidRequest(&'static str),
    /// The token is not valid here: `401 invalid_token`.
    #[error("the access token is refused: {0}")]
    InvalidToken(#[source] AccessTokenError),
    /// The token sent as `Authorization: DPoP` is not valid here: `401`
    /// `DPoP error="invalid_token"` (RFC 9449 §7.1).
    #[error("the DPoP access token is refused: {0}")]
    InvalidDpopToken(#[source] AccessTokenError),
    /// A DPoP token (`Authorization: DPoP`, or a token with `cnf.jkt`)
    /// came without exactly one `DPoP` proof header: `401
    /// invalid_dpop_proof` (RFC 9449 §7.1).
    #[error("the DPoP-bound access token came without exactly one `DPoP` proof header")]
    MissingDpopProof,
    /// The `DPoP` proof is refused: `401 invalid_dpop_proof`.
    #[error("the DPoP proof is refused: {0}")]
    InvalidDpopProof(#[source] DpopProofError),
    /// The server requires its nonce (`.dpop_nonce(secret)`) and the proof
    /// has none, or a stale one ([`DpopProofError::MissingNonce`] or
    /// [`DpopProofError::WrongNonce`]): `401` with `WWW-Authenticate: DPoP
    /// error="use_dpop_nonce"` and the nonce to use in `DPoP-Nonce` (RFC
    /// 9449 §9). The client retries with a new proof carrying it.
    #[error("the DPoP proof is refused: {reason}")]
    UseDpopNonce {
        /// The current nonce, sent as `DPoP-Nonce`.
        nonce: String,
        /// Missing or stale.
        #[source]
        reason: DpopProofError,
    },
    /// The `DPoP` proof's `jti` was used before: `401 invalid_dpop_proof`.
    #[error("the DPoP proof's `jti` was already used: a proof is good for one request")]
    ReplayedDpopProof,
    /// The token lacks a scope the route needs: `403 insufficient_scope`.
    #[error("the access token lacks the scope {0:?}")]
    InsufficientScope(String),
    /// The provider (its keys or its introspection endpoint) cannot be
    /// reached, so the token cannot be checked: `503`, and no
    /// `WWW-Authenticate` (the client's token may be fine).
    #[error("the access token cannot be checked now: {0}")]
    Unavailable(#[source] Arc<Error>),
    /// A route asks for the claims but [`ResourceServer::layer`](crate::ResourceServer)
    /// does not wrap it: `500`, a mistake in the application.
    #[error(
        "the route reads the access token's claims, but ResourceServer's layer does not wrap it; add `.layer(server.layer())`"
    )]
    NotChecked,
}

impl Refusal {
    /// The HTTP status for the client.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::MissingToken
            | Refusal::InvalidToken(_)
            | Refusal::InvalidDpopToken(_)
            | Refusal::MissingDpopProof
            | Refusal::InvalidDpopProof(_)
            | Refusal::UseDpopNonce { .. }
            | Refusal::ReplayedDpopProof => StatusCode::UNAUTHORIZED,
            Refusal::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Refusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::NotChecked => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `WWW-Authenticate` header for the client (RFC 6750 §3), exactly:
    /// `Bearer`, `Bearer error="invalid_token"`,
    /// `Bearer error="invalid_request"`,
    /// `Bearer error="insufficient_scope", scope="..."` or, for a DPoP proof,
    /// `DPoP error="invalid_dpop_proof", algs="ES256 ES384 ES512 PS256 PS384 PS512 RS256"`
    /// (`DPoP error="use_dpop_nonce", algs="…"` when the nonce is missing
    /// or stale); none for a 5xx.
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        let value = match self {
            Refusal::MissingToken => "Bearer".to_string(),
            Refusal::InvalidRequest(_) => r#"Bearer error="invalid_request""#.to_string(),
            Refusal::InvalidToken(_) => r#"Bearer error="invalid_token""#.to_string(),
            Refusal::InvalidDpopToken(_) => format!(
                r#"DPoP error="invalid_token", algs="{}""#,
                DEFAULT_DPOP_ALGORITHMS.join(" ")
            ),
            Refusal::MissingDpopProof
            | Refusal::InvalidDpopProof(_)
            | Refusal::ReplayedDpopProof => format!(
                r#"DPoP error="invalid_dpop_proof", algs="{}""#,
                DEFAULT_DPOP_ALGORITHMS.join(" ")
            ),
            Refusal::UseDpopNonce { .. } => format!(
                r#"DPoP error="use_dpop_nonce", algs="{}""#,
                DEFAULT_DPOP_ALGORITHMS.join(" ")
            ),
            Refusal::InsufficientScope(scope) => {
                format!(r#"Bearer error="insufficient_scope", scope="{scope}""#)
            }
            Refusal::Unavailable(_) | Refusal::NotChecked => return None,
        };
        // Only a scope the application chose can make the value invalid (a
        // control character): then the error code goes alone.
        Some(
            HeaderValue::from_str(&value).unwrap_or_else(|_| {
                HeaderValue::from_static(r#"Bearer error="insufficient_scope""#)
            }),
        )
    }

    /// The response to send: the status, `WWW-Authenticate` (and
    /// `DPoP-Nonce` for [`UseDpopNonce`](Self::UseDpopNonce)), and an empty
    /// body. The reason is logged at debug level (warn for a 5xx).
    pub fn to_response<B: Default>(&self) -> http::Response<B> {
        match self.status() {
            status if status.is_server_error() => tracing::warn!(reason = %self, "request refused"),
            _ => tracing::debug!(reason = %self, "request refused"),
        }
        let mut response = http::Response::new(B::default());
        *response.status_mut() = self.status();
        if let Some(value) = self.www_authenticate() {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        if let Refusal::UseDpopNonce { nonce, .. } = self
            && let Ok(nonce) = HeaderValue::from_str(nonce)
        {
            response.headers_mut().insert(DPOP_NONCE, nonce);
        }
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for Refusal {
    fn into_response(self) -> axum_core::response::Response {
        self.to_response()
    }
}
