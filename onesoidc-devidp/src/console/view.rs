//! What the console and the phone page show: a snapshot of the provider's
//! state, taken under one lock, every value already in display form.
//!
//! Nothing secret goes in: no access, refresh or ID token, no assertion, no
//! key, no `login_hint_token`; only their kinds and lifetimes. The templates
//! escape every value.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::activity::{TokenEvent, TokenOutcome};
use crate::ciba::{CIBA_GRANT_TYPE, CibaRecord, CibaStatus};
use crate::config::{Application, UserDecision};
use crate::qr::QrStatus;
use crate::registration::RegistrationStatus;
use crate::state::{Provider, Store, unix_now_ms};

/// Shown for a value that is absent.
const NONE: &str = "—";

/// When something pending expires: for the countdown in the page.
///
/// Only the moment is rendered, never the seconds left, so a section's
/// HTML changes only when its content does (the page counts down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expiry {
    /// Unix milliseconds.
    pub at_ms: u64,
}

/// Maps tokio's clock to the wall clock, fixed once so that a moment always
/// maps to the same milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallClock {
    instant: Instant,
    unix_ms: u64,
}

impl WallClock {
    /// The mapping as of now.
    pub fn now() -> Self {
        WallClock {
            instant: Instant::now(),
            unix_ms: unix_now_ms(),
        }
    }

    fn expiry(&self, at: Instant) -> Expiry {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let at_ms = if at >= self.instant {
            self.unix_ms.saturating_add(ms(at - self.instant))
        } else {
            self.unix_ms.saturating_sub(ms(self.instant - at))
        };
        Expiry { at_ms }
    }
}

/// A device as people know it: its title when it registered with one,
/// otherwise its client id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceLabel {
    /// The title sent at registration.
    pub title: Option<String>,
    /// The OAuth client id.
    pub client_id: String,
}

impl DeviceLabel {
    /// The title, or the client id.
    pub fn name(&self) -> &str {
        self.title.as_deref().unwrap_or(&self.client_id)
    }
}

/// A registration waiting for the administrator.
#[derive(Debug, Clone)]
pub(crate) struct RegistrationRow {
    pub code: String,
    pub title: String,
    pub location: String,
    pub role: String,
    pub domain: String,
    pub key_kind: String,
    pub expires: Expiry,
}

/// A CIBA login waiting for the person.
#[derive(Debug, Clone)]
pub(crate) struct CibaRow {
    pub auth_req_id: String,
    pub user: String,
    pub binding_message: Option<String>,
    pub device: DeviceLabel,
    pub scope: String,
    pub resource: Option<String>,
    /// It continues a QR login.
    pub via_qr: bool,
    pub expires: Expiry,
}

/// An open QR session.
#[derive(Debug, Clone)]
pub(crate) struct QrRow {
    pub session_id: String,
    pub device: DeviceLabel,
    /// What the code encodes; opening it in a browser shows the phone page.
    pub cb_url: String,
    pub expires: Expiry,
}

/// A registered device.
#[derive(Debug, Clone)]
pub(crate) struct DeviceRow {
    pub title: String,
    pub location: String,
    pub role: String,
    pub key_kind: String,
    pub device_id: String,
    pub client_id: String,
    /// How it got registered: `registration`, `config file` or `control`.
    pub origin: &'static str,
}

/// One line of the token endpoint's log.
#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    /// `HH:MM:SS` UTC (the page shows local time).
    pub time_utc: String,
    pub at_ms: u64,
    /// `client_credentials`, `ciba`, `refresh_token`, or what was sent.
    pub grant: String,
    /// The device's name, or the client id sent, or `—`.
    pub client: String,
    pub ok: bool,
    /// `access token (300 s) + refresh token + ID token`, or the error code.
    pub result: String,
    /// The error description, or empty.
    pub detail: String,
    pub repeats: u32,
}

