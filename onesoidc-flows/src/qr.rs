//! QR login ([PROTOCOL §8](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#8-qr-login-ones-extension)): the device shows a code, the person's phone
//! scans it, and the device continues with CIBA using the hint it gets.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use onesoidc_core::{
    AuthReqId, CibaRequest, Error, LoginHint, QrSession, QrSessionId, QrStatus, parse_qr_session,
    parse_qr_status, qr_create_request, qr_session_url, qr_sessions_url, qr_status_request,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::{CibaEvent, EventStream, Login, OnesIdClient};

/// What happens during a QR login, in order (the seed's `QRAuthSignals`):
/// the session, the scan, then the CIBA login it leads to. The stream ends
/// after `Authenticated` or `Failed`, exactly one of which comes last,
/// whatever stage failed.
///
/// `Display` gives a line for a log or a UI, never a token or hint. A
/// `Failed` error answers [`Error::is_denied`] (the person declined or
/// cancelled on the phone), [`Error::is_expired`] (nobody scanned or
/// answered in time) and [`Error::is_network`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum QrEvent {
    /// The session exists: show `session.cb_url` as a QR code (see [`crate::render`]).
    SessionCreated(QrSession),
    /// Waiting for the phone to scan the code.
    WaitingForScan {
        /// Time left before the session expires.
        remaining: Duration,
    },
    /// The phone scanned the code; CIBA starts.
    Scanned,
    /// The provider accepted the CIBA request that follows the scan.
    AuthorizationRequested {
        /// Identifies the CIBA request.
        auth_req_id: AuthReqId,
        /// How long the person has to answer.
        expires_in: Duration,
    },
    /// Waiting for the person to approve on the phone.
    WaitingForAuthorization {
        /// Time left before the CIBA request expires.
        remaining: Duration,
        /// Polls sent so far.
        polls: u32,
        /// Wait before the next poll.
        next_poll_in: Duration,
    },
    /// The person approved; the ID token (if any) has been validated.
    Authenticated(Login),
    /// The login failed, at whatever stage: the session could not be
    /// created, expired or was cancelled, or the CIBA login failed.
    Failed(Arc<Error>),
}

impl fmt::Display for QrEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QrEvent::SessionCreated(session) => write!(
                f,
                "QR session {} created ({} s to scan)",
                session.session_id,
                session.expires_in.as_secs()
            ),
            QrEvent::WaitingForScan { remaining } => {
                write!(
                    f,
                    "waiting for the code to be scanned ({} s left)",
                    remaining.as_secs()
                )
            }
            QrEvent::Scanned => f.write_str("scanned; asking the person to approve"),
            QrEvent::AuthorizationRequested { expires_in, .. } => {
                write!(
                    f,
                    "asked the person to approve ({} s to answer)",
                    expires_in.as_secs()
                )
            }
            QrEvent::WaitingForAuthorization {
                remaining,
                polls,
                next_poll_in,
            } => write!(
                f,
                "waiting for the person to approve ({} s left, {polls} polls, next in {} s)",
                remaining.as_secs(),
                next_poll_in.as_secs()
            ),
            QrEvent::Authenticated(login) => write!(f, "{login}"),
            QrEvent::Failed(error) => write!(f, "failed: {error}"),
        }
    }
}

/// The CIBA part of a QR login.
impl From<CibaEvent> for QrEvent {
    fn from(event: CibaEvent) -> Self {
        match event {
            CibaEvent::Started {
                auth_req_id,
                expires_in,
                ..
            } => QrEvent::AuthorizationRequested {
                auth_req_id,
                expires_in,
            },
            CibaEvent::WaitingForAuthorization {
                remaining,
                polls,
                next_poll_in,
            } => QrEvent::WaitingForAuthorization {
                remaining,
                polls,
                next_poll_in,
            },
            CibaEvent::Authenticated(login) => QrEvent::Authenticated(login),
            CibaEvent::Failed(error) => QrEvent::Failed(error),
        }
    }
}

impl OnesIdClient {
    /// Creates a QR login session (with the device access token).
    pub async fn qr_create(&self) -> Result<QrSession, Error> {
        let endpoint = qr_sessions_url(self.issuer());
        self.with_device_bearer(
            |bearer| qr_create_request(self.issuer(), bearer),
            &endpoint,
            |r| parse_qr_session(&endpoint, r),
        )
        .await
    }

    /// Checks a QR session once.
    pub async fn qr_check(&self, session_id: &QrSessionId) -> Result<QrStatus, Error> {
        let endpoint = qr_session_url(self.issuer(), session_id)?;
        self.with_device_bearer(
            |bearer| qr_status_request(self.issuer(), bearer, session_id),
            &endpoint,
            |r| parse_qr_status(&endpoint, r),
        )
        .await
    }

    /// Checks the session every `interval` until it is scanned; returns the
    /// `login_hint_token`. Fails when it expires or is cancelled.
    pub async fn qr_wait_for_scan(&self, session: &QrSession) -> Result<String, Error> {
        self.qr_wait_reporting(session, None).await
    }

