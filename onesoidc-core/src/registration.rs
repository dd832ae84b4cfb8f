//! Device registration, px-device-identity's protocol ([PROTOCOL §10](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#10-device-registration-px-device-identitys-protocol)):
//! the request, the status polls and their answers.

use std::time::Duration;

use serde::Serialize;

use crate::request::{HttpRequest, get, post_json};
use crate::response::{HttpResponse, Json};
use crate::{ClientId, Endpoint, Error, PublicJwk};

/// How often to ask whether the registration was approved.
pub const REGISTRATION_POLL_INTERVAL: Duration = Duration::from_secs(10);
/// How long to wait for an administrator by default.
pub const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(300);

/// What the device tells the provider about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationBody {
    /// `{"keys": [public JWK with alg]}`.
    pub public_key: crate::PublicJwkSet,
    /// Device title.
    pub title: String,
    /// Device location.
    pub location: String,
    /// Domain the device belongs to.
    pub domain: String,
    /// Role, as px sends it (upper case, e.g. `SERVER`).
    pub role: String,
    /// e.g. `linux`.
    pub operating_system: String,
    /// Kernel release, e.g. `6.1.0-18-amd64`.
    pub operating_system_release: String,
    /// e.g. `x86_64`.
    pub system_architecture: String,
    /// Total memory in bytes.
    pub system_memory: u64,
}

/// Facts about the machine a device runs on, sent with its registration
/// (gathered by the caller: `onesoidc-flows` reads them from the OS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineFacts {
    /// e.g. `linux`.
    pub operating_system: String,
    /// Kernel release, e.g. `6.1.0-18-amd64`.
    pub operating_system_release: String,
    /// e.g. `x86_64`.
    pub system_architecture: String,
    /// Total memory in bytes.
    pub system_memory: u64,
}

impl RegistrationBody {
    /// The body registering `public_jwk` for a device described by
    /// `title`, `location`, `domain` and `role` (sent upper case, as px does)
    /// on a machine with `facts`.
    pub fn new(
        public_jwk: PublicJwk,
        title: &str,
        location: &str,
        domain: &str,
        role: &str,
        facts: MachineFacts,
    ) -> Self {
        RegistrationBody {
            public_key: crate::PublicJwkSet {
                keys: vec![public_jwk],
            },
            title: title.to_string(),
            location: location.to_string(),
            domain: domain.to_string(),
            role: role.to_uppercase(),
            operating_system: facts.operating_system,
            operating_system_release: facts.operating_system_release,
            system_architecture: facts.system_architecture,
            system_memory: facts.system_memory,
        }
    }
}

/// `{host}/devices/registration`.
pub fn registration_url(host: &str) -> Endpoint {
    Endpoint::new(format!(
        "{}/devices/registration",
        host.trim_end_matches('/')
    ))
}

/// `POST {host}/devices/registration`.
pub fn registration_request(host: &str, body: &RegistrationBody) -> Result<HttpRequest, Error> {
    let json = serde_json::to_value(body).map_err(|e| Error::InvalidRequest {
        endpoint: registration_url(host).into_string(),
        reason: e.to_string(),
    })?;
    post_json(&registration_url(host), None, &json)
}

/// The verification code from the 201 answer: show it to the person registering.
pub fn parse_registration_response(
    endpoint: &Endpoint,
    response: &HttpResponse,
) -> Result<String, Error> {
    let body = Json::parse(endpoint, response)?;
    Ok(body.required_str("verification_code")?.to_string())
}

/// `{host}/devices/registration/status/{code}`, the code percent-encoded.
pub fn registration_status_url(host: &str, code: &str) -> Endpoint {
    let encoded: String = url::form_urlencoded::byte_serialize(code.as_bytes()).collect();
    Endpoint::new(format!(
        "{}/status/{}",
        registration_url(host),
        encoded.replace('+', "%20")
    ))
}

/// `GET {host}/devices/registration/status/{code}`.
pub fn registration_status_request(host: &str, code: &str) -> Result<HttpRequest, Error> {
    get(&registration_status_url(host, code), None)
}

/// Where a registration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationStatus {
    /// Waiting for an administrator.
    Pending,
    /// Approved: the identity to write.
    Approved {
        /// The device id (`id` in device.yml).
        device_id: String,
        /// The OAuth client id.
        client_id: ClientId,
    },
    /// An administrator rejected it.
    Rejected,
    /// The provider reports an error with this registration.
    Failed,
}

/// Parses a status answer; 404 (unknown code) is an error.
///
/// ```
/// use onesoidc_core::{RegistrationStatus, parse_registration_status};
/// let r = http::Response::builder().status(200)
///     .body(br#"{"status":"approved","deviceId":"d","clientId":"c"}"#.to_vec()).unwrap();
/// assert_eq!(parse_registration_status(&"u".into(), &r).unwrap(),
///     RegistrationStatus::Approved { device_id: "d".into(), client_id: "c".into() });
/// ```
pub fn parse_registration_status(
    endpoint: &Endpoint,
    response: &HttpResponse,
) -> Result<RegistrationStatus, Error> {
    let body = Json::parse(endpoint, response)?;
    Ok(match body.required_str("status")? {
        "pending" => RegistrationStatus::Pending,
        "approved" => {
            let missing = |field: &str| {
                body.invalid(format!("status is `approved` but `{field}` is missing"))
            };
            let device_id = body.str("deviceId")?.filter(|v| !v.is_empty());
            let client_id = body.str("clientId")?.filter(|v| !v.is_empty());
            RegistrationStatus::Approved {
                device_id: device_id.ok_or_else(|| missing("deviceId"))?.to_string(),
                client_id: ClientId::from(client_id.ok_or_else(|| missing("clientId"))?),
            }
        }
        "rejected" => RegistrationStatus::Rejected,
        "error" => RegistrationStatus::Failed,
        _ => {
            return Err(body.invalid("`status` is none of pending, approved, rejected, error"));
        }
    })
}
