//! Signing JWTs with the device key: client assertions ([PROTOCOL §3](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#3-client-authentication-private_key_jwt-rfc-7523-oidc-core-9)) and
//! CIBA request objects (§5). Both take `now`, so tests are exact.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use serde::Serialize;

use crate::error::SignError;
use crate::{ClientId, Endpoint, Issuer, QrSessionId, Scope, Signer};

/// `client_assertion_type` for private_key_jwt.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Lifetime of a client assertion.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// Lifetime of a CIBA request object ([PROTOCOL §5](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#5-ciba-poll-mode-openid-ciba-core-10) allows at most 300 s).
pub const REQUEST_OBJECT_LIFETIME: Duration = Duration::from_secs(300);

/// Longest `binding_message` the protocol allows, in characters.
pub const MAX_BINDING_MESSAGE_CHARS: usize = 120;

/// Seconds since the Unix epoch (0 for times before it).
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
}

/// Signs `claims` as a compact JWS with `signer` (`typ: JWT`, `kid` when the signer has one).
///
/// ```
/// use onesoidc_core::{KeyType, PemSigner, sign_jwt};
/// let signer = PemSigner::generate(KeyType::EccP384).unwrap();
/// let jwt = sign_jwt(&signer, &serde_json::json!({"sub": "me"})).unwrap();
/// assert_eq!(jwt.split('.').count(), 3);
/// ```
pub fn sign_jwt(signer: &dyn Signer, claims: &impl Serialize) -> Result<String, SignError> {
    sign_typed_jwt(signer, "JWT", claims)
}

/// Signs `claims` as a compact JWS with the header `typ` given, e.g.
/// `at+jwt` for an RFC 9068 access token.
///
/// ```
/// use onesoidc_core::{KeyType, PemSigner, sign_typed_jwt};
/// let signer = PemSigner::generate(KeyType::EccP256).unwrap();
/// let jwt = sign_typed_jwt(&signer, "at+jwt", &serde_json::json!({"sub": "me"})).unwrap();
/// assert!(onesoidc_core::is_jwt(&jwt));
/// ```
pub fn sign_typed_jwt(
    signer: &dyn Signer,
    typ: &str,
    claims: &impl Serialize,
) -> Result<String, SignError> {
    let header = Header {
        alg: signer.algorithm().as_str(),
        typ,
        kid: signer.key_id(),
    };
    let mut token = base64_json(&header)?;
    token.push('.');
    token.push_str(&base64_json(claims)?);
    let signature = signer.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(token)
}

fn base64_json<T: Serialize + ?Sized>(value: &T) -> Result<String, SignError> {
    let json = serde_json::to_vec(value).map_err(|e| SignError::Encode(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: String,
    iat: u64,
    exp: u64,
}

/// A private_key_jwt client assertion for one request to `audience` (the
/// endpoint URL): `iss` = `sub` = client_id, a fresh UUIDv4 `jti`, `iat` =
/// now, `exp` = now + 60 s.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use secrecy::ExposeSecret;
/// use onesoidc_core::{KeyType, PemSigner, client_assertion};
/// let signer = PemSigner::generate(KeyType::EccP256).unwrap();
/// let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let token = "https://idp/oidc/token".into();
/// let jwt = client_assertion(&signer, &"client-1".into(), &token, now).unwrap();
/// let claims: serde_json::Value = jsonwebtoken::dangerous::insecure_decode(jwt.expose_secret()).unwrap().claims;
/// assert_eq!(claims["exp"], 1_700_000_060);
/// assert_eq!(claims["aud"], "https://idp/oidc/token");
/// ```
pub fn client_assertion(
    signer: &dyn Signer,
    client_id: &ClientId,
    audience: &Endpoint,
    now: SystemTime,
) -> Result<SecretString, SignError> {
    let iat = unix_seconds(now);
    let claims = AssertionClaims {
        iss: client_id.as_str(),
        sub: client_id.as_str(),
        aud: audience.as_str(),
        jti: uuid::Uuid::new_v4().to_string(),
        iat,
        exp: iat + ASSERTION_LIFETIME.as_secs(),
    };
    sign_jwt(signer, &claims).map(SecretString::from)
}

/// Who the CIBA request is about: exactly one hint ([PROTOCOL §5](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#5-ciba-poll-mode-openid-ciba-core-10)).
#[derive(Clone, PartialEq, Eq)]
pub enum LoginHint {
    /// A username (`login_hint`).
    Username(String),
    /// A token that identifies the user, e.g. from a QR scan (`login_hint_token`).
    LoginHintToken(String),
    /// An ID token previously issued to the user (`id_token_hint`).
    IdTokenHint(String),
}

impl std::fmt::Debug for LoginHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginHint::Username(u) => f.debug_tuple("Username").field(u).finish(),
            LoginHint::LoginHintToken(_) => f.write_str("LoginHintToken([redacted])"),
            LoginHint::IdTokenHint(_) => f.write_str("IdTokenHint([redacted])"),
        }
    }
}

