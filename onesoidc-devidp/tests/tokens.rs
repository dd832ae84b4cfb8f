//! Refresh with rotation (PROTOCOL §6), introspection and revocation (§7).

mod common;

use std::time::Duration;

use common::*;
use onesoidc_core::KeyType;
use onesoidc_devidp::DevIdpConfig;

fn refresh_token(tokens: &serde_json::Value) -> String {
    tokens["refresh_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_grant() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP521);
    let first = h.user_tokens(&device, "alice").await;
    let rt1 = refresh_token(&first);

    let resp = h
        .token(
            &device,
            &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
        )
        .await;
    let second = resp.assert_ok().clone();
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let rt2 = refresh_token(&second);
    assert_ne!(rt1, rt2, "rotation");
    let id_token = claims_of(second["id_token"].as_str().unwrap());
    assert_eq!(
        id_token["sub"], "alice",
        "a new ID token for the same person"
    );
    let access = claims_of(second["access_token"].as_str().unwrap());
    assert_eq!(access["sub"], "alice");
    assert_eq!(second["scope"], "openid offline_access profile");
    assert_eq!(h.idp.stats().token_requests.refresh_token, 1);

    // The rotated-out token is refused, and its reuse revokes the grant.
    h.token(
        &device,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    )
    .await
    .assert_error(400, "invalid_grant");
    h.token(
        &device,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
    )
    .await
    .assert_error(400, "invalid_grant");
    let access2 = second["access_token"].as_str().unwrap();
    assert_eq!(h.introspect(&device, access2).await["active"], false);
}

#[tokio::test]
async fn refresh_scope_can_narrow_but_not_widen() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let tokens = h.user_tokens(&device, "alice").await;
    let rt = refresh_token(&tokens);
    h.token(
        &device,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("scope", "openid admin"),
        ],
    )
    .await
    .assert_error(400, "invalid_scope");
    let resp = h
        .token(
            &device,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
                ("scope", "openid"),
            ],
        )
        .await;
    let narrowed = resp.assert_ok();
    assert_eq!(narrowed["scope"], "openid");
    // The new refresh token keeps the original scope.
    let rt2 = refresh_token(narrowed);
    let again = h
        .token(
            &device,
            &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
        )
        .await;
    assert_eq!(again.assert_ok()["scope"], "openid offline_access profile");
}

#[tokio::test]
async fn invalid_refresh_tokens_are_invalid_grant() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let other = h.device(KeyType::EccP256);
    h.token(
        &device,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "rt_made_up"),
        ],
    )
    .await
    .assert_error(400, "invalid_grant");
    h.token(&device, &[("grant_type", "refresh_token")])
        .await
        .assert_error(400, "invalid_request");
    // Another client's refresh token.
    let tokens = h.user_tokens(&device, "bob").await;
    h.token(
        &other,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token(&tokens)),
        ],
    )
    .await
    .assert_error(400, "invalid_grant");
    assert_eq!(h.idp.stats().rejected("invalid_grant"), 2);
}

#[tokio::test]
async fn short_lifetimes_expire_tokens() {
    let h = Harness::start(DevIdpConfig {
        access_token_ttl: Duration::from_millis(500),
        refresh_token_ttl: Duration::from_millis(1000),
        ..fast_config()
    })
    .await;
    let device = h.device(KeyType::EccP256);
    let tokens = h.user_tokens(&device, "alice").await;
    assert_eq!(tokens["expires_in"], 1);
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(h.introspect(&device, access).await["active"], true);
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_eq!(h.introspect(&device, access).await["active"], false);
    // The refresh token still works and gives a fresh access token.
    let rt = refresh_token(&tokens);
    let refreshed = h
        .token(
            &device,
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        )
        .await
        .assert_ok()
        .clone();
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(h.introspect(&device, access).await["active"], true);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    h.token(
        &device,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token(&refreshed)),
        ],
    )
    .await
    .assert_error(400, "invalid_grant");
}

