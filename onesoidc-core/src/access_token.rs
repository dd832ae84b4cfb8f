//! Access tokens as an application (a resource server) checks them, sans-IO:
//! RFC 9068 JWT access tokens against the provider's JWKS, and RFC 7662
//! introspection answers for opaque ones. The caller supplies the keys,
//! the expectations and `now`.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::jws::{Jws, JwsError};
use crate::{
    CLOCK_SKEW, ClientId, DEFAULT_ID_TOKEN_ALGORITHMS, Introspection, Issuer, PublicJwkSet, Scope,
    unix_seconds,
};

/// The longest access token checked; a longer one is refused before it is
/// decoded ([`AccessTokenError::TooLarge`]).
pub const MAX_ACCESS_TOKEN_BYTES: usize = 16 * 1024;

/// The header `typ` values of an RFC 9068 access token (§2.1; compared
/// ignoring ASCII case, as media types are).
pub const ACCESS_TOKEN_TYPES: [&str; 2] = ["at+jwt", "application/at+jwt"];

/// Why an access token was refused. Each rule has its own variant, and
/// [`claim`](Self::claim) names the header member or claim it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessTokenError {
    /// Longer than [`MAX_ACCESS_TOKEN_BYTES`].
    #[error("the access token is {len} bytes long, more than the {max} accepted")]
    TooLarge {
        /// Its length.
        len: usize,
        /// [`MAX_ACCESS_TOKEN_BYTES`].
        max: usize,
    },
    /// Not three base64url parts with a JSON header and JSON claims.
    #[error("the access token is malformed: {0}")]
    Malformed(String),
    /// Header `typ` is not `at+jwt`: an ID token (`typ: JWT`) or another
    /// JWT whose audience happens to match is not an access token.
    #[error(
        "the access token's header `typ` is {found:?}, not \"at+jwt\" (RFC 9068 §2.1); an ID token or another JWT is not an access token"
    )]
    WrongType {
        /// The header's `typ`, if any.
        found: Option<String>,
    },
    /// Header `alg: none`.
    #[error("the access token's header `alg` is none: unsigned tokens are never accepted")]
    Unsigned,
    /// Header `alg` HS256/384/512.
    #[error(
        "the access token's header `alg` is the symmetric algorithm {0}; only the provider's public-key algorithms are accepted"
    )]
    SymmetricAlgorithm(String),
    /// Header `alg` not in the provider's list, or not one this library verifies.
    #[error("the access token's header `alg` {alg} is not allowed (allowed: {allowed})")]
    AlgorithmNotAllowed {
        /// The token's `alg`.
        alg: String,
        /// The allowed algorithms, comma separated.
        allowed: String,
    },
    /// No key of the provider's JWKS has the header's `kid`.
    #[error("no key in the provider's JWKS has the access token's header `kid` {0:?}")]
    UnknownKeyId(Option<String>),
    /// The key named by `kid` cannot verify `alg` (key type, curve or its
    /// own `alg` differ).
    #[error("the provider key {kid:?} cannot verify the access token's header `alg` {alg}")]
    KeyAlgorithmMismatch {
        /// The key id.
        kid: Option<String>,
        /// The token's `alg`.
        alg: String,
    },
    /// The signature does not verify.
    #[error("the access token's signature is invalid")]
    BadSignature,
    /// `iss` is not the provider's issuer.
    #[error("the access token's `iss` is {found:?}, expected {expected:?}")]
    WrongIssuer {
        /// The issuer we expect.
        expected: String,
        /// The token's `iss`.
        found: String,
    },
    /// `aud` does not contain this application's resource.
    #[error("the access token's `aud` {found} does not contain this application ({expected:?})")]
    WrongAudience {
        /// The configured audience (resource).
        expected: String,
        /// The token's `aud`, as JSON.
        found: String,
    },
    /// `exp` has passed (beyond the allowed clock skew).
    #[error("the access token's `exp` {exp} has passed (now {now}, {leeway} s skew allowed)")]
    Expired {
        /// The token's `exp`.
        exp: u64,
        /// Now, seconds since the epoch.
        now: u64,
        /// The allowed skew, seconds.
        leeway: u64,
    },
    /// `nbf` is in the future (beyond the allowed clock skew).
    #[error("the access token's `nbf` {nbf} is in the future (now {now}); check the clocks")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: u64,
        /// Now, seconds since the epoch.
        now: u64,
    },
    /// `iat` is in the future (beyond the allowed clock skew).
    #[error("the access token's `iat` {iat} is in the future (now {now}); check the clocks")]
    IssuedInFuture {
        /// The token's `iat`.
        iat: u64,
        /// Now, seconds since the epoch.
        now: u64,
    },
    /// A claim RFC 9068 requires is absent.
    #[error("the access token has no `{0}` claim (RFC 9068 §2.2 requires it)")]
    MissingClaim(&'static str),
    /// A claim has the wrong JSON type.
    #[error("the access token's `{claim}` claim is not {expected}")]
    InvalidClaim {
        /// The claim.
        claim: &'static str,
        /// What it should be, e.g. "a string".
        expected: &'static str,
    },
    /// The token is bound to a key (`cnf.jkt`, RFC 9449 DPoP) but came as
    /// a plain Bearer token, without a proof of that key.
    #[error(
        "the access token is bound to a key (`cnf` jkt, DPoP) but was sent as a Bearer token without a proof (RFC 9449 §7.1)"
    )]
    BoundToKey,
    /// The provider's introspection answer says `active: false`.
    #[error(
        "the provider says the access token is not active (revoked, expired or unknown) (RFC 7662 `active`)"
    )]
    Inactive,
}

