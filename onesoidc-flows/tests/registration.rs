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
    // The DPoP fallback key is made too, for a key directory that is
    // read-only at run time; it is a P-256 key the flows load.
    #[cfg(unix)]
    assert_eq!(mode(&paths.dpop_key()), 0o600);
    let dpop = std::fs::read_to_string(paths.dpop_key()).unwrap();
    assert!(dpop.starts_with("-----BEGIN PRIVATE KEY-----"), "{dpop}");
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
        4,
        "private.pem, public.pem, public_jwk.json, dpop.pem and no temp files: {leftovers:?}"
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

/// Another process writes an identity while the registration waits for
/// the administrator: it is not overwritten (the check runs again when
/// writing), and the registered key is not left behind.
#[tokio::test(start_paused = true)]
async fn an_identity_written_during_the_wait_is_not_overwritten() {
    let idp = DevIdp::start(support::config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let r = registration(&idp, dir.path());
    let paths = r.paths.clone();
    let meanwhile = {
        let (idp, r) = (idp.clone(), r.clone());
        tokio::spawn(async move {
            let code = idp.next_registration().await;
            let other = create_unmanaged_identity(&r).unwrap();
            idp.approve_registration(&code).unwrap();
            other
        })
    };
    let err = register_device(idp.in_process_client(), &r, |_| {})
        .await
        .unwrap_err();
    let other = meanwhile.await.unwrap();
    assert!(
        matches!(err, Error::Config(ConfigError::AlreadyExists { .. })),
        "{err}"
    );
    assert_eq!(
        DeviceIdentity::load(&paths).unwrap().config.id,
        other.config.id
    );
    let mut names: Vec<_> = std::fs::read_dir(&paths.key_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["dpop.pem", "private.pem", "public.pem", "public_jwk.json"]
    );
}

/// Dropping the registration future (Ctrl-C) while it waits writes nothing.
#[tokio::test(start_paused = true)]
async fn a_cancelled_registration_writes_nothing() {
    let idp = DevIdp::start(support::config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let r = registration(&idp, dir.path());
    let paths = r.paths.clone();
    let waiting = register_device(idp.in_process_client(), &r, |_| {});
    let cancelled = tokio::time::timeout(Duration::from_secs(15), waiting).await;
    assert!(cancelled.is_err(), "still waiting for the administrator");
    let code = idp.next_registration().await;
    idp.approve_registration(&code).unwrap();
    assert!(!paths.config.exists() && !paths.key_dir.exists());
}

/// A replacement of the identity that a crash interrupted after its switch
/// is completed when the identity is next loaded: the new set, whole.
#[test]
fn an_interrupted_replacement_is_completed_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let paths = IdentityPaths::new(dir.path().join("etc/device.yml"), dir.path().join("keys"));
    let r = DeviceRegistration::new("Old", "Here", "SERVER").paths(paths.clone());
    create_unmanaged_identity(&r).unwrap();
    let new = tempfile::tempdir().unwrap();
    let new_paths = IdentityPaths::new(new.path().join("device.yml"), new.path());
    let replacement = create_unmanaged_identity(
        &DeviceRegistration::new("New", "There", "SERVER").paths(new_paths.clone()),
    )
    .unwrap();
    // Replace the old files with the new ones, stopping (as a crash would)
    // right after the first rename.
    let bytes: Vec<Vec<u8>> = new_paths
        .files()
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            // device.yml names its own path nowhere; it moves as it is.
            text.into_bytes()
        })
        .collect();
    let targets = paths.files();
    let files: Vec<_> = targets
        .iter()
        .zip(&bytes)
        .map(|(p, b)| onesoidc_fs::NewFile::new(p, b, 0o600))
        .collect();
    let mut renamed = 0;
    let stopped = onesoidc_fs::replace_set_with(&files, &paths.switch(), &mut |step| {
        if matches!(step, onesoidc_fs::SetStep::Replaced(_)) {
            renamed += 1;
            return Err(std::io::Error::other("the power went out"));
        }
        Ok(())
    });
    assert!(stopped.is_err() && renamed == 1);
    assert!(paths.switch().exists());

    let loaded = DeviceIdentity::load(&paths).unwrap();
    assert_eq!(loaded.config.id, replacement.config.id);
    assert_eq!(
        loaded.public_jwk, replacement.public_jwk,
        "key and config match"
    );
    assert!(!paths.switch().exists());
}

/// Without the `tpm` feature, `key_security(Tpm)` fails before anything is
/// sent, saying how to get a build that can.
#[cfg(not(feature = "tpm"))]
#[tokio::test(start_paused = true)]
async fn a_tpm_registration_without_the_tpm_feature_says_to_build_with_it() {
    let idp = DevIdp::start(support::config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let r = registration(&idp, dir.path()).key_security(onesoidc_core::KeySecurity::Tpm);
    let paths = r.paths.clone();
    let err = register_device(idp.in_process_client(), &r, |_| {})
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("--features tpm"), "{text}");
    assert!(!paths.config.exists() && !paths.private_key().exists());
    let err = create_unmanaged_identity(&r).unwrap_err();
    assert!(err.to_string().contains("--features tpm"), "{err}");
}
