//! QR login (PROTOCOL §8): the device shows a code, the person's phone
//! scans it, and the device continues with CIBA using the hint it gets.

use std::time::Duration;

use onesoidc_core::{
    Error, LoginHint, QrSession, QrStatus, parse_qr_session, parse_qr_status, qr_create_request,
    qr_session_url, qr_sessions_url, qr_status_request,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::{CibaEvent, EventStream, Login, LoginOptions, OnesIdClient};

/// What happens during a QR login, in order. After `Scanned` come the
/// CIBA events; the stream ends after `Ciba(Authenticated)` or a failure.
#[derive(Debug)]
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
    /// A CIBA event of the login that follows the scan.
    Ciba(CibaEvent),
    /// The QR part failed (expired, cancelled, or an error).
    Failed(Error),
}

/// A CIBA event of the login that follows the scan.
impl From<CibaEvent> for QrEvent {
    fn from(event: CibaEvent) -> Self {
        QrEvent::Ciba(event)
    }
}

impl OnesIdClient {
    /// Creates a QR login session (with the device access token).
    pub async fn qr_create(&self) -> Result<QrSession, Error> {
        let endpoint = qr_sessions_url(self.issuer());
        let response = self
            .with_device_bearer(|bearer| qr_create_request(self.issuer(), bearer), &endpoint)
            .await?;
        parse_qr_session(&endpoint, &response)
    }

    /// Checks a QR session once.
    pub async fn qr_check(&self, session_id: &str) -> Result<QrStatus, Error> {
        let endpoint = qr_session_url(self.issuer(), session_id)?;
        let response = self
            .with_device_bearer(
                |bearer| qr_status_request(self.issuer(), bearer, session_id),
                &endpoint,
            )
            .await?;
        parse_qr_status(&endpoint, &response)
    }

    /// Checks the session every `interval` until it is scanned; returns the
    /// `login_hint_token`. Fails when it expires or is cancelled.
    pub async fn qr_wait_for_scan(&self, session: &QrSession) -> Result<String, Error> {
        self.qr_wait_reporting(session, None).await
    }

    /// The whole QR login: create, show (via `show`), wait for the scan, then CIBA.
    ///
    /// ```no_run
    /// use onesoidc_flows::{LoginOptions, render};
    /// # async fn run(client: onesoidc_flows::OnesIdClient) -> Result<(), onesoidc_flows::Error> {
    /// let login = client
    ///     .qr_login(&LoginOptions::default(), |session| {
    ///         println!("{}", render::terminal(&session.cb_url).unwrap());
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn qr_login(
        &self,
        options: &LoginOptions,
        show: impl FnOnce(&QrSession),
    ) -> Result<Login, Error> {
        let session = self.qr_create().await?;
        show(&session);
        let login_hint_token = self.qr_wait_for_scan(&session).await?;
        let request = options
            .request(LoginHint::LoginHintToken(login_hint_token))
            .qr_session_id(session.session_id.clone());
        self.ciba(&request).await
    }

    /// The QR login as a stream of [`QrEvent`]s (replacing `QRAuthSignals`).
    /// Dropping the stream cancels the login.
    pub fn qr_events(&self, options: LoginOptions) -> EventStream<QrEvent> {
        let client = self.clone();
        EventStream::spawn(move |events| async move {
            client.qr_run(&options, &events).await;
        })
    }

    async fn qr_run(&self, options: &LoginOptions, events: &mpsc::Sender<QrEvent>) {
        let session = match self.qr_create().await {
            Ok(session) => session,
            Err(error) => {
                let _ = events.send(QrEvent::Failed(error)).await;
                return;
            }
        };
        let _ = events.send(QrEvent::SessionCreated(session.clone())).await;
        let login_hint_token = match self.qr_wait_reporting(&session, Some(events)).await {
            Ok(token) => token,
            Err(error) => {
                let _ = events.send(QrEvent::Failed(error)).await;
                return;
            }
        };
        let _ = events.send(QrEvent::Scanned).await;
        let request = options
            .request(LoginHint::LoginHintToken(login_hint_token))
            .qr_session_id(session.session_id.clone());
        self.ciba_run(&request, events).await;
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
        loop {
            let elapsed = began.elapsed();
            if elapsed >= session.expires_in {
                return Err(expired());
            }
            if let Some(events) = events {
                let remaining = session.expires_in - elapsed;
                let _ = events.send(QrEvent::WaitingForScan { remaining }).await;
            }
            tokio::time::sleep(session.interval.min(session.expires_in - elapsed)).await;
            match self.qr_check(&session.session_id).await? {
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
