//! A device identity: `device.yml` plus the key that signs for it.

use std::path::Path;
use std::sync::Arc;

use crate::error::{ConfigError, Error, KeyError};
use crate::{
    ClientAuth, CommandSigner, DeviceConfig, IdentityPaths, Issuer, KeySecurity, PemSigner,
    PublicJwk, Signer,
};

/// A loaded device identity: its configuration and its signer.
///
/// ```no_run
/// let identity = onesoidc_core::DeviceIdentity::load_default()?;
/// println!("device {} at {}", identity.config.id, identity.issuer()?);
/// # Ok::<(), onesoidc_core::Error>(())
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

    /// Loads `device.yml` and the private key from `paths`.
    ///
    /// A PEM key must match `key_type`; a TPM identity signs through
    /// `px-device-identity`. A private key readable by group or others is
    /// loaded with a warning.
    pub fn load(paths: &IdentityPaths) -> Result<Self, Error> {
        let config = DeviceConfig::load(&paths.config)?;
        let key_path = paths.private_key();
        match config.key_security {
            KeySecurity::Default => {
                warn_if_readable_by_others(&key_path);
                let signer = PemSigner::load(&key_path, config.key_type)?;
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

fn read_public_jwk(path: &Path) -> Result<Option<PublicJwk>, Error> {
    match crate::config::read_identity_file(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::Key(KeyError::Invalid {
                path: path.to_path_buf(),
                reason: format!("not a JWK ({e})"),
            })
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Key(KeyError::Read {
            path: path.to_path_buf(),
            source,
        })),
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{mode:o}"),
                "the private key is readable by other users; run `chmod 600` on it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}
