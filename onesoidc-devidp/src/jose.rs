//! Verifying JWTs signed by device keys, independently of the client code:
//! RS256/ES256/ES384 with jsonwebtoken, ES512 with aws-lc-rs directly
//! (jsonwebtoken has no ES512).

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ECDSA_P521_SHA512_FIXED, ParsedPublicKey,
    UnparsedPublicKey, VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use onesoidc_core::{JwsAlgorithm, PublicJwk};
use serde_json::{Map, Value};

/// Clock skew tolerated on `exp`, `iat` and `nbf`, in seconds.
pub(crate) const CLOCK_SKEW_SECS: i64 = 60;

/// A device's registered public key, ready to verify signatures.
#[derive(Clone)]
pub(crate) struct DeviceKey {
    algorithm: JwsAlgorithm,
    verifier: Verifier,
    /// What the console shows, e.g. `EC P-256 · ES256`, `RSA 3072 · RS256`.
    kind: String,
}

#[derive(Clone)]
enum Verifier {
    /// RS256, ES256, ES384 through jsonwebtoken.
    Jwt(DecodingKey, Algorithm),
    /// ES512 through aws-lc-rs: the uncompressed point `0x04 || x || y`.
    P521(Vec<u8>),
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn decode_b64(field: &str, value: Option<&str>) -> Result<Vec<u8>, String> {
    let value = value.ok_or_else(|| format!("the JWK has no `{field}`"))?;
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|e| format!("`{field}` is not base64url ({e})"))
}

impl DeviceKey {
    /// Checks a public JWK and prepares it for verification. `alg`, when
    /// present, must agree with the key (px's `ES521` reads as ES512); when
    /// absent it is derived from `kty`/`crv`.
    pub fn from_jwk(jwk: &PublicJwk) -> Result<Self, String> {
        let declared = match jwk.alg.as_deref() {
            None => None,
            Some(name) => Some(
                JwsAlgorithm::from_name(name)
                    .ok_or_else(|| format!("unsupported `alg` {name:?}"))?,
            ),
        };
        let (algorithm, verifier, kind) = match jwk.kty.as_str() {
            "RSA" => {
                let n = decode_b64("n", jwk.n.as_deref())?;
                let e = decode_b64("e", jwk.e.as_deref())?;
                let first = n.iter().position(|b| *b != 0).unwrap_or(n.len());
                let bits = (n.len() - first) * 8;
                if bits < 2048 {
                    return Err(format!(
                        "RSA modulus of about {bits} bits; at least 2048 are required"
                    ));
                }
                if e.is_empty() {
                    return Err("RSA exponent `e` is empty".into());
                }
                let key = DecodingKey::from_rsa_raw_components(&n, &e);
                (
                    JwsAlgorithm::RS256,
                    Verifier::Jwt(key, Algorithm::RS256),
                    format!("RSA {bits}"),
                )
            }
            "EC" => {
                let (alg, len, aws_alg): (_, _, &'static dyn VerificationAlgorithm) =
                    match jwk.crv.as_deref() {
                        Some("P-256") => (JwsAlgorithm::ES256, 32, &ECDSA_P256_SHA256_FIXED),
                        Some("P-384") => (JwsAlgorithm::ES384, 48, &ECDSA_P384_SHA384_FIXED),
                        Some("P-521") => (JwsAlgorithm::ES512, 66, &ECDSA_P521_SHA512_FIXED),
                        other => return Err(format!("unsupported EC curve {other:?}")),
                    };
                let x = decode_b64("x", jwk.x.as_deref())?;
                let y = decode_b64("y", jwk.y.as_deref())?;
                if x.len() != len || y.len() != len {
                    return Err(format!(
                        "EC coordinates must be {len} bytes each for {}",
                        jwk.crv.as_deref().unwrap_or_default()
                    ));
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                ParsedPublicKey::new(aws_alg, &point)
                    .map_err(|_| "the EC point is not on the curve".to_string())?;
                let components = || {
                    DecodingKey::from_ec_components(
                        &URL_SAFE_NO_PAD.encode(&x),
                        &URL_SAFE_NO_PAD.encode(&y),
                    )
                    .map_err(|e| format!("jsonwebtoken rejects the EC key ({e})"))
                };
                let verifier = match alg {
                    JwsAlgorithm::ES256 => Verifier::Jwt(components()?, Algorithm::ES256),
                    JwsAlgorithm::ES384 => Verifier::Jwt(components()?, Algorithm::ES384),
                    _ => Verifier::P521(point),
                };
                let curve = jwk.crv.clone().unwrap_or_default();
                (alg, verifier, format!("EC {curve}"))
            }
            other => return Err(format!("unsupported key type `kty: {other}`")),
        };
        match declared {
            Some(declared) if declared != algorithm => {
                return Err(format!(
                    "`alg` {declared} does not fit a {} key (expected {algorithm})",
                    describe(jwk)
                ));
            }
            _ => {}
        }
        Ok(DeviceKey {
            algorithm,
            verifier,
            kind: format!("{kind} · {algorithm}"),
        })
    }

    /// The key's type, size or curve, and algorithm, e.g. `EC P-256 · ES256`
    /// (never the key itself).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> JwsAlgorithm {
        self.algorithm
    }

    /// Whether `signature_b64` (base64url) signs `signing_input` with this key.
    pub fn verify(&self, signing_input: &[u8], signature_b64: &str) -> bool {
        match &self.verifier {
            Verifier::Jwt(key, alg) => {
                jsonwebtoken::crypto::verify(signature_b64, signing_input, key, *alg)
                    .unwrap_or(false)
            }
            Verifier::P521(point) => {
                let Ok(signature) = URL_SAFE_NO_PAD.decode(signature_b64) else {
                    return false;
                };
                UnparsedPublicKey::new(&ECDSA_P521_SHA512_FIXED, point)
                    .verify(signing_input, &signature)
                    .is_ok()
            }
        }
    }
}

fn describe(jwk: &PublicJwk) -> String {
    match &jwk.crv {
        Some(crv) => format!("{} {crv}", jwk.kty),
        None => jwk.kty.clone(),
    }
}

/// A compact JWS split into its parts, with header and claims parsed as JSON
/// objects; the signature is not checked yet.
#[derive(Debug)]
pub(crate) struct CompactJws<'a> {
    /// The header's `alg`.
    pub alg: String,
    /// The claims.
    pub claims: Claims,
    /// `base64url(header) . base64url(claims)`.
    pub signing_input: &'a str,
    /// The signature, base64url.
    pub signature: &'a str,
}

