//! private_key_jwt with a key that lives in a TPM (issue 25), at the stock
//! provider: a key made inside a swtpm as `onesoidc register --security
//! tpm` makes it, the device registered with the provider (RFC 7591),
//! `DeviceIdentity::load` picking the TPM signer, device tokens obtained;
//! and, with DPoP on, a P-256 TPM key signing the proofs itself.
//!
//! Built with the crate's `tpm` feature (`cargo xtask interop` turns it on
//! when the TSS libraries are installed, else says it leaves these out);
//! without swtpm each test prints a notice and passes, except under CI.

#[path = "../../../onesoidc-tpm/tests/support/mod.rs"]
mod swtpm;

use onesoidc_flows::core::{DeviceConfig, KeySecurity, KeyType, PublicJwk};
use onesoidc_flows::{DeviceIdentity, IdentityPaths, OnesIdClient, TokenTypeHint};
use onesoidc_http::HttpClient;
use onesoidc_interop::{Instance, REGISTRATION_TOKEN, http, issuer};
use onesoidc_tpm::TpmSigner;
use swtpm::Swtpm;

/// Registers a private_key_jwt client for `public_jwk` with the default
/// instance (RFC 7591) and returns its client id.
async fn register_client(public_jwk: &PublicJwk, alg: &str) -> String {
    let mut jwk = serde_json::to_value(public_jwk).expect("JWK");
    jwk["alg"] = alg.into();
    jwk["use"] = "sig".into();
    let body = serde_json::json!({
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_signing_alg": alg,
        "jwks": { "keys": [jwk] },
        "grant_types": ["client_credentials"],
        "response_types": [],
        "redirect_uris": [],
    });
    let endpoint = format!("{}/reg", issuer()).into();
    let request =
        onesoidc_flows::core::request::post_json(&endpoint, Some(REGISTRATION_TOKEN), &body)
            .expect("request");
    let response = http().execute(request).await.expect("registration");
    let answer: serde_json::Value = serde_json::from_slice(response.body()).unwrap_or_default();
    assert_eq!(response.status().as_u16(), 201, "{answer}");
    answer["client_id"].as_str().expect("client_id").to_string()
}

/// A device identity whose `key_type` key is created in `tpm`, registered
/// with the provider, on disk in `dir` as `register --security tpm` leaves
/// it (`private.pem` a `TSS2 PRIVATE KEY`, `device.yml` with
/// `key_security: tpm`).
/// Returns its paths and public key.
async fn tpm_device(
    tpm: &Swtpm,
    dir: &std::path::Path,
    key_type: KeyType,
) -> (IdentityPaths, PublicJwk) {
    let paths = IdentityPaths::new(dir.join("device.yml"), dir);
    let key_path = paths.private_key();
    let (tcti, path) = (tpm.tcti(), key_path.clone());
    let (pem, public_jwk) = tokio::task::spawn_blocking(move || {
        let deadline = TpmSigner::DEFAULT_DEADLINE;
        let file = TpmSigner::create_key(key_type, &path, &tcti, deadline).expect("TPM key");
        let pem = file.to_pem().expect("PEM");
        let signer = TpmSigner::from_key_file(file, &tcti, deadline).expect("loaded");
        (pem, signer.public_jwk())
    })
    .await
    .expect("key creation ran");
    std::fs::write(&key_path, pem).expect("private.pem");
    let alg = key_type.jws_algorithm().as_str();
    let client_id = register_client(&public_jwk, alg).await;
    let config = DeviceConfig {
        id: format!("tpm-{client_id}"),
        client_id: Some(client_id.into()),
        host: Some(Instance::Default.host()),
        domain: Some("interop.test".into()),
        key_type,
        key_security: KeySecurity::Tpm,
        is_managed: true,
        title: Some("TPM device".into()),
        location: None,
        role: Some("server".into()),
        config_version: Some("0.0.3".into()),
        initiated_on: None,
        extra: Default::default(),
        path: paths.config.clone(),
    };
    std::fs::write(&paths.config, config.to_yaml_string().unwrap()).expect("device.yml");
    (paths, public_jwk)
}

/// A TPM device of `key_type` gets device tokens with no subprocess.
async fn a_tpm_device_gets_device_tokens(key_type: KeyType) {
    let Some(tpm) = Swtpm::start() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let (paths, _) = tpm_device(&tpm, dir.path(), key_type).await;
    let identity = DeviceIdentity::load_with_tcti(&paths, &tpm.tcti())
        .unwrap_or_else(|e| panic!("{key_type}: {e}"));
    let signer = format!("{:?}", identity.signer);
    assert!(signer.starts_with("TpmSigner"), "{key_type}: {signer}");
    let client_id = identity.config.client_id.clone().expect("client id");
    let client = OnesIdClient::new(identity, http()).unwrap();
    for _ in 0..2 {
        let tokens = client
            .device_token()
            .await
            .unwrap_or_else(|e| panic!("{key_type}: device token refused: {e}"));
        let info = client
            .introspect(&tokens.access_token, Some(TokenTypeHint::AccessToken))
            .await
            .expect("introspection");
        assert!(info.active, "{info:?}");
        assert_eq!(info.client_id.as_ref(), Some(&client_id));
    }
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn a_tpm_device_with_rsa_2048_gets_device_tokens() {
    a_tpm_device_gets_device_tokens(KeyType::Rsa2048).await;
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn a_tpm_device_with_p256_gets_device_tokens() {
    a_tpm_device_gets_device_tokens(KeyType::EccP256).await;
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn a_tpm_device_with_p384_gets_device_tokens() {
    a_tpm_device_gets_device_tokens(KeyType::EccP384).await;
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn a_p256_tpm_key_signs_the_dpop_proofs_the_provider_binds_tokens_to() {
    let Some(tpm) = Swtpm::start() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let (paths, public_jwk) = tpm_device(&tpm, dir.path(), KeyType::EccP256).await;
    let identity = DeviceIdentity::load_with_tcti(&paths, &tpm.tcti()).unwrap();
    let client = OnesIdClient::builder()
        .identity(identity)
        .identity_paths(paths.clone())
        .http(http())
        .dpop(true)
        .build()
        .unwrap();
    // ES256 is in the provider's dpop_signing_alg_values_supported: the
    // device's own key, in the TPM, signs the proofs; no dpop.pem.
    let key = client.dpop_key().await.unwrap().expect("DPoP is on");
    assert_eq!(key.thumbprint(), public_jwk.thumbprint().unwrap());
    assert!(format!("{:?}", key.signer()).starts_with("TpmSigner"));
    assert!(!paths.dpop_key().exists());
    let tokens = client.device_token().await.expect("device token");
    assert_eq!(tokens.token_type, "DPoP");
    assert_eq!(tokens.dpop_jkt.as_deref(), Some(key.thumbprint()));
}
