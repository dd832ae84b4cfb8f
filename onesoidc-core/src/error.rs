//! Errors. One [`Error`] for everything a flow can hit, keeping apart local
//! problems (config, key, signing), transport failures, HTTP errors, OAuth
//! errors and malformed responses. Every message names the file, field,
//! endpoint or status, and says what to do where there is something to do.

use std::path::PathBuf;

use crate::yaml::YamlError;

/// Everything that can go wrong between loading an identity and holding a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `device.yml` could not be read or is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The device key could not be loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The device key could not sign.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The HTTP client could not be set up (or none was given).
    #[error("cannot set up the HTTP client: {0}")]
    HttpClient(#[from] TransportError),
    /// The request never got an HTTP response.
    #[error("{endpoint}: {source}")]
    Transport {
        /// URL of the endpoint.
        endpoint: String,
        /// What the transport said.
        source: TransportError,
    },
    /// The endpoint answered with an error status and no OAuth error body.
    /// The body is quoted only from public documents (discovery, JWKS),
    /// cut before anything that looks like a token.
    #[error("{endpoint} answered HTTP {status}{hint}", hint = status_hint(*status, content_type.as_deref(), *length, body.as_deref(), *retry_after))]
    #[non_exhaustive]
    HttpStatus {
        /// URL of the endpoint.
        endpoint: String,
        /// HTTP status code.
        status: u16,
        /// The `Content-Type` of the answer, if it had one.
        content_type: Option<String>,
        /// The length of the body, in bytes.
        length: usize,
        /// The start of a public document's body (at most 200 characters).
        body: Option<String>,
        /// When to try again, from `Retry-After` (capped).
        retry_after: Option<std::time::Duration>,
    },
    /// The endpoint answered with an OAuth error (RFC 6749 §5.2).
    #[error("{endpoint} answered HTTP {status} with OAuth error `{error}`{description}",
        description = description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    #[non_exhaustive]
    OAuth {
        /// URL of the endpoint.
        endpoint: String,
        /// HTTP status code.
        status: u16,
        /// The `error` code, e.g. `invalid_client`.
        error: String,
        /// The `error_description`, if any (at most 300 characters, cut
        /// before anything that looks like a token or a value we sent).
        description: Option<String>,
        /// When to try again, from `Retry-After` (capped).
        retry_after: Option<std::time::Duration>,
    },
    /// The endpoint answered 2xx but the body is not what the protocol says.
    /// Names the field or the parser's position, never the body's content.
    #[error("{endpoint} sent an invalid response (HTTP {status}, {}, {length} bytes): {reason}", content_type.as_deref().unwrap_or("no content type"))]
    #[non_exhaustive]
    InvalidResponse {
        /// URL of the endpoint.
        endpoint: String,
        /// HTTP status code.
        status: u16,
        /// The `Content-Type` of the answer, if it had one.
        content_type: Option<String>,
        /// The length of the body, in bytes.
        length: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The discovery document names another issuer (mix-up protection).
    #[error(
        "{endpoint}: the discovery document says issuer {found:?}, expected {expected:?}; check `host` in device.yml"
    )]
    IssuerMismatch {
        /// URL of the discovery document.
        endpoint: String,
        /// The issuer we derived from `device.yml`.
        expected: String,
        /// The issuer the document names.
        found: String,
    },
    /// The caller asked for something the protocol does not allow; nothing was sent.
    #[error("invalid request to {endpoint}: {reason}")]
    InvalidRequest {
        /// URL of the endpoint it was for.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// Nobody answered in time: a CIBA request, a QR session or a registration expired.
    #[error("{what} expired after {} s without an answer", after.as_secs())]
    Expired {
        /// What expired.
        what: String,
        /// How long it was valid.
        after: std::time::Duration,
    },
    /// The person cancelled on their phone (a QR session, before it was scanned).
    #[error("{what} was cancelled on the phone; start a new login")]
    Cancelled {
        /// What was cancelled.
        what: String,
    },
    /// There is nothing to refresh with: no tokens, or tokens without a
    /// refresh token. Nothing was sent; the person has to log in again
    /// (CIBA or QR).
    #[error("{reason}; log the user in again (CIBA or QR) and store the new tokens")]
    LoginRequired {
        /// What is missing.
        reason: String,
    },
    /// An administrator rejected the device's registration.
    #[error(
        "an administrator rejected registration {verification_code} at {endpoint}; ask them why, then register again"
    )]
    RegistrationRejected {
        /// The registration status endpoint.
        endpoint: String,
        /// The verification code of the registration.
        verification_code: String,
    },
    /// The provider reports that the registration failed on its side.
    #[error(
        "{endpoint} reports an error with registration {verification_code}; register again, or ask the provider's administrator"
    )]
    RegistrationFailed {
        /// The registration status endpoint.
        endpoint: String,
        /// The verification code of the registration.
        verification_code: String,
    },
    /// The ID token failed validation.
    #[error("{endpoint}: {source}")]
    IdToken {
        /// The token endpoint the ID token came from, or `id_token` when validated on its own.
        endpoint: String,
        /// Why it was rejected.
        source: crate::IdTokenError,
    },
    /// No well-known application has this `client_identifier`.
    #[error("{endpoint} lists no application {identifier:?} (known: {known})")]
    UnknownApplication {
        /// The applications endpoint.
        endpoint: String,
        /// The identifier asked for.
        identifier: String,
        /// The identifiers listed, comma separated.
        known: String,
    },
    /// Introspection says the token cannot be used now: the provider calls
    /// it inactive (revoked, expired, unknown), or it expired, or it was
    /// issued by another issuer or to another client.
    #[error("{endpoint}: the token is not usable: {reason}")]
    TokenNotUsable {
        /// The introspection endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// Another part of onesoidc failed (a token manager, drawing a QR code);
    /// its message says which and why.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The provider's answer (its `Date` header) shows the device clock off
    /// by more than the 60 s skew, and `source` is what failed, most likely
    /// because of it (an ID token "expired" or "issued in the future", a
    /// client assertion refused). The predicates (`is_network`, ...) look
    /// through it.
    #[error("{source} ({offset}; set the device clock right, e.g. with NTP)")]
    DeviceClockOff {
        /// How far off the device clock is.
        offset: crate::ClockOffset,
        /// What failed.
        source: Box<Error>,
    },
    /// A URL (issuer, endpoint, application URL) is not usable.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The offending URL.
        url: String,
        /// Why it is unusable.
        reason: String,
    },
}

