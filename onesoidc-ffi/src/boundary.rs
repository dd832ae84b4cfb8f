//! The boundary between C and Rust: status codes, the calling thread's last
//! error, the panic guard around every call, and the checked conversions of
//! C arguments (pointers, strings) and results (owned strings).
//!
//! Every `extern "C"` function of this crate runs its body through
//! [`call`]: a panic is caught there and becomes [`ONESOIDC_PANIC`], an
//! error becomes its status code and the thread's last error message.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};

use onesoidc_core::Error;
use onesoidc_tokens::TokenError;
use zeroize::Zeroize;

/// The call succeeded.
pub const ONESOIDC_OK: c_int = 0;
/// The call failed; `onesoidc_last_error()` says why (a bad `device.yml`
/// names the file and field, a refusal the endpoint, HTTP status and OAuth
/// error). The CLI's exit code 1.
pub const ONESOIDC_ERROR: c_int = 1;
/// A usage error: a NULL or non-UTF-8 argument (the message names it), an
/// unknown field or format, or a call that would wait on itself (e.g.
/// `onesoidc_login_wait` from that login's own callback). The CLI's exit
/// code 2 for bad arguments.
pub const ONESOIDC_INVALID_ARGUMENT: c_int = 2;
/// The person denied the login on their phone, or cancelled it there (a QR
/// session). The CLI's exit code 3.
pub const ONESOIDC_DENIED: c_int = 3;
/// Nobody answered in time: the CIBA request or QR session expired. The
/// CLI's exit code 4.
pub const ONESOIDC_EXPIRED: c_int = 4;
/// The provider could not be reached or is having trouble (no connection,
/// a timeout, HTTP 429 or 5xx): trying again later may work. The CLI exits
/// 1 for these; C gets its own code so a UI can say "check the network"
/// (the original library's `networkError`). (5 is not used: the CLI's 5,
/// an introspected token that is not usable, is `*active == false` here.)
pub const ONESOIDC_NETWORK: c_int = 6;
/// The person has to log in again (CIBA or QR) and the new tokens be
/// stored: the refresh token was rejected or there is none.
pub const ONESOIDC_LOGIN_REQUIRED: c_int = 7;
/// Not finished yet: the person has not answered a CIBA request
/// (`onesoidc_ciba_check`), or a started login is still running when
/// `onesoidc_login_wait`'s time is up.
pub const ONESOIDC_PENDING: c_int = 8;
/// onesoidc panicked (a bug in onesoidc; please report it with the
/// message). The panic was caught: the process and other calls go on.
pub const ONESOIDC_PANIC: c_int = 9;
/// The device's identity files are the problem: `device.yml` is missing,
/// unreadable or lacks a field (the message names the file and the
/// fields), the device is not registered, or its key cannot be loaded.
/// Retrying does not help; fixing the files (or `onesoidc register`) does.
/// (The CLI exits 1 for these.)
pub const ONESOIDC_CONFIG: c_int = 10;
/// The login was cancelled by the program (`onesoidc_login_cancel` or
/// `onesoidc_login_free`). The CLI's exit code 130 (Ctrl-C).
pub const ONESOIDC_CANCELLED: c_int = 130;

/// Why a call failed: the status code and the message for
/// `onesoidc_last_error`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct FfiError {
    pub(crate) status: c_int,
    pub(crate) message: String,
}

impl FfiError {
    pub(crate) fn new(status: c_int, message: impl Into<String>) -> Self {
        FfiError {
            status,
            message: message.into(),
        }
    }

    /// A usage error naming the argument.
    pub(crate) fn argument(name: &str, why: &str) -> Self {
        FfiError::new(ONESOIDC_INVALID_ARGUMENT, format!("`{name}` {why}"))
    }
}

/// The status code of a flow's error, in the CLI's order: denied (3),
/// expired (4), then login required (7), network (6), the identity files
/// (10), else 1.
pub(crate) fn status_of(error: &Error) -> c_int {
    if error.is_config() {
        ONESOIDC_CONFIG
    } else if error.is_denied() {
        ONESOIDC_DENIED
    } else if error.is_expired() {
        ONESOIDC_EXPIRED
    } else if error.requires_login() {
        ONESOIDC_LOGIN_REQUIRED
    } else if error.is_network() {
        ONESOIDC_NETWORK
    } else {
        ONESOIDC_ERROR
    }
}

impl From<Error> for FfiError {
    fn from(error: Error) -> Self {
        FfiError::new(status_of(&error), error.to_string())
    }
}

impl From<&Error> for FfiError {
    fn from(error: &Error) -> Self {
        FfiError::new(status_of(error), error.to_string())
    }
}

impl From<TokenError> for FfiError {
    fn from(error: TokenError) -> Self {
        FfiError::from(Error::from(error))
    }
}

thread_local! {
    /// This thread's last error message (empty before the first failure).
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `message` as this thread's last error.
pub(crate) fn set_last_error(message: &str) {
    let text = c_text(message);
    LAST_ERROR.with(|slot| *slot.borrow_mut() = text);
}

/// This thread's last error, as a pointer valid until this thread's next
/// failing call (or its end).
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|slot| slot.borrow().as_ptr())
}

