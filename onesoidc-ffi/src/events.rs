//! Events handed to C callbacks: what a started CIBA or QR login, or a
//! token manager, reports (the original `CibaAuthSignals`,
//! `QRAuthSignals`, `TokenManager::tokensRefreshed`).

use std::ffi::{CString, c_char, c_int, c_void};
use std::time::{Duration, SystemTime};

use ::onesoidc_tokens::TokenEvent;
use onesoidc_core::Expiry;
use onesoidc_flows::{CibaEvent, Login, QrEvent};

use crate::boundary::{
    ONESOIDC_INVALID_ARGUMENT, ONESOIDC_LOGIN_REQUIRED, ONESOIDC_OK, c_text, call, guard, handle,
    into_handle, out, status_of,
};
use crate::tokens::onesoidc_tokens;

/// An event this version of the header does not name (newer libraries may
/// add kinds): show its message.
pub const ONESOIDC_EVENT_OTHER: c_int = 0;
/// CIBA: the provider accepted the request; the person's phone is being
/// asked. `onesoidc_event_id` is the `auth_req_id`, `onesoidc_event_seconds`
/// how long the person has to answer. (In a QR login: after the scan.)
pub const ONESOIDC_EVENT_STARTED: c_int = 1;
/// Still waiting for the person to approve; `onesoidc_event_seconds` is the
/// time left.
pub const ONESOIDC_EVENT_WAITING_FOR_AUTHORIZATION: c_int = 2;
/// The person approved; `onesoidc_event_tokens` copies their tokens (the ID
/// token already validated). Always the last event of a login.
pub const ONESOIDC_EVENT_AUTHENTICATED: c_int = 3;
/// The login failed; `onesoidc_event_status` says how (`ONESOIDC_DENIED`,
/// `ONESOIDC_EXPIRED`, `ONESOIDC_NETWORK`, `ONESOIDC_ERROR`) and the message
/// why. Always the last event of a login.
pub const ONESOIDC_EVENT_FAILED: c_int = 4;
/// QR: the session exists; show `onesoidc_event_url` as a QR code
/// (`onesoidc_qr_render`). `onesoidc_event_id` is the session id,
/// `onesoidc_event_seconds` how long it can be scanned.
pub const ONESOIDC_EVENT_QR_SESSION_CREATED: c_int = 5;
/// QR: waiting for the phone to scan the code; `onesoidc_event_seconds` is
/// the time left.
pub const ONESOIDC_EVENT_QR_WAITING_FOR_SCAN: c_int = 6;
/// QR: the phone scanned the code; the CIBA part starts.
pub const ONESOIDC_EVENT_QR_SCANNED: c_int = 7;
/// A token manager refreshed its tokens (the original `tokensRefreshed`);
/// `onesoidc_event_seconds` is the new token's lifetime left.
pub const ONESOIDC_EVENT_TOKEN_REFRESHED: c_int = 8;
/// Tokens were stored in the manager (`onesoidc_manager_store`).
pub const ONESOIDC_EVENT_TOKEN_STORED: c_int = 9;
/// A manager's refresh failed; `onesoidc_event_status` is
/// `ONESOIDC_LOGIN_REQUIRED` when the person has to log in again, else why
/// it will be retried (`ONESOIDC_NETWORK`, `ONESOIDC_ERROR`).
pub const ONESOIDC_EVENT_TOKEN_REFRESH_FAILED: c_int = 10;
/// A manager's token expired without being replaced.
pub const ONESOIDC_EVENT_TOKEN_EXPIRED: c_int = 11;
/// A manager's tokens were dropped (`onesoidc_manager_clear`).
pub const ONESOIDC_EVENT_TOKEN_CLEARED: c_int = 12;

/// Called for each event of a started login or a manager subscription.
///
/// `user_data` is the pointer given when starting; `event` is valid only
/// until the callback returns (copy what you keep: `onesoidc_event_tokens`
/// makes an object of your own). Callbacks of one login or subscription
/// run one at a time, in order, on a thread the library started for it
/// (not the caller's thread, not a runtime thread). A callback may call any
/// onesoidc function, including blocking ones and its own login's
/// `_cancel` and `_free`; only `onesoidc_login_wait` on its own login is
/// refused (it would wait for itself). It must not unwind (no C++ exception
/// may leave it) and should return promptly: the next event waits for it.
/// Cancelling or freeing another login from a callback waits for that
/// login's running callback, so two callbacks must not cancel each other's
/// logins at the same time.
pub type onesoidc_event_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const onesoidc_event)>;

/// One event, lent to a callback (see `onesoidc_event_callback`).
pub struct onesoidc_event {
    kind: c_int,
    message: CString,
    status: c_int,
    seconds: u64,
    id: Option<CString>,
    url: Option<CString>,
    login: Option<Login>,
    /// The last event of its login.
    pub(crate) last: bool,
}

