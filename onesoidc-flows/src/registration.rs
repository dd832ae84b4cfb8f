//! Registering a device ([PROTOCOL §10](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#10-device-registration-px-device-identitys-protocol)), producing the same files as
//! px-device-identity, so existing tools keep working.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use onesoidc_core::{
    ClientId, DeviceConfig, Error, KeySecurity, KeyType, MachineFacts, PemSigner, PublicJwk,
    REGISTRATION_POLL_INTERVAL, REGISTRATION_TIMEOUT, RegistrationBody, RegistrationStatus, Signer,
    parse_registration_response, parse_registration_status, registration_request,
    registration_status_request, registration_status_url, registration_url,
};
use onesoidc_fs::{IdentityPaths, NewFile};

use crate::identity::finish_interrupted_write;
use onesoidc_http::{HttpClient, Policy};
use tokio::time::Instant;

use crate::DeviceIdentity;
use crate::client::exchange;

/// px-device-identity's config format version.
pub const CONFIG_VERSION: &str = "0.0.3";

/// What to register, and where the identity goes. Build it with the
/// setters (every setting has a default, given on its setter); the fields
/// are public to read.
///
/// ```
/// use onesoidc_flows::DeviceRegistration;
/// use onesoidc_flows::core::KeyType;
/// let registration = DeviceRegistration::new("ServerName", "Bangkok", "server")
///     .provider("https://idp-server.ones-now.com", "onesid1.com")
///     .key_type(KeyType::Rsa2048);
/// assert_eq!(registration.host.as_deref(), Some("https://idp-server.ones-now.com"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
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
    /// Key type to generate.
    pub key_type: KeyType,
    /// Where the key is made: a PEM file (`Default`) or inside the TPM
    /// (`Tpm`, the `tpm` feature).
    pub key_security: KeySecurity,
    /// The TPM to create the key in (`None`: `TPM2TOOLS_TCTI` /
    /// `TSS2_TCTI`, else `device:/dev/tpmrm0`).
    #[cfg(feature = "tpm")]
    pub tcti: Option<onesoidc_tpm::Tcti>,
    /// Where `device.yml` and the keys go.
    pub paths: IdentityPaths,
    /// Replace an existing identity.
    pub force: bool,
    /// How long to wait for an administrator.
    pub timeout: Duration,
    /// How often to ask.
    pub poll_interval: Duration,
    /// The HTTP rules of the registration's requests.
    pub policy: Policy,
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
            key_security: KeySecurity::Default,
            #[cfg(feature = "tpm")]
            tcti: None,
            paths: IdentityPaths::from_env(),
            force: false,
            timeout: REGISTRATION_TIMEOUT,
            poll_interval: REGISTRATION_POLL_INTERVAL,
            policy: Policy::default(),
        }
    }

    /// Registers with the provider at `host` (e.g. `https://idp-server.ones-now.com`) in `domain`.
    /// Default: none, an unmanaged identity.
    pub fn provider(mut self, host: &str, domain: &str) -> Self {
        self.host = Some(host.trim_end_matches('/').to_string());
        self.domain = Some(domain.to_string());
        self
    }

    /// The key type to generate (default `ECC:p256`).
    pub fn key_type(mut self, key_type: KeyType) -> Self {
        self.key_type = key_type;
        self
    }

    /// Where the key is made (default [`KeySecurity::Default`], a PEM
    /// file). [`KeySecurity::Tpm`] creates it inside the TPM and writes
    /// its `TSS2 PRIVATE KEY` file, as px-device-identity `--security TPM`
    /// does; it needs the `tpm` feature (without it, registering fails
    /// before anything is sent, saying so).
    pub fn key_security(mut self, key_security: KeySecurity) -> Self {
        self.key_security = key_security;
        self
    }

    /// The TPM to create the key in (with [`KeySecurity::Tpm`]).
    #[cfg(feature = "tpm")]
    pub fn tcti(mut self, tcti: onesoidc_tpm::Tcti) -> Self {
        self.tcti = Some(tcti);
        self
    }

    /// The TPM to create the key in, as written on a command line
    /// (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`), whether or
    /// not this build has the `tpm` feature: with it, parsed (the error
    /// says what is wrong with the text); without it, kept nowhere, since
    /// registering with [`KeySecurity::Tpm`] then fails saying to build
    /// with `tpm`.
    ///
    /// ```
    /// use onesoidc_flows::DeviceRegistration;
    /// let registration = DeviceRegistration::new("Kiosk", "Hall", "SERVER")
    ///     .tcti_text("device:/dev/tpmrm0");
    /// assert!(registration.is_ok());
    /// ```
    pub fn tcti_text(self, text: &str) -> Result<Self, String> {
        #[cfg(feature = "tpm")]
        {
            let tcti = text
                .parse::<onesoidc_tpm::Tcti>()
                .map_err(|e| e.to_string())?;
            Ok(self.tcti(tcti))
        }
        #[cfg(not(feature = "tpm"))]
        {
            let _ = text;
            Ok(self)
        }
    }

    /// Where `device.yml` and the keys go (default [`IdentityPaths::from_env`]).
    pub fn paths(mut self, paths: IdentityPaths) -> Self {
        self.paths = paths;
        self
    }

    /// Replace an existing identity (default: refuse). The old one stays
    /// until the new one is approved and written.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// How long to wait for an administrator (default 300 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How often to ask whether it was approved (default 10 s; at least 10 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// The HTTP rules the registration's requests obey (default
    /// [`Policy::default`]: https except loopback, no redirects, 1 MiB, 30 s).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Finishes a replacement of the identity a crash interrupted, then
    /// refuses to replace an identity that exists (unless forced).
    fn refuse_to_overwrite(&self) -> Result<(), Error> {
        finish_interrupted_write(&self.paths)?;
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

    fn config(&self, id: String, client_id: Option<ClientId>) -> DeviceConfig {
        DeviceConfig {
            id,
            client_id,
            host: self.host.clone(),
            domain: self.domain.clone(),
            key_type: self.key_type,
            key_security: self.key_security,
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

    /// Writes the keys and device.yml all or nothing, even across a crash
    /// ([`onesoidc_fs::replace_set`]: staged, one switch, renamed, with
    /// `device.yml` last); the key directory is private (0700). Checks again
    /// here, after the wait for an administrator, that no identity has
    /// appeared meanwhile.
    /// A new key of [`key_type`](Self::key_type), where
    /// [`key_security`](Self::key_security) says (blocks while a TPM
    /// creates it).
    fn new_key(&self) -> Result<NewKey, Error> {
        match self.key_security {
            KeySecurity::Default => Ok(NewKey::Pem(PemSigner::generate(self.key_type)?)),
            KeySecurity::Tpm => self.new_tpm_key(),
        }
    }

    #[cfg(feature = "tpm")]
    fn new_tpm_key(&self) -> Result<NewKey, Error> {
        use onesoidc_tpm::{Tcti, TpmSigner};
        let path = self.paths.private_key();
        let fail = |tcti: &str, e: onesoidc_tpm::TpmError| {
            Error::Key(onesoidc_core::KeyError::Device {
                path: path.clone(),
                device: format!("TPM at `{tcti}`"),
                reason: e.to_string(),
            })
        };
        let tcti = match &self.tcti {
            Some(tcti) => tcti.clone(),
            None => Tcti::from_env().map_err(|e| fail("the environment's TCTI", e))?,
        };
        let deadline = TpmSigner::DEFAULT_DEADLINE;
        let file = TpmSigner::create_key(self.key_type, &path, &tcti, deadline)
            .map_err(|e| fail(tcti.as_str(), e))?;
        let private_pem = file.to_pem().map_err(|e| fail(tcti.as_str(), e))?;
        let signer =
            TpmSigner::from_key_file(file, &tcti, deadline).map_err(|e| fail(tcti.as_str(), e))?;
        Ok(NewKey::Tpm(Box::new(signer), private_pem))
    }

    #[cfg(not(feature = "tpm"))]
    fn new_tpm_key(&self) -> Result<NewKey, Error> {
        Err(Error::Key(onesoidc_core::KeyError::Device {
            path: self.paths.private_key(),
            device: "the TPM".into(),
            reason: "this onesoidc was built without the `tpm` feature, so it cannot create keys in a TPM; build it with `--features tpm` (or register with px-device-identity --security TPM)".into(),
        }))
    }

    /// [`new_key`](Self::new_key) off the async runtime.
    async fn new_key_blocking(&self) -> Result<NewKey, Error> {
        if self.key_security == KeySecurity::Default {
            return self.new_key();
        }
        let registration = self.clone();
        tokio::task::spawn_blocking(move || registration.new_key())
            .await
            .map_err(|e| {
                Error::Key(onesoidc_core::KeyError::Device {
                    path: self.paths.private_key(),
                    device: "the TPM".into(),
                    reason: format!("creating the key stopped: {e}"),
                })
            })?
    }

    fn write(&self, key: NewKey, config: DeviceConfig) -> Result<DeviceIdentity, Error> {
        self.refuse_to_overwrite()?;
        let write_error =
            |path: &std::path::Path, source: std::io::Error| onesoidc_core::ConfigError::Write {
                path: path.to_path_buf(),
                source,
            };
        let yaml = config
            .to_yaml_string()
            .map_err(|e| write_error(&self.paths.config, std::io::Error::other(e.to_string())))?;
        let (private, public) = key.pems()?;
        let public_jwk = key.public_jwk();
        let (private_path, public_path, jwk_path) = (
            self.paths.private_key(),
            self.paths.public_key(),
            self.paths.public_jwk(),
        );
        let jwk = serde_json::to_vec(&public_jwk)
            .map_err(|e| write_error(&jwk_path, std::io::Error::other(e.to_string())))?;
        onesoidc_fs::create_private_dir(&self.paths.key_dir)
            .map_err(|e| write_error(&self.paths.key_dir, std::io::Error::other(e.to_string())))?;
        onesoidc_fs::replace_set(
            &[
                NewFile::new(&public_path, public.as_bytes(), 0o644),
                NewFile::new(&jwk_path, &jwk, 0o644),
                NewFile::new(&private_path, private.as_bytes(), 0o600),
                NewFile::new(&self.paths.config, yaml.as_bytes(), 0o644),
            ],
            &self.paths.switch(),
        )
        .map_err(|source| write_error(&self.paths.config, source))?;
        self.make_dpop_key();
        Ok(DeviceIdentity {
            config,
            signer: key.into_signer(),
            public_jwk: Some(public_jwk),
        })
    }

    /// Makes `dpop.pem` beside the new identity if there is none, so a
    /// service whose key directory is read-only at run time still has the
    /// P-256 key DPoP falls back to when the provider does not accept the
    /// device key's algorithm (docs/ARCHITECTURE.md, "DPoP keys"). The
    /// identity is written by then: a failure here is a warning, and the
    /// key is made on first use instead.
    fn make_dpop_key(&self) {
        let path = self.paths.dpop_key();
        if let Err(e) = crate::dpop::load_or_create_dpop_key(&path) {
            tracing::warn!(
                path = %path.display(),
                "the identity is written, but not the DPoP key: {e}; it is made on first use of DPoP if the key directory is writable then"
            );
        }
    }
}

/// A key made for a registration: in memory, or inside a TPM.
enum NewKey {
    Pem(PemSigner),
    /// The TPM signer and the text of its `TSS2 PRIVATE KEY` file.
    #[cfg(feature = "tpm")]
    Tpm(Box<onesoidc_tpm::TpmSigner>, String),
}

impl NewKey {
    fn public_jwk(&self) -> PublicJwk {
        match self {
            NewKey::Pem(signer) => signer.public_jwk(),
            #[cfg(feature = "tpm")]
            NewKey::Tpm(signer, _) => signer.public_jwk(),
        }
    }

    /// `private.pem` and `public.pem`.
    fn pems(&self) -> Result<(String, String), Error> {
        match self {
            NewKey::Pem(signer) => Ok((signer.private_key_pem()?, signer.public_key_pem()?)),
            #[cfg(feature = "tpm")]
            NewKey::Tpm(signer, private) => {
                Ok((private.clone(), signer.public_key_pem().to_string()))
            }
        }
    }

    fn into_signer(self) -> Arc<dyn Signer> {
        match self {
            NewKey::Pem(signer) => Arc::new(signer),
            #[cfg(feature = "tpm")]
            NewKey::Tpm(signer, _) => Arc::new(*signer),
        }
    }
}

/// What this machine is, for the registration body: the OS, the kernel
/// release and the memory (from `/proc` on Linux; empty or 0 elsewhere).
fn machine_facts() -> MachineFacts {
    MachineFacts {
        operating_system: std::env::consts::OS.to_string(),
        operating_system_release: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        system_architecture: std::env::consts::ARCH.to_string(),
        system_memory: total_memory_bytes().unwrap_or(0),
    }
}

fn total_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
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
    let key = registration.new_key()?;
    let mut unmanaged = registration.clone();
    unmanaged.host = None;
    let config = unmanaged.config(uuid::Uuid::new_v4().to_string(), None);
    unmanaged.write(key, config)
}

/// Registers the device: generates a key, submits it, reports the
/// verification code through `progress`, waits for an administrator, and
/// writes the identity only once approved. Rejection, timeout, an error or
/// cancellation (dropping the future) leave the previous identity untouched.
///
/// ```no_run
/// use onesoidc_flows::{DeviceRegistration, RegistrationProgress, register_device};
/// # async fn run() -> Result<(), onesoidc_flows::Error> {
/// let http = onesoidc_flows::http_client::ReqwestClient::new()?;
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
    http: impl HttpClient + 'static,
    registration: &DeviceRegistration,
    mut progress: impl FnMut(RegistrationProgress),
) -> Result<DeviceIdentity, Error> {
    let (Some(host), Some(domain)) = (&registration.host, &registration.domain) else {
        return create_unmanaged_identity(registration);
    };
    registration.refuse_to_overwrite()?;
    let http = registration.policy.apply(http);
    let key = registration.new_key_blocking().await?;
    let body = RegistrationBody::new(
        key.public_jwk(),
        &registration.title,
        &registration.location,
        domain,
        &registration.role,
        machine_facts(),
    );
    let endpoint = registration_url(host);
    let code = exchange(&http, &endpoint, registration_request(host, &body)?, |r| {
        parse_registration_response(&endpoint, r)
    })
    .await?;
    // The code is for the administrator; the caller shows it (`progress`).
    tracing::debug!(verification_code = %code, "registration submitted");
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
        let status = exchange(
            &http,
            &status_endpoint,
            registration_status_request(host, &code)?,
            |r| parse_registration_status(&status_endpoint, r),
        )
        .await?;
        match status {
            RegistrationStatus::Pending => continue,
            RegistrationStatus::Approved {
                device_id,
                client_id,
            } => {
                let config = registration.config(device_id, Some(client_id));
                return registration.write(key, config);
            }
            RegistrationStatus::Rejected => {
                return Err(Error::RegistrationRejected {
                    endpoint: status_endpoint.into_string(),
                    verification_code: code,
                });
            }
            RegistrationStatus::Failed => {
                return Err(Error::RegistrationFailed {
                    endpoint: status_endpoint.into_string(),
                    verification_code: code,
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
