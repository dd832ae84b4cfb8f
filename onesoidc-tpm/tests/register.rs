//! `register` with the key made inside the TPM (swtpm): the files are
//! px-device-identity's TPM identity (`TSS2 PRIVATE KEY`, `public.pem`,
//! `device.yml` with `key_security: tpm`), and the device then gets a
//! device token, a CIBA login and token manager refreshes (device and
//! user) from the dev IdP with that key.

mod support;

use std::time::Duration;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, RSA_PKCS1_2048_8192_SHA256,
    UnparsedPublicKey, VerificationAlgorithm,
};
use onesoidc_core::{CibaRequest, ExposeSecret, KeySecurity, KeyType, TokenSet, is_tpm_key_pem};
use onesoidc_devidp::{DevIdp, DevIdpConfig};
use onesoidc_flows::{DeviceIdentity, DeviceRegistration, OnesIdClient, register_device};
use onesoidc_fs::IdentityPaths;
use onesoidc_tokens::{TokenManager, device_refresh, user_refresh};
use support::Swtpm;

#[tokio::test]
async fn a_device_registered_with_its_key_in_the_tpm_gets_tokens_and_logs_people_in() {
    let Some(tpm) = Swtpm::start() else { return };
    let idp = DevIdp::start(DevIdpConfig {
        ciba_interval: Duration::from_secs(1),
        ..DevIdpConfig::default()
    })
    .await
    .unwrap();
    let cases: [(KeyType, &'static dyn VerificationAlgorithm); 3] = [
        (KeyType::Rsa2048, &RSA_PKCS1_2048_8192_SHA256),
        (KeyType::EccP256, &ECDSA_P256_SHA256_FIXED),
        (KeyType::EccP384, &ECDSA_P384_SHA384_FIXED),
    ];
    for (key_type, verify_alg) in cases {
        let dir = tempfile::tempdir().unwrap();
        let paths = IdentityPaths::new(dir.path().join("etc/device.yml"), dir.path().join("keys"));
        let registration = DeviceRegistration::new("TPM device", "Bangkok", "SERVER")
            .provider(&idp.host(), "onesid1.com")
            .paths(paths.clone())
            .key_type(key_type)
            .key_security(KeySecurity::Tpm)
            .tcti(tpm.tcti())
            .poll_interval(Duration::from_millis(10));
        let approver = {
            let idp = idp.clone();
            tokio::spawn(async move {
                let code = idp.next_registration().await;
                idp.approve_registration(&code).unwrap();
            })
        };
        let registered = register_device(idp.in_process_client(), &registration, |_| {})
            .await
            .unwrap_or_else(|e| panic!("{key_type}: {e}"));
        approver.await.unwrap();
        assert_eq!(registered.config.key_security, KeySecurity::Tpm);
        assert!(
            registered.signer.blocks(),
            "the registered identity signs in the TPM"
        );
        drop(registered);

        // The files: a TPM key file, public.pem and device.yml saying tpm.
        let private = std::fs::read(paths.private_key()).unwrap();
        assert!(
            is_tpm_key_pem(&private),
            "{key_type}: private.pem is a TSS2 PRIVATE KEY"
        );
        let yaml = std::fs::read_to_string(&paths.config).unwrap();
        assert!(yaml.contains("key_security: tpm"), "{yaml}");

        let identity = DeviceIdentity::load_with_tcti(&paths, &tpm.tcti()).unwrap();
        assert_eq!(identity.config.key_type, key_type);
        let signature = identity.signer.sign(b"header.claims").unwrap();
        let public = pem::parse(std::fs::read(paths.public_key()).unwrap()).unwrap();
        UnparsedPublicKey::new(verify_alg, public.contents())
            .verify(b"header.claims", &signature)
            .unwrap_or_else(|_| panic!("{key_type}: public.pem verifies the TPM's signature"));

        let client = OnesIdClient::new(identity, idp.in_process_client()).unwrap();
        client
            .device_token()
            .await
            .unwrap_or_else(|e| panic!("{key_type}: device token: {e}"));
        let approver = {
            let idp = idp.clone();
            tokio::spawn(async move {
                let request = idp.next_ciba_request().await;
                idp.approve_ciba(&request.auth_req_id).unwrap();
            })
        };
        let login = client
            .ciba(&CibaRequest::for_username("alice"))
            .await
            .unwrap_or_else(|e| panic!("{key_type}: CIBA: {e}"));
        approver.await.unwrap();
        assert_eq!(login.claims.expect("ID token claims").sub, "alice");

        managers_refresh_with_the_tpm_key(&idp, &client, login.tokens, key_type).await;
    }
}

/// Token managers over the TPM identity: the device manager fetches and
/// force-refreshes with client credentials, the user manager refreshes the
/// CIBA login with the refresh token grant; every request is authenticated
/// by a client assertion the TPM signs, which the dev IdP verifies.
async fn managers_refresh_with_the_tpm_key(
    idp: &DevIdp,
    client: &OnesIdClient,
    login: TokenSet,
    key_type: KeyType,
) {
    let before = idp.stats().token_requests;
    let device = TokenManager::new("tpm-device", device_refresh(client.clone()));
    let first = device
        .tokens()
        .await
        .unwrap_or_else(|e| panic!("{key_type}: device manager: {e}"));
    let refreshed = device
        .force_refresh()
        .await
        .unwrap_or_else(|e| panic!("{key_type}: device manager refresh: {e}"));
    assert_ne!(
        first.access_token.expose_secret(),
        refreshed.access_token.expose_secret(),
        "{key_type}: a new device token"
    );

    let user = TokenManager::builder("tpm-user", user_refresh(client.clone()))
        .initial_tokens(login.clone())
        .build();
    let refreshed = user
        .force_refresh()
        .await
        .unwrap_or_else(|e| panic!("{key_type}: user manager refresh: {e}"));
    assert_ne!(
        login.access_token.expose_secret(),
        refreshed.access_token.expose_secret(),
        "{key_type}: a new user token"
    );
    assert!(refreshed.refresh_token.is_some(), "{key_type}");

    let after = idp.stats().token_requests;
    assert_eq!(
        after.client_credentials - before.client_credentials,
        2,
        "{key_type}"
    );
    assert_eq!(after.refresh_token - before.refresh_token, 1, "{key_type}");
    device.shutdown().await;
    user.shutdown().await;
}

#[tokio::test]
async fn a_registration_whose_tpm_is_missing_fails_before_anything_is_sent() {
    let idp = DevIdp::start(DevIdpConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = IdentityPaths::new(dir.path().join("device.yml"), dir.path().join("keys"));
    let registration = DeviceRegistration::new("TPM device", "Bangkok", "SERVER")
        .provider(&idp.host(), "onesid1.com")
        .paths(paths.clone())
        .key_security(KeySecurity::Tpm)
        .tcti("device:/nonexistent/tpmrm0".parse().unwrap());
    let err = register_device(idp.in_process_client(), &registration, |_| {})
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("device:/nonexistent/tpmrm0"), "{text}");
    assert!(!paths.config.exists() && !paths.private_key().exists());
}
