//! ID token validation: the happy path and each rejection with its own error.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{jwks, key};
use onesoidc_core::{
    IdTokenError, IdTokenExpectations, Issuer, KeyType, PublicJwkSet, Signer, sign_jwt,
    validate_id_token,
};
use serde_json::{Value, json};

const NOW: u64 = 1_800_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn claims() -> Value {
    json!({"iss": "https://idp/oidc", "aud": "client-1", "sub": "alice", "iat": NOW - 10, "exp": NOW + 300, "auth_time": NOW - 20})
}

fn check(
    token: &str,
    set: &PublicJwkSet,
    allowed: &[String],
) -> Result<onesoidc_core::IdTokenClaims, IdTokenError> {
    let issuer = Issuer::new("https://idp/oidc").unwrap();
    validate_id_token(
        token,
        set,
        IdTokenExpectations {
            issuer: &issuer,
            client_id: &"client-1".into(),
            allowed_algorithms: allowed,
        },
        now(),
    )
}

fn unsigned(header: Value, claims: &Value, signature: &[u8]) -> String {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!(
        "{}.{}.{}",
        enc(&header),
        enc(claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

#[test]
fn valid_tokens_for_every_algorithm() {
    for kt in [
        KeyType::Rsa2048,
        KeyType::EccP256,
        KeyType::EccP384,
        KeyType::EccP521,
    ] {
        let k = key(kt, "k1");
        let other = key(KeyType::EccP256, "k0");
        let token = sign_jwt(&k, &claims()).unwrap();
        let got = check(&token, &jwks(&[&other, &k]), &[]).unwrap_or_else(|e| panic!("{kt}: {e}"));
        assert_eq!(got.sub, "alice");
        assert_eq!(got.aud, ["client-1"]);
        assert_eq!(got.auth_time, Some(NOW - 20));
    }
}

#[test]
fn audience_list_and_skew_are_accepted() {
    let k = key(KeyType::Rsa2048, "k1");
    let mut c = claims();
    c["aud"] = json!(["other", "client-1"]);
    c["azp"] = json!("client-1");
    c["exp"] = json!(NOW - 30); // expired 30 s ago, within 60 s skew
    c["iat"] = json!(NOW + 30); // 30 s in the future, within skew
    check(&sign_jwt(&k, &c).unwrap(), &jwks(&[&k]), &[]).unwrap();
}

#[test]
fn each_rejection_has_its_own_error() {
    let k = key(KeyType::Rsa2048, "k1");
    let set = jwks(&[&k]);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        sign_jwt(&k, &c).unwrap()
    };

    let none = unsigned(json!({"alg": "none", "typ": "JWT"}), &claims(), b"");
    assert_eq!(check(&none, &set, &[]).unwrap_err(), IdTokenError::Unsigned);

    // HS256 "signed" with the provider's public key as the HMAC secret.
    let public_n = set.keys[0].n.clone().unwrap();
    let hs = {
        use aws_lc_rs::hmac;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
        let input = format!("{header}.{body}");
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, public_n.as_bytes()),
            input.as_bytes(),
        );
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    };
    assert_eq!(
        check(&hs, &set, &[]).unwrap_err(),
        IdTokenError::SymmetricAlgorithm("HS256".into())
    );

    let err = check(
        &sign_jwt(&k, &claims()).unwrap(),
        &set,
        &["ES256".to_string()],
    )
    .unwrap_err();
    assert!(
        matches!(err, IdTokenError::AlgorithmNotAllowed { .. }),
        "{err}"
    );

    let stranger = key(KeyType::Rsa2048, "k2");
    let err = check(&sign_jwt(&stranger, &claims()).unwrap(), &set, &[]).unwrap_err();
    assert_eq!(err, IdTokenError::UnknownKeyId(Some("k2".into())));

    let impostor = key(KeyType::Rsa2048, "k1");
    let err = check(&sign_jwt(&impostor, &claims()).unwrap(), &set, &[]).unwrap_err();
    assert_eq!(err, IdTokenError::BadSignature);

    let ec_with_rsa_kid = key(KeyType::EccP256, "k1");
    let err = check(&sign_jwt(&ec_with_rsa_kid, &claims()).unwrap(), &set, &[]).unwrap_err();
    assert!(
        matches!(err, IdTokenError::KeyAlgorithmMismatch { .. }),
        "{err}"
    );

    let mut tampered: Vec<String> = sign_jwt(&k, &claims())
        .unwrap()
        .split('.')
        .map(String::from)
        .collect();
    let mut evil = claims();
    evil["sub"] = json!("mallory");
    tampered[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&evil).unwrap());
    assert_eq!(
        check(&tampered.join("."), &set, &[]).unwrap_err(),
        IdTokenError::BadSignature
    );

    let err = check(&with(&|c| c["iss"] = json!("https://evil/oidc")), &set, &[]).unwrap_err();
    assert!(matches!(err, IdTokenError::WrongIssuer { .. }), "{err}");
    let err = check(&with(&|c| c["aud"] = json!(["other"])), &set, &[]).unwrap_err();
    assert!(matches!(err, IdTokenError::WrongAudience { .. }), "{err}");
    let err = check(&with(&|c| c["exp"] = json!(NOW - 61)), &set, &[]).unwrap_err();
    assert_eq!(
        err,
        IdTokenError::Expired {
            exp: NOW - 61,
            now: NOW
        }
    );
    let err = check(&with(&|c| c["iat"] = json!(NOW + 61)), &set, &[]).unwrap_err();
    assert_eq!(
        err,
        IdTokenError::IssuedInFuture {
            iat: NOW + 61,
            now: NOW
        }
    );
    let err = check(
        &with(&|c| drop(c.as_object_mut().unwrap().remove("sub"))),
        &set,
        &[],
    )
    .unwrap_err();
    assert_eq!(err, IdTokenError::MissingClaim("sub"));
    let err = check(
        &with(&|c| drop(c.as_object_mut().unwrap().remove("exp"))),
        &set,
        &[],
    )
    .unwrap_err();
    assert_eq!(err, IdTokenError::MissingClaim("exp"));

    for garbage in [
        "",
        "a.b",
        "a.b.c.d",
        "!!!.???.###",
        "e30.e30.",
        "bm90IGpzb24.e30.AA",
    ] {
        assert!(
            matches!(
                check(garbage, &set, &[]).unwrap_err(),
                IdTokenError::Malformed(_)
            ),
            "{garbage:?}"
        );
    }
}

