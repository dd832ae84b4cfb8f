//! QR login: the device shows a code, the person's phone scans it, and the
//! device continues with CIBA using the hint the scan gives (the original
//! `QRAuth` and `QRAuthSignals`).

use std::ffi::{c_char, c_int, c_void};
use std::sync::{Mutex, PoisonError};

use onesoidc_core::ExposeSecret;
use onesoidc_core::{CibaRequest, LoginHint, QrSession, SecretString};
use onesoidc_flows::render;
use zeroize::Zeroize;

use crate::boundary::{
    FfiError, ONESOIDC_INVALID_ARGUMENT, arg_str, call, free_handle, guard, handle, into_handle,
    out, owned_string,
};
use crate::client::{client_ref, onesoidc_client};
use crate::events::onesoidc_event_callback;
use crate::listener::{Callback, Listener};
use crate::login::onesoidc_login;
use crate::runtime::{block_on, in_runtime};
use crate::tokens::onesoidc_tokens;

/// Plain ASCII (`#` for dark modules, two characters per module), for
/// terminals and logs without Unicode.
pub const ONESOIDC_QR_ASCII: c_int = 1;
/// Compact Unicode half blocks (two modules per character), drawn for a
/// dark terminal background.
pub const ONESOIDC_QR_UNICODE: c_int = 2;
/// An SVG document, at least 256 x 256 pixels.
pub const ONESOIDC_QR_SVG: c_int = 3;

/// A QR login session (`onesoidc_qr_create`): its URL to show as a code,
/// and, once scanned, the hint that continues the login. Free with
/// `onesoidc_qr_session_free`.
pub struct onesoidc_qr_session {
    session: QrSession,
    /// The `login_hint_token` of the scan, once `onesoidc_qr_wait_for_scan`
    /// has seen it (a secret: it stays inside).
    hint: Mutex<Option<SecretString>>,
}

/// Creates a QR login session (the original `createQRSession`), with the
/// device's access token. On success `*session` is the session: show
/// `onesoidc_qr_session_url` as a code, then `onesoidc_qr_wait_for_scan`.
///
/// # Safety
///
/// `client` is a live client; `session` points to writable storage for a
/// pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_qr_create(
    client: *mut onesoidc_client,
    session: *mut *mut onesoidc_qr_session,
) -> c_int {
    call("onesoidc_qr_create", || {
        // SAFETY: the caller passes writable storage.
        let slot = unsafe { out(session, "session") }?;
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        let session = block_on(client.qr_create())??;
        *slot = into_handle(onesoidc_qr_session {
            session,
            hint: Mutex::new(None),
        });
        Ok(())
    })
}

/// Copies the URL the code must encode (the session's `cb_url`) into `*url`
/// (free with `onesoidc_string_free`).
///
/// # Safety
///
/// `session` is a live session; `url` points to writable storage for a
/// pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_qr_session_url(
    session: *const onesoidc_qr_session,
    url: *mut *mut c_char,
) -> c_int {
    call("onesoidc_qr_session_url", || {
        // SAFETY: the caller passes writable storage.
        let url = unsafe { out(url, "url") }?;
        // SAFETY: the caller passes a live session.
        let session = unsafe { handle(session, "session") }?;
        *url = owned_string(&session.session.cb_url);
        Ok(())
    })
}

/// Copies the session id into `*session_id` (free with
/// `onesoidc_string_free`).
///
/// # Safety
///
/// `session` is a live session; `session_id` points to writable storage
/// for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_qr_session_id(
    session: *const onesoidc_qr_session,
    session_id: *mut *mut c_char,
) -> c_int {
    call("onesoidc_qr_session_id", || {
        // SAFETY: the caller passes writable storage.
        let session_id = unsafe { out(session_id, "session_id") }?;
        // SAFETY: the caller passes a live session.
        let session = unsafe { handle(session, "session") }?;
        *session_id = owned_string(&session.session.session_id);
        Ok(())
    })
}

/// How long the code can be scanned, in seconds from its creation (0 for
/// NULL).
///
/// # Safety
///
/// `session` is NULL or a live session.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_qr_session_expires_in(
    session: *const onesoidc_qr_session,
) -> u64 {
    guard("onesoidc_qr_session_expires_in", 0, || {
        // SAFETY: the caller passes a live session or NULL.
        unsafe { session.as_ref() }.map_or(0, |s| s.session.expires_in.as_secs())
    })
}

/// Draws `text` (a session's URL) as a QR code (the original
/// `generateQRCode` / `generateASCIIQRCode`) in `format`: `ONESOIDC_QR_ASCII`,
/// `ONESOIDC_QR_UNICODE` or `ONESOIDC_QR_SVG`. On success `*out` is the
/// drawing (as text, every line ends with `\n`; free with
/// `onesoidc_string_free`).
///
/// # Safety
///
/// `text` is a NUL-terminated string; `out` points to writable storage for
/// a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_qr_render(
    text: *const c_char,
    format: c_int,
    out: *mut *mut c_char,
) -> c_int {
    call("onesoidc_qr_render", || {
        // SAFETY: the caller passes writable storage.
        let slot = unsafe { crate::boundary::out(out, "out") }?;
        // SAFETY: the caller passes a NUL-terminated string.
        let text = unsafe { arg_str(text, "text") }?;
        let drawn = match format {
            ONESOIDC_QR_ASCII => render::ascii(text),
            ONESOIDC_QR_UNICODE => render::terminal(text),
            ONESOIDC_QR_SVG => render::svg(text),
            other => {
                return Err(FfiError::argument(
                    "format",
                    &format!(
                        "is {other}, not ONESOIDC_QR_ASCII (1), ONESOIDC_QR_UNICODE (2) or ONESOIDC_QR_SVG (3)"
                    ),
                ));
            }
        }
        .map_err(onesoidc_core::Error::from)?;
        let drawn = if format == ONESOIDC_QR_SVG || drawn.ends_with('\n') {
            drawn
        } else {
            drawn + "\n"
        };
        *slot = owned_string(&drawn);
        Ok(())
    })
}

