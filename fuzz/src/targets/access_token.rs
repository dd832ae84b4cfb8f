//! `check_access_token` never panics and never accepts a token it should
//! not; `is_jwt` never panics.
//!
//! First byte even: the rest is a token, checked against the fixed JWKS; it
//! may only pass if its signing input is one the fixed keys signed (RFC 9068
//! header, our issuer and audience). First byte odd: the rest is a JWKS
//! (JSON), checked against fixed valid access tokens; one may only pass if
//! the JWKS holds its real signing key.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onesoidc_core::{
    AccessTokenExpectations, PublicJwkSet, Signer, check_access_token, is_jwt,
};

use crate::{ISSUER, NOW_SECS, issuer, now, provider_jwks, provider_keys};

/// The audience every access token is checked for.
pub const AUDIENCE: &str = "https://vhh.example.com";

fn b64(json: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).expect("json"))
}

/// The signing inputs of valid access tokens: input `i` is signed by
/// `provider_keys()[i % 4]`.
pub fn valid_inputs() -> &'static [(usize, String)] {
    static INPUTS: OnceLock<Vec<(usize, String)>> = OnceLock::new();
    INPUTS.get_or_init(|| {
        use serde_json::json;
        let claim_sets = [
            json!({"iss": ISSUER, "sub": "alice", "aud": AUDIENCE, "client_id": "kiosk-7",
                   "exp": NOW_SECS + 300, "iat": NOW_SECS - 10, "jti": "at-1", "scope": "openid read"}),
            json!({"iss": ISSUER, "sub": "bob", "aud": ["other", AUDIENCE], "client_id": "kiosk-8",
                   "exp": NOW_SECS + 60, "iat": NOW_SECS, "nbf": NOW_SECS, "jti": "at-2",
                   "auth_time": NOW_SECS - 5, "acr": "1", "cnf": {"jkt": "abc"}}),
        ];
        let mut out = Vec::new();
        for claims in claim_sets {
            for typ in ["at+jwt", "application/at+jwt"] {
                for (key_index, key) in provider_keys().iter().enumerate() {
                    let header = serde_json::json!({
                        "alg": key.signer.algorithm().as_str(), "typ": typ, "kid": key.kid,
                    });
                    out.push((key_index, format!("{}.{}", b64(&header), b64(&claims))));
                }
            }
        }
        out
    })
}

fn sign(key_index: usize, input: &str) -> String {
    let sig = provider_keys()[key_index]
        .signer
        .sign(input.as_bytes())
        .expect("sign");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Valid access tokens, freshly signed.
pub fn valid_tokens() -> Vec<String> {
    valid_inputs().iter().map(|(k, input)| sign(*k, input)).collect()
}

fn fixed_tokens() -> &'static [String] {
    static TOKENS: OnceLock<Vec<String>> = OnceLock::new();
    TOKENS.get_or_init(valid_tokens)
}

/// One input: never panics; successes respect their invariants.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let expect = AccessTokenExpectations::new(issuer(), AUDIENCE);
    if mode & 1 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        let _ = is_jwt(token);
        if let Ok(claims) = check_access_token(token, provider_jwks(), expect, now()) {
            let input = token.rsplit_once('.').map(|(input, _)| input).unwrap_or("");
            assert!(
                valid_inputs().iter().any(|(_, s)| s == input),
                "accepted an access token the fixed keys never signed: {token}"
            );
            assert!(is_jwt(token));
            assert_eq!(claims.iss, ISSUER);
            assert!(claims.aud.iter().any(|a| a == AUDIENCE));
        }
    } else {
        let Ok(jwks) = serde_json::from_slice::<PublicJwkSet>(rest) else {
            return;
        };
        for (i, token) in fixed_tokens().iter().enumerate() {
            if check_access_token(token, &jwks, expect, now()).is_ok() {
                let (key_index, _) = valid_inputs()[i];
                let real = provider_keys()[key_index].signer.public_jwk();
                assert!(
                    jwks.keys.iter().any(|k| k.x == real.x && k.y == real.y && k.n == real.n),
                    "access token {i} passed with a JWKS without its key: {jwks:?}"
                );
            }
        }
    }
}
