//! DPoP proofs (RFC 9449), sans-IO. This module verifies the proof a
//! client sends with a DPoP-bound access token (§4.3); building proofs for
//! the client side belongs here too. The caller supplies the request's
//! method and URL, the access token, its `cnf.jkt` and `now`; whether the
//! proof's `jti` was seen before is the caller's check (a replay cache).

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use url::Url;

use crate::jws::{Jws, JwsError};
use crate::{PublicJwk, unix_seconds};

/// The header `typ` of a DPoP proof (RFC 9449 §4.2).
pub const DPOP_PROOF_TYPE: &str = "dpop+jwt";

/// The algorithms a DPoP proof may use unless the caller narrows them, in
/// the order they are advertised (`WWW-Authenticate: DPoP algs="…"`).
pub const DEFAULT_DPOP_ALGORITHMS: [&str; 7] = [
    "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256",
];

/// How far a proof's `iat` may be from `now`, either way, by default.
pub const DPOP_IAT_WINDOW: Duration = Duration::from_secs(60);

/// The longest DPoP proof read; a longer one is refused before it is decoded.
pub const MAX_DPOP_PROOF_BYTES: usize = 8 * 1024;

/// The longest `jti` accepted, so a replay cache entry stays small.
pub const MAX_DPOP_JTI_BYTES: usize = 256;

/// JWK members that only a private (or symmetric) key has (RFC 7518 §6).
const PRIVATE_KEY_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a DPoP proof was refused. Each rule of RFC 9449 §4.3 has its own
/// variant; [`member`](Self::member) names the header member or claim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopProofError {
    /// Longer than [`MAX_DPOP_PROOF_BYTES`].
    #[error("the DPoP proof is {len} bytes long, more than the {max} accepted")]
    TooLarge {
        /// Its length.
        len: usize,
        /// [`MAX_DPOP_PROOF_BYTES`].
        max: usize,
    },
    /// Not three base64url parts with a JSON header and JSON claims.
    #[error("the DPoP proof is malformed: {0}")]
    Malformed(String),
    /// Header `typ` is not `dpop+jwt`.
    #[error("the DPoP proof's header `typ` is {found:?}, not \"dpop+jwt\" (RFC 9449 §4.3)")]
    WrongType {
        /// The header's `typ`, if any.
        found: Option<String>,
    },
    /// Header `alg: none`.
    #[error("the DPoP proof's header `alg` is none: unsigned proofs are never accepted")]
    Unsigned,
    /// Header `alg` HS256/384/512.
    #[error(
        "the DPoP proof's header `alg` is the symmetric algorithm {0}; a proof is signed with a private key"
    )]
    SymmetricAlgorithm(String),
    /// Header `alg` not in the allowed list.
    #[error("the DPoP proof's header `alg` {alg} is not allowed (allowed: {allowed})")]
    AlgorithmNotAllowed {
        /// The proof's `alg`.
        alg: String,
        /// The allowed algorithms, comma separated.
        allowed: String,
    },
    /// Header `jwk` absent or not a JWK object.
    #[error("the DPoP proof's header has no usable `jwk` (a public JWK object): {0}")]
    MissingKey(String),
    /// Header `jwk` carries a private key member.
    #[error(
        "the DPoP proof's header `jwk` has the private key member `{0}`: a proof carries the public key only"
    )]
    PrivateKey(String),
    /// The header's `jwk` cannot verify the header's `alg` (key type or curve differ).
    #[error("the DPoP proof's header `jwk` cannot verify its `alg` {0}")]
    KeyAlgorithmMismatch(String),
    /// The signature does not verify with the header's `jwk`.
    #[error("the DPoP proof's signature does not verify with its own `jwk`")]
    BadSignature,
    /// A claim RFC 9449 §4.2 requires is absent.
    #[error("the DPoP proof has no `{0}` claim (RFC 9449 §4.2 requires it)")]
    MissingClaim(&'static str),
    /// A claim has the wrong JSON type or size.
    #[error("the DPoP proof's `{claim}` claim is not {expected}")]
    InvalidClaim {
        /// The claim.
        claim: &'static str,
        /// What it should be, e.g. "a string".
        expected: &'static str,
    },
    /// `htm` is not the request's method.
    #[error("the DPoP proof's `htm` is {found:?}, but the request's method is {expected:?}")]
    WrongMethod {
        /// The request's method.
        expected: String,
        /// The proof's `htm`.
        found: String,
    },
    /// `htu` is not the request's URL (scheme, host, port and path compared).
    #[error(
        "the DPoP proof's `htu` is {found:?}, but the request's URL is {expected:?} (scheme, host, port and path compared)"
    )]
    WrongUrl {
        /// The request's URL, without query and fragment.
        expected: String,
        /// The proof's `htu`.
        found: String,
    },
    /// `iat` is further from `now` than the allowed window.
    #[error(
        "the DPoP proof's `iat` {iat} is more than {window} s from now ({now}); make a new proof per request, and check the clocks"
    )]
    IatOutOfWindow {
        /// The proof's `iat`.
        iat: u64,
        /// Now, seconds since the epoch.
        now: u64,
        /// The allowed window, seconds.
        window: u64,
    },
    /// `ath` is not the hash of the access token sent with it.
    #[error(
        "the DPoP proof's `ath` is not base64url(SHA-256) of the access token sent with it (RFC 9449 §4.3)"
    )]
    WrongAccessTokenHash,
    /// The proof's key is not the key the access token is bound to.
    #[error(
        "the DPoP proof's key has the thumbprint {found:?}, but the access token is bound to {expected:?} (`cnf.jkt`)"
    )]
    KeyNotBound {
        /// The token's `cnf.jkt`.
        expected: String,
        /// The proof key's RFC 7638 thumbprint.
        found: String,
    },
    /// A nonce is expected and the proof has none.
    #[error("the DPoP proof has no `nonce`, and this server requires one (`DPoP-Nonce`)")]
    MissingNonce,
    /// The proof's nonce is not the expected one.
    #[error("the DPoP proof's `nonce` is not the one this server issued (`DPoP-Nonce`)")]
    WrongNonce,
}

