//! Making DPoP proofs (RFC 9449 §4.2), sans-IO: the client's half of
//! DPoP. A [`DpopKey`] is a signer with its public JWK; each request gets a
//! fresh proof from [`DpopKey::proof`]. Sending it, and retrying once with
//! the server's `DPoP-Nonce`, is the flows' job; verifying proofs is
//! [`verify_dpop_proof`](crate::verify_dpop_proof)'s.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use url::Url;

use crate::dpop::{DPOP_PROOF_TYPE, dpop_access_token_hash};
use crate::jwk::JwkError;
use crate::{JwsAlgorithm, KeyType, PemSigner, PublicJwk, SignError, Signer, unix_seconds};

/// A key that signs DPoP proofs: a [`Signer`] (a PEM key, a TPM key, the
/// device's own key) and its public JWK, which every proof carries.
///
/// Cloning is cheap (the signer is shared); the proof header is encoded
/// once, so a proof costs one signature and a few hundred bytes of JSON.
///
/// ```
/// use std::time::SystemTime;
/// use onesoidc_core::{DpopKey, DpopProofExpectations, verify_dpop_proof};
/// let key = DpopKey::generate().unwrap();
/// let url = url::Url::parse("https://idp.example/oidc/token").unwrap();
/// let proof = key.proof("POST", &url, None, None, SystemTime::now()).unwrap();
/// let checked = verify_dpop_proof(&proof, &DpopProofExpectations::new("POST", &url), SystemTime::now()).unwrap();
/// assert_eq!(checked.key_thumbprint, key.thumbprint());
/// ```
#[derive(Clone)]
pub struct DpopKey {
    signer: Arc<dyn Signer>,
    public_jwk: PublicJwk,
    thumbprint: String,
    encoded_header: String,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("algorithm", &self.algorithm())
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

/// Why a signer and a JWK cannot make DPoP proofs together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopKeyError {
    /// The public JWK lacks a member or has an unsupported type or curve.
    #[error("the DPoP key's public JWK cannot be used: {0}")]
    Jwk(#[from] JwkError),
    /// The JWK is not the kind of key the signer's algorithm needs.
    #[error(
        "the DPoP key signs with {algorithm} but its public JWK is kty {kty:?}, crv {crv:?}; give the JWK of the signer's own key"
    )]
    KeyMismatch {
        /// The signer's algorithm.
        algorithm: &'static str,
        /// The JWK's `kty`.
        kty: String,
        /// The JWK's `crv`, for EC keys.
        crv: Option<String>,
    },
    /// The proof header could not be encoded.
    #[error("cannot encode the DPoP proof header: {0}")]
    Encode(String),
}

#[derive(Serialize)]
struct ProofHeader<'a> {
    typ: &'static str,
    alg: &'static str,
    jwk: &'a PublicJwk,
}

#[derive(Serialize)]
struct ProofClaims<'a> {
    jti: String,
    htm: &'a str,
    htu: String,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

impl DpopKey {
    /// A DPoP key from a signer and its public JWK. Only the JWK's
    /// required members (RFC 7638) go into proofs: no `kid`, `alg` or `use`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use onesoidc_core::{DpopKey, KeyType, PemSigner};
    /// let signer = PemSigner::generate(KeyType::EccP384).unwrap();
    /// let jwk = signer.public_jwk();
    /// let key = DpopKey::new(Arc::new(signer), jwk.clone()).unwrap();
    /// assert_eq!(key.thumbprint(), jwk.thumbprint().unwrap());
    ///
    /// let other = PemSigner::generate(KeyType::EccP256).unwrap();
    /// assert!(DpopKey::new(Arc::new(other), jwk).is_err());
    /// ```
    pub fn new(signer: Arc<dyn Signer>, public_jwk: PublicJwk) -> Result<Self, DpopKeyError> {
        let thumbprint = public_jwk.thumbprint()?;
        let algorithm = signer.algorithm();
        let expected_curve = match algorithm {
            JwsAlgorithm::RS256 => None,
            JwsAlgorithm::ES256 => Some("P-256"),
            JwsAlgorithm::ES384 => Some("P-384"),
            JwsAlgorithm::ES512 => Some("P-521"),
        };
        let matches = match expected_curve {
            None => public_jwk.kty == "RSA",
            Some(curve) => public_jwk.kty == "EC" && public_jwk.crv.as_deref() == Some(curve),
        };
        if !matches {
            return Err(DpopKeyError::KeyMismatch {
                algorithm: algorithm.as_str(),
                kty: public_jwk.kty,
                crv: public_jwk.crv,
            });
        }
        let public_jwk = PublicJwk {
            alg: None,
            kid: None,
            use_: None,
            ..public_jwk
        };
        let header = ProofHeader {
            typ: DPOP_PROOF_TYPE,
            alg: algorithm.as_str(),
            jwk: &public_jwk,
        };
        let encoded_header =
            base64_json(&header).map_err(|e| DpopKeyError::Encode(e.to_string()))?;
        Ok(DpopKey {
            signer,
            public_jwk,
            thumbprint,
            encoded_header,
        })
    }