fn decode_json_object(part: &str, what: &str) -> Result<Map<String, Value>, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| format!("the {what} is not base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(format!("the {what} is not a JSON object")),
    }
}

impl<'a> CompactJws<'a> {
    /// Splits and decodes `token` (`header.claims.signature`).
    pub fn parse(token: &'a str) -> Result<Self, String> {
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a compact JWS (three dot-separated parts)".into());
        };
        if signature.is_empty() {
            return Err("the signature is empty".into());
        }
        let header = decode_json_object(header, "JOSE header")?;
        if header.contains_key("crit") {
            return Err("the JOSE header has `crit` parameters, which are not supported".into());
        }
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => alg.clone(),
            _ => return Err("the JOSE header has no `alg`".into()),
        };
        let claims = Claims(decode_json_object(claims, "claims set")?);
        let signing_input = &token[..token.len() - signature.len() - 1];
        Ok(CompactJws {
            alg,
            claims,
            signing_input,
            signature,
        })
    }

    /// Checks that the header's `alg` is the key's, then the signature.
    pub fn verify_with(&self, key: &DeviceKey) -> Result<(), String> {
        if self.alg != key.algorithm().as_str() {
            return Err(format!(
                "alg {:?} does not match the registered key, which signs {}",
                self.alg,
                key.algorithm()
            ));
        }
        if !key.verify(self.signing_input.as_bytes(), self.signature) {
            return Err("the signature does not verify with the registered key".into());
        }
        Ok(())
    }
}