/// Runs the body of the C function `function`: catches a panic
/// ([`ONESOIDC_PANIC`]), turns an error into its status and this thread's
/// last error (prefixed with the function's name), and success into
/// [`ONESOIDC_OK`].
pub(crate) fn call(function: &str, body: impl FnOnce() -> Result<(), FfiError>) -> c_int {
    match call_value(function, || body().map(|()| ONESOIDC_OK)) {
        Ok(status) | Err(status) => status,
    }
}

/// Like [`call`] for a body that chooses its own non-error status (e.g.
/// [`ONESOIDC_PENDING`]): `Ok(status)` is returned as it is, without
/// touching the last error.
pub(crate) fn call_status(function: &str, body: impl FnOnce() -> Result<c_int, FfiError>) -> c_int {
    match call_value(function, body) {
        Ok(status) | Err(status) => status,
    }
}

/// Runs `body` behind the panic guard; an error (or panic) is recorded as
/// the last error and returned as its status.
pub(crate) fn call_value<T>(
    function: &str,
    body: impl FnOnce() -> Result<T, FfiError>,
) -> Result<T, c_int> {
    // AssertUnwindSafe: after a panic nothing of the body's state is used
    // again; shared state behind the handles is poison-tolerant.
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        Err(FfiError::new(
            ONESOIDC_PANIC,
            format!(
                "onesoidc panicked ({}); this is a bug in onesoidc, please report it",
                panic_message(panic.as_ref())
            ),
        ))
    });
    outcome.map_err(|error| {
        tracing::debug!(function, status = error.status, "call failed");
        set_last_error(&format!("{function}: {}", error.message));
        error.status
    })
}

/// Runs a function that returns no status (a `_free`, an accessor): a
/// panic is caught, recorded as the last error, and `fallback` returned.
pub(crate) fn guard<T>(function: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    call_value(function, || Ok(body())).unwrap_or(fallback)
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

/// `text` as a C string; a NUL inside (never expected in a message)
/// becomes a space rather than cutting the text short.
pub(crate) fn c_text(text: &str) -> CString {
    CString::new(text.replace('\0', " ")).unwrap_or_default()
}

/// The string argument `name`: present and UTF-8.
///
/// # Safety
///
/// `ptr` is NULL or points to a NUL-terminated string that stays valid and
/// unchanged for `'a`.
pub(crate) unsafe fn arg_str<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::argument(name, "is NULL"));
    }
    // SAFETY: not NULL, and the caller guarantees a NUL-terminated string
    // valid for 'a.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str()
        .map_err(|_| FfiError::argument(name, "is not UTF-8 text"))
}

/// An optional string argument: NULL or `""` is `None`.
///
/// # Safety
///
/// As [`arg_str`].
pub(crate) unsafe fn opt_str<'a>(
    ptr: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, FfiError> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded from the caller.
    let text = unsafe { arg_str(ptr, name) }?;
    Ok(Some(text).filter(|t| !t.is_empty()))
}

/// The object behind handle argument `name`.
///
/// # Safety
///
/// `ptr` is NULL or a handle of type `T` that this library returned and
/// that is not freed during `'a`.
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, FfiError> {
    // SAFETY: the caller guarantees a live handle or NULL.
    unsafe { ptr.as_ref() }.ok_or_else(|| FfiError::argument(name, "is NULL"))
}

/// The out-parameter `name`, set to NULL so that it is NULL whenever the
/// call fails.
///
/// # Safety
///
/// `ptr` is NULL or points to writable storage for a pointer, valid for `'a`.
pub(crate) unsafe fn out<'a, T>(ptr: *mut *mut T, name: &str) -> Result<&'a mut *mut T, FfiError> {
    // SAFETY: the caller guarantees writable storage or NULL.
    let slot = unsafe { ptr.as_mut() }.ok_or_else(|| FfiError::argument(name, "is NULL"))?;
    *slot = std::ptr::null_mut();
    Ok(slot)
}

/// A string for the caller, freed with `onesoidc_string_free`.
pub(crate) fn owned_string(text: &str) -> *mut c_char {
    secret_string(text)
}

/// A string for the caller that holds a secret: copied once, into an
/// allocation of exactly the right size, so no partial copy is left behind
/// when the NUL is appended (`onesoidc_string_free` zeroes it).
pub(crate) fn secret_string(text: &str) -> *mut c_char {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend(text.bytes().map(|b| if b == 0 { b' ' } else { b }));
    // No NUL inside (replaced above), and the capacity already holds the
    // terminator, so this does not reallocate.
    CString::new(bytes).unwrap_or_default().into_raw()
}

/// Zeroes and frees a string from [`owned_string`] / [`secret_string`].
///
/// # Safety
///
/// `ptr` is NULL or a pointer this library returned as an owned string,
/// unchanged and not freed before.
pub(crate) unsafe fn free_string(ptr: *mut c_char) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: the caller guarantees the pointer came from CString::into_raw
    // and its NUL terminator is where it was.
    let text = unsafe { CString::from_raw(ptr) };
    let mut bytes = text.into_bytes_with_nul();
    bytes.zeroize();
}

/// Boxes `value` for C.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Drops a handle from [`into_handle`].
///
/// # Safety
///
/// `ptr` is NULL or a pointer from [`into_handle`] for the same `T`, not
/// freed before and not in use by another thread.
pub(crate) unsafe fn free_handle<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: the caller guarantees it came from Box::into_raw.
        drop(unsafe { Box::from_raw(ptr) });
    }
}