    /// A new P-256 key held in memory (the key kept beside the identity
    /// as `dpop.pem` when the device's own key cannot sign proofs).
    pub fn generate() -> Result<Self, SignError> {
        Self::from_pem_signer(PemSigner::generate(KeyType::EccP256)?)
    }

    /// A DPoP key from a PEM key (its public JWK comes from the key).
    pub fn from_pem_signer(signer: PemSigner) -> Result<Self, SignError> {
        let jwk = signer.public_jwk();
        Self::new(Arc::new(signer), jwk).map_err(|e| SignError::Encode(e.to_string()))
    }

    /// The RFC 7638 SHA-256 thumbprint of the key: the `cnf.jkt` a token
    /// bound to it carries.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The JWS algorithm proofs are signed with.
    pub fn algorithm(&self) -> JwsAlgorithm {
        self.signer.algorithm()
    }

    /// The public key proofs carry (required members only).
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.public_jwk
    }

    /// The signer, e.g. to check [`Signer::blocks`] before signing on an
    /// async runtime.
    pub fn signer(&self) -> &Arc<dyn Signer> {
        &self.signer
    }

    /// A DPoP proof for one request: header `typ: dpop+jwt`, `alg`, `jwk`;
    /// claims `jti` (a fresh UUIDv4), `htm` = `method`, `htu` = `url`
    /// without query and fragment ([`dpop_htu`]), `iat` = `now`, and
    /// `ath` = hash of `access_token` and `nonce` when given.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let key = onesoidc_core::DpopKey::generate().unwrap();
    /// let url = url::Url::parse("https://app.example/me?page=2#top").unwrap();
    /// let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    /// let proof = key.proof("GET", &url, Some("token"), Some("n-1"), now).unwrap();
    /// let claims: serde_json::Value = jsonwebtoken::dangerous::insecure_decode(&proof).unwrap().claims;
    /// assert_eq!(claims["htu"], "https://app.example/me");
    /// assert_eq!(claims["iat"], 1_700_000_000);
    /// assert_eq!(claims["nonce"], "n-1");
    /// assert_eq!(claims["ath"], onesoidc_core::dpop_access_token_hash("token"));
    /// ```
    pub fn proof(
        &self,
        method: &str,
        url: &Url,
        access_token: Option<&str>,
        nonce: Option<&str>,
        now: SystemTime,
    ) -> Result<String, SignError> {
        let claims = ProofClaims {
            jti: uuid::Uuid::new_v4().to_string(),
            htm: method,
            htu: dpop_htu(url),
            iat: unix_seconds(now),
            ath: access_token.map(dpop_access_token_hash),
            nonce,
        };
        let encoded_claims = base64_json(&claims)?;
        let mut proof =
            String::with_capacity(self.encoded_header.len() + encoded_claims.len() + 360);
        proof.push_str(&self.encoded_header);
        proof.push('.');
        proof.push_str(&encoded_claims);
        let signature = self.signer.sign(proof.as_bytes())?;
        proof.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut proof);
        Ok(proof)
    }
}

/// A proof's `htu` for a request to `url`: the URL without query and
/// fragment (RFC 9449 §4.2), in the url crate's normal form (scheme and
/// host in lower case, default port dropped, IDN hosts in punycode, an
/// empty path as `/`).
///
/// ```
/// let url = url::Url::parse("HTTPS://App.Example:443?q=1#f").unwrap();
/// assert_eq!(onesoidc_core::dpop_htu(&url), "https://app.example/");
/// ```
pub fn dpop_htu(url: &Url) -> String {
    let mut htu = url.clone();
    htu.set_query(None);
    htu.set_fragment(None);
    htu.into()
}

