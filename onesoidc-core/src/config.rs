//! `device.yml`, the device identity written by px-device-identity ([PROTOCOL §1](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#1-device-identity-on-disk-written-by-px-device-identity-or-by-onesoidc-register)).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::Value;

use crate::error::ConfigError;
use crate::{ClientId, Issuer, yaml};

/// The key type of a device, as `device.yml` spells it (`key_type`).
///
/// ```
/// use onesoidc_core::{KeyType, JwsAlgorithm};
/// let kt: KeyType = "ECC:p521".parse().unwrap();
/// assert_eq!(kt.jws_algorithm(), JwsAlgorithm::ES512);
/// assert_eq!(kt.to_string(), "ECC:p521");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// RSA, 2048-bit modulus (`RSA:2048`), signs RS256.
    Rsa2048,
    /// RSA, 3072-bit modulus (`RSA:3072`), signs RS256.
    Rsa3072,
    /// NIST P-256 (`ECC:p256`), signs ES256.
    EccP256,
    /// NIST P-384 (`ECC:p384`), signs ES384.
    EccP384,
    /// NIST P-521 (`ECC:p521`), signs ES512.
    EccP521,
}

impl KeyType {
    /// Every key type, in the order px-device-identity lists them.
    pub const ALL: [KeyType; 5] = [
        KeyType::Rsa2048,
        KeyType::Rsa3072,
        KeyType::EccP256,
        KeyType::EccP384,
        KeyType::EccP521,
    ];

    /// The spelling used in `device.yml`, e.g. `RSA:2048`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa2048 => "RSA:2048",
            KeyType::Rsa3072 => "RSA:3072",
            KeyType::EccP256 => "ECC:p256",
            KeyType::EccP384 => "ECC:p384",
            KeyType::EccP521 => "ECC:p521",
        }
    }

    /// The JWS algorithm a key of this type signs with ([PROTOCOL §1](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#1-device-identity-on-disk-written-by-px-device-identity-or-by-onesoidc-register)).
    pub fn jws_algorithm(self) -> JwsAlgorithm {
        match self {
            KeyType::Rsa2048 | KeyType::Rsa3072 => JwsAlgorithm::RS256,
            KeyType::EccP256 => JwsAlgorithm::ES256,
            KeyType::EccP384 => JwsAlgorithm::ES384,
            KeyType::EccP521 => JwsAlgorithm::ES512,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = UnknownKeyType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyType::ALL
            .into_iter()
            .find(|kt| kt.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownKeyType(s.to_string()))
    }
}

/// A `key_type` this library (and px-device-identity) does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown key type {0:?}; expected one of RSA:2048, RSA:3072, ECC:p256, ECC:p384, ECC:p521")]
pub struct UnknownKeyType(pub String);

/// A JWS algorithm a device key can sign with.
///
/// jsonwebtoken has no ES512, so the workspace uses this enum for signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwsAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// ECDSA P-521 with SHA-512.
    ES512,
}

impl JwsAlgorithm {
    /// The JOSE name, e.g. `ES256`.
    pub fn as_str(self) -> &'static str {
        match self {
            JwsAlgorithm::RS256 => "RS256",
            JwsAlgorithm::ES256 => "ES256",
            JwsAlgorithm::ES384 => "ES384",
            JwsAlgorithm::ES512 => "ES512",
        }
    }

    /// Parses a JOSE name. px-device-identity's non-standard `ES521` reads as ES512.
    ///
    /// ```
    /// use onesoidc_core::JwsAlgorithm;
    /// assert_eq!(JwsAlgorithm::from_name("ES521"), Some(JwsAlgorithm::ES512));
    /// assert_eq!(JwsAlgorithm::from_name("none"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(JwsAlgorithm::RS256),
            "ES256" => Some(JwsAlgorithm::ES256),
            "ES384" => Some(JwsAlgorithm::ES384),
            "ES512" | "ES521" => Some(JwsAlgorithm::ES512),
            _ => None,
        }
    }

    /// Length in bytes of a JWS signature for EC algorithms (`r || s`); `None` for RSA.
    pub fn ecdsa_signature_len(self) -> Option<usize> {
        match self {
            JwsAlgorithm::RS256 => None,
            JwsAlgorithm::ES256 => Some(64),
            JwsAlgorithm::ES384 => Some(96),
            JwsAlgorithm::ES512 => Some(132),
        }
    }
}

