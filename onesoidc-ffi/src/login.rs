//! A started login (`onesoidc_ciba_login_start`, `onesoidc_qr_login_start`):
//! its events go to a callback; the handle waits for it, cancels it and
//! frees it.

use std::ffi::c_int;
use std::time::Duration;

use crate::boundary::{call_status, free_handle, guard, handle};
use crate::listener::Listener;

/// A login running in the background, reporting each step to its callback
/// (see `onesoidc_event_callback` for the thread it runs on).
///
/// `onesoidc_login_cancel` stops it, `onesoidc_login_wait` waits for its
/// end, `onesoidc_login_free` does both and releases it. Every login must
/// be freed, finished or not.
pub struct onesoidc_login {
    pub(crate) listener: Listener,
}

/// Cancels the login: the flow stops (nothing more is sent to the
/// provider) and no callback starts after this returns. A callback running
/// at the time is waited for, unless this is called from that callback
/// itself. `onesoidc_login_wait` then returns `ONESOIDC_CANCELLED` (or the
/// login's own status if its last event was already delivered). NULL is
/// ignored; cancelling twice is harmless.
///
/// Do not call it while holding a lock the callback takes: it waits for a
/// running callback.
///
/// # Safety
///
/// `login` is NULL or a live login handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_login_cancel(login: *mut onesoidc_login) {
    guard("onesoidc_login_cancel", (), || {
        // SAFETY: the caller passes a live handle or NULL.
        if let Ok(login) = unsafe { handle(login, "login") } {
            login.listener.cancel();
        }
    });
}

/// Waits up to `timeout_ms` milliseconds for the login to end, that is
/// until the callback for its last event has returned. Returns the login's
/// status: `ONESOIDC_OK` (authenticated), `ONESOIDC_DENIED`,
/// `ONESOIDC_EXPIRED`, `ONESOIDC_NETWORK`, `ONESOIDC_ERROR`,
/// `ONESOIDC_CANCELLED`; `ONESOIDC_PENDING` if it is still running when the
/// time is up. Any number of threads may wait; calling it from the login's
/// own callback is `ONESOIDC_INVALID_ARGUMENT` (it would wait for itself).
///
/// The reason of a failure is in the last event's message (the login's
/// error is not this thread's last error).
///
/// # Safety
///
/// `login` is a live login handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_login_wait(login: *mut onesoidc_login, timeout_ms: u64) -> c_int {
    call_status("onesoidc_login_wait", || {
        // SAFETY: the caller passes a live handle.
        let login = unsafe { handle(login, "login") }?;
        login.listener.wait(Duration::from_millis(timeout_ms))
    })
}

/// Cancels the login if it is still running (as `onesoidc_login_cancel`),
/// waits for its thread to end, and frees the handle. After it returns no
/// callback of this login runs, so `user_data` may be freed. From the
/// login's own callback it returns at once; the thread ends when the
/// callback returns, without another callback. NULL is ignored.
///
/// # Safety
///
/// `login` is NULL or a live login handle, not used by another thread
/// during or after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_login_free(login: *mut onesoidc_login) {
    // SAFETY: the caller passes a live handle or NULL, freed once.
    guard("onesoidc_login_free", (), || unsafe { free_handle(login) });
}