/// Checks the session every interval until the phone scans the code (the
/// original `verifyQRSession`, looped). Blocks up to the session's
/// lifetime. Returns `ONESOIDC_OK` once scanned (then continue with
/// `onesoidc_qr_ciba_login`), `ONESOIDC_EXPIRED` when nobody scanned in
/// time, `ONESOIDC_DENIED` when the person cancelled on the phone.
///
/// # Safety
///
/// `client` and `session` are live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_qr_wait_for_scan(
    client: *mut onesoidc_client,
    session: *mut onesoidc_qr_session,
) -> c_int {
    call("onesoidc_qr_wait_for_scan", || {
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller passes a live session.
        let session = unsafe { handle(session, "session") }?;
        let hint = block_on(client.qr_wait_for_scan(&session.session))??;
        *session.hint.lock().unwrap_or_else(PoisonError::into_inner) = Some(hint.into());
        Ok(())
    })
}

/// The hand-off to CIBA after the scan: asks the person who scanned to
/// approve on their phone, and waits (as `onesoidc_ciba_wait`).
/// `binding_message` and `resource` as for `onesoidc_ciba_login` (NULL or
/// `""` for none). On success `*tokens` holds their tokens (free with
/// `onesoidc_tokens_free`). Before a successful
/// `onesoidc_qr_wait_for_scan` this is `ONESOIDC_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `client` and `session` are live; the strings are NULL or
/// NUL-terminated; `tokens` points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_qr_ciba_login(
    client: *mut onesoidc_client,
    session: *mut onesoidc_qr_session,
    binding_message: *const c_char,
    resource: *const c_char,
    tokens: *mut *mut onesoidc_tokens,
) -> c_int {
    call("onesoidc_qr_ciba_login", || {
        // SAFETY: the caller passes writable storage.
        let tokens = unsafe { out(tokens, "tokens") }?;
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller passes a live session.
        let session = unsafe { handle(session, "session") }?;
        // SAFETY: the caller passes NULL or NUL-terminated strings.
        let request = unsafe { qr_options(binding_message, resource) }?;
        let hint = session
            .hint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|h| h.expose_secret().to_string())
            .ok_or_else(|| {
                FfiError::new(
                    ONESOIDC_INVALID_ARGUMENT,
                    "the session has not been scanned: call onesoidc_qr_wait_for_scan first",
                )
            })?;
        let mut request = request
            .login_hint(LoginHint::LoginHintToken(hint))
            .qr_session_id(session.session.session_id.clone());
        let login = block_on(client.ciba(&request));
        zeroize_hint(&mut request);
        *tokens = into_handle(onesoidc_tokens::from(login??));
        Ok(())
    })
}

/// Zeroes the copy of the scan's `login_hint_token` (a secret) a request
/// holds, like every other secret the boundary copies.
pub(crate) fn zeroize_hint(request: &mut CibaRequest) {
    if let Some(LoginHint::LoginHintToken(hint)) = request.hint.as_mut() {
        hint.zeroize();
    }
}

/// Frees a QR session (NULL is ignored).
///
/// # Safety
///
/// `session` is NULL or a live session, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_qr_session_free(session: *mut onesoidc_qr_session) {
    // SAFETY: the caller passes a live session or NULL, freed once.
    guard("onesoidc_qr_session_free", (), || unsafe {
        free_handle(session)
    });
}

/// The CIBA options of a QR login: no username (the scan names the person).
///
/// # Safety
///
/// Each pointer is NULL or a NUL-terminated string.
unsafe fn qr_options(
    binding_message: *const c_char,
    resource: *const c_char,
) -> Result<CibaRequest, FfiError> {
    // SAFETY: forwarded from the caller.
    unsafe { crate::ciba::with_options(CibaRequest::new(), binding_message, resource) }
}

/// Starts a whole QR login in the background and returns at once (the
/// original `QRAuthSignals`). Reported to `callback`:
/// `ONESOIDC_EVENT_QR_SESSION_CREATED` (draw `onesoidc_event_url`),
/// `ONESOIDC_EVENT_QR_WAITING_FOR_SCAN` before each check,
/// `ONESOIDC_EVENT_QR_SCANNED`, `ONESOIDC_EVENT_STARTED`,
/// `ONESOIDC_EVENT_WAITING_FOR_AUTHORIZATION`, then exactly one of
/// `ONESOIDC_EVENT_AUTHENTICATED` or `ONESOIDC_EVENT_FAILED`, whatever stage
/// failed. Threads, waiting, cancelling and freeing as for
/// `onesoidc_ciba_login_start`.
///
/// # Safety
///
/// As `onesoidc_ciba_login_start`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_qr_login_start(
    client: *mut onesoidc_client,
    binding_message: *const c_char,
    resource: *const c_char,
    callback: onesoidc_event_callback,
    user_data: *mut c_void,
    login: *mut *mut onesoidc_login,
) -> c_int {
    call("onesoidc_qr_login_start", || {
        // SAFETY: the caller passes writable storage.
        let login = unsafe { out(login, "login") }?;
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller passes NULL or NUL-terminated strings.
        let options = unsafe { qr_options(binding_message, resource) }?;
        let events = in_runtime(|| client.qr_events(options))?;
        let listener = Listener::spawn(events, Callback::new(callback, user_data))?;
        *login = into_handle(onesoidc_login { listener });
        Ok(())
    })
}
