//! What the provider starts with: users, applications, lifetimes, an
//! auto-approve policy and pre-registered devices; and the JSON config file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use onesoidc_core::PublicJwk;
use serde::{Deserialize, Serialize};

use crate::jose::DeviceKey;

/// The `client_id` of the default application `vhh-server`.
pub const DEFAULT_VHH_CLIENT_ID: &str = "3c5b8f2e-7a41-4d9e-9b6c-1f0a2e4d8c73";

/// An application listed by `/.well-known/applications` (PROTOCOL §9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// The name clients look the application up by, e.g. `vhh-server`.
    pub client_identifier: String,
    /// The application's OAuth client id.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// Absolute URL or a path (resolved against the issuer's origin by clients).
    pub url: String,
    /// What the access tokens for this application (`resource` = its
    /// `url`) are: RFC 9068 JWTs (default) or opaque strings, which the
    /// application introspects. Config: `"access_token_format": "jwt" | "opaque"`.
    /// Not part of the `/.well-known/applications` listing.
    #[serde(default, skip_serializing)]
    pub access_token_format: AccessTokenFormat,
    /// Token requests for this application (`resource` = its `url`) must
    /// carry a DPoP proof (RFC 9449), else `400 invalid_dpop_proof`.
    /// Config: `"require_dpop": true`. Not part of the listing.
    #[serde(default, skip_serializing)]
    pub require_dpop: bool,
}

/// The form of the access tokens issued for an [`Application`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessTokenFormat {
    /// An RFC 9068 JWT (`typ: at+jwt`), signed by the provider's key.
    #[default]
    Jwt,
    /// A random string: only introspection (RFC 7662) tells what it is.
    Opaque,
}

/// What the simulated user answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserDecision {
    /// Approve the CIBA request / registration (QR sessions: scan them).
    Approve,
    /// Deny the CIBA request / reject the registration (QR sessions: leave them).
    Deny,
}

/// Answer automatically, `after` a delay (measured on tokio's clock).
///
/// Applies to CIBA requests (approved as, or denied for, the hinted user),
/// QR sessions (scanned by the first configured user when the decision is
/// [`UserDecision::Approve`]) and registrations (approved or rejected). The
/// policy in force when a request arrives is the one that answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AutoApprove {
    /// How long after the request to answer.
    pub after: Duration,
    /// The answer.
    pub user_decision: UserDecision,
}

impl AutoApprove {
    /// Approve everything `after` the given delay.
    pub fn approve_after(after: Duration) -> Self {
        AutoApprove {
            after,
            user_decision: UserDecision::Approve,
        }
    }

    /// Deny everything `after` the given delay.
    pub fn deny_after(after: Duration) -> Self {
        AutoApprove {
            after,
            user_decision: UserDecision::Deny,
        }
    }
}

/// [`AutoApprove`] as JSON: `{"after_ms": 1500, "decision": "approve"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AutoApproveJson {
    pub after_ms: u64,
    pub decision: UserDecision,
}

impl From<AutoApproveJson> for AutoApprove {
    fn from(j: AutoApproveJson) -> Self {
        AutoApprove {
            after: Duration::from_millis(j.after_ms),
            user_decision: j.decision,
        }
    }
}

impl From<AutoApprove> for AutoApproveJson {
    fn from(a: AutoApprove) -> Self {
        AutoApproveJson {
            after_ms: u64::try_from(a.after.as_millis()).unwrap_or(u64::MAX),
            decision: a.user_decision,
        }
    }
}

/// A device registered when the provider starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSeed {
    /// The device id (`id` in device.yml).
    pub device_id: String,
    /// The OAuth client id (`client_id` in device.yml).
    pub client_id: String,
    /// The device's public key; its client assertions must verify with it.
    pub public_jwk: PublicJwk,
}

