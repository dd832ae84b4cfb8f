//! DPoP through the flows (`OnesIdClient::builder().dpop(true)`) at the
//! stock provider, at both instances (default configuration, nonces
//! required): which key signs, device token, CIBA login and refresh bound,
//! and `authorize`'s headers accepted by `onesoidc-resource`.

use onesoidc_flows::core::DeviceTokenRequest;
use onesoidc_flows::{OnesIdClient, TokenSet, TokenTypeHint};
use onesoidc_interop::{CliIdentity, DeviceKey, ECC_P256, ECC_P384, Instance, RSA_2048, http};
use url::Url;

use crate::common::{
    JWT_RESOURCE, OrdersApi, approved_login, bounded, login_request, oauth_error, text,
};

/// `key`'s device on disk, registered with `instance`, and a client of it
/// with DPoP on (the key chosen as the flows choose it).
fn dpop_client(key: DeviceKey, instance: Instance) -> (OnesIdClient, CliIdentity) {
    let identity = CliIdentity::at(key, instance);
    let client = OnesIdClient::builder()
        .identity_paths(identity.paths())
        .http(http())
        .dpop(true)
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", key.dir));
    (client, identity)
}

/// The thumbprint of `client`'s DPoP key.
async fn thumbprint(client: &OnesIdClient) -> String {
    let key = client.dpop_key().await.expect("a DPoP key");
    key.expect("DPoP is on").thumbprint().to_string()
}

/// Checks that `tokens` are bound to `client`'s key.
async fn assert_bound(client: &OnesIdClient, tokens: &TokenSet) {
    let jkt = thumbprint(client).await;
    assert_eq!(tokens.token_type, "DPoP");
    assert_eq!(tokens.dpop_jkt.as_deref(), Some(jkt.as_str()));
}

/// Checks that the instance's nonce was remembered exactly when it gives them.
async fn assert_nonce_remembered(client: &OnesIdClient, instance: Instance) {
    let metadata = client.provider_metadata().await.expect("discovery");
    let token_endpoint = Url::parse(metadata.token_endpoint.as_str()).unwrap();
    let nonce = client.dpop_nonces().get(&token_endpoint);
    assert_eq!(
        nonce.is_some(),
        instance == Instance::NonceRequired,
        "{nonce:?}"
    );
}

async fn the_device_key_signs_when_the_provider_accepts_its_algorithm(instance: Instance) {
    // ES256 is in the provider's dpop_signing_alg_values_supported: the
    // P-256 device signs its own proofs, and no dpop.pem is made.
    let (client, identity) = dpop_client(ECC_P256, instance);
    let device_jkt = ECC_P256.signer().public_jwk().thumbprint().unwrap();
    assert_eq!(thumbprint(&client).await, device_jkt);
    assert!(!identity.paths().dpop_key().exists());
    let tokens = client.device_token().await.expect("device token");
    assert_bound(&client, &tokens).await;

    // ES384 and RS256 are not: a P-256 key is made beside the identity,
    // kept, and used again by the next client of the same identity.
    for key in [ECC_P384, RSA_2048] {
        let (client, identity) = dpop_client(key, instance);
        let jkt = thumbprint(&client).await;
        assert!(identity.paths().dpop_key().exists(), "{}", key.dir);
        let tokens = client.device_token().await.expect("device token");
        assert_bound(&client, &tokens).await;
        let again = OnesIdClient::builder()
            .identity_paths(identity.paths())
            .http(http())
            .dpop(true)
            .build()
            .unwrap();
        assert_eq!(
            thumbprint(&again).await,
            jkt,
            "{}: dpop.pem is reused",
            key.dir
        );
    }
}
at_both_instances!(the_device_key_signs_when_the_provider_accepts_its_algorithm);

async fn device_tokens_are_bound(instance: Instance) {
    let (client, _identity) = dpop_client(RSA_2048, instance);
    let options = DeviceTokenRequest::default().resource(JWT_RESOURCE);
    let tokens = client
        .device_token_with(&options)
        .await
        .expect("device token");
    assert_bound(&client, &tokens).await;
    let claims = onesoidc_interop::jwt_claims(text(&tokens.access_token));
    assert_eq!(claims["cnf"]["jkt"], thumbprint(&client).await, "{claims}");
    assert_nonce_remembered(&client, instance).await;

    // Opaque, introspected: a DPoP token.
    let tokens = client.device_token().await.expect("device token");
    assert_bound(&client, &tokens).await;
    let info = client
        .introspect(&tokens.access_token, Some(TokenTypeHint::AccessToken))
        .await
        .expect("introspection");
    assert!(info.active, "{info:?}");
    assert_eq!(info.token_type.as_deref(), Some("DPoP"));
}
at_both_instances!(device_tokens_are_bound);

async fn a_ciba_login_and_its_refreshes_are_bound(instance: Instance) {
    let (client, _identity) = dpop_client(ECC_P384, instance);
    let started = approved_login(&client, instance, &login_request("alice")).await;
    let login = bounded("CIBA approve", client.ciba_wait(&started))
        .await
        .expect("CIBA login");
    let first = login.tokens;
    assert_bound(&client, &first).await;
    assert!(first.refresh_token.is_some() && first.id_token.is_some());

    let second = client.refresh(&first).await.expect("refresh");
    assert_bound(&client, &second).await;
    let refresh_token =
        |t: &TokenSet| text(t.refresh_token.as_ref().expect("a refresh token")).to_string();
    assert_ne!(refresh_token(&second), refresh_token(&first), "rotated");
    let third = client.refresh(&second).await.expect("second refresh");
    assert_bound(&client, &third).await;
    let info = client
        .introspect(&third.access_token, Some(TokenTypeHint::AccessToken))
        .await
        .expect("introspection");
    assert!(
        info.active && info.token_type.as_deref() == Some("DPoP"),
        "{info:?}"
    );
    assert_nonce_remembered(&client, instance).await;

    // The spent refresh token stays spent.
    assert_eq!(oauth_error(client.refresh(&first).await), "invalid_grant");
}
at_both_instances!(a_ciba_login_and_its_refreshes_are_bound);

async fn authorize_headers_are_accepted_by_the_application_and_a_thief_is_refused(
    instance: Instance,
) {
    let (client, _identity) = dpop_client(ECC_P256, instance);
    let options = DeviceTokenRequest::default()
        .scope("read")
        .resource(JWT_RESOURCE);
    let tokens = client
        .device_token_with(&options)
        .await
        .expect("device token");
    let api = OrdersApi::new(instance).await;
    let url = OrdersApi::url();

    // Our headers, as `authorize` makes them: accepted.
    let mut headers = http::HeaderMap::new();
    let ours = client
        .authorize(&tokens, "GET", &url)
        .await
        .expect("headers");
    assert!(ours.dpop().is_some(), "a bound token gets a proof");
    ours.apply(&mut headers).unwrap();
    let claims = api.get(&headers).await.expect("accepted with our proof");
    assert_eq!(claims.cnf_jkt, tokens.dpop_jkt);

    // The token taken off the device, sent as Bearer or with a proof from
    // the thief's own key: refused. The thief's client cannot even make
    // headers for a token bound to our key.
    let token = text(&tokens.access_token);
    api.assert_refused_to_a_thief(token).await;
    let (thief, _thief_identity) = dpop_client(RSA_2048, instance);
    assert!(thief.authorize(&tokens, "GET", &url).await.is_err());
}
at_both_instances!(authorize_headers_are_accepted_by_the_application_and_a_thief_is_refused);
