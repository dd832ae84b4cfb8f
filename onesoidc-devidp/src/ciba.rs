//! CIBA requests in poll mode (PROTOCOL §5): their life from the
//! backchannel request to the poll that collects the tokens.
//!
//! Timing uses tokio's clock: a request expires `expires_in` after it was
//! made, and a poll sooner than `ciba_interval` after the previous poll (or
//! after the request, for the first poll) is `slow_down` while the request
//! is pending.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::config::UserDecision;
use crate::error::{ApiError, ControlError, code};
use crate::state::{Provider, unix_now};
use crate::tokens::{Grant, TokenResponse};

/// `grant_type` of CIBA token polls.
pub(crate) const CIBA_GRANT_TYPE: &str = "urn:openid:params:grant-type:ciba";

/// A CIBA request as the control surface shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CibaRequestInfo {
    /// The id the client polls with.
    pub auth_req_id: String,
    /// The client that made the request.
    pub client_id: String,
    /// The user to authenticate: the `login_hint`, or the user a
    /// `login_hint_token` / `id_token_hint` resolved to.
    pub login_hint: String,
    /// The message to show on the user's phone.
    pub binding_message: Option<String>,
    /// The requested scope.
    pub scope: String,
    /// The requested resource (RFC 8707), the access token's `aud`.
    pub resource: Option<String>,
    /// The QR session this request continues (PROTOCOL §8).
    pub qr_session_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CibaStatus {
    Pending,
    Approved {
        auth_time: i64,
    },
    Denied,
    /// The tokens were collected.
    Consumed,
}

#[derive(Debug, Clone)]
pub(crate) struct CibaRecord {
    pub info: CibaRequestInfo,
    pub status: CibaStatus,
    pub expires_at: Instant,
    pub last_poll: Instant,
}

impl CibaRecord {
    fn state_name(&self, now: Instant) -> &'static str {
        match self.status {
            CibaStatus::Consumed => "consumed",
            _ if now >= self.expires_at => "expired",
            CibaStatus::Pending => "pending",
            CibaStatus::Approved { .. } => "approved",
            CibaStatus::Denied => "denied",
        }
    }
}

/// The answer to a successful backchannel request.
#[derive(Debug, Serialize)]
pub(crate) struct BackchannelResponse {
    pub auth_req_id: String,
    pub expires_in: u64,
    pub interval: u64,
}

impl Provider {
    /// Starts a CIBA request; announces it to `next_ciba_request` and
    /// schedules the auto-approve policy.
    pub fn create_ciba(self: &Arc<Self>, info: CibaRequestInfo, expires_in: Duration) {
        let now = Instant::now();
        let id = info.auth_req_id.clone();
        let record = CibaRecord {
            info: info.clone(),
            status: CibaStatus::Pending,
            expires_at: now + expires_in,
            last_poll: now,
        };
        let policy = {
            let mut store = self.lock();
            store
                .ciba
                .retain(|_, r| now < r.expires_at + Duration::from_secs(3600));
            store.ciba.insert(id.clone(), record);
            store.auto_approve
        };
        self.ciba_events.push(info);
        self.changed();
        if let Some(policy) = policy {
            self.after(policy.after, move |state| {
                if let Err(e) = state.decide_ciba(&id, policy.user_decision) {
                    tracing::debug!(%e, "auto-approve skipped a CIBA request");
                }
            });
        }
    }

    /// Approves or denies a pending CIBA request.
    pub fn decide_ciba(
        &self,
        auth_req_id: &str,
        decision: UserDecision,
    ) -> Result<(), ControlError> {
        let now = Instant::now();
        let mut store = self.lock();
        let record = store
            .ciba
            .get_mut(auth_req_id)
            .ok_or_else(|| ControlError::UnknownCibaRequest(auth_req_id.to_string()))?;
        let state = record.state_name(now);
        if state != "pending" {
            return Err(ControlError::CibaNotPending {
                auth_req_id: auth_req_id.to_string(),
                state,
            });
        }
        record.status = match decision {
            UserDecision::Approve => CibaStatus::Approved {
                auth_time: unix_now(),
            },
            UserDecision::Deny => CibaStatus::Denied,
        };
        drop(store);
        self.changed();
        tracing::debug!(?decision, "CIBA request decided");
        Ok(())
    }

    /// Pending, unexpired CIBA requests.
    pub fn pending_ciba(&self) -> Vec<CibaRequestInfo> {
        let now = Instant::now();
        let store = self.lock();
        let mut pending: Vec<_> = store
            .ciba
            .values()
            .filter(|r| r.state_name(now) == "pending")
            .map(|r| r.info.clone())
            .collect();
        pending.sort_by(|a, b| a.auth_req_id.cmp(&b.auth_req_id));
        pending
    }

