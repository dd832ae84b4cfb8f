//! Registering a device (PROTOCOL §10), producing the same files as
//! px-device-identity, so existing tools keep working.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use onesoidc_core::{
    DeviceConfig, DeviceIdentity, Error, IdentityPaths, KeySecurity, KeyType, PemSigner,
    REGISTRATION_POLL_INTERVAL, REGISTRATION_TIMEOUT, RegistrationBody, RegistrationStatus,
    parse_registration_response, parse_registration_status, registration_request,
    registration_status_request, registration_status_url, registration_url, write_files_atomically,
};
use onesoidc_http::HttpClient;

use crate::client::send;
use tokio::time::Instant;

/// px-device-identity's config format version.
pub const CONFIG_VERSION: &str = "0.0.3";

/// What to register, and where the identity goes.
///
/// ```
/// use onesoidc_flows::DeviceRegistration;
/// let registration = DeviceRegistration::new("ServerName", "Bangkok", "server")
///     .provider("https://idp-server.ones-now.com", "onesid1.com");
/// assert_eq!(registration.key_type.to_string(), "ECC:p256");
/// ```
#[derive(Debug, Clone)]
pub struct DeviceRegistration {
    /// The provider's base URL (`host`); `None` for an unmanaged identity.
    pub host: Option<String>,
    /// The domain (required with a provider).
    pub domain: Option<String>,
    /// Device title.
    pub title: String,
    /// Device location.
    pub location: String,
    /// Device role (`server`, `desktop`, ...); written lower case.
    pub role: String,
    /// Key type to generate (default ECC:p256).
    pub key_type: KeyType,
    /// Where device.yml and the keys go.
    pub paths: IdentityPaths,
    /// Replace an existing identity.
    pub force: bool,
    /// How long to wait for an administrator (default 300 s).
    pub timeout: Duration,
    /// How often to ask (default 10 s).
    pub poll_interval: Duration,
}

/// Progress of a registration, for showing to the person registering.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrationProgress {
    /// Submitted: an administrator approves it by this code.
    Submitted {
        /// Show this prominently.
        verification_code: String,
        /// How long we wait.
        timeout: Duration,
    },
    /// Still pending.
    Waiting {
        /// Time left.
        remaining: Duration,
    },
}

impl DeviceRegistration {
    /// An unmanaged registration at the default paths; add [`DeviceRegistration::provider`] to register.
    pub fn new(title: &str, location: &str, role: &str) -> Self {
        DeviceRegistration {
            host: None,
            domain: None,
            title: title.to_string(),
            location: location.to_string(),
            role: role.to_lowercase(),
            key_type: KeyType::EccP256,
            paths: IdentityPaths::from_env(),
            force: false,
            timeout: REGISTRATION_TIMEOUT,
            poll_interval: REGISTRATION_POLL_INTERVAL,
        }
    }

    /// Registers with the provider at `host` (e.g. `https://idp-server.ones-now.com`) in `domain`.
    pub fn provider(mut self, host: &str, domain: &str) -> Self {
        self.host = Some(host.trim_end_matches('/').to_string());
        self.domain = Some(domain.to_string());
        self
    }

    fn refuse_to_overwrite(&self) -> Result<(), Error> {
        if self.force {
            return Ok(());
        }
        for path in [&self.paths.config, &self.paths.private_key()] {
            if path.exists() {
                return Err(
                    onesoidc_core::ConfigError::AlreadyExists { path: path.clone() }.into(),
                );
            }
        }
        Ok(())
    }

    fn config(&self, id: String, client_id: Option<String>) -> DeviceConfig {
        DeviceConfig {
            id,
            client_id,
            host: self.host.clone(),
            domain: self.domain.clone(),
            key_type: self.key_type,
            key_security: KeySecurity::Default,
            is_managed: self.host.is_some(),
            title: Some(self.title.clone()),
            location: Some(self.location.clone()),
            role: Some(self.role.to_lowercase()),
            config_version: Some(CONFIG_VERSION.to_string()),
            initiated_on: Some(initiated_on(SystemTime::now())),
            extra: Default::default(),
            path: self.paths.config.clone(),
        }
    }

    /// Writes the keys and device.yml, all or nothing.
    fn write(&self, signer: PemSigner, config: DeviceConfig) -> Result<DeviceIdentity, Error> {
        let write_error = |path: PathBuf, e: String| onesoidc_core::ConfigError::Write {
            path,
            source: std::io::Error::other(e),
        };
        let yaml = config
            .to_yaml_string()
            .map_err(|e| write_error(self.paths.config.clone(), e.to_string()))?;
        let private = signer.private_key_pem()?;
        let public = signer.public_key_pem()?;
        let public_jwk = signer.public_jwk();
        let jwk = serde_json::to_vec(&public_jwk)
            .map_err(|e| write_error(self.paths.public_jwk(), e.to_string()))?;
        let (private_path, public_path, jwk_path) = (
            self.paths.private_key(),
            self.paths.public_key(),
            self.paths.public_jwk(),
        );
        write_files_atomically(&[
            (&private_path, private.as_bytes(), 0o600),
            (&public_path, public.as_bytes(), 0o644),
            (&jwk_path, &jwk, 0o644),
            (&self.paths.config, yaml.as_bytes(), 0o644),
        ])
        .map_err(|source| onesoidc_core::ConfigError::Write {
            path: self.paths.config.clone(),
            source,
        })?;
        Ok(DeviceIdentity {
            config,
            signer: Arc::new(signer),
            public_jwk: Some(public_jwk),
        })
    }
}