/// The provider's configuration. [`Default`] makes the demo work: users
/// `alice` and `bob`, the application `vhh-server`, OnesID-like lifetimes.
///
/// | field | default |
/// | --- | --- |
/// | `users` | `["alice", "bob"]` |
/// | `applications` | `vhh-server` → `{client_id: DEFAULT_VHH_CLIENT_ID, name: "VHH Server", url: "https://vhh.example.com"}` (JWT access tokens) |
/// | `access_token_ttl` | 300 s |
/// | `refresh_token_ttl` | 3600 s |
/// | `id_token_ttl` | 300 s |
/// | `ciba_expires_in` | 120 s |
/// | `ciba_interval` | 5 s |
/// | `qr_expires_in` | 300 s |
/// | `qr_interval` | 5 s |
/// | `registration_poll_interval` | 10 s |
/// | `registration_expires_in` | 300 s |
/// | `auto_approve` | `None` |
/// | `devices` | none |
/// | `dpop_nonce` | `false` |
/// | `require_dpop` | `false` |
///
/// Durations on the wire (`expires_in`, `interval`) are whole seconds,
/// rounded up; the provider itself enforces the exact configured values, so
/// tests can use a `ciba_interval` of 50 ms.
///
/// ```
/// use std::time::Duration;
/// use onesoidc_devidp::DevIdpConfig;
/// let config = DevIdpConfig {
///     ciba_interval: Duration::from_millis(100),
///     ..DevIdpConfig::default()
/// };
/// assert_eq!(config.users, ["alice", "bob"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevIdpConfig {
    /// Known usernames (`login_hint`s). The first one scans QR codes under auto-approve.
    pub users: Vec<String>,
    /// Applications listed by `/.well-known/applications`.
    pub applications: Vec<Application>,
    /// Lifetime of access tokens.
    pub access_token_ttl: Duration,
    /// Lifetime of each refresh token (each rotation starts a new one).
    pub refresh_token_ttl: Duration,
    /// Lifetime of ID tokens.
    pub id_token_ttl: Duration,
    /// How long a CIBA request stays valid (`requested_expiry` may shorten it).
    pub ciba_expires_in: Duration,
    /// Minimum time between CIBA polls (and before the first); sooner is `slow_down`.
    pub ciba_interval: Duration,
    /// How long a QR session stays pending.
    pub qr_expires_in: Duration,
    /// Poll interval suggested to QR clients.
    pub qr_interval: Duration,
    /// Poll interval suggested to registering devices (`interval` in the 201 answer).
    pub registration_poll_interval: Duration,
    /// How long a registration request stays pending; afterwards its status is `error`.
    pub registration_expires_in: Duration,
    /// Answer CIBA requests, QR sessions and registrations automatically.
    pub auto_approve: Option<AutoApprove>,
    /// Devices registered at start.
    pub devices: Vec<DeviceSeed>,
    /// The token endpoint requires server nonces in DPoP proofs (RFC 9449
    /// §8): a proof without the current (or previous) nonce is answered
    /// `400 use_dpop_nonce` with a `DPoP-Nonce` header, and every token
    /// endpoint answer carries the current nonce. Nonces rotate every
    /// minute and on `POST /control/dpop/nonce/rotate`.
    pub dpop_nonce: bool,
    /// Every token request must carry a DPoP proof (for every application,
    /// not only those with [`Application::require_dpop`]).
    pub require_dpop: bool,
}

impl Default for DevIdpConfig {
    fn default() -> Self {
        DevIdpConfig {
            users: vec!["alice".into(), "bob".into()],
            applications: vec![Application {
                client_identifier: "vhh-server".into(),
                client_id: DEFAULT_VHH_CLIENT_ID.into(),
                name: "VHH Server".into(),
                url: "https://vhh.example.com".into(),
                access_token_format: AccessTokenFormat::Jwt,
                require_dpop: false,
            }],
            access_token_ttl: Duration::from_secs(300),
            refresh_token_ttl: Duration::from_secs(3600),
            id_token_ttl: Duration::from_secs(300),
            ciba_expires_in: Duration::from_secs(120),
            ciba_interval: Duration::from_secs(5),
            qr_expires_in: Duration::from_secs(300),
            qr_interval: Duration::from_secs(5),
            registration_poll_interval: Duration::from_secs(10),
            registration_expires_in: Duration::from_secs(300),
            auto_approve: None,
            devices: Vec::new(),
            dpop_nonce: false,
            require_dpop: false,
        }
    }
}