impl AccessTokenError {
    /// The header member or claim the refusal is about (`"typ"`, `"alg"`,
    /// `"kid"`, `"aud"`, `"exp"`, ...), `None` for a malformed or oversized
    /// token or a bad signature.
    ///
    /// ```
    /// use onesoidc_core::AccessTokenError;
    /// assert_eq!(AccessTokenError::WrongType { found: Some("JWT".into()) }.claim(), Some("typ"));
    /// assert_eq!(AccessTokenError::MissingClaim("client_id").claim(), Some("client_id"));
    /// ```
    pub fn claim(&self) -> Option<&'static str> {
        Some(match self {
            AccessTokenError::TooLarge { .. }
            | AccessTokenError::Malformed(_)
            | AccessTokenError::BadSignature => return None,
            AccessTokenError::WrongType { .. } => "typ",
            AccessTokenError::Unsigned
            | AccessTokenError::SymmetricAlgorithm(_)
            | AccessTokenError::AlgorithmNotAllowed { .. }
            | AccessTokenError::KeyAlgorithmMismatch { .. } => "alg",
            AccessTokenError::UnknownKeyId(_) => "kid",
            AccessTokenError::WrongIssuer { .. } => "iss",
            AccessTokenError::WrongAudience { .. } => "aud",
            AccessTokenError::Expired { .. } => "exp",
            AccessTokenError::NotYetValid { .. } => "nbf",
            AccessTokenError::IssuedInFuture { .. } => "iat",
            AccessTokenError::MissingClaim(claim)
            | AccessTokenError::InvalidClaim { claim, .. } => claim,
            AccessTokenError::BoundToKey => "cnf",
            AccessTokenError::Inactive => "active",
        })
    }
}

impl From<JwsError> for AccessTokenError {
    fn from(error: JwsError) -> Self {
        match error {
            JwsError::Malformed(m) => AccessTokenError::Malformed(m),
            JwsError::Unsigned => AccessTokenError::Unsigned,
            JwsError::SymmetricAlgorithm(alg) => AccessTokenError::SymmetricAlgorithm(alg),
            JwsError::AlgorithmNotAllowed { alg, allowed } => {
                AccessTokenError::AlgorithmNotAllowed { alg, allowed }
            }
            JwsError::UnknownKeyId(kid) => AccessTokenError::UnknownKeyId(kid),
            JwsError::KeyAlgorithmMismatch { kid, alg } => {
                AccessTokenError::KeyAlgorithmMismatch { kid, alg }
            }
            JwsError::BadSignature => AccessTokenError::BadSignature,
        }
    }
}

/// What an access token must be checked against.
///
/// ```
/// use onesoidc_core::{AccessTokenExpectations, Issuer};
/// let issuer = Issuer::new("https://idp.example.com/oidc").unwrap();
/// let expect = AccessTokenExpectations::new(&issuer, "https://vhh.example.com");
/// assert_eq!(expect.leeway, onesoidc_core::CLOCK_SKEW);
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AccessTokenExpectations<'a> {
    /// The provider's issuer: `iss` must be exactly this.
    pub issuer: &'a Issuer,
    /// This application's resource (RFC 8707): `aud` must contain exactly this string.
    pub audience: &'a str,
    /// The algorithms the provider lists; empty means
    /// [`DEFAULT_ID_TOKEN_ALGORITHMS`]. `none` and HS* are refused whatever
    /// the list says.
    pub allowed_algorithms: &'a [String],
    /// Clock difference allowed for `exp`, `nbf` and `iat` (default [`CLOCK_SKEW`], 60 s).
    pub leeway: Duration,
}

