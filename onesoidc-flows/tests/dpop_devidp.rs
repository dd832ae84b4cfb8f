//! DPoP against the dev IdP in process (its token endpoint checks proofs as
//! RFC 9449 §4.3 and, with `dpop_nonce`, requires its rotating nonces).

mod support;

use onesoidc_core::{CibaRequest, DpopKey, ExposeSecret, KeyType};
use onesoidc_devidp::{DevIdp, DevIdpConfig};
use onesoidc_flows::OnesIdClient;
use support::config;

struct World {
    idp: DevIdp,
    client: OnesIdClient,
    _dir: tempfile::TempDir,
}

async fn world(dpop_nonce: bool) -> World {
    let idp = DevIdp::start(DevIdpConfig {
        dpop_nonce,
        ..config()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp.provision_device(dir.path(), KeyType::EccP256).unwrap();
    let client = OnesIdClient::builder()
        .identity_paths(paths)
        .http(idp.in_process_client())
        .dpop(true)
        .build()
        .unwrap();
    World {
        idp,
        client,
        _dir: dir,
    }
}

/// A CIBA login approved at once.
async fn login(w: &World) -> onesoidc_flows::TokenSet {
    let idp = w.idp.clone();
    tokio::spawn(async move {
        let request = idp.next_ciba_request().await;
        idp.approve_ciba(&request.auth_req_id).unwrap();
    });
    let request = CibaRequest::for_username("alice").binding_message("Kiosk 7");
    w.client.ciba(&request).await.unwrap().tokens
}

async fn jkt(client: &OnesIdClient) -> String {
    client
        .dpop_key()
        .await
        .unwrap()
        .unwrap()
        .thumbprint()
        .to_string()
}

#[tokio::test(start_paused = true)]
async fn all_three_grants_come_back_bound_to_the_device_key() {
    let w = world(false).await;
    let jkt = jkt(&w.client).await;
    let device_jkt = w
        .client
        .identity()
        .public_jwk
        .as_ref()
        .unwrap()
        .thumbprint()
        .unwrap();
    assert_eq!(
        jkt, device_jkt,
        "the dev IdP accepts ES256: the device key signs"
    );

    let device = w.client.device_token().await.unwrap();
    let user = login(&w).await;
    let refreshed = w.client.refresh(&user).await.unwrap();
    for tokens in [&device, &user, &refreshed] {
        assert_eq!(tokens.token_type, "DPoP");
        assert_eq!(tokens.dpop_jkt.as_deref(), Some(jkt.as_str()));
    }
    assert_eq!(w.idp.stats().dpop_bound_tokens_issued, 3);

    // The provider's own routes take the bound device token with a proof.
    let apps = w.client.applications().await.unwrap();
    assert!(!apps.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_required_nonce_costs_one_retry_then_is_reused_until_it_rotates() {
    let w = world(true).await;
    let requests = |idp: &DevIdp| idp.stats().token_requests.client_credentials;
    let challenges = |idp: &DevIdp| idp.stats().dpop_nonce_challenges;

    w.client.device_token().await.unwrap();
    assert_eq!(
        (requests(&w.idp), challenges(&w.idp)),
        (2, 1),
        "challenged once, retried once"
    );
    w.client.device_token().await.unwrap();
    w.client.device_token().await.unwrap();
    assert_eq!(
        (requests(&w.idp), challenges(&w.idp)),
        (4, 1),
        "the nonce is reused"
    );

    // A nonce lives until the second rotation after it.
    w.idp.rotate_dpop_nonce();
    w.idp.rotate_dpop_nonce();
    let bound = w.client.device_token().await.unwrap();
    assert_eq!(
        (requests(&w.idp), challenges(&w.idp)),
        (6, 2),
        "a stale nonce: one more retry"
    );
    assert_eq!(bound.token_type, "DPoP");
}

#[tokio::test(start_paused = true)]
async fn a_stale_nonce_from_before_is_replaced_by_the_one_given() {
    let w = world(true).await;
    let token_url = url::Url::parse(&w.idp.token_endpoint()).unwrap();
    w.client.dpop_nonces().set(&token_url, "stale-nonce");
    w.client.device_token().await.unwrap();
    assert_eq!(w.idp.stats().dpop_nonce_challenges, 1);
    assert_ne!(
        w.client.dpop_nonces().get(&token_url).as_deref(),
        Some("stale-nonce")
    );
}

#[tokio::test(start_paused = true)]
async fn a_refresh_challenged_for_a_nonce_never_spends_its_refresh_token_twice() {
    let w = world(true).await;
    let mut tokens = login(&w).await;
    for _ in 0..3 {
        // Each refresh starts with a stale nonce: challenged, then retried.
        w.idp.rotate_dpop_nonce();
        w.idp.rotate_dpop_nonce();
        let before = w.idp.stats().dpop_nonce_challenges;
        tokens = w.client.refresh(&tokens).await.unwrap();
        assert_eq!(w.idp.stats().dpop_nonce_challenges, before + 1);
        assert_eq!(tokens.token_type, "DPoP");
    }
    let stats = w.idp.stats();
    assert_eq!(
        stats.most_uses_of_a_refresh_token(),
        1,
        "{:?}",
        stats.refresh_token_uses
    );
    assert_eq!(stats.token_requests.refresh_token, 6);
}

#[tokio::test(start_paused = true)]
async fn a_token_bound_to_the_device_key_is_no_use_to_another_key() {
    let w = world(false).await;
    let device = w.client.device_token().await.unwrap();
    let thief = OnesIdClient::builder()
        .identity(w.client.identity().clone())
        .http(w.idp.in_process_client())
        .dpop_key(DpopKey::generate().unwrap())
        .build()
        .unwrap();
    let url = url::Url::parse("https://app.example/api").unwrap();
    let error = thief.authorize(&device, "GET", &url).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains(device.dpop_jkt.as_deref().unwrap()),
        "{error}"
    );
    assert!(
        !error
            .to_string()
            .contains(device.access_token.expose_secret())
    );
}
