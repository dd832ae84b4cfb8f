//! ID token validation ([PROTOCOL §5](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#5-ciba-poll-mode-openid-ciba-core-10), OIDC Core §3.1.3.7), sans-IO: the
//! caller supplies the provider's JWKS, the allowed algorithms and `now`.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::jws::{Jws, JwsError};
use crate::{ClientId, Issuer, PublicJwkSet, unix_seconds};

/// Allowed clock difference between provider and device.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Algorithms accepted when the provider does not list its own.
pub const DEFAULT_ID_TOKEN_ALGORITHMS: [&str; 4] = ["RS256", "ES256", "ES384", "ES512"];

/// Why an ID token was rejected. Each case has its own variant so callers
/// (and tests) can tell them apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdTokenError {
    /// Not three base64url parts with JSON header and claims.
    #[error("the ID token is malformed: {0}")]
    Malformed(String),
    /// `alg: none`: unsigned tokens are never accepted.
    #[error("the ID token is unsigned (alg none)")]
    Unsigned,
    /// HS256/384/512: a symmetric algorithm, never accepted with public keys.
    #[error(
        "the ID token uses the symmetric algorithm {0}; only the provider's public-key algorithms are accepted"
    )]
    SymmetricAlgorithm(String),
    /// An algorithm the provider does not list, or that this library does not verify.
    #[error("the ID token algorithm {alg} is not allowed (allowed: {allowed})")]
    AlgorithmNotAllowed {
        /// The token's `alg`.
        alg: String,
        /// The allowed algorithms, comma separated.
        allowed: String,
    },
    /// No key in the provider's JWKS has the token's `kid`.
    #[error("no key in the provider's JWKS has kid {0:?}")]
    UnknownKeyId(Option<String>),
    /// The key named by `kid` cannot verify `alg` (wrong type or curve).
    #[error("the provider key {kid:?} cannot verify {alg}")]
    KeyAlgorithmMismatch {
        /// The key id.
        kid: Option<String>,
        /// The token's `alg`.
        alg: String,
    },
    /// The signature does not verify.
    #[error("the ID token signature is invalid")]
    BadSignature,
    /// `iss` is not the provider's issuer.
    #[error("the ID token issuer is {found:?}, expected {expected:?}")]
    WrongIssuer {
        /// The issuer we expect.
        expected: String,
        /// The token's `iss`.
        found: String,
    },
    /// `aud` does not contain this client's id.
    #[error("the ID token audience {found} does not contain client id {client_id:?}")]
    WrongAudience {
        /// This device's client id.
        client_id: String,
        /// The token's `aud`.
        found: String,
    },
    /// `exp` has passed (beyond the clock skew).
    #[error("the ID token expired at {exp} (now {now}, {} s skew allowed)", CLOCK_SKEW.as_secs())]
    Expired {
        /// The token's `exp`.
        exp: u64,
        /// Now, seconds since the epoch.
        now: u64,
    },
    /// `iat` is in the future (beyond the clock skew).
    #[error("the ID token was issued in the future (iat {iat}, now {now}); check the device clock")]
    IssuedInFuture {
        /// The token's `iat`.
        iat: u64,
        /// Now, seconds since the epoch.
        now: u64,
    },
    /// `nbf` is in the future (beyond the clock skew).
    #[error("the ID token is not valid before {nbf} (now {now}, {} s skew allowed); check the device clock", CLOCK_SKEW.as_secs())]
    NotYetValid {
        /// The token's `nbf`.
        nbf: u64,
        /// Now, seconds since the epoch.
        now: u64,
    },
    /// The token names several audiences but no authorized party (`azp`),
    /// or an `azp` that is not this client (OpenID Connect Core §3.1.3.7
    /// items 4 and 5): it was issued to another client.
    #[error(
        "the ID token's authorized party (`azp`) is {found:?}, expected client id {client_id:?} (audiences {audiences})"
    )]
    WrongAuthorizedParty {
        /// This device's client id.
        client_id: String,
        /// The token's `azp`, if any.
        found: Option<String>,
        /// The token's `aud`.
        audiences: String,
    },
    /// A required claim is absent or has the wrong type.
    #[error("the ID token has no valid `{0}` claim")]
    MissingClaim(&'static str),
    /// A login that asked for `openid` got no ID token.
    #[error(
        "the provider sent no ID token, though the login asked for the `openid` scope; the person's identity is unknown"
    )]
    Missing,
    /// An ID token from a refresh names another issuer or subject than the
    /// one from the login (OpenID Connect Core §12.2).
    #[error("the refreshed ID token's `{claim}` differs from the login's ID token")]
    ChangedOnRefresh {
        /// `iss` or `sub`.
        claim: &'static str,
    },
}

/// The claims of a validated ID token.
#[derive(Debug, Clone, PartialEq)]
pub struct IdTokenClaims {
    /// Subject: the user.
    pub sub: String,
    /// Issuer.
    pub iss: String,
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// When the user authenticated, if present.
    pub auth_time: Option<u64>,
    /// All claims as sent.
    pub all: serde_json::Map<String, Value>,
}

