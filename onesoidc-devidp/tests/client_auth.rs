//! private_key_jwt at the token endpoint (PROTOCOL §3, §4): every key type
//! works, every bad assertion is `401 invalid_client`.

mod common;

use common::*;
use onesoidc_core::{JwsAlgorithm, KeyType, PemSigner};
use serde_json::json;

#[tokio::test]
async fn client_credentials_with_every_key_type() {
    let h = Harness::fast().await;
    for key_type in ALL_KEY_TYPES.into_iter().chain([KeyType::Rsa3072]) {
        let device = h.device(key_type);
        let resp = h
            .token(
                &device,
                &[("grant_type", "client_credentials"), ("scope", "device")],
            )
            .await;
        let body = resp.assert_ok();
        assert_eq!(body["token_type"], "Bearer", "{key_type}");
        assert_eq!(body["expires_in"], 300);
        assert_eq!(body["scope"], "device");
        assert!(body.get("refresh_token").is_none());
        assert_eq!(resp.header("cache-control"), Some("no-store"));
        assert!(
            resp.header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
        let claims = claims_of(body["access_token"].as_str().unwrap());
        assert_eq!(claims["iss"], h.idp.issuer());
        assert_eq!(claims["sub"], device.client_id);
        assert_eq!(claims["client_id"], device.client_id);
        assert_eq!(claims["aud"], device.client_id);
        assert_eq!(claims["scope"], "device");
        assert!(claims["jti"].is_string());
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            300
        );
    }
    assert_eq!(h.idp.stats().token_requests.client_credentials, 5);
}

#[tokio::test]
async fn access_token_audience_is_the_resource() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let resp = h
        .token(
            &device,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://vhh.example.com"),
            ],
        )
        .await;
    let claims = claims_of(resp.assert_ok()["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://vhh.example.com");

    let resp = h
        .token(
            &device,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "not a uri"),
            ],
        )
        .await;
    resp.assert_error(400, "invalid_target");
}

#[tokio::test]
async fn bad_signature_is_invalid_client() {
    let h = Harness::fast().await;
    for key_type in ALL_KEY_TYPES {
        let device = h.device(key_type);
        // Same algorithm, another key.
        let other = PemSigner::generate(key_type).unwrap();
        let assertion = sign(&other, &device.assertion_claims(&h.idp.token_endpoint()));
        let resp = h
            .post_with_assertion(
                &h.idp.token_endpoint(),
                &device,
                &assertion,
                &[("grant_type", "client_credentials")],
            )
            .await;
        resp.assert_error(401, "invalid_client");
        assert!(
            resp.body["error_description"]
                .as_str()
                .unwrap()
                .contains("signature"),
            "{}",
            resp.body
        );
        // A flipped bit in a good signature.
        let good = device.assertion(&h.idp.token_endpoint());
        let (input, sig) = good.rsplit_once('.').unwrap();
        let mut sig = sig.as_bytes().to_vec();
        sig[4] = if sig[4] == b'A' { b'B' } else { b'A' };
        let tampered = format!("{input}.{}", String::from_utf8(sig).unwrap());
        h.post_with_assertion(
            &h.idp.token_endpoint(),
            &device,
            &tampered,
            &[("grant_type", "client_credentials")],
        )
        .await
        .assert_error(401, "invalid_client");
    }
}

async fn assert_claims_rejected(
    h: &Harness,
    device: &TestDevice,
    claims: serde_json::Value,
    why: &str,
) {
    let assertion = sign(&device.key, &claims);
    let resp = h
        .post_with_assertion(
            &h.idp.token_endpoint(),
            device,
            &assertion,
            &[("grant_type", "client_credentials")],
        )
        .await;
    resp.assert_error(401, "invalid_client");
    let description = resp.body["error_description"].as_str().unwrap();
    assert!(description.contains(why), "{why:?} not in {description:?}");
}

