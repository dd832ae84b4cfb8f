//! OAuth requests with private_key_jwt client authentication, and the
//! parsers of their responses ([PROTOCOL §3](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#3-client-authentication-private_key_jwt-rfc-7523-oidc-core-9)–[§7](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#7-introspection-and-revocation)).
//!
//! Each `*_request` function is pure apart from the random `jti`: it takes
//! `now`, signs a fresh client assertion for the endpoint, and returns an
//! `http::Request`. Each `parse_*` function takes the response and returns a
//! typed result or an [`Error`] that names the endpoint.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};

use crate::jwt::{CLIENT_ASSERTION_TYPE, client_assertion};
use crate::request::{HttpRequest, post_form};
use crate::response::{HttpResponse, Json, error_from_response};
use crate::{
    AuthReqId, CibaRequest, ClientId, Endpoint, Error, Issuer, Scope, Signer, ciba_request_object,
};

/// `grant_type` of the CIBA token request.
pub const CIBA_GRANT_TYPE: &str = "urn:openid:params:grant-type:ciba";

/// Default CIBA poll interval when the provider names none.
pub const DEFAULT_CIBA_INTERVAL: Duration = Duration::from_secs(5);

/// How much `slow_down` adds to the poll interval.
pub const SLOW_DOWN_INCREMENT: Duration = Duration::from_secs(5);

/// A device's client credentials: its client id and the key that signs its assertions.
///
/// ```
/// use std::sync::Arc;
/// use std::time::UNIX_EPOCH;
/// use onesoidc_core::{ClientAuth, Endpoint, KeyType, PemSigner};
/// let auth = ClientAuth::new("client-1", Arc::new(PemSigner::generate(KeyType::EccP256).unwrap()));
/// let token = Endpoint::from("https://idp/oidc/token");
/// let req = auth.client_credentials_request(&token, &Default::default(), UNIX_EPOCH).unwrap();
/// let body = String::from_utf8(req.body().clone()).unwrap();
/// assert!(body.starts_with("grant_type=client_credentials&client_id=client-1&client_assertion_type="));
/// ```
#[derive(Debug, Clone)]
pub struct ClientAuth {
    /// The OAuth client id.
    pub client_id: ClientId,
    /// The device key.
    pub signer: Arc<dyn Signer>,
}

/// Which kind of token is being introspected or revoked (RFC 7009 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenTypeHint {
    /// `access_token`.
    AccessToken,
    /// `refresh_token`.
    RefreshToken,
}

impl TokenTypeHint {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenTypeHint::AccessToken => "access_token",
            TokenTypeHint::RefreshToken => "refresh_token",
        }
    }
}

impl std::str::FromStr for TokenTypeHint {
    type Err = UnknownTokenTypeHint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "access_token" => Ok(TokenTypeHint::AccessToken),
            "refresh_token" => Ok(TokenTypeHint::RefreshToken),
            other => Err(UnknownTokenTypeHint(other.to_string())),
        }
    }
}

/// A token type hint other than `access_token` or `refresh_token`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown token type hint {0:?}; use access_token or refresh_token")]
pub struct UnknownTokenTypeHint(pub String);

impl ClientAuth {
    /// Client credentials for `client_id` signed by `signer`.
    pub fn new(client_id: impl Into<ClientId>, signer: Arc<dyn Signer>) -> Self {
        ClientAuth {
            client_id: client_id.into(),
            signer,
        }
    }

    /// `POST endpoint` with `fields` plus client authentication, signed for `endpoint`.
    pub fn authenticated_form(
        &self,
        endpoint: &Endpoint,
        fields: &[(&str, &str)],
        now: SystemTime,
    ) -> Result<HttpRequest, Error> {
        let assertion = client_assertion(self.signer.as_ref(), &self.client_id, endpoint, now)?;
        let mut all: Vec<(&str, &str)> = Vec::with_capacity(fields.len() + 3);
        all.extend_from_slice(fields);
        all.push(("client_id", self.client_id.as_str()));
        all.push(("client_assertion_type", CLIENT_ASSERTION_TYPE));
        all.push(("client_assertion", assertion.expose_secret()));
        post_form(endpoint, &all)
    }

