//! OnesID flows for a registered device, as async calls over an
//! [`HttpClient`](onesoidc_http::HttpClient).
//!
//! Start with [`OnesIdClient`]: it loads the device identity, discovers the
//! provider once, and signs a fresh client assertion for every request.
//!
//! ```no_run
//! use std::process::ExitCode;
//! use onesoidc_flows::{CibaRequest, Error, OnesIdClient};
//!
//! #[tokio::main]
//! async fn main() -> ExitCode {
//!     match run().await {
//!         Ok(()) => ExitCode::SUCCESS,
//!         Err(error) => {
//!             eprintln!("error: {error}"); // names the file, field, endpoint or status
//!             ExitCode::FAILURE
//!         }
//!     }
//! }
//!
//! async fn run() -> Result<(), Error> {
//!     // device.yml and the key from px-device-identity's default places
//!     // (or ONESOIDC_DEVICE_CONFIG / ONESOIDC_KEY_DIR).
//!     let client = OnesIdClient::from_default_identity()?;
//!     let device = client.device_token().await?;                // the device itself
//!     println!("the device token expires {}", device.expiry());
//!
//!     let app = client.application("vhh-server").await?;        // where the person goes
//!     let request = CibaRequest::for_username("alice")
//!         .binding_message("Log in to kiosk 7")
//!         .resource(app.url);
//!     let login = client.ciba(&request).await?;                  // alice approves on her phone
//!     println!("{login}");                                       // authenticated alice; the token expires at ...
//!     Ok(())
//! }
//! ```
//!
//! Every flow also comes as a `Stream` of events that print as log lines
//! ([`OnesIdClient::ciba_events`], [`OnesIdClient::qr_events`]); dropping
//! the stream cancels the flow. [`OnesIdClient::builder`] takes your own
//! [`HttpClient`](onesoidc_http::HttpClient) (a proxy, a decorator, another
//! backend); the HTTP rules of [PROTOCOL §11](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#11-http-hygiene) hold for any of them.
//!
//! # Features
//!
//! - `reqwest` (default): the default HTTP backend. Without it, give
//!   [`OnesIdClient::builder`] an `HttpClient` of your own: no reqwest or
//!   hyper is compiled.
//! - `qr-png` (default): [`render::png`] (the `image` crate). Terminal,
//!   ASCII and SVG codes need no feature.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod apps;

/// The crate README's example, compiled as a doctest (the repository's
/// README is compiled by onesoidc-tokens, which has both crates).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod ciba;
mod client;
mod dpop;
mod events;
mod identity;
mod jwks;
mod qr;
mod random;
mod registration;
pub mod render;
mod signer;
mod validation;

pub use ciba::{CibaEvent, Login};
pub use client::{
    DeviceTokenSource, OnesIdClient, OnesIdClientBuilder, Refreshed, WallClock, discover,
};
pub use events::EventStream;
pub use identity::{DeviceIdentity, load_device_config, load_pem_signer};
pub use jwks::{JWKS_STALE_IF_ERROR, JwksCache, JwksKeys, UNKNOWN_KID_REFETCH, Want, fetch_jwks};
/// The sans-IO core, re-exported so one dependency is enough.
pub use onesoidc_core as core;

/// Whether TPM keys sign in process (this build has the `tpm` feature and
/// [`DeviceIdentity::load`] uses `onesoidc-tpm`), as `onesoidc --version`
/// says.
///
/// ```
/// assert_eq!(onesoidc_flows::TPM_SIGNER, cfg!(feature = "tpm"));
/// ```
pub const TPM_SIGNER: bool = cfg!(feature = "tpm");
pub use onesoidc_core::{
    Application, AuthReqId, Authorization, CibaRequest, ClientId, DeviceTokenRequest, DpopKey,
    Endpoint, Error, IdTokenClaims, Introspection, LoginHint, QrSession, QrSessionId, Scope,
    SecretString, TokenSet, TokenTypeHint,
};
/// Where the identity files are, and how they are read and written.
pub use onesoidc_fs as fs;
pub use onesoidc_fs::IdentityPaths;
/// The HTTP transport, re-exported so one dependency is enough.
pub use onesoidc_http as http_client;
/// The TPM signer (the `tpm` feature).
#[cfg(feature = "tpm")]
pub use onesoidc_tpm as tpm;
pub use qr::QrEvent;
pub use random::warm_up_random_generator;
pub use registration::{
    CONFIG_VERSION, DeviceRegistration, RegistrationProgress, create_unmanaged_identity,
    register_device,
};
pub use signer::{CommandSigner, PX_DEVICE_IDENTITY_ENV, PX_DEVICE_IDENTITY_PATHS};
/// `Stream` and its combinators, for the event APIs.
pub use tokio_stream::{Stream, StreamExt};
