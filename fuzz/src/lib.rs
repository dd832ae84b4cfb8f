//! Shared fixtures of the onesoidc fuzz targets: fixed keys, a fixed JWKS,
//! the signing inputs of the valid ID tokens, and the response builder.
//!
//! The keys are the px-device-identity test fixtures, so the seed tokens in
//! `corpus/jwt_validate` (written by `cargo run --example gen_seeds`) verify
//! against the same JWKS the fuzz target builds at start-up.

pub mod targets;

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onesoidc_core::{Issuer, PemSigner, PublicJwk, PublicJwkSet, Signer};

/// The issuer every target checks against.
pub const ISSUER: &str = "https://idp.example.com/oidc";
/// The client id ID tokens must be issued to.
pub const CLIENT_ID: &str = "635f4c1b-17e0-4caa-8e36-9eecf8b6163b";
/// "Now" for every time-dependent check: 2023-11-14T22:13:20Z.
pub const NOW_SECS: u64 = 1_700_000_000;

/// [`NOW_SECS`] as a `SystemTime`.
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

/// The issuer as an [`Issuer`].
pub fn issuer() -> &'static Issuer {
    static ISSUER_CELL: OnceLock<Issuer> = OnceLock::new();
    ISSUER_CELL.get_or_init(|| Issuer::new(ISSUER).expect("fixed issuer"))
}

const FIXTURES: [(&str, &[u8]); 4] = [
    (
        "rsa-2048",
        include_bytes!(
            "../../onesoidc-core/tests/fixtures/px-device-identity/rsa-2048/private.pem"
        ),
    ),
    (
        "ecc-p256",
        include_bytes!(
            "../../onesoidc-core/tests/fixtures/px-device-identity/ecc-p256/private.pem"
        ),
    ),
    (
        "ecc-p384",
        include_bytes!(
            "../../onesoidc-core/tests/fixtures/px-device-identity/ecc-p384/private.pem"
        ),
    ),
    (
        "ecc-p521",
        include_bytes!(
            "../../onesoidc-core/tests/fixtures/px-device-identity/ecc-p521/private.pem"
        ),
    ),
];

/// A fixed provider key: its `kid` and the signer.
pub struct ProviderKey {
    /// The `kid` in the JWKS and in token headers.
    pub kid: &'static str,
    /// The private key.
    pub signer: PemSigner,
}

/// The provider's signing keys (one per algorithm), loaded once.
pub fn provider_keys() -> &'static [ProviderKey] {
    static KEYS: OnceLock<Vec<ProviderKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        FIXTURES
            .iter()
            .map(|(kid, pem)| ProviderKey {
                kid,
                signer: PemSigner::from_pem(pem, kid.as_ref()).expect("fixture key"),
            })
            .collect()
    })
}

/// The public JWKS of [`provider_keys`], each key with its `kid`.
pub fn provider_jwks() -> &'static PublicJwkSet {
    static JWKS: OnceLock<PublicJwkSet> = OnceLock::new();
    JWKS.get_or_init(|| PublicJwkSet {
        keys: provider_keys()
            .iter()
            .map(|k| PublicJwk {
                kid: Some(k.kid.to_string()),
                ..k.signer.public_jwk()
            })
            .collect(),
    })
}

/// `base64url(JSON)`, without padding.
pub fn b64(json: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).expect("json"))
}

/// The claim sets of valid ID tokens.
fn valid_claims() -> Vec<serde_json::Value> {
    use serde_json::json;
    vec![
        json!({"iss": ISSUER, "sub": "user-1", "aud": CLIENT_ID,
               "exp": NOW_SECS + 300, "iat": NOW_SECS - 10, "auth_time": NOW_SECS - 20}),
        json!({"iss": ISSUER, "sub": "user-2", "aud": ["other", CLIENT_ID],
               "exp": NOW_SECS + 3600, "iat": NOW_SECS, "nonce": "n-0S6_WzA2Mj"}),
    ]
}

/// Every signing input (`base64url(header).base64url(claims)`) that the
/// fuzz targets sign with a provider key: the only ones for which
/// `validate_id_token` may succeed. Index `i` is signed by `provider_keys()[i % 4]`
/// with a `kid` when `(i / 4) % 2 == 0`.
pub fn valid_signing_inputs() -> &'static [(usize, String)] {
    static INPUTS: OnceLock<Vec<(usize, String)>> = OnceLock::new();
    INPUTS.get_or_init(|| {
        let mut out = Vec::new();
        for claims in valid_claims() {
            for with_kid in [true, false] {
                for (key_index, key) in provider_keys().iter().enumerate() {
                    let alg = key.signer.algorithm().as_str();
                    let header = if with_kid {
                        serde_json::json!({"alg": alg, "typ": "JWT", "kid": key.kid})
                    } else {
                        serde_json::json!({"alg": alg, "typ": "JWT"})
                    };
                    out.push((key_index, format!("{}.{}", b64(&header), b64(&claims))));
                }
            }
        }
        out
    })
}

/// Signs `signing_input` with provider key `key_index`: a complete JWS.
pub fn sign(key_index: usize, signing_input: &str) -> String {
    let sig = provider_keys()[key_index]
        .signer
        .sign(signing_input.as_bytes())
        .expect("sign");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Valid ID tokens, freshly signed (ECDSA signatures differ each time).
pub fn valid_tokens() -> Vec<String> {
    valid_signing_inputs()
        .iter()
        .map(|(k, input)| sign(*k, input))
        .collect()
}

/// An HTTP response whose status comes from the first two bytes of `data`
/// (mapped into 100..=999, with 200 for short inputs) and whose body is the rest.
pub fn response(data: &[u8]) -> http::Response<Vec<u8>> {
    let (status, body) = match data {
        [a, b, rest @ ..] => (100 + u16::from_be_bytes([*a, *b]) % 900, rest),
        _ => (200, data),
    };
    http::Response::builder()
        .status(status)
        .body(body.to_vec())
        .expect("status in 100..=999")
}

/// The two status bytes that [`response`] maps to `status`.
pub fn status_prefix(status: u16) -> [u8; 2] {
    (status - 100).to_be_bytes()
}
