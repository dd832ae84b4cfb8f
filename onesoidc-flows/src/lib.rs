//! OnesID flows for a registered device, as async calls over an
//! [`HttpClient`](onesoidc_http::HttpClient).
//!
//! Start with [`OnesIdClient`]: it loads the device identity, discovers the
//! provider once, and signs a fresh client assertion for every request.
//!
//! ```no_run
//! use onesoidc_flows::{LoginOptions, OnesIdClient};
//! use onesoidc_flows::core::ExposeSecret;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), onesoidc_flows::Error> {
//!     // device.yml and the key from px-device-identity's default places
//!     // (or ONESOIDC_DEVICE_CONFIG / ONESOIDC_KEY_DIR).
//!     let client = OnesIdClient::from_default_identity()?;
//!     let device = client.device_token().await?;                // the device itself
//!     println!("device token expires at {:?}", device.expires_at);
//!
//!     let app = client.application("vhh-server").await?;        // where the person goes
//!     let request = LoginOptions::default()
//!         .binding_message("Log in to kiosk 7")
//!         .resource(app.url)
//!         .request_for_username("alice");
//!     let login = client.ciba(&request).await?;                  // alice approves on her phone
//!     println!("alice's token: {}", login.tokens.access_token.expose_secret());
//!     Ok(())
//! }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod apps;
mod ciba;
mod client;
mod events;
mod identity;
mod qr;
mod registration;
pub mod render;
mod signer;
mod validation;

pub use ciba::{CibaEvent, Login, LoginOptions};
pub use client::{OnesIdClient, OnesIdClientBuilder};
pub use events::EventStream;
pub use identity::{DeviceIdentity, load_device_config, load_pem_signer};
/// The sans-IO core, re-exported so one dependency is enough.
pub use onesoidc_core as core;
pub use onesoidc_core::{
    Application, CibaRequest, DeviceTokenRequest, Error, IdTokenClaims, Introspection, LoginHint,
    QrSession, TokenSet,
};
/// Where the identity files are, and how they are read and written.
pub use onesoidc_fs as fs;
pub use onesoidc_fs::IdentityPaths;
/// The HTTP transport, re-exported so one dependency is enough.
pub use onesoidc_http as http_client;
pub use qr::QrEvent;
pub use registration::{
    CONFIG_VERSION, DeviceRegistration, RegistrationProgress, create_unmanaged_identity,
    register_device,
};
pub use signer::{CommandSigner, PX_DEVICE_IDENTITY_ENV, PX_DEVICE_IDENTITY_PATHS};
/// `Stream` and its combinators, for the event APIs.
pub use tokio_stream::{Stream, StreamExt};
