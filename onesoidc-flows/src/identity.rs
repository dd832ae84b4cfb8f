//! [`DeviceIdentity`]: `device.yml` plus the key that signs for it, loaded
//! from px-device-identity's files.

use std::path::Path;
use std::sync::Arc;

use onesoidc_core::{
    ClientAuth, ConfigError, DeviceConfig, Error, Issuer, KeyError, KeySecurity, KeyType,
    PemSigner, PublicJwk, Signer,
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
    /// others is loaded with a warning. A TPM identity signs through
    /// `px-device-identity` ([`CommandSigner::px_device_identity`]).
    pub fn load(paths: &IdentityPaths) -> Result<Self, Error> {
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
