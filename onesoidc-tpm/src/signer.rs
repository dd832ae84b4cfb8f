//! [`TpmSigner`]: core's [`Signer`] over a key that lives in a TPM.

use std::fmt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use aws_lc_rs::digest;
use onesoidc_core::{JwsAlgorithm, KeyType, PublicJwk, SignError, Signer};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::structures::{HashScheme, Public, Signature, SignatureScheme};

use crate::device::{Worker, create_key, signing_key_template};
use crate::error::TpmError;
use crate::key_file::TpmKeyFile;
use crate::public_key::{Components, spki_pem};
use crate::tcti::Tcti;

/// Signs JWS with a key held by a TPM 2.0 (a `TSS2 PRIVATE KEY` file from
/// px-device-identity, tpm2-tss-engine, tpm2-openssl or
/// [`TpmSigner::create_key`]).
///
/// - RS256 (PKCS#1 v1.5, SHA-256), ES256 and ES384 (and ES512 where the TPM
///   has P-521); the digest is computed here, the TPM signs it, and ECDSA
///   signatures come back as the fixed-width `r || s` JWS wants.
/// - One ESAPI context per signer, opened by [`TpmSigner::open`] and kept;
///   calls are serialized. If the TPM connection breaks, the next call
///   opens a new one.
/// - Every TPM call has a deadline ([`TpmSigner::deadline`], default
///   10 s): a TPM that does not answer is an error, not a hang.
/// - It waits on a device, so it says so ([`Signer::blocks`]): the flows
///   sign with it on tokio's blocking pool.
///
/// ```no_run
/// use onesoidc_core::Signer;
/// use onesoidc_tpm::{Tcti, TpmSigner};
/// let path = std::path::Path::new("/etc/px-device-identity/private.pem");
/// let pem = std::fs::read(path)?;
/// let signer = TpmSigner::open(&pem, path, &Tcti::from_env()?)?;
/// let signature = signer.sign(b"header.claims")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TpmSigner {
    key: TpmKeyFile,
    tcti: Tcti,
    key_type: KeyType,
    public_jwk: PublicJwk,
    /// Bytes of the RSA modulus, or of one ECDSA coordinate.
    width: usize,
    public_pem: String,
    deadline: Duration,
    worker: Mutex<Option<Worker>>,
}

