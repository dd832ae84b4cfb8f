//! ONES extensions: QR login sessions ([PROTOCOL §8](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#8-qr-login-ones-extension)) and well-known
//! applications (§9). Request builders and response parsers only.

use std::time::Duration;

use serde::Deserialize;

use crate::request::{HttpRequest, get, post_json};
use crate::response::{HttpResponse, Json, parse_json};
use crate::{ClientId, Endpoint, Error, Issuer, QrSessionId};

/// A QR login session created by the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrSession {
    /// The session id, later sent as `qr_session_id`.
    pub session_id: QrSessionId,
    /// What the QR code encodes, exactly.
    pub cb_url: String,
    /// How long the session can be scanned.
    pub expires_in: Duration,
    /// How often to check its status.
    pub interval: Duration,
}

/// The state of a QR session.
#[derive(Clone, PartialEq, Eq)]
pub enum QrStatus {
    /// Not scanned yet.
    Pending,
    /// Scanned: continue with CIBA using this `login_hint_token`.
    Scanned {
        /// The hint that identifies the user who scanned.
        login_hint_token: String,
    },
    /// The session expired.
    Expired,
    /// The session was cancelled.
    Cancelled,
}

impl std::fmt::Debug for QrStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QrStatus::Pending => "Pending",
            QrStatus::Scanned { .. } => "Scanned { login_hint_token: [redacted] }",
            QrStatus::Expired => "Expired",
            QrStatus::Cancelled => "Cancelled",
        })
    }
}

/// `{issuer}/qr/sessions`.
pub fn qr_sessions_url(issuer: &Issuer) -> Endpoint {
    issuer.endpoint("/qr/sessions")
}

/// `{issuer}/qr/sessions/{session_id}`, the id percent-encoded.
///
/// ```
/// let issuer = onesoidc_core::Issuer::new("https://idp/oidc").unwrap();
/// let url = onesoidc_core::qr_session_url(&issuer, &"a/b".into()).unwrap();
/// assert_eq!(url.as_str(), "https://idp/oidc/qr/sessions/a%2Fb");
/// ```
pub fn qr_session_url(issuer: &Issuer, session_id: &QrSessionId) -> Result<Endpoint, Error> {
    let base = qr_sessions_url(issuer);
    let mut url = url::Url::parse(base.as_str()).map_err(|e| Error::InvalidUrl {
        url: base.to_string(),
        reason: e.to_string(),
    })?;
    url.path_segments_mut()
        .map_err(|_| Error::InvalidUrl {
            url: base.to_string(),
            reason: "cannot hold a path".into(),
        })?
        .push(session_id.as_str());
    Ok(Endpoint::new(String::from(url)))
}

/// `POST {issuer}/qr/sessions` with the device access token and body `{}`.
pub fn qr_create_request(issuer: &Issuer, device_token: &str) -> Result<HttpRequest, Error> {
    post_json(
        &qr_sessions_url(issuer),
        Some(device_token),
        &serde_json::json!({}),
    )
}

/// `GET {issuer}/qr/sessions/{session_id}` with the device access token.
pub fn qr_status_request(
    issuer: &Issuer,
    device_token: &str,
    session_id: &QrSessionId,
) -> Result<HttpRequest, Error> {
    get(&qr_session_url(issuer, session_id)?, Some(device_token))
}

/// Parses the 201 (or 200) answer to [`qr_create_request`]: `session_id`,
/// an http(s) `cb_url`, `expires_in` (capped at
/// [`MAX_LOGIN_EXPIRES_IN`](crate::MAX_LOGIN_EXPIRES_IN)) and `interval`
/// (5 s when absent, 1–60 s).
pub fn parse_qr_session(endpoint: &Endpoint, response: &HttpResponse) -> Result<QrSession, Error> {
    let body = Json::parse(endpoint, response)?;
    let session_id = body.required_str("session_id")?;
    let cb_url = body.required_str("cb_url")?;
    let cb = url::Url::parse(cb_url).map_err(|_| body.invalid("`cb_url` is not a URL"))?;
    if !matches!(cb.scheme(), "https" | "http") {
        return Err(body.invalid("`cb_url` is not an http(s) URL"));
    }
    let expires_in = body
        .seconds("expires_in", crate::MAX_LOGIN_EXPIRES_IN)?
        .ok_or_else(|| body.invalid("`expires_in` is missing"))?;
    Ok(QrSession {
        session_id: QrSessionId::from(session_id),
        cb_url: cb_url.to_string(),
        expires_in,
        interval: crate::oauth::poll_interval(body.seconds("interval", crate::MAX_POLL_INTERVAL)?),
    })
}

