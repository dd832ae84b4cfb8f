//! The application's half of onesoidc: check the access tokens devices
//! send, in a tower layer (axum, tonic, hyper) or by hand.
//!
//! A kiosk gets a person's access token *for an application* (RFC 8707
//! `resource`); the application builds one [`ResourceServer`] and puts its
//! [`layer`](ResourceServer::layer) in front of its routes:
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use onesoidc_resource::{Authenticated, ResourceServer, require_scope};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = ResourceServer::builder()
//!     .issuer("https://idp-server.ones-now.com/oidc")
//!     .audience("https://vhh.example.com")
//!     .build()
//!     .await?;
//! let app: Router = Router::new()
//!     .route("/me", get(|who: Authenticated| async move { who.sub.clone() }))
//!     .route("/records", get(|| async { "..." }).route_layer(require_scope("read")))
//!     .layer(server.layer());
//! # Ok(()) }
//! ```
//!
//! What is checked:
//!
//! - **JWT access tokens** (RFC 9068), in `onesoidc-core`
//!   ([`check_access_token`](onesoidc_core::check_access_token)): header
//!   `typ` `at+jwt` (an ID token is not an access token), `alg` from the
//!   provider's list (never `none` or HS*), key type and curve, signature,
//!   `iss` exact, `aud` containing the audience exactly, `exp`/`nbf`/`iat`
//!   with 60 s skew. The provider's keys are `onesoidc-flows`'
//!   [`JwksCache`](onesoidc_flows::JwksCache), the one the device's ID
//!   token validation uses.
//! - **Opaque tokens** by introspection (RFC 7662) with the application's
//!   own registered identity ([`ResourceServerBuilder::introspection`]);
//!   answers cached by token hash.
//! - **Errors** as RFC 6750 §3 says ([`Refusal`]): `401` with
//!   `WWW-Authenticate: Bearer error="invalid_token"`, `403
//!   insufficient_scope`, `400 invalid_request`; the reason only in
//!   `tracing` (debug).
//!
//! # Features
//!
//! - `axum` (default): the tower layers and the axum extractor
//!   [`Authenticated`]. Without it: only [`ResourceServer`]'s checks.
//! - `reqwest` (default): the default HTTP backend. Without it, give the
//!   builder an [`HttpClient`](onesoidc_http::HttpClient) (or an
//!   introspection client, whose backend is used).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bearer;
mod claims_cache;
mod introspection;
#[cfg(feature = "axum")]
mod layer;
mod nonce;
mod refusal;
mod replay;
mod server;

pub use bearer::{TokenScheme, access_token, bearer_token};
pub use introspection::{DEFAULT_INTROSPECTION_CACHE_ENTRIES, DEFAULT_INTROSPECTION_CACHE_MAX_AGE};
#[cfg(feature = "axum")]
pub use layer::{
    Authenticated, CheckAccessToken, RequireScope, RequireScopeLayer, ResourceLayer, require_scope,
};
pub use nonce::{DEFAULT_DPOP_NONCE_WINDOW, MIN_DPOP_NONCE_SECRET_BYTES};
pub use onesoidc_core::{AccessTokenClaims, AccessTokenError};
pub use refusal::{DPOP_NONCE, Refusal};
pub use replay::{DEFAULT_DPOP_REPLAY_ENTRIES, DEFAULT_DPOP_REPLAY_PREFIX};
pub use server::{
    BuildError, DEFAULT_VERIFIED_TOKEN_CACHE_ENTRIES, DEFAULT_VERIFIED_TOKEN_CACHE_MAX_AGE,
    ResourceServer, ResourceServerBuilder,
};

/// The crate README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