impl onesoidc_event {
    fn new(kind: c_int, message: &str) -> Self {
        onesoidc_event {
            kind,
            message: c_text(message),
            status: ONESOIDC_OK,
            seconds: 0,
            id: None,
            url: None,
            login: None,
            last: false,
        }
    }

    fn seconds(mut self, duration: Duration) -> Self {
        self.seconds = duration.as_secs();
        self
    }

    fn id(mut self, id: &str) -> Self {
        self.id = Some(c_text(id));
        self
    }

    fn authenticated(message: &str, login: Login) -> Self {
        let mut event = onesoidc_event::new(ONESOIDC_EVENT_AUTHENTICATED, message);
        event.login = Some(login);
        event.last = true;
        event
    }

    fn failed(message: &str, status: c_int) -> Self {
        let mut event = onesoidc_event::new(ONESOIDC_EVENT_FAILED, message);
        event.status = status;
        event.last = true;
        event
    }

    /// The login's status once this (last) event is delivered.
    pub(crate) fn status(&self) -> c_int {
        self.status
    }
}

/// Seconds until `expires_at` (0 when unknown or past).
fn remaining(expires_at: Expiry) -> Duration {
    expires_at
        .remaining(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

impl From<CibaEvent> for onesoidc_event {
    fn from(event: CibaEvent) -> Self {
        let message = event.to_string();
        match event {
            CibaEvent::Started {
                auth_req_id,
                expires_in,
                ..
            } => onesoidc_event::new(ONESOIDC_EVENT_STARTED, &message)
                .id(&auth_req_id)
                .seconds(expires_in),
            CibaEvent::WaitingForAuthorization { remaining, .. } => {
                onesoidc_event::new(ONESOIDC_EVENT_WAITING_FOR_AUTHORIZATION, &message)
                    .seconds(remaining)
            }
            CibaEvent::Authenticated(login) => onesoidc_event::authenticated(&message, login),
            CibaEvent::Failed(error) => onesoidc_event::failed(&message, status_of(&error)),
            _ => onesoidc_event::new(ONESOIDC_EVENT_OTHER, &message),
        }
    }
}

impl From<QrEvent> for onesoidc_event {
    fn from(event: QrEvent) -> Self {
        let message = event.to_string();
        match event {
            QrEvent::SessionCreated(session) => {
                let mut event = onesoidc_event::new(ONESOIDC_EVENT_QR_SESSION_CREATED, &message)
                    .id(&session.session_id)
                    .seconds(session.expires_in);
                event.url = Some(c_text(&session.cb_url));
                event
            }
            QrEvent::WaitingForScan { remaining } => {
                onesoidc_event::new(ONESOIDC_EVENT_QR_WAITING_FOR_SCAN, &message).seconds(remaining)
            }
            QrEvent::Scanned => onesoidc_event::new(ONESOIDC_EVENT_QR_SCANNED, &message),
            QrEvent::AuthorizationRequested {
                auth_req_id,
                expires_in,
            } => onesoidc_event::new(ONESOIDC_EVENT_STARTED, &message)
                .id(&auth_req_id)
                .seconds(expires_in),
            QrEvent::WaitingForAuthorization { remaining, .. } => {
                onesoidc_event::new(ONESOIDC_EVENT_WAITING_FOR_AUTHORIZATION, &message)
                    .seconds(remaining)
            }
            QrEvent::Authenticated(login) => onesoidc_event::authenticated(&message, login),
            QrEvent::Failed(error) => onesoidc_event::failed(&message, status_of(&error)),
            _ => onesoidc_event::new(ONESOIDC_EVENT_OTHER, &message),
        }
    }
}

impl From<TokenEvent> for onesoidc_event {
    fn from(event: TokenEvent) -> Self {
        let message = event.to_string();
        match event {
            TokenEvent::Refreshed { expires_at } => {
                onesoidc_event::new(ONESOIDC_EVENT_TOKEN_REFRESHED, &message)
                    .seconds(remaining(expires_at))
            }
            TokenEvent::Stored { expires_at } => {
                onesoidc_event::new(ONESOIDC_EVENT_TOKEN_STORED, &message)
                    .seconds(remaining(expires_at))
            }
            TokenEvent::RefreshFailed {
                error,
                reauth_required,
            } => {
                let mut event = onesoidc_event::new(ONESOIDC_EVENT_TOKEN_REFRESH_FAILED, &message);
                event.status = if reauth_required {
                    ONESOIDC_LOGIN_REQUIRED
                } else {
                    status_of(&error)
                };
                event
            }
            TokenEvent::Expired => onesoidc_event::new(ONESOIDC_EVENT_TOKEN_EXPIRED, &message),
            TokenEvent::Cleared => onesoidc_event::new(ONESOIDC_EVENT_TOKEN_CLEARED, &message),
            _ => onesoidc_event::new(ONESOIDC_EVENT_OTHER, &message),
        }
    }
}

/// The event's kind: one of the `ONESOIDC_EVENT_*` values (-1 for NULL).
///
/// # Safety
///
/// `event` is NULL or the event lent to the running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_event_kind(event: *const onesoidc_event) -> c_int {
    guard("onesoidc_event_kind", -1, || {
        // SAFETY: the caller passes the lent event or NULL.
        unsafe { event.as_ref() }.map_or(-1, |e| e.kind)
    })
}

/// A line of UTF-8 text for a log or a UI ("asked the person to approve (120 s
/// to answer)", "failed: ..."), never a token. Borrowed: valid until the
/// callback returns. "" for NULL.
///
/// # Safety
///
/// `event` is NULL or the event lent to the running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_event_message(event: *const onesoidc_event) -> *const c_char {
    guard("onesoidc_event_message", c"".as_ptr(), || {
        // SAFETY: the caller passes the lent event or NULL.
        match unsafe { event.as_ref() } {
            Some(e) => e.message.as_ptr(),
            None => c"".as_ptr(),
        }
    })
}

