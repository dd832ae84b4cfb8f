//! Refresh with rotation (PROTOCOL §6), introspection and revocation (§7),
//! and ID token validation against the provider's JWKS (§5), with tokens the
//! stock provider issued.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onesoidc_flows::core::IdTokenError;
use onesoidc_flows::{DeviceTokenRequest, Error, TokenTypeHint};
use onesoidc_interop::{ECC_P256, ECC_P384, ECC_P521, RSA_2048, issuer};

use crate::common::{login_alice, oauth_error, text};

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn refresh_rotates_and_the_old_refresh_token_is_rejected() {
    let (client, first) = login_alice(RSA_2048).await;
    let first_rt = text(first.refresh_token.as_ref().expect("refresh token")).to_string();

    let second = client.refresh(&first).await.expect("refresh");
    let second_rt = text(second.refresh_token.as_ref().expect("refresh token")).to_string();
    assert_ne!(
        second_rt, first_rt,
        "rotateRefreshToken: a new refresh token"
    );
    assert_ne!(text(&second.access_token), text(&first.access_token));
    if let Some(id_token) = &second.id_token {
        let claims = client
            .validate_id_token(text(id_token))
            .await
            .expect("refreshed ID token");
        assert_eq!(claims.sub, "alice");
    }
    let info = client
        .introspect(&second.access_token, Some(TokenTypeHint::AccessToken))
        .await
        .expect("introspection");
    assert!(
        info.active && info.sub.as_deref() == Some("alice"),
        "{info:?}"
    );

    // The rotated token works once more ...
    let third = client.refresh(&second).await.expect("second refresh");
    assert_ne!(text(third.refresh_token.as_ref().unwrap()), second_rt);

    // ... and the first one, already used, is refused.
    assert_eq!(oauth_error(client.refresh(&first).await), "invalid_grant");

    // Reuse detection (RFC 9700 §4.14.2): presenting a rotated refresh token
    // revokes the grant, so the newest refresh token is dead too. Whoever
    // holds refresh tokens must never refresh twice with the same one.
    let newest = third.refresh_token.as_ref().unwrap();
    let info = client
        .introspect(newest, Some(TokenTypeHint::RefreshToken))
        .await
        .expect("introspection");
    assert!(!info.active, "reuse must revoke the grant: {info:?}");
    assert_eq!(oauth_error(client.refresh(&third).await), "invalid_grant");
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn introspection_active_and_inactive() {
    let (client, tokens) = login_alice(ECC_P384).await;
    let rt = tokens.refresh_token.as_ref().expect("refresh token");

    let info = client
        .introspect(rt, Some(TokenTypeHint::RefreshToken))
        .await
        .expect("introspection");
    assert!(info.active, "{info:?}");
    assert_eq!(info.sub.as_deref(), Some("alice"));
    assert_eq!(
        info.client_id.as_deref(),
        Some(ECC_P384.client_id().as_str())
    );
    assert_eq!(info.iss.as_deref(), Some(issuer().as_str()));

    // Without a hint, too (RFC 7662 §2.1: the hint is optional).
    let info = client
        .introspect(&tokens.access_token, None)
        .await
        .expect("introspection");
    assert!(info.active, "{info:?}");

    // RFC 7662 §2.2: an unknown token is a 200 with active=false, not an error.
    let info = client
        .introspect(&"not-a-token-the-provider-issued".into(), None)
        .await
        .expect("introspection");
    assert!(!info.active, "{info:?}");
    assert_eq!(info.client_id, None);
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn revoked_access_token_is_inactive() {
    let client = ECC_P521.client();
    let tokens = client.device_token().await.expect("device token");
    let at = &tokens.access_token;
    assert!(
        client
            .introspect(at, None)
            .await
            .expect("introspect")
            .active
    );
    client
        .revoke(at, Some(TokenTypeHint::AccessToken))
        .await
        .expect("revocation");
    let info = client.introspect(at, None).await.expect("introspect");
    assert!(!info.active, "{info:?}");
    // RFC 7009 §2.2: revoking an invalid token is a success too.
    client
        .revoke(at, Some(TokenTypeHint::AccessToken))
        .await
        .expect("second revocation");
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn revoked_refresh_token_is_inactive_and_refused() {
    let (client, tokens) = login_alice(ECC_P256).await;
    let rt = tokens.refresh_token.as_ref().expect("refresh token");
    client
        .revoke(rt, Some(TokenTypeHint::RefreshToken))
        .await
        .expect("revocation");
    let info = client
        .introspect(rt, Some(TokenTypeHint::RefreshToken))
        .await
        .expect("introspect");
    assert!(!info.active, "{info:?}");
    assert_eq!(oauth_error(client.refresh(&tokens).await), "invalid_grant");
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn id_token_validation_rejects_tampering_and_other_audiences() {
    let (client, tokens) = login_alice(ECC_P521).await;
    let id_token = text(tokens.id_token.as_ref().expect("ID token")).to_string();
    client
        .validate_id_token(&id_token)
        .await
        .expect("valid as issued");

    // Same signature, claims changed: the provider's key must not verify it.
    let mut parts: Vec<String> = id_token.split('.').map(str::to_string).collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["sub"] = "bob".into();
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    match client.validate_id_token(&parts.join(".")).await {
        Err(Error::IdToken {
            source: IdTokenError::BadSignature,
            ..
        }) => {}
        other => panic!("expected a bad signature, got {other:?}"),
    }

    // Another device must not accept a token issued to this one.
    match RSA_2048.client().validate_id_token(&id_token).await {
        Err(Error::IdToken {
            source: IdTokenError::WrongAudience { .. },
            ..
        }) => {}
        other => panic!("expected a wrong audience, got {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn jwt_access_tokens_are_not_introspected_or_revoked_by_the_stock_provider() {
    // oidc-provider refuses structured (JWT) access tokens at both endpoints
    // (RFC 7009 §2.2.1 / RFC 7662 allow this): the client must surface the
    // error, not claim the token is inactive or revoked.
    let client = ECC_P256.client();
    let options = DeviceTokenRequest::default().resource("https://api.interop.test/jwt");
    let tokens = client
        .device_token_with(&options)
        .await
        .expect("device token");
    let at = &tokens.access_token;
    assert_eq!(
        oauth_error(client.introspect(at, None).await),
        "unsupported_token_type"
    );
    assert_eq!(
        oauth_error(client.revoke(at, Some(TokenTypeHint::AccessToken)).await),
        "unsupported_token_type"
    );
}
