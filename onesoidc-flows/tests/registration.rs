//! Device registration against the local provider (paused clock, in process).

mod support;

use std::time::Duration;

use onesoidc_core::{ConfigError, Error, KeyType};
use onesoidc_devidp::DevIdp;
use onesoidc_flows::{
    DeviceIdentity, DeviceRegistration, IdentityPaths, OnesIdClient, RegistrationProgress,
    create_unmanaged_identity, register_device,
};

fn registration(idp: &DevIdp, dir: &std::path::Path) -> DeviceRegistration {
    DeviceRegistration::new("ServerName", "Bangkok", "SERVER")
        .provider(&idp.host(), "onesid1.com")
        .paths(IdentityPaths::new(
            dir.join("etc/device.yml"),
            dir.join("keys"),
        ))
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(start_paused = true)]
async fn approved_registration_writes_a_working_identity() {
    let idp = DevIdp::start(support::config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let r = registration(&idp, dir.path()).key_type(KeyType::EccP521);
    let paths = r.paths.clone();
    let approver = {
        let idp = idp.clone();
        tokio::spawn(async move {
            let code = idp.next_registration().await;
            tokio::time::sleep(Duration::from_secs(25)).await;
            idp.approve_registration(&code).unwrap();
            code
        })
    };
    let mut codes = Vec::new();
    let identity = register_device(idp.in_process_client(), &r, |p| {
        if let RegistrationProgress::Submitted {
            verification_code, ..
        } = p
        {
            codes.push(verification_code);
        }
    })
    .await
    .unwrap();
    assert_eq!(
        codes,
        [approver.await.unwrap()],
        "the code shown is the one the administrator approves"
    );
    let config = &identity.config;
    assert!(config.is_managed);
    assert_eq!(config.role.as_deref(), Some("server"));
    assert_eq!(config.key_type, KeyType::EccP521);

    // The files load as px-device-identity's would, and the device can log in.
    let loaded = DeviceIdentity::load(&paths).unwrap();
    assert_eq!(loaded.config.client_id, config.client_id);
    assert_eq!(loaded.public_jwk, identity.public_jwk);
    let jwk: onesoidc_core::PublicJwk =
        serde_json::from_slice(&std::fs::read(paths.public_jwk()).unwrap()).unwrap();
    assert_eq!(jwk.alg.as_deref(), Some("ES512"), "never ES521");
    #[cfg(unix)]
    assert_eq!(mode(&paths.private_key()), 0o600);
    #[cfg(unix)]
    assert_eq!(mode(&paths.key_dir), 0o700, "the key directory is private");
    let client = OnesIdClient::new(loaded, idp.in_process_client()).unwrap();
    client.device_token().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn rejection_and_timeout_leave_nothing_behind() {
    let idp = DevIdp::start(support::config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let r = registration(&idp, dir.path());
    let paths = r.paths.clone();
    let rejecter = {
        let idp = idp.clone();
        tokio::spawn(async move {
            let code = idp.next_registration().await;
            idp.reject_registration(&code).unwrap();
        })
    };
    let err = register_device(idp.in_process_client(), &r, |_| {})
        .await
        .unwrap_err();
    rejecter.await.unwrap();
    assert!(matches!(err, Error::RegistrationRejected { .. }), "{err}");
    assert!(err.to_string().contains("rejected"), "{err}");
    assert!(!paths.config.exists() && !paths.key_dir.exists());

    let short = r.clone().timeout(Duration::from_secs(35));
    let began = tokio::time::Instant::now();
    let err = register_device(idp.in_process_client(), &short, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Expired { .. }), "{err}");
    assert_eq!(
        began.elapsed(),
        Duration::from_secs(35),
        "checks at 10, 20, 30 and 35 s"
    );
    assert!(!paths.config.exists() && !paths.key_dir.exists());
}

#[tokio::test(start_paused = true)]
async fn existing_identity_needs_force_and_survives_a_failed_force() {
    let idp = DevIdp::start(support::config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let r = registration(&idp, dir.path());
    let paths = r.paths.clone();
    let previous = create_unmanaged_identity(&r).unwrap();
    let before = (
        std::fs::read(&paths.config).unwrap(),
        std::fs::read(paths.private_key()).unwrap(),
    );

    let err = register_device(idp.in_process_client(), &r, |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(ConfigError::AlreadyExists { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("--force"));

    let forced = r.clone().force(true);
    let idp2 = idp.clone();
    tokio::spawn(async move {
        let code = idp2.next_registration().await;
        idp2.reject_registration(&code).unwrap();
    });
    register_device(idp.in_process_client(), &forced, |_| {})
        .await
        .unwrap_err();
    let after = (
        std::fs::read(&paths.config).unwrap(),
        std::fs::read(paths.private_key()).unwrap(),
    );
    assert_eq!(
        before, after,
        "a failed --force leaves the old identity as it was"
    );
    assert_eq!(
        DeviceIdentity::load(&paths).unwrap().config.id,
        previous.config.id
    );
    let leftovers: Vec<_> = std::fs::read_dir(&paths.key_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        3,
        "private.pem, public.pem, public_jwk.json and no temp files: {leftovers:?}"
    );
}

#[test]
fn unmanaged_identity_loads_but_is_not_registered() {
    let dir = tempfile::tempdir().unwrap();
    let r = DeviceRegistration::new("Kiosk", "Bangkok", "PUBLIC")
        .paths(IdentityPaths::new(
            dir.path().join("device.yml"),
            dir.path().join("k"),
        ))
        .key_type(KeyType::Rsa3072);
    create_unmanaged_identity(&r).unwrap();
    let identity = DeviceIdentity::load(&r.paths).unwrap();
    assert!(!identity.config.is_managed);
    assert_eq!(identity.config.role.as_deref(), Some("public"));
    assert!(matches!(
        identity.client_auth().unwrap_err(),
        ConfigError::NotRegistered { .. }
    ));
}
