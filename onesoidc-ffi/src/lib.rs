//! onesoidc for C, C++ and Qt: `libonesoidc.so` / `libonesoidc.a` and
//! their header `include/onesoidc.h` (generated from this crate by
//! cbindgen: `cargo xtask ffi-header`), a header-only C++17 layer
//! (`include/onesoidc.hpp`) and a Qt 6 layer (`include/onesoidc_qt.hpp`)
//! with the original C++/Qt library's names.
//!
//! # Conventions of the C API
//!
//! - Every call that can fail returns an `int` status: `ONESOIDC_OK` (0) or
//!   a code named in the header (the CLI's exit codes where they apply:
//!   3 denied or cancelled on the phone, 4 expired). `onesoidc_last_error()`
//!   then returns the calling thread's message, naming the file, field,
//!   endpoint and status as the Rust errors do; never a token.
//! - Strings and objects the library hands out through an out-parameter
//!   (`char **`, `onesoidc_x **`) are the caller's: strings are freed with
//!   `onesoidc_string_free` (which zeroes them first: they may be tokens),
//!   objects with their own `_free`. A `const char *` return value is
//!   borrowed, valid as its function says. Out-parameters are NULL after a
//!   failure.
//! - Input strings are NUL-terminated UTF-8; NULL where not allowed, or
//!   not UTF-8, is `ONESOIDC_INVALID_ARGUMENT` naming the argument.
//! - No panic crosses the boundary: each function catches it
//!   (`ONESOIDC_PANIC`).
//! - Blocking calls run on the caller's thread, over one tokio runtime the
//!   library starts on first use (two worker threads, `onesoidc-rt`).
//!   Callbacks run on a thread started for each login or subscription
//!   (`onesoidc-events`); see `onesoidc_event_callback`.
//!
//! # Safety in this crate
//!
//! `unsafe` is only at the boundary: dereferencing what C passes (each
//! function states what it needs in its `# Safety` section, which the
//! header repeats), and calling C's callbacks. Every `unsafe` block says
//! why it holds in a `// SAFETY:` comment.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]
#![allow(non_camel_case_types)]

mod boundary;
mod listener;
mod runtime;

// The public modules in the order of the header (cbindgen follows it):
// identity, the device, applications, tokens, CIBA, QR, events, managers,
// validation.

/// The client and the device's own token.
pub mod client;

/// Well-known applications.
pub mod apps;

/// Token objects.
pub mod tokens;

/// CIBA.
pub mod ciba;

/// QR login.
pub mod qr;

/// Events and callbacks.
pub mod events;

/// Started logins.
pub mod login;

/// Token managers and the registry.
pub mod managers;

/// Validation, introspection, revocation.
pub mod validation;

#[cfg(test)]
mod tests;

use std::ffi::c_char;

pub use boundary::{
    ONESOIDC_CANCELLED, ONESOIDC_CONFIG, ONESOIDC_DENIED, ONESOIDC_ERROR, ONESOIDC_EXPIRED,
    ONESOIDC_INVALID_ARGUMENT, ONESOIDC_LOGIN_REQUIRED, ONESOIDC_NETWORK, ONESOIDC_OK,
    ONESOIDC_PANIC, ONESOIDC_PENDING,
};

/// The library's version, e.g. `0.1.0`. Static: never freed.
#[unsafe(no_mangle)]
pub extern "C" fn onesoidc_version() -> *const c_char {
    boundary::guard("onesoidc_version", c"".as_ptr(), || {
        const VERSION: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
            concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
        ) {
            Ok(version) => version,
            Err(_) => c"unknown",
        };
        VERSION.as_ptr()
    })
}

/// The message of the calling thread's last failed call, prefixed with the
/// function's name, e.g. "onesoidc_client_new: /etc/px-device-identity/device.yml:
/// field key_type is invalid: ..."; "" before any failure. Calls that
/// succeed leave it unchanged (as errno). Never contains a token.
///
/// Borrowed: valid until this thread's next failing call; copy it to keep
/// it. Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn onesoidc_last_error() -> *const c_char {
    boundary::guard(
        "onesoidc_last_error",
        c"".as_ptr(),
        boundary::last_error_ptr,
    )
}

/// Frees a string the library returned through a `char **` (a token, a
/// URL, a message): zeroes its bytes, then frees it. NULL is ignored.
///
/// # Safety
///
/// `s` is NULL or a string this library returned, unchanged (its
/// terminating NUL where it was) and not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_string_free(s: *mut c_char) {
    // SAFETY: the caller passes NULL or an unchanged string of ours, once.
    boundary::guard("onesoidc_string_free", (), || unsafe {
        boundary::free_string(s)
    });
}
