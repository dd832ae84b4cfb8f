//! ID token validation ([PROTOCOL §5](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#5-ciba-poll-mode-openid-ciba-core-10), OIDC Core §3.1.3.7), sans-IO: the
//! caller supplies the provider's JWKS, the allowed algorithms and `now`.

use std::time::{Duration, SystemTime};

use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::{self, EcdsaVerificationAlgorithm, RsaParameters, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;

use crate::{ClientId, Issuer, PublicJwk, PublicJwkSet, unix_seconds};

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

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
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
    let malformed = |m: &str| IdTokenError::Malformed(m.to_string());
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("expected three dot-separated parts"));
    };
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|_| IdTokenError::Malformed(format!("the {what} is not base64url")))
    };
    let header: Header = strict_object(&decode(h, "header")?, "header").and_then(|map| {
        serde_json::from_value(Value::Object(map))
            .map_err(|e| IdTokenError::Malformed(format!("the header is not a JOSE header ({e})")))
    })?;
    let claims = strict_object(&decode(c, "claims")?, "claims set")?;
    let signature_bytes = decode(s, "signature")?;

    check_algorithm(&header.alg, expect.allowed_algorithms)?;
    let key = find_key(jwks, header.kid.as_deref(), &header.alg)?;
    let signing_input = &token.as_bytes()[..h.len() + 1 + c.len()];
    verify_signature(key, &header, signing_input, &signature_bytes)?;
    check_claims(claims, expect, now)
}

/// `bytes` as a JSON object with no member named twice (a parser
/// differential: another reader could see another `sub`).
fn strict_object(bytes: &[u8], what: &str) -> Result<serde_json::Map<String, Value>, IdTokenError> {
    match crate::json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(IdTokenError::Malformed(format!(
            "the {what} is not a JSON object"
        ))),
        Err(e) => Err(IdTokenError::Malformed(
            match crate::json::duplicate_member(&e) {
                Some(member) => format!("the {what} names member {member} twice"),
                None => format!("the {what} is not a JSON object ({e})"),
            },
        )),
    }
}

fn check_algorithm(alg: &str, allowed: &[String]) -> Result<(), IdTokenError> {
    if alg.eq_ignore_ascii_case("none") {
        return Err(IdTokenError::Unsigned);
    }
    if alg.starts_with("HS") {
        return Err(IdTokenError::SymmetricAlgorithm(alg.to_string()));
    }
    let listed: Vec<&str> = if allowed.is_empty() {
        DEFAULT_ID_TOKEN_ALGORITHMS.to_vec()
    } else {
        allowed.iter().map(String::as_str).collect()
    };
    if !listed.contains(&alg) || (rsa_params(alg).is_none() && ecdsa_params(alg).is_none()) {
        return Err(IdTokenError::AlgorithmNotAllowed {
            alg: alg.to_string(),
            allowed: listed.join(", "),
        });
    }
    Ok(())
}

/// The RSA verification parameters for `alg`, if it is an RSA algorithm.
fn rsa_params(alg: &str) -> Option<&'static RsaParameters> {
    Some(match alg {
        "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
        "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
        "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
        "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
        "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

/// The ECDSA verification algorithm and JWK curve for `alg`, if it is an EC algorithm.
fn ecdsa_params(alg: &str) -> Option<(&'static EcdsaVerificationAlgorithm, &'static str)> {
    Some(match alg {
        "ES256" => (&signature::ECDSA_P256_SHA256_FIXED, "P-256"),
        "ES384" => (&signature::ECDSA_P384_SHA384_FIXED, "P-384"),
        "ES512" => (&signature::ECDSA_P521_SHA512_FIXED, "P-521"),
        _ => return None,
    })
}

fn find_key<'a>(
    jwks: &'a PublicJwkSet,
    kid: Option<&str>,
    alg: &str,
) -> Result<&'a PublicJwk, IdTokenError> {
    let kty = if alg.starts_with("ES") { "EC" } else { "RSA" };
    let usable = |k: &&PublicJwk| k.use_.as_deref().is_none_or(|u| u == "sig");
    let found = match kid {
        Some(kid) => jwks
            .keys
            .iter()
            .filter(usable)
            .find(|k| k.kid.as_deref() == Some(kid)),
        None => {
            let mut candidates = jwks.keys.iter().filter(usable).filter(|k| k.kty == kty);
            match (candidates.next(), candidates.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        }
    };
    found.ok_or_else(|| IdTokenError::UnknownKeyId(kid.map(str::to_string)))
}

fn verify_signature(
    key: &PublicJwk,
    header: &Header,
    input: &[u8],
    sig: &[u8],
) -> Result<(), IdTokenError> {
    let mismatch = || IdTokenError::KeyAlgorithmMismatch {
        kid: key.kid.clone(),
        alg: header.alg.clone(),
    };
    let b64 = |v: &Option<String>| -> Result<Vec<u8>, IdTokenError> {
        let text = v.as_deref().ok_or_else(mismatch)?;
        URL_SAFE_NO_PAD.decode(text).map_err(|_| mismatch())
    };
    let verified = match (
        key.kty.as_str(),
        rsa_params(&header.alg),
        ecdsa_params(&header.alg),
    ) {
        ("RSA", Some(params), _) => {
            let components = PublicKeyComponents {
                n: b64(&key.n)?,
                e: b64(&key.e)?,
            };
            components.verify(params, input, sig).is_ok()
        }
        ("EC", _, Some((algorithm, curve))) if key.crv.as_deref() == Some(curve) => {
            let mut point = vec![0x04];
            point.extend(b64(&key.x)?);
            point.extend(b64(&key.y)?);
            UnparsedPublicKey::new(algorithm, point)
                .verify(input, sig)
                .is_ok()
        }
        _ => return Err(mismatch()),
    };
    if verified {
        Ok(())
    } else {
        Err(IdTokenError::BadSignature)
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