/// "`client_id` is", "`client_id` and `host` are": the fields of
/// [`ConfigError::NotRegistered`] for its message.
fn missing_fields(fields: &[&str]) -> String {
    let names: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
    match names.as_slice() {
        [one] => format!("{one} is"),
        _ => format!("{} are", names.join(" and ")),
    }
}

impl Error {
    /// An [`Error::OAuth`] (e.g. to test code that handles one).
    ///
    /// ```
    /// let e = onesoidc_core::Error::oauth("https://idp/oidc/token", 400, "invalid_grant", None);
    /// assert_eq!(e.oauth_error(), Some("invalid_grant"));
    /// ```
    pub fn oauth(
        endpoint: impl Into<String>,
        status: u16,
        error: impl Into<String>,
        description: Option<String>,
    ) -> Self {
        Error::OAuth {
            endpoint: endpoint.into(),
            status,
            error: error.into(),
            description,
            retry_after: None,
        }
    }

    /// An [`Error::HttpStatus`] without a body (e.g. to test code that handles one).
    pub fn http_status_error(endpoint: impl Into<String>, status: u16) -> Self {
        Error::HttpStatus {
            endpoint: endpoint.into(),
            status,
            content_type: None,
            length: 0,
            body: None,
            retry_after: None,
        }
    }

    /// An [`Error::InvalidResponse`] (e.g. to test code that handles one).
    pub fn invalid_response(
        endpoint: impl Into<String>,
        status: u16,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidResponse {
            endpoint: endpoint.into(),
            status,
            content_type: None,
            length: 0,
            reason: reason.into(),
        }
    }