/// `ONESOIDC_OK`, or for `ONESOIDC_EVENT_FAILED` and
/// `ONESOIDC_EVENT_TOKEN_REFRESH_FAILED` the status code of the failure.
/// `ONESOIDC_INVALID_ARGUMENT` for NULL.
///
/// # Safety
///
/// `event` is NULL or the event lent to the running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_event_status(event: *const onesoidc_event) -> c_int {
    guard("onesoidc_event_status", ONESOIDC_INVALID_ARGUMENT, || {
        // SAFETY: the caller passes the lent event or NULL.
        unsafe { event.as_ref() }.map_or(ONESOIDC_INVALID_ARGUMENT, |e| e.status)
    })
}

/// Seconds, by kind: how long the person has to answer (`STARTED`), the
/// time left (`WAITING_FOR_AUTHORIZATION`, `QR_WAITING_FOR_SCAN`), how long
/// the code can be scanned (`QR_SESSION_CREATED`), the token's lifetime
/// left (`TOKEN_REFRESHED`, `TOKEN_STORED`); 0 otherwise.
///
/// # Safety
///
/// `event` is NULL or the event lent to the running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_event_seconds(event: *const onesoidc_event) -> u64 {
    guard("onesoidc_event_seconds", 0, || {
        // SAFETY: the caller passes the lent event or NULL.
        unsafe { event.as_ref() }.map_or(0, |e| e.seconds)
    })
}

/// The `auth_req_id` (`STARTED`) or QR session id (`QR_SESSION_CREATED`);
/// NULL for other kinds. Borrowed: valid until the callback returns.
///
/// # Safety
///
/// `event` is NULL or the event lent to the running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_event_id(event: *const onesoidc_event) -> *const c_char {
    guard("onesoidc_event_id", std::ptr::null(), || {
        // SAFETY: the caller passes the lent event or NULL.
        unsafe { event.as_ref() }
            .and_then(|e| e.id.as_ref())
            .map_or(std::ptr::null(), |id| id.as_ptr())
    })
}

/// The URL the QR code encodes (`QR_SESSION_CREATED`; draw it with
/// `onesoidc_qr_render`); NULL for other kinds. Borrowed: valid until the
/// callback returns.
///
/// # Safety
///
/// `event` is NULL or the event lent to the running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_event_url(event: *const onesoidc_event) -> *const c_char {
    guard("onesoidc_event_url", std::ptr::null(), || {
        // SAFETY: the caller passes the lent event or NULL.
        unsafe { event.as_ref() }
            .and_then(|e| e.url.as_ref())
            .map_or(std::ptr::null(), |url| url.as_ptr())
    })
}

/// For `ONESOIDC_EVENT_AUTHENTICATED`: copies the person's tokens into
/// `*tokens`, an object of the caller's (free with `onesoidc_tokens_free`;
/// store it in a manager with `onesoidc_manager_store`). Other kinds are
/// `ONESOIDC_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `event` is the event lent to the running callback; `tokens` points to
/// writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_event_tokens(
    event: *const onesoidc_event,
    tokens: *mut *mut onesoidc_tokens,
) -> c_int {
    call("onesoidc_event_tokens", || {
        // SAFETY: the caller passes writable storage.
        let tokens = unsafe { out(tokens, "tokens") }?;
        // SAFETY: the caller passes the lent event.
        let event = unsafe { handle(event, "event") }?;
        let login = event.login.clone().ok_or_else(|| {
            crate::boundary::FfiError::argument(
                "event",
                "is not ONESOIDC_EVENT_AUTHENTICATED: only that event carries tokens",
            )
        })?;
        *tokens = into_handle(onesoidc_tokens::from(login));
        Ok(())
    })
}