impl<'a> AccessTokenExpectations<'a> {
    /// Tokens of `issuer` for `audience`, with the default algorithms and skew.
    pub fn new(issuer: &'a Issuer, audience: &'a str) -> Self {
        AccessTokenExpectations {
            issuer,
            audience,
            allowed_algorithms: &[],
            leeway: CLOCK_SKEW,
        }
    }

    /// The provider's algorithms (e.g. from discovery).
    pub fn allowed_algorithms(mut self, algorithms: &'a [String]) -> Self {
        self.allowed_algorithms = algorithms;
        self
    }

    /// The clock skew allowed.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }
}

/// The claims of a checked access token (RFC 9068 §2.2), typed, with the
/// rest as JSON.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AccessTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the person (or, for a device's own token, the device).
    pub sub: String,
    /// Audiences.
    pub aud: Vec<String>,
    /// The client (device) the token was issued to.
    pub client_id: ClientId,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch (absent only from an
    /// introspection answer that omits it).
    pub iat: Option<u64>,
    /// Not before, seconds since the epoch.
    pub nbf: Option<u64>,
    /// Token id (absent only from an introspection answer that omits it).
    pub jti: Option<String>,
    /// Granted scopes, space separated (empty when none).
    pub scope: Scope,
    /// When the person authenticated.
    pub auth_time: Option<u64>,
    /// Authentication context class.
    pub acr: Option<String>,
    /// `cnf.jkt`: the thumbprint of the key the token is bound to (DPoP, RFC 9449).
    pub cnf_jkt: Option<String>,
    /// Every claim as sent.
    pub all: serde_json::Map<String, Value>,
}

impl AccessTokenClaims {
    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.contains(scope)
    }

    /// The granted scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_whitespace()
    }

    /// The rules of [`check_access_token`] that depend on `now` (`exp`,
    /// `nbf`, `iat` with `leeway`), alone: for claims checked before and
    /// kept (a cache of verified tokens), which must still be refused once
    /// they expire.
    ///
    /// ```
    /// # use std::time::{Duration, UNIX_EPOCH};
    /// # use onesoidc_core::{AccessTokenExpectations, AccessTokenError, CLOCK_SKEW, Introspection, Issuer, claims_from_introspection};
    /// # let issuer = Issuer::new("https://idp.example.com/oidc").unwrap();
    /// # let expect = AccessTokenExpectations::new(&issuer, "https://vhh.example.com");
    /// # let mut info = Introspection::new(true);
    /// # info.aud = vec!["https://vhh.example.com".into()];
    /// # info.client_id = Some("kiosk".into());
    /// # info.exp = Some(1_800_000_300);
    /// let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
    /// let claims = claims_from_introspection(&info, expect, at(1_800_000_000)).unwrap();
    /// assert!(claims.check_times(CLOCK_SKEW, at(1_800_000_000)).is_ok());
    /// assert!(matches!(
    ///     claims.check_times(CLOCK_SKEW, at(1_800_000_360)),
    ///     Err(AccessTokenError::Expired { .. })
    /// ));
    /// ```
    pub fn check_times(&self, leeway: Duration, now: SystemTime) -> Result<(), AccessTokenError> {
        check_times(self.exp, self.iat, self.nbf, leeway, now)
    }
}

/// Whether `token` has the shape of a JWS (three parts, the first a
/// base64url JSON object): a JWT access token to check with
/// [`check_access_token`], where anything else is an opaque token to
/// introspect.
///
/// ```
/// assert!(onesoidc_core::is_jwt("eyJhbGciOiJFUzI1NiJ9.e30.c2ln"));
/// assert!(!onesoidc_core::is_jwt("at_4f9c1d7e"));
/// ```
pub fn is_jwt(token: &str) -> bool {
    let Some((header, _)) = token.split_once('.') else {
        return false;
    };
    token.bytes().filter(|b| *b == b'.').count() == 2
        && URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|json| serde_json::from_slice::<Value>(&json).ok())
            .is_some_and(|v| v.is_object())
}

