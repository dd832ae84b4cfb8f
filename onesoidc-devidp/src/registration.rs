//! Device registration requests (PROTOCOL §10, px-device-identity's
//! protocol): pending until an administrator (the control surface or the
//! auto-approve policy) approves or rejects them by verification code.

use std::sync::Arc;

use onesoidc_core::PublicJwk;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::config::UserDecision;
use crate::devices::{Device, RegisteredDevice};
use crate::error::{ApiError, ControlError};
use crate::jose::DeviceKey;
use crate::state::Provider;

#[derive(Debug, Clone)]
pub(crate) enum RegistrationStatus {
    Pending,
    Approved(RegisteredDevice),
    Rejected,
}

#[derive(Debug, Clone)]
pub(crate) struct RegistrationRecord {
    pub jwk: PublicJwk,
    /// `title`, `location`, `domain`, `role`, ... as the device sent them.
    pub details: Map<String, Value>,
    /// The key's kind for the console, e.g. `EC P-256 · ES256`.
    pub key_kind: String,
    pub expires_at: Instant,
    pub status: RegistrationStatus,
}

impl RegistrationRecord {
    fn state_name(&self, now: Instant) -> &'static str {
        match self.status {
            RegistrationStatus::Approved(_) => "approved",
            RegistrationStatus::Rejected => "rejected",
            RegistrationStatus::Pending if now >= self.expires_at => "expired",
            RegistrationStatus::Pending => "pending",
        }
    }
}

/// A pending registration as `GET /control/registrations` lists it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PendingRegistration {
    pub verification_code: String,
    pub public_jwk: PublicJwk,
    pub details: Map<String, Value>,
}

impl Provider {
    /// Records a registration request for `jwk` and returns its verification code.
    pub fn create_registration(
        self: &Arc<Self>,
        jwk: PublicJwk,
        details: Map<String, Value>,
    ) -> Result<String, ApiError> {
        let key = DeviceKey::from_jwk(&jwk)
            .map_err(|e| ApiError::invalid_request(format!("`publicKey.keys[0]`: {e}")))?;
        let now = Instant::now();
        let record = RegistrationRecord {
            jwk,
            details,
            key_kind: key.kind().to_string(),
            expires_at: now + self.config.registration_expires_in,
            status: RegistrationStatus::Pending,
        };
        let (code, policy) = {
            let mut store = self.lock();
            let code = loop {
                let candidate = uuid::Uuid::new_v4().simple().to_string()[..8].to_ascii_uppercase();
                if !store.registrations.contains_key(&candidate) {
                    break candidate;
                }
            };
            store.registrations.insert(code.clone(), record);
            (code, store.auto_approve)
        };
        self.registration_events.push(code.clone());
        self.changed();
        if let Some(policy) = policy {
            let id = code.clone();
            self.after(policy.after, move |state| {
                if let Err(e) = state.decide_registration(&id, policy.user_decision) {
                    tracing::debug!(%e, "auto-approve skipped a registration");
                }
            });
        }
        Ok(code)
    }

    /// The status body for `code`, `None` when unknown.
    pub fn registration_status(&self, code: &str) -> Option<Value> {
        let store = self.lock();
        let record = store.registrations.get(code)?;
        Some(match (&record.status, record.state_name(Instant::now())) {
            (RegistrationStatus::Approved(ids), _) => json!({
                "status": "approved",
                "deviceId": ids.device_id,
                "clientId": ids.client_id,
            }),
            (_, "expired") => json!({
                "status": "error",
                "error_description": "the registration request expired before an administrator approved it",
            }),
            (_, state) => json!({"status": state}),
        })
    }

    /// Approves (registering the key under fresh ids, which it returns) or
    /// rejects a pending request.
    pub fn decide_registration(
        &self,
        code: &str,
        decision: UserDecision,
    ) -> Result<Option<RegisteredDevice>, ControlError> {
        let now = Instant::now();
        let mut store = self.lock();
        let record = store
            .registrations
            .get(code)
            .ok_or_else(|| ControlError::UnknownRegistration(code.to_string()))?;
        let state = record.state_name(now);
        if state != "pending" {
            return Err(ControlError::RegistrationNotPending {
                verification_code: code.to_string(),
                state,
            });
        }
        let status = match decision {
            UserDecision::Approve => {
                let ids = RegisteredDevice::fresh();
                let device = Device::new(&ids.device_id, &ids.client_id, &record.jwk)?;
                store
                    .devices
                    .insert(ids.client_id.clone(), Arc::new(device));
                RegistrationStatus::Approved(ids)
            }
            UserDecision::Deny => RegistrationStatus::Rejected,
        };
        let ids = match &status {
            RegistrationStatus::Approved(ids) => Some(ids.clone()),
            _ => None,
        };
        if let Some(record) = store.registrations.get_mut(code) {
            record.status = status;
        }
        drop(store);
        self.changed();
        tracing::debug!(?decision, "registration decided");
        Ok(ids)
    }

    /// Pending, unexpired registration requests.
    pub fn pending_registrations(&self) -> Vec<PendingRegistration> {
        let now = Instant::now();
        let store = self.lock();
        let mut pending: Vec<_> = store
            .registrations
            .iter()
            .filter(|(_, r)| r.state_name(now) == "pending")
            .map(|(code, r)| PendingRegistration {
                verification_code: code.clone(),
                public_jwk: r.jwk.clone(),
                details: r.details.clone(),
            })
            .collect();
        pending.sort_by(|a, b| a.verification_code.cmp(&b.verification_code));
        pending
    }
}
