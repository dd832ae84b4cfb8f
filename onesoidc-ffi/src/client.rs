//! The client: a device identity and its provider (`onesoidc_client_new`),
//! the device's own access token, and reading `device.yml`.

use std::ffi::{c_char, c_int};

use onesoidc_core::{DeviceConfig, ExposeSecret, TokenSet};
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
    // SAFETY: forwarded from the caller.
    unsafe { new_client("onesoidc_client_new", device_yml, key_dir, 0, out) }
}

/// An option of `onesoidc_client_new_with`: DPoP (RFC 9449). Every token
/// request carries a proof, so the tokens are bound to the device's DPoP key
/// (token type `DPoP`): a copied token is of no use without that key. The
/// key is the device key when the provider accepts its algorithm, else a
/// P-256 key kept as `dpop.pem` in the key directory (made on first use).
/// Use the tokens with `onesoidc_authorize_request`.
pub const ONESOIDC_CLIENT_DPOP: u32 = 1;

/// `onesoidc_client_new` with options: `flags` is 0 (the same as
/// `onesoidc_client_new`) or `ONESOIDC_CLIENT_DPOP`. An unknown flag is
/// `ONESOIDC_INVALID_ARGUMENT`.
///
/// # Safety
///
/// As `onesoidc_client_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_client_new_with(
    device_yml: *const c_char,
    key_dir: *const c_char,
    flags: u32,
    out: *mut *mut onesoidc_client,
) -> c_int {
    // SAFETY: forwarded from the caller.
    unsafe { new_client("onesoidc_client_new_with", device_yml, key_dir, flags, out) }
}

/// The body of `onesoidc_client_new` and `onesoidc_client_new_with`.
///
/// # Safety
///
/// As `onesoidc_client_new`.
unsafe fn new_client(
    function: &str,
    device_yml: *const c_char,
    key_dir: *const c_char,
    flags: u32,
    out: *mut *mut onesoidc_client,
) -> c_int {
    call(function, || {
        // SAFETY: the caller passes writable storage.
        let out = unsafe { crate::boundary::out(out, "out") }?;
        // SAFETY: the caller passes NULL or NUL-terminated strings.
        let device_yml = unsafe { opt_str(device_yml, "device_yml") }?;
        // SAFETY: as above.
        let key_dir = unsafe { opt_str(key_dir, "key_dir") }?;
        if flags & !ONESOIDC_CLIENT_DPOP != 0 {
            return Err(FfiError::argument(
                "flags",
                &format!("is {flags:#x}; the known flags are ONESOIDC_CLIENT_DPOP (1)"),
            ));
        }
        let paths = identity_paths(device_yml, key_dir);
        let dpop = flags & ONESOIDC_CLIENT_DPOP != 0;
        let client = in_runtime(|| {
            OnesIdClient::builder()
                .identity_paths(paths)
                .dpop(dpop)
                .build()
        })??;
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

/// The headers of one request to an application with `access_token` (a
/// token this client got): `*authorization` is the `Authorization` header's
/// value and `*dpop` the `DPoP` header's, both to free with
/// `onesoidc_string_free`.
///
/// - A client made with `ONESOIDC_CLIENT_DPOP`: `*authorization` is
///   `DPoP <token>` and `*dpop` a fresh proof (RFC 9449) for `method` and
///   `url`, with the token's hash and the nonce `url`'s server gave last.
///   Send both; make new ones for every request (a proof is good once).
/// - Otherwise: `*authorization` is `Bearer <token>` and `*dpop` NULL.
///
/// `method` is the HTTP method (`GET`, `POST`...), `url` the request's
/// absolute URL (its query and fragment are left out of the proof). A URL
/// that is not absolute http(s) is `ONESOIDC_INVALID_ARGUMENT`; signing can
/// fail as the device key can (`ONESOIDC_ERROR`, or `ONESOIDC_NETWORK` when
/// choosing the key had to ask the provider and could not).
///
/// # Safety
///
/// `client` is a live client; `access_token`, `method` and `url` are
/// NUL-terminated strings; `authorization` and `dpop` point to writable
/// storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_authorize_request(
    client: *mut onesoidc_client,
    access_token: *const c_char,
    method: *const c_char,
    url: *const c_char,
    authorization: *mut *mut c_char,
    dpop: *mut *mut c_char,
) -> c_int {
    call("onesoidc_authorize_request", || {
        // SAFETY: the caller passes writable storage.
        let authorization = unsafe { out(authorization, "authorization") }?;
        // SAFETY: as above.
        let dpop = unsafe { out(dpop, "dpop") }?;
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller passes NUL-terminated strings.
        let access_token = unsafe { arg_str(access_token, "access_token") }?;
        // SAFETY: as above.
        let method = unsafe { arg_str(method, "method") }?;
        // SAFETY: as above.
        let url = unsafe { arg_str(url, "url") }?;
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(FfiError::argument(
                "method",
                &format!("is {method:?}, not an HTTP method such as GET"),
            ));
        }
        let parsed = url::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "https" | "http"))
            .ok_or_else(|| FfiError::argument("url", "is not an absolute http(s) URL"))?;
        if access_token.is_empty() {
            return Err(FfiError::argument("access_token", "is empty"));
        }
        let headers = block_on(async {
            // A token this client got is bound to its DPoP key when DPoP is on.
            let dpop_jkt = client
                .dpop_key()
                .await?
                .map(|key| key.thumbprint().to_string());
            let tokens = TokenSet {
                access_token: access_token.to_string().into(),
                token_type: if dpop_jkt.is_some() { "DPoP" } else { "Bearer" }.into(),
                expires_at: None,
                refresh_token: None,
                id_token: None,
                scope: None,
                dpop_jkt,
            };
            client
                .authorize(&tokens, &method.to_ascii_uppercase(), &parsed)
                .await
        })??;
        *authorization = secret_string(headers.authorization().expose_secret());
        if let Some(proof) = headers.dpop() {
            *dpop = owned_string(proof);
        }
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