/// Why a configuration could not be loaded or is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the dev IdP config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid JSON for this format.
    #[error("the dev IdP config {path} is not valid: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What serde said (names the field and line).
        source: serde_json::Error,
    },
    /// A value is not usable.
    #[error("the dev IdP config {path} is not usable: {field}: {reason}")]
    Invalid {
        /// The file, or `<in memory>`.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The config file: the fields of [`DevIdpConfig`], durations in integer
/// milliseconds with an `_ms` suffix; every field optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    users: Option<Vec<String>>,
    applications: Option<Vec<Application>>,
    access_token_ttl_ms: Option<u64>,
    refresh_token_ttl_ms: Option<u64>,
    id_token_ttl_ms: Option<u64>,
    ciba_expires_in_ms: Option<u64>,
    ciba_interval_ms: Option<u64>,
    qr_expires_in_ms: Option<u64>,
    qr_interval_ms: Option<u64>,
    registration_poll_interval_ms: Option<u64>,
    registration_expires_in_ms: Option<u64>,
    auto_approve: Option<AutoApproveJson>,
    devices: Option<Vec<DeviceSeed>>,
    dpop_nonce: Option<bool>,
    require_dpop: Option<bool>,
}

impl DevIdpConfig {
    /// Reads a JSON config file; fields it omits keep their [`Default`].
    ///
    /// ```json
    /// {
    ///   "users": ["alice", "bob", "carol"],
    ///   "applications": [{"client_identifier": "vhh-server", "client_id": "3c5b8f2e-7a41-4d9e-9b6c-1f0a2e4d8c73",
    ///                     "name": "VHH Server", "url": "https://vhh.example.com", "access_token_format": "jwt",
    ///                     "require_dpop": false}],
    ///   "access_token_ttl_ms": 300000, "refresh_token_ttl_ms": 3600000, "id_token_ttl_ms": 300000,
    ///   "ciba_expires_in_ms": 120000, "ciba_interval_ms": 5000,
    ///   "qr_expires_in_ms": 300000, "qr_interval_ms": 5000,
    ///   "registration_poll_interval_ms": 10000, "registration_expires_in_ms": 300000,
    ///   "auto_approve": {"after_ms": 1500, "decision": "approve"},
    ///   "devices": [{"device_id": "8b47...", "client_id": "d5fe...",
    ///                "public_jwk": {"kty": "EC", "crv": "P-256", "alg": "ES256", "x": "...", "y": "..."}}],
    ///   "dpop_nonce": false, "require_dpop": false
    /// }
    /// ```
    ///
    /// Unknown fields are errors (a typo should not silently keep a default).
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text, path)
    }

    /// Parses the text of a config file; `path` is only used in error messages.
    ///
    /// ```
    /// let config = onesoidc_devidp::DevIdpConfig::from_json_str(
    ///     r#"{"users": ["carol"], "ciba_interval_ms": 50}"#,
    ///     "devidp.json".as_ref(),
    /// ).unwrap();
    /// assert_eq!(config.users, ["carol"]);
    /// assert_eq!(config.ciba_interval.as_millis(), 50);
    /// ```
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: ConfigFile = serde_json::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        let d = DevIdpConfig::default();
        let ms = |v: Option<u64>, default: Duration| v.map_or(default, Duration::from_millis);
        let config = DevIdpConfig {
            users: file.users.unwrap_or(d.users),
            applications: file.applications.unwrap_or(d.applications),
            access_token_ttl: ms(file.access_token_ttl_ms, d.access_token_ttl),
            refresh_token_ttl: ms(file.refresh_token_ttl_ms, d.refresh_token_ttl),
            id_token_ttl: ms(file.id_token_ttl_ms, d.id_token_ttl),
            ciba_expires_in: ms(file.ciba_expires_in_ms, d.ciba_expires_in),
            ciba_interval: ms(file.ciba_interval_ms, d.ciba_interval),
            qr_expires_in: ms(file.qr_expires_in_ms, d.qr_expires_in),
            qr_interval: ms(file.qr_interval_ms, d.qr_interval),
            registration_poll_interval: ms(
                file.registration_poll_interval_ms,
                d.registration_poll_interval,
            ),
            registration_expires_in: ms(file.registration_expires_in_ms, d.registration_expires_in),
            auto_approve: file.auto_approve.map(AutoApprove::from),
            devices: file.devices.unwrap_or_default(),
            dpop_nonce: file.dpop_nonce.unwrap_or(d.dpop_nonce),
            require_dpop: file.require_dpop.unwrap_or(d.require_dpop),
        };
        config.check(path)?;
        Ok(config)
    }

    /// Checks that the configuration is usable: users are unique and
    /// non-empty, application identifiers and device client ids unique,
    /// device keys usable, lifetimes non-zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check(Path::new("<in memory>"))
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &'static str, reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            reason,
        };
        let mut seen = HashSet::new();
        for user in &self.users {
            if user.trim().is_empty() || user.trim() != user {
                return Err(invalid("users", format!("{user:?} is not a username")));
            }
            if !seen.insert(user.as_str()) {
                return Err(invalid("users", format!("{user:?} is listed twice")));
            }
        }
        let mut seen = HashSet::new();
        for app in &self.applications {
            if !seen.insert(app.client_identifier.as_str()) {
                return Err(invalid(
                    "applications",
                    format!("{:?} is listed twice", app.client_identifier),
                ));
            }
        }
        let lifetimes = [
            ("access_token_ttl", self.access_token_ttl),
            ("refresh_token_ttl", self.refresh_token_ttl),
            ("id_token_ttl", self.id_token_ttl),
            ("ciba_expires_in", self.ciba_expires_in),
            ("qr_expires_in", self.qr_expires_in),
            ("registration_expires_in", self.registration_expires_in),
        ];
        for (field, value) in lifetimes {
            if value.is_zero() {
                return Err(invalid(field, "must be more than zero".into()));
            }
        }
        let mut seen = HashSet::new();
        for device in &self.devices {
            if !seen.insert(device.client_id.as_str()) {
                return Err(invalid(
                    "devices",
                    format!("client id {:?} is listed twice", device.client_id),
                ));
            }
            DeviceKey::from_jwk(&device.public_jwk).map_err(|reason| {
                invalid(
                    "devices",
                    format!("the key of client {:?}: {reason}", device.client_id),
                )
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_fields_override_defaults() {
        let config = DevIdpConfig::from_json_str(
            r#"{"access_token_ttl_ms": 1500, "auto_approve": {"after_ms": 20, "decision": "deny"}}"#,
            Path::new("x.json"),
        )
        .unwrap();
        assert_eq!(config.access_token_ttl, Duration::from_millis(1500));
        assert_eq!(
            config.auto_approve,
            Some(AutoApprove::deny_after(Duration::from_millis(20)))
        );
        assert_eq!(config.users, DevIdpConfig::default().users);
    }

    #[test]
    fn dpop_settings_come_from_the_file() {
        let config = DevIdpConfig::from_json_str(
            r#"{"dpop_nonce": true, "applications": [{"client_identifier": "lab", "client_id": "lab",
                "name": "Lab", "url": "https://lab.example.com", "require_dpop": true}]}"#,
            Path::new("x.json"),
        )
        .unwrap();
        assert!(config.dpop_nonce && !config.require_dpop);
        assert!(config.applications[0].require_dpop);
        let listed = serde_json::to_value(&config.applications[0]).unwrap();
        assert!(listed.get("require_dpop").is_none(), "not in the listing");
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        let err = DevIdpConfig::from_json_str(r#"{"user": ["a"]}"#, Path::new("x.json"));
        assert!(matches!(err, Err(ConfigError::Parse { .. })));
        let err = DevIdpConfig::from_json_str(r#"{"users": ["a", "a"]}"#, Path::new("x.json"));
        assert!(err.unwrap_err().to_string().contains("listed twice"));
    }
}