/// A JWT claims set with typed accessors whose errors name the claim.
#[derive(Debug, Clone)]
pub(crate) struct Claims(pub Map<String, Value>);

impl Claims {
    /// A string claim; `None` when absent, an error when not a string.
    pub fn string(&self, name: &str) -> Result<Option<&str>, String> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("`{name}` is not a string")),
        }
    }

    /// A required string claim.
    pub fn required_string(&self, name: &str) -> Result<&str, String> {
        self.string(name)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("`{name}` is missing"))
    }

    /// A required NumericDate claim, in whole seconds.
    pub fn required_time(&self, name: &str) -> Result<i64, String> {
        match self.0.get(name) {
            None | Some(Value::Null) => Err(format!("`{name}` is missing")),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.is_finite())
                        .map(|f| f.floor() as i64)
                })
                .ok_or_else(|| format!("`{name}` is not a NumericDate")),
            Some(_) => Err(format!("`{name}` is not a NumericDate")),
        }
    }

    /// Whether `aud` is `expected` or an array containing it.
    pub fn audience_is(&self, expected: &str) -> Result<(), String> {
        let matches = match self.0.get("aud") {
            None | Some(Value::Null) => return Err("`aud` is missing".into()),
            Some(Value::String(aud)) => aud == expected,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(expected)),
            Some(_) => return Err("`aud` is neither a string nor an array".into()),
        };
        if matches {
            Ok(())
        } else {
            Err(format!(
                "`aud` is {}, expected {expected:?}",
                self.0.get("aud").map(Value::to_string).unwrap_or_default()
            ))
        }
    }

    /// Checks `exp` (not passed, with skew), `iat` (not in the future, with
    /// skew) and `exp - iat <= max_lifetime`; returns `exp`.
    pub fn check_lifetime(&self, now: i64, max_lifetime: i64) -> Result<i64, String> {
        let exp = self.required_time("exp")?;
        let iat = self.required_time("iat")?;
        if now >= exp.saturating_add(CLOCK_SKEW_SECS) {
            return Err(format!("expired: `exp` {exp} is before now ({now})"));
        }
        if iat > now.saturating_add(CLOCK_SKEW_SECS) {
            return Err(format!("`iat` {iat} is in the future (now {now})"));
        }
        if exp.saturating_sub(iat) > max_lifetime {
            return Err(format!(
                "lifetime `exp - iat` is {} s; at most {max_lifetime} s is allowed",
                exp.saturating_sub(iat)
            ));
        }
        Ok(exp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onesoidc_core::{KeyType, PemSigner, sign_jwt};

    #[test]
    fn verifies_every_key_type_and_rejects_tampering() {
        for kt in KeyType::ALL {
            let signer = PemSigner::generate(kt).unwrap();
            let key = DeviceKey::from_jwk(&signer.public_jwk()).unwrap();
            assert_eq!(key.algorithm(), kt.jws_algorithm());
            let token = sign_jwt(&signer, &serde_json::json!({"a": 1})).unwrap();
            let jws = CompactJws::parse(&token).unwrap();
            jws.verify_with(&key).unwrap();
            let other = PemSigner::generate(kt).unwrap();
            let other_key = DeviceKey::from_jwk(&other.public_jwk()).unwrap();
            assert!(jws.verify_with(&other_key).is_err(), "{kt}");
        }
    }

    #[test]
    fn accepts_es521_and_rejects_mismatched_alg() {
        let signer = PemSigner::generate(KeyType::EccP521).unwrap();
        let mut jwk = signer.public_jwk();
        jwk.alg = Some("ES521".into());
        assert_eq!(
            DeviceKey::from_jwk(&jwk).unwrap().algorithm(),
            JwsAlgorithm::ES512
        );
        jwk.alg = Some("ES256".into());
        assert!(DeviceKey::from_jwk(&jwk).is_err());
    }

    #[test]
    fn rejects_garbage() {
        for token in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "e30.e30.",
            "!!.e30.c2ln",
            "e30.e30.c2ln",
        ] {
            assert!(CompactJws::parse(token).is_err(), "{token:?}");
        }
    }
}
