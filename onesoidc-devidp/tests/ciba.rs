//! CIBA in poll mode (PROTOCOL §5): the request object, polling, decisions.

mod common;

use std::time::Duration;

use common::*;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use onesoidc_core::{JwsAlgorithm, KeyType, PemSigner};
use onesoidc_devidp::{AutoApprove, ControlError, DevIdpConfig};
use serde_json::{Value, json};

#[tokio::test]
async fn approved_request_yields_verified_id_token_and_tokens() {
    let h = Harness::fast().await;
    for key_type in ALL_KEY_TYPES {
        let device = h.device(key_type);
        let claims = merge(
            h.request_claims(&device, "alice"),
            json!({"binding_message": "Log in to kiosk 7", "resource": "https://vhh.example.com"}),
        );
        let resp = h.backchannel(&device, &claims).await;
        let body = resp.assert_ok();
        assert_eq!(body["expires_in"], 120);
        assert_eq!(body["interval"], 1, "100 ms rounds up to 1 s on the wire");
        assert_eq!(resp.header("cache-control"), Some("no-store"));
        let id = body["auth_req_id"].as_str().unwrap().to_string();

        let seen = h.idp.next_ciba_request().await;
        assert_eq!(seen.auth_req_id, id);
        assert_eq!(seen.client_id, device.client_id);
        assert_eq!(seen.login_hint, "alice");
        assert_eq!(seen.binding_message.as_deref(), Some("Log in to kiosk 7"));
        assert_eq!(seen.resource.as_deref(), Some("https://vhh.example.com"));
        assert_eq!(seen.scope, "openid offline_access profile");
        assert_eq!(h.idp.pending_ciba_requests(), vec![seen]);

        tokio::time::sleep(INTERVAL).await;
        h.poll(&device, &id)
            .await
            .assert_error(400, "authorization_pending");
        h.idp.approve_ciba(&id).unwrap();
        let resp = h.poll_until_done(&device, &id).await;
        let tokens = resp.assert_ok().clone();
        assert_eq!(resp.header("cache-control"), Some("no-store"));
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["scope"], "openid offline_access profile");
        assert!(tokens["refresh_token"].is_string());

        let access = claims_of(tokens["access_token"].as_str().unwrap());
        assert_eq!(access["sub"], "alice");
        assert_eq!(access["aud"], "https://vhh.example.com");
        assert_eq!(access["client_id"], device.client_id);

        // The ID token verifies with the JWKS key (jsonwebtoken, not our code).
        let jwks: JwkSet = h
            .http
            .get(h.idp.jwks_uri())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id_token = tokens["id_token"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(id_token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        let jwk = jwks
            .find(header.kid.as_deref().unwrap())
            .expect("kid in JWKS");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[&device.client_id]);
        validation.set_issuer(&[h.idp.issuer()]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let verified = jsonwebtoken::decode::<Value>(
            id_token,
            &DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(verified["sub"], "alice");
        assert!(verified["auth_time"].as_i64().unwrap() <= verified["iat"].as_i64().unwrap());

        // Collected: the auth_req_id is consumed.
        tokio::time::sleep(INTERVAL).await;
        h.poll(&device, &id)
            .await
            .assert_error(400, "invalid_grant");
        assert_eq!(h.idp.stats().ciba_polls(&id), 3);
    }
}

#[tokio::test]
async fn no_refresh_token_without_offline_access() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let claims = merge(h.request_claims(&device, "bob"), json!({"scope": "openid"}));
    let id = h.start_ciba(&device, &claims).await;
    h.idp.approve_ciba(&id).unwrap();
    let tokens = h.poll_until_done(&device, &id).await.assert_ok().clone();
    assert!(tokens.get("refresh_token").is_none());
    assert!(tokens["id_token"].is_string());
    let access = claims_of(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["sub"], "bob");
    assert_eq!(access["aud"], device.client_id);
}

#[tokio::test]
async fn polling_too_fast_is_slow_down() {
    // A 1 s interval leaves room for a slow machine between "too fast" polls.
    let interval = Duration::from_secs(1);
    let h = Harness::start(DevIdpConfig {
        ciba_interval: interval,
        ..DevIdpConfig::default()
    })
    .await;
    let device = h.device(KeyType::EccP256);
    let id = h
        .start_ciba(&device, &h.request_claims(&device, "alice"))
        .await;
    // First poll without waiting the interval.
    h.poll(&device, &id).await.assert_error(400, "slow_down");
    // Again right away: still too fast (measured from the previous poll).
    h.poll(&device, &id).await.assert_error(400, "slow_down");
    tokio::time::sleep(interval).await;
    h.poll(&device, &id)
        .await
        .assert_error(400, "authorization_pending");
    h.poll(&device, &id).await.assert_error(400, "slow_down");
    let stats = h.idp.stats();
    assert_eq!(stats.rejected("slow_down"), 3);
    assert_eq!(stats.rejected("authorization_pending"), 1);
    assert_eq!(stats.ciba_polls(&id), 4);
    assert_eq!(stats.token_requests.ciba, 4);
}

#[tokio::test]
async fn expired_request_is_expired_token() {
    let h = Harness::start(DevIdpConfig {
        ciba_expires_in: Duration::from_millis(300),
        ciba_interval: Duration::from_millis(50),
        ..DevIdpConfig::default()
    })
    .await;
    let device = h.device(KeyType::EccP256);
    let resp = h
        .backchannel(&device, &h.request_claims(&device, "alice"))
        .await;
    assert_eq!(resp.assert_ok()["expires_in"], 1);
    let id = resp.body["auth_req_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(350)).await;
    h.poll(&device, &id)
        .await
        .assert_error(400, "expired_token");
    // Too late to approve as well.
    assert!(matches!(
        h.idp.approve_ciba(&id).unwrap_err(),
        ControlError::CibaNotPending {
            state: "expired",
            ..
        }
    ));
}

#[tokio::test]
async fn denied_request_is_access_denied() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::Rsa2048);
    let id = h
        .start_ciba(&device, &h.request_claims(&device, "alice"))
        .await;
    h.idp.deny_ciba(&id).unwrap();
    assert!(
        matches!(
            h.idp.approve_ciba(&id).unwrap_err(),
            ControlError::CibaNotPending {
                state: "denied",
                ..
            }
        ),
        "decided once"
    );
    tokio::time::sleep(INTERVAL).await;
    h.poll(&device, &id)
        .await
        .assert_error(400, "access_denied");
}