/// What a CIBA authentication request asks for ([PROTOCOL §5](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#5-ciba-poll-mode-openid-ciba-core-10)): who, and
/// the options of the login. Build it with the setters; the fields are
/// public to read.
///
/// ```
/// use std::time::Duration;
/// use onesoidc_core::{CibaRequest, LoginHint};
/// let request = CibaRequest::for_username("alice")
///     .binding_message("Log in to kiosk 7")
///     .resource("https://vhh.example.com")
///     .requested_expiry(Duration::from_secs(120));
/// assert_eq!(request.scope, "openid offline_access profile");
/// assert_eq!(request.hint, Some(LoginHint::Username("alice".into())));
/// ```
///
/// A QR login finds the person by the scan: its request has no hint
/// ([`CibaRequest::new`]); the flow adds the `login_hint_token` and
/// `qr_session_id` it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CibaRequest {
    /// Who to authenticate (`None` until known, e.g. before a QR scan).
    pub hint: Option<LoginHint>,
    /// Space-separated scopes; always contains `openid`.
    pub scope: Scope,
    /// Shown on the person's phone; at most 120 characters.
    pub binding_message: Option<String>,
    /// Target application URL (RFC 8707), e.g. a well-known application's.
    pub resource: Option<String>,
    /// Requested lifetime of the request (sent in whole seconds, rounded up).
    pub requested_expiry: Option<Duration>,
    /// Requested ACR values.
    pub acr_values: Option<String>,
    /// ONES extension: the QR session this request continues.
    pub qr_session_id: Option<QrSessionId>,
}

impl Default for CibaRequest {
    fn default() -> Self {
        CibaRequest::new()
    }
}

impl CibaRequest {
    /// Default scope for user logins.
    pub const DEFAULT_SCOPE: &'static str = "openid offline_access profile";

    /// A request with the default scope and no hint yet.
    pub fn new() -> Self {
        CibaRequest {
            hint: None,
            scope: Scope::new(Self::DEFAULT_SCOPE),
            binding_message: None,
            resource: None,
            requested_expiry: None,
            acr_values: None,
            qr_session_id: None,
        }
    }

    /// A request for the person with this username (`login_hint`).
    pub fn for_username(username: impl Into<String>) -> Self {
        Self::new().login_hint(LoginHint::Username(username.into()))
    }

    /// Who to authenticate.
    pub fn login_hint(mut self, hint: LoginHint) -> Self {
        self.hint = Some(hint);
        self
    }

    /// The scopes (default `openid offline_access profile`); `openid` is
    /// added when missing.
    pub fn scope(mut self, scope: impl Into<Scope>) -> Self {
        self.scope = scope.into().with_openid();
        self
    }

    /// The message shown on the person's phone (at most 120 characters).
    pub fn binding_message(mut self, message: impl Into<String>) -> Self {
        self.binding_message = Some(message.into());
        self
    }

    /// The target application URL (`resource`).
    pub fn resource(mut self, url: impl Into<String>) -> Self {
        self.resource = Some(url.into());
        self
    }

    /// The requested lifetime of the request.
    pub fn requested_expiry(mut self, expiry: Duration) -> Self {
        self.requested_expiry = Some(expiry);
        self
    }

    /// The requested ACR values.
    pub fn acr_values(mut self, acr: impl Into<String>) -> Self {
        self.acr_values = Some(acr.into());
        self
    }

    /// Marks this request as the continuation of QR session `session_id`.
    pub fn qr_session_id(mut self, session_id: impl Into<QrSessionId>) -> Self {
        self.qr_session_id = Some(session_id.into());
        self
    }

