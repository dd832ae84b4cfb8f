//! Public JWKs of device keys (RFC 7517) and their RFC 7638 thumbprints.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::response::{HttpResponse, parse_public_json};
use crate::{Endpoint, Error};

use crate::JwsAlgorithm;

/// A public device key as a JWK, with `alg` (px-device-identity's
/// `public_jwk.json`, and the key a provider registers).
///
/// It can say `ES512` (jsonwebtoken's `Jwk` cannot). Reading accepts px's
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
    /// An RSA signing key from its big-endian modulus `n` and exponent `e`
    /// (for keys held elsewhere, e.g. in a TPM).
    ///
    /// ```
    /// use onesoidc_core::{JwsAlgorithm, PublicJwk};
    /// let jwk = PublicJwk::rsa(&[0xc1; 256], &[1, 0, 1], JwsAlgorithm::RS256);
    /// assert_eq!(jwk.e.as_deref(), Some("AQAB"));
    /// ```
    pub fn rsa(n: &[u8], e: &[u8], alg: JwsAlgorithm) -> Self {
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

    /// An EC signing key from its fixed-width coordinates; the curve
    /// follows `alg` (ES256: P-256, ES384: P-384, ES512: P-521).
    ///
    /// ```
    /// use onesoidc_core::{JwsAlgorithm, PublicJwk};
    /// let jwk = PublicJwk::ec(&[1; 48], &[2; 48], JwsAlgorithm::ES384);
    /// assert_eq!(jwk.crv.as_deref(), Some("P-384"));
    /// ```
    pub fn ec(x: &[u8], y: &[u8], alg: JwsAlgorithm) -> Self {
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
    pub fn with_thumbprint_kid(mut self) -> Result<Self, JwkError> {
        self.kid = Some(self.thumbprint()?);
        if let Some(alg) = self.algorithm() {
            self.alg = Some(alg.as_str().into());
        }
        Ok(self)
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url: the digest of the key's
    /// required members, in lexicographic order, without whitespace.
    pub fn thumbprint(&self) -> Result<String, JwkError> {
        let member = |name: &'static str, value: &'_ Option<String>| -> Result<String, JwkError> {
            let value = value.as_deref().ok_or(JwkError::MissingMember {
                kty: self.kty.clone(),
                member: name,
            })?;
            // Base64url (or a curve name, checked below): nothing to escape in JSON.
            let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_');
            if name != "crv" && (value.is_empty() || !value.chars().all(plain)) {
                return Err(JwkError::NotBase64Url { member: name });
            }
            Ok(value.to_string())
        };
        let canonical = match self.kty.as_str() {
            "RSA" => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                member("e", &self.e)?,
                member("n", &self.n)?
            ),
            "EC" => {
                let crv = member("crv", &self.crv)?;
                if !matches!(crv.as_str(), "P-256" | "P-384" | "P-521") {
                    return Err(JwkError::UnsupportedCurve(crv));
                }
                format!(
                    r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
                    member("x", &self.x)?,
                    member("y", &self.y)?
                )
            }
            other => return Err(JwkError::UnsupportedKeyType(other.to_string())),
        };
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        Ok(URL_SAFE_NO_PAD.encode(digest.as_ref()))
    }
}

/// A JWK that cannot be used as a device or provider key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwkError {
    /// A member the key type requires is absent.
    #[error("{kty} JWK without `{member}`")]
    MissingMember {
        /// `kty` of the key.
        kty: String,
        /// The member.
        member: &'static str,
    },
    /// A key member is empty or not base64url.
    #[error("JWK member `{member}` is not base64url")]
    NotBase64Url {
        /// The member.
        member: &'static str,
    },
    /// Not `RSA` or `EC`.
    #[error("unsupported key type `kty: {0}`")]
    UnsupportedKeyType(String),
    /// An EC curve other than P-256, P-384, P-521.
    #[error("unsupported EC curve {0:?}")]
    UnsupportedCurve(String),
}

/// The shortest time the provider's keys are kept, whatever `Cache-Control` says.
pub const JWKS_MIN_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// The longest time the provider's keys are kept, whatever `Cache-Control` says.
pub const JWKS_MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// How long the provider's keys are kept when `Cache-Control` gives no `max-age`.
pub const JWKS_DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Parses the provider's JWKS and says how long to keep it: its
/// `Cache-Control: max-age`, bounded to [`JWKS_MIN_LIFETIME`] –
/// [`JWKS_MAX_LIFETIME`], else [`JWKS_DEFAULT_LIFETIME`].
///
/// ```
/// use std::time::Duration;
/// let response = http::Response::builder().status(200)
///     .header("cache-control", "public, max-age=600")
///     .body(br#"{"keys":[]}"#.to_vec()).unwrap();
/// let endpoint = onesoidc_core::Endpoint::from("https://idp/oidc/jwks");
/// let (keys, lifetime) = onesoidc_core::parse_jwks_response(&endpoint, &response).unwrap();
/// assert!(keys.keys.is_empty());
/// assert_eq!(lifetime, Duration::from_secs(600));
/// ```
pub fn parse_jwks_response(
    endpoint: &Endpoint,
    response: &HttpResponse,
) -> Result<(PublicJwkSet, Duration), Error> {
    let keys: PublicJwkSet = parse_public_json(endpoint, response)?;
    let max_age = response
        .headers()
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|directive| {
            let (name, value) = directive.trim().split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("max-age")
                .then(|| value.trim().trim_matches('"').parse::<u64>().ok())?
        })
        .next();
    let lifetime = max_age.map_or(JWKS_DEFAULT_LIFETIME, |secs| {
        Duration::from_secs(secs).clamp(JWKS_MIN_LIFETIME, JWKS_MAX_LIFETIME)
    });
    Ok((keys, lifetime))
}