    /// Client credentials grant ([PROTOCOL §4](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#4-device-access-token)).
    pub fn client_credentials_request(
        &self,
        token_endpoint: &Endpoint,
        request: &DeviceTokenRequest,
        now: SystemTime,
    ) -> Result<HttpRequest, Error> {
        let mut fields = vec![("grant_type", "client_credentials")];
        fields.extend(request.scope.as_ref().map(|s| ("scope", s.as_str())));
        fields.extend(request.resource.as_deref().map(|r| ("resource", r)));
        self.authenticated_form(token_endpoint, &fields, now)
    }

    /// Refresh token grant ([PROTOCOL §6](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#6-refresh)).
    pub fn refresh_token_request(
        &self,
        token_endpoint: &Endpoint,
        refresh_token: &SecretString,
        now: SystemTime,
    ) -> Result<HttpRequest, Error> {
        let fields = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
        ];
        self.authenticated_form(token_endpoint, &fields, now)
    }

    /// CIBA authentication request with a signed request object ([PROTOCOL §5](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#5-ciba-poll-mode-openid-ciba-core-10)).
    /// A request the protocol does not allow is [`Error::InvalidRequest`]
    /// and nothing is signed.
    pub fn backchannel_request(
        &self,
        backchannel_endpoint: &Endpoint,
        issuer: &Issuer,
        request: &CibaRequest,
        now: SystemTime,
    ) -> Result<HttpRequest, Error> {
        request.validate().map_err(|reason| Error::InvalidRequest {
            endpoint: backchannel_endpoint.to_string(),
            reason: reason.to_string(),
        })?;
        let object =
            ciba_request_object(self.signer.as_ref(), &self.client_id, issuer, request, now)?;
        self.authenticated_form(backchannel_endpoint, &[("request", &object)], now)
    }

    /// CIBA token poll ([PROTOCOL §5](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#5-ciba-poll-mode-openid-ciba-core-10)).
    pub fn ciba_poll_request(
        &self,
        token_endpoint: &Endpoint,
        auth_req_id: &AuthReqId,
        now: SystemTime,
    ) -> Result<HttpRequest, Error> {
        let fields = [
            ("grant_type", CIBA_GRANT_TYPE),
            ("auth_req_id", auth_req_id.as_str()),
        ];
        self.authenticated_form(token_endpoint, &fields, now)
    }

    /// Token introspection (RFC 7662).
    pub fn introspection_request(
        &self,
        introspection_endpoint: &Endpoint,
        token: &SecretString,
        hint: Option<TokenTypeHint>,
        now: SystemTime,
    ) -> Result<HttpRequest, Error> {
        self.token_form(introspection_endpoint, token, hint, now)
    }

    /// Token revocation (RFC 7009).
    pub fn revocation_request(
        &self,
        revocation_endpoint: &Endpoint,
        token: &SecretString,
        hint: Option<TokenTypeHint>,
        now: SystemTime,
    ) -> Result<HttpRequest, Error> {
        self.token_form(revocation_endpoint, token, hint, now)
    }

    /// `token` (and `token_type_hint`), authenticated: the body of both
    /// introspection and revocation.
    fn token_form(
        &self,
        endpoint: &Endpoint,
        token: &SecretString,
        hint: Option<TokenTypeHint>,
        now: SystemTime,
    ) -> Result<HttpRequest, Error> {
        let mut fields = vec![("token", token.expose_secret())];
        fields.extend(hint.map(|h| ("token_type_hint", h.as_str())));
        self.authenticated_form(endpoint, &fields, now)
    }
}

/// What a device asks for with its client credentials ([PROTOCOL §4](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#4-device-access-token)).
///
/// ```
/// let request = onesoidc_core::DeviceTokenRequest::default().scope("read write");
/// assert_eq!(request.scope_value().unwrap(), "read write");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DeviceTokenRequest {
    scope: Option<Scope>,
    resource: Option<String>,
}