#[tokio::test]
async fn bad_claims_are_invalid_client() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let token = h.idp.token_endpoint();
    let base = || device.assertion_claims(&token);
    let now = now();

    // Wrong aud: the issuer, another endpoint, another host.
    for aud in [
        h.idp.issuer(),
        h.idp.backchannel_endpoint(),
        "https://elsewhere.example/oidc/token".to_string(),
    ] {
        assert_claims_rejected(&h, &device, merge(base(), json!({"aud": aud})), "`aud`").await;
    }
    assert_claims_rejected(
        &h,
        &device,
        merge(base(), json!({"aud": null})),
        "`aud` is missing",
    )
    .await;
    // An array containing the endpoint is fine.
    let ok = sign(&device.key, &merge(base(), json!({"aud": [token, "x"]})));
    h.post_with_assertion(
        &token,
        &device,
        &ok,
        &[("grant_type", "client_credentials")],
    )
    .await
    .assert_ok();

    // Expired (beyond the 60 s skew), issued in the future, too long-lived.
    assert_claims_rejected(
        &h,
        &device,
        merge(base(), json!({"iat": now - 200, "exp": now - 100})),
        "expired",
    )
    .await;
    assert_claims_rejected(
        &h,
        &device,
        merge(base(), json!({"iat": now + 120, "exp": now + 180})),
        "future",
    )
    .await;
    assert_claims_rejected(
        &h,
        &device,
        merge(base(), json!({"exp": now + 301})),
        "lifetime",
    )
    .await;
    for missing in ["exp", "iat", "jti", "iss", "sub"] {
        assert_claims_rejected(
            &h,
            &device,
            merge(base(), json!({missing: null})),
            &format!("`{missing}` is missing"),
        )
        .await;
    }
    assert_claims_rejected(
        &h,
        &device,
        merge(base(), json!({"exp": "soon"})),
        "NumericDate",
    )
    .await;
    assert_claims_rejected(
        &h,
        &device,
        merge(base(), json!({"iss": "someone"})),
        "client id",
    )
    .await;
    assert_claims_rejected(
        &h,
        &device,
        merge(base(), json!({"sub": "someone"})),
        "client id",
    )
    .await;
}

#[tokio::test]
async fn replayed_jti_is_invalid_client() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP384);
    let assertion = device.assertion(&h.idp.token_endpoint());
    let fields = [("grant_type", "client_credentials")];
    h.post_with_assertion(&h.idp.token_endpoint(), &device, &assertion, &fields)
        .await
        .assert_ok();
    let resp = h
        .post_with_assertion(&h.idp.token_endpoint(), &device, &assertion, &fields)
        .await;
    resp.assert_error(401, "invalid_client");
    assert!(
        resp.body["error_description"]
            .as_str()
            .unwrap()
            .contains("replay")
    );
    // Same jti in a new assertion: still a replay.
    let claims = claims_of(&assertion);
    let again = sign(
        &device.key,
        &merge(
            device.assertion_claims(&h.idp.token_endpoint()),
            json!({"jti": claims["jti"]}),
        ),
    );
    h.post_with_assertion(&h.idp.token_endpoint(), &device, &again, &fields)
        .await
        .assert_error(401, "invalid_client");
    assert_eq!(h.idp.stats().rejected("invalid_client"), 2);
}

