//! The client: a device identity and its provider (`onesoidc_client_new`),
//! the device's own access token, and reading `device.yml`.

use std::ffi::{c_char, c_int};

use onesoidc_core::{DeviceConfig, ExposeSecret};
use onesoidc_flows::{IdentityPaths, OnesIdClient, load_device_config};

use crate::boundary::{
    FfiError, arg_str, call, free_handle, guard, handle, into_handle, opt_str, out, owned_string,
    secret_string,
};
use crate::runtime::{block_on, in_runtime};
use crate::tokens::onesoidc_tokens;

/// A registered device and its provider: loaded once by
/// `onesoidc_client_new`, then used by every flow.
///
/// Thread-safe: any number of threads may call functions on one client at
/// once (each call runs on its caller's thread). Free it with
/// `onesoidc_client_free` once no call on it is running.
pub struct onesoidc_client {
    pub(crate) client: OnesIdClient,
}

/// The client behind a handle argument.
///
/// # Safety
///
/// `client` is NULL or a live handle from `onesoidc_client_new`.
pub(crate) unsafe fn client_ref<'a>(
    client: *const onesoidc_client,
) -> Result<&'a OnesIdClient, FfiError> {
    // SAFETY: forwarded from the caller.
    Ok(&unsafe { handle(client, "client") }?.client)
}

/// Where the identity is: each path given, else its default (see
/// `onesoidc_client_new`).
fn identity_paths(device_yml: Option<&str>, key_dir: Option<&str>) -> IdentityPaths {
    let defaults = IdentityPaths::from_env();
    IdentityPaths::new(
        device_yml.map_or(defaults.config, Into::into),
        key_dir.map_or(defaults.key_dir, Into::into),
    )
}

/// Loads the device identity (`device.yml` and the private key) and makes a
/// client for its provider. Nothing is sent yet: the provider's endpoints
/// are discovered on the first call that needs them.
///
/// `device_yml` is the path of `device.yml`, `key_dir` the directory with
/// `private.pem`. NULL (or `""`) means the default: `ONESOIDC_DEVICE_CONFIG`
/// / `ONESOIDC_KEY_DIR` when set, else px-device-identity's places
/// (`/etc/px-device-identity/device.yml`,
/// `~/.local/share/px-device-identity`).
///
/// On success `*out` is the client, to free with `onesoidc_client_free`;
/// on failure it is NULL and `onesoidc_last_error()` names the file and
/// field (e.g. a missing file, a bad `key_type`, an unregistered device).
///
/// # Safety
///
/// `device_yml` and `key_dir` are NULL or NUL-terminated strings; `out`
/// points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_client_new(
    device_yml: *const c_char,
    key_dir: *const c_char,
    out: *mut *mut onesoidc_client,
) -> c_int {
    call("onesoidc_client_new", || {
        // SAFETY: the caller passes writable storage.
        let out = unsafe { crate::boundary::out(out, "out") }?;
        // SAFETY: the caller passes NULL or NUL-terminated strings.
        let device_yml = unsafe { opt_str(device_yml, "device_yml") }?;
        // SAFETY: as above.
        let key_dir = unsafe { opt_str(key_dir, "key_dir") }?;
        let paths = identity_paths(device_yml, key_dir);
        let client = in_runtime(|| OnesIdClient::builder().identity_paths(paths).build())??;
        *out = into_handle(onesoidc_client { client });
        Ok(())
    })
}

/// Frees a client (NULL is ignored). Calls still running on it must have
/// returned; managers and logins made from it keep what they need.
///
/// # Safety
///
/// `client` is NULL or a handle from `onesoidc_client_new`, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_client_free(client: *mut onesoidc_client) {
    // SAFETY: the caller passes a live handle or NULL, freed once.
    guard("onesoidc_client_free", (), || unsafe {
        free_handle(client)
    });
}

