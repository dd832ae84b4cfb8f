//! Signatures made by our signers verify with an independent verifier that
//! only has the public key from `public.pem`.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use onesoidc_core::{
    CibaRequest, ExposeSecret, Issuer, JwsAlgorithm, KeyType, LoginHint, PemSigner, PublicJwk,
    ciba_request_object, client_assertion, ecdsa_der_to_fixed,
};
use serde_json::Value;

/// Verifies a compact JWS with only the PEM public key, returning its header and claims.
fn verify_independently(jwt: &str, public_pem: &[u8], alg: JwsAlgorithm) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let signing_input = format!("{}.{}", parts[0], parts[1]);
    match alg {
        JwsAlgorithm::ES512 => {
            use p521::ecdsa::signature::Verifier;
            use p521::pkcs8::DecodePublicKey;
            let pem = std::str::from_utf8(public_pem).unwrap();
            let public = p521::PublicKey::from_public_key_pem(pem).unwrap();
            let key = p521::ecdsa::VerifyingKey::from_sec1_bytes(&public.to_sec1_bytes()).unwrap();
            let sig = p521::ecdsa::Signature::from_slice(&signature).unwrap();
            key.verify(signing_input.as_bytes(), &sig)
                .expect("ES512 signature verifies");
        }
        other => {
            let (key, jwt_alg) = match other {
                JwsAlgorithm::RS256 => (
                    DecodingKey::from_rsa_pem(public_pem).unwrap(),
                    Algorithm::RS256,
                ),
                JwsAlgorithm::ES256 => (
                    DecodingKey::from_ec_pem(public_pem).unwrap(),
                    Algorithm::ES256,
                ),
                JwsAlgorithm::ES384 => (
                    DecodingKey::from_ec_pem(public_pem).unwrap(),
                    Algorithm::ES384,
                ),
                JwsAlgorithm::ES512 => unreachable!(),
            };
            let mut validation = Validation::new(jwt_alg);
            validation.validate_exp = false;
            validation.validate_aud = false;
            validation.required_spec_claims.clear();
            jsonwebtoken::decode::<Value>(jwt, &key, &validation).expect("signature verifies");
        }
    }
    (header, claims)
}

#[test]
fn assertions_from_every_px_key_verify_with_the_public_key() {
    let now = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
    for name in common::FIXTURES {
        let signer = common::signer(name);
        let alg = common::config(name).key_type.jws_algorithm();
        let jwt = client_assertion(
            &signer,
            &"client-1".into(),
            &"https://idp/oidc/token".into(),
            now,
        )
        .unwrap();
        let public_pem = common::public_pem(name);
        let (header, claims) = verify_independently(jwt.expose_secret(), &public_pem, alg);
        assert_eq!(
            header,
            serde_json::json!({"alg": alg.as_str(), "typ": "JWT"}),
            "{name}"
        );
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["aud"], "https://idp/oidc/token");
        assert_eq!(claims["iat"], 1_764_000_000);
        assert_eq!(claims["exp"], 1_764_000_060);
        let jti = claims["jti"].as_str().unwrap();
        assert_eq!(
            uuid::Uuid::parse_str(jti).unwrap().get_version_num(),
            4,
            "{name}"
        );
    }
}