impl fmt::Display for JwsAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the private key lives (`key_security`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeySecurity {
    /// `private.pem` is a plain PEM file.
    Default,
    /// `private.pem` is a TPM-wrapped blob; signing goes through px-device-identity.
    Tpm,
}

impl KeySecurity {
    /// The spelling used in `device.yml`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeySecurity::Default => "default",
            KeySecurity::Tpm => "tpm",
        }
    }
}

/// The parsed `device.yml` of a device ([PROTOCOL §1](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#1-device-identity-on-disk-written-by-px-device-identity-or-by-onesoidc-register)).
///
/// Loading keeps unknown fields in [`DeviceConfig::extra`] and accepts the
/// boolean spellings both px-device-identity writers use. An unmanaged
/// identity (`client_id: null`, `host: null`) loads; [`DeviceConfig::registration`]
/// then says it is not registered.
///
/// ```
/// use onesoidc_core::{DeviceConfig, KeyType};
/// let yaml = "id: 8b477978-c63d-46f5-9492-67fafdd0d68e\n\
///             client_id: d5fe8500-6003-49fd-9b8f-7adaf102e9a3\n\
///             host: https://idp-server.ones-now.com\n\
///             key_type: RSA:2048\nkey_security: default\nis_managed: \"True\"\n";
/// let config = DeviceConfig::from_yaml_str(yaml, "device.yml".as_ref()).unwrap();
/// assert_eq!(config.key_type, KeyType::Rsa2048);
/// assert!(config.is_managed);
/// let reg = config.registration().unwrap();
/// assert_eq!(reg.issuer.as_str(), "https://idp-server.ones-now.com/oidc");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceConfig {
    /// The device id (`id`).
    pub id: String,
    /// The OAuth client id, `None` for an unmanaged identity.
    pub client_id: Option<ClientId>,
    /// The identity provider's base URL, `None` for an unmanaged identity.
    pub host: Option<String>,
    /// The device's domain.
    pub domain: Option<String>,
    /// Key type of the device key.
    pub key_type: KeyType,
    /// Where the device key lives.
    pub key_security: KeySecurity,
    /// Whether the device is registered with a provider.
    pub is_managed: bool,
    /// Free-text title.
    pub title: Option<String>,
    /// Free-text location.
    pub location: Option<String>,
    /// The device role, lower case (`server`, `desktop`, ...).
    pub role: Option<String>,
    /// px-device-identity's config format version.
    pub config_version: Option<String>,
    /// When the identity was created, as px writes it.
    pub initiated_on: Option<String>,
    /// Fields this library does not know; kept and written back unchanged.
    pub extra: BTreeMap<String, Value>,
    /// The file this was loaded from (for error messages).
    pub path: PathBuf,
}

/// What a registered device needs to talk to its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The OAuth client id.
    pub client_id: ClientId,
    /// The issuer, `host + "/oidc"`.
    pub issuer: Issuer,
}

const KNOWN_FIELDS: [&str; 12] = [
    "id",
    "client_id",
    "host",
    "domain",
    "key_type",
    "key_security",
    "is_managed",
    "title",
    "location",
    "role",
    "config_version",
    "initiated_on",
];

impl DeviceConfig {
    /// Parses the text of a `device.yml`; `path` is only used in error messages.
    pub fn from_yaml_str(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let path = path.to_path_buf();
        let value: Value = yaml::from_str(text).map_err(|source| ConfigError::Yaml {
            path: path.clone(),
            source,
        })?;
        let Value::Object(map) = value else {
            return Err(ConfigError::NotAMapping { path });
        };
        let fields = Fields { map, path };

        let id = fields.required_string("id")?;
        let key_type = fields.required_string("key_type")?;
        let key_type = key_type
            .parse::<KeyType>()
            .map_err(|e| fields.invalid("key_type", e.to_string()))?;
        let key_security = match fields.required_string("key_security")?.as_str() {
            "default" | "Default" | "DEFAULT" => KeySecurity::Default,
            "tpm" | "Tpm" | "TPM" => KeySecurity::Tpm,
            other => {
                return Err(fields.invalid(
                    "key_security",
                    format!("{other:?} is neither `default` nor `tpm`"),
                ));
            }
        };
        let host = fields.optional_string("host")?;
        if let Some(host) = &host {
            Issuer::from_host(host).map_err(|e| fields.invalid("host", e.to_string()))?;
        }
        let config = DeviceConfig {
            id,
            client_id: fields.optional_string("client_id")?.map(ClientId::new),
            host,
            domain: fields.optional_string("domain")?,
            key_type,
            key_security,
            is_managed: fields.optional_bool("is_managed")?.unwrap_or(false),
            title: fields.optional_string("title")?,
            location: fields.optional_string("location")?,
            role: fields.optional_string("role")?,
            config_version: fields.optional_string("config_version")?,
            initiated_on: fields.optional_string("initiated_on")?,
            extra: BTreeMap::new(),
            path: fields.path,
        };
        let mut extra = fields.map;
        for known in KNOWN_FIELDS {
            extra.remove(known);
        }
        Ok(DeviceConfig {
            extra: extra.into_iter().collect(),
            ..config
        })
    }