/// `2021-03-08 15:22:00.816527`, as px-device-identity writes `initiated_on` (UTC).
fn initiated_on(now: SystemTime) -> String {
    humantime::format_rfc3339_micros(now)
        .to_string()
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_string()
}

/// Creates an unmanaged identity: a new key and device.yml, no provider.
pub fn create_unmanaged_identity(
    registration: &DeviceRegistration,
) -> Result<DeviceIdentity, Error> {
    registration.refuse_to_overwrite()?;
    let signer = PemSigner::generate(registration.key_type)?;
    let mut unmanaged = registration.clone();
    unmanaged.host = None;
    let config = unmanaged.config(uuid::Uuid::new_v4().to_string(), None);
    unmanaged.write(signer, config)
}

/// Registers the device: generates a key, submits it, reports the
/// verification code through `progress`, waits for an administrator, and
/// writes the identity only once approved. Rejection, timeout, an error or
/// cancellation (dropping the future) leave the previous identity untouched.
///
/// ```no_run
/// use std::sync::Arc;
/// use onesoidc_flows::{DeviceRegistration, RegistrationProgress, register_device};
/// # async fn run() -> Result<(), onesoidc_flows::Error> {
/// let http = Arc::new(onesoidc_flows::http_client::ReqwestClient::new().unwrap());
/// let registration = DeviceRegistration::new("ServerName", "Bangkok", "server")
///     .provider("https://idp-server.ones-now.com", "onesid1.com");
/// let identity = register_device(http, &registration, |p| {
///     if let RegistrationProgress::Submitted { verification_code, .. } = p {
///         println!("Ask an administrator to approve code {verification_code}");
///     }
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn register_device(
    http: Arc<dyn HttpClient>,
    registration: &DeviceRegistration,
    mut progress: impl FnMut(RegistrationProgress),
) -> Result<DeviceIdentity, Error> {
    let (Some(host), Some(domain)) = (&registration.host, &registration.domain) else {
        return create_unmanaged_identity(registration);
    };
    registration.refuse_to_overwrite()?;
    let signer = PemSigner::generate(registration.key_type)?;
    let body = RegistrationBody::for_this_machine(
        signer.public_jwk(),
        &registration.title,
        &registration.location,
        domain,
        &registration.role,
    );
    let endpoint = registration_url(host);
    let response = send(http.as_ref(), &endpoint, registration_request(host, &body)?).await?;
    let code = parse_registration_response(&endpoint, &response)?;
    tracing::info!(verification_code = %code, "registration submitted");
    progress(RegistrationProgress::Submitted {
        verification_code: code.clone(),
        timeout: registration.timeout,
    });
    let began = Instant::now();
    let status_endpoint = registration_status_url(host, &code);
    loop {
        let elapsed = began.elapsed();
        if elapsed >= registration.timeout {
            return Err(Error::Expired {
                what: format!("registration {code} (no administrator approved it)"),
                after: registration.timeout,
            });
        }
        let remaining = registration.timeout - elapsed;
        progress(RegistrationProgress::Waiting { remaining });
        tokio::time::sleep(registration.poll_interval.min(remaining)).await;
        let response = send(
            http.as_ref(),
            &status_endpoint,
            registration_status_request(host, &code)?,
        )
        .await?;
        match parse_registration_status(&status_endpoint, &response)? {
            RegistrationStatus::Pending => continue,
            RegistrationStatus::Approved {
                device_id,
                client_id,
            } => {
                let config = registration.config(device_id, Some(client_id));
                return registration.write(signer, config);
            }
            RegistrationStatus::Rejected => {
                return Err(Error::OAuth {
                    endpoint: status_endpoint,
                    status: 200,
                    error: "access_denied".into(),
                    description: Some(format!("an administrator rejected registration {code}")),
                });
            }
            RegistrationStatus::Failed => {
                return Err(Error::InvalidResponse {
                    endpoint: status_endpoint,
                    status: 200,
                    reason: format!("the provider reports an error with registration {code}"),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initiated_on_matches_px_format() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_615_216_920_816_527);
        assert_eq!(initiated_on(t), "2021-03-08 15:22:00.816527");
        assert_eq!(
            initiated_on(SystemTime::UNIX_EPOCH),
            "1970-01-01 00:00:00.000000"
        );
    }
}
