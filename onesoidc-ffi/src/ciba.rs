//! CIBA: a person approves a login on their phone, asked by username
//! (the original `CibaAuth::cibaRequest` / `checkCibaStatus` and
//! `CibaAuthSignals`). Three ways: one blocking call, a request checked
//! step by step, or a login started in the background with a callback.

use std::ffi::{c_char, c_int, c_void};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use onesoidc_core::{
    BackchannelAuthResponse, CibaPoller, CibaRequest, Error, ExposeSecret, IdTokenError, PollStep,
    TokenSet,
};
use onesoidc_flows::{Login, OnesIdClient};

use crate::boundary::{
    FfiError, ONESOIDC_OK, ONESOIDC_PENDING, arg_str, call, call_status, free_handle, guard,
    handle, into_handle, opt_str, out, owned_string, secret_string,
};
use crate::client::{client_ref, onesoidc_client};
use crate::events::onesoidc_event_callback;
use crate::listener::{Callback, Listener};
use crate::login::onesoidc_login;
use crate::runtime::{block_on, in_runtime};
use crate::tokens::onesoidc_tokens;

/// The CIBA request for `username`, with the optional binding message and
/// resource (NULL or `""` for none).
///
/// # Safety
///
/// Each pointer is NULL or a NUL-terminated string.
unsafe fn ciba_request(
    username: *const c_char,
    binding_message: *const c_char,
    resource: *const c_char,
) -> Result<CibaRequest, FfiError> {
    // SAFETY: forwarded from the caller.
    let username = unsafe { arg_str(username, "username") }?;
    // SAFETY: forwarded from the caller.
    unsafe {
        with_options(
            CibaRequest::for_username(username),
            binding_message,
            resource,
        )
    }
}

/// `request` with the optional binding message and resource (NULL or `""`
/// for none): the options every login call of the C API takes.
///
/// # Safety
///
/// Each pointer is NULL or a NUL-terminated string.
pub(crate) unsafe fn with_options(
    mut request: CibaRequest,
    binding_message: *const c_char,
    resource: *const c_char,
) -> Result<CibaRequest, FfiError> {
    // SAFETY: forwarded from the caller.
    if let Some(message) = unsafe { opt_str(binding_message, "binding_message") }? {
        request = request.binding_message(message);
    }
    // SAFETY: forwarded from the caller.
    if let Some(resource) = unsafe { opt_str(resource, "resource") }? {
        request = request.resource(resource);
    }
    Ok(request)
}

/// Logs `username` in: asks the provider to have them approve on their
/// phone, then polls until they approve, deny or the request expires. The
/// ID token is validated before it returns. Blocks for as long as the
/// person takes (up to the request's lifetime, 2 minutes on OnesID).
///
/// `binding_message` (shown on the phone, at most 120 characters) and
/// `resource` (the application's URL, e.g. from
/// `onesoidc_application_url`) may be NULL or `""`.
///
/// Returns `ONESOIDC_OK` with `*access_token` set (free with
/// `onesoidc_string_free`), `ONESOIDC_DENIED` when the person said no,
/// `ONESOIDC_EXPIRED` when nobody answered in time, or another error.
/// For all the tokens (to store in a manager), use `onesoidc_ciba_start`
/// and `onesoidc_ciba_wait`.
///
/// # Safety
///
/// `client` is a live client; the strings are NULL or NUL-terminated;
/// `access_token` points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_ciba_login(
    client: *mut onesoidc_client,
    username: *const c_char,
    binding_message: *const c_char,
    resource: *const c_char,
    access_token: *mut *mut c_char,
) -> c_int {
    call("onesoidc_ciba_login", || {
        // SAFETY: the caller passes writable storage.
        let access_token = unsafe { out(access_token, "access_token") }?;
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller passes NULL or NUL-terminated strings.
        let request = unsafe { ciba_request(username, binding_message, resource) }?;
        let login = block_on(client.ciba(&request))??;
        *access_token = secret_string(login.tokens.access_token.expose_secret());
        Ok(())
    })
}

/// A CIBA request the provider accepted, waiting for the person's answer
/// (`onesoidc_ciba_start`). Free with `onesoidc_ciba_free`.
pub struct onesoidc_ciba {
    started: BackchannelAuthResponse,
    began: Instant,
    /// The poll state machine (interval, `slow_down`, `Retry-After`,
    /// expiry) and the wait it asks for before the next poll.
    poll: Mutex<(CibaPoller, Duration)>,
}

