//! Helpers shared by the core tests: px-device-identity's real files, read
//! here and parsed by the core (which reads no files itself).
#![allow(dead_code)]

use std::path::PathBuf;

use onesoidc_core::{
    DeviceConfig, JwsAlgorithm, KeyType, PemSigner, PublicJwkSet, SignError, Signer,
};

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

/// A provider key with a kid (for ID and access tokens).
#[derive(Debug)]
pub struct ProviderKey {
    pub inner: PemSigner,
    pub kid: String,
}

impl Signer for ProviderKey {
    fn algorithm(&self) -> JwsAlgorithm {
        self.inner.algorithm()
    }
    fn key_id(&self) -> Option<&str> {
        Some(&self.kid)
    }
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, SignError> {
        self.inner.sign(input)
    }
}

/// A fresh provider key of `kt` named `kid`.
pub fn key(kt: KeyType, kid: &str) -> ProviderKey {
    ProviderKey {
        inner: PemSigner::generate(kt).unwrap(),
        kid: kid.into(),
    }
}

/// The public JWKS of `keys`, each with its `kid`.
pub fn jwks(keys: &[&ProviderKey]) -> PublicJwkSet {
    PublicJwkSet {
        keys: keys
            .iter()
            .map(|k| {
                let mut jwk = k.inner.public_jwk();
                jwk.kid = Some(k.kid.clone());
                jwk
            })
            .collect(),
    }
}
