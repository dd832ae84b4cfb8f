//! Helpers shared by the core tests.
#![allow(dead_code)]

use std::path::PathBuf;

use onesoidc_core::IdentityPaths;

/// The px-device-identity fixture named `name`.
pub fn fixture(name: &str) -> IdentityPaths {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/px-device-identity")
        .join(name);
    IdentityPaths {
        config: dir.join("device.yml"),
        key_dir: dir,
    }
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
