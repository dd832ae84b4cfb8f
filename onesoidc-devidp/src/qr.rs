//! QR login sessions (PROTOCOL §8, a ONES extension): created by a device,
//! scanned by a user's phone (or [`crate::DevIdp::simulate_qr_scan`]), then
//! continued with CIBA using the `login_hint_token` the scan produced.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::UserDecision;
use crate::error::{ApiError, ControlError, code};
use crate::state::{Provider, Store, ceil_secs, random_token};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QrStatus {
    Pending,
    Scanned { login_hint_token: String },
    Cancelled,
}

#[derive(Debug, Clone)]
pub(crate) struct QrRecord {
    pub client_id: String,
    pub expires_at: Instant,
    pub status: QrStatus,
}

impl QrRecord {
    fn state_name(&self, now: Instant) -> &'static str {
        match self.status {
            QrStatus::Scanned { .. } => "scanned",
            QrStatus::Cancelled => "cancelled",
            QrStatus::Pending if now >= self.expires_at => "expired",
            QrStatus::Pending => "pending",
        }
    }
}

/// What a `login_hint_token` stands for: a user who scanned a session.
#[derive(Debug, Clone)]
pub(crate) struct HintRecord {
    pub username: String,
    pub session_id: String,
    pub client_id: String,
    pub expires_at: Instant,
    pub used: bool,
}

impl Provider {
    /// The URL the QR code encodes; the phone POSTs it.
    pub fn cb_url(&self, session_id: &str) -> String {
        format!("{}/qr/sessions/{session_id}/scan", self.issuer)
    }

    /// Creates a session for `client_id` and returns the 201 body.
    pub fn create_qr(self: &Arc<Self>, client_id: &str) -> Value {
        let now = Instant::now();
        let session_id = uuid::Uuid::new_v4().to_string();
        let record = QrRecord {
            client_id: client_id.to_string(),
            expires_at: now + self.config.qr_expires_in,
            status: QrStatus::Pending,
        };
        let policy = {
            let mut store = self.lock();
            store
                .qr
                .retain(|_, r| now < r.expires_at + Duration::from_secs(3600));
            store.qr.insert(session_id.clone(), record);
            store.stats.qr_sessions_created += 1;
            store.auto_approve
        };
        self.qr_events.push(session_id.clone());
        self.changed();
        let first_user = self.config.users.first().cloned();
        let scan = policy.filter(|p| p.user_decision == UserDecision::Approve);
        if let (Some(policy), Some(user)) = (scan, first_user) {
            let id = session_id.clone();
            self.after(policy.after, move |state| {
                if let Err(e) = state.scan_qr(&id, &user) {
                    tracing::debug!(%e, "auto-approve skipped a QR session");
                }
            });
        }
        json!({
            "session_id": session_id,
            "cb_url": self.cb_url(&session_id),
            "expires_in": ceil_secs(self.config.qr_expires_in),
            "interval": ceil_secs(self.config.qr_interval),
        })
    }

    /// The status body of a session that belongs to `client_id`; other
    /// clients' sessions are 404 like unknown ones.
    pub fn qr_status(&self, client_id: &str, session_id: &str) -> Result<Value, ApiError> {
        let store = self.lock();
        let record = store
            .qr
            .get(session_id)
            .filter(|r| r.client_id == client_id)
            .ok_or_else(|| ApiError::not_found(format!("unknown QR session {session_id:?}")))?;
        let mut body = json!({
            "session_id": session_id,
            "status": record.state_name(Instant::now()),
        });
        if let QrStatus::Scanned { login_hint_token } = &record.status {
            body["login_hint_token"] = json!(login_hint_token);
        }
        Ok(body)
    }

    /// Cancels a pending session of `client_id` (a dev IdP extension).
    pub fn cancel_qr(&self, client_id: &str, session_id: &str) -> Result<(), ApiError> {
        self.cancel_pending_qr(session_id, Some(client_id))
            .map_err(|e| match e {
                ControlError::QrSessionNotPending { state, .. } => {
                    ApiError::invalid_request(format!("the QR session is {state}, not pending"))
                }
                _ => ApiError::not_found(format!("unknown QR session {session_id:?}")),
            })
    }