impl onesoidc_ciba {
    fn new(started: BackchannelAuthResponse) -> Self {
        let poller = CibaPoller::new(&started);
        let wait = poller.first_wait();
        onesoidc_ciba {
            started,
            began: Instant::now(),
            poll: Mutex::new((poller, wait)),
        }
    }

    fn poll(&self) -> std::sync::MutexGuard<'_, (CibaPoller, Duration)> {
        self.poll.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The person's login from approved `tokens`: the ID token validated (a
/// missing one is an error, as in `OnesIdClient::ciba`).
async fn login_from(client: &OnesIdClient, tokens: TokenSet) -> Result<Login, Error> {
    let claims = match &tokens.id_token {
        Some(id_token) => client.validate_id_token(id_token.expose_secret()).await?,
        None => {
            return Err(Error::IdToken {
                endpoint: client.provider_metadata().await?.token_endpoint.to_string(),
                source: IdTokenError::Missing,
            });
        }
    };
    Ok(Login::new(tokens, Some(claims)))
}

/// Sends the CIBA request for `username` (the original `cibaRequest`) and
/// returns at once; the person's phone is now being asked. Then call
/// `onesoidc_ciba_check` every `onesoidc_ciba_interval` seconds, or
/// `onesoidc_ciba_wait` once. Arguments as for `onesoidc_ciba_login`.
///
/// On success `*request` is the accepted request (free with
/// `onesoidc_ciba_free`). A request naming an unknown user, or with too
/// long a binding message, fails here.
///
/// # Safety
///
/// As `onesoidc_ciba_login`; `request` points to writable storage for a
/// pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_ciba_start(
    client: *mut onesoidc_client,
    username: *const c_char,
    binding_message: *const c_char,
    resource: *const c_char,
    request: *mut *mut onesoidc_ciba,
) -> c_int {
    call("onesoidc_ciba_start", || {
        // SAFETY: the caller passes writable storage.
        let slot = unsafe { out(request, "request") }?;
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller passes NULL or NUL-terminated strings.
        let ciba = unsafe { ciba_request(username, binding_message, resource) }?;
        let started = block_on(client.ciba_start(&ciba))??;
        *slot = into_handle(onesoidc_ciba::new(started));
        Ok(())
    })
}

/// Copies the request's `auth_req_id` into `*auth_req_id` (free with
/// `onesoidc_string_free`).
///
/// # Safety
///
/// `request` is a live request; `auth_req_id` points to writable storage
/// for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_ciba_auth_req_id(
    request: *const onesoidc_ciba,
    auth_req_id: *mut *mut c_char,
) -> c_int {
    call("onesoidc_ciba_auth_req_id", || {
        // SAFETY: the caller passes writable storage.
        let auth_req_id = unsafe { out(auth_req_id, "auth_req_id") }?;
        // SAFETY: the caller passes a live request.
        let request = unsafe { handle(request, "request") }?;
        *auth_req_id = owned_string(&request.started.auth_req_id);
        Ok(())
    })
}

/// How long the person has to answer, in seconds from the start (0 for NULL).
///
/// # Safety
///
/// `request` is NULL or a live request.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_ciba_expires_in(request: *const onesoidc_ciba) -> u64 {
    guard("onesoidc_ciba_expires_in", 0, || {
        // SAFETY: the caller passes a live request or NULL.
        unsafe { request.as_ref() }.map_or(0, |r| r.started.expires_in.as_secs())
    })
}

/// Seconds to wait before the next `onesoidc_ciba_check`: the provider's
/// interval, plus 5 s after each `slow_down`, or longer when it asked so
/// with `Retry-After` (0 for NULL).
///
/// # Safety
///
/// `request` is NULL or a live request.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_ciba_interval(request: *const onesoidc_ciba) -> u64 {
    guard("onesoidc_ciba_interval", 0, || {
        // SAFETY: the caller passes a live request or NULL.
        unsafe { request.as_ref() }.map_or(0, |r| r.poll().1.as_secs())
    })
}

