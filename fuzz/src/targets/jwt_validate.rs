//! `validate_id_token` never panics and never accepts a token it should not.
//!
//! First byte even: the rest is a token, checked against the fixed JWKS; it
//! may only validate if its signing input is one the fixed keys signed.
//! First byte odd: the rest is a JWKS (JSON), checked against fixed valid
//! tokens; it may only validate if the JWKS holds the real signing key.
//! Bit 1 of the first byte switches from the default algorithms to a list
//! that also names algorithms the keys cannot do.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onesoidc_core::{IdTokenExpectations, PublicJwk, PublicJwkSet, validate_id_token};
use crate::{
    CLIENT_ID, issuer, now, provider_jwks, provider_keys, valid_signing_inputs, valid_tokens,
};

fn fixed_tokens() -> &'static [String] {
    static TOKENS: OnceLock<Vec<String>> = OnceLock::new();
    TOKENS.get_or_init(valid_tokens)
}

fn unpadded(v: &Option<String>) -> Option<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(v.as_deref()?).ok()?;
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    Some(bytes[first..].to_vec())
}

/// Whether `candidate` carries the same public key as `real`.
fn same_key(candidate: &PublicJwk, real: &PublicJwk) -> bool {
    let fields = |k: &PublicJwk| {
        [
            unpadded(&k.n),
            unpadded(&k.e),
            unpadded(&k.x),
            unpadded(&k.y),
        ]
    };
    fields(candidate) == fields(real)
}

/// One input: never panics; successes respect their invariants.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let extended: Vec<String> = [
        "RS256", "RS384", "PS256", "ES256", "ES512", "EdDSA", "HS256",
    ]
    .map(String::from)
    .to_vec();
    let expect = IdTokenExpectations {
        issuer: issuer(),
        client_id: &CLIENT_ID.into(),
        allowed_algorithms: if mode & 2 == 0 { &[] } else { &extended },
    };
    if mode & 1 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        if let Ok(claims) = validate_id_token(token, provider_jwks(), expect, now()) {
            let input = token.rsplit_once('.').map(|(input, _)| input).unwrap_or("");
            assert!(
                valid_signing_inputs().iter().any(|(_, s)| s == input),
                "accepted a token the fixed keys never signed: {token}"
            );
            assert_eq!(claims.iss, issuer().as_str());
            assert!(claims.aud.iter().any(|a| a == CLIENT_ID));
        }
    } else {
        let Ok(jwks) = serde_json::from_slice::<PublicJwkSet>(rest) else {
            return;
        };
        for (i, token) in fixed_tokens().iter().enumerate() {
            if validate_id_token(token, &jwks, expect, now()).is_ok() {
                let (key_index, _) = valid_signing_inputs()[i];
                let real = provider_keys()[key_index].signer.public_jwk();
                assert!(
                    jwks.keys.iter().any(|k| same_key(k, &real)),
                    "token {i} validated against a JWKS without its key: {jwks:?}"
                );
            }
        }
    }
}
