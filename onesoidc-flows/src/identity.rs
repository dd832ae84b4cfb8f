//! [`DeviceIdentity`]: `device.yml` plus the key that signs for it, loaded
//! from px-device-identity's files.

use std::path::Path;
use std::sync::Arc;

use onesoidc_core::{
    ClientAuth, ConfigError, DeviceConfig, Error, Issuer, KeyError, KeySecurity, KeyType,
    PemSigner, PublicJwk, Signer, is_tpm_key_pem,
};
use onesoidc_fs::{Access, IdentityPaths, MAX_IDENTITY_FILE_BYTES, read_limited};

use crate::signer::CommandSigner;

/// A loaded device identity: its configuration and its signer.
///
/// ```no_run
/// let identity = onesoidc_flows::DeviceIdentity::load_default()?;
/// println!("device {} at {}", identity.config.id, identity.issuer()?);
/// # Ok::<(), onesoidc_flows::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct DeviceIdentity {
    /// The parsed `device.yml`.
    pub config: DeviceConfig,
    /// Signs with the device key.
    pub signer: Arc<dyn Signer>,
    /// The public key, when known (always for PEM keys; from
    /// `public_jwk.json` for TPM keys).
    pub public_jwk: Option<PublicJwk>,
}

impl DeviceIdentity {
    /// Loads the identity from the default paths (see [`IdentityPaths::from_env`]).
    pub fn load_default() -> Result<Self, Error> {
        Self::load(&IdentityPaths::from_env())
    }

    /// Loads `device.yml` and the private key from `paths` (each at most
    /// [`MAX_IDENTITY_FILE_BYTES`]; symlinks are followed).
    ///
    /// A PEM key must match `key_type`; a private key readable by group or
    /// others is loaded with a warning.
    ///
    /// A TPM identity (`key_security: tpm`) whose `private.pem` is a
    /// `TSS2 PRIVATE KEY` signs in process with the `tpm` feature
    /// (onesoidc-tpm; the TPM named by `TPM2TOOLS_TCTI` / `TSS2_TCTI`, default
    /// `device:/dev/tpmrm0`). Without the feature it signs through
    /// px-device-identity ([`CommandSigner::px_device_identity`]), saying so,
    /// or fails naming both ways out when px-device-identity is not
    /// installed. Other TPM identities sign through px-device-identity.
    pub fn load(paths: &IdentityPaths) -> Result<Self, Error> {
        Self::load_inner(paths, None)
    }

    /// [`load`](Self::load) with the TPM named by `tcti` (a `--tcti`
    /// option) instead of the environment's.
    #[cfg(feature = "tpm")]
    pub fn load_with_tcti(paths: &IdentityPaths, tcti: &onesoidc_tpm::Tcti) -> Result<Self, Error> {
        Self::load_inner(paths, Some(tcti))
    }

    fn load_inner(paths: &IdentityPaths, tcti: Option<&Tcti>) -> Result<Self, Error> {
        finish_interrupted_write(paths)?;
        let config = load_device_config(&paths.config)?;
        let key_path = paths.private_key();
        match config.key_security {
            KeySecurity::Default => {
                let signer = load_pem_signer(&key_path, config.key_type)?;
                let public_jwk = Some(signer.public_jwk());
                Ok(DeviceIdentity {
                    config,
                    signer: Arc::new(signer),
                    public_jwk,
                })
            }
            KeySecurity::Tpm => {
                if let Some(pem) = read_tpm_key(&key_path)? {
                    let (signer, public_jwk) = tpm_signer(&config, paths, &pem, tcti)?;
                    return Ok(DeviceIdentity {
                        config,
                        signer,
                        public_jwk,
                    });
                }
                let alg = config.key_type.jws_algorithm();
                let public_jwk = read_public_jwk(&paths.public_jwk())?;
                Ok(DeviceIdentity {
                    config,
                    signer: Arc::new(CommandSigner::px_device_identity(alg)),
                    public_jwk,
                })
            }
        }
    }

    /// An identity from parts already in memory (tests, custom key stores).
    pub fn from_parts(config: DeviceConfig, signer: Arc<dyn Signer>) -> Self {
        DeviceIdentity {
            config,
            signer,
            public_jwk: None,
        }
    }

    /// The issuer, or [`ConfigError::NotRegistered`] for an unmanaged identity.
    pub fn issuer(&self) -> Result<Issuer, ConfigError> {
        Ok(self.config.registration()?.issuer)
    }

    /// The client credentials, or [`ConfigError::NotRegistered`].
    pub fn client_auth(&self) -> Result<ClientAuth, ConfigError> {
        let registration = self.config.registration()?;
        Ok(ClientAuth::new(registration.client_id, self.signer.clone()))
    }
}

/// Reads and parses `device.yml` at `path` (at most
/// [`MAX_IDENTITY_FILE_BYTES`], UTF-8; symlinks are followed).
///
/// ```no_run
/// let config = onesoidc_flows::load_device_config("/etc/px-device-identity/device.yml")?;
/// println!("device {}", config.id);
/// # Ok::<(), onesoidc_flows::core::ConfigError>(())
/// ```
pub fn load_device_config(path: impl AsRef<Path>) -> Result<DeviceConfig, ConfigError> {
    let path = path.as_ref();
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let bytes = read_limited(path, MAX_IDENTITY_FILE_BYTES).map_err(read_error)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "it is not UTF-8 text",
        ))
    })?;
    DeviceConfig::from_yaml_str(&text, path)
}