/// Gets a device access token: client credentials with a `private_key_jwt`
/// assertion signed by the device key (the original `DeviceAuth::requestDeviceAccessToken`).
/// Blocks until the provider answers.
///
/// On success `*access_token` is the token, the caller's to free with
/// `onesoidc_string_free` (which zeroes it); on failure it is NULL.
///
/// # Safety
///
/// `client` is a live client; `access_token` points to writable storage
/// for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_device_token(
    client: *mut onesoidc_client,
    access_token: *mut *mut c_char,
) -> c_int {
    call("onesoidc_device_token", || {
        // SAFETY: the caller passes writable storage.
        let access_token = unsafe { out(access_token, "access_token") }?;
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        let tokens = block_on(client.device_token())??;
        *access_token = secret_string(tokens.access_token.expose_secret());
        Ok(())
    })
}

/// Gets a device access token as `onesoidc_device_token` does, as a tokens
/// object: the token (`onesoidc_tokens_access_token`), its type
/// (`onesoidc_tokens_token_type`) and when it expires
/// (`onesoidc_tokens_expires_at`). There is no ID token and no subject.
///
/// On success `*tokens` is the object, the caller's to free with
/// `onesoidc_tokens_free`; on failure it is NULL.
///
/// # Safety
///
/// `client` is a live client; `tokens` points to writable storage for a
/// pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_device_tokens(
    client: *mut onesoidc_client,
    tokens: *mut *mut onesoidc_tokens,
) -> c_int {
    call("onesoidc_device_tokens", || {
        // SAFETY: the caller passes writable storage.
        let slot = unsafe { out(tokens, "tokens") }?;
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        let tokens = block_on(client.device_token())??;
        *slot = into_handle(onesoidc_tokens {
            tokens,
            claims: None,
        });
        Ok(())
    })
}

/// Reads one field of `device.yml` without loading the key (the original
/// `DeviceConfig::loadFromFile`). `device_yml` NULL (or `""`) means the
/// default place, as for `onesoidc_client_new`.
///
/// `field` is one of `id`, `client_id`, `host`, `issuer` (`host` + `/oidc`),
/// `domain`, `key_type` (e.g. `ECC:P-256`), `key_security`, `is_managed`
/// (`true`/`false`), `title`, `location`, `role`, `config_version`,
/// `initiated_on`. An unknown field is `ONESOIDC_INVALID_ARGUMENT`.
///
/// On success `*value` is the value (free it with `onesoidc_string_free`),
/// or NULL when the file has none (e.g. `client_id` of an unregistered
/// device). A missing or invalid file fails naming the file and field.
///
/// # Safety
///
/// `device_yml` is NULL or a NUL-terminated string, `field` a
/// NUL-terminated string; `value` points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_device_config_field(
    device_yml: *const c_char,
    field: *const c_char,
    value: *mut *mut c_char,
) -> c_int {
    call("onesoidc_device_config_field", || {
        // SAFETY: the caller passes writable storage.
        let value = unsafe { out(value, "value") }?;
        // SAFETY: the caller passes NUL-terminated strings (or NULL).
        let device_yml = unsafe { opt_str(device_yml, "device_yml") }?;
        // SAFETY: as above.
        let field = unsafe { arg_str(field, "field") }?;
        let path = identity_paths(device_yml, None).config;
        let config = load_device_config(&path).map_err(onesoidc_core::Error::from)?;
        if let Some(text) = config_field(&config, field)? {
            *value = owned_string(&text);
        }
        Ok(())
    })
}

/// The value of `field` in `config`; `Ok(None)` when it has none.
fn config_field(config: &DeviceConfig, field: &str) -> Result<Option<String>, FfiError> {
    let text = |v: &Option<String>| v.clone();
    Ok(match field {
        "id" => Some(config.id.clone()),
        "client_id" => config.client_id.as_ref().map(ToString::to_string),
        "host" => text(&config.host),
        "issuer" => config.registration().ok().map(|r| r.issuer.to_string()),
        "domain" => text(&config.domain),
        "key_type" => Some(config.key_type.to_string()),
        "key_security" => Some(config.key_security.as_str().to_string()),
        "is_managed" => Some(config.is_managed.to_string()),
        "title" => text(&config.title),
        "location" => text(&config.location),
        "role" => text(&config.role),
        "config_version" => text(&config.config_version),
        "initiated_on" => text(&config.initiated_on),
        other => {
            return Err(FfiError::argument(
                "field",
                &format!(
                    "is {other:?}, not one of id, client_id, host, issuer, domain, key_type, \
                     key_security, is_managed, title, location, role, config_version, initiated_on"
                ),
            ));
        }
    })
}