    /// One poll of the CIBA grant by `client_id`.
    pub fn poll_ciba(
        &self,
        client_id: &str,
        auth_req_id: &str,
        jkt: Option<&str>,
    ) -> Result<TokenResponse, ApiError> {
        let now = Instant::now();
        let (info, auth_time) = {
            let mut store = self.lock();
            let Some(record) = store.ciba.get_mut(auth_req_id) else {
                return Err(ApiError::invalid_grant("unknown auth_req_id"));
            };
            if record.info.client_id != client_id {
                return Err(ApiError::invalid_grant(
                    "the auth_req_id was issued to another client",
                ));
            }
            self.check_dpop_required(record.info.resource.as_deref(), jkt.is_some())?;
            let previous_poll = std::mem::replace(&mut record.last_poll, now);
            let outcome = match record.status {
                CibaStatus::Consumed => Err(ApiError::invalid_grant(
                    "the auth_req_id was already used to obtain tokens",
                )),
                _ if now >= record.expires_at => Err(ApiError::bad_request(
                    code::EXPIRED_TOKEN,
                    "the auth_req_id has expired; start a new authentication request",
                )),
                CibaStatus::Denied => Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    code::ACCESS_DENIED,
                    "the user denied the request",
                )),
                CibaStatus::Pending
                    if now.duration_since(previous_poll) < self.config.ciba_interval =>
                {
                    Err(ApiError::bad_request(
                        code::SLOW_DOWN,
                        format!(
                            "polled {} ms after the previous poll; the interval is {} ms",
                            now.duration_since(previous_poll).as_millis(),
                            self.config.ciba_interval.as_millis()
                        ),
                    ))
                }
                CibaStatus::Pending => Err(ApiError::bad_request(
                    code::AUTHORIZATION_PENDING,
                    "the user has not answered yet",
                )),
                CibaStatus::Approved { auth_time } => {
                    record.status = CibaStatus::Consumed;
                    Ok((record.info.clone(), auth_time))
                }
            };
            *store
                .stats
                .ciba_polls
                .entry(auth_req_id.to_string())
                .or_default() += 1;
            outcome?
        };
        let grant = Grant {
            sub: info.login_hint.clone(),
            client_id: info.client_id.clone(),
            scope: Some(info.scope.clone()),
            resource: info.resource.clone(),
            grant_id: Some(uuid::Uuid::new_v4().to_string()),
            auth_time: Some(auth_time),
        };
        self.issue_tokens(
            &grant,
            grant.wants_refresh_token(),
            grant.wants_id_token(),
            jkt,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AutoApprove, DevIdpConfig};
    use crate::provider_key::ProviderKey;
    use tokio::time::advance;

    fn provider(config: DevIdpConfig) -> Arc<Provider> {
        let key = ProviderKey::generate().unwrap();
        Provider::new("http://127.0.0.1:1", config, key).unwrap()
    }

    fn request(id: &str) -> CibaRequestInfo {
        CibaRequestInfo {
            auth_req_id: id.into(),
            client_id: "client".into(),
            login_hint: "alice".into(),
            binding_message: None,
            scope: "openid".into(),
            resource: None,
            qr_session_id: None,
        }
    }

    fn error_of(p: &Provider, id: &str) -> &'static str {
        match p.poll_ciba("client", id, None) {
            Ok(_) => "tokens",
            Err(e) => e.error,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn poll_timing_follows_the_tokio_clock() {
        let p = provider(DevIdpConfig::default()); // interval 5 s, expiry 120 s
        p.create_ciba(request("r"), Duration::from_secs(120));
        assert_eq!(
            error_of(&p, "r"),
            code::SLOW_DOWN,
            "before the first interval"
        );
        advance(Duration::from_secs(5)).await;
        assert_eq!(
            error_of(&p, "r"),
            code::AUTHORIZATION_PENDING,
            "exactly one interval"
        );
        advance(Duration::from_millis(4999)).await;
        assert_eq!(error_of(&p, "r"), code::SLOW_DOWN, "1 ms too early");
        advance(Duration::from_secs(5)).await;
        assert_eq!(error_of(&p, "r"), code::AUTHORIZATION_PENDING);
        advance(Duration::from_secs(105)).await; // 119.999 s
        assert_eq!(error_of(&p, "r"), code::AUTHORIZATION_PENDING);
        advance(Duration::from_millis(1)).await; // 120 s
        assert_eq!(error_of(&p, "r"), code::EXPIRED_TOKEN);
        assert!(matches!(
            p.decide_ciba("r", UserDecision::Approve),
            Err(ControlError::CibaNotPending {
                state: "expired",
                ..
            })
        ));
        assert_eq!(p.lock().stats.ciba_polls["r"], 6);
    }

    #[tokio::test(start_paused = true)]
    async fn first_poll_one_interval_after_the_request_gets_the_tokens() {
        let p = provider(DevIdpConfig::default());
        p.create_ciba(request("r"), Duration::from_secs(120));
        p.decide_ciba("r", UserDecision::Approve).unwrap();
        advance(Duration::from_secs(5)).await;
        assert_eq!(error_of(&p, "r"), "tokens");
        assert_eq!(error_of(&p, "r"), code::INVALID_GRANT, "consumed");
    }

    #[tokio::test(start_paused = true)]
    async fn auto_approve_fires_after_its_delay() {
        let p = provider(DevIdpConfig {
            ciba_interval: Duration::ZERO,
            auto_approve: Some(AutoApprove::approve_after(Duration::from_secs(2))),
            ..DevIdpConfig::default()
        });
        p.create_ciba(request("r"), Duration::from_secs(120));
        tokio::time::sleep(Duration::from_millis(1999)).await;
        assert_eq!(error_of(&p, "r"), code::AUTHORIZATION_PENDING);
        tokio::time::sleep(Duration::from_millis(1)).await;
        tokio::task::yield_now().await;
        assert_eq!(error_of(&p, "r"), "tokens");
    }
}
