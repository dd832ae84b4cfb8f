//! RFC 9449 §4.3 DPoP proof checks: a good proof passes, and one table row
//! per rule with a proof breaking only that rule and the error it gets.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onesoidc_core::{
    DpopProofError, DpopProofExpectations, KeyType, PemSigner, PublicJwk, Signer,
    dpop_access_token_hash, verify_dpop_proof,
};
use serde_json::{Value, json};

const NOW: u64 = 1_800_000_000;
const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.access.token";
const URL: &str = "https://app.example/orders/7?page=2";

fn encode(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn public_jwk(signer: &PemSigner) -> Value {
    let jwk = signer.public_jwk();
    serde_json::to_value(PublicJwk {
        alg: None,
        kid: None,
        use_: None,
        ..jwk
    })
    .unwrap()
}

/// A proof with `header` and `claims`, signed by `signer`.
fn sign(signer: &PemSigner, header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", encode(header), encode(claims));
    let signature = signer.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn header(signer: &PemSigner) -> Value {
    json!({"typ": "dpop+jwt", "alg": signer.algorithm().as_str(), "jwk": public_jwk(signer)})
}

fn claims() -> Value {
    json!({
        "jti": "proof-1", "htm": "POST", "htu": "https://app.example/orders/7",
        "iat": NOW - 5, "ath": dpop_access_token_hash(TOKEN),
    })
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn verify(proof: &str, jkt: &str) -> Result<onesoidc_core::DpopProof, DpopProofError> {
    let url = url::Url::parse(URL).unwrap();
    let expect = DpopProofExpectations::new("POST", &url).access_token(TOKEN, jkt);
    verify_dpop_proof(proof, &expect, now())
}

#[test]
fn a_good_proof_passes_for_every_algorithm() {
    for kt in [
        KeyType::EccP256,
        KeyType::EccP384,
        KeyType::EccP521,
        KeyType::Rsa2048,
    ] {
        let signer = PemSigner::generate(kt).unwrap();
        let jkt = signer.public_jwk().thumbprint().unwrap();
        let proof = verify(&sign(&signer, &header(&signer), &claims()), &jkt)
            .unwrap_or_else(|e| panic!("{kt:?}: {e}"));
        assert_eq!(proof.jti, "proof-1");
        assert_eq!(proof.iat, NOW - 5);
        assert_eq!(proof.key_thumbprint, jkt);
    }
}

#[test]
fn htu_is_compared_after_rfc3986_normalisation_without_query() {
    let signer = PemSigner::generate(KeyType::EccP256).unwrap();
    let jkt = signer.public_jwk().thumbprint().unwrap();
    for htu in [
        "https://app.example/orders/7",
        "HTTPS://APP.Example:443/orders/7",
        "https://app.example/%6Frders/7?other=query#frag",
    ] {
        let mut c = claims();
        c["htu"] = json!(htu);
        verify(&sign(&signer, &header(&signer), &c), &jkt).unwrap_or_else(|e| panic!("{htu}: {e}"));
    }
}

#[test]
fn one_failing_proof_per_rule() {
    let signer = PemSigner::generate(KeyType::EccP256).unwrap();
    let other = PemSigner::generate(KeyType::EccP256).unwrap();
    let jkt = signer.public_jwk().thumbprint().unwrap();
    let other_jkt = other.public_jwk().thumbprint().unwrap();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        sign(&signer, &header(&signer), &c)
    };
    let with_header = |f: &dyn Fn(&mut Value)| {
        let mut h = header(&signer);
        f(&mut h);
        sign(&signer, &h, &claims())
    };
    let good = sign(&signer, &header(&signer), &claims());
    let (signing_input, _) = good.rsplit_once('.').unwrap();
    let other_signature = other.sign(signing_input.as_bytes()).unwrap();
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("wrong htm", with(&|c| c["htm"] = json!("GET")), &jkt, "htm"),
        (
            "htu with another port",
            with(&|c| c["htu"] = json!("https://app.example:8443/orders/7")),
            &jkt,
            "htu",
        ),
        (
            "htu with another path",
            with(&|c| c["htu"] = json!("https://app.example/orders/8")),
            &jkt,
            "htu",
        ),
        (
            "old iat",
            with(&|c| c["iat"] = json!(NOW - 61)),
            &jkt,
            "iat",
        ),
        (
            "future iat",
            with(&|c| c["iat"] = json!(NOW + 61)),
            &jkt,
            "iat",
        ),
        (
            "wrong ath",
            with(&|c| c["ath"] = json!(dpop_access_token_hash("another token"))),
            &jkt,
            "ath",
        ),
        (
            "no ath",
            with(&|c| drop(c.as_object_mut().unwrap().remove("ath"))),
            &jkt,
            "ath",
        ),
        (
            "no jti",
            with(&|c| drop(c.as_object_mut().unwrap().remove("jti"))),
            &jkt,
            "jti",
        ),
        ("proof key is not cnf.jkt", good.clone(), &other_jkt, "cnf"),
        (
            "private key in jwk",
            with_header(&|h| h["jwk"]["d"] = json!("AAAA")),
            &jkt,
            "jwk",
        ),
        (
            "no jwk",
            with_header(&|h| drop(h.as_object_mut().unwrap().remove("jwk"))),
            &jkt,
            "jwk",
        ),
        (
            "typ wrong",
            with_header(&|h| h["typ"] = json!("JWT")),
            &jkt,
            "typ",
        ),
        (
            "alg none",
            with_header(&|h| h["alg"] = json!("none")),
            &jkt,
            "alg",
        ),
        (
            "alg HS256",
            with_header(&|h| h["alg"] = json!("HS256")),
            &jkt,
            "alg",
        ),
        (
            "bad signature",
            format!(
                "{signing_input}.{}",
                URL_SAFE_NO_PAD.encode(&other_signature)
            ),
            &jkt,
            "signature",
        ),
    ];
    for (name, proof, jkt, member) in cases {
        let err = verify(&proof, jkt).expect_err(name);
        match member {
            "signature" => assert_eq!(err, DpopProofError::BadSignature, "{name}"),
            m => assert_eq!(err.member(), Some(m), "{name}: {err}"),
        }
    }
}

#[test]
fn a_required_nonce_must_be_the_issued_one() {
    let signer = PemSigner::generate(KeyType::EccP256).unwrap();
    let url = url::Url::parse(URL).unwrap();
    let expect = DpopProofExpectations::new("POST", &url).nonce("n-1");
    let proof = |c: &Value| sign(&signer, &header(&signer), c);
    assert_eq!(
        verify_dpop_proof(&proof(&claims()), &expect, now()),
        Err(DpopProofError::MissingNonce)
    );
    let mut c = claims();
    c["nonce"] = json!("n-2");
    assert_eq!(
        verify_dpop_proof(&proof(&c), &expect, now()),
        Err(DpopProofError::WrongNonce)
    );
    c["nonce"] = json!("n-1");
    assert!(verify_dpop_proof(&proof(&c), &expect, now()).is_ok());
}

#[test]
fn rfc7638_thumbprint_example() {
    let jwk: PublicJwk = serde_json::from_value(json!({
        "kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    }))
    .unwrap();
    assert_eq!(
        jwk.thumbprint().unwrap(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn an_oversized_proof_is_refused_before_decoding() {
    let url = url::Url::parse(URL).unwrap();
    let proof = "a".repeat(onesoidc_core::MAX_DPOP_PROOF_BYTES + 1);
    let err = verify_dpop_proof(&proof, &DpopProofExpectations::new("POST", &url), now());
    assert!(matches!(err, Err(DpopProofError::TooLarge { .. })));
}
