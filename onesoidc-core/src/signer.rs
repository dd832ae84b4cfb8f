//! Device keys and the [`Signer`] trait.
//!
//! [`PemSigner`] signs with a PEM private key for every px-device-identity key
//! type (RS256, ES256, ES384 and ES512, all through aws-lc-rs: the key is
//! parsed once, so each signature costs only the primitive). Signers that
//! call out (a TPM through px-device-identity, an HSM) implement [`Signer`]
//! elsewhere and say so with [`Signer::blocks`].

use std::fmt;
use std::path::Path;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
    ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair,
    RSA_PKCS1_SHA256, RsaKeyPair,
};

use crate::error::{KeyError, SignError};
use crate::jwk::PublicJwk;
use crate::{JwsAlgorithm, KeyType};

/// Something that signs JWS signing input with the device key.
///
/// Implement it for a new key store (PKCS#11, a cloud KMS): the rest of the
/// library only needs the algorithm and a signature in JWS form (PKCS#1 v1.5
/// for RS256, fixed-size `r || s` for ES*). A signer that waits for
/// something outside the process (a program, a TPM, a network) returns
/// `true` from [`blocks`](Signer::blocks): the flows then build its
/// requests on tokio's blocking pool, never on an async worker.
///
/// ```
/// use onesoidc_core::{JwsAlgorithm, SignError, Signer};
///
/// #[derive(Debug)]
/// struct Hsm;
/// impl Signer for Hsm {
///     fn algorithm(&self) -> JwsAlgorithm { JwsAlgorithm::ES256 }
///     fn sign(&self, _input: &[u8]) -> Result<Vec<u8>, SignError> {
///         Ok(vec![0; 64]) // ask the HSM here
///     }
/// }
/// let signer: std::sync::Arc<dyn Signer> = std::sync::Arc::new(Hsm);
/// assert_eq!(signer.algorithm().as_str(), "ES256");
/// ```
pub trait Signer: Send + Sync + fmt::Debug {
    /// The JWS `alg` this key signs with.
    fn algorithm(&self) -> JwsAlgorithm;

    /// The `kid` to put in JWS headers, when the provider knows the key by one.
    fn key_id(&self) -> Option<&str> {
        None
    }

    /// Signs `signing_input` (`base64url(header) . base64url(claims)`).
    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignError>;

    /// Whether [`sign`](Signer::sign) may wait (on a process, a device or
    /// the network) rather than only compute. Default `false`: an
    /// in-memory key signs in microseconds.
    fn blocks(&self) -> bool {
        false
    }
}

enum KeyMaterial {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// Whether `pem` is a TPM key file: its first PEM block is a
/// `TSS2 PRIVATE KEY` (px-device-identity's TPM keys, tpm2-tss-engine,
/// tpm2-openssl), which only the TPM that made it can use.
///
/// ```
/// assert!(onesoidc_core::is_tpm_key_pem(b"-----BEGIN TSS2 PRIVATE KEY-----\nMII"));
/// assert!(!onesoidc_core::is_tpm_key_pem(b"-----BEGIN PRIVATE KEY-----\nMII"));
/// ```
pub fn is_tpm_key_pem(pem: &[u8]) -> bool {
    pem.trim_ascii_start()
        .starts_with(b"-----BEGIN TSS2 PRIVATE KEY-----")
}

/// A signer holding a private key loaded from PEM (PKCS#1, PKCS#8 or SEC1).
///
/// ```
/// use onesoidc_core::{KeyType, PemSigner, Signer};
/// let signer = PemSigner::generate(KeyType::EccP256).unwrap();
/// let pem = signer.private_key_pem().unwrap();
/// let again = PemSigner::from_pem(pem.as_bytes(), "private.pem".as_ref()).unwrap();
/// assert_eq!(again.key_type(), KeyType::EccP256);
/// assert_eq!(again.public_jwk(), signer.public_jwk());
/// assert_eq!(again.sign(b"a.b").unwrap().len(), 64);
/// ```
pub struct PemSigner {
    key: KeyMaterial,
    key_type: KeyType,
    rng: SystemRandom,
}

impl fmt::Debug for PemSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemSigner")
            .field("key_type", &self.key_type)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

fn ec_signing_alg(key_type: KeyType) -> Option<&'static EcdsaSigningAlgorithm> {
    match key_type {
        KeyType::EccP256 => Some(&ECDSA_P256_SHA256_FIXED_SIGNING),
        KeyType::EccP384 => Some(&ECDSA_P384_SHA384_FIXED_SIGNING),
        KeyType::EccP521 => Some(&ECDSA_P521_SHA512_FIXED_SIGNING),
        KeyType::Rsa2048 | KeyType::Rsa3072 => None,
    }
}

const EC_TYPES: [KeyType; 3] = [KeyType::EccP256, KeyType::EccP384, KeyType::EccP521];

