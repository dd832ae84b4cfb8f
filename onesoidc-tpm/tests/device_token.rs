//! A device whose key lives in a TPM (swtpm), made by tpm2-openssl and
//! registered with the dev IdP: `DeviceIdentity::load` picks the TPM
//! signer by itself and the device gets tokens, with no subprocess.

mod support;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onesoidc_core::{DeviceConfig, ExposeSecret, KeySecurity, KeyType};
use onesoidc_devidp::{DevIdp, DevIdpConfig};
use onesoidc_flows::{DeviceIdentity, OnesIdClient};
use onesoidc_fs::IdentityPaths;
use onesoidc_tpm::{Tcti, TpmSigner};
use support::Swtpm;

/// Writes a registered TPM identity (the tpm2-openssl key at `key`) into
/// `dir`, as px-device-identity INIT leaves one.
fn tpm_identity(
    idp: &DevIdp,
    dir: &std::path::Path,
    key: &std::path::Path,
    tcti: &Tcti,
    key_type: KeyType,
) -> IdentityPaths {
    let paths = IdentityPaths::new(dir.join("device.yml"), dir);
    let pem = std::fs::read(key).unwrap();
    std::fs::write(paths.private_key(), &pem).unwrap();
    let public_jwk = TpmSigner::open(&pem, key, tcti).unwrap().public_jwk();
    let ids = idp.register_device(&public_jwk);
    let config = DeviceConfig {
        id: ids.device_id,
        client_id: Some(ids.client_id.into()),
        host: Some(idp.host()),
        domain: Some("devidp.local".into()),
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
    std::fs::write(&paths.config, config.to_yaml_string().unwrap()).unwrap();
    paths
}

/// `openssl genpkey` arguments for each key type a TPM device has.
fn key_cases() -> [(&'static [&'static str], KeyType); 3] {
    [
        (&["-algorithm", "RSA"], KeyType::Rsa2048),
        (
            &["-algorithm", "EC", "-pkeyopt", "group:P-256"],
            KeyType::EccP256,
        ),
        (
            &["-algorithm", "EC", "-pkeyopt", "group:P-384"],
            KeyType::EccP384,
        ),
    ]
}

#[tokio::test]
async fn identities_with_tpm2_openssl_keys_get_device_tokens_from_the_dev_idp() {
    let Some(tpm) = Swtpm::start() else { return };
    let idp = DevIdp::start(DevIdpConfig::default()).await.unwrap();
    for (args, key_type) in key_cases() {
        let key = tpm.openssl_genpkey(
            args,
            &format!("{}.pem", key_type.as_str().replace(':', "-")),
        );
        let dir = tempfile::tempdir().unwrap();
        let paths = tpm_identity(&idp, dir.path(), &key, &tpm.tcti(), key_type);

        let identity = DeviceIdentity::load_with_tcti(&paths, &tpm.tcti()).unwrap();
        assert!(
            format!("{:?}", identity.signer).starts_with("TpmSigner"),
            "{key_type}: the TPM signer, not px-device-identity: {:?}",
            identity.signer
        );
        assert!(identity.signer.blocks());
        assert_eq!(identity.signer.algorithm(), key_type.jws_algorithm());
        let client = OnesIdClient::new(identity, idp.in_process_client()).unwrap();
        for _ in 0..2 {
            let tokens = client
                .device_token()
                .await
                .unwrap_or_else(|e| panic!("{key_type}: {e}"));
            assert!(!tokens.access_token.expose_secret().is_empty());
        }
    }
}

#[tokio::test]
async fn a_tpm_identity_whose_key_type_differs_from_device_yml_is_refused() {
    let Some(tpm) = Swtpm::start() else { return };
    let idp = DevIdp::start(DevIdpConfig::default()).await.unwrap();
    let key = tpm.openssl_genpkey(&["-algorithm", "EC", "-pkeyopt", "group:P-256"], "k.pem");
    let dir = tempfile::tempdir().unwrap();
    let paths = tpm_identity(&idp, dir.path(), &key, &tpm.tcti(), KeyType::EccP384);
    let err = DeviceIdentity::load_with_tcti(&paths, &tpm.tcti()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("ECC:p256") && text.contains("ECC:p384"),
        "{text}"
    );
}

#[test]
fn a_broken_tpm_key_file_names_the_file_and_the_tpm() {
    let dir = tempfile::tempdir().unwrap();
    let paths = IdentityPaths::new(dir.path().join("device.yml"), dir.path());
    std::fs::write(
        &paths.config,
        "id: d1\nclient_id: c1\nhost: http://127.0.0.1:1\nkey_type: ECC:p256\nkey_security: tpm\n",
    )
    .unwrap();
    std::fs::write(
        paths.private_key(),
        "-----BEGIN TSS2 PRIVATE KEY-----\nMAMCAQE=\n-----END TSS2 PRIVATE KEY-----\n",
    )
    .unwrap();
    let tcti: Tcti = "swtpm:host=127.0.0.1,port=1".parse().unwrap();
    let err = DeviceIdentity::load_with_tcti(&paths, &tcti).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("private.pem"), "{text}");
    assert!(
        text.contains("TPM at `swtpm:host=127.0.0.1,port=1`"),
        "{text}"
    );
    assert!(text.contains("not a usable TSS2 PRIVATE KEY"), "{text}");
}

/// DPoP with a TPM device (issue 26): the flows sign every proof with the
/// device key when the provider lists its algorithm, so the proofs come
/// from the TPM and the token is bound to the TPM key (`cnf.jkt` is its
/// thumbprint), for ES256, ES384 and RS256; the dev IdP requires DPoP.
#[tokio::test]
async fn a_tpm_device_gets_device_tokens_bound_to_its_tpm_key() {
    let Some(tpm) = Swtpm::start() else { return };
    let idp = DevIdp::start(DevIdpConfig {
        require_dpop: true,
        ..DevIdpConfig::default()
    })
    .await
    .unwrap();
    for (args, key_type) in key_cases() {
        let key = tpm.openssl_genpkey(
            args,
            &format!("dpop-{}.pem", key_type.as_str().replace(':', "-")),
        );
        let dir = tempfile::tempdir().unwrap();
        let paths = tpm_identity(&idp, dir.path(), &key, &tpm.tcti(), key_type);
        let identity = DeviceIdentity::load_with_tcti(&paths, &tpm.tcti()).unwrap();
        let tpm_jkt = identity.public_jwk.as_ref().unwrap().thumbprint().unwrap();
        let client = OnesIdClient::builder()
            .identity(identity)
            .http(idp.in_process_client())
            .dpop(true)
            .build()
            .unwrap();
        let tokens = client
            .device_token()
            .await
            .unwrap_or_else(|e| panic!("{key_type}: {e}"));
        assert_eq!(tokens.token_type, "DPoP", "{key_type}");
        assert_eq!(
            tokens.dpop_jkt.as_deref(),
            Some(tpm_jkt.as_str()),
            "{key_type}"
        );
        let claims = tokens
            .access_token
            .expose_secret()
            .split('.')
            .nth(1)
            .map(|part| URL_SAFE_NO_PAD.decode(part).unwrap())
            .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap();
        assert_eq!(claims["cnf"]["jkt"], tpm_jkt.as_str(), "{key_type}");
    }
}