impl DpopProofError {
    /// The header member or claim this error is about, if any.
    pub fn member(&self) -> Option<&'static str> {
        Some(match self {
            Self::WrongType { .. } => "typ",
            Self::Unsigned | Self::SymmetricAlgorithm(_) | Self::AlgorithmNotAllowed { .. } => {
                "alg"
            }
            Self::MissingKey(_) | Self::PrivateKey(_) | Self::KeyAlgorithmMismatch(_) => "jwk",
            Self::MissingClaim(c) | Self::InvalidClaim { claim: c, .. } => c,
            Self::WrongMethod { .. } => "htm",
            Self::WrongUrl { .. } => "htu",
            Self::IatOutOfWindow { .. } => "iat",
            Self::WrongAccessTokenHash => "ath",
            Self::MissingNonce | Self::WrongNonce => "nonce",
            Self::KeyNotBound { .. } => "cnf",
            Self::TooLarge { .. } | Self::Malformed(_) | Self::BadSignature => return None,
        })
    }
}

impl From<JwsError> for DpopProofError {
    fn from(e: JwsError) -> Self {
        match e {
            JwsError::Malformed(m) => Self::Malformed(m),
            JwsError::Unsigned => Self::Unsigned,
            JwsError::SymmetricAlgorithm(alg) => Self::SymmetricAlgorithm(alg),
            JwsError::AlgorithmNotAllowed { alg, allowed } => {
                Self::AlgorithmNotAllowed { alg, allowed }
            }
            JwsError::KeyAlgorithmMismatch { alg, .. } => Self::KeyAlgorithmMismatch(alg),
            JwsError::UnknownKeyId(_) => Self::MissingKey("no key".into()),
            JwsError::BadSignature => Self::BadSignature,
        }
    }
}

/// What a DPoP proof must match: the request it came with and, when an
/// access token came too, that token and the key it is bound to.
///
/// ```
/// let url = url::Url::parse("https://app.example/orders?page=2").unwrap();
/// let expect = onesoidc_core::DpopProofExpectations::new("GET", &url)
///     .access_token("eyJ…", "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
/// assert_eq!(expect.iat_window, onesoidc_core::DPOP_IAT_WINDOW);
/// ```
#[derive(Debug, Clone)]
pub struct DpopProofExpectations<'a> {
    /// The request's method (`htm`, compared exactly).
    pub method: &'a str,
    /// The request's full URL (`htu`; query and fragment ignored).
    pub url: &'a Url,
    /// The access token sent with the proof (its hash is `ath`) and its
    /// `cnf.jkt` (the proof key's thumbprint), when one was sent.
    pub access_token: Option<(&'a str, &'a str)>,
    /// The nonce this server issued (`DPoP-Nonce`), when it requires one.
    pub nonce: Option<&'a str>,
    /// Allowed `alg` values; empty means [`DEFAULT_DPOP_ALGORITHMS`].
    /// `none` and HS* are refused whatever this says.
    pub allowed_algorithms: &'a [&'a str],
    /// How far `iat` may be from `now`, either way (default [`DPOP_IAT_WINDOW`]).
    pub iat_window: Duration,
}