impl PemSigner {
    /// Parses a PEM private key of any supported type; `path` is only used in errors.
    pub fn from_pem(pem_bytes: &[u8], path: &Path) -> Result<Self, KeyError> {
        let invalid = |reason: String| KeyError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let block =
            pem::parse(pem_bytes).map_err(|e| invalid(format!("not a PEM private key ({e})")))?;
        // OpenSSL's legacy encryption: `Proc-Type: 4,ENCRYPTED` above the base64.
        if block
            .headers()
            .get("Proc-Type")
            .is_some_and(|v| v.contains("ENCRYPTED"))
        {
            return Err(invalid(
                "the private key is encrypted; px-device-identity keys are not".into(),
            ));
        }
        let der = block.contents();
        let (key, key_type) = match block.tag() {
            "RSA PRIVATE KEY" => {
                let pair = RsaKeyPair::from_der(der).map_err(|e| {
                    rsa_size_error(der, path)
                        .unwrap_or_else(|| invalid(format!("not a valid PKCS#1 RSA key ({e})")))
                })?;
                let kt = rsa_key_type(&pair, path)?;
                (KeyMaterial::Rsa(pair), kt)
            }
            "PRIVATE KEY" => {
                if let Ok(pair) = RsaKeyPair::from_pkcs8(der) {
                    let kt = rsa_key_type(&pair, path)?;
                    (KeyMaterial::Rsa(pair), kt)
                } else if let Some(found) = ec_from_der(der) {
                    found
                } else {
                    // An RSA key aws-lc-rs refuses (too small, too large) says its size.
                    let rsa_size =
                        pkcs8_inner_key(der).and_then(|inner| rsa_size_error(&inner, path));
                    return Err(rsa_size.unwrap_or_else(|| {
                        invalid("PKCS#8 key is neither RSA nor EC P-256/P-384/P-521".into())
                    }));
                }
            }
            "EC PRIVATE KEY" => ec_from_der(der)
                .ok_or_else(|| invalid("SEC1 key is not on P-256, P-384 or P-521".into()))?,
            "ENCRYPTED PRIVATE KEY" => {
                return Err(invalid(
                    "the private key is encrypted; px-device-identity keys are not".into(),
                ));
            }
            other => {
                return Err(invalid(format!("PEM block `{other}` is not a private key")));
            }
        };
        Ok(PemSigner {
            key,
            key_type,
            rng: SystemRandom::new(),
        })
    }

    /// Generates a fresh key of `key_type`.
    pub fn generate(key_type: KeyType) -> Result<Self, SignError> {
        let key = match key_type {
            KeyType::Rsa2048 => KeyMaterial::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| SignError::Crypto)?,
            ),
            KeyType::Rsa3072 => KeyMaterial::Rsa(
                RsaKeyPair::generate(KeySize::Rsa3072).map_err(|_| SignError::Crypto)?,
            ),
            ec => {
                let alg = ec_signing_alg(ec).ok_or(SignError::Crypto)?;
                KeyMaterial::Ec(EcdsaKeyPair::generate(alg).map_err(|_| SignError::Crypto)?)
            }
        };
        Ok(PemSigner {
            key,
            key_type,
            rng: SystemRandom::new(),
        })
    }

    /// The key type of the loaded key.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The private key as PEM, the way px-device-identity writes it:
    /// PKCS#1 for RSA, PKCS#8 for EC.
    pub fn private_key_pem(&self) -> Result<String, SignError> {
        let (tag, der) = match &self.key {
            KeyMaterial::Rsa(pair) => {
                let pkcs8 = pair.as_der().map_err(|_| SignError::Crypto)?;
                // PKCS#8 wraps the PKCS#1 structure; re-read it to emit PKCS#1.
                let pkcs1 = pkcs8_inner_key(pkcs8.as_ref()).ok_or(SignError::Crypto)?;
                ("RSA PRIVATE KEY", pkcs1)
            }
            KeyMaterial::Ec(pair) => {
                let doc = pair.to_pkcs8v1().map_err(|_| SignError::Crypto)?;
                ("PRIVATE KEY", doc.as_ref().to_vec())
            }
        };
        Ok(pem::encode(&pem::Pem::new(tag, der)))
    }

    /// The public key as an SPKI PEM (`public.pem`).
    pub fn public_key_pem(&self) -> Result<String, SignError> {
        let der = match &self.key {
            KeyMaterial::Rsa(pair) => pair
                .public_key()
                .as_der()
                .map_err(|_| SignError::Crypto)?
                .as_ref()
                .to_vec(),
            KeyMaterial::Ec(pair) => pair
                .public_key()
                .as_der()
                .map_err(|_| SignError::Crypto)?
                .as_ref()
                .to_vec(),
        };
        Ok(pem::encode(&pem::Pem::new("PUBLIC KEY", der)))
    }

    /// The public key as a JWK with `alg` (no `kid`).
    pub fn public_jwk(&self) -> PublicJwk {
        let alg = self.key_type.jws_algorithm();
        match &self.key {
            KeyMaterial::Rsa(pair) => {
                let parts = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                PublicJwk::rsa(&parts.n, &parts.e, alg)
            }
            KeyMaterial::Ec(pair) => {
                // Uncompressed point: 0x04 || x || y.
                let point = pair.public_key().as_ref();
                let coords = &point[1..];
                let (x, y) = coords.split_at(coords.len() / 2);
                PublicJwk::ec(x, y, alg)
            }
        }
    }
}

