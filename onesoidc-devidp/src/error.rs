//! Errors: the JSON error responses of every route, and [`ControlError`] for
//! the control methods of [`crate::DevIdp`].

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// OAuth / OpenID error codes the provider answers with.
pub(crate) mod code {
    pub const INVALID_REQUEST: &str = "invalid_request";
    pub const INVALID_CLIENT: &str = "invalid_client";
    pub const INVALID_GRANT: &str = "invalid_grant";
    pub const INVALID_SCOPE: &str = "invalid_scope";
    pub const INVALID_TARGET: &str = "invalid_target";
    pub const UNSUPPORTED_GRANT_TYPE: &str = "unsupported_grant_type";
    pub const AUTHORIZATION_PENDING: &str = "authorization_pending";
    pub const SLOW_DOWN: &str = "slow_down";
    pub const EXPIRED_TOKEN: &str = "expired_token";
    pub const ACCESS_DENIED: &str = "access_denied";
    pub const UNKNOWN_USER_ID: &str = "unknown_user_id";
    pub const INVALID_REQUEST_OBJECT: &str = "invalid_request_object";
    pub const INVALID_BINDING_MESSAGE: &str = "invalid_binding_message";
    pub const EXPIRED_LOGIN_HINT_TOKEN: &str = "expired_login_hint_token";
    pub const INVALID_TOKEN: &str = "invalid_token";
    pub const NOT_FOUND: &str = "not_found";
    pub const CONFLICT: &str = "conflict";
    pub const FORBIDDEN: &str = "forbidden";
    /// RFC 9449 §5: the `DPoP` proof is missing where required, or invalid.
    pub const INVALID_DPOP_PROOF: &str = "invalid_dpop_proof";
    /// RFC 9449 §8: retry with the nonce in the `DPoP-Nonce` header.
    pub const USE_DPOP_NONCE: &str = "use_dpop_nonce";
}

/// An error response: status, `error` code and `error_description`.
///
/// Rendered as `{"error": ..., "error_description": ...}` with
/// `Cache-Control: no-store`; 401s caused by a bad bearer token also carry
/// `WWW-Authenticate: Bearer error="invalid_token"`, or a `DPoP` challenge
/// for a DPoP-bound token ([`ApiError::dpop_unauthorized`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: Cow<'static, str>,
    /// A 401 about a DPoP-bound token: the challenge is
    /// `WWW-Authenticate: DPoP error=…, algs=…` instead of `Bearer`.
    pub dpop_challenge: bool,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        ApiError {
            status,
            error,
            description: description.into(),
            dpop_challenge: false,
        }
    }

    /// 401 with `error` and a `WWW-Authenticate: DPoP` challenge (RFC 9449 §7.1).
    pub fn dpop_unauthorized(
        error: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        ApiError {
            dpop_challenge: true,
            ..Self::new(StatusCode::UNAUTHORIZED, error, description)
        }
    }

    /// 400 with `error`.
    pub fn bad_request(error: &'static str, description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, description)
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::bad_request(code::INVALID_REQUEST, description)
    }

    /// 401 `invalid_client`.
    pub fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code::INVALID_CLIENT, description)
    }

    /// 400 `invalid_grant`.
    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::bad_request(code::INVALID_GRANT, description)
    }

    /// 400 `invalid_request_object`.
    pub fn invalid_request_object(description: impl Into<Cow<'static, str>>) -> Self {
        Self::bad_request(code::INVALID_REQUEST_OBJECT, description)
    }

    /// 401 `invalid_token` (a missing, invalid or expired bearer token).
    pub fn invalid_token(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code::INVALID_TOKEN, description)
    }

    /// 404 `not_found`.
    pub fn not_found(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code::NOT_FOUND, description)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = (self.status, axum::Json(body)).into_response();
        crate::routes::no_store(&mut response);
        if self.dpop_challenge {
            let challenge = format!(
                r#"DPoP error="{}", algs="{}""#,
                self.error,
                onesoidc_core::DEFAULT_DPOP_ALGORITHMS.join(" ")
            );
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        } else if self.error == code::INVALID_TOKEN {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            );
        }
        response
    }
}

/// Why a control operation ([`crate::DevIdp::approve_ciba`] and friends, or
/// the `/control/` routes) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No CIBA request has this `auth_req_id`.
    #[error("unknown CIBA request {0:?}")]
    UnknownCibaRequest(String),
    /// The CIBA request was already decided, collected, or has expired.
    #[error("CIBA request {auth_req_id:?} is {state}, not pending")]
    CibaNotPending {
        /// The request.
        auth_req_id: String,
        /// `approved`, `denied`, `consumed` or `expired`.
        state: &'static str,
    },
    /// No QR session has this id.
    #[error("unknown QR session {0:?}")]
    UnknownQrSession(String),
    /// The QR session was already scanned, cancelled, or has expired.
    #[error("QR session {session_id:?} is {state}, not pending")]
    QrSessionNotPending {
        /// The session.
        session_id: String,
        /// `scanned`, `cancelled` or `expired`.
        state: &'static str,
    },
    /// The user is not one of the configured users.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// No registration request has this verification code.
    #[error("unknown registration request {0:?}")]
    UnknownRegistration(String),
    /// The registration request was already decided or has expired.
    #[error("registration request {verification_code:?} is {state}, not pending")]
    RegistrationNotPending {
        /// The verification code.
        verification_code: String,
        /// `approved`, `rejected` or `expired`.
        state: &'static str,
    },
    /// The public key cannot be used to verify signatures.
    #[error("invalid public key: {0}")]
    InvalidKey(String),
    /// A device with this client id is already registered.
    #[error("a device with client id {0:?} is already registered")]
    DuplicateClient(String),
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let (status, error) = match &e {
            ControlError::UnknownCibaRequest(_)
            | ControlError::UnknownQrSession(_)
            | ControlError::UnknownRegistration(_) => (StatusCode::NOT_FOUND, code::NOT_FOUND),
            ControlError::CibaNotPending { .. }
            | ControlError::QrSessionNotPending { .. }
            | ControlError::RegistrationNotPending { .. }
            | ControlError::DuplicateClient(_) => (StatusCode::CONFLICT, code::CONFLICT),
            ControlError::UnknownUser(_) => (StatusCode::BAD_REQUEST, code::UNKNOWN_USER_ID),
            ControlError::InvalidKey(_) => (StatusCode::BAD_REQUEST, code::INVALID_REQUEST),
        };
        ApiError::new(status, error, e.to_string())
    }
}