fn base64_json<T: Serialize + ?Sized>(value: &T) -> Result<String, SignError> {
    let json = serde_json::to_vec(value).map_err(|e| SignError::Encode(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

impl From<DpopKeyError> for SignError {
    fn from(e: DpopKeyError) -> Self {
        SignError::Encode(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::{DpopProofExpectations, verify_dpop_proof};

    fn decode(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn a_proof_carries_exactly_the_header_and_claims_rfc_9449_names() {
        for key_type in [KeyType::EccP256, KeyType::EccP384, KeyType::Rsa2048] {
            let signer = PemSigner::generate(key_type).unwrap();
            let jwk = signer.public_jwk();
            let key = DpopKey::new(Arc::new(signer), jwk.clone()).unwrap();
            let url = Url::parse("https://app.example:8443/a/b?x=1#y").unwrap();
            let now = UNIX_EPOCH + Duration::from_secs(1_700_000_123);
            let proof = key
                .proof("PUT", &url, Some("at"), Some("nonce-7"), now)
                .unwrap();
            let parts: Vec<&str> = proof.split('.').collect();
            assert_eq!(parts.len(), 3);

            let header = decode(parts[0]);
            let header = header.as_object().unwrap();
            let mut names: Vec<&str> = header.keys().map(String::as_str).collect();
            names.sort_unstable();
            assert_eq!(names, ["alg", "jwk", "typ"]);
            assert_eq!(header["typ"], "dpop+jwt");
            assert_eq!(header["alg"], key_type.jws_algorithm().as_str());
            let proof_jwk: PublicJwk = serde_json::from_value(header["jwk"].clone()).unwrap();
            assert_eq!(proof_jwk.thumbprint().unwrap(), jwk.thumbprint().unwrap());
            for private_or_extra in ["d", "p", "q", "kid", "alg", "use"] {
                assert!(
                    header["jwk"].get(private_or_extra).is_none(),
                    "{private_or_extra}"
                );
            }

            let claims = decode(parts[1]);
            let claims = claims.as_object().unwrap();
            let mut names: Vec<&str> = claims.keys().map(String::as_str).collect();
            names.sort_unstable();
            assert_eq!(names, ["ath", "htm", "htu", "iat", "jti", "nonce"]);
            assert_eq!(claims["htm"], "PUT");
            assert_eq!(claims["htu"], "https://app.example:8443/a/b");
            assert_eq!(claims["iat"], 1_700_000_123);
            assert_eq!(claims["nonce"], "nonce-7");
            assert_eq!(claims["ath"], dpop_access_token_hash("at"));
            assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());

            let expect = DpopProofExpectations::new("PUT", &url)
                .access_token("at", key.thumbprint())
                .nonce("nonce-7");
            let checked = verify_dpop_proof(&proof, &expect, now).unwrap();
            assert_eq!(checked.key_thumbprint, key.thumbprint());
        }
    }

    #[test]
    fn a_proof_without_token_or_nonce_has_neither_claim() {
        let key = DpopKey::generate().unwrap();
        let url = Url::parse("https://idp.example/oidc/token").unwrap();
        let proof = key
            .proof("POST", &url, None, None, SystemTime::now())
            .unwrap();
        let claims = decode(proof.split('.').nth(1).unwrap());
        assert!(claims.get("ath").is_none());
        assert!(claims.get("nonce").is_none());
    }

    #[test]
    fn htu_is_normalized_as_rfc_3986_section_6_says() {
        let cases = [
            ("https://a.example:443/x", "https://a.example/x"),
            ("http://a.example:80/x", "http://a.example/x"),
            ("https://a.example:8443/x", "https://a.example:8443/x"),
            ("https://a.example", "https://a.example/"),
            ("https://a.example/x/", "https://a.example/x/"),
            ("https://A.Example/X", "https://a.example/X"),
            ("https://a.example/x?q=1&r=2#frag", "https://a.example/x"),
            (
                "https://bücher.example/x",
                "https://xn--bcher-kva.example/x",
            ),
            ("https://a.example/a b", "https://a.example/a%20b"),
            ("https://a.example/%7euser", "https://a.example/%7euser"),
        ];
        for (input, expected) in cases {
            assert_eq!(dpop_htu(&Url::parse(input).unwrap()), expected, "{input}");
        }
        // A percent-encoded unreserved character still names the same
        // resource for the verifier (RFC 3986 §6.2.2.2).
        let key = DpopKey::generate().unwrap();
        let now = SystemTime::now();
        let sent = Url::parse("https://a.example/%7euser").unwrap();
        let received = Url::parse("https://a.example/~user").unwrap();
        let proof = key.proof("GET", &sent, None, None, now).unwrap();
        verify_dpop_proof(&proof, &DpopProofExpectations::new("GET", &received), now).unwrap();
    }

    #[test]
    fn ten_thousand_proofs_have_ten_thousand_jtis() {
        let key = DpopKey::generate().unwrap();
        let url = Url::parse("https://idp.example/oidc/token").unwrap();
        let now = SystemTime::now();
        let jtis: HashSet<String> = (0..10_000)
            .map(|_| {
                let proof = key.proof("POST", &url, None, None, now).unwrap();
                decode(proof.split('.').nth(1).unwrap())["jti"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(jtis.len(), 10_000);
    }

    #[test]
    fn ath_matches_rfc_9449_section_7_1_example() {
        // RFC 9449 §7.1: the access token and the `ath` of the proof sent with it.
        let token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
        assert_eq!(
            dpop_access_token_hash(token),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn a_jwk_of_another_kind_of_key_is_refused_with_both_named() {
        let signer = PemSigner::generate(KeyType::Rsa2048).unwrap();
        let ec = PemSigner::generate(KeyType::EccP256).unwrap().public_jwk();
        let err = DpopKey::new(Arc::new(signer), ec).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("RS256") && message.contains("EC"),
            "{message}"
        );
    }

    #[test]
    fn debug_shows_the_thumbprint_not_the_key() {
        let key = DpopKey::generate().unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains(key.thumbprint()));
        assert!(!debug.contains("PRIVATE"));
    }
}