impl Signer for PemSigner {
    fn algorithm(&self) -> JwsAlgorithm {
        self.key_type.jws_algorithm()
    }

    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.key {
            KeyMaterial::Rsa(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, signing_input, &mut sig)
                    .map_err(|_| SignError::Crypto)?;
                Ok(sig)
            }
            KeyMaterial::Ec(pair) => Ok(pair
                .sign(&self.rng, signing_input)
                .map_err(|_| SignError::Crypto)?
                .as_ref()
                .to_vec()),
        }
    }
}

fn rsa_key_type(pair: &RsaKeyPair, path: &Path) -> Result<KeyType, KeyError> {
    match pair.public_modulus_len() * 8 {
        2048 => Ok(KeyType::Rsa2048),
        3072 => Ok(KeyType::Rsa3072),
        bits => Err(rsa_bits_error(bits as u64, path)),
    }
}

fn rsa_bits_error(bits: u64, path: &Path) -> KeyError {
    KeyError::Invalid {
        path: path.to_path_buf(),
        reason: format!("RSA key of {bits} bits; px-device-identity uses RSA:2048 or RSA:3072"),
    }
}

/// For a PKCS#1 `RSAPrivateKey` that aws-lc-rs refused: the error naming its
/// size, when the size is one px-device-identity does not use (aws-lc-rs
/// only says `TooSmall`).
fn rsa_size_error(pkcs1: &[u8], path: &Path) -> Option<KeyError> {
    use simple_asn1::ASN1Block;
    let items = der_sequence_items(pkcs1)?;
    // RSAPrivateKey ::= SEQUENCE { version, modulus, publicExponent, ... }
    let [ASN1Block::Integer(_, _), ASN1Block::Integer(_, modulus), ..] = items.as_slice() else {
        return None;
    };
    match modulus.bits() {
        2048 | 3072 => None,
        bits => Some(rsa_bits_error(bits, path)),
    }
}

fn ec_from_der(der: &[u8]) -> Option<(KeyMaterial, KeyType)> {
    EC_TYPES.into_iter().find_map(|kt| {
        let alg = ec_signing_alg(kt)?;
        EcdsaKeyPair::from_private_key_der(alg, der)
            .ok()
            .map(|pair| (KeyMaterial::Ec(pair), kt))
    })
}

/// The items of the DER `SEQUENCE` that `der` starts with.
fn der_sequence_items(der: &[u8]) -> Option<Vec<simple_asn1::ASN1Block>> {
    match simple_asn1::from_der(der).ok()?.into_iter().next()? {
        simple_asn1::ASN1Block::Sequence(_, items) => Some(items),
        _ => None,
    }
}

/// The `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo`.
fn pkcs8_inner_key(pkcs8: &[u8]) -> Option<Vec<u8>> {
    use simple_asn1::ASN1Block;
    let items = der_sequence_items(pkcs8)?;
    items.into_iter().find_map(|item| match item {
        ASN1Block::OctetString(_, bytes) => Some(bytes),
        _ => None,
    })
}

/// Converts a DER `ECDSA-Sig-Value` to the fixed-size `r || s` of JWS.
///
/// ```
/// // SEQUENCE { INTEGER 1, INTEGER 2 } on a curve with 2-byte coordinates.
/// let der = [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02];
/// assert_eq!(onesoidc_core::ecdsa_der_to_fixed(&der, 4), Some(vec![0, 1, 0, 2]));
/// ```
pub fn ecdsa_der_to_fixed(der: &[u8], len: usize) -> Option<Vec<u8>> {
    use simple_asn1::ASN1Block;
    let items = der_sequence_items(der)?;
    let [ASN1Block::Integer(_, r), ASN1Block::Integer(_, s)] = items.as_slice() else {
        return None;
    };
    let half = len / 2;
    let mut out = Vec::with_capacity(len);
    for n in [r, s] {
        if *n < simple_asn1::BigInt::from(0) {
            return None;
        }
        let (_, bytes) = n.to_bytes_be();
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        let bytes = &bytes[first..];
        if bytes.len() > half {
            return None;
        }
        out.extend(std::iter::repeat_n(0, half - bytes.len()));
        out.extend_from_slice(bytes);
    }
    Some(out)
}
