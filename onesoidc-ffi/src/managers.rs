//! Token managers and their registry (the original
//! `TokenManagerRegistry`, `TokenManager`, `tokensRefreshed`): tokens kept
//! fresh in the background, by name.

use std::ffi::{c_char, c_int, c_void};

use ::onesoidc_tokens::{TokenManager, TokenManagerRegistry, device_refresh, user_refresh};
use onesoidc_core::ExposeSecret;

use crate::boundary::{
    FfiError, ONESOIDC_ERROR, arg_str, call, free_handle, guard, handle, into_handle, out,
    owned_string, secret_string,
};
use crate::client::{client_ref, onesoidc_client};
use crate::events::onesoidc_event_callback;
use crate::listener::{Callback, Listener};
use crate::runtime::{block_on, in_runtime};
use crate::tokens::onesoidc_tokens;

/// The device's own tokens: client credentials again at each refresh. The
/// manager needs no first tokens (it fetches on first use) and lends its
/// token to the client's QR and application requests, so the process holds
/// one device token.
pub const ONESOIDC_REFRESH_DEVICE: c_int = 1;
/// A person's tokens (after a CIBA or QR login): the refresh_token grant,
/// keeping a rotated refresh token. Store the login's tokens first
/// (`onesoidc_manager_store`); until then, and once the refresh token is
/// rejected, its calls fail with `ONESOIDC_LOGIN_REQUIRED`.
pub const ONESOIDC_REFRESH_USER: c_int = 2;

/// Named token managers (e.g. `device` and `ciba_user`), the original
/// `TokenManagerRegistry`. Thread-safe. Free with `onesoidc_registry_free`,
/// which stops every manager in it.
pub struct onesoidc_registry {
    registry: TokenManagerRegistry,
}

/// One manager: keeps one set of tokens valid, refreshing ahead of expiry
/// in the background (and retrying failures) on the library's runtime.
/// A handle: several may refer to one manager; each is freed with
/// `onesoidc_manager_free`. Thread-safe.
pub struct onesoidc_manager {
    manager: TokenManager,
}

/// A manager's events going to a callback (`onesoidc_manager_subscribe`).
pub struct onesoidc_subscription {
    _listener: Listener,
}

/// Makes an empty registry (`*registry`, freed with `onesoidc_registry_free`).
///
/// # Safety
///
/// `registry` points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_registry_new(registry: *mut *mut onesoidc_registry) -> c_int {
    call("onesoidc_registry_new", || {
        // SAFETY: the caller passes writable storage.
        let slot = unsafe { out(registry, "registry") }?;
        *slot = into_handle(onesoidc_registry {
            registry: TokenManagerRegistry::new(),
        });
        Ok(())
    })
}

/// Stops every manager in the registry (waiting for their background tasks
/// to end) and frees it. Manager handles still held keep handing out their
/// current token until it expires, then fail. NULL is ignored.
///
/// # Safety
///
/// `registry` is NULL or a live registry, not freed before and not in use
/// by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_registry_free(registry: *mut onesoidc_registry) {
    guard("onesoidc_registry_free", (), || {
        // SAFETY: the caller passes a live registry or NULL.
        if let Ok(live) = unsafe { handle(registry, "registry") }
            && block_on(live.registry.shutdown()).is_err()
        {
            tracing::warn!("onesoidc_registry_free: could not wait for the managers to stop");
        }
        // SAFETY: as above; freed once.
        unsafe { free_handle(registry) };
    });
}

/// Creates a manager called `name` in `registry`, getting its tokens from
/// `client` as `refresh` says: `ONESOIDC_REFRESH_DEVICE` or
/// `ONESOIDC_REFRESH_USER`. It refreshes 60 s plus up to 30 s of jitter before
/// expiry and retries failures with backoff (the Rust builder's defaults).
///
/// On success `*manager` is a handle on it (free with
/// `onesoidc_manager_free`; the registry keeps the manager). A name
/// already taken is `ONESOIDC_ERROR`.
///
/// # Safety
///
/// `registry` and `client` are live; `name` is a NUL-terminated string;
/// `manager` points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_registry_create(
    registry: *mut onesoidc_registry,
    client: *mut onesoidc_client,
    name: *const c_char,
    refresh: c_int,
    manager: *mut *mut onesoidc_manager,
) -> c_int {
    call("onesoidc_registry_create", || {
        // SAFETY: the caller passes writable storage.
        let slot = unsafe { out(manager, "manager") }?;
        // SAFETY: the caller passes a live registry.
        let registry = unsafe { handle(registry, "registry") }?;
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller passes a NUL-terminated string.
        let name = unsafe { arg_str(name, "name") }?;
        let created = match refresh {
            ONESOIDC_REFRESH_DEVICE => in_runtime(|| {
                let manager = TokenManager::new(name, device_refresh(client.clone()));
                let inserted = registry.registry.insert(manager);
                if let Ok(manager) = &inserted {
                    manager.lend_to(client);
                }
                inserted
            })?,
            ONESOIDC_REFRESH_USER => {
                in_runtime(|| registry.registry.create(name, user_refresh(client.clone())))?
            }
            other => {
                return Err(FfiError::argument(
                    "refresh",
                    &format!(
                        "is {other}, not ONESOIDC_REFRESH_DEVICE (1) or ONESOIDC_REFRESH_USER (2)"
                    ),
                ));
            }
        };
        *slot = into_handle(onesoidc_manager { manager: created? });
        Ok(())
    })
}

