//! Helpers shared by the core tests: px-device-identity's real files, read
//! here and parsed by the core (which reads no files itself).
#![allow(dead_code)]

use std::path::PathBuf;

use onesoidc_core::{DeviceConfig, PemSigner};

/// The directory of the px-device-identity fixture named `name`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/px-device-identity")
        .join(name)
}

/// The fixture's `device.yml`, parsed.
pub fn config(name: &str) -> DeviceConfig {
    let path = fixture(name).join("device.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    DeviceConfig::from_yaml_str(&text, &path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The fixture's private key, parsed.
pub fn signer(name: &str) -> PemSigner {
    let path = fixture(name).join("private.pem");
    let pem = std::fs::read(&path).unwrap();
    let signer = PemSigner::from_pem(&pem, &path).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(signer.key_type(), config(name).key_type, "{name}");
    signer
}

/// The fixture's `public.pem`.
pub fn public_pem(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name).join("public.pem")).unwrap()
}

/// Every fixture: (directory name, key type as device.yml says).
pub const FIXTURES: [&str; 8] = [
    "rsa-2048",
    "rsa-3072",
    "ecc-p256",
    "ecc-p384",
    "ecc-p521",
    "managed-rsa-2048",
    "managed-ecc-p256",
    "managed-ecc-p521",
];