impl DeviceTokenRequest {
    /// Asks for these space-separated scopes (default: none, the provider's default).
    pub fn scope(mut self, scope: impl Into<Scope>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Asks for a token meant for this resource (RFC 8707; default: none).
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// The scope asked for.
    pub fn scope_value(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }

    /// The resource asked for.
    pub fn resource_value(&self) -> Option<&str> {
        self.resource.as_deref()
    }
}

/// Tokens from a token endpoint.
///
/// `Debug` redacts the tokens and shows the expiry as RFC 3339.
#[derive(Clone)]
pub struct TokenSet {
    /// The access token.
    pub access_token: SecretString,
    /// `Bearer`, or `DPoP` for a token bound to a key (then
    /// [`dpop_jkt`](Self::dpop_jkt) names the key).
    pub token_type: String,
    /// When the access token expires (`now + expires_in`), if the provider said.
    pub expires_at: Option<SystemTime>,
    /// The refresh token, if any.
    pub refresh_token: Option<SecretString>,
    /// The ID token, if any.
    pub id_token: Option<SecretString>,
    /// Granted scope, if the provider said.
    pub scope: Option<Scope>,
    /// For a DPoP-bound token (`token_type: DPoP`, RFC 9449): the RFC 7638
    /// thumbprint of the key it is bound to, whose proofs must go with
    /// every use ([`DpopKey::thumbprint`](crate::DpopKey::thumbprint)).
    /// `None` for a bearer token.
    pub dpop_jkt: Option<String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |t: &Option<SecretString>| t.as_ref().map(|_| "[redacted]");
        f.debug_struct("TokenSet")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expiry())
            .field("refresh_token", &redacted(&self.refresh_token))
            .field("id_token", &redacted(&self.id_token))
            .field("scope", &self.scope)
            .field("dpop_jkt", &self.dpop_jkt)
            .finish()
    }
}

/// When an access token expires, printed as RFC 3339 (UTC); see
/// [`TokenSet::expiry`].
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let expiry = onesoidc_core::Expiry::new(Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000)));
/// assert_eq!(expiry.to_string(), "at 2027-01-15T08:00:00Z");
/// assert_eq!(expiry.remaining(UNIX_EPOCH + Duration::from_secs(1_799_999_000)), Some(Duration::from_secs(1000)));
/// assert_eq!(onesoidc_core::Expiry::new(None).to_string(), "at an unknown time");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Expiry(Option<SystemTime>);

impl Expiry {
    /// The expiry `at` (`None`: the provider did not say).
    pub fn new(at: Option<SystemTime>) -> Self {
        Expiry(at)
    }

    /// The moment, if known.
    pub fn at(&self) -> Option<SystemTime> {
        self.0
    }

    /// Time left at `now` (zero once past); `None` when unknown.
    pub fn remaining(&self, now: SystemTime) -> Option<Duration> {
        self.0
            .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO))
    }
}

impl std::fmt::Display for Expiry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(at) => write!(f, "at {}", humantime::format_rfc3339_seconds(at)),
            None => f.write_str("at an unknown time"),
        }
    }
}

impl std::fmt::Debug for Expiry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(at) => write!(f, "{}", humantime::format_rfc3339_seconds(at)),
            None => f.write_str("unknown"),
        }
    }
}

impl TokenSet {
    /// When the access token expires, readable: `at 2026-11-30T12:00:00Z`.
    pub fn expiry(&self) -> Expiry {
        Expiry(self.expires_at)
    }

    /// Time left until expiry at `now` (zero once expired); `None` when unknown.
    pub fn expires_in(&self, now: SystemTime) -> Option<Duration> {
        self.expires_at
            .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO))
    }

    /// Whether the access token is bound to a DPoP key (RFC 9449): every
    /// use needs a proof from the key [`dpop_jkt`](Self::dpop_jkt) names.
    pub fn is_dpop_bound(&self) -> bool {
        self.dpop_jkt.is_some()
    }

    /// Whether the access token has expired at `now` (never, when the expiry is unknown).
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Applies [PROTOCOL §6](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#6-refresh): a refresh response without a `refresh_token` keeps the old one.
    pub fn keep_refresh_token_from(mut self, previous: &TokenSet) -> Self {
        if self.refresh_token.is_none() {
            self.refresh_token = previous.refresh_token.clone();
        }
        self
    }
}