    /// Checks what the protocol requires before anything is sent.
    pub fn validate(&self) -> Result<(), InvalidCibaRequest> {
        if !self.scope.contains("openid") {
            return Err(InvalidCibaRequest::NoOpenidScope(self.scope.clone()));
        }
        if let Some(m) = &self.binding_message {
            let chars = m.chars().count();
            if chars > MAX_BINDING_MESSAGE_CHARS {
                return Err(InvalidCibaRequest::BindingMessageTooLong { chars });
            }
        }
        match &self.hint {
            None => Err(InvalidCibaRequest::NoHint),
            Some(
                LoginHint::Username(s) | LoginHint::LoginHintToken(s) | LoginHint::IdTokenHint(s),
            ) if s.trim().is_empty() => Err(InvalidCibaRequest::EmptyHint),
            Some(_) => Ok(()),
        }
    }
}

/// Why a [`CibaRequest`] cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidCibaRequest {
    /// The scope lacks `openid`.
    #[error("scope {0:?} must contain `openid`")]
    NoOpenidScope(Scope),
    /// The binding message is longer than the protocol allows.
    #[error(
        "the binding message is {chars} characters; at most {MAX_BINDING_MESSAGE_CHARS} are allowed"
    )]
    BindingMessageTooLong {
        /// Its length in characters.
        chars: usize,
    },
    /// No username or other hint says who to authenticate.
    #[error(
        "the request names nobody to authenticate: give a username (CibaRequest::for_username)"
    )]
    NoHint,
    /// The hint is empty.
    #[error("the login hint is empty")]
    EmptyHint,
}

#[derive(Serialize)]
struct RequestObjectClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: String,
    client_id: &'a str,
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    login_hint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    login_hint_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token_hint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    binding_message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_expiry: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    acr_values: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    qr_session_id: Option<&'a str>,
}

/// The signed CIBA request object ([PROTOCOL §5](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#5-ciba-poll-mode-openid-ciba-core-10)): `aud` = issuer,
/// `iat` = `nbf` = now, `exp` = now + 300 s, a fresh `jti`.
///
/// ```
/// use std::time::UNIX_EPOCH;
/// use onesoidc_core::{CibaRequest, Issuer, KeyType, LoginHint, PemSigner, ciba_request_object};
/// let signer = PemSigner::generate(KeyType::EccP256).unwrap();
/// let issuer = Issuer::new("https://idp.example.com/oidc").unwrap();
/// let request = CibaRequest::for_username("alice");
/// let jwt = ciba_request_object(&signer, &"client-1".into(), &issuer, &request, UNIX_EPOCH).unwrap();
/// let claims: serde_json::Value = jsonwebtoken::dangerous::insecure_decode(&jwt).unwrap().claims;
/// assert_eq!(claims["login_hint"], "alice");
/// assert_eq!(claims["aud"], "https://idp.example.com/oidc");
/// ```
pub fn ciba_request_object(
    signer: &dyn Signer,
    client_id: &ClientId,
    issuer: &Issuer,
    request: &CibaRequest,
    now: SystemTime,
) -> Result<String, SignError> {
    let iat = unix_seconds(now);
    let (mut login_hint, mut login_hint_token, mut id_token_hint) = (None, None, None);
    match &request.hint {
        Some(LoginHint::Username(u)) => login_hint = Some(u.as_str()),
        Some(LoginHint::LoginHintToken(t)) => login_hint_token = Some(t.as_str()),
        Some(LoginHint::IdTokenHint(t)) => id_token_hint = Some(t.as_str()),
        None => {}
    }
    let claims = RequestObjectClaims {
        iss: client_id.as_str(),
        aud: issuer.as_str(),
        iat,
        nbf: iat,
        exp: iat + REQUEST_OBJECT_LIFETIME.as_secs(),
        jti: uuid::Uuid::new_v4().to_string(),
        client_id: client_id.as_str(),
        scope: request.scope.as_str(),
        login_hint,
        login_hint_token,
        id_token_hint,
        binding_message: request.binding_message.as_deref(),
        resource: request.resource.as_deref(),
        requested_expiry: request
            .requested_expiry
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0)),
        acr_values: request.acr_values.as_deref(),
        qr_session_id: request.qr_session_id.as_ref().map(QrSessionId::as_str),
    };
    sign_jwt(signer, &claims)
}