/// A handle on the manager called `name` (`*manager`, freed with
/// `onesoidc_manager_free`). A name the registry does not hold is
/// `ONESOIDC_ERROR`.
///
/// # Safety
///
/// `registry` is live; `name` is a NUL-terminated string; `manager` points
/// to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_registry_get(
    registry: *mut onesoidc_registry,
    name: *const c_char,
    manager: *mut *mut onesoidc_manager,
) -> c_int {
    call("onesoidc_registry_get", || {
        // SAFETY: the caller passes writable storage.
        let slot = unsafe { out(manager, "manager") }?;
        // SAFETY: the caller passes a live registry.
        let registry = unsafe { handle(registry, "registry") }?;
        // SAFETY: the caller passes a NUL-terminated string.
        let name = unsafe { arg_str(name, "name") }?;
        let found = registry
            .registry
            .get(name)
            .ok_or_else(|| not_found(registry, name))?;
        *slot = into_handle(onesoidc_manager { manager: found });
        Ok(())
    })
}

fn not_found(registry: &onesoidc_registry, name: &str) -> FfiError {
    FfiError::new(
        ONESOIDC_ERROR,
        format!(
            "the registry holds no manager named {name:?} (it has: {})",
            registry.registry.names().join(", ")
        ),
    )
}

/// Removes the manager called `name` from the registry and stops it
/// (handles still held then fail once its token expires). A name the
/// registry does not hold is `ONESOIDC_ERROR`.
///
/// # Safety
///
/// `registry` is live; `name` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_registry_remove(
    registry: *mut onesoidc_registry,
    name: *const c_char,
) -> c_int {
    call("onesoidc_registry_remove", || {
        // SAFETY: the caller passes a live registry.
        let registry = unsafe { handle(registry, "registry") }?;
        // SAFETY: the caller passes a NUL-terminated string.
        let name = unsafe { arg_str(name, "name") }?;
        let removed = registry
            .registry
            .remove(name)
            .ok_or_else(|| not_found(registry, name))?;
        block_on(removed.shutdown())?;
        Ok(())
    })
}

/// The managers' names, sorted, one per line (each followed by `\n`;
/// `""` when empty), in `*names` (free with `onesoidc_string_free`).
///
/// # Safety
///
/// `registry` is live; `names` points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_registry_names(
    registry: *mut onesoidc_registry,
    names: *mut *mut c_char,
) -> c_int {
    call("onesoidc_registry_names", || {
        // SAFETY: the caller passes writable storage.
        let slot = unsafe { out(names, "names") }?;
        // SAFETY: the caller passes a live registry.
        let registry = unsafe { handle(registry, "registry") }?;
        let text: String = registry
            .registry
            .names()
            .iter()
            .map(|name| format!("{}\n", name.replace('\n', " ")))
            .collect();
        *slot = owned_string(&text);
        Ok(())
    })
}

/// Frees a manager handle (NULL is ignored). The manager itself lives on
/// in its registry.
///
/// # Safety
///
/// `manager` is NULL or a live handle, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_manager_free(manager: *mut onesoidc_manager) {
    // SAFETY: the caller passes a live handle or NULL, freed once.
    guard("onesoidc_manager_free", (), || unsafe {
        free_handle(manager)
    });
}

/// A valid access token: at once while the current one is valid (no
/// request), else after one refresh that every caller waiting at the same
/// time shares. On success `*access_token` is the token (free with
/// `onesoidc_string_free`, which zeroes it). Fails with
/// `ONESOIDC_LOGIN_REQUIRED` when a person's manager needs a new login,
/// `ONESOIDC_NETWORK` when the provider cannot be reached.
///
/// # Safety
///
/// `manager` is live; `access_token` points to writable storage for a
/// pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_manager_access_token(
    manager: *mut onesoidc_manager,
    access_token: *mut *mut c_char,
) -> c_int {
    call("onesoidc_manager_access_token", || {
        // SAFETY: the caller passes writable storage.
        let access_token = unsafe { out(access_token, "access_token") }?;
        // SAFETY: the caller passes a live handle.
        let manager = unsafe { handle(manager, "manager") }?;
        let token = block_on(manager.manager.access_token())??;
        *access_token = secret_string(token.expose_secret());
        Ok(())
    })
}

