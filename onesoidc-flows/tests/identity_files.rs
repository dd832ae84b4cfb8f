//! Loading a device identity from px-device-identity's files: the real
//! ones (every key type), missing and unusable files, and the default paths.
//! Hostile files are in `hostile_identity_files.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onesoidc_flows::core::{ConfigError, Error, JwsAlgorithm, KeyError, KeyType, Signer};
use onesoidc_flows::{CommandSigner, DeviceIdentity, IdentityPaths, load_pem_signer};

/// The px-device-identity fixture named `name` (kept with the core's tests).
fn fixture(name: &str) -> IdentityPaths {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../onesoidc-core/tests/fixtures/px-device-identity")
        .join(name);
    IdentityPaths::new(dir.join("device.yml"), dir)
}

/// Every fixture.
const FIXTURES: [&str; 8] = [
    "rsa-2048",
    "rsa-3072",
    "ecc-p256",
    "ecc-p384",
    "ecc-p521",
    "managed-rsa-2048",
    "managed-ecc-p256",
    "managed-ecc-p521",
];

#[test]
fn every_px_fixture_loads_with_its_key() {
    for name in FIXTURES {
        let identity =
            DeviceIdentity::load(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            identity.signer.algorithm(),
            identity.config.key_type.jws_algorithm(),
            "{name}"
        );
        assert_eq!(
            identity.config.is_managed,
            name.starts_with("managed"),
            "{name}"
        );
    }
}

#[test]
fn unmanaged_identity_loads_but_cannot_authenticate() {
    let identity = DeviceIdentity::load(&fixture("ecc-p256")).unwrap();
    assert_eq!(identity.config.client_id, None);
    assert_eq!(identity.config.host, None);
    let err = identity.client_auth().unwrap_err();
    assert!(matches!(err, ConfigError::NotRegistered { .. }));
    assert!(err.to_string().contains("onesoidc register"), "{err}");
}

#[test]
fn key_that_does_not_match_key_type_says_both() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = fixture("managed-rsa-2048");
    let yaml = std::fs::read_to_string(&rsa.config)
        .unwrap()
        .replace("RSA:2048", "ECC:p384");
    std::fs::write(dir.path().join("device.yml"), yaml).unwrap();
    std::fs::copy(rsa.private_key(), dir.path().join("private.pem")).unwrap();
    let paths = IdentityPaths::new(dir.path().join("device.yml"), dir.path());
    let err = DeviceIdentity::load(&paths).unwrap_err();
    match &err {
        Error::Key(KeyError::Mismatch {
            expected, found, ..
        }) => {
            assert_eq!(*expected, KeyType::EccP384);
            assert_eq!(found, "RSA:2048");
        }
        other => panic!("{other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("RSA:2048") && message.contains("ECC:p384"),
        "{message}"
    );
}

#[test]
fn missing_or_unusable_files() {
    let dir = tempfile::tempdir().unwrap();
    let paths = IdentityPaths::new(dir.path().join("device.yml"), dir.path());
    let err = DeviceIdentity::load(&paths).unwrap_err();
    assert!(
        matches!(err, Error::Config(ConfigError::Read { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("device.yml"));

    std::fs::copy(fixture("managed-ecc-p256").config, &paths.config).unwrap();
    let err = DeviceIdentity::load(&paths).unwrap_err();
    assert!(matches!(err, Error::Key(KeyError::Read { .. })), "{err}");
    assert!(err.to_string().contains("private.pem"));

    for (content, why) in [
        (&b""[..], "empty"),
        (b"\x00\x01\x02garbage", "binary"),
        (
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "public",
        ),
    ] {
        std::fs::write(paths.private_key(), content).unwrap();
        let err = DeviceIdentity::load(&paths).unwrap_err();
        assert!(
            matches!(err, Error::Key(KeyError::Invalid { .. })),
            "{why}: {err}"
        );
        assert!(err.to_string().contains("private.pem"), "{why}: {err}");
    }
}

#[cfg(unix)]
#[test]
fn unreadable_key_file_is_a_read_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let paths = IdentityPaths::new(dir.path().join("device.yml"), dir.path());
    std::fs::copy(fixture("managed-ecc-p256").config, &paths.config).unwrap();
    // A directory where the key file should be cannot be read, even by root.
    std::fs::create_dir(paths.private_key()).unwrap();
    std::fs::set_permissions(paths.private_key(), std::fs::Permissions::from_mode(0o000)).unwrap();
    let err = DeviceIdentity::load(&paths).unwrap_err();
    assert!(matches!(err, Error::Key(KeyError::Read { .. })), "{err}");
}

#[test]
fn default_paths_and_overrides() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).into())
        }
    };
    let p = IdentityPaths::from_lookup(env(&[("HOME", "/root")]));
    assert_eq!(p.config, Path::new("/etc/px-device-identity/device.yml"));
    assert_eq!(
        p.key_dir,
        Path::new("/root/.local/share/px-device-identity")
    );
    let p = IdentityPaths::from_lookup(env(&[("HOME", "/root"), ("XDG_DATA_HOME", "/data")]));
    assert_eq!(p.key_dir, Path::new("/data/px-device-identity"));
    let p = IdentityPaths::from_lookup(env(&[
        ("ONESOIDC_DEVICE_CONFIG", "/x/device.yml"),
        ("ONESOIDC_KEY_DIR", "/x/keys"),
        ("XDG_DATA_HOME", "/data"),
    ]));
    assert_eq!(p.config, Path::new("/x/device.yml"));
    assert_eq!(p.key_dir, Path::new("/x/keys"));
    assert_eq!(p.private_key(), Path::new("/x/keys/private.pem"));
}