/// Checks an RFC 9068 JWT access token: size, header `typ`, `alg` (pinned,
/// never `none` or HS*), the key by `kid` with matching type and curve,
/// the signature, `iss` exact, `aud` containing the audience exactly,
/// `exp`/`nbf`/`iat` with the leeway, and `sub`, `client_id`, `jti`
/// present.
///
/// ```
/// use std::time::SystemTime;
/// use onesoidc_core::{AccessTokenError, AccessTokenExpectations, Issuer, PublicJwkSet, check_access_token};
/// let issuer = Issuer::new("https://idp.example.com/oidc").unwrap();
/// let expect = AccessTokenExpectations::new(&issuer, "https://vhh.example.com");
/// // An ID token's header says `typ: JWT`.
/// let id_token = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.e30.c2ln";
/// let error = check_access_token(id_token, &PublicJwkSet { keys: vec![] }, expect, SystemTime::now()).unwrap_err();
/// assert_eq!(error.claim(), Some("typ"));
/// ```
pub fn check_access_token(
    token: &str,
    jwks: &PublicJwkSet,
    expect: AccessTokenExpectations<'_>,
    now: SystemTime,
) -> Result<AccessTokenClaims, AccessTokenError> {
    if token.len() > MAX_ACCESS_TOKEN_BYTES {
        return Err(AccessTokenError::TooLarge {
            len: token.len(),
            max: MAX_ACCESS_TOKEN_BYTES,
        });
    }
    let jws = Jws::parse(token)?;
    let typ = jws.header.typ.as_deref();
    if !typ.is_some_and(|t| ACCESS_TOKEN_TYPES.iter().any(|a| t.eq_ignore_ascii_case(a))) {
        return Err(AccessTokenError::WrongType {
            found: typ.map(str::to_string),
        });
    }
    jws.verify(
        jwks,
        expect.allowed_algorithms,
        &DEFAULT_ID_TOKEN_ALGORITHMS,
    )?;
    check_claims(jws.claims, expect, now)
}

/// Reads a claim, telling an absent claim from one of the wrong type.
struct Claims<'a>(&'a serde_json::Map<String, Value>);

impl Claims<'_> {
    fn optional<T>(
        &self,
        name: &'static str,
        expected: &'static str,
        read: impl Fn(&Value) -> Option<T>,
    ) -> Result<Option<T>, AccessTokenError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => read(value).map(Some).ok_or(AccessTokenError::InvalidClaim {
                claim: name,
                expected,
            }),
        }
    }

    fn required<T>(
        &self,
        name: &'static str,
        expected: &'static str,
        read: impl Fn(&Value) -> Option<T>,
    ) -> Result<T, AccessTokenError> {
        self.optional(name, expected, read)?
            .ok_or(AccessTokenError::MissingClaim(name))
    }

    fn string(&self, name: &'static str) -> Result<String, AccessTokenError> {
        self.required(name, "a string", |v| v.as_str().map(str::to_string))
    }

    fn seconds(&self, name: &'static str) -> Result<Option<u64>, AccessTokenError> {
        self.optional(name, "a number of seconds since 1970", Value::as_u64)
    }
}