    /// This error with every quoted piece of a response (an OAuth
    /// `error_description`, a public document's start, a member name in an
    /// invalid response's reason) cut before the first
    /// of `sent` it contains: the values a request carried (a refresh
    /// token, a client assertion), which a provider or proxy may echo.
    /// Values shorter than 8 characters are ignored.
    ///
    /// ```
    /// let echo = onesoidc_core::Error::oauth(
    ///     "https://idp/oidc/token", 400, "invalid_request",
    ///     Some("bad form: grant_type=refresh_token&refresh_token=rt-1234567890".into()),
    /// );
    /// let safe = echo.forget_values(&["rt-1234567890"]);
    /// assert!(!safe.to_string().contains("rt-1234567890"));
    /// ```
    pub fn forget_values(mut self, sent: &[&str]) -> Self {
        if let Error::DeviceClockOff { offset, source } = self {
            return Error::DeviceClockOff {
                offset,
                source: Box::new(source.forget_values(sent)),
            };
        }
        match &mut self {
            Error::OAuth { description, .. } => {
                if let Some(text) = description {
                    let kept = crate::response::cut_before_values(text, sent)
                        .trim_end()
                        .to_string();
                    *description = (!kept.is_empty()).then_some(kept);
                }
            }
            Error::HttpStatus {
                body: Some(text), ..
            } => {
                *text = crate::response::cut_before_values(text, sent).to_string();
            }
            // A reason may name a member of the body (one named twice).
            Error::InvalidResponse { reason, .. } => {
                *reason = crate::response::cut_before_values(reason, sent).to_string();
            }
            _ => {}
        }
        self
    }

    /// This [`Error::HttpStatus`] or [`Error::OAuth`] with a `Retry-After`
    /// of `after` (e.g. to test code that handles one); others unchanged.
    pub fn with_retry_after(mut self, after: std::time::Duration) -> Self {
        if let Error::HttpStatus { retry_after, .. } | Error::OAuth { retry_after, .. } = &mut self
        {
            *retry_after = Some(after);
        }
        self
    }