/// Parses the answer to [`qr_status_request`]; 404 (unknown session) is an error.
///
/// ```
/// use onesoidc_core::{QrStatus, parse_qr_status};
/// let r = http::Response::builder().status(200)
///     .body(br#"{"session_id":"s","status":"scanned","login_hint_token":"lht"}"#.to_vec()).unwrap();
/// assert_eq!(parse_qr_status(&"u".into(), &r).unwrap(), QrStatus::Scanned { login_hint_token: "lht".into() });
/// ```
pub fn parse_qr_status(endpoint: &Endpoint, response: &HttpResponse) -> Result<QrStatus, Error> {
    let body = Json::parse(endpoint, response)?;
    Ok(match body.required_str("status")? {
        "pending" => QrStatus::Pending,
        "scanned" => QrStatus::Scanned {
            login_hint_token: body
                .str("login_hint_token")?
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    body.invalid("status is `scanned` but there is no `login_hint_token`")
                })?
                .to_string(),
        },
        "expired" => QrStatus::Expired,
        "cancelled" => QrStatus::Cancelled,
        _ => return Err(body.invalid("`status` is none of pending, scanned, expired, cancelled")),
    })
}

/// A well-known application ([PROTOCOL §9](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#9-well-known-applications-ones-extension)).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Application {
    /// The identifier to look it up by, e.g. `vhh-server`.
    pub client_identifier: String,
    /// Its OAuth client id, if listed.
    #[serde(default)]
    pub client_id: Option<ClientId>,
    /// Display name, if listed.
    #[serde(default)]
    pub name: Option<String>,
    /// Its URL as listed: absolute, or a path on the issuer's origin.
    pub url: String,
}

#[derive(Deserialize)]
struct ApplicationsBody {
    applications: Vec<Application>,
}

/// `{issuer}/.well-known/applications`.
pub fn applications_url(issuer: &Issuer) -> Endpoint {
    issuer.endpoint("/.well-known/applications")
}

/// `GET {issuer}/.well-known/applications` with the device access token.
pub fn applications_request(issuer: &Issuer, device_token: &str) -> Result<HttpRequest, Error> {
    get(&applications_url(issuer), Some(device_token))
}

/// Parses the applications list.
pub fn parse_applications(
    endpoint: &Endpoint,
    response: &HttpResponse,
) -> Result<Vec<Application>, Error> {
    Ok(parse_json::<ApplicationsBody>(endpoint, response)?.applications)
}

/// Finds `identifier` in `applications` and resolves its URL against the
/// issuer ([PROTOCOL §9](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#9-well-known-applications-ones-extension)); the result's `url` is what CIBA sends as `resource`.
///
/// ```
/// use onesoidc_core::{Application, Issuer, find_application};
/// let issuer = Issuer::new("https://idp.example.com/oidc").unwrap();
/// let apps = vec![Application { client_identifier: "vhh-server".into(), client_id: None, name: None, url: "/vhh".into() }];
/// let app = find_application(&apps, "vhh-server", &issuer).unwrap();
/// assert_eq!(app.url, "https://idp.example.com/vhh");
/// assert!(find_application(&apps, "nope", &issuer).unwrap_err().to_string().contains("vhh-server"));
/// ```
pub fn find_application(
    applications: &[Application],
    identifier: &str,
    issuer: &Issuer,
) -> Result<Application, Error> {
    let app = applications
        .iter()
        .find(|a| a.client_identifier == identifier)
        .ok_or_else(|| Error::UnknownApplication {
            endpoint: applications_url(issuer).into_string(),
            identifier: identifier.to_string(),
            known: applications
                .iter()
                .map(|a| a.client_identifier.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    app.resolved(issuer)
}

impl Application {
    /// This application with its URL resolved against `issuer` (a path
    /// becomes a URL on the issuer's origin), or [`Error::InvalidUrl`]
    /// naming the application when the URL is not http(s): one bad entry
    /// in the list fails only its own look-up.
    ///
    /// ```
    /// use onesoidc_core::{Application, Issuer};
    /// let issuer = Issuer::new("https://idp.example.com/oidc").unwrap();
    /// let app = |url: &str| Application { client_identifier: "typo-app".into(), client_id: None, name: None, url: url.into() };
    /// assert_eq!(app("/vhh").resolved(&issuer).unwrap().url, "https://idp.example.com/vhh");
    /// let err = app("ftp://files.example.com").resolved(&issuer).unwrap_err();
    /// assert!(err.to_string().contains("typo-app"), "{err}");
    /// ```
    pub fn resolved(&self, issuer: &Issuer) -> Result<Application, Error> {
        let url = issuer.resolve_url(&self.url).map_err(|error| match error {
            Error::InvalidUrl { url, reason } => Error::InvalidUrl {
                url,
                reason: format!(
                    "{reason}: the URL of application {:?} in {}; ask the provider's administrator to correct it",
                    self.client_identifier,
                    applications_url(issuer)
                ),
            },
            other => other,
        })?;
        Ok(Application {
            url,
            ..self.clone()
        })
    }
}