#[cfg(unix)]
#[test]
fn command_signer_for_tpm_keys() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A stand-in for `px-device-identity --operation SIGN` that signs DER-encoded
    // ECDSA with a real key, as a TPM would: we sign, then DER-encode r||s.
    let signer = load_pem_signer(fixture("ecc-p256").private_key(), KeyType::EccP256).unwrap();
    let raw = signer.sign(b"a.b").unwrap();
    let der = {
        let int = |b: &[u8]| {
            let mut v = b.to_vec();
            while v.len() > 1 && v[0] == 0 {
                v.remove(0);
            }
            if v[0] & 0x80 != 0 {
                v.insert(0, 0);
            }
            let mut out = vec![0x02, v.len() as u8];
            out.extend(v);
            out
        };
        let mut body = int(&raw[..32]);
        body.extend(int(&raw[32..]));
        let mut out = vec![0x30, body.len() as u8];
        out.extend(body);
        out
    };
    let script = dir.path().join("px-device-identity");
    std::fs::write(
        &script,
        format!("#!/bin/sh\n[ \"$1 $2 $3 $4\" = \"--operation SIGN --message a.b\" ] || exit 3\necho {}\n", URL_SAFE_NO_PAD.encode(&der)),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tpm = CommandSigner::new(&script, JwsAlgorithm::ES256);
    assert_eq!(tpm.sign(b"a.b").unwrap(), raw);
    let err = tpm.sign(b"other").unwrap_err().to_string();
    assert!(err.contains("exit status: 3"), "{err}");
    assert!(
        tpm.blocks(),
        "the flows must sign with it off the async workers"
    );
    let missing = CommandSigner::new(dir.path().join("absent"), JwsAlgorithm::RS256);
    let err = missing.sign(b"a.b").unwrap_err().to_string();
    assert!(err.contains("install px-device-identity"), "{err}");
    assert!(err.contains("ONESOIDC_PX_DEVICE_IDENTITY"), "{err}");
    let relative = CommandSigner::new("px-device-identity", JwsAlgorithm::RS256);
    let err = relative.sign(b"a.b").unwrap_err().to_string();
    assert!(err.contains("absolute path"), "{err}");
}

/// A signing program that never answers is stopped after the timeout.
#[cfg(unix)]
#[test]
fn command_signer_times_out_and_stops_the_program() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = dir.path().join("px-device-identity");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 30\n",
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hung = CommandSigner::new(&script, JwsAlgorithm::ES256).timeout(Duration::from_millis(300));
    let began = std::time::Instant::now();
    let err = hung.sign(b"a.b").unwrap_err().to_string();
    assert!(err.contains("did not answer within 0.3 s"), "{err}");
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "it was not stopped"
    );
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(
        !Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "the program {pid} still runs"
    );
}

/// A TPM identity whose key is a `TSS2 PRIVATE KEY`, in a temp dir.
fn tss2_identity() -> (tempfile::TempDir, IdentityPaths) {
    let dir = tempfile::tempdir().unwrap();
    let paths = IdentityPaths::new(dir.path().join("device.yml"), dir.path());
    std::fs::write(
        &paths.config,
        "id: d1\nclient_id: c1\nhost: https://idp.example\nkey_type: ECC:p256\nkey_security: tpm\n",
    )
    .unwrap();
    std::fs::write(
        paths.private_key(),
        "-----BEGIN TSS2 PRIVATE KEY-----\nMAMCAQE=\n-----END TSS2 PRIVATE KEY-----\n",
    )
    .unwrap();
    (dir, paths)
}

/// Without the `tpm` feature and without px-device-identity, a TPM key is
/// an error naming both ways out.
#[cfg(not(feature = "tpm"))]
#[test]
fn tpm_keys_without_the_tpm_feature_or_px_device_identity_say_what_to_install() {
    let (_dir, paths) = tss2_identity();
    let px = CommandSigner::px_device_identity(JwsAlgorithm::ES256);
    if px.program().is_file() {
        eprintln!(
            "notice: px-device-identity is installed at {}: the fallback is taken instead",
            px.program().display()
        );
        return;
    }
    let err = DeviceIdentity::load(&paths).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Key(KeyError::Device { .. })), "{text}");
    assert!(text.contains("private.pem"), "{text}");
    assert!(text.contains("--features tpm"), "{text}");
    assert!(text.contains("install px-device-identity"), "{text}");
}

/// With the `tpm` feature, a TPM key loads through onesoidc-tpm: a broken
/// one is an error naming the file (no TPM is reached).
#[cfg(feature = "tpm")]
#[test]
fn tpm_keys_with_the_tpm_feature_are_read_by_the_tpm_signer() {
    let (_dir, paths) = tss2_identity();
    let err = DeviceIdentity::load(&paths).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Key(KeyError::Device { .. })), "{text}");
    assert!(text.contains("not a usable TSS2 PRIVATE KEY"), "{text}");
}