    /// The phone app cancels `session_id` (control surface): the session
    /// becomes `cancelled`.
    pub fn cancel_qr_on_phone(&self, session_id: &str) -> Result<(), ControlError> {
        self.cancel_pending_qr(session_id, None)
    }

    /// Cancels `session_id` if it is pending (and belongs to `client_id`,
    /// when one is given).
    fn cancel_pending_qr(
        &self,
        session_id: &str,
        client_id: Option<&str>,
    ) -> Result<(), ControlError> {
        let mut store = self.lock();
        pending_qr_mut(&mut store, session_id, client_id, Instant::now())?.status =
            QrStatus::Cancelled;
        drop(store);
        self.changed();
        Ok(())
    }

    /// `username` scans `session_id`: the session becomes `scanned` with a
    /// fresh `login_hint_token` for that user.
    pub fn scan_qr(&self, session_id: &str, username: &str) -> Result<(), ControlError> {
        if !self.is_user(username) {
            return Err(ControlError::UnknownUser(username.to_string()));
        }
        let now = Instant::now();
        let mut store = self.lock();
        let record = pending_qr_mut(&mut store, session_id, None, now)?;
        let token = random_token("lht_");
        record.status = QrStatus::Scanned {
            login_hint_token: token.clone(),
        };
        let hint = HintRecord {
            username: username.to_string(),
            session_id: session_id.to_string(),
            client_id: record.client_id.clone(),
            expires_at: now + self.config.qr_expires_in,
            used: false,
        };
        store.login_hint_tokens.retain(|_, h| now < h.expires_at);
        store.login_hint_tokens.insert(token, hint);
        drop(store);
        self.changed();
        tracing::debug!(%username, "QR session scanned");
        Ok(())
    }

    /// Pending, unexpired sessions: `(session_id, client_id)`.
    pub fn pending_qr(&self) -> Vec<(String, String)> {
        let now = Instant::now();
        let store = self.lock();
        let mut pending: Vec<_> = store
            .qr
            .iter()
            .filter(|(_, r)| r.state_name(now) == "pending")
            .map(|(id, r)| (id.clone(), r.client_id.clone()))
            .collect();
        pending.sort();
        pending
    }

    /// Resolves and consumes a `login_hint_token` used by `client_id` in
    /// the CIBA request continuing QR session `qr_session_id`.
    pub fn use_login_hint_token(
        &self,
        client_id: &str,
        token: &str,
        qr_session_id: Option<&str>,
    ) -> Result<String, ApiError> {
        let now = Instant::now();
        let mut store = self.lock();
        let Some(hint) = store.login_hint_tokens.get_mut(token) else {
            return Err(ApiError::bad_request(
                code::UNKNOWN_USER_ID,
                "the login_hint_token does not identify a user",
            ));
        };
        if hint.client_id != client_id {
            return Err(ApiError::invalid_request(
                "the login_hint_token belongs to another client's QR session",
            ));
        }
        match qr_session_id {
            None => {
                return Err(ApiError::invalid_request(
                    "`qr_session_id` is required with a login_hint_token from a QR session",
                ));
            }
            Some(id) if id != hint.session_id => {
                return Err(ApiError::invalid_request(
                    "`qr_session_id` is not the session the login_hint_token came from",
                ));
            }
            Some(_) => {}
        }
        if now >= hint.expires_at {
            return Err(ApiError::bad_request(
                code::EXPIRED_LOGIN_HINT_TOKEN,
                "the login_hint_token has expired",
            ));
        }
        if hint.used {
            return Err(ApiError::invalid_request(
                "the login_hint_token was already used",
            ));
        }
        hint.used = true;
        Ok(hint.username.clone())
    }
}

/// Pending session `session_id` (of `client_id`, when one is given), to
/// change its status.
fn pending_qr_mut<'a>(
    store: &'a mut Store,
    session_id: &str,
    client_id: Option<&str>,
    now: Instant,
) -> Result<&'a mut QrRecord, ControlError> {
    let record = store
        .qr
        .get_mut(session_id)
        .filter(|r| client_id.is_none_or(|c| r.client_id == c))
        .ok_or_else(|| ControlError::UnknownQrSession(session_id.to_string()))?;
    match record.state_name(now) {
        "pending" => Ok(record),
        state => Err(ControlError::QrSessionNotPending {
            session_id: session_id.to_string(),
            state,
        }),
    }
}
