//! Token managers against the local provider over real HTTP.

use std::time::{Duration, SystemTime};

use onesoidc_core::{ExposeSecret, KeyType, SecretString, TokenSet};
use onesoidc_devidp::{DevIdp, DevIdpConfig};
use onesoidc_flows::{OnesIdClient, StreamExt};
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
        dpop_jkt: None,
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

/// A provider (CIBA polled every second), a device provisioned for it
/// (in the returned directory), its client, and the tokens of alice's
/// CIBA login (whose ID token was validated: the provider's keys are
/// cached).
async fn alice_logged_in() -> (
    DevIdp,
    tempfile::TempDir,
    onesoidc_flows::IdentityPaths,
    OnesIdClient,
    TokenSet,
) {
    let idp = DevIdp::start(DevIdpConfig {
        ciba_interval: Duration::from_secs(1),
        ..DevIdpConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp.provision_device(dir.path(), KeyType::EccP256).unwrap();
    let client = OnesIdClient::from_paths(&paths).unwrap();
    idp.set_auto_approve(Some(onesoidc_devidp::AutoApprove::approve_after(
        Duration::from_millis(10),
    )));
    let login = client
        .ciba(&onesoidc_flows::CibaRequest::for_username("alice"))
        .await
        .unwrap();
    assert!(login.claims.is_some());
    (idp, dir, paths, client, login.tokens)
}

/// The `kid` in the header of a JWT.
fn kid_of(jwt: &SecretString) -> String {
    use base64::Engine;
    let header = jwt.expose_secret().split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_string()
}

/// The dev IdP rotates its signing key seconds after the login fetched its
/// keys (so the once-a-minute refetch for unknown `kid`s would refuse the
/// next ID token): the user's refresh fetches the keys again, takes the new
/// ID token, and the rotated refresh token keeps working.
#[tokio::test]
async fn a_signing_key_rotated_within_the_minute_keeps_user_refreshes_working() {
    let (idp, _dir, _, client, tokens) = alice_logged_in().await;
    let manager = TokenManager::builder("ciba_user", onesoidc_tokens::user_refresh(client))
        .initial_tokens(tokens)
        .build();
    let mut events = manager.events();

    let new_kid = idp.rotate_signing_key().await.unwrap();
    let refreshed = manager.force_refresh().await.unwrap();
    assert_eq!(kid_of(refreshed.id_token.as_ref().unwrap()), new_kid);
    let event = events.next().await.unwrap();
    assert!(
        matches!(event, onesoidc_tokens::TokenEvent::Refreshed { .. }),
        "{event}"
    );
    // The refresh token the provider rotated to is the one the manager holds.
    manager.force_refresh().await.unwrap();
    assert_eq!(idp.stats().token_requests.refresh_token, 2);
}

/// A device clock 2 min ahead: the provider refuses the client assertion
/// (issued in the future), and the error and a `DeviceClockOff` event say
/// the device clock is ahead, from the provider's `Date` header. Nothing
/// was spent: with the clock right, the same refresh token works.
#[tokio::test]
async fn a_device_clock_two_minutes_ahead_is_named_in_the_error_and_an_event() {
    let (_idp, _dir, paths, client, tokens) = alice_logged_in().await;
    let ahead = OnesIdClient::builder()
        .identity_paths(paths.clone())
        .clock(|| SystemTime::now() + Duration::from_secs(120))
        .build()
        .unwrap();
    let manager = TokenManager::builder("ciba_user", onesoidc_tokens::user_refresh(ahead))
        .initial_tokens(tokens.clone())
        .build();
    let mut events = manager.events();
    let error = manager.force_refresh().await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("invalid_client") && message.contains("s ahead of the provider's"),
        "{message}"
    );
    let offset = match events.next().await.unwrap() {
        onesoidc_tokens::TokenEvent::DeviceClockOff { offset } => offset,
        other => panic!("expected DeviceClockOff first, got {other}"),
    };
    assert!(
        (119..=121).contains(&offset.device_ahead_secs()),
        "{offset}"
    );
    let event = events.next().await.unwrap();
    assert!(
        matches!(event, onesoidc_tokens::TokenEvent::RefreshFailed { .. }),
        "{event}"
    );

    let right = TokenManager::builder("ciba_user", onesoidc_tokens::user_refresh(client))
        .initial_tokens(tokens)
        .build();
    right.force_refresh().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_manager_of_a_dpop_client_hands_out_bound_tokens_it_can_prove() {
    let idp = DevIdp::start(DevIdpConfig {
        dpop_nonce: true,
        ..DevIdpConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp.provision_device(dir.path(), KeyType::EccP256).unwrap();
    let client = OnesIdClient::builder()
        .identity_paths(paths)
        .dpop(true)
        .build()
        .unwrap();
    let device = onesoidc_tokens::device_manager(&client);
    let token = device.access_token().await.unwrap();
    let jkt = client
        .dpop_key()
        .await
        .unwrap()
        .unwrap()
        .thumbprint()
        .to_string();
    assert_eq!(token.token_type(), "DPoP");
    assert_eq!(token.tokens().dpop_jkt.as_deref(), Some(jkt.as_str()));
    assert_eq!(idp.stats().dpop_nonce_challenges, 1);

    let url = url::Url::parse("https://app.example/api").unwrap();
    let headers = token.authorize("POST", &url).await.unwrap();
    assert_eq!(
        headers.authorization().expose_secret(),
        format!("DPoP {}", token.expose_secret())
    );
    let expect = onesoidc_core::DpopProofExpectations::new("POST", &url)
        .access_token(token.expose_secret(), &jkt);
    onesoidc_core::verify_dpop_proof(headers.dpop().unwrap(), &expect, SystemTime::now()).unwrap();

    // The client's own requests use the lent, bound token with a proof.
    assert!(!client.applications().await.unwrap().is_empty());
    assert_eq!(
        idp.stats().token_requests.client_credentials,
        2,
        "one token, one nonce retry"
    );
}