/// Puts `tokens` (e.g. from a login) in the manager (the original
/// `storeTokens`) and schedules their refresh; `tokens` stays the caller's
/// (it is copied). Reported as `ONESOIDC_EVENT_TOKEN_STORED`.
///
/// # Safety
///
/// `manager` and `tokens` are live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_manager_store(
    manager: *mut onesoidc_manager,
    tokens: *const onesoidc_tokens,
) -> c_int {
    call("onesoidc_manager_store", || {
        // SAFETY: the caller passes a live handle.
        let manager = unsafe { handle(manager, "manager") }?;
        // SAFETY: the caller passes live tokens.
        let tokens = unsafe { handle(tokens, "tokens") }?;
        block_on(manager.manager.store(tokens.tokens.clone()))?;
        Ok(())
    })
}

/// Refreshes now, even if the token is valid (the original
/// `forceRenewToken`), and waits for the result. On failure a still-valid
/// old token stays in use.
///
/// # Safety
///
/// `manager` is live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_manager_force_refresh(manager: *mut onesoidc_manager) -> c_int {
    call("onesoidc_manager_force_refresh", || {
        // SAFETY: the caller passes a live handle.
        let manager = unsafe { handle(manager, "manager") }?;
        block_on(manager.manager.force_refresh())??;
        Ok(())
    })
}

/// Drops the manager's tokens (e.g. on logout); the next
/// `onesoidc_manager_access_token` fetches anew (a device manager) or
/// needs a login (a person's). Reported as `ONESOIDC_EVENT_TOKEN_CLEARED`.
///
/// # Safety
///
/// `manager` is live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_manager_clear(manager: *mut onesoidc_manager) -> c_int {
    call("onesoidc_manager_clear", || {
        // SAFETY: the caller passes a live handle.
        let manager = unsafe { handle(manager, "manager") }?;
        block_on(manager.manager.clear())?;
        Ok(())
    })
}

/// Where the manager stands, as a line for a log or a UI ("valid; expires
/// at 2026-11-30T12:00:00Z", "a new login is needed: ..."), never a token,
/// in `*state` (free with `onesoidc_string_free`).
///
/// # Safety
///
/// `manager` is live; `state` points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_manager_state(
    manager: *mut onesoidc_manager,
    state: *mut *mut c_char,
) -> c_int {
    call("onesoidc_manager_state", || {
        // SAFETY: the caller passes writable storage.
        let slot = unsafe { out(state, "state") }?;
        // SAFETY: the caller passes a live handle.
        let manager = unsafe { handle(manager, "manager") }?;
        *slot = owned_string(&manager.manager.state().to_string());
        Ok(())
    })
}

/// Reports what happens to the manager's tokens from now on to `callback`
/// with `user_data`: `ONESOIDC_EVENT_TOKEN_REFRESHED` (the original
/// `tokensRefreshed`), `_STORED`, `_REFRESH_FAILED`, `_EXPIRED`,
/// `_CLEARED`. Callbacks run on a thread the library starts for this
/// subscription, one at a time (see `onesoidc_event_callback`). A
/// subscriber more than 16 events behind skips the oldest.
///
/// On success `*subscription` is the subscription; free it with
/// `onesoidc_subscription_free`, after which no callback runs.
///
/// # Safety
///
/// `manager` is live; `callback` is a function that may be called from
/// another thread with `user_data` until the subscription is freed;
/// `subscription` points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_manager_subscribe(
    manager: *mut onesoidc_manager,
    callback: onesoidc_event_callback,
    user_data: *mut c_void,
    subscription: *mut *mut onesoidc_subscription,
) -> c_int {
    call("onesoidc_manager_subscribe", || {
        // SAFETY: the caller passes writable storage.
        let slot = unsafe { out(subscription, "subscription") }?;
        // SAFETY: the caller passes a live handle.
        let manager = unsafe { handle(manager, "manager") }?;
        if callback.is_none() {
            return Err(FfiError::argument("callback", "is NULL"));
        }
        let events = in_runtime(|| manager.manager.events())?;
        let listener = Listener::spawn(events, Callback::new(callback, user_data))?;
        *slot = into_handle(onesoidc_subscription {
            _listener: listener,
        });
        Ok(())
    })
}

/// Ends a subscription: when this returns no callback of it runs (a running
/// one is waited for, unless this is called from that callback). NULL is
/// ignored.
///
/// # Safety
///
/// `subscription` is NULL or a live subscription, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_subscription_free(subscription: *mut onesoidc_subscription) {
    // SAFETY: the caller passes a live subscription or NULL, freed once.
    guard("onesoidc_subscription_free", (), || unsafe {
        free_handle(subscription)
    });
}
