//! The hyper backend against the local provider, over real loopback HTTP:
//! a device token, one through a token manager (onesoidc-tokens without
//! its default features), and a CIBA login.

use std::time::Duration;

use onesoidc_devidp::{AutoApprove, DevIdp, DevIdpConfig};
use onesoidc_example_hyper_backend::HyperClient;
use onesoidc_flows::core::{ExposeSecret, KeyType};
use onesoidc_flows::{CibaRequest, OnesIdClient};
use onesoidc_tokens::{TokenManager, refresh_fn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_token_manager_and_ciba_through_hyper() {
    let idp = DevIdp::start(DevIdpConfig {
        ciba_interval: Duration::from_secs(1),
        auto_approve: Some(AutoApprove::approve_after(Duration::from_millis(200))),
        ..DevIdpConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp.provision_device(dir.path(), KeyType::EccP256).unwrap();
    let client = OnesIdClient::builder()
        .identity_paths(paths)
        .http(HyperClient::new().unwrap())
        .build()
        .unwrap();

    let tokens = client.device_token().await.unwrap();
    assert!(!tokens.access_token.expose_secret().is_empty());

    let for_manager = client.clone();
    let manager = TokenManager::new(
        "device",
        refresh_fn(move |_current| {
            let client = for_manager.clone();
            async move { client.device_token().await }
        }),
    );
    let managed = manager.access_token().await.unwrap();
    assert_ne!(managed.expose_secret(), tokens.access_token.expose_secret());

    let login = client
        .ciba(&CibaRequest::for_username("alice"))
        .await
        .unwrap();
    assert_eq!(login.claims.unwrap().sub, "alice");
    let stats = idp.stats();
    assert_eq!(stats.token_requests.client_credentials, 2);
    assert!(stats.token_requests.ciba >= 1);
    idp.shutdown().await;
}