/// Loads the PEM private key at `path` and checks that it holds a key of
/// `expected` type. A key readable by group or others loads with a warning.
pub fn load_pem_signer(path: impl AsRef<Path>, expected: KeyType) -> Result<PemSigner, KeyError> {
    let path = path.as_ref();
    let read_error = |source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let bytes = read_limited(path, MAX_IDENTITY_FILE_BYTES).map_err(read_error)?;
    warn_if_readable_by_others(path);
    let signer = PemSigner::from_pem(&bytes, path)?;
    if signer.key_type() != expected {
        return Err(KeyError::Mismatch {
            path: path.to_path_buf(),
            expected,
            found: signer.key_type().to_string(),
        });
    }
    Ok(signer)
}

/// The TPM's TCTI when this build has the `tpm` feature (nothing to name
/// without it).
#[cfg(feature = "tpm")]
type Tcti = onesoidc_tpm::Tcti;
#[cfg(not(feature = "tpm"))]
type Tcti = std::convert::Infallible;

/// The key file's text when it is a `TSS2 PRIVATE KEY`; `None` when it is
/// missing or another kind of file (px-device-identity's TPM setups vary).
fn read_tpm_key(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match read_limited(path, MAX_IDENTITY_FILE_BYTES) {
        Ok(bytes) => Ok(is_tpm_key_pem(&bytes).then_some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Key(KeyError::Read {
            path: path.to_path_buf(),
            source,
        })),
    }
}

/// Loads the TPM key in `pem` into the TPM (`tcti`, else the
/// environment's) and checks it is of `key_type`.
#[cfg(feature = "tpm")]
fn tpm_signer(
    config: &DeviceConfig,
    paths: &IdentityPaths,
    pem: &[u8],
    tcti: Option<&Tcti>,
) -> Result<(Arc<dyn Signer>, Option<PublicJwk>), Error> {
    let path = &paths.private_key();
    let device = |tcti: &str| format!("TPM at `{tcti}`");
    let tcti = match tcti {
        Some(tcti) => tcti.clone(),
        None => Tcti::from_env().map_err(|e| KeyError::Device {
            path: path.to_path_buf(),
            device: "the TPM".into(),
            reason: e.to_string(),
        })?,
    };
    let signer = onesoidc_tpm::TpmSigner::open(pem, path, &tcti).map_err(|e| KeyError::Device {
        path: path.to_path_buf(),
        device: device(tcti.as_str()),
        reason: e.to_string(),
    })?;
    if signer.key_type() != config.key_type {
        return Err(Error::Key(KeyError::Mismatch {
            path: path.to_path_buf(),
            expected: config.key_type,
            found: signer.key_type().to_string(),
        }));
    }
    let public_jwk = signer.public_jwk();
    Ok((Arc::new(signer), Some(public_jwk)))
}

/// Without the `tpm` feature: px-device-identity signs, when installed.
#[cfg(not(feature = "tpm"))]
fn tpm_signer(
    config: &DeviceConfig,
    paths: &IdentityPaths,
    _pem: &[u8],
    _tcti: Option<&Tcti>,
) -> Result<(Arc<dyn Signer>, Option<PublicJwk>), Error> {
    let path = &paths.private_key();
    let command = CommandSigner::px_device_identity(config.key_type.jws_algorithm());
    if !command.program().is_file() {
        return Err(Error::Key(KeyError::Device {
            path: path.to_path_buf(),
            device: "the TPM".into(),
            reason: format!(
                "this onesoidc was built without the `tpm` feature and px-device-identity is not installed ({}); build onesoidc with `--features tpm`, or install px-device-identity",
                command.program().display()
            ),
        }));
    }
    tracing::warn!(
        key = %path.display(),
        program = %command.program().display(),
        "this onesoidc was built without the `tpm` feature: the TPM key signs through px-device-identity, one process per signature (build with `--features tpm` to sign in process)"
    );
    let public_jwk = read_public_jwk(&paths.public_jwk())?;
    Ok((Arc::new(command), public_jwk))
}

fn read_public_jwk(path: &Path) -> Result<Option<PublicJwk>, Error> {
    match read_limited(path, MAX_IDENTITY_FILE_BYTES) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::Key(KeyError::Invalid {
                path: path.to_path_buf(),
                reason: format!(
                    "not a JWK ({:?} error at line {}, column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            })
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Key(KeyError::Read {
            path: path.to_path_buf(),
            source,
        })),
    }
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path) {
        let access = Access::of(&meta);
        if access.readable_by_others() {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:o}", access.mode),
                "the private key is readable by other users; run `chmod 600` on it"
            );
        }
    }
}

/// Completes (or abandons) a replacement of the identity at `paths` that a
/// crash interrupted, logging what it did; an error names the file and
/// what to do.
pub(crate) fn finish_interrupted_write(paths: &IdentityPaths) -> Result<(), ConfigError> {
    match paths.finish_interrupted_write() {
        Ok(onesoidc_fs::Interrupted::Nothing) => Ok(()),
        Ok(onesoidc_fs::Interrupted::Completed(files)) => {
            tracing::warn!(switch = %paths.switch().display(), files, "completed a replacement of the device identity that was interrupted");
            Ok(())
        }
        Ok(onesoidc_fs::Interrupted::Abandoned(files)) => {
            tracing::warn!(config = %paths.config.display(), files, "removed the staged files of an interrupted replacement of the device identity; the previous identity is unchanged");
            Ok(())
        }
        Err(source) => Err(ConfigError::Write {
            path: paths.switch(),
            source: std::io::Error::new(
                source.kind(),
                format!(
                    "an interrupted replacement of the device identity cannot be finished ({source}); run onesoidc as the identity's owner (or root) once to finish it"
                ),
            ),
        }),
    }
}
