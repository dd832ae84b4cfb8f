//! Well-known applications: where a person's login is meant to take them
//! (the original `ApplicationsWellKnown`).

use std::ffi::{c_char, c_int};

use crate::boundary::{arg_str, call, out, owned_string};
use crate::client::{client_ref, onesoidc_client};
use crate::runtime::block_on;

/// The URL of the application with `client_identifier` (e.g. `vhh-server`),
/// resolved against the issuer, ready to be the `resource` of a CIBA or QR
/// login (the original `getWellKnownApplicationByClientIdentifier` +
/// `getUrl`). Asked with the device's access token.
///
/// On success `*url` is the URL (free with `onesoidc_string_free`). An
/// identifier the provider does not list fails naming the ones it does.
///
/// # Safety
///
/// `client` is a live client; `client_identifier` is a NUL-terminated
/// string; `url` points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_application_url(
    client: *mut onesoidc_client,
    client_identifier: *const c_char,
    url: *mut *mut c_char,
) -> c_int {
    call("onesoidc_application_url", || {
        // SAFETY: the caller passes writable storage.
        let url = unsafe { out(url, "url") }?;
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller passes a NUL-terminated string.
        let identifier = unsafe { arg_str(client_identifier, "client_identifier") }?;
        let application = block_on(client.application(identifier))??;
        *url = owned_string(&application.url);
        Ok(())
    })
}

/// Every application the provider lists for this device, one line each:
/// `client_identifier`, a tab, the resolved URL, a tab, the display name
/// (empty when none), then `\n`. On success `*applications` is that text
/// (free with `onesoidc_string_free`; `""` when there are none).
///
/// # Safety
///
/// `client` is a live client; `applications` points to writable storage
/// for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_applications(
    client: *mut onesoidc_client,
    applications: *mut *mut c_char,
) -> c_int {
    call("onesoidc_applications", || {
        // SAFETY: the caller passes writable storage.
        let slot = unsafe { out(applications, "applications") }?;
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        let listed = block_on(client.applications())??;
        let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
        let text: String = listed
            .iter()
            .map(|app| {
                format!(
                    "{}\t{}\t{}\n",
                    clean(&app.client_identifier),
                    clean(&app.url),
                    clean(app.name.as_deref().unwrap_or_default())
                )
            })
            .collect();
        *slot = owned_string(&text);
        Ok(())
    })
}