/// What an ID token must be checked against.
#[derive(Debug, Clone, Copy)]
pub struct IdTokenExpectations<'a> {
    /// The provider's issuer.
    pub issuer: &'a Issuer,
    /// This device's client id.
    pub client_id: &'a ClientId,
    /// The provider's `id_token_signing_alg_values_supported`; empty means
    /// [`DEFAULT_ID_TOKEN_ALGORITHMS`].
    pub allowed_algorithms: &'a [String],
}

/// Validates `token`: signature with a key from `jwks` under an allowed
/// algorithm (never `none`, never HS*), `iss`, `aud` (and `azp`: required
/// with several audiences, and ours when present), `exp`, `iat` and `nbf`
/// with 60 s skew. Header and claims naming a member twice are malformed.
pub fn validate_id_token(
    token: &str,
    jwks: &PublicJwkSet,
    expect: IdTokenExpectations<'_>,
    now: SystemTime,
) -> Result<IdTokenClaims, IdTokenError> {
    let jws = Jws::parse(token)?;
    jws.verify(
        jwks,
        expect.allowed_algorithms,
        &DEFAULT_ID_TOKEN_ALGORITHMS,
    )?;
    check_claims(jws.claims, expect, now)
}

impl From<JwsError> for IdTokenError {
    fn from(error: JwsError) -> Self {
        match error {
            JwsError::Malformed(m) => IdTokenError::Malformed(m),
            JwsError::Unsigned => IdTokenError::Unsigned,
            JwsError::SymmetricAlgorithm(alg) => IdTokenError::SymmetricAlgorithm(alg),
            JwsError::AlgorithmNotAllowed { alg, allowed } => {
                IdTokenError::AlgorithmNotAllowed { alg, allowed }
            }
            JwsError::UnknownKeyId(kid) => IdTokenError::UnknownKeyId(kid),
            JwsError::KeyAlgorithmMismatch { kid, alg } => {
                IdTokenError::KeyAlgorithmMismatch { kid, alg }
            }
            JwsError::BadSignature => IdTokenError::BadSignature,
        }
    }
}

fn check_claims(
    all: serde_json::Map<String, Value>,
    expect: IdTokenExpectations<'_>,
    now: SystemTime,
) -> Result<IdTokenClaims, IdTokenError> {
    let string = |name: &'static str| {
        all.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(IdTokenError::MissingClaim(name))
    };
    let number = |name: &'static str| {
        all.get(name)
            .and_then(Value::as_u64)
            .ok_or(IdTokenError::MissingClaim(name))
    };
    let iss = string("iss")?;
    if iss != expect.issuer.as_str() {
        return Err(IdTokenError::WrongIssuer {
            expected: expect.issuer.as_str().to_string(),
            found: iss,
        });
    }
    let aud: Vec<String> = match all.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => return Err(IdTokenError::MissingClaim("aud")),
    };
    if !aud.iter().any(|a| a == expect.client_id.as_str()) {
        return Err(IdTokenError::WrongAudience {
            client_id: expect.client_id.to_string(),
            found: serde_json::to_string(&aud).unwrap_or_default(),
        });
    }
    // OIDC Core §3.1.3.7 items 4 and 5: with several audiences the
    // authorized party must be named, and whenever it is, it must be us.
    let azp = match all.get("azp") {
        None => None,
        Some(Value::String(azp)) => Some(azp.clone()),
        Some(_) => return Err(IdTokenError::MissingClaim("azp")),
    };
    let azp_ok = match &azp {
        Some(azp) => azp == expect.client_id.as_str(),
        None => aud.len() <= 1,
    };
    if !azp_ok {
        return Err(IdTokenError::WrongAuthorizedParty {
            client_id: expect.client_id.to_string(),
            found: azp,
            audiences: serde_json::to_string(&aud).unwrap_or_default(),
        });
    }
    let now = unix_seconds(now);
    let exp = number("exp")?;
    if exp.saturating_add(CLOCK_SKEW.as_secs()) <= now {
        return Err(IdTokenError::Expired { exp, now });
    }
    let iat = number("iat")?;
    if iat > now.saturating_add(CLOCK_SKEW.as_secs()) {
        return Err(IdTokenError::IssuedInFuture { iat, now });
    }
    if let Some(nbf) = all.get("nbf") {
        let nbf = nbf.as_u64().ok_or(IdTokenError::MissingClaim("nbf"))?;
        if nbf > now.saturating_add(CLOCK_SKEW.as_secs()) {
            return Err(IdTokenError::NotYetValid { nbf, now });
        }
    }
    let sub = string("sub")?;
    let auth_time = all.get("auth_time").and_then(Value::as_u64);
    Ok(IdTokenClaims {
        sub,
        iss,
        aud,
        exp,
        iat,
        auth_time,
        all,
    })
}

/// The claims of a JWT, read **without** checking anything: only to compare
/// with a token validated before (an ID token's `iss` and `sub` across a
/// refresh). `None` when it is not a JWT with a JSON object as claims, or
/// the object names a member twice.
///
/// ```
/// let token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.";
/// let claims = onesoidc_core::unverified_claims(token).unwrap();
/// assert_eq!(claims["sub"], "alice");
/// ```
pub fn unverified_claims(token: &str) -> Option<serde_json::Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    match crate::json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}