#[tokio::test]
async fn wrong_alg_for_the_key_is_invalid_client() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let claims = device.assertion_claims(&h.idp.token_endpoint());
    // The header claims ES384 / RS256 / ES512 for an ES256 key and signature.
    for lie in [
        JwsAlgorithm::ES384,
        JwsAlgorithm::RS256,
        JwsAlgorithm::ES512,
    ] {
        let assertion = sign(&LyingSigner(&device.key, lie), &claims);
        let resp = h
            .post_with_assertion(
                &h.idp.token_endpoint(),
                &device,
                &assertion,
                &[("grant_type", "client_credentials")],
            )
            .await;
        resp.assert_error(401, "invalid_client");
        assert!(
            resp.body["error_description"]
                .as_str()
                .unwrap()
                .contains("alg")
        );
    }
    // A correctly signed RS256 assertion for a device registered with ES256.
    let rsa = PemSigner::generate(KeyType::Rsa2048).unwrap();
    let assertion = sign(&rsa, &device.assertion_claims(&h.idp.token_endpoint()));
    h.post_with_assertion(
        &h.idp.token_endpoint(),
        &device,
        &assertion,
        &[("grant_type", "client_credentials")],
    )
    .await
    .assert_error(401, "invalid_client");
    // alg none, HS256 with anything as the secret.
    for header in [
        json!({"alg": "none"}),
        json!({"alg": "HS256", "typ": "JWT"}),
    ] {
        let assertion = sign_raw(&header, &claims, &device.key);
        h.post_with_assertion(
            &h.idp.token_endpoint(),
            &device,
            &assertion,
            &[("grant_type", "client_credentials")],
        )
        .await
        .assert_error(401, "invalid_client");
    }
    // px's ES521 spelling is not a JWS alg.
    let p521 = h.device(KeyType::EccP521);
    let assertion = sign_raw(
        &json!({"alg": "ES521"}),
        &p521.assertion_claims(&h.idp.token_endpoint()),
        &p521.key,
    );
    h.post_with_assertion(
        &h.idp.token_endpoint(),
        &p521,
        &assertion,
        &[("grant_type", "client_credentials")],
    )
    .await
    .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn unknown_client_and_missing_auth_are_invalid_client() {
    let h = Harness::fast().await;
    let unregistered = TestDevice {
        key: PemSigner::generate(KeyType::EccP256).unwrap(),
        client_id: "nobody".into(),
        device_id: "nothing".into(),
    };
    let resp = h
        .token(&unregistered, &[("grant_type", "client_credentials")])
        .await;
    resp.assert_error(401, "invalid_client");
    assert!(
        resp.body["error_description"]
            .as_str()
            .unwrap()
            .contains("unknown client")
    );

    let device = h.device(KeyType::EccP256);
    let token = h.idp.token_endpoint();
    let assertion = device.assertion(&token);
    let cases: [Vec<(&str, &str)>; 4] = [
        vec![("grant_type", "client_credentials")],
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", &device.client_id),
            ("client_assertion", &assertion),
        ],
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", &device.client_id),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            ("client_assertion", &assertion),
        ],
        vec![
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ],
    ];
    for fields in cases {
        h.post_form(&token, &fields)
            .await
            .assert_error(401, "invalid_client");
    }
    // Garbage assertions.
    for garbage in [
        "x",
        "a.b.c",
        "e30.e30.",
        "!!!.???.###",
        "eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.c2ln",
    ] {
        h.post_with_assertion(
            &token,
            &device,
            garbage,
            &[("grant_type", "client_credentials")],
        )
        .await
        .assert_error(401, "invalid_client");
    }
    // client_id in the form is not the assertion's iss.
    let other = h.device(KeyType::EccP256);
    h.post_with_assertion(
        &token,
        &other,
        &assertion,
        &[("grant_type", "client_credentials")],
    )
    .await
    .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn malformed_requests_are_invalid_request() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let token = h.idp.token_endpoint();

    // Not a form.
    let resp = h
        .post_json(&token, None, &json!({"grant_type": "client_credentials"}))
        .await;
    resp.assert_error(400, "invalid_request");
    // A parameter twice.
    let resp = h
        .call(
            &token,
            &device,
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
    resp.assert_error(400, "invalid_request");
    // No grant type, an unknown grant type.
    h.call(&token, &device, &[])
        .await
        .assert_error(400, "invalid_request");
    h.call(&token, &device, &[("grant_type", "password")])
        .await
        .assert_error(400, "unsupported_grant_type");
    // Too large a body.
    let big = "x".repeat(100 * 1024);
    let resp = h
        .post_form(
            &token,
            &[("grant_type", "client_credentials"), ("pad", &big)],
        )
        .await;
    assert_eq!(resp.status, 413);
    assert_eq!(resp.body["error"], "invalid_request");
    // Unknown route: JSON 404.
    h.get(&format!("{}/nope", h.idp.issuer()), None)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn assertion_audience_is_the_endpoint_called() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::Rsa2048);
    let token = h.device_token(&device).await;
    // An assertion made for the token endpoint does not work at introspection.
    let assertion = device.assertion(&h.idp.token_endpoint());
    h.post_with_assertion(
        &h.idp.introspection_endpoint(),
        &device,
        &assertion,
        &[("token", &token)],
    )
    .await
    .assert_error(401, "invalid_client");
    let assertion = device.assertion(&h.idp.token_endpoint());
    h.post_with_assertion(
        &h.idp.revocation_endpoint(),
        &device,
        &assertion,
        &[("token", &token)],
    )
    .await
    .assert_error(401, "invalid_client");
    let assertion = device.assertion(&h.idp.token_endpoint());
    let request = sign(&device.key, &h.request_claims(&device, "alice"));
    h.post_with_assertion(
        &h.idp.backchannel_endpoint(),
        &device,
        &assertion,
        &[("request", &request)],
    )
    .await
    .assert_error(401, "invalid_client");
}
