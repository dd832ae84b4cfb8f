//! RFC 9068 access-token checks: the typed claims of a good token, and one
//! table row per rule with the error (and the claim it names) that a token
//! breaking only that rule gets.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{ProviderKey, jwks, key};
use onesoidc_core::{
    AccessTokenClaims, AccessTokenError, AccessTokenExpectations, Introspection, Issuer, KeyType,
    MAX_ACCESS_TOKEN_BYTES, PublicJwkSet, check_access_token, claims_from_introspection, is_jwt,
    sign_jwt, sign_typed_jwt,
};
use serde_json::{Value, json};

const NOW: u64 = 1_800_000_000;
const ISSUER: &str = "https://idp.example.com/oidc";
const AUDIENCE: &str = "https://vhh.example.com";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn claims() -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "client_id": "kiosk-7",
        "iat": NOW - 10, "exp": NOW + 300, "jti": "at-1", "scope": "openid read write",
        "auth_time": NOW - 20, "acr": "urn:ones:loa:2", "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
        "extra": {"department": "cardiology"}
    })
}

fn issuer() -> Issuer {
    Issuer::new(ISSUER).unwrap()
}

fn check(token: &str, set: &PublicJwkSet) -> Result<AccessTokenClaims, AccessTokenError> {
    let issuer = issuer();
    check_access_token(
        token,
        set,
        AccessTokenExpectations::new(&issuer, AUDIENCE),
        now(),
    )
}

