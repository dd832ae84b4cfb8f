//! `verify_dpop_proof` never panics and never accepts a proof it should not.
//!
//! First byte even: the rest is a proof sent with an access token bound to
//! the fixed P-256 key; it may only pass if its signing input is one that
//! key signed. First byte odd: the rest is a proof sent without a token; it
//! may only pass if its signing input is one a fixed key signed, and the
//! thumbprint it reports is that key's.

use std::sync::OnceLock;

use onesoidc_core::{
    DpopProofExpectations, PublicJwk, Signer, dpop_access_token_hash, verify_dpop_proof,
};

use crate::{NOW_SECS, b64, now, provider_keys, sign};

/// The access token the proofs are sent with.
pub const ACCESS_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.dpop-bound.token";
/// The request URL the proofs are checked against.
pub const URL: &str = "https://app.example/orders?page=2";
/// The provider key (index into `provider_keys()`) the token is bound to.
pub const BOUND_KEY: usize = 1;

/// The signing inputs of valid proofs: input `i` is signed by
/// `provider_keys()[i % 4]`, with that key's public JWK in its header.
pub fn valid_inputs() -> &'static [(usize, String)] {
    static INPUTS: OnceLock<Vec<(usize, String)>> = OnceLock::new();
    INPUTS.get_or_init(|| {
        use serde_json::json;
        let claim_sets = [
            json!({"jti": "p-1", "htm": "POST", "htu": "https://app.example/orders",
                   "iat": NOW_SECS - 5, "ath": dpop_access_token_hash(ACCESS_TOKEN)}),
            json!({"jti": "p-2", "htm": "POST", "htu": "HTTPS://APP.example:443/%6Frders",
                   "iat": NOW_SECS + 30, "ath": dpop_access_token_hash(ACCESS_TOKEN),
                   "nonce": "ignored"}),
        ];
        let mut out = Vec::new();
        for claims in claim_sets {
            for (key_index, key) in provider_keys().iter().enumerate() {
                let header = serde_json::json!({
                    "alg": key.signer.algorithm().as_str(), "typ": "dpop+jwt",
                    "jwk": key.signer.public_jwk(),
                });
                out.push((key_index, format!("{}.{}", b64(&header), b64(&claims))));
            }
        }
        out
    })
}

/// Valid proofs, freshly signed.
pub fn valid_proofs() -> Vec<String> {
    valid_inputs()
        .iter()
        .map(|(k, input)| sign(*k, input))
        .collect()
}

fn thumbprint(key_index: usize) -> String {
    provider_keys()[key_index]
        .signer
        .public_jwk()
        .thumbprint()
        .expect("fixture key thumbprint")
}

/// One input: never panics; successes respect their invariants.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(proof) = std::str::from_utf8(rest) else {
        return;
    };
    let url = url::Url::parse(URL).expect("fixed URL");
    let bound = thumbprint(BOUND_KEY);
    let expect = DpopProofExpectations::new("POST", &url);
    let expect = if mode & 1 == 0 {
        expect.access_token(ACCESS_TOKEN, &bound)
    } else {
        expect
    };
    if let Ok(checked) = verify_dpop_proof(proof, &expect, now()) {
        let input = proof.rsplit_once('.').map(|(input, _)| input).unwrap_or("");
        let signed_by = valid_inputs()
            .iter()
            .find(|(_, s)| s == input)
            .map(|(k, _)| *k)
            .unwrap_or_else(|| panic!("accepted a proof no fixed key signed: {proof}"));
        let real: PublicJwk = provider_keys()[signed_by].signer.public_jwk();
        assert_eq!(checked.key_thumbprint, real.thumbprint().expect("thumbprint"));
        if mode & 1 == 0 {
            assert_eq!(checked.key_thumbprint, bound, "a proof by another key passed");
        }
    }
}
