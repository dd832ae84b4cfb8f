//! The sans-IO core of onesoidc: everything a device needs to speak OnesID's
//! protocol, without sockets, async or a global clock.
//!
//! - [`DeviceConfig`]: px-device-identity's `device.yml`, parsed from its text.
//! - [`Signer`], [`PemSigner`]: RS256/ES256/ES384/ES512 signing with a PEM key.
//! - [`client_assertion`] and [`ciba_request_object`]: the JWTs the device signs.
//! - [`ProviderMetadata`]: discovery with issuer check and fallback endpoints.
//! - [`CibaPoller`]: the CIBA poll loop as a state machine.
//! - [`validate_id_token`]: ID tokens against the provider's JWKS.
//! - [`check_access_token`]: RFC 9068 access tokens, as an application checks them.
//! - QR sessions and well-known applications (ONES extensions).
//! - [`ClientAuth`]: request builders for every token-endpoint call, and the
//!   `parse_*` functions for their responses.
//!
//! Functions that depend on time take `now`; nothing here reads a file, the
//! environment, a clock or a socket. The crates above this one
//! (`onesoidc-fs`, `onesoidc-http`, `onesoidc-flows`) do the I/O.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::SystemTime;
//! use onesoidc_core::{ClientAuth, Issuer, KeyType, PemSigner, ProviderMetadata, parse_token_response};
//!
//! let issuer = Issuer::from_host("https://idp-server.ones-now.com").unwrap();
//! let endpoints = ProviderMetadata::fallback(&issuer);
//! let auth = ClientAuth::new("my-client", Arc::new(PemSigner::generate(KeyType::EccP256).unwrap()));
//! let request = auth
//!     .client_credentials_request(&endpoints.token_endpoint, &Default::default(), SystemTime::now())
//!     .unwrap();
//! // ... send `request` with any HTTP client, then:
//! let response = http::Response::builder()
//!     .status(200)
//!     .body(br#"{"access_token":"abc","token_type":"Bearer","expires_in":3600}"#.to_vec())
//!     .unwrap();
//! let tokens = parse_token_response(&endpoints.token_endpoint, &response, SystemTime::now()).unwrap();
//! assert_eq!(tokens.token_type, "Bearer");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod access_token;
mod authorization;
mod ciba;
mod clock;
mod config;
mod discovery;
mod dpop;
mod dpop_key;
mod dpop_nonce;
mod dpop_server_nonce;
mod error;
mod id_token;
mod ids;
mod json;
mod jwk;
mod jws;
mod jwt;
mod oauth;
mod ones;
mod registration;
pub mod request;
pub mod response;
pub use response::MAX_RETRY_AFTER;
mod signer;
pub mod yaml;

pub use access_token::{
    ACCESS_TOKEN_TYPES, AccessTokenClaims, AccessTokenError, AccessTokenExpectations,
    MAX_ACCESS_TOKEN_BYTES, check_access_token, claims_from_introspection, is_jwt,
};
pub use authorization::Authorization;
pub use ciba::{CibaPoller, PollStep};
pub use clock::ClockOffset;
pub use config::{DeviceConfig, JwsAlgorithm, KeySecurity, KeyType, Registration, UnknownKeyType};
pub use discovery::{Issuer, ProviderMetadata};
pub use dpop::{
    DEFAULT_DPOP_ALGORITHMS, DPOP_IAT_WINDOW, DPOP_PROOF_TYPE, DpopProof, DpopProofError,
    DpopProofExpectations, MAX_DPOP_JTI_BYTES, MAX_DPOP_PROOF_BYTES, dpop_access_token_hash,
    verify_dpop_proof,
};
pub use dpop_key::{DpopKey, DpopKeyError, dpop_htu};
pub use dpop_nonce::{
    DPOP_HEADER, DPOP_NONCE_HEADER, DpopNonces, MAX_DPOP_NONCE_BYTES, USE_DPOP_NONCE,
    dpop_challenge_error, dpop_nonce, dpop_nonce_challenge, dpop_nonce_challenge_in, dpop_nonce_in,
    is_usable_dpop_nonce,
};
pub use dpop_server_nonce::DpopNonceWindows;
pub use error::{ConfigError, Error, KeyError, SignError, TransportError, TransportErrorKind};
pub use id_token::{
    CLOCK_SKEW, DEFAULT_ID_TOKEN_ALGORITHMS, IdTokenClaims, IdTokenError, IdTokenExpectations,
    unverified_claims, validate_id_token,
};
pub use ids::{AuthReqId, ClientId, Endpoint, QrSessionId, Scope};
pub use jwk::{
    JWKS_DEFAULT_LIFETIME, JWKS_MAX_LIFETIME, JWKS_MIN_LIFETIME, JwkError, PublicJwk, PublicJwkSet,
    parse_jwks_response,
};
pub use jwt::{
    ASSERTION_LIFETIME, CLIENT_ASSERTION_TYPE, CibaRequest, InvalidCibaRequest, LoginHint,
    MAX_BINDING_MESSAGE_CHARS, REQUEST_OBJECT_LIFETIME, ciba_request_object, client_assertion,
    sign_jwt, sign_typed_jwt, unix_seconds,
};
pub use oauth::{
    BackchannelAuthResponse, CIBA_GRANT_TYPE, CibaPollResponse, ClientAuth, DEFAULT_CIBA_INTERVAL,
    DeviceTokenRequest, Expiry, Introspection, MAX_EXPIRES_IN, MAX_LOGIN_EXPIRES_IN,
    MAX_POLL_INTERVAL, SLOW_DOWN_INCREMENT, TokenSet, TokenTypeHint, UnknownTokenTypeHint,
    parse_backchannel_response, parse_ciba_poll_response, parse_ciba_poll_response_for,
    parse_introspection_response, parse_revocation_response, parse_token_response,
    parse_token_response_for,
};
pub use ones::{
    Application, QrSession, QrStatus, applications_request, applications_url, find_application,
    parse_applications, parse_qr_session, parse_qr_status, qr_create_request, qr_session_url,
    qr_sessions_url, qr_status_request,
};
pub use registration::{
    MachineFacts, REGISTRATION_POLL_INTERVAL, REGISTRATION_TIMEOUT, RegistrationBody,
    RegistrationStatus, parse_registration_response, parse_registration_status,
    registration_request, registration_status_request, registration_status_url, registration_url,
};
pub use signer::{PemSigner, Signer, ecdsa_der_to_fixed, is_tpm_key_pem};

/// Re-exported so callers can read tokens without naming the crate.
pub use secrecy::{ExposeSecret, SecretString};

/// The crate README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