impl<'a> DpopProofExpectations<'a> {
    /// A proof for a request with `method` to `url`, no token, no nonce.
    pub fn new(method: &'a str, url: &'a Url) -> Self {
        DpopProofExpectations {
            method,
            url,
            access_token: None,
            nonce: None,
            allowed_algorithms: &[],
            iat_window: DPOP_IAT_WINDOW,
        }
    }

    /// The access token sent with the proof and its `cnf.jkt`.
    pub fn access_token(mut self, token: &'a str, cnf_jkt: &'a str) -> Self {
        self.access_token = Some((token, cnf_jkt));
        self
    }

    /// The nonce the proof must carry.
    pub fn nonce(mut self, nonce: &'a str) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// Narrows the allowed algorithms.
    pub fn allowed_algorithms(mut self, algorithms: &'a [&'a str]) -> Self {
        self.allowed_algorithms = algorithms;
        self
    }

    /// Changes the `iat` window.
    pub fn iat_window(mut self, window: Duration) -> Self {
        self.iat_window = window;
        self
    }
}

/// A DPoP proof that passed every check but replay: the caller stores
/// `jti` (e.g. for [`DPOP_IAT_WINDOW`] twice) and refuses it a second time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopProof {
    /// The proof's unique id, to check for replay.
    pub jti: String,
    /// When it was made, seconds since the epoch.
    pub iat: u64,
    /// The RFC 7638 thumbprint of the proof's key.
    pub key_thumbprint: String,
    /// The proof's `nonce`, if it has one: for a server that accepts more
    /// than one nonce (the current and the previous of a rotating one) and
    /// so checks it itself rather than through [`DpopProofExpectations::nonce`].
    pub nonce: Option<String>,
}