    /// The client id and issuer, or [`ConfigError::NotRegistered`] for an
    /// unmanaged identity.
    pub fn registration(&self) -> Result<Registration, ConfigError> {
        let (Some(client_id), Some(host)) = (&self.client_id, &self.host) else {
            let missing = [
                ("client_id", self.client_id.is_none()),
                ("host", self.host.is_none()),
            ];
            return Err(ConfigError::NotRegistered {
                path: self.path.clone(),
                id: self.id.clone(),
                missing: missing
                    .into_iter()
                    .filter_map(|(field, absent)| absent.then_some(field))
                    .collect(),
            });
        };
        let issuer = Issuer::from_host(host).map_err(|e| ConfigError::InvalidField {
            path: self.path.clone(),
            field: "host",
            reason: e.to_string(),
        })?;
        Ok(Registration {
            client_id: client_id.clone(),
            issuer,
        })
    }

    /// The YAML text px-device-identity would write for this identity
    /// (keys sorted, unknown fields kept).
    pub fn to_yaml_string(&self) -> Result<String, crate::yaml::YamlError> {
        let mut map: BTreeMap<String, Value> = self.extra.clone();
        let opt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
        map.insert("id".into(), Value::String(self.id.clone()));
        map.insert(
            "client_id".into(),
            opt(&self.client_id.as_ref().map(|c| c.to_string())),
        );
        map.insert("host".into(), opt(&self.host));
        map.insert("domain".into(), opt(&self.domain));
        map.insert("key_type".into(), self.key_type.as_str().into());
        map.insert("key_security".into(), self.key_security.as_str().into());
        map.insert("is_managed".into(), Value::Bool(self.is_managed));
        map.insert("title".into(), opt(&self.title));
        map.insert("location".into(), opt(&self.location));
        map.insert("role".into(), opt(&self.role));
        map.insert("config_version".into(), opt(&self.config_version));
        map.insert("initiated_on".into(), opt(&self.initiated_on));
        let text = yaml::to_string(&map)?;
        // px writes `initiated_on` quoted; unquoted, YAML 1.1 readers (PyYAML)
        // would read it as a timestamp instead of a string. A block scalar
        // (`|-`, `>`: a multi-line value) is already a string and must stay.
        Ok(text
            .lines()
            .map(|line| match line.strip_prefix("initiated_on: ") {
                Some(v) if !v.starts_with(['\'', '"', '|', '>']) && v != "null" => {
                    format!("initiated_on: '{}'\n", v.replace('\'', "''"))
                }
                _ => format!("{line}\n"),
            })
            .collect())
    }
}

/// Field extraction with errors that name the field and the file.
struct Fields {
    map: serde_json::Map<String, Value>,
    path: PathBuf,
}

impl Fields {
    fn invalid(&self, field: &'static str, reason: impl Into<String>) -> ConfigError {
        ConfigError::InvalidField {
            path: self.path.clone(),
            field,
            reason: reason.into(),
        }
    }

    fn required_string(&self, field: &'static str) -> Result<String, ConfigError> {
        self.optional_string(field)?
            .ok_or_else(|| ConfigError::MissingField {
                path: self.path.clone(),
                field,
            })
    }

    fn optional_string(&self, field: &'static str) -> Result<Option<String>, ConfigError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(self.invalid(field, format!("expected a string, found {other}"))),
        }
    }

    fn optional_bool(&self, field: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => {
                Err(self.invalid(field, format!("expected true or false, found {other}")))
            }
        }
    }
}