/// Everything on the console page.
#[derive(Debug, Clone)]
pub(crate) struct ConsoleView {
    pub issuer: String,
    pub registrations: Vec<RegistrationRow>,
    pub ciba: Vec<CibaRow>,
    pub qr: Vec<QrRow>,
    pub users: Vec<String>,
    pub applications: Vec<Application>,
    pub devices: Vec<DeviceRow>,
    pub events: Vec<EventRow>,
    /// `(name, value)` of the lifetimes and intervals in force.
    pub settings: Vec<(&'static str, String)>,
}

/// Where the person on the phone is in a QR login.
#[derive(Debug, Clone)]
pub(crate) enum PhoneStep {
    /// No such session.
    Unknown,
    /// The code was just scanned: pick who you are and confirm.
    Pick { expires: Expiry },
    /// Confirmed as `user`; the device has not asked for approval yet.
    Waiting { user: String },
    /// The device asks `user` to approve.
    Approve { user: String, request: CibaRow },
    /// Approved (or the device already collected the tokens).
    Approved { user: String },
    /// `user` denied the login.
    Denied { user: String },
    /// The session or its login expired.
    Expired,
    /// Cancelled on the phone or by the device.
    Cancelled,
}

/// Everything on the phone page.
#[derive(Debug, Clone)]
pub(crate) struct PhoneView {
    pub session_id: String,
    /// The device that shows the code (`None` for an unknown session).
    pub device: Option<DeviceLabel>,
    pub users: Vec<String>,
    pub step: PhoneStep,
}

/// `HH:MM:SS` of a Unix time in milliseconds, UTC.
fn time_of_day_utc(at_ms: u64) -> String {
    let secs = (at_ms / 1000) % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// A string detail of a registration request (`title`, `role`, ...).
fn detail(details: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    match details.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn or_none(value: Option<String>) -> String {
    value.unwrap_or_else(|| NONE.to_string())
}

/// Whole seconds or milliseconds, as the CLI flags take them.
fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// What registrations told about the devices they registered, by client id.
struct Registered<'a> {
    details: HashMap<&'a str, &'a serde_json::Map<String, Value>>,
}

impl<'a> Registered<'a> {
    fn of(store: &'a Store) -> Self {
        let details = store
            .registrations
            .values()
            .filter_map(|r| match &r.status {
                RegistrationStatus::Approved(ids) => Some((ids.client_id.as_str(), &r.details)),
                _ => None,
            })
            .collect();
        Registered { details }
    }

    fn get(&self, client_id: &str, key: &str) -> Option<String> {
        self.details.get(client_id).and_then(|d| detail(d, key))
    }

    fn label(&self, client_id: &str) -> DeviceLabel {
        DeviceLabel {
            title: self.get(client_id, "title"),
            client_id: client_id.to_string(),
        }
    }
}

fn ciba_row(record: &CibaRecord, registered: &Registered<'_>, wall: &WallClock) -> CibaRow {
    let info = &record.info;
    CibaRow {
        auth_req_id: info.auth_req_id.clone(),
        user: info.login_hint.clone(),
        binding_message: info.binding_message.clone(),
        device: registered.label(&info.client_id),
        scope: info.scope.clone(),
        resource: info.resource.clone(),
        via_qr: info.qr_session_id.is_some(),
        expires: wall.expiry(record.expires_at),
    }
}

fn event_row(event: &TokenEvent, registered: &Registered<'_>) -> EventRow {
    let grant = match event.grant_type.as_deref() {
        Some(CIBA_GRANT_TYPE) => "ciba".to_string(),
        Some(other) => other.to_string(),
        None => NONE.to_string(),
    };
    let client = match &event.client_id {
        Some(id) => registered.label(id).name().to_string(),
        None => NONE.to_string(),
    };
    let (ok, result, detail) = match &event.outcome {
        TokenOutcome::Issued {
            expires_in,
            refresh_token,
            id_token,
            dpop_jkt,
        } => {
            let mut result = match dpop_jkt {
                Some(jkt) => format!("DPoP-bound access token ({expires_in} s, jkt {jkt})"),
                None => format!("access token ({expires_in} s)"),
            };
            if *refresh_token {
                result.push_str(" + refresh token");
            }
            if *id_token {
                result.push_str(" + ID token");
            }
            (true, result, String::new())
        }
        TokenOutcome::Refused { error, description } => {
            (false, (*error).to_string(), description.clone())
        }
    };
    EventRow {
        time_utc: time_of_day_utc(event.at_ms),
        at_ms: event.at_ms,
        grant,
        client,
        ok,
        result,
        detail,
        repeats: event.repeats,
    }
}

impl Provider {
    /// The console's snapshot.
    pub(crate) fn console_view(&self) -> ConsoleView {
        let now = Instant::now();
        let wall = &self.wall_clock;
        let config = &self.config;
        let store = self.lock();
        let registered = Registered::of(&store);

        let mut registrations: Vec<_> = store
            .registrations
            .iter()
            .filter(|(_, r)| matches!(r.status, RegistrationStatus::Pending) && now < r.expires_at)
            .map(|(code, r)| RegistrationRow {
                code: code.clone(),
                title: or_none(detail(&r.details, "title")),
                location: or_none(detail(&r.details, "location")),
                role: or_none(detail(&r.details, "role")),
                domain: or_none(detail(&r.details, "domain")),
                key_kind: r.key_kind.clone(),
                expires: wall.expiry(r.expires_at),
            })
            .collect();
        registrations.sort_by(|a, b| (a.expires.at_ms, &a.code).cmp(&(b.expires.at_ms, &b.code)));

        let mut ciba: Vec<_> = store
            .ciba
            .values()
            .filter(|r| r.status == CibaStatus::Pending && now < r.expires_at)
            .map(|r| ciba_row(r, &registered, wall))
            .collect();
        ciba.sort_by(|a, b| {
            (a.expires.at_ms, &a.auth_req_id).cmp(&(b.expires.at_ms, &b.auth_req_id))
        });

        let mut qr: Vec<_> = store
            .qr
            .iter()
            .filter(|(_, r)| r.status == QrStatus::Pending && now < r.expires_at)
            .map(|(id, r)| QrRow {
                session_id: id.clone(),
                device: registered.label(&r.client_id),
                cb_url: self.cb_url(id),
                expires: wall.expiry(r.expires_at),
            })
            .collect();
        qr.sort_by(|a, b| (a.expires.at_ms, &a.session_id).cmp(&(b.expires.at_ms, &b.session_id)));

        let mut devices: Vec<_> = store
            .devices
            .values()
            .map(|d| {
                let from_config = config.devices.iter().any(|s| s.client_id == d.client_id);
                let origin = if registered.details.contains_key(d.client_id.as_str()) {
                    "registration"
                } else if from_config {
                    "config file"
                } else {
                    "control"
                };
                DeviceRow {
                    title: or_none(registered.get(&d.client_id, "title")),
                    location: or_none(registered.get(&d.client_id, "location")),
                    role: or_none(registered.get(&d.client_id, "role")),
                    key_kind: d.key.kind().to_string(),
                    device_id: d.device_id.clone(),
                    client_id: d.client_id.clone(),
                    origin,
                }
            })
            .collect();
        devices.sort_by(|a, b| (&a.title, &a.client_id).cmp(&(&b.title, &b.client_id)));

        let events = store
            .token_log
            .iter()
            .map(|e| event_row(e, &registered))
            .collect();

        let auto_approve = match store.auto_approve {
            None => "off".to_string(),
            Some(policy) => {
                let verb = match policy.user_decision {
                    UserDecision::Approve => "approve",
                    UserDecision::Deny => "deny",
                };
                format!("{verb} after {}", human(policy.after))
            }
        };
        let settings = vec![
            ("access token lifetime", human(config.access_token_ttl)),
            ("refresh token lifetime", human(config.refresh_token_ttl)),
            ("ID token lifetime", human(config.id_token_ttl)),
            ("CIBA request lifetime", human(config.ciba_expires_in)),
            ("CIBA poll interval", human(config.ciba_interval)),
            ("QR session lifetime", human(config.qr_expires_in)),
            ("QR poll interval", human(config.qr_interval)),
            (
                "registration lifetime",
                human(config.registration_expires_in),
            ),
            (
                "registration poll interval",
                human(config.registration_poll_interval),
            ),
            ("auto-approve", auto_approve),
        ];

        ConsoleView {
            issuer: self.issuer.clone(),
            registrations,
            ciba,
            qr,
            users: config.users.clone(),
            applications: config.applications.clone(),
            devices,
            events,
            settings,
        }
    }

    /// The phone page's snapshot of QR session `session_id`.
    pub(crate) fn phone_view(&self, session_id: &str) -> PhoneView {
        let now = Instant::now();
        let wall = &self.wall_clock;
        let store = self.lock();
        let registered = Registered::of(&store);
        let mut view = PhoneView {
            session_id: session_id.to_string(),
            device: None,
            users: self.config.users.clone(),
            step: PhoneStep::Unknown,
        };
        let Some(session) = store.qr.get(session_id) else {
            return view;
        };
        view.device = Some(registered.label(&session.client_id));
        view.step = match &session.status {
            QrStatus::Cancelled => PhoneStep::Cancelled,
            QrStatus::Pending if now >= session.expires_at => PhoneStep::Expired,
            QrStatus::Pending => PhoneStep::Pick {
                expires: wall.expiry(session.expires_at),
            },
            QrStatus::Scanned { login_hint_token } => {
                let user = store
                    .login_hint_tokens
                    .get(login_hint_token)
                    .map(|h| h.username.clone())
                    .unwrap_or_default();
                // The login that continues this session (the newest, should
                // the device have started more than one).
                let login = store
                    .ciba
                    .values()
                    .filter(|r| r.info.qr_session_id.as_deref() == Some(session_id))
                    .max_by_key(|r| r.expires_at);
                match login {
                    None => PhoneStep::Waiting { user },
                    Some(r) => match r.status {
                        CibaStatus::Approved { .. } | CibaStatus::Consumed => {
                            PhoneStep::Approved { user }
                        }
                        CibaStatus::Denied => PhoneStep::Denied { user },
                        CibaStatus::Pending if now >= r.expires_at => PhoneStep::Expired,
                        CibaStatus::Pending => PhoneStep::Approve {
                            user,
                            request: ciba_row(r, &registered, wall),
                        },
                    },
                }
            }
        };
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_and_durations_read_plainly() {
        assert_eq!(time_of_day_utc(86_400_000 + 3_723_000), "01:02:03");
        assert_eq!(human(Duration::from_secs(15)), "15 s");
        assert_eq!(human(Duration::from_millis(1500)), "1500 ms");
    }

    #[test]
    fn details_are_strings_numbers_or_absent() {
        let details: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"title": "Kiosk", "memory": 8, "blank": " ", "list": [1]}"#)
                .unwrap();
        assert_eq!(detail(&details, "title").as_deref(), Some("Kiosk"));
        assert_eq!(detail(&details, "memory").as_deref(), Some("8"));
        assert_eq!(detail(&details, "blank"), None);
        assert_eq!(detail(&details, "list"), None);
        assert_eq!(detail(&details, "missing"), None);
    }
}