/// Longest token lifetime accepted as given; longer ones are capped.
pub const MAX_EXPIRES_IN: Duration = Duration::from_secs(366 * 24 * 3600);

/// Longest time a CIBA request (or a QR session) can be waited for; a
/// provider's longer `expires_in` is capped.
pub const MAX_LOGIN_EXPIRES_IN: Duration = Duration::from_secs(3600);

/// Longest poll interval accepted (CIBA, QR); a provider's longer
/// `interval` is capped, so a person's approval is seen within a minute.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// Parses a token response (RFC 6749 §5.1) received at `now`, to a
/// request sent without a DPoP proof: the token must be `Bearer`.
///
/// `expires_in` may be a whole or fractional number of seconds (or one as a
/// string); over [`MAX_EXPIRES_IN`] it is capped. Errors name the field and
/// what it is, never the body (which holds tokens).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use secrecy::ExposeSecret;
/// let response = http::Response::builder().status(200)
///     .body(br#"{"access_token":"at","token_type":"Bearer","expires_in":300}"#.to_vec()).unwrap();
/// let token = onesoidc_core::Endpoint::from("https://idp/oidc/token");
/// let tokens = onesoidc_core::parse_token_response(&token, &response, UNIX_EPOCH).unwrap();
/// assert_eq!(tokens.access_token.expose_secret(), "at");
/// assert_eq!(tokens.expires_at, Some(UNIX_EPOCH + Duration::from_secs(300)));
/// ```
pub fn parse_token_response(
    endpoint: &Endpoint,
    response: &HttpResponse,
    now: SystemTime,
) -> Result<TokenSet, Error> {
    parse_token_response_for(endpoint, response, now, None)
}

/// Parses a token response (RFC 6749 §5.1) received at `now`, to a request
/// that carried a DPoP proof from the key with thumbprint `proof_jkt`
/// (`None`: no proof). The token type must match what was sent (RFC 9449
/// §5): `DPoP` to a request with a proof (the set keeps `proof_jkt` as
/// [`TokenSet::dpop_jkt`]), `Bearer` to one without; a mismatch is
/// [`Error::InvalidResponse`] naming both.
///
/// ```
/// use std::time::UNIX_EPOCH;
/// let token = onesoidc_core::Endpoint::from("https://idp/oidc/token");
/// let answer = |token_type: &str| http::Response::builder().status(200)
///     .body(format!(r#"{{"access_token":"at","token_type":"{token_type}"}}"#).into_bytes()).unwrap();
/// let bound = onesoidc_core::parse_token_response_for(&token, &answer("DPoP"), UNIX_EPOCH, Some("jkt-1")).unwrap();
/// assert_eq!(bound.token_type, "DPoP");
/// assert_eq!(bound.dpop_jkt.as_deref(), Some("jkt-1"));
/// let unbound = onesoidc_core::parse_token_response_for(&token, &answer("Bearer"), UNIX_EPOCH, Some("jkt-1"));
/// assert!(unbound.unwrap_err().to_string().contains("`token_type` is `Bearer` but the request carried a DPoP proof"));
/// ```
pub fn parse_token_response_for(
    endpoint: &Endpoint,
    response: &HttpResponse,
    now: SystemTime,
    proof_jkt: Option<&str>,
) -> Result<TokenSet, Error> {
    let body = Json::parse(endpoint, response)?;
    let access_token = body.required_str("access_token")?;
    let token_type = body.required_str("token_type")?;
    let (token_type, dpop_jkt) = if token_type.eq_ignore_ascii_case("bearer") {
        if proof_jkt.is_some() {
            return Err(body.invalid(
                "`token_type` is `Bearer` but the request carried a DPoP proof: the provider did not bind the token to the device's key; turn DPoP off for this provider, or enable DPoP on it",
            ));
        }
        ("Bearer", None)
    } else if token_type.eq_ignore_ascii_case("dpop") {
        let Some(jkt) = proof_jkt else {
            return Err(body.invalid(
                "`token_type` is `DPoP` but the request carried no DPoP proof: the token is bound to a key this client does not hold; turn DPoP on (OnesIdClientBuilder::dpop)",
            ));
        };
        ("DPoP", Some(jkt.to_string()))
    } else {
        return Err(body.invalid(
            "`token_type` is neither `Bearer` nor `DPoP`; only those token types are supported",
        ));
    };
    let expires_at = match body.seconds("expires_in", MAX_EXPIRES_IN)? {
        None => None,
        Some(lifetime) => Some(
            now.checked_add(lifetime)
                .ok_or_else(|| body.invalid("`expires_in` is past the end of time"))?,
        ),
    };
    let secret = |field: &str| -> Result<Option<SecretString>, Error> {
        Ok(body
            .str(field)?
            .filter(|t| !t.is_empty())
            .map(|t| SecretString::from(t.to_string())))
    };
    Ok(TokenSet {
        access_token: access_token.to_string().into(),
        token_type: token_type.into(),
        expires_at,
        refresh_token: secret("refresh_token")?,
        id_token: secret("id_token")?,
        scope: body.str("scope")?.map(Scope::from),
        dpop_jkt,
    })
}