/// Header without `kid`: the one signing key of the token's type is used;
/// with two, the token is refused.
#[test]
fn a_token_without_kid_needs_exactly_one_candidate_key() {
    let k = key(KeyType::EccP256, "k1");
    let no_kid = {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
        let input = format!("{header}.{body}");
        let signature = k.inner.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    };
    check(&no_kid, &jwks(&[&k]), &[]).unwrap();
    let other = key(KeyType::EccP256, "k2");
    assert_eq!(
        check(&no_kid, &jwks(&[&k, &other]), &[]).unwrap_err(),
        IdTokenError::UnknownKeyId(None)
    );
}

#[test]
fn an_encryption_key_or_a_key_on_another_curve_never_verifies() {
    let k = key(KeyType::EccP256, "k1");
    let token = sign_jwt(&k, &claims()).unwrap();
    let mut set = jwks(&[&k]);
    set.keys[0].use_ = Some("enc".into());
    assert_eq!(
        check(&token, &set, &[]).unwrap_err(),
        IdTokenError::UnknownKeyId(Some("k1".into()))
    );

    // An ES384 token whose kid names a P-256 key.
    let p384 = key(KeyType::EccP384, "k1");
    let err = check(&sign_jwt(&p384, &claims()).unwrap(), &jwks(&[&k]), &[]).unwrap_err();
    assert!(
        matches!(err, IdTokenError::KeyAlgorithmMismatch { ref alg, .. } if alg == "ES384"),
        "{err}"
    );
}

#[test]
fn iss_aud_and_iat_are_required() {
    let k = key(KeyType::EccP256, "k1");
    let set = jwks(&[&k]);
    for claim in ["iss", "aud", "iat"] {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(claim);
        let err = check(&sign_jwt(&k, &c).unwrap(), &set, &[]).unwrap_err();
        assert_eq!(err, IdTokenError::MissingClaim(claim), "{claim}");
    }
    // Wrong types count as missing.
    let mut c = claims();
    c["iat"] = json!("yesterday");
    let err = check(&sign_jwt(&k, &c).unwrap(), &set, &[]).unwrap_err();
    assert_eq!(err, IdTokenError::MissingClaim("iat"));
}