fn encode(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// A token with any header, "signed" with `signature`.
fn forged(header: Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        encode(&header),
        encode(claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn at(k: &ProviderKey, c: &Value) -> String {
    sign_typed_jwt(k, "at+jwt", c).unwrap()
}

fn with(f: impl Fn(&mut Value)) -> Value {
    let mut c = claims();
    f(&mut c);
    c
}

fn without(claim: &str) -> Value {
    with(|c| drop(c.as_object_mut().unwrap().remove(claim)))
}

#[test]
fn a_good_token_gives_typed_claims_for_every_algorithm() {
    for kt in [
        KeyType::Rsa2048,
        KeyType::EccP256,
        KeyType::EccP384,
        KeyType::EccP521,
    ] {
        let k = key(kt, "k1");
        let other = key(KeyType::EccP256, "k0");
        let got =
            check(&at(&k, &claims()), &jwks(&[&other, &k])).unwrap_or_else(|e| panic!("{kt}: {e}"));
        assert_eq!(got.sub, "alice");
        assert_eq!(got.iss, ISSUER);
        assert_eq!(got.aud, [AUDIENCE]);
        assert_eq!(&*got.client_id, "kiosk-7");
        assert_eq!(
            (got.exp, got.iat, got.nbf),
            (NOW + 300, Some(NOW - 10), None)
        );
        assert_eq!(got.jti.as_deref(), Some("at-1"));
        assert_eq!(
            got.scopes().collect::<Vec<_>>(),
            ["openid", "read", "write"]
        );
        assert!(got.has_scope("read") && !got.has_scope("admin"));
        assert_eq!(got.auth_time, Some(NOW - 20));
        assert_eq!(got.acr.as_deref(), Some("urn:ones:loa:2"));
        assert_eq!(
            got.cnf_jkt.as_deref(),
            Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
        );
        assert_eq!(got.all["extra"]["department"], "cardiology");
    }
}

#[test]
fn the_media_type_form_lists_of_audiences_and_the_skew_are_accepted() {
    let k = key(KeyType::EccP256, "k1");
    let c = with(|c| {
        c["aud"] = json!(["https://other.example.com", AUDIENCE]);
        c["exp"] = json!(NOW - 30); // within the 60 s skew
        c["nbf"] = json!(NOW + 30);
        c["iat"] = json!(NOW + 30);
        c.as_object_mut().unwrap().remove("scope");
    });
    let got = check(
        &sign_typed_jwt(&k, "application/at+jwt", &c).unwrap(),
        &jwks(&[&k]),
    )
    .unwrap();
    assert_eq!(got.scopes().count(), 0);
    assert_eq!(got.nbf, Some(NOW + 30));
    // With no skew allowed, the same token is refused.
    let issuer = issuer();
    let strict = AccessTokenExpectations::new(&issuer, AUDIENCE).leeway(Duration::ZERO);
    let err = check_access_token(&at(&k, &c), &jwks(&[&k]), strict, now()).unwrap_err();
    assert_eq!(err.claim(), Some("exp"));
}

/// Every rule has a token that breaks it alone; each gets its own error,
/// which names the claim.
#[test]
fn every_rule_refuses_the_token_that_breaks_it() {
    let k = key(KeyType::Rsa2048, "k1");
    let ec = key(KeyType::EccP256, "k2");
    let set = jwks(&[&k, &ec]);

    // HS256 "signed" with the provider's public key as the HMAC secret.
    let hs256 = {
        use aws_lc_rs::hmac;
        let input = format!(
            "{}.{}",
            encode(&json!({"alg": "HS256", "typ": "at+jwt", "kid": "k1"})),
            encode(&claims())
        );
        let secret = set.keys[0].n.clone().unwrap();
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            input.as_bytes(),
        );
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    };
    let changed_byte = {
        let token = at(&k, &claims());
        let (input, _) = token.rsplit_once('.').unwrap();
        let mut evil = claims();
        evil["sub"] = json!("mallory");
        let (header, _) = input.split_once('.').unwrap();
        format!(
            "{header}.{}.{}",
            encode(&evil),
            token.rsplit('.').next().unwrap()
        )
    };
    // An ES384 token whose kid names the P-256 key.
    let p384 = key(KeyType::EccP384, "k2");
    // An RSA key published for PS256 only.
    let mut ps256_only = jwks(&[&k]);
    ps256_only.keys[0].alg = Some("PS256".into());

    let oversized = format!(
        "{}.{}.{}",
        encode(&json!({"alg": "RS256", "typ": "at+jwt"})),
        "A".repeat(MAX_ACCESS_TOKEN_BYTES),
        "A"
    );

    type Row = (&'static str, String, PublicJwkSet, AccessTokenError);
    let rows: Vec<Row> = vec![
        (
            "wrong typ",
            sign_typed_jwt(&k, "JOSE", &claims()).unwrap(),
            set.clone(),
            AccessTokenError::WrongType {
                found: Some("JOSE".into()),
            },
        ),
        (
            "no typ",
            forged(json!({"alg": "RS256", "kid": "k1"}), &claims(), b"sig"),
            set.clone(),
            AccessTokenError::WrongType { found: None },
        ),
        (
            "an ID token (typ JWT) whose aud is ours",
            sign_jwt(&k, &claims()).unwrap(),
            set.clone(),
            AccessTokenError::WrongType {
                found: Some("JWT".into()),
            },
        ),
        (
            "alg none",
            forged(json!({"alg": "none", "typ": "at+jwt"}), &claims(), b""),
            set.clone(),
            AccessTokenError::Unsigned,
        ),
        (
            "HS256 with the public key as secret",
            hs256,
            set.clone(),
            AccessTokenError::SymmetricAlgorithm("HS256".into()),
        ),
        (
            "an algorithm the provider does not list",
            forged(
                json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1"}),
                &claims(),
                b"sig",
            ),
            set.clone(),
            AccessTokenError::AlgorithmNotAllowed {
                alg: "EdDSA".into(),
                allowed: "RS256, ES256, ES384, ES512".into(),
            },
        ),
        (
            "unknown kid",
            at(&key(KeyType::Rsa2048, "k9"), &claims()),
            set.clone(),
            AccessTokenError::UnknownKeyId(Some("k9".into())),
        ),
        (
            "key of the wrong curve",
            at(&p384, &claims()),
            set.clone(),
            AccessTokenError::KeyAlgorithmMismatch {
                kid: Some("k2".into()),
                alg: "ES384".into(),
            },
        ),
        (
            "key published for another algorithm",
            at(&k, &claims()),
            ps256_only,
            AccessTokenError::KeyAlgorithmMismatch {
                kid: Some("k1".into()),
                alg: "RS256".into(),
            },
        ),
        (
            "signed by another key with the same kid",
            at(&key(KeyType::Rsa2048, "k1"), &claims()),
            set.clone(),
            AccessTokenError::BadSignature,
        ),
        (
            "a changed claim",
            changed_byte,
            set.clone(),
            AccessTokenError::BadSignature,
        ),
        (
            "wrong iss",
            at(
                &k,
                &with(|c| c["iss"] = json!("https://evil.example.com/oidc")),
            ),
            set.clone(),
            AccessTokenError::WrongIssuer {
                expected: ISSUER.into(),
                found: "https://evil.example.com/oidc".into(),
            },
        ),
        (
            "wrong aud",
            at(&k, &with(|c| c["aud"] = json!("https://vhh.example.com/"))),
            set.clone(),
            AccessTokenError::WrongAudience {
                expected: AUDIENCE.into(),
                found: r#"["https://vhh.example.com/"]"#.into(),
            },
        ),
        (
            "aud array without us",
            at(&k, &with(|c| c["aud"] = json!(["a", "kiosk-7"]))),
            set.clone(),
            AccessTokenError::WrongAudience {
                expected: AUDIENCE.into(),
                found: r#"["a","kiosk-7"]"#.into(),
            },
        ),
        (
            "aud of the wrong type",
            at(&k, &with(|c| c["aud"] = json!([AUDIENCE, 7]))),
            set.clone(),
            AccessTokenError::InvalidClaim {
                claim: "aud",
                expected: "a string or a list of strings",
            },
        ),
        (
            "expired",
            at(&k, &with(|c| c["exp"] = json!(NOW - 61))),
            set.clone(),
            AccessTokenError::Expired {
                exp: NOW - 61,
                now: NOW,
                leeway: 60,
            },
        ),
        (
            "nbf in the future",
            at(&k, &with(|c| c["nbf"] = json!(NOW + 61))),
            set.clone(),
            AccessTokenError::NotYetValid {
                nbf: NOW + 61,
                now: NOW,
            },
        ),
        (
            "iat in the future",
            at(&k, &with(|c| c["iat"] = json!(NOW + 61))),
            set.clone(),
            AccessTokenError::IssuedInFuture {
                iat: NOW + 61,
                now: NOW,
            },
        ),
        (
            "no exp",
            at(&k, &without("exp")),
            set.clone(),
            AccessTokenError::MissingClaim("exp"),
        ),
        (
            "no iat",
            at(&k, &without("iat")),
            set.clone(),
            AccessTokenError::MissingClaim("iat"),
        ),
        (
            "no sub",
            at(&k, &without("sub")),
            set.clone(),
            AccessTokenError::MissingClaim("sub"),
        ),
        (
            "no client_id",
            at(&k, &without("client_id")),
            set.clone(),
            AccessTokenError::MissingClaim("client_id"),
        ),
        (
            "no jti",
            at(&k, &without("jti")),
            set.clone(),
            AccessTokenError::MissingClaim("jti"),
        ),
        (
            "no aud",
            at(&k, &without("aud")),
            set.clone(),
            AccessTokenError::MissingClaim("aud"),
        ),
        (
            "exp as a string",
            at(&k, &with(|c| c["exp"] = json!("tomorrow"))),
            set.clone(),
            AccessTokenError::InvalidClaim {
                claim: "exp",
                expected: "a number of seconds since 1970",
            },
        ),
        (
            "scope as a list",
            at(&k, &with(|c| c["scope"] = json!(["read"]))),
            set.clone(),
            AccessTokenError::InvalidClaim {
                claim: "scope",
                expected: "a space-separated string",
            },
        ),
        (
            "cnf.jkt as a number",
            at(&k, &with(|c| c["cnf"] = json!({"jkt": 5}))),
            set.clone(),
            AccessTokenError::InvalidClaim {
                claim: "cnf",
                expected: "an object with a string `jkt`",
            },
        ),
        (
            "oversized token",
            oversized.clone(),
            set.clone(),
            AccessTokenError::TooLarge {
                len: oversized.len(),
                max: MAX_ACCESS_TOKEN_BYTES,
            },
        ),
    ];
    for (case, token, keys, expected) in rows {
        let got = check(&token, &keys).err();
        assert_eq!(got.as_ref(), Some(&expected), "{case}");
        let message = expected.to_string();
        if let Some(claim) = expected.claim() {
            assert!(message.contains(&format!("`{claim}`")), "{case}: {message}");
        }
    }
}

#[test]
fn garbage_is_malformed_and_not_a_jwt() {
    let k = key(KeyType::EccP256, "k1");
    for garbage in [
        "",
        "a.b",
        "a.b.c.d",
        "!!!.???.###",
        "bm90IGpzb24.e30.AA",
        "at_4f9c1d7e",
    ] {
        assert!(!is_jwt(garbage), "{garbage:?}");
        assert!(
            matches!(
                check(garbage, &jwks(&[&k])),
                Err(AccessTokenError::Malformed(_))
            ),
            "{garbage:?}"
        );
    }
    assert!(is_jwt(&at(&k, &claims())));
}

fn introspection() -> Introspection {
    let mut info = Introspection::new(true);
    info.iss = Some(ISSUER.into());
    info.sub = Some("alice".into());
    info.client_id = Some("kiosk-7".into());
    info.exp = Some(NOW + 300);
    info.iat = Some(NOW - 10);
    info.aud = vec![AUDIENCE.into()];
    info.scope = Some("read".into());
    info
}

#[test]
fn an_introspection_answer_counts_only_when_active_ours_and_for_us() {
    let issuer = issuer();
    let expect = AccessTokenExpectations::new(&issuer, AUDIENCE);
    let got = claims_from_introspection(&introspection(), expect, now()).unwrap();
    assert_eq!((got.sub.as_str(), got.exp), ("alice", NOW + 300));
    assert!(got.has_scope("read"));

    let refused = |change: &dyn Fn(&mut Introspection)| {
        let mut info = introspection();
        change(&mut info);
        claims_from_introspection(&info, expect, now()).unwrap_err()
    };
    assert_eq!(refused(&|i| i.active = false), AccessTokenError::Inactive);
    assert_eq!(
        refused(&|i| i.iss = Some("https://evil/oidc".into())).claim(),
        Some("iss")
    );
    assert_eq!(
        refused(&|i| i.aud = vec!["kiosk-7".into()]).claim(),
        Some("aud")
    );
    assert_eq!(
        refused(&|i| i.aud.clear()),
        AccessTokenError::MissingClaim("aud")
    );
    assert_eq!(refused(&|i| i.exp = Some(NOW - 61)).claim(), Some("exp"));
    assert_eq!(
        refused(&|i| i.exp = None),
        AccessTokenError::MissingClaim("exp")
    );
    assert_eq!(
        refused(&|i| i.client_id = None),
        AccessTokenError::MissingClaim("client_id")
    );
    // A client-credentials token: no person, the client is the subject.
    let mut info = introspection();
    info.sub = None;
    let got = claims_from_introspection(&info, expect, now()).unwrap();
    assert_eq!(got.sub, "kiosk-7");
}