/// The provider's answer to a CIBA authentication request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackchannelAuthResponse {
    /// Identifies this authentication request when polling.
    pub auth_req_id: AuthReqId,
    /// How long the request stays valid (at most [`MAX_LOGIN_EXPIRES_IN`]).
    pub expires_in: Duration,
    /// How long to wait between polls (default 5 s; at least 1 s, at most
    /// [`MAX_POLL_INTERVAL`]).
    pub interval: Duration,
}

/// A provider's poll interval: 5 s when absent or 0, at least 1 s (a
/// fraction is rounded up), at most [`MAX_POLL_INTERVAL`].
pub(crate) fn poll_interval(given: Option<Duration>) -> Duration {
    match given {
        None => DEFAULT_CIBA_INTERVAL,
        Some(d) if d.is_zero() => DEFAULT_CIBA_INTERVAL,
        Some(d) => d.max(Duration::from_secs(1)).min(MAX_POLL_INTERVAL),
    }
}

/// Parses the backchannel response (CIBA Core §7.3). `expires_in` is
/// required and capped at [`MAX_LOGIN_EXPIRES_IN`]; `interval` as
/// [`BackchannelAuthResponse::interval`] says.
pub fn parse_backchannel_response(
    endpoint: &Endpoint,
    response: &HttpResponse,
) -> Result<BackchannelAuthResponse, Error> {
    let body = Json::parse(endpoint, response)?;
    let auth_req_id = body.required_str("auth_req_id")?;
    let expires_in = body
        .seconds("expires_in", MAX_LOGIN_EXPIRES_IN)?
        .ok_or_else(|| body.invalid("`expires_in` is missing"))?;
    Ok(BackchannelAuthResponse {
        auth_req_id: AuthReqId::from(auth_req_id),
        expires_in,
        interval: poll_interval(body.seconds("interval", MAX_POLL_INTERVAL)?),
    })
}

/// One CIBA poll's outcome that is not a final error.
#[derive(Debug, Clone)]
pub enum CibaPollResponse {
    /// `authorization_pending`: the person has not answered yet.
    Pending {
        /// A `Retry-After` the provider sent with it, if any.
        retry_after: Option<Duration>,
    },
    /// `slow_down`: poll less often (add 5 s to the interval).
    SlowDown {
        /// A `Retry-After` the provider sent with it, if any.
        retry_after: Option<Duration>,
    },
    /// The person approved.
    Tokens(TokenSet),
}