#[tokio::test]
async fn introspection_reports_active_and_inactive() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::Rsa2048);
    let token = h.device_token(&device).await;
    let answer = h.introspect(&device, &token).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["sub"], device.client_id);
    assert_eq!(answer["client_id"], device.client_id);
    assert_eq!(answer["iss"], h.idp.issuer());
    assert_eq!(answer["aud"], device.client_id);
    assert_eq!(answer["token_type"], "Bearer");
    assert!(answer["exp"].as_i64().unwrap() > answer["iat"].as_i64().unwrap());

    let user = h.user_tokens(&device, "alice").await;
    let answer = h
        .introspect(&device, user["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["sub"], "alice");
    assert_eq!(answer["token_type"], "refresh_token");
    // ID tokens and garbage are not tokens it knows.
    for unknown in [user["id_token"].as_str().unwrap(), "garbage"] {
        assert_eq!(
            h.introspect(&device, unknown).await,
            serde_json::json!({"active": false})
        );
    }
    h.call(&h.idp.introspection_endpoint(), &device, &[])
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(h.idp.stats().introspection_requests, 5);
}

#[tokio::test]
async fn revocation_of_access_and_refresh_tokens() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP384);
    let other = h.device(KeyType::EccP384);
    async fn revoke_with(h: &Harness, d: &TestDevice, token: String) -> Resp {
        h.call(
            &h.idp.revocation_endpoint(),
            d,
            &[("token", &token), ("token_type_hint", "access_token")],
        )
        .await
    }

    let token = h.device_token(&device).await;
    // Another client cannot revoke it (RFC 7009: 200, nothing happens).
    let resp = revoke_with(&h, &other, token.clone()).await;
    assert_eq!((resp.status, &resp.body), (200, &serde_json::Value::Null));
    assert_eq!(h.introspect(&device, &token).await["active"], true);
    let resp = revoke_with(&h, &device, token.clone()).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert_eq!(h.introspect(&device, &token).await["active"], false);
    // A revoked device token no longer opens bearer routes.
    h.get(
        &format!("{}/.well-known/applications", h.idp.issuer()),
        Some(&token),
    )
    .await
    .assert_error(401, "invalid_token");
    // Unknown tokens: 200 too.
    assert_eq!(revoke_with(&h, &device, "nothing".into()).await.status, 200);

    // Revoking a refresh token revokes the grant's access tokens too.
    let user = h.user_tokens(&device, "alice").await;
    let rt = refresh_token(&user);
    assert_eq!(revoke_with(&h, &device, rt.clone()).await.status, 200);
    assert_eq!(h.introspect(&device, &rt).await["active"], false);
    assert_eq!(
        h.introspect(&device, user["access_token"].as_str().unwrap())
            .await["active"],
        false
    );
    h.token(
        &device,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await
    .assert_error(400, "invalid_grant");
    h.call(&h.idp.revocation_endpoint(), &device, &[])
        .await
        .assert_error(400, "invalid_request");
}

/// `"access_token_format"` per application: JWTs (RFC 9068) by default,
/// opaque strings that only introspection explains when configured so;
/// the config file says it, and the applications listing never does.
#[tokio::test]
async fn access_tokens_for_an_application_are_jwts_or_opaque_as_configured() {
    let path = std::env::temp_dir().join(format!("devidp-{}.json", uuid::Uuid::new_v4()));
    let file = serde_json::json!({
        "applications": [
            {"client_identifier": "vhh-server", "client_id": "vhh", "name": "VHH", "url": "https://vhh.example.com"},
            {"client_identifier": "lab", "client_id": "lab", "name": "Lab", "url": "https://lab.example.com",
             "access_token_format": "opaque"},
        ],
    });
    std::fs::write(&path, file.to_string()).unwrap();
    let config = DevIdpConfig::from_json_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        config.applications[1].access_token_format,
        onesoidc_devidp::AccessTokenFormat::Opaque
    );
    let h = Harness::start(config).await;
    let device = h.device(KeyType::EccP256);
    let token_for = |resource: &'static str| {
        let (h, device) = (&h, &device);
        async move {
            h.token(
                device,
                &[("grant_type", "client_credentials"), ("resource", resource)],
            )
            .await
            .assert_ok()["access_token"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };

    let jwt = token_for("https://vhh.example.com").await;
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            jwt.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims_of(&jwt)["aud"], "https://vhh.example.com");

    let opaque = token_for("https://lab.example.com").await;
    assert!(
        opaque.starts_with("at_") && !opaque.contains('.'),
        "{opaque}"
    );
    let answer = h.introspect(&device, &opaque).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["aud"], "https://lab.example.com");
    assert_eq!(answer["client_id"], device.client_id.as_str());

    let listed = h
        .get(
            &format!("{}/.well-known/applications", h.idp.issuer()),
            Some(&h.device_token(&device).await),
        )
        .await;
    assert!(
        !listed
            .assert_ok()
            .to_string()
            .contains("access_token_format")
    );
}
