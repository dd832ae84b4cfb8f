//! Token managers against the local provider over real HTTP.

use std::time::{Duration, SystemTime};

use onesoidc_core::{ExposeSecret, KeyType, SecretString, TokenSet};
use onesoidc_devidp::{DevIdp, DevIdpConfig};
use onesoidc_flows::OnesIdClient;
use onesoidc_tokens::{TokenManager, device_refresh};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_callers_on_an_expired_token_cause_one_token_request() {
    let idp = DevIdp::start(DevIdpConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp.provision_device(dir.path(), KeyType::EccP256).unwrap();
    let client = OnesIdClient::from_paths(&paths).unwrap();
    let expired = TokenSet {
        access_token: SecretString::from("stale"),
        token_type: "Bearer".into(),
        expires_at: Some(SystemTime::now() - Duration::from_secs(1)),
        refresh_token: None,
        id_token: None,
        scope: None,
    };
    let manager = TokenManager::builder("device", device_refresh(client.clone()))
        .initial_tokens(expired)
        .build();
    let before = idp.stats().token_requests.client_credentials;
    let callers: Vec<_> = (0..1000)
        .map(|_| {
            let manager = manager.clone();
            tokio::spawn(async move {
                manager
                    .access_token()
                    .await
                    .map(|t| t.expose_secret().to_string())
            })
        })
        .collect();
    let mut tokens = std::collections::HashSet::new();
    for caller in callers {
        tokens.insert(caller.await.unwrap().unwrap());
    }
    assert_eq!(
        idp.stats().token_requests.client_credentials - before,
        1,
        "exactly one token request"
    );
    assert_eq!(tokens.len(), 1, "every caller got that request's token");
    assert!(!tokens.contains("stale"), "never the expired token");
    let info = client
        .introspect(&tokens.iter().next().unwrap().as_str().into(), None)
        .await
        .unwrap();
    assert!(info.active);
}

/// The newcomer's fourth step (README): a registry with the device's
/// manager; a hundred callers and the client's own bearer requests share
/// one token request.
#[tokio::test]
async fn a_registry_with_a_device_manager_and_a_hundred_callers() {
    let idp = DevIdp::start(DevIdpConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp.provision_device(dir.path(), KeyType::EccP256).unwrap();
    let client = OnesIdClient::from_paths(&paths).unwrap();
    let registry = onesoidc_tokens::TokenManagerRegistry::new();
    let device = registry
        .insert(onesoidc_tokens::device_manager(&client))
        .unwrap();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let device = device.clone();
        callers.spawn(async move { device.access_token().await });
    }
    while let Some(token) = callers.join_next().await {
        assert!(
            !token
                .expect("the task ran")
                .unwrap()
                .expose_secret()
                .is_empty()
        );
    }
    // The QR session is created with the manager's token: still one request.
    client.qr_create().await.unwrap();
    assert_eq!(idp.stats().token_requests.client_credentials, 1);
    registry.shutdown().await;
}