impl fmt::Debug for TpmSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TpmSigner")
            .field("key", &self.key)
            .field("tcti", &self.tcti)
            .field("key_type", &self.key_type)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl TpmSigner {
    /// How long one TPM call may take by default (RSA key generation on a
    /// slow TPM takes seconds; a signature, milliseconds).
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

    /// Parses the PEM key file `pem` (read from `path`) and loads the key
    /// into the TPM at `tcti`, with [`DEFAULT_DEADLINE`](Self::DEFAULT_DEADLINE).
    pub fn open(pem: &[u8], path: &Path, tcti: &Tcti) -> Result<Self, TpmError> {
        Self::open_with_deadline(pem, path, tcti, Self::DEFAULT_DEADLINE)
    }

    /// [`open`](Self::open) with another deadline per TPM call.
    pub fn open_with_deadline(
        pem: &[u8],
        path: &Path,
        tcti: &Tcti,
        deadline: Duration,
    ) -> Result<Self, TpmError> {
        let key = TpmKeyFile::from_pem(pem, path)?;
        Self::from_key_file(key, tcti, deadline)
    }

    /// Loads a parsed key file into the TPM at `tcti`.
    pub fn from_key_file(
        key: TpmKeyFile,
        tcti: &Tcti,
        deadline: Duration,
    ) -> Result<Self, TpmError> {
        let (key_type, public_jwk, width, public_pem) = describe_public(key.public(), key.path())?;
        let worker = Worker::start(tcti, &key, deadline)?;
        tracing::debug!(key = %key.path().display(), %tcti, key_type = %key_type, "TPM key loaded");
        Ok(TpmSigner {
            key,
            tcti: tcti.clone(),
            key_type,
            public_jwk,
            width,
            public_pem,
            deadline,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// Creates a new signing key of `key_type` inside the TPM at `tcti`
    /// (under the owner hierarchy's primary key, no password), for the key
    /// file `path`. Write [`TpmKeyFile::to_pem`] there, then
    /// [`open`](Self::open) it.
    pub fn create_key(
        key_type: KeyType,
        path: &Path,
        tcti: &Tcti,
        deadline: Duration,
    ) -> Result<TpmKeyFile, TpmError> {
        let template = signing_key_template(key_type).map_err(|e| TpmError::Unsupported {
            path: path.to_path_buf(),
            reason: format!("cannot describe a {key_type} TPM key: {e}"),
        })?;
        create_key(tcti, path, template, deadline)
    }

    /// The key type, from the key's public area.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The public key as a JWK with `alg`.
    pub fn public_jwk(&self) -> PublicJwk {
        self.public_jwk.clone()
    }

    /// The public key as an SPKI PEM (`public.pem`).
    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    /// The key file it loaded.
    pub fn key_file(&self) -> &TpmKeyFile {
        &self.key
    }

    /// The TCTI it talks to.
    pub fn tcti(&self) -> &Tcti {
        &self.tcti
    }

    /// How long each TPM call may take.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Signs `signing_input`, naming the TCTI, the key file and the TPM's
    /// response code on failure.
    pub fn try_sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, TpmError> {
        let (hash, digest_alg) = match self.key_type.jws_algorithm() {
            JwsAlgorithm::RS256 | JwsAlgorithm::ES256 => {
                (HashingAlgorithm::Sha256, &digest::SHA256)
            }
            JwsAlgorithm::ES384 => (HashingAlgorithm::Sha384, &digest::SHA384),
            JwsAlgorithm::ES512 => (HashingAlgorithm::Sha512, &digest::SHA512),
        };
        let digest = digest::digest(digest_alg, signing_input).as_ref().to_vec();
        let hash_scheme = HashScheme::new(hash);
        let scheme = match self.key_type {
            KeyType::Rsa2048 | KeyType::Rsa3072 => SignatureScheme::RsaSsa { hash_scheme },
            _ => SignatureScheme::EcDsa { hash_scheme },
        };
        let mut worker = self.worker.lock().unwrap_or_else(PoisonError::into_inner);
        let current = match worker.take() {
            Some(current) => current,
            None => Worker::start(&self.tcti, &self.key, self.deadline)?,
        };
        let signed = current.sign(digest, scheme, self.deadline);
        match &signed {
            Err(e) if e.lost_connection() => {
                tracing::warn!(tcti = %self.tcti, error = %e, "the TPM connection failed; the next signature opens a new one");
            }
            _ => *worker = Some(current),
        }
        drop(worker);
        self.jws_signature(signed?)
    }

    fn jws_signature(&self, signature: Signature) -> Result<Vec<u8>, TpmError> {
        let unexpected = |what: &str| TpmError::Unsupported {
            path: self.key.path().to_path_buf(),
            reason: format!("the TPM returned {what}"),
        };
        match signature {
            Signature::RsaSsa(rsa) => fixed_width(rsa.signature().value(), self.width)
                .ok_or_else(|| unexpected("an RSA signature longer than the modulus")),
            Signature::EcDsa(ecc) => {
                let r = fixed_width(ecc.signature_r().value(), self.width)
                    .ok_or_else(|| unexpected("an ECDSA r wider than the curve"))?;
                let s = fixed_width(ecc.signature_s().value(), self.width)
                    .ok_or_else(|| unexpected("an ECDSA s wider than the curve"))?;
                Ok([r, s].concat())
            }
            other => Err(unexpected(&format!(
                "a {:?} signature, not the scheme asked for",
                other.algorithm()
            ))),
        }
    }
}

impl Signer for TpmSigner {
    fn algorithm(&self) -> JwsAlgorithm {
        self.key_type.jws_algorithm()
    }

    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignError> {
        self.try_sign(signing_input).map_err(|e| SignError::Device {
            device: format!("TPM at `{}`", self.tcti),
            reason: e.to_string(),
        })
    }

    fn blocks(&self) -> bool {
        true
    }
}

/// The key type and public JWK of a key's public area; an error names
/// what is not a usable signing key.
/// What [`describe_public`] finds: the key type, the JWK, the signature
/// width and the SPKI PEM.
type PublicParts = (KeyType, PublicJwk, usize, String);

fn describe_public(public: &Public, path: &Path) -> Result<PublicParts, TpmError> {
    let unsupported = |reason: String| TpmError::Unsupported {
        path: path.to_path_buf(),
        reason,
    };
    let attributes = public.object_attributes();
    if !attributes.sign_encrypt() || attributes.restricted() {
        return Err(unsupported(
            "the TPM key is not an unrestricted signing key (sign attribute unset, or restricted)"
                .into(),
        ));
    }
    match public {
        Public::Rsa {
            parameters, unique, ..
        } => {
            let key_type = match parameters.key_bits() {
                RsaKeyBits::Rsa2048 => KeyType::Rsa2048,
                RsaKeyBits::Rsa3072 => KeyType::Rsa3072,
                bits => {
                    return Err(unsupported(format!(
                        "an RSA key of {bits:?}; px-device-identity uses RSA:2048 or RSA:3072"
                    )));
                }
            };
            let exponent = match parameters.exponent().value() {
                0 => 65537,
                e => e,
            };
            let e = exponent.to_be_bytes();
            let e = &e[e.iter().position(|b| *b != 0).unwrap_or(3)..];
            let modulus = unique.value();
            let jwk = PublicJwk::rsa(modulus, e, key_type.jws_algorithm());
            let pem = spki_pem(&Components::Rsa { n: modulus, e })
                .map_err(|e| unsupported(format!("cannot encode its public key ({e})")))?;
            Ok((key_type, jwk, modulus.len(), pem))
        }
        Public::Ecc {
            parameters, unique, ..
        } => {
            let (key_type, width, curve) = match parameters.ecc_curve() {
                EccCurve::NistP256 => (KeyType::EccP256, 32, "1.2.840.10045.3.1.7"),
                EccCurve::NistP384 => (KeyType::EccP384, 48, "1.3.132.0.34"),
                EccCurve::NistP521 => (KeyType::EccP521, 66, "1.3.132.0.35"),
                curve => {
                    return Err(unsupported(format!(
                        "an ECC key on {curve:?}; JWS signs with P-256, P-384 or P-521"
                    )));
                }
            };
            let coordinate = |value: &[u8]| {
                fixed_width(value, width)
                    .ok_or_else(|| unsupported("its public point does not fit its curve".into()))
            };
            let x = coordinate(unique.x().value())?;
            let y = coordinate(unique.y().value())?;
            let pem = spki_pem(&Components::Ec {
                curve,
                x: &x,
                y: &y,
            })
            .map_err(|e| unsupported(format!("cannot encode its public key ({e})")))?;
            Ok((
                key_type,
                PublicJwk::ec(&x, &y, key_type.jws_algorithm()),
                width,
                pem,
            ))
        }
        _ => Err(unsupported(
            "the TPM key is neither RSA nor ECC".to_string(),
        )),
    }
}

/// `value` as exactly `width` big-endian bytes: zero-padded on the left,
/// leading zeros dropped; `None` if it does not fit.
fn fixed_width(value: &[u8], width: usize) -> Option<Vec<u8>> {
    let first = value.iter().position(|b| *b != 0).unwrap_or(value.len());
    let significant = &value[first..];
    (significant.len() <= width).then(|| left_pad(significant, width))
}

fn left_pad(value: &[u8], width: usize) -> Vec<u8> {
    let mut out = vec![0; width.saturating_sub(value.len())];
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_coordinates_are_zero_padded_and_long_ones_refused() {
        assert_eq!(fixed_width(&[1, 2], 4), Some(vec![0, 0, 1, 2]));
        assert_eq!(fixed_width(&[0, 0, 1, 2], 2), Some(vec![1, 2]));
        assert_eq!(fixed_width(&[1, 2, 3], 2), None);
    }
}