    /// How long the provider asked us to wait before trying again
    /// (`Retry-After` on a 429 or 503, or on a CIBA poll), capped at
    /// [`MAX_RETRY_AFTER`](crate::MAX_RETRY_AFTER).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self.innermost() {
            Error::HttpStatus { retry_after, .. } | Error::OAuth { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// The OAuth `error` code, when the server sent one (looking through
    /// [`Error::Other`]).
    ///
    /// ```
    /// let e = onesoidc_core::Error::oauth("https://idp/oidc/token", 400, "invalid_grant", None);
    /// assert_eq!(e.oauth_error(), Some("invalid_grant"));
    /// ```
    pub fn oauth_error(&self) -> Option<&str> {
        match self.innermost() {
            Error::OAuth { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The HTTP status of the response that caused the error, if there was one.
    pub fn http_status(&self) -> Option<u16> {
        match self.innermost() {
            Error::HttpStatus { status, .. }
            | Error::OAuth { status, .. }
            | Error::InvalidResponse { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the provider could not be reached or is having trouble, so
    /// trying again later may work: no response at all (cannot connect,
    /// timed out, connection reset), HTTP 429 or 5xx, or the OAuth errors
    /// `temporarily_unavailable` and `server_error`. A UI shows "check the
    /// network" (the seed's `networkError` signal).
    ///
    /// ```
    /// use onesoidc_core::{Error, TransportError, TransportErrorKind};
    /// let down = Error::Transport {
    ///     endpoint: "https://idp/oidc/token".into(),
    ///     source: TransportError::new(TransportErrorKind::Connect, "connection refused"),
    /// };
    /// assert!(down.is_network());
    /// assert!(!down.is_denied());
    /// ```
    pub fn is_network(&self) -> bool {
        match self.innermost() {
            Error::Transport { source, .. } => matches!(
                source.kind,
                TransportErrorKind::Connect
                    | TransportErrorKind::Timeout
                    | TransportErrorKind::Other
            ),
            Error::HttpStatus { status, .. } => *status == 429 || *status >= 500,
            Error::OAuth { status, error, .. } => {
                *status >= 500
                    || matches!(error.as_str(), "temporarily_unavailable" | "server_error")
            }
            _ => false,
        }
    }

    /// Whether the person said no: denied the login on the phone
    /// (`access_denied`), cancelled a QR session, or an administrator
    /// rejected a registration (the seed's `authenticationError` signal).
    pub fn is_denied(&self) -> bool {
        let inner = self.innermost();
        inner.oauth_error() == Some("access_denied")
            || matches!(
                inner,
                Error::Cancelled { .. } | Error::RegistrationRejected { .. }
            )
    }

    /// Whether nobody answered in time: a CIBA request, QR session or
    /// registration expired (`expired_token`, or the wait ran out).
    pub fn is_expired(&self) -> bool {
        let inner = self.innermost();
        inner.oauth_error() == Some("expired_token") || matches!(inner, Error::Expired { .. })
    }

    /// Whether the person has to log in again (CIBA or QR) before their
    /// tokens work: the refresh token was rejected (`invalid_grant`) or
    /// there is none ([`Error::LoginRequired`]).
    pub fn requires_login(&self) -> bool {
        let inner = self.innermost();
        inner.oauth_error() == Some("invalid_grant") || matches!(inner, Error::LoginRequired { .. })
    }

    /// Whether the device's identity files are the problem: `device.yml`
    /// cannot be read or lacks a field, or the key cannot be loaded. Fixing
    /// the files (or registering the device) is what helps; retrying does
    /// not.
    ///
    /// ```
    /// use onesoidc_core::{ConfigError, Error};
    /// let missing = Error::Config(ConfigError::MissingField {
    ///     path: "/etc/px-device-identity/device.yml".into(),
    ///     field: "id",
    /// });
    /// assert!(missing.is_config());
    /// assert!(!missing.is_network());
    /// ```
    pub fn is_config(&self) -> bool {
        matches!(self.innermost(), Error::Config(_) | Error::Key(_))
    }

    /// `error` noting that the device clock is off, when `offset` (from
    /// the answer that failed) says it is by more than the skew; else
    /// `error` as it is.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use onesoidc_core::{ClockOffset, Error};
    /// let answer = http::Response::builder()
    ///     .header("date", "Sun, 06 Nov 1994 08:49:37 GMT").body(Vec::new()).unwrap();
    /// let offset = ClockOffset::from_response(&answer, UNIX_EPOCH + Duration::from_secs(784_111_777 + 120));
    /// let error = Error::oauth("https://idp/oidc/token", 401, "invalid_client", None).with_device_clock(offset);
    /// assert!(error.to_string().contains("the device clock is 120 s ahead"), "{error}");
    /// assert_eq!(error.oauth_error(), Some("invalid_client"));
    /// assert_eq!(error.device_clock_offset(), offset);
    /// ```
    pub fn with_device_clock(self, offset: Option<crate::ClockOffset>) -> Error {
        match offset {
            Some(offset) if offset.is_off() && self.device_clock_offset().is_none() => {
                Error::DeviceClockOff {
                    offset,
                    source: Box::new(self),
                }
            }
            _ => self,
        }
    }

    /// How far off the device clock was, when this error (or one it
    /// wraps) noted it ([`Error::DeviceClockOff`]).
    pub fn device_clock_offset(&self) -> Option<crate::ClockOffset> {
        self.layers().find_map(|layer| match layer {
            Error::DeviceClockOff { offset, .. } => Some(*offset),
            _ => None,
        })
    }

    /// This error, then each `Error` it wraps ([`Error::DeviceClockOff`],
    /// or the `Error` behind an [`Error::Other`]).
    fn layers(&self) -> impl Iterator<Item = &Error> {
        std::iter::successors(Some(self), |layer| layer.wrapped())
    }

    /// The `Error` this one wraps, if any.
    fn wrapped(&self) -> Option<&Error> {
        match self {
            Error::DeviceClockOff { source, .. } => Some(source),
            Error::Other(other) => {
                let mut source: Option<&(dyn std::error::Error + 'static)> = Some(other.as_ref());
                while let Some(e) = source {
                    if let Some(inner) = e.downcast_ref::<Error>() {
                        return Some(inner);
                    }
                    if let Some(inner) = e.downcast_ref::<std::sync::Arc<Error>>() {
                        return Some(inner.as_ref());
                    }
                    source = e.source();
                }
                None
            }
            _ => None,
        }
    }

    /// The `Error` at the bottom of an [`Error::Other`] or
    /// [`Error::DeviceClockOff`] (e.g. the provider error behind a token
    /// manager's failure), or this one.
    fn innermost(&self) -> &Error {
        self.layers().last().unwrap_or(self)
    }
}

fn status_hint(
    status: u16,
    content_type: Option<&str>,
    length: usize,
    body: Option<&str>,
    retry_after: Option<std::time::Duration>,
) -> String {
    let what = match status {
        300..=399 => " (a redirect; redirects are not followed: point the device at the final URL)",
        401 | 403 => " (the provider refused the device's credentials)",
        404 => " (not found: check `host` in device.yml)",
        429 => " (too many requests: try again later)",
        500..=599 => " (a server error: try again later)",
        _ => "",
    };
    let mut hint = what.to_string();
    if let Some(after) = retry_after {
        hint.push_str(&format!(" (retry after {} s)", after.as_secs()));
    }
    match body {
        Some(body) if !body.is_empty() => hint.push_str(&format!(": {body}")),
        _ if length > 0 => hint.push_str(&format!(
            " ({}, {length} bytes)",
            content_type.unwrap_or("no content type")
        )),
        _ => {}
    }
    hint
}

/// `device.yml` problems. Each names the file and, where it applies, the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error(
        "cannot read device config {}: {source}; register the device with `onesoidc register` or set ONESOIDC_DEVICE_CONFIG to its device.yml",
        path.display()
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("{} is not valid YAML: {source}", path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// Parser message with location.
        source: YamlError,
    },
    /// The file is YAML but not a mapping of fields.
    #[error("{} is not a device identity: expected `field: value` lines", path.display())]
    NotAMapping {
        /// The file.
        path: PathBuf,
    },
    /// A required field is absent or null.
    #[error("{}: required field `{field}` is missing", path.display())]
    MissingField {
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
    },
    /// A field has a value that cannot be used.
    #[error("{}: field `{field}` is invalid: {reason}", path.display())]
    InvalidField {
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The identity is unmanaged: it lacks `client_id`, `host` or both.
    #[error(
        "device {id} ({}) is not registered with an identity provider ({} null or missing); register it with `onesoidc register --address https://<provider> --domain <domain> --title <title> --location <location> --role <role>`",
        path.display(),
        missing_fields(missing)
    )]
    NotRegistered {
        /// The file.
        path: PathBuf,
        /// The device id.
        id: String,
        /// The fields it lacks: `client_id`, `host`, or both (in that order).
        missing: Vec<&'static str>,
    },
    /// An identity exists where a new one would be written.
    #[error("{} already holds a device identity; pass --force to replace it (the old one stays if registration fails)", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// Writing an identity file failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Private or public key problems.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read key file {}: {source}; set ONESOIDC_KEY_DIR or --key-dir to the directory with private.pem", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not PEM, or holds a kind of key this library does not use.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key in the file is not what `device.yml` says.
    #[error("{}: holds a {found} key but device.yml says key_type {expected}", path.display())]
    Mismatch {
        /// The key file.
        path: PathBuf,
        /// `key_type` from `device.yml`.
        expected: crate::KeyType,
        /// What the file holds.
        found: String,
    },
    /// The device holding the key (a TPM) could not load it, or this build
    /// cannot use it.
    #[error("{}: cannot load the device key into {device}: {reason}", path.display())]
    Device {
        /// The key file.
        path: PathBuf,
        /// The device, e.g. ``TPM at `device:/dev/tpmrm0` ``.
        device: String,
        /// What went wrong and what to do.
        reason: String,
    },
}

/// A signature could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The crypto library failed (should not happen with a valid key).
    #[error("signing with the device key failed")]
    Crypto,
    /// The external signing command failed.
    #[error("signing command `{command}` failed: {reason}")]
    Command {
        /// The command that was run.
        command: String,
        /// What went wrong.
        reason: String,
    },
    /// Serializing the token to sign failed.
    #[error("cannot encode JWT: {0}")]
    Encode(String),
    /// The device holding the key (a TPM, an HSM) failed or did not answer.
    #[error("signing with {device} failed: {reason}")]
    Device {
        /// The device, e.g. ``TPM at `device:/dev/tpmrm0` ``.
        device: String,
        /// What went wrong, naming the key and the device's error.
        reason: String,
    },
}

/// Why an HTTP exchange produced no response.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct TransportError {
    /// The class of failure.
    pub kind: TransportErrorKind,
    /// Details from the transport.
    pub message: String,
}

impl TransportError {
    /// A transport error of `kind`.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
        }
    }
}

/// Classes of transport failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// Could not connect (refused, DNS, TLS handshake).
    Connect,
    /// Connect or total timeout elapsed.
    Timeout,
    /// The body exceeded the size limit.
    BodyTooLarge,
    /// `http://` to a non-loopback host without opt-in.
    InsecureUrl,
    /// The server answered with a redirect (3xx), or the backend followed
    /// one: redirects are never followed ([PROTOCOL §11](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#11-http-hygiene)).
    Redirect,
    /// The request could not be built.
    InvalidRequest,
    /// Anything else (connection reset, protocol error).
    Other,
}

impl std::fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransportErrorKind::Connect => "cannot connect",
            TransportErrorKind::Timeout => "timed out",
            TransportErrorKind::BodyTooLarge => "response body too large",
            TransportErrorKind::InsecureUrl => "refusing plain http",
            TransportErrorKind::Redirect => "refusing a redirect",
            TransportErrorKind::InvalidRequest => "invalid request",
            TransportErrorKind::Other => "transport error",
        })
    }
}
