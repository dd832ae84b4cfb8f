//! A local OnesID-compatible OpenID Provider for tests, the demo and
//! `onesoidc dev-idp`. **Not a production IdP**: all state is in memory and
//! it has a control surface a real provider would never have.
//!
//! It speaks all of `PROTOCOL.md` over real HTTP (axum) and verifies what a
//! strict server verifies, independently of onesoidc's client code:
//! private_key_jwt assertions (signature with the device's registered key,
//! `alg` = the key's algorithm, `iss` = `sub` = client id, `aud` = the URL of
//! the endpoint called, `exp`, `iat`, lifetime ≤ 300 s, replayed `jti`s),
//! and CIBA request objects (signature, `aud` = issuer, `exp`/`nbf`/`iat`/`jti`,
//! exactly one hint, `openid` scope, binding message length). RS256, ES256
//! and ES384 are verified with jsonwebtoken, ES512 with aws-lc-rs.
//!
//! ```
//! use std::time::SystemTime;
//! use onesoidc_core::{ExposeSecret, KeyType, PemSigner, client_assertion};
//! use onesoidc_devidp::{DevIdp, DevIdpConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let idp = DevIdp::start(DevIdpConfig::default()).await?;
//! let key = PemSigner::generate(KeyType::EccP256)?;
//! let device = idp.register_device(&key.public_jwk());
//!
//! let assertion = client_assertion(&key, &device.client_id.as_str().into(), &idp.token_endpoint().into(), SystemTime::now())?;
//! let tokens: serde_json::Value = reqwest::Client::new()
//!     .post(idp.token_endpoint())
//!     .form(&[
//!         ("grant_type", "client_credentials"),
//!         ("client_id", device.client_id.as_str()),
//!         ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
//!         ("client_assertion", assertion.expose_secret()),
//!     ])
//!     .send()
//!     .await?
//!     .json()
//!     .await?;
//! assert_eq!(tokens["token_type"], "Bearer");
//! assert_eq!(idp.stats().token_requests.client_credentials, 1);
//! idp.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Routes
//!
//! The issuer is `host + "/oidc"`; [`DevIdp::host`] is what `device.yml` calls `host`.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /oidc/.well-known/openid-configuration` | discovery (§2) |
//! | `GET /oidc/jwks` | the provider's RS256 key, `kid` = RFC 7638 thumbprint |
//! | `POST /oidc/token` | `client_credentials`, `urn:openid:params:grant-type:ciba`, `refresh_token` (§4–§6) |
//! | `POST /oidc/backchannel` | CIBA authentication request, poll mode (§5) |
//! | `POST /oidc/token/introspection` | RFC 7662 (§7) |
//! | `POST /oidc/token/revocation` | RFC 7009 (§7) |
//! | `POST /oidc/qr/sessions` | create a QR session, device bearer token (§8) |
//! | `GET /oidc/qr/sessions/{id}` | QR session status, device bearer token |
//! | `DELETE /oidc/qr/sessions/{id}` | cancel a pending session (dev IdP extension) |
//! | `POST /oidc/qr/sessions/{id}/scan` | the `cb_url`: the phone scans, with a user's bearer token |
//! | `GET /oidc/qr/sessions/{id}/scan` | the `cb_url` opened in a browser: the phone page (see *Console*) |
//! | `GET /oidc/.well-known/applications` | well-known applications, device bearer token (§9) |
//! | `POST /devices/registration` | device registration request (§10, at the host root) |
//! | `GET /devices/registration/status/{code}` | registration status |
//!
//! # Errors
//!
//! Every error is JSON `{"error": ..., "error_description": ...}` with
//! `Cache-Control: no-store`. Choices where the standards leave room:
//!
//! - Client authentication failures, **including missing** `client_id`,
//!   `client_assertion_type` or `client_assertion`, are `401 invalid_client`
//!   (RFC 6749 §5.2: "no client authentication included"). A body that is
//!   not a form, or a parameter sent twice, is `400 invalid_request`.
//! - CIBA request object: a bad JWT (signature, `alg`, `iss`, `aud`, times,
//!   `jti` replay) is `400 invalid_request_object`; no or several hints
//!   `invalid_request`; `scope` without `openid` `invalid_scope`; an unknown
//!   user `unknown_user_id`; a binding message over 120 characters
//!   `invalid_binding_message`. Authentication parameters outside the
//!   request object are `invalid_request`.
//! - CIBA polls: `authorization_pending`, `slow_down` (sooner than
//!   `ciba_interval` after the previous poll, or after the request for the
//!   first poll, while pending), `expired_token`, `access_denied`,
//!   `invalid_grant` (unknown, another client's, or already collected): all 400.
//! - Bearer-token routes (QR, applications): `401 invalid_token` for a
//!   missing, unknown, expired, revoked or wrong kind of token (QR creation,
//!   status and applications need a device token, `sub` = `client_id`; the
//!   scan route needs a token whose `sub` is a known user). Unknown sessions
//!   and codes are `404 not_found`.
//! - Refresh tokens rotate on every use; presenting a rotated one again is
//!   `invalid_grant` and revokes every token of that grant.
//! - DPoP (RFC 9449) at the token endpoint: a bad `DPoP` proof (any rule
//!   of §4.3, a replayed `jti`, two `DPoP` headers) is
//!   `400 invalid_dpop_proof`, as is a request without a proof where
//!   [`DevIdpConfig::require_dpop`] or [`Application::require_dpop`] asks
//!   for one; with [`DevIdpConfig::dpop_nonce`], a proof without the current
//!   nonce is `400 use_dpop_nonce` with a `DPoP-Nonce` header. A valid proof
//!   binds the access token (`cnf.jkt`, `token_type: DPoP`). A bound token
//!   at a bearer-token route (QR, applications) must come as
//!   `Authorization: DPoP` with a proof of its key (`ath`, `htm`, `htu`,
//!   fresh `jti`): sent as `Bearer`, or without a proof, it is
//!   `401 invalid_token`; with a bad proof (another key, a replay)
//!   `401 invalid_dpop_proof`; both with `WWW-Authenticate: DPoP error=…`.
//!
//! Wire durations (`expires_in`, `interval`) are whole seconds, rounded up;
//! internally the exact configured [`std::time::Duration`]s apply, measured
//! with tokio's clock (pausable in tests). JWT `iat`/`exp` use the system clock.
//!
//! # Control surface (not part of OnesID)
//!
//! For tests and the demo only; responses carry
//! `X-Onesoidc-DevIdp: control surface, not part of OnesID`. The same
//! operations exist as methods of [`DevIdp`].
//!
//! | route | what |
//! | --- | --- |
//! | `GET /control/ciba` | pending CIBA requests |
//! | `POST /control/ciba/{auth_req_id}/approve` / `deny` | answer as the user |
//! | `GET /control/qr` | pending QR sessions |
//! | `POST /control/qr/{session_id}/scan` | `{"username": "alice"}`: simulate the phone's scan |
//! | `POST /control/qr/{session_id}/cancel` | simulate the person cancelling on the phone |
//! | `GET /control/registrations` | pending registrations |
//! | `POST /control/registrations/{code}/approve` / `reject` | answer as the administrator |
//! | `POST /control/devices` | `{"public_jwk": {...}}` (optionally `device_id`, `client_id`) → `{"device_id", "client_id"}` |
//! | `GET /control/stats` | [`Stats`] |
//! | `GET` / `PUT /control/auto-approve` | `{"after_ms": 1500, "decision": "approve"}` or `null` |
//! | `POST /control/keys/rotate` | sign with a new key from now on, the old one still published ([`DevIdp::rotate_signing_key`]) → `{"kid", "previous_kid"}` |
//! | `POST /control/dpop/nonce/rotate` | start a new DPoP nonce window now ([`DevIdp::rotate_dpop_nonce`]) → `{"nonce"}` |
//!
//! The console's protections apply here too: only the provider's own host
//! names in `Host` (else `403 forbidden`), and every request but `GET` and
//! `HEAD` must carry `Content-Type: application/json` (else `415`), even
//! with an empty body, so a cross-site page cannot send one without a CORS
//! preflight, which is never granted.
//!
//! # Console (not part of OnesID)
//!
//! Pages for people, served by the provider itself ([`DevIdp::console_url`]
//! prints where): plain HTML from askama templates, a stylesheet and a
//! little JavaScript compiled into the binary, no Node build step.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /` | the console: pending registrations, CIBA logins and QR sessions with buttons to answer them; users, applications, devices, the last 50 token endpoint requests |
//! | `GET /oidc/qr/sessions/{id}/scan` | the phone page: pick a user, confirm (the scan), then approve or deny the device's login |
//! | `GET /console/events` | server-sent events: the console's sections that changed |
//! | `GET /console/phone/{id}/events` | server-sent events: the phone page's state |
//! | `GET /console/assets/{name}` | `console.css`, `console.js`, `icon.svg` |
//! | `POST /console/ciba/{auth_req_id}/approve` / `deny` | as `/control/ciba/...` |
//! | `POST /console/qr/{session_id}/scan` | `{"username": "alice"}`, as `/control/qr/.../scan` ([`DevIdp::simulate_qr_scan`]) |
//! | `POST /console/qr/{session_id}/cancel` | as `/control/qr/.../cancel` |
//! | `POST /console/registrations/{code}/approve` / `reject` | as `/control/registrations/...` |
//!
//! Safe enough for a test tool that may face a browser with other tabs open:
//!
//! - every `POST /console/...` needs the per-process token the pages embed
//!   (`<meta name="devidp-console-token">`) in an `X-DevIdp-Console-Token`
//!   header: `403 forbidden` without it, or with an `Origin` of another
//!   site. A cross-site page can neither read the token nor send the header
//!   (that needs a CORS preflight, which is never granted). The `/control/`
//!   routes need no token (tests and scripts call them), but take only JSON
//!   and answer only to the provider's own host names, as above;
//! - the console routes answer only to the provider's own host names (its
//!   host, and the loopback names when it listens on loopback or on every
//!   address): `403` for any other `Host`, so DNS rebinding cannot read the
//!   token;
//! - every value is HTML-escaped by the templates (a binding message of
//!   `<script>` shows as text), and the pages' Content-Security-Policy
//!   allows only their own script and no framing;
//! - no access, refresh or ID token, assertion, key or `login_hint_token` is
//!   ever shown: only kinds, key types and lifetimes.
//!
//! # Fault injection (tests only, feature `fault-proxy`)
//!
//! `faults::FaultProxy` is a loopback proxy that sits between a device
//! and the provider and forwards, refuses, delays, truncates or replaces
//! responses on demand; `faults::start_behind_proxy` starts a provider
//! behind one. Not part of OnesID and not compiled by default: test
//! support for fault tests of clients (`features = ["fault-proxy"]` in
//! `[dev-dependencies]`).
//!
//! # Config file
//!
//! [`DevIdpConfig::from_json_file`] reads JSON with the fields of
//! [`DevIdpConfig`], durations as integer milliseconds with an `_ms` suffix
//! (`access_token_ttl_ms`, `ciba_interval_ms`, ...), the auto-approve policy
//! as `{"after_ms", "decision"}` and devices as `{"device_id", "client_id",
//! "public_jwk"}`. Every field is optional; unknown fields are errors.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod activity;
mod ciba;
mod client_auth;
mod config;
mod console;
mod devices;
mod dpop;
mod error;
#[cfg(feature = "fault-proxy")]
pub mod faults;
mod form;
mod in_process;
mod jose;
mod provider_key;
mod qr;
mod registration;
mod request_object;
mod routes;
mod server;
mod state;
mod stats;
mod tokens;

pub use ciba::CibaRequestInfo;
pub use config::{
    AccessTokenFormat, Application, AutoApprove, ConfigError, DEFAULT_VHH_CLIENT_ID, DevIdpConfig,
    DeviceSeed, UserDecision,
};
pub use devices::RegisteredDevice;
pub use error::ControlError;
pub use in_process::InProcessClient;
pub use server::{DevIdp, WAIT_LIMIT};
pub use stats::{Stats, TokenRequestStats};