    /// The whole QR login: create, show (via `show`), wait for the scan, then
    /// CIBA with `options` (scope, binding message, resource; the person is
    /// found by the scan, so `options` names nobody).
    ///
    /// ```no_run
    /// use onesoidc_flows::{CibaRequest, render};
    /// # async fn run(client: onesoidc_flows::OnesIdClient) -> Result<(), onesoidc_flows::Error> {
    /// let login = client
    ///     .qr_login(&CibaRequest::new(), |session| {
    ///         println!("{}", render::terminal(&session.cb_url).unwrap());
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn qr_login(
        &self,
        options: &CibaRequest,
        show: impl FnOnce(&QrSession),
    ) -> Result<Login, Error> {
        check_qr_options(options)?;
        let session = self.qr_create().await?;
        show(&session);
        let login_hint_token = self.qr_wait_for_scan(&session).await?;
        self.ciba(&after_scan(options, &session, login_hint_token))
            .await
    }

    /// The QR login as a stream of [`QrEvent`]s (replacing `QRAuthSignals`).
    /// Dropping the stream cancels the login.
    ///
    /// ```no_run
    /// use onesoidc_flows::{CibaRequest, QrEvent, StreamExt, render};
    /// # async fn run(client: onesoidc_flows::OnesIdClient) {
    /// let mut events = client.qr_events(CibaRequest::new().binding_message("Kiosk 7"));
    /// while let Some(event) = events.next().await {
    ///     if let QrEvent::SessionCreated(session) = &event {
    ///         println!("{}", render::terminal(&session.cb_url).unwrap());
    ///     }
    ///     println!("{event}");
    /// }
    /// # }
    /// ```
    pub fn qr_events(&self, options: CibaRequest) -> EventStream<QrEvent> {
        let client = self.clone();
        EventStream::spawn(move |events| async move {
            let last = match client.qr_run(&options, &events).await {
                Ok(last) => last,
                Err(error) => QrEvent::Failed(Arc::new(error)),
            };
            let _ = events.send(last).await;
        })
    }

    /// Reports every step but the last on `events`; returns the last.
    async fn qr_run(
        &self,
        options: &CibaRequest,
        events: &mpsc::Sender<QrEvent>,
    ) -> Result<QrEvent, Error> {
        check_qr_options(options)?;
        let session = self.qr_create().await?;
        let _ = events.send(QrEvent::SessionCreated(session.clone())).await;
        let login_hint_token = self.qr_wait_reporting(&session, Some(events)).await?;
        let _ = events.send(QrEvent::Scanned).await;
        let request = after_scan(options, &session, login_hint_token);
        Ok(self.ciba_run(&request, events).await.into())
    }

    async fn qr_wait_reporting(
        &self,
        session: &QrSession,
        events: Option<&mpsc::Sender<QrEvent>>,
    ) -> Result<String, Error> {
        let began = Instant::now();
        let expired = || Error::Expired {
            what: format!("QR session {}", session.session_id),
            after: session.expires_in,
        };
        let mut wait = session.interval;
        loop {
            let elapsed = began.elapsed();
            let Some(remaining) = session
                .expires_in
                .checked_sub(elapsed)
                .filter(|r| !r.is_zero())
            else {
                return Err(expired());
            };
            if let Some(events) = events {
                let _ = events.send(QrEvent::WaitingForScan { remaining }).await;
            }
            tokio::time::sleep(wait.min(remaining)).await;
            wait = session.interval;
            let status = match self.qr_check(&session.session_id).await {
                Ok(status) => status,
                // A provider under load (429, 503) is asked again after its
                // `Retry-After` (or the interval), while the session lasts.
                Err(error) if matches!(error.http_status(), Some(429 | 503)) => {
                    let after = error
                        .retry_after()
                        .unwrap_or_default()
                        .max(session.interval);
                    if began.elapsed().saturating_add(after) >= session.expires_in {
                        return Err(error);
                    }
                    tracing::debug!(
                        retry_in_s = after.as_secs(),
                        "QR status check refused; waiting"
                    );
                    wait = after;
                    continue;
                }
                Err(error) => return Err(error),
            };
            match status {
                QrStatus::Pending => continue,
                QrStatus::Scanned { login_hint_token } => return Ok(login_hint_token),
                QrStatus::Expired => return Err(expired()),
                QrStatus::Cancelled => {
                    return Err(Error::Cancelled {
                        what: format!("QR session {}", session.session_id),
                    });
                }
            }
        }
    }
}

/// A QR login finds the person by the scan: options that already name
/// someone are a mistake, refused before a session is created.
fn check_qr_options(options: &CibaRequest) -> Result<(), Error> {
    match &options.hint {
        None => Ok(()),
        Some(_) => Err(Error::InvalidRequest {
            endpoint: "QR login".into(),
            reason: "the person is found by the scan; use CibaRequest::new() without a username"
                .into(),
        }),
    }
}

/// The CIBA request that continues `session` after the scan.
fn after_scan(options: &CibaRequest, session: &QrSession, login_hint_token: String) -> CibaRequest {
    options
        .clone()
        .login_hint(LoginHint::LoginHintToken(login_hint_token))
        .qr_session_id(session.session_id.clone())
}
