//! Compact JWS signed by a provider (RFC 7515), verified with its JWKS: the
//! rules ID tokens and access tokens share (algorithm pinned to a list,
//! never `none` or HS*, key chosen by `kid`, key type and curve matching
//! the algorithm). What a token's claims must say is for its own module.

use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::{self, EcdsaVerificationAlgorithm, RsaParameters, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;

use crate::{PublicJwk, PublicJwkSet};

/// Why a JWS does not verify; each token type maps these into its own error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JwsError {
    Malformed(String),
    Unsigned,
    SymmetricAlgorithm(String),
    AlgorithmNotAllowed { alg: String, allowed: String },
    UnknownKeyId(Option<String>),
    KeyAlgorithmMismatch { kid: Option<String>, alg: String },
    BadSignature,
}

/// The JOSE header members the checks read.
#[derive(Deserialize)]
pub(crate) struct Header {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub typ: Option<String>,
    /// The signer's own key, carried in the header (a DPoP proof, RFC 9449 §4.2).
    #[serde(default)]
    pub jwk: Option<serde_json::Map<String, Value>>,
}

/// A compact JWS split and decoded, not yet verified.
pub(crate) struct Jws<'a> {
    pub header: Header,
    pub claims: serde_json::Map<String, Value>,
    signing_input: &'a [u8],
    signature: Vec<u8>,
}

impl<'a> Jws<'a> {
    /// Splits `token` into its three parts and decodes header and claims.
    pub fn parse(token: &'a str) -> Result<Self, JwsError> {
        let malformed = |m: &str| JwsError::Malformed(m.to_string());
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("expected three dot-separated parts"));
        };
        let decode = |part: &str, what: &str| {
            URL_SAFE_NO_PAD
                .decode(part.trim_end_matches('='))
                .map_err(|_| JwsError::Malformed(format!("the {what} is not base64url")))
        };
        let header: Header = serde_json::from_value(Value::Object(strict_object(
            &decode(h, "header")?,
            "header",
        )?))
        .map_err(|e| JwsError::Malformed(format!("the header is not a JOSE header ({e})")))?;
        let claims = strict_object(&decode(c, "claims")?, "claims set")?;
        let signature = decode(s, "signature")?;
        Ok(Jws {
            header,
            claims,
            signing_input: &token.as_bytes()[..h.len() + 1 + c.len()],
            signature,
        })
    }

    /// Checks the algorithm against `allowed` (`default` when empty), picks
    /// the key and verifies the signature.
    pub fn verify(
        &self,
        jwks: &PublicJwkSet,
        allowed: &[String],
        default: &[&str],
    ) -> Result<(), JwsError> {
        check_algorithm(&self.header.alg, allowed, default)?;
        let key = find_key(jwks, self.header.kid.as_deref(), &self.header.alg)?;
        verify_signature(key, &self.header.alg, self.signing_input, &self.signature)
    }

    /// Checks the algorithm against `allowed` and verifies the signature with
    /// `key` (the key a DPoP proof carries in its own header).
    pub fn verify_with_key(&self, key: &PublicJwk, allowed: &[&str]) -> Result<(), JwsError> {
        check_algorithm(&self.header.alg, &[], allowed)?;
        verify_signature(key, &self.header.alg, self.signing_input, &self.signature)
    }
}

/// `bytes` as a JSON object with no member named twice (a parser
/// differential: another reader could see another `sub`).
fn strict_object(bytes: &[u8], what: &str) -> Result<serde_json::Map<String, Value>, JwsError> {
    match crate::json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(JwsError::Malformed(format!(
            "the {what} is not a JSON object"
        ))),
        Err(e) => Err(JwsError::Malformed(
            match crate::json::duplicate_member(&e) {
                Some(member) => format!("the {what} names member {member} twice"),
                None => format!("the {what} is not a JSON object ({e})"),
            },
        )),
    }
}

fn check_algorithm(alg: &str, allowed: &[String], default: &[&str]) -> Result<(), JwsError> {
    if alg.eq_ignore_ascii_case("none") {
        return Err(JwsError::Unsigned);
    }
    if alg.starts_with("HS") {
        return Err(JwsError::SymmetricAlgorithm(alg.to_string()));
    }
    let listed: Vec<&str> = if allowed.is_empty() {
        default.to_vec()
    } else {
        allowed.iter().map(String::as_str).collect()
    };
    if !listed.contains(&alg) || (rsa_params(alg).is_none() && ecdsa_params(alg).is_none()) {
        return Err(JwsError::AlgorithmNotAllowed {
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
) -> Result<&'a PublicJwk, JwsError> {
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
    found.ok_or_else(|| JwsError::UnknownKeyId(kid.map(str::to_string)))
}

fn verify_signature(key: &PublicJwk, alg: &str, input: &[u8], sig: &[u8]) -> Result<(), JwsError> {
    let mismatch = || JwsError::KeyAlgorithmMismatch {
        kid: key.kid.clone(),
        alg: alg.to_string(),
    };
    // A key published for one algorithm verifies no other (RFC 7517 §4.4).
    if key.alg.as_deref().is_some_and(|a| a != alg) {
        return Err(mismatch());
    }
    let b64 = |v: &Option<String>| -> Result<Vec<u8>, JwsError> {
        let text = v.as_deref().ok_or_else(mismatch)?;
        URL_SAFE_NO_PAD.decode(text).map_err(|_| mismatch())
    };
    let verified = match (key.kty.as_str(), rsa_params(alg), ecdsa_params(alg)) {
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
        Err(JwsError::BadSignature)
    }
}