#[tokio::test]
async fn unknown_or_foreign_auth_req_id_is_invalid_grant() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let other = h.device(KeyType::EccP256);
    h.poll(&device, "no-such-id")
        .await
        .assert_error(400, "invalid_grant");
    let id = h
        .start_ciba(&device, &h.request_claims(&device, "alice"))
        .await;
    h.poll(&other, &id).await.assert_error(400, "invalid_grant");
    h.token(&device, &[("grant_type", CIBA_GRANT)])
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn hints_are_checked() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let base = || h.request_claims(&device, "alice");
    // Missing hint.
    h.backchannel(&device, &merge(base(), json!({"login_hint": null})))
        .await
        .assert_error(400, "invalid_request");
    // Two hints.
    h.backchannel(
        &device,
        &merge(base(), json!({"login_hint_token": "lht_x"})),
    )
    .await
    .assert_error(400, "invalid_request");
    h.backchannel(&device, &merge(base(), json!({"id_token_hint": "x.y.z"})))
        .await
        .assert_error(400, "invalid_request");
    // Unknown user.
    let resp = h
        .backchannel(&device, &merge(base(), json!({"login_hint": "mallory"})))
        .await;
    resp.assert_error(400, "unknown_user_id");
    // Unknown login_hint_token.
    h.backchannel(
        &device,
        &merge(
            base(),
            json!({"login_hint": null, "login_hint_token": "lht_unknown", "qr_session_id": "s"}),
        ),
    )
    .await
    .assert_error(400, "unknown_user_id");
    // qr_session_id only goes with a login_hint_token.
    h.backchannel(&device, &merge(base(), json!({"qr_session_id": "s"})))
        .await
        .assert_error(400, "invalid_request");
    // A hint that is not a string.
    h.backchannel(&device, &merge(base(), json!({"login_hint": 7})))
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn id_token_hint_identifies_the_user() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let tokens = h.user_tokens(&device, "bob").await;
    let hint = tokens["id_token"].as_str().unwrap();
    let claims = merge(
        h.request_claims(&device, "x"),
        json!({"login_hint": null, "id_token_hint": hint}),
    );
    h.start_ciba(&device, &claims).await;
    assert_eq!(h.idp.next_ciba_request().await.login_hint, "bob");
    assert_eq!(h.idp.next_ciba_request().await.login_hint, "bob");
    // A token the provider did not sign.
    let forged = sign(&device.key, &json!({"iss": h.idp.issuer(), "sub": "bob"}));
    let claims = merge(
        h.request_claims(&device, "x"),
        json!({"login_hint": null, "id_token_hint": forged}),
    );
    h.backchannel(&device, &claims)
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn scope_and_binding_message_are_checked() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let base = || h.request_claims(&device, "alice");
    h.backchannel(
        &device,
        &merge(base(), json!({"scope": "profile offline_access"})),
    )
    .await
    .assert_error(400, "invalid_scope");
    h.backchannel(&device, &merge(base(), json!({"scope": null})))
        .await
        .assert_error(400, "invalid_request");
    let long = "é".repeat(121);
    h.backchannel(&device, &merge(base(), json!({"binding_message": long})))
        .await
        .assert_error(400, "invalid_binding_message");
    let exactly = "é".repeat(120);
    h.backchannel(&device, &merge(base(), json!({"binding_message": exactly})))
        .await
        .assert_ok();
    h.backchannel(
        &device,
        &merge(base(), json!({"resource": "relative/path"})),
    )
    .await
    .assert_error(400, "invalid_target");
    h.backchannel(&device, &merge(base(), json!({"requested_expiry": -5})))
        .await
        .assert_error(400, "invalid_request");
    let resp = h
        .backchannel(&device, &merge(base(), json!({"requested_expiry": "30"})))
        .await;
    assert_eq!(resp.assert_ok()["expires_in"], 30);
}

