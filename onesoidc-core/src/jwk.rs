//! Public JWKs of device keys (RFC 7517) and their RFC 7638 thumbprints.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, RSAKeyParameters, RSAKeyType, ThumbprintHash,
};
use serde::{Deserialize, Serialize};

use crate::JwsAlgorithm;

/// A public device key as a JWK, with `alg` (px-device-identity's
/// `public_jwk.json`, and the key a provider registers).
///
/// Unlike jsonwebtoken's `Jwk`, it can say `ES512`. Reading accepts px's
/// non-standard `ES521` as ES512; writing always says `ES512`.
///
/// ```
/// let jwk: onesoidc_core::PublicJwk = serde_json::from_str(
///     r#"{"kty":"EC","crv":"P-256","alg":"ES256",
///        "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
///        "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#).unwrap();
/// assert_eq!(jwk.thumbprint().unwrap(), "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    /// `RSA` or `EC`.
    pub kty: String,
    /// The JWS algorithm (`RS256`, `ES256`, `ES384`, `ES512`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Key id, when assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// `sig` for signing keys.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// RSA modulus, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// EC curve (`P-256`, `P-384`, `P-521`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

/// A JWK Set (`{"keys": [...]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwkSet {
    /// The keys.
    pub keys: Vec<PublicJwk>,
}

impl PublicJwk {
    pub(crate) fn rsa(n: &[u8], e: &[u8], alg: JwsAlgorithm) -> Self {
        PublicJwk {
            kty: "RSA".into(),
            alg: Some(alg.as_str().into()),
            kid: None,
            use_: Some("sig".into()),
            n: Some(URL_SAFE_NO_PAD.encode(n)),
            e: Some(URL_SAFE_NO_PAD.encode(e)),
            crv: None,
            x: None,
            y: None,
        }
    }

    pub(crate) fn ec(x: &[u8], y: &[u8], alg: JwsAlgorithm) -> Self {
        let crv = match alg {
            JwsAlgorithm::ES384 => "P-384",
            JwsAlgorithm::ES512 => "P-521",
            _ => "P-256",
        };
        PublicJwk {
            kty: "EC".into(),
            alg: Some(alg.as_str().into()),
            kid: None,
            use_: Some("sig".into()),
            n: None,
            e: None,
            crv: Some(crv.into()),
            x: Some(URL_SAFE_NO_PAD.encode(x)),
            y: Some(URL_SAFE_NO_PAD.encode(y)),
        }
    }

    /// The algorithm, reading px's `ES521` as ES512.
    pub fn algorithm(&self) -> Option<JwsAlgorithm> {
        self.alg.as_deref().and_then(JwsAlgorithm::from_name)
    }

    /// This key with `kid` set to its thumbprint and `alg` normalised (`ES521` → `ES512`).
    pub fn with_thumbprint_kid(mut self) -> Result<Self, String> {
        self.kid = Some(self.thumbprint()?);
        if let Some(alg) = self.algorithm() {
            self.alg = Some(alg.as_str().into());
        }
        Ok(self)
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url.
    pub fn thumbprint(&self) -> Result<String, String> {
        self.to_jsonwebtoken()?
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| format!("cannot compute the JWK thumbprint: {e}"))
    }

    /// The same key as a jsonwebtoken `Jwk` (without `alg`, which it cannot
    /// say for ES512), e.g. to build a `DecodingKey`.
    pub fn to_jsonwebtoken(&self) -> Result<Jwk, String> {
        let missing = |f: &str| format!("{} JWK without `{f}`", self.kty);
        let algorithm = match self.kty.as_str() {
            "RSA" => AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: self.n.clone().ok_or_else(|| missing("n"))?,
                e: self.e.clone().ok_or_else(|| missing("e"))?,
            }),
            "EC" => AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                key_type: EllipticCurveKeyType::EC,
                curve: match self.crv.as_deref() {
                    Some("P-256") => EllipticCurve::P256,
                    Some("P-384") => EllipticCurve::P384,
                    Some("P-521") => EllipticCurve::P521,
                    other => return Err(format!("unsupported EC curve {other:?}")),
                },
                x: self.x.clone().ok_or_else(|| missing("x"))?,
                y: self.y.clone().ok_or_else(|| missing("y"))?,
            }),
            other => return Err(format!("unsupported key type `kty: {other}`")),
        };
        Ok(Jwk {
            common: CommonParameters {
                key_id: self.kid.clone(),
                ..CommonParameters::default()
            },
            algorithm,
        })
    }
}