/// Parses a CIBA poll response: pending and slow_down are values; any other
/// error (`access_denied`, `expired_token`, ...) is an [`Error::OAuth`].
pub fn parse_ciba_poll_response(
    endpoint: &Endpoint,
    response: &HttpResponse,
    now: SystemTime,
) -> Result<CibaPollResponse, Error> {
    parse_ciba_poll_response_for(endpoint, response, now, None)
}

/// [`parse_ciba_poll_response`] for a poll that carried a DPoP proof from
/// the key with thumbprint `proof_jkt` (`None`: no proof); the tokens are
/// checked as [`parse_token_response_for`] says.
pub fn parse_ciba_poll_response_for(
    endpoint: &Endpoint,
    response: &HttpResponse,
    now: SystemTime,
    proof_jkt: Option<&str>,
) -> Result<CibaPollResponse, Error> {
    if response.status().is_success() {
        return parse_token_response_for(endpoint, response, now, proof_jkt)
            .map(CibaPollResponse::Tokens);
    }
    let error = error_from_response(endpoint, response);
    let retry_after = error.retry_after();
    match error.oauth_error() {
        Some("authorization_pending") => Ok(CibaPollResponse::Pending { retry_after }),
        Some("slow_down") => Ok(CibaPollResponse::SlowDown { retry_after }),
        _ => Err(error),
    }
}

/// An introspection response (RFC 7662 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Introspection {
    /// Whether the token is active.
    pub active: bool,
    /// Subject.
    pub sub: Option<String>,
    /// Client the token was issued to.
    pub client_id: Option<ClientId>,
    /// Expiry, seconds since the epoch.
    pub exp: Option<u64>,
    /// Issued at, seconds since the epoch.
    pub iat: Option<u64>,
    /// Issuer.
    pub iss: Option<String>,
    /// Scope.
    pub scope: Option<Scope>,
    /// Audiences (the wire's string or list; empty when absent).
    pub aud: Vec<String>,
    /// Token type.
    pub token_type: Option<String>,
    /// `cnf.jkt`: the thumbprint of the key the token is bound to (DPoP,
    /// RFC 9449 §6.2); a bound token is good only with a proof of that key.
    pub cnf_jkt: Option<String>,
}

impl Introspection {
    /// An answer saying `active` and nothing else (e.g. for tests).
    pub fn new(active: bool) -> Self {
        Introspection {
            active,
            sub: None,
            client_id: None,
            exp: None,
            iat: None,
            iss: None,
            scope: None,
            aud: Vec::new(),
            token_type: None,
            cnf_jkt: None,
        }
    }
}

/// Parses an introspection response. `active` is required (RFC 7662); a
/// missing or non-boolean `active` is an error, never taken as active.
///
/// ```
/// let response = http::Response::builder().status(200).body(br#"{"active":false}"#.to_vec()).unwrap();
/// let endpoint = onesoidc_core::Endpoint::from("https://idp/oidc/token/introspection");
/// let i = onesoidc_core::parse_introspection_response(&endpoint, &response).unwrap();
/// assert!(!i.active);
/// ```
pub fn parse_introspection_response(
    endpoint: &Endpoint,
    response: &HttpResponse,
) -> Result<Introspection, Error> {
    let body = Json::parse(endpoint, response)?;
    Ok(Introspection {
        active: body
            .bool("active")?
            .ok_or_else(|| body.invalid("`active` is missing"))?,
        sub: body.str("sub")?.map(str::to_string),
        client_id: body.str("client_id")?.map(ClientId::from),
        exp: body.u64("exp")?,
        iat: body.u64("iat")?,
        iss: body.str("iss")?.map(str::to_string),
        scope: body.str("scope")?.map(Scope::from),
        aud: body.strings("aud")?,
        token_type: body.str("token_type")?.map(str::to_string),
        cnf_jkt: body.cnf_jkt()?,
    })
}

/// Parses a revocation response: any 2xx is success (RFC 7009 §2.2).
pub fn parse_revocation_response(
    endpoint: &Endpoint,
    response: &HttpResponse,
) -> Result<(), Error> {
    if response.status().is_success() {
        Ok(())
    } else {
        Err(error_from_response(endpoint, response))
    }
}
