//! CIBA in poll mode with signed request objects (PROTOCOL §5).

use std::time::Duration;

use onesoidc_flows::core::ExposeSecret;
use onesoidc_flows::{CibaRequest, Error, LoginHint, TokenTypeHint};
use onesoidc_interop::{
    DEVICE_KEYS, DeviceKey, ECC_P256, ECC_P521, Phone, RSA_2048, issuer, jwt_claims, jwt_header,
};

use crate::common::{bounded, login, login_request, oauth_error, text};

/// The whole approved login on `key`'s device: pending before the phone
/// answers, tokens after, ID token signed with the client's algorithm and
/// valid by our own validation against the provider's JWKS.
async fn approve_works(key: DeviceKey) {
    let client = key.client();
    let started = client
        .ciba_start(&login_request("alice"))
        .await
        .unwrap_or_else(|e| panic!("{}: backchannel request refused: {e}", key.dir));
    assert!(!started.auth_req_id.is_empty());
    assert!(started.expires_in > Duration::from_secs(60), "{started:?}");

    // Nobody has answered yet.
    match client.ciba_poll(&started.auth_req_id).await {
        Ok(onesoidc_flows::core::CibaPollResponse::Pending { .. }) => {}
        other => panic!("{}: expected authorization_pending, got {other:?}", key.dir),
    }

    Phone::approve(&started.auth_req_id).await;
    let login = bounded("CIBA approve", client.ciba_wait(&started))
        .await
        .unwrap_or_else(|e| panic!("{}: CIBA login failed: {e}", key.dir));
    let tokens = &login.tokens;
    assert_eq!(tokens.token_type, "Bearer");
    assert!(
        tokens.refresh_token.is_some(),
        "offline_access gives a refresh token"
    );
    let id_token = tokens.id_token.as_ref().expect("openid gives an ID token");

    // ciba_wait validated it; validating again gives the same claims.
    let claims = client
        .validate_id_token(id_token.expose_secret())
        .await
        .unwrap_or_else(|e| panic!("{}: ID token rejected: {e}", key.dir));
    assert_eq!(login.claims.as_ref(), Some(&claims));
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.iss, issuer());
    assert_eq!(claims.aud, vec![key.client_id()]);
    // No auth_time: OIDC Core §2 makes it optional unless max_age or the
    // claim is requested, and the stock provider leaves it out.
    let alg = key.key_type.jws_algorithm().as_str();
    assert_eq!(
        jwt_header(id_token.expose_secret())["alg"],
        alg,
        "the provider signs this client's ID tokens with {alg}"
    );

    let info = client
        .introspect(&tokens.access_token, Some(TokenTypeHint::AccessToken))
        .await
        .expect("introspection");
    assert!(info.active, "{info:?}");
    assert_eq!(info.sub.as_deref(), Some("alice"));
    assert_eq!(info.client_id.as_deref(), Some(key.client_id().as_str()));
    let scope = info.scope.map(|s| s.to_string()).unwrap_or_default();
    assert!(scope.split(' ').any(|s| s == "openid"), "{scope}");

    // An auth_req_id is good for one token response.
    assert_eq!(
        oauth_error(client.ciba_poll(&started.auth_req_id).await),
        "invalid_grant"
    );
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn ciba_approve_rs256_rsa_2048() {
    approve_works(DEVICE_KEYS[0]).await;
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn ciba_approve_rs256_rsa_3072() {
    approve_works(DEVICE_KEYS[1]).await;
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn ciba_approve_es256_p256() {
    approve_works(DEVICE_KEYS[2]).await;
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn ciba_approve_es384_p384() {
    approve_works(DEVICE_KEYS[3]).await;
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn ciba_approve_es512_p521() {
    approve_works(DEVICE_KEYS[4]).await;
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn ciba_deny_is_access_denied() {
    let client = ECC_P256.client();
    let started = client
        .ciba_start(&login_request("alice"))
        .await
        .expect("backchannel request");
    Phone::deny(&started.auth_req_id).await;
    let result = bounded("CIBA deny", client.ciba_wait(&started)).await;
    assert_eq!(oauth_error(result), "access_denied");
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn ciba_expiry_stops_with_expired() {
    let client = RSA_2048.client();
    let request = login_request("alice").requested_expiry(std::time::Duration::from_secs(2));
    let started = client
        .ciba_start(&request)
        .await
        .expect("backchannel request");
    assert_eq!(
        started.expires_in,
        Duration::from_secs(2),
        "the provider honours requested_expiry"
    );
    // Nobody answers. The first poll comes after the (default) interval, past
    // the expiry: either the provider says expired_token or we stop first.
    match bounded("CIBA expiry", client.ciba_wait(&started)).await {
        Err(e @ Error::Expired { .. }) => eprintln!("stopped by the client: {e}"),
        Err(e) if e.oauth_error() == Some("expired_token") => {
            eprintln!("stopped by the provider: {e}");
        }
        other => panic!("expected expired_token or Error::Expired, got {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn ciba_unknown_user_is_unknown_user_id() {
    let client = ECC_P521.client();
    let result = client.ciba_start(&login_request("mallory")).await;
    assert_eq!(oauth_error(result), "unknown_user_id");
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn ciba_rejected_binding_message_is_invalid_binding_message() {
    // oidc-provider's default policy: 1-20 characters of [a-zA-Z0-9-._+/!?#].
    let client = ECC_P256.client();
    let request = login_request("alice").binding_message("Log in to kiosk 7 please");
    let result = client.ciba_start(&request).await;
    assert_eq!(oauth_error(result), "invalid_binding_message");
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn ciba_with_resource_gives_an_access_token_for_that_resource() {
    const RESOURCE: &str = "https://api.interop.test/jwt";
    let client = ECC_P521.client();
    let request = login_request("alice").resource(RESOURCE);
    let tokens = login(&client, &request).await;
    let claims = jwt_claims(text(&tokens.access_token));
    assert_eq!(claims["aud"], RESOURCE, "{claims}");
    assert_eq!(claims["sub"], "alice", "{claims}");
    assert_eq!(claims["client_id"], ECC_P521.client_id(), "{claims}");
    assert!(tokens.id_token.is_some());
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn ciba_id_token_hint_identifies_the_user() {
    // A second login for the same person, named by the ID token of the first
    // (CIBA Core §7.1 id_token_hint), as a kiosk re-authenticating its user.
    let client = DEVICE_KEYS[1].client();
    let first = login(&client, &login_request("bob")).await;
    let hint = text(first.id_token.as_ref().expect("ID token")).to_string();
    let request = CibaRequest::new()
        .login_hint(LoginHint::IdTokenHint(hint))
        .binding_message("Again-7");
    let second = login(&client, &request).await;
    let id_token = second.id_token.as_ref().expect("ID token");
    let claims = client
        .validate_id_token(text(id_token))
        .await
        .expect("ID token");
    assert_eq!(claims.sub, "bob");
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn unsigned_backchannel_requests_are_refused() {
    // The provider requires signed request objects from these clients
    // (backchannel_authentication_request_signing_alg), so the approvals
    // above prove our request objects verify. Plain parameters must fail.
    let client = RSA_2048.client();
    let endpoint = client
        .provider_metadata()
        .await
        .expect("discovery")
        .backchannel_authentication_endpoint
        .clone();
    let fields = [("scope", "openid"), ("login_hint", "alice")];
    let request = client
        .client_auth()
        .authenticated_form(&endpoint, &fields, client.now())
        .expect("request");
    let response = client.send(&endpoint, request).await.expect("response");
    let error = onesoidc_flows::core::response::error_from_response(&endpoint, &response);
    assert_eq!(error.oauth_error(), Some("invalid_request"), "{error}");
    assert!(
        error.to_string().contains("Request Object must be used"),
        "{error}"
    );
}