#[tokio::test]
async fn request_object_is_verified() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP384);
    let base = || h.request_claims(&device, "alice");
    let now = now();

    // Bad signature (another key), wrong alg for the key, garbage.
    let other = PemSigner::generate(KeyType::EccP384).unwrap();
    let resp = h.backchannel_raw(&device, &sign(&other, &base())).await;
    resp.assert_error(400, "invalid_request_object");
    let lie = sign(&LyingSigner(&device.key, JwsAlgorithm::ES256), &base());
    h.backchannel_raw(&device, &lie)
        .await
        .assert_error(400, "invalid_request_object");
    h.backchannel_raw(&device, "not.a.jwt")
        .await
        .assert_error(400, "invalid_request_object");

    let rejected = [
        json!({"aud": h.idp.token_endpoint()}),
        json!({"aud": null}),
        json!({"iss": "someone"}),
        json!({"client_id": "someone"}),
        json!({"exp": null}),
        json!({"nbf": null}),
        json!({"iat": null}),
        json!({"jti": null}),
        json!({"iat": now - 500, "nbf": now - 500, "exp": now - 200}),
        json!({"nbf": now + 600}),
        json!({"exp": now + 3600}),
    ];
    for change in rejected {
        let resp = h.backchannel(&device, &merge(base(), change.clone())).await;
        resp.assert_error(400, "invalid_request_object");
        assert!(
            resp.body["error_description"]
                .as_str()
                .unwrap()
                .starts_with("request object rejected"),
            "{change}"
        );
    }
    // aud as an array holding the issuer is fine.
    h.backchannel(&device, &merge(base(), json!({"aud": [h.idp.issuer()]})))
        .await
        .assert_ok();

    // Replayed request object.
    let claims = base();
    h.backchannel(&device, &claims).await.assert_ok();
    h.backchannel(&device, &claims)
        .await
        .assert_error(400, "invalid_request_object");
}

#[tokio::test]
async fn parameters_outside_the_request_object_are_refused() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let request = sign(&device.key, &h.request_claims(&device, "alice"));
    h.call(
        &h.idp.backchannel_endpoint(),
        &device,
        &[("request", &request), ("login_hint", "bob")],
    )
    .await
    .assert_error(400, "invalid_request");
    h.call(
        &h.idp.backchannel_endpoint(),
        &device,
        &[("login_hint", "bob")],
    )
    .await
    .assert_error(400, "invalid_request");
    // Client auth is checked first.
    let assertion = device.assertion(&h.idp.backchannel_endpoint());
    let stranger = h.device(KeyType::EccP256);
    h.post_with_assertion(
        &h.idp.backchannel_endpoint(),
        &stranger,
        &assertion,
        &[("request", &request)],
    )
    .await
    .assert_error(401, "invalid_client");
    assert_eq!(h.idp.stats().backchannel_requests, 3);
}

#[tokio::test]
async fn auto_approve_and_auto_deny() {
    let h = Harness::start(DevIdpConfig {
        auto_approve: Some(AutoApprove::approve_after(Duration::from_millis(50))),
        ..fast_config()
    })
    .await;
    let device = h.device(KeyType::EccP256);
    let id = h
        .start_ciba(&device, &h.request_claims(&device, "alice"))
        .await;
    h.poll_until_done(&device, &id).await.assert_ok();

    h.idp
        .set_auto_approve(Some(AutoApprove::deny_after(Duration::from_millis(10))));
    let id = h
        .start_ciba(&device, &h.request_claims(&device, "bob"))
        .await;
    h.poll_until_done(&device, &id)
        .await
        .assert_error(400, "access_denied");

    h.idp.set_auto_approve(None);
    let id = h
        .start_ciba(&device, &h.request_claims(&device, "bob"))
        .await;
    tokio::time::sleep(INTERVAL * 3).await;
    h.poll(&device, &id)
        .await
        .assert_error(400, "authorization_pending");
}