/// The algorithms the provider lists in discovery are the only ones accepted.
#[test]
fn algorithms_are_pinned_to_the_providers_list() {
    let es = key(KeyType::EccP256, "k1");
    let token = sign_jwt(&es, &claims()).unwrap();
    check(&token, &jwks(&[&es]), &["ES256".into()]).unwrap();
    let err = check(&token, &jwks(&[&es]), &["RS256".into(), "ES384".into()]).unwrap_err();
    assert_eq!(
        err,
        IdTokenError::AlgorithmNotAllowed {
            alg: "ES256".into(),
            allowed: "RS256, ES384".into()
        }
    );
}

/// OIDC Core §3.1.3.7 items 4–5 (`azp`) and `nbf` with the 60 s skew, one
/// row per case: the claims changed, and the error expected (`None`: valid).
#[test]
fn azp_with_several_audiences_and_nbf_with_the_skew() {
    let k = key(KeyType::EccP256, "k1");
    let set = jwks(&[&k]);
    let wrong_azp = |found: Option<&str>, audiences: &str| {
        Some(IdTokenError::WrongAuthorizedParty {
            client_id: "client-1".into(),
            found: found.map(str::to_string),
            audiences: audiences.into(),
        })
    };
    let rows: Vec<(&str, Value, Option<IdTokenError>)> = vec![
        ("one audience, no azp", json!({}), None),
        (
            "one audience in a list, no azp",
            json!({"aud": ["client-1"]}),
            None,
        ),
        ("one audience, azp us", json!({"azp": "client-1"}), None),
        (
            "one audience, azp another client",
            json!({"azp": "other"}),
            wrong_azp(Some("other"), r#"["client-1"]"#),
        ),
        (
            "two audiences, no azp",
            json!({"aud": ["client-1", "other"]}),
            wrong_azp(None, r#"["client-1","other"]"#),
        ),
        (
            "two audiences, azp us",
            json!({"aud": ["other", "client-1"], "azp": "client-1"}),
            None,
        ),
        (
            "two audiences, azp the other",
            json!({"aud": ["client-1", "other"], "azp": "other"}),
            wrong_azp(Some("other"), r#"["client-1","other"]"#),
        ),
        (
            "azp not a string",
            json!({"azp": 7}),
            Some(IdTokenError::MissingClaim("azp")),
        ),
        ("nbf in the past", json!({"nbf": NOW - 100}), None),
        (
            "nbf 60 s ahead, within the skew",
            json!({"nbf": NOW + 60}),
            None,
        ),
        (
            "nbf 61 s ahead",
            json!({"nbf": NOW + 61}),
            Some(IdTokenError::NotYetValid {
                nbf: NOW + 61,
                now: NOW,
            }),
        ),
        (
            "nbf not a number",
            json!({"nbf": "soon"}),
            Some(IdTokenError::MissingClaim("nbf")),
        ),
    ];
    for (case, changes, expected) in rows {
        let mut c = claims();
        for (name, value) in changes.as_object().unwrap() {
            c[name] = value.clone();
        }
        let got = check(&sign_jwt(&k, &c).unwrap(), &set, &[]);
        assert_eq!(got.err(), expected, "{case}");
    }
}

/// Claims or a header naming a member twice are malformed, whichever value
/// a reader would keep (a parser differential).
#[test]
fn claims_naming_a_member_twice_are_refused() {
    let k = key(KeyType::EccP256, "k1");
    let signed = |header: &str, claims: &str| {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature = k.inner.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    };
    let header = r#"{"alg":"ES256","kid":"k1"}"#;
    let body = |sub: &str| {
        format!(
            r#"{{"iss":"https://idp/oidc","aud":"client-1",{sub},"iat":{},"exp":{}}}"#,
            NOW - 10,
            NOW + 300
        )
    };
    check(
        &signed(header, &body(r#""sub":"alice""#)),
        &jwks(&[&k]),
        &[],
    )
    .unwrap();
    let twice = signed(header, &body(r#""sub":"alice","sub":"mallory""#));
    assert_eq!(
        check(&twice, &jwks(&[&k]), &[]).unwrap_err(),
        IdTokenError::Malformed("the claims set names member `sub` twice".into())
    );
    assert!(onesoidc_core::unverified_claims(&twice).is_none());
    let header_twice = signed(
        r#"{"alg":"ES256","kid":"k1","kid":"k2"}"#,
        &body(r#""sub":"alice""#),
    );
    assert_eq!(
        check(&header_twice, &jwks(&[&k]), &[]).unwrap_err(),
        IdTokenError::Malformed("the header names member `kid` twice".into())
    );
}
