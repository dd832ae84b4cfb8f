//! Signing JWTs with the device key: client assertions (PROTOCOL §3) and
//! CIBA request objects (§5). Both take `now`, so tests are exact.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use serde::Serialize;

use crate::error::SignError;
use crate::{Issuer, Signer};

/// `client_assertion_type` for private_key_jwt.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Lifetime of a client assertion.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// Lifetime of a CIBA request object (PROTOCOL §5 allows at most 300 s).
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
    let header = Header {
        alg: signer.algorithm().as_str(),
        typ: "JWT",
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
/// let jwt = client_assertion(&signer, "client-1", "https://idp/oidc/token", now).unwrap();
/// let claims: serde_json::Value = jsonwebtoken::dangerous::insecure_decode(jwt.expose_secret()).unwrap().claims;
/// assert_eq!(claims["exp"], 1_700_000_060);
/// assert_eq!(claims["aud"], "https://idp/oidc/token");
/// ```
pub fn client_assertion(
    signer: &dyn Signer,
    client_id: &str,
    audience: &str,
    now: SystemTime,
) -> Result<SecretString, SignError> {
    let iat = unix_seconds(now);
    let claims = AssertionClaims {
        iss: client_id,
        sub: client_id,
        aud: audience,
        jti: uuid::Uuid::new_v4().to_string(),
        iat,
        exp: iat + ASSERTION_LIFETIME.as_secs(),
    };
    sign_jwt(signer, &claims).map(SecretString::from)
}

/// Who the CIBA request is about: exactly one hint (PROTOCOL §5).
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

/// What a CIBA authentication request asks for.
///
/// ```
/// use onesoidc_core::{CibaRequest, LoginHint};
/// let request = CibaRequest::new(LoginHint::Username("alice".into()))
///     .binding_message("Log in to kiosk 7")
///     .resource("https://vhh.example.com");
/// assert_eq!(request.scope, "openid offline_access profile");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CibaRequest {
    /// Who to authenticate.
    pub hint: LoginHint,
    /// Space-separated scopes; must contain `openid`.
    pub scope: String,
    /// Shown on the user's phone; at most 120 characters.
    pub binding_message: Option<String>,
    /// Target application URL (RFC 8707).
    pub resource: Option<String>,
    /// Requested lifetime of the request, in seconds.
    pub requested_expiry: Option<u64>,
    /// Requested ACR values.
    pub acr_values: Option<String>,
    /// ONES extension: the QR session this request continues.
    pub qr_session_id: Option<String>,
}

impl CibaRequest {
    /// Default scope for user logins.
    pub const DEFAULT_SCOPE: &'static str = "openid offline_access profile";

    /// A request for `hint` with the default scope.
    pub fn new(hint: LoginHint) -> Self {
        CibaRequest {
            hint,
            scope: Self::DEFAULT_SCOPE.into(),
            binding_message: None,
            resource: None,
            requested_expiry: None,
            acr_values: None,
            qr_session_id: None,
        }
    }

    /// Sets the scope (`openid` is added when missing).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        let scope = scope.into();
        self.scope = if scope.split_whitespace().any(|s| s == "openid") {
            scope
        } else {
            format!("openid {scope}").trim().to_string()
        };
        self
    }

    /// Sets the message shown on the user's phone.
    pub fn binding_message(mut self, message: impl Into<String>) -> Self {
        self.binding_message = Some(message.into());
        self
    }

    /// Sets the target application URL.
    pub fn resource(mut self, url: impl Into<String>) -> Self {
        self.resource = Some(url.into());
        self
    }

    /// Sets the requested expiry in seconds.
    pub fn requested_expiry(mut self, seconds: u64) -> Self {
        self.requested_expiry = Some(seconds);
        self
    }

    /// Sets the ACR values.
    pub fn acr_values(mut self, acr: impl Into<String>) -> Self {
        self.acr_values = Some(acr.into());
        self
    }

    /// Marks this request as the continuation of QR session `session_id`.
    pub fn qr_session_id(mut self, session_id: impl Into<String>) -> Self {
        self.qr_session_id = Some(session_id.into());
        self
    }

    /// Checks what the protocol requires before anything is sent.
    pub fn validate(&self) -> Result<(), String> {
        if !self.scope.split_whitespace().any(|s| s == "openid") {
            return Err(format!("scope {:?} must contain `openid`", self.scope));
        }
        if let Some(m) = &self.binding_message {
            let chars = m.chars().count();
            if chars > MAX_BINDING_MESSAGE_CHARS {
                return Err(format!(
                    "binding message is {chars} characters; at most {MAX_BINDING_MESSAGE_CHARS} are allowed"
                ));
            }
        }
        let hint_empty = match &self.hint {
            LoginHint::Username(s) | LoginHint::LoginHintToken(s) | LoginHint::IdTokenHint(s) => {
                s.trim().is_empty()
            }
        };
        if hint_empty {
            return Err("the login hint is empty".into());
        }
        Ok(())
    }
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

/// The signed CIBA request object (PROTOCOL §5): `aud` = issuer,
/// `iat` = `nbf` = now, `exp` = now + 300 s, a fresh `jti`.
///
/// ```
/// use std::time::UNIX_EPOCH;
/// use onesoidc_core::{CibaRequest, Issuer, KeyType, LoginHint, PemSigner, ciba_request_object};
/// let signer = PemSigner::generate(KeyType::EccP256).unwrap();
/// let issuer = Issuer::new("https://idp.example.com/oidc").unwrap();
/// let request = CibaRequest::new(LoginHint::Username("alice".into()));
/// let jwt = ciba_request_object(&signer, "client-1", &issuer, &request, UNIX_EPOCH).unwrap();
/// let claims: serde_json::Value = jsonwebtoken::dangerous::insecure_decode(&jwt).unwrap().claims;
/// assert_eq!(claims["login_hint"], "alice");
/// assert_eq!(claims["aud"], "https://idp.example.com/oidc");
/// ```
pub fn ciba_request_object(
    signer: &dyn Signer,
    client_id: &str,
    issuer: &Issuer,
    request: &CibaRequest,
    now: SystemTime,
) -> Result<String, SignError> {
    let iat = unix_seconds(now);
    let (mut login_hint, mut login_hint_token, mut id_token_hint) = (None, None, None);
    match &request.hint {
        LoginHint::Username(u) => login_hint = Some(u.as_str()),
        LoginHint::LoginHintToken(t) => login_hint_token = Some(t.as_str()),
        LoginHint::IdTokenHint(t) => id_token_hint = Some(t.as_str()),
    }
    let claims = RequestObjectClaims {
        iss: client_id,
        aud: issuer.as_str(),
        iat,
        nbf: iat,
        exp: iat + REQUEST_OBJECT_LIFETIME.as_secs(),
        jti: uuid::Uuid::new_v4().to_string(),
        client_id,
        scope: &request.scope,
        login_hint,
        login_hint_token,
        id_token_hint,
        binding_message: request.binding_message.as_deref(),
        resource: request.resource.as_deref(),
        requested_expiry: request.requested_expiry,
        acr_values: request.acr_values.as_deref(),
        qr_session_id: request.qr_session_id.as_deref(),
    };
    sign_jwt(signer, &claims)
}