#[test]
fn every_assertion_has_a_fresh_jti() {
    let signer = common::signer("ecc-p256");
    let jtis: std::collections::HashSet<String> = (0..50)
        .map(|_| {
            let jwt = client_assertion(
                &signer,
                &"c".into(),
                &"https://idp/oidc/token".into(),
                UNIX_EPOCH,
            )
            .unwrap();
            let claims: Value =
                jsonwebtoken::dangerous::insecure_decode_claims(jwt.expose_secret()).unwrap();
            claims["jti"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(jtis.len(), 50);
}

#[test]
fn ciba_request_object_claims() {
    let config = common::config("managed-ecc-p521");
    let signer = common::signer("managed-ecc-p521");
    let issuer = Issuer::from_host(config.host.as_deref().unwrap()).unwrap();
    let now = UNIX_EPOCH + Duration::from_secs(1_000);
    let request = CibaRequest::new()
        .login_hint(LoginHint::LoginHintToken("lht".into()))
        .scope("profile")
        .binding_message("Kiosk 7")
        .resource("https://vhh.example.com")
        .requested_expiry(Duration::from_secs(120))
        .qr_session_id("qr-1");
    let jwt = ciba_request_object(&signer, &"client-9".into(), &issuer, &request, now).unwrap();
    let (_, claims) = verify_independently(
        &jwt,
        &common::public_pem("managed-ecc-p521"),
        JwsAlgorithm::ES512,
    );
    let expected_keys = [
        "iss",
        "aud",
        "iat",
        "nbf",
        "exp",
        "jti",
        "client_id",
        "scope",
        "login_hint_token",
        "binding_message",
        "resource",
        "requested_expiry",
        "qr_session_id",
    ];
    let mut keys: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    let mut expected = expected_keys.to_vec();
    expected.sort();
    assert_eq!(keys, expected);
    assert_eq!(claims["iss"], "client-9");
    assert_eq!(claims["client_id"], "client-9");
    assert_eq!(claims["aud"], "https://idp-server.ones-now.com/oidc");
    assert_eq!(claims["iat"], 1_000);
    assert_eq!(claims["nbf"], 1_000);
    assert_eq!(claims["exp"], 1_300);
    assert_eq!(claims["scope"], "openid profile");
    assert_eq!(claims["login_hint_token"], "lht");
    assert_eq!(claims["requested_expiry"], 120);
}

#[test]
fn ciba_request_validation() {
    let ok = CibaRequest::for_username("alice");
    assert!(ok.validate().is_ok());
    let long = ok.clone().binding_message("x".repeat(121));
    assert!(long.validate().unwrap_err().to_string().contains("121"));
    assert!(
        ok.clone()
            .binding_message("é".repeat(120))
            .validate()
            .is_ok()
    );
    let mut no_openid = ok.clone();
    no_openid.scope = "profile".into();
    assert!(
        no_openid
            .validate()
            .unwrap_err()
            .to_string()
            .contains("openid")
    );
    assert_eq!(
        CibaRequest::for_username(" ").validate().unwrap_err(),
        onesoidc_core::InvalidCibaRequest::EmptyHint
    );
}

#[test]
fn public_jwk_matches_the_public_pem_and_has_alg() {
    for name in common::FIXTURES {
        let signer = common::signer(name);
        let jwk = signer.public_jwk();
        let alg = common::config(name).key_type.jws_algorithm();
        assert_eq!(jwk.algorithm(), Some(alg), "{name}");
        // A token signed by the key verifies with a DecodingKey built from our JWK.
        if alg != JwsAlgorithm::ES512 {
            let jwt = client_assertion(&signer, &"c".into(), &"aud".into(), UNIX_EPOCH).unwrap();
            let as_jwk: jsonwebtoken::jwk::Jwk =
                serde_json::from_value(serde_json::to_value(&jwk).unwrap()).unwrap();
            let key = DecodingKey::from_jwk(&as_jwk).unwrap();
            let mut v = Validation::new(if alg == JwsAlgorithm::RS256 {
                Algorithm::RS256
            } else if alg == JwsAlgorithm::ES256 {
                Algorithm::ES256
            } else {
                Algorithm::ES384
            });
            v.validate_exp = false;
            v.validate_aud = false;
            v.required_spec_claims.clear();
            jsonwebtoken::decode::<Value>(jwt.expose_secret(), &key, &v)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let thumbprint = jwk.thumbprint().unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(&thumbprint).unwrap().len(), 32);
        assert_eq!(
            jwk.clone().with_thumbprint_kid().unwrap().kid,
            Some(thumbprint)
        );
    }
}

#[test]
fn px_es521_reads_as_es512() {
    let jwk: PublicJwk =
        serde_json::from_str(r#"{"kty":"EC","crv":"P-521","alg":"ES521","x":"AA","y":"AA"}"#)
            .unwrap();
    assert_eq!(jwk.algorithm(), Some(JwsAlgorithm::ES512));
    let normalised = jwk.with_thumbprint_kid().unwrap();
    assert_eq!(normalised.alg.as_deref(), Some("ES512"));
}

#[test]
fn generated_keys_round_trip_in_px_formats() {
    for kt in KeyType::ALL {
        let signer = PemSigner::generate(kt).unwrap();
        let pem = signer.private_key_pem().unwrap();
        let expected_tag = if matches!(kt, KeyType::Rsa2048 | KeyType::Rsa3072) {
            "RSA PRIVATE KEY"
        } else {
            "PRIVATE KEY"
        };
        assert!(
            pem.starts_with(&format!("-----BEGIN {expected_tag}-----")),
            "{kt}: {pem}"
        );
        let loaded = PemSigner::from_pem(pem.as_bytes(), "x".as_ref()).unwrap();
        assert_eq!(loaded.key_type(), kt);
        assert_eq!(loaded.public_jwk(), signer.public_jwk());
        let jwt = client_assertion(&loaded, &"c".into(), &"aud".into(), UNIX_EPOCH).unwrap();
        verify_independently(
            jwt.expose_secret(),
            signer.public_key_pem().unwrap().as_bytes(),
            kt.jws_algorithm(),
        );
    }
}

#[test]
fn sec1_ec_keys_load() {
    // `openssl ec -in private.pem` writes SEC1; convert our PKCS#8 fixture the same way.
    let pkcs8 = pem::parse(std::fs::read(common::fixture("ecc-p384").join("private.pem")).unwrap())
        .unwrap();
    let pair = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        pkcs8.contents(),
    )
    .unwrap();
    use aws_lc_rs::encoding::AsDer;
    let sec1 = pair.private_key().as_der().unwrap();
    let pem = pem::encode(&pem::Pem::new("EC PRIVATE KEY", sec1.as_ref().to_vec()));
    let signer = PemSigner::from_pem(pem.as_bytes(), "k".as_ref()).unwrap();
    assert_eq!(signer.key_type(), KeyType::EccP384);
}

#[test]
fn der_ecdsa_signatures_convert_to_fixed_size() {
    // 0x00-prefixed positive r (high bit set) and short s.
    let mut der = vec![0x30, 0x00, 0x02, 0x21, 0x00];
    der.extend([0x80; 32]);
    der.extend([0x02, 0x01, 0x05]);
    der[1] = (der.len() - 2) as u8;
    let fixed = ecdsa_der_to_fixed(&der, 64).unwrap();
    assert_eq!(&fixed[..32], &[0x80; 32]);
    assert_eq!(&fixed[32..63], &[0; 31]);
    assert_eq!(fixed[63], 5);
    assert_eq!(
        ecdsa_der_to_fixed(&der, 32),
        None,
        "r does not fit 16 bytes"
    );
    assert_eq!(ecdsa_der_to_fixed(b"nonsense", 64), None);
}
