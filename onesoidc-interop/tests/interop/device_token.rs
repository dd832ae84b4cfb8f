//! The device access token (PROTOCOL §4): client credentials with
//! private_key_jwt, for every key type px-device-identity creates.

use std::sync::Arc;
use std::time::SystemTime;

use onesoidc_flows::core::ExposeSecret;
use onesoidc_flows::{DeviceIdentity, DeviceTokenRequest, OnesIdClient, TokenTypeHint};
use onesoidc_interop::{
    DeviceKey, ECC_P256, ECC_P384, RSA_2048, http, issuer, jwt_claims, jwt_header,
};

use crate::common::oauth_error;

/// Gets a device token with `key` and checks it with the provider.
async fn device_token_works(key: DeviceKey) {
    let client = key.client();
    let tokens = client
        .device_token()
        .await
        .unwrap_or_else(|e| panic!("{}: device token refused: {e}", key.dir));
    assert_eq!(tokens.token_type, "Bearer");
    let expires_in = tokens
        .expires_in(SystemTime::now())
        .expect("the provider says expires_in");
    assert!(expires_in.as_secs() > 60, "{expires_in:?}");
    assert!(tokens.refresh_token.is_none() && tokens.id_token.is_none());

    let info = client
        .introspect(&tokens.access_token, Some(TokenTypeHint::AccessToken))
        .await
        .expect("introspection");
    assert!(info.active, "{info:?}");
    assert_eq!(info.client_id.as_deref(), Some(key.client_id().as_str()));
    assert_eq!(info.iss.as_deref(), Some(issuer().as_str()));
    assert_eq!(info.token_type.as_deref(), Some("Bearer"));
    assert_eq!(info.sub, None, "a device token has no user: {info:?}");
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn device_token_rs256_rsa_2048() {
    device_token_works(onesoidc_interop::DEVICE_KEYS[0]).await;
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn device_token_rs256_rsa_3072() {
    device_token_works(onesoidc_interop::DEVICE_KEYS[1]).await;
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn device_token_es256_p256() {
    device_token_works(onesoidc_interop::DEVICE_KEYS[2]).await;
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn device_token_es384_p384() {
    device_token_works(onesoidc_interop::DEVICE_KEYS[3]).await;
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn device_token_es512_p521() {
    device_token_works(onesoidc_interop::DEVICE_KEYS[4]).await;
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn device_token_for_a_resource_is_a_jwt_with_that_audience() {
    const RESOURCE: &str = "https://api.interop.test/jwt";
    let client = ECC_P384.client();
    let options = DeviceTokenRequest::default()
        .scope("read")
        .resource(RESOURCE);
    let tokens = client
        .device_token_with(&options)
        .await
        .expect("device token");
    let jwt = tokens.access_token.expose_secret();
    let header = jwt_header(jwt);
    assert_eq!(header["typ"], "at+jwt", "RFC 9068 access token: {header}");
    let claims = jwt_claims(jwt);
    assert_eq!(claims["aud"], RESOURCE, "{claims}");
    assert_eq!(claims["client_id"], ECC_P384.client_id(), "{claims}");
    assert_eq!(claims["iss"], issuer(), "{claims}");
    assert_eq!(claims["scope"], "read", "{claims}");
    assert_eq!(tokens.scope.as_deref(), Some("read"));
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn device_token_for_an_opaque_resource_introspects_with_that_audience() {
    const RESOURCE: &str = "https://api.interop.test/opaque";
    let client = RSA_2048.client();
    let options = DeviceTokenRequest::default()
        .scope("read write")
        .resource(RESOURCE);
    let tokens = client
        .device_token_with(&options)
        .await
        .expect("device token");
    let info = client
        .introspect(&tokens.access_token, None)
        .await
        .expect("introspection");
    assert!(info.active, "{info:?}");
    assert_eq!(info.aud, [RESOURCE], "{info:?}");
    assert_eq!(info.scope.as_deref(), Some("read write"), "{info:?}");
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn device_token_for_an_unknown_resource_is_invalid_target() {
    let client = ECC_P256.client();
    let options = DeviceTokenRequest::default().resource("https://unknown.interop.test/");
    assert_eq!(
        oauth_error(client.device_token_with(&options).await),
        "invalid_target"
    );
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn an_assertion_signed_by_another_key_is_invalid_client() {
    // RSA 2048's client id, signed with the RSA 3072 key: the provider must
    // check our signature against the registered key, and we must surface it.
    let other = onesoidc_interop::DEVICE_KEYS[1];
    let identity = DeviceIdentity::from_parts(RSA_2048.config(), Arc::new(other.signer()));
    let client = OnesIdClient::new(identity, http()).expect("client");
    let result = client.device_token().await;
    let status = result.as_ref().err().and_then(|e| e.http_status());
    assert_eq!(oauth_error(result), "invalid_client");
    assert_eq!(status, Some(401));
}