fn audiences(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(a) => Some(vec![a.clone()]),
        Value::Array(list) => list
            .iter()
            .map(|a| a.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

fn check_claims(
    all: serde_json::Map<String, Value>,
    expect: AccessTokenExpectations<'_>,
    now: SystemTime,
) -> Result<AccessTokenClaims, AccessTokenError> {
    let claims = Claims(&all);
    let iss = claims.string("iss")?;
    check_issuer(&iss, expect.issuer)?;
    let aud = claims.required("aud", "a string or a list of strings", audiences)?;
    check_audience(&aud, expect.audience)?;
    let exp = claims
        .seconds("exp")?
        .ok_or(AccessTokenError::MissingClaim("exp"))?;
    let iat = claims
        .seconds("iat")?
        .ok_or(AccessTokenError::MissingClaim("iat"))?;
    let nbf = claims.seconds("nbf")?;
    check_times(exp, Some(iat), nbf, expect.leeway, now)?;
    let sub = claims.string("sub")?;
    let client_id = ClientId::from(claims.string("client_id")?.as_str());
    let jti = claims.string("jti")?;
    let scope = claims.optional("scope", "a space-separated string", |v| {
        v.as_str().map(Scope::from)
    })?;
    let auth_time = claims.seconds("auth_time")?;
    let acr = claims.optional("acr", "a string", |v| v.as_str().map(str::to_string))?;
    let cnf_jkt = claims
        .optional("cnf", "an object with a string `jkt`", |v| {
            let cnf = v.as_object()?;
            match cnf.get("jkt") {
                None => Some(None),
                Some(jkt) => jkt.as_str().map(|j| Some(j.to_string())),
            }
        })?
        .flatten();
    Ok(AccessTokenClaims {
        iss,
        sub,
        aud,
        client_id,
        exp,
        iat: Some(iat),
        nbf,
        jti: Some(jti),
        scope: scope.unwrap_or_else(|| Scope::from("")),
        auth_time,
        acr,
        cnf_jkt,
        all,
    })
}

fn check_issuer(iss: &str, issuer: &Issuer) -> Result<(), AccessTokenError> {
    if iss == issuer.as_str() {
        Ok(())
    } else {
        Err(AccessTokenError::WrongIssuer {
            expected: issuer.as_str().to_string(),
            found: iss.to_string(),
        })
    }
}

fn check_audience(aud: &[String], audience: &str) -> Result<(), AccessTokenError> {
    if aud.iter().any(|a| a == audience) {
        Ok(())
    } else {
        Err(AccessTokenError::WrongAudience {
            expected: audience.to_string(),
            found: serde_json::to_string(aud).unwrap_or_default(),
        })
    }
}

fn check_times(
    exp: u64,
    iat: Option<u64>,
    nbf: Option<u64>,
    leeway: Duration,
    now: SystemTime,
) -> Result<(), AccessTokenError> {
    let now = unix_seconds(now);
    let leeway = leeway.as_secs();
    if exp.saturating_add(leeway) <= now {
        return Err(AccessTokenError::Expired { exp, now, leeway });
    }
    if let Some(nbf) = nbf
        && nbf > now.saturating_add(leeway)
    {
        return Err(AccessTokenError::NotYetValid { nbf, now });
    }
    if let Some(iat) = iat
        && iat > now.saturating_add(leeway)
    {
        return Err(AccessTokenError::IssuedInFuture { iat, now });
    }
    Ok(())
}

/// The claims of an opaque access token from the provider's introspection
/// answer (RFC 7662): it counts only when `active`, of the expected
/// issuer (when it names one), with the audience in `aud`, not expired,
/// with `exp` and `client_id` present (without `sub`, as for a client
/// credentials token, the subject is the client, as RFC 9068 §2.2 says).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use onesoidc_core::{AccessTokenError, AccessTokenExpectations, Introspection, Issuer, claims_from_introspection};
/// let issuer = Issuer::new("https://idp.example.com/oidc").unwrap();
/// let expect = AccessTokenExpectations::new(&issuer, "https://vhh.example.com");
/// let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
/// let error = claims_from_introspection(&Introspection::new(false), expect, now).unwrap_err();
/// assert_eq!(error, AccessTokenError::Inactive);
/// ```
pub fn claims_from_introspection(
    info: &Introspection,
    expect: AccessTokenExpectations<'_>,
    now: SystemTime,
) -> Result<AccessTokenClaims, AccessTokenError> {
    if !info.active {
        return Err(AccessTokenError::Inactive);
    }
    if let Some(iss) = &info.iss {
        check_issuer(iss, expect.issuer)?;
    }
    if info.aud.is_empty() {
        return Err(AccessTokenError::MissingClaim("aud"));
    }
    check_audience(&info.aud, expect.audience)?;
    let exp = info.exp.ok_or(AccessTokenError::MissingClaim("exp"))?;
    check_times(exp, info.iat, None, expect.leeway, now)?;
    let client_id = info
        .client_id
        .clone()
        .ok_or(AccessTokenError::MissingClaim("client_id"))?;
    // A client-credentials token has no person: its subject is the client,
    // as RFC 9068 §2.2 says for JWTs.
    let sub = info.sub.clone().unwrap_or_else(|| client_id.to_string());
    let mut all = serde_json::Map::new();
    all.insert("active".into(), Value::Bool(true));
    all.insert("sub".into(), Value::from(sub.as_str()));
    all.insert("client_id".into(), Value::from(client_id.to_string()));
    all.insert("exp".into(), Value::from(exp));
    if let Some(jkt) = &info.cnf_jkt {
        all.insert("cnf".into(), serde_json::json!({ "jkt": jkt }));
    }
    Ok(AccessTokenClaims {
        iss: info
            .iss
            .clone()
            .unwrap_or_else(|| expect.issuer.as_str().to_string()),
        sub,
        aud: info.aud.clone(),
        client_id,
        exp,
        iat: info.iat,
        nbf: None,
        jti: None,
        scope: info.scope.clone().unwrap_or_else(|| Scope::from("")),
        auth_time: None,
        acr: None,
        cnf_jkt: info.cnf_jkt.clone(),
        all,
    })
}