/// `base64url(SHA-256(access_token))`, a DPoP proof's `ath` (RFC 9449 §4.2).
///
/// ```
/// assert_eq!(onesoidc_core::dpop_access_token_hash("token").len(), 43);
/// ```
pub fn dpop_access_token_hash(access_token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Verifies a DPoP proof (RFC 9449 §4.3) against the request it came with,
/// in this order: size, `typ`, `alg`, `jwk` (public only), signature,
/// `jti`, `htm`, `htu`, `iat`, `nonce`, `ath`, `cnf.jkt`. Replay of `jti`
/// is the caller's check.
///
/// ```
/// let url = url::Url::parse("https://app.example/orders").unwrap();
/// let expect = onesoidc_core::DpopProofExpectations::new("GET", &url);
/// let err = onesoidc_core::verify_dpop_proof("not.a.proof", &expect, std::time::SystemTime::now());
/// assert!(matches!(err, Err(onesoidc_core::DpopProofError::Malformed(_))));
/// ```
pub fn verify_dpop_proof(
    proof: &str,
    expect: &DpopProofExpectations<'_>,
    now: SystemTime,
) -> Result<DpopProof, DpopProofError> {
    if proof.len() > MAX_DPOP_PROOF_BYTES {
        return Err(DpopProofError::TooLarge {
            len: proof.len(),
            max: MAX_DPOP_PROOF_BYTES,
        });
    }
    let jws = Jws::parse(proof)?;
    if jws.header.typ.as_deref() != Some(DPOP_PROOF_TYPE) {
        return Err(DpopProofError::WrongType {
            found: jws.header.typ.clone(),
        });
    }
    let allowed: &[&str] = if expect.allowed_algorithms.is_empty() {
        &DEFAULT_DPOP_ALGORITHMS
    } else {
        expect.allowed_algorithms
    };
    let key = public_key(jws.header.jwk.as_ref())?;
    jws.verify_with_key(&key, allowed)?;
    let key_thumbprint = key
        .thumbprint()
        .map_err(|e| DpopProofError::MissingKey(e.to_string()))?;

    let claims = &jws.claims;
    let string = |claim: &'static str| -> Result<&str, DpopProofError> {
        match claims.get(claim) {
            None => Err(DpopProofError::MissingClaim(claim)),
            Some(v) => v.as_str().ok_or(DpopProofError::InvalidClaim {
                claim,
                expected: "a string",
            }),
        }
    };
    let jti = string("jti")?;
    if jti.is_empty() || jti.len() > MAX_DPOP_JTI_BYTES {
        return Err(DpopProofError::InvalidClaim {
            claim: "jti",
            expected: "a non-empty string of at most 256 bytes",
        });
    }
    let htm = string("htm")?;
    if htm != expect.method {
        return Err(DpopProofError::WrongMethod {
            expected: expect.method.to_string(),
            found: htm.to_string(),
        });
    }
    let htu = string("htu")?;
    if !same_resource(htu, expect.url) {
        let mut expected = expect.url.clone();
        expected.set_query(None);
        expected.set_fragment(None);
        return Err(DpopProofError::WrongUrl {
            expected: expected.to_string(),
            found: htu.to_string(),
        });
    }
    let iat = match claims.get("iat") {
        None => return Err(DpopProofError::MissingClaim("iat")),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .ok_or(DpopProofError::InvalidClaim {
                claim: "iat",
                expected: "a number of seconds since the epoch",
            })?,
    };
    let now_secs = unix_seconds(now);
    let window = expect.iat_window.as_secs();
    if iat.abs_diff(now_secs) > window {
        return Err(DpopProofError::IatOutOfWindow {
            iat,
            now: now_secs,
            window,
        });
    }
    let nonce = match claims.get("nonce") {
        None => None,
        Some(v) => Some(v.as_str().ok_or(DpopProofError::InvalidClaim {
            claim: "nonce",
            expected: "a string",
        })?),
    };
    if let Some(expected) = expect.nonce {
        match nonce {
            None => return Err(DpopProofError::MissingNonce),
            Some(nonce) if nonce != expected => return Err(DpopProofError::WrongNonce),
            Some(_) => {}
        }
    }
    if let Some((token, cnf_jkt)) = expect.access_token {
        if string("ath")? != dpop_access_token_hash(token) {
            return Err(DpopProofError::WrongAccessTokenHash);
        }
        if key_thumbprint != cnf_jkt {
            return Err(DpopProofError::KeyNotBound {
                expected: cnf_jkt.to_string(),
                found: key_thumbprint,
            });
        }
    }
    Ok(DpopProof {
        jti: jti.to_string(),
        iat,
        key_thumbprint,
        nonce: nonce.map(str::to_string),
    })
}

/// The header's `jwk` as a public key; a private member is refused.
fn public_key(jwk: Option<&serde_json::Map<String, Value>>) -> Result<PublicJwk, DpopProofError> {
    let jwk = jwk.ok_or_else(|| DpopProofError::MissingKey("the header has no `jwk`".into()))?;
    if let Some(private) = PRIVATE_KEY_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
        return Err(DpopProofError::PrivateKey((*private).to_string()));
    }
    serde_json::from_value(Value::Object(jwk.clone()))
        .map_err(|e| DpopProofError::MissingKey(format!("`jwk` is not a public JWK ({e})")))
}

/// Whether `htu` names the same resource as `url` (RFC 9449 §4.3 item 9):
/// scheme, host, port and path after RFC 3986 §6 normalisation (case,
/// default port, percent-encoding); query and fragment ignored.
fn same_resource(htu: &str, url: &Url) -> bool {
    let Ok(htu) = Url::parse(htu) else {
        return false;
    };
    htu.scheme() == url.scheme()
        && htu.host_str() == url.host_str()
        && htu.port_or_known_default() == url.port_or_known_default()
        && normalized_path(htu.path()) == normalized_path(url.path())
}

/// A path with percent-encoded unreserved characters decoded and the other
/// percent-encodings in upper case (RFC 3986 §6.2.2.1–2).
fn normalized_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let hex = |i: usize| bytes.get(i).and_then(|b| (*b as char).to_digit(16));
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if let (b'%', Some(hi), Some(lo)) = (bytes[i], hex(i + 1), hex(i + 2)) {
            let decoded = (hi * 16 + lo) as u8;
            if decoded.is_ascii_alphanumeric() || b"-._~".contains(&decoded) {
                out.push(decoded as char);
            } else {
                out.push_str(&format!("%{decoded:02X}"));
            }
            i += 3;
        } else {
            // A parsed URL's path is ASCII: the url crate percent-encodes the rest.
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    out
}