/// Asks the provider once whether the person has answered (the original
/// `checkCibaStatus`). Returns `ONESOIDC_PENDING` while they have not (wait
/// `onesoidc_ciba_interval` seconds before asking again; asking sooner
/// makes the provider slow you down), `ONESOIDC_OK` with `*tokens` set when
/// they approved (the ID token validated; free with `onesoidc_tokens_free`),
/// `ONESOIDC_DENIED`, `ONESOIDC_EXPIRED`, or another error.
///
/// # Safety
///
/// `client` and `request` are live; `tokens` points to writable storage
/// for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_ciba_check(
    client: *mut onesoidc_client,
    request: *mut onesoidc_ciba,
    tokens: *mut *mut onesoidc_tokens,
) -> c_int {
    call_status("onesoidc_ciba_check", || {
        // SAFETY: the caller passes writable storage.
        let tokens = unsafe { out(tokens, "tokens") }?;
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller passes a live request.
        let request = unsafe { handle(request, "request") }?;
        let response = block_on(client.ciba_poll(&request.started.auth_req_id))?;
        let step = {
            let mut poll = request.poll();
            let step = poll.0.on_response(response, request.began.elapsed());
            if let PollStep::Wait(wait) = step {
                poll.1 = wait;
            }
            step
        };
        match step {
            PollStep::Wait(_) => Ok(ONESOIDC_PENDING),
            PollStep::Done(set) => {
                let login = block_on(login_from(client, set))??;
                *tokens = into_handle(onesoidc_tokens::from(login));
                Ok(ONESOIDC_OK)
            }
            PollStep::Failed(error) => Err(error.into()),
        }
    })
}

/// Polls until the person answers or the request expires (waiting the
/// interval between polls, slowing down when told), then validates the ID
/// token. Returns as `onesoidc_ciba_check` does, but never
/// `ONESOIDC_PENDING`.
///
/// # Safety
///
/// As `onesoidc_ciba_check`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_ciba_wait(
    client: *mut onesoidc_client,
    request: *mut onesoidc_ciba,
    tokens: *mut *mut onesoidc_tokens,
) -> c_int {
    call("onesoidc_ciba_wait", || {
        // SAFETY: the caller passes writable storage.
        let tokens = unsafe { out(tokens, "tokens") }?;
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller passes a live request.
        let request = unsafe { handle(request, "request") }?;
        // Go on from where the checks left off: the interval they reached,
        // and the time left.
        let mut started = request.started.clone();
        {
            let poll = request.poll();
            started.interval = poll.0.interval();
            started.expires_in = poll.0.remaining(request.began.elapsed());
        }
        let login = block_on(client.ciba_wait(&started))??;
        *tokens = into_handle(onesoidc_tokens::from(login));
        Ok(())
    })
}

/// Frees a CIBA request (NULL is ignored). Nothing is sent: an unanswered
/// request simply expires at the provider.
///
/// # Safety
///
/// `request` is NULL or a live request, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_ciba_free(request: *mut onesoidc_ciba) {
    // SAFETY: the caller passes a live request or NULL, freed once.
    guard("onesoidc_ciba_free", (), || unsafe { free_handle(request) });
}

/// Starts a CIBA login for `username` in the background and returns at
/// once (the original `CibaAuthSignals`). Each step is reported to
/// `callback` with `user_data`: `ONESOIDC_EVENT_STARTED`, then
/// `ONESOIDC_EVENT_WAITING_FOR_AUTHORIZATION` before each poll, then
/// exactly one of `ONESOIDC_EVENT_AUTHENTICATED` or `ONESOIDC_EVENT_FAILED`
/// (also when the request could not even be sent). Callbacks run on a
/// thread the library starts for this login (see `onesoidc_event_callback`);
/// `callback` may be NULL (then use `onesoidc_login_wait`).
///
/// Arguments as for `onesoidc_ciba_login`. On success `*login` is the
/// running login: wait for it, cancel it, and always free it with
/// `onesoidc_login_free`, after which no callback runs.
///
/// # Safety
///
/// As `onesoidc_ciba_login`; `callback` is NULL or a function that may be
/// called from another thread with `user_data` until the login is freed or
/// cancelled; `login` points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn onesoidc_ciba_login_start(
    client: *mut onesoidc_client,
    username: *const c_char,
    binding_message: *const c_char,
    resource: *const c_char,
    callback: onesoidc_event_callback,
    user_data: *mut c_void,
    login: *mut *mut onesoidc_login,
) -> c_int {
    call("onesoidc_ciba_login_start", || {
        // SAFETY: the caller passes writable storage.
        let login = unsafe { out(login, "login") }?;
        // SAFETY: the caller passes a live client.
        let client = unsafe { client_ref(client) }?;
        // SAFETY: the caller passes NULL or NUL-terminated strings.
        let request = unsafe { ciba_request(username, binding_message, resource) }?;
        let events = in_runtime(|| client.ciba_events(request))?;
        let listener = Listener::spawn(events, Callback::new(callback, user_data))?;
        *login = into_handle(onesoidc_login { listener });
        Ok(())
    })
}
