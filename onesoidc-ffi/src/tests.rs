//! Tests of the C API called from Rust: the boundary (panics, NULL and
//! non-UTF-8 arguments, strings, status codes) and the flows against an
//! in-process dev IdP. The C test (`tests/c/test_onesoidc.c`, run by
//! `cargo xtask test` under valgrind) covers every function from C.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ptr::{null, null_mut};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use onesoidc_core::{Error, KeyType, TransportError, TransportErrorKind};
use onesoidc_devidp::{AutoApprove, DevIdp, DevIdpConfig};

use crate::boundary::{self, FfiError};
use crate::client::{
    onesoidc_client, onesoidc_client_free, onesoidc_client_new, onesoidc_device_token,
};
use crate::events::{
    ONESOIDC_EVENT_STARTED, ONESOIDC_EVENT_WAITING_FOR_AUTHORIZATION, onesoidc_event,
    onesoidc_event_kind,
};
use crate::login::{
    onesoidc_login, onesoidc_login_cancel, onesoidc_login_free, onesoidc_login_wait,
};
use crate::*;

fn last_error() -> String {
    // SAFETY: onesoidc_last_error never returns NULL, and the string stays
    // valid until this thread's next failing call.
    unsafe { CStr::from_ptr(onesoidc_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Takes an owned string from the library and frees it.
fn take(ptr: *mut c_char) -> String {
    assert!(!ptr.is_null());
    // SAFETY: a string the library just returned, freed once below.
    let text = unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: as above.
    unsafe { onesoidc_string_free(ptr) };
    text
}

#[test]
fn a_panic_becomes_a_status_and_a_message() {
    let status = boundary::call("onesoidc_example", || panic!("boom"));
    assert_eq!(status, ONESOIDC_PANIC);
    let message = last_error();
    assert!(
        message.starts_with("onesoidc_example: onesoidc panicked (boom)"),
        "{message}"
    );
    assert_eq!(
        boundary::guard("onesoidc_example", 7u64, || panic!("again")),
        7
    );
}

#[test]
fn null_and_non_utf8_arguments_name_the_argument() {
    let mut out = null_mut();
    // SAFETY: NULL where the functions accept it and report it.
    let status = unsafe { onesoidc_client_new(null(), null(), null_mut()) };
    assert_eq!(status, ONESOIDC_INVALID_ARGUMENT);
    assert_eq!(last_error(), "onesoidc_client_new: `out` is NULL");
    // SAFETY: as above.
    let status = unsafe { onesoidc_device_token(null_mut(), &mut out) };
    assert_eq!(status, ONESOIDC_INVALID_ARGUMENT);
    assert_eq!(last_error(), "onesoidc_device_token: `client` is NULL");
    assert!(out.is_null());
    let bad = CString::new(vec![0xff, 0xfe]).unwrap();
    let mut client: *mut onesoidc_client = null_mut();
    // SAFETY: a NUL-terminated string and writable storage.
    let status = unsafe { onesoidc_client_new(bad.as_ptr(), null(), &mut client) };
    assert_eq!(status, ONESOIDC_INVALID_ARGUMENT);
    assert_eq!(
        last_error(),
        "onesoidc_client_new: `device_yml` is not UTF-8 text"
    );
    assert!(client.is_null());
}

#[test]
fn owned_strings_round_trip_and_never_hold_a_nul() {
    assert_eq!(take(boundary::secret_string("a token")), "a token");
    assert_eq!(take(boundary::owned_string("a\0b")), "a b");
    assert_eq!(take(boundary::owned_string("")), "");
    // SAFETY: NULL is ignored.
    unsafe { onesoidc_string_free(null_mut()) };
}

#[test]
fn flow_errors_map_to_the_cli_exit_codes() {
    let oauth =
        |error: &str, status: u16| Error::oauth("http://127.0.0.1/oidc/token", status, error, None);
    let status = |error: Error| FfiError::from(error).status;
    assert_eq!(status(oauth("access_denied", 400)), ONESOIDC_DENIED);
    assert_eq!(status(oauth("expired_token", 400)), ONESOIDC_EXPIRED);
    assert_eq!(status(oauth("invalid_grant", 400)), ONESOIDC_LOGIN_REQUIRED);
    assert_eq!(status(oauth("server_error", 500)), ONESOIDC_NETWORK);
    assert_eq!(status(oauth("invalid_client", 401)), ONESOIDC_ERROR);
    let down = Error::Transport {
        endpoint: "http://127.0.0.1:1/oidc/token".into(),
        source: TransportError::new(TransportErrorKind::Connect, "connection refused"),
    };
    assert_eq!(status(down), ONESOIDC_NETWORK);
    let missing = Error::Config(onesoidc_core::ConfigError::MissingField {
        path: "/etc/px-device-identity/device.yml".into(),
        field: "id",
    });
    assert_eq!(status(missing), ONESOIDC_CONFIG);
    assert_eq!(
        (
            ONESOIDC_OK,
            ONESOIDC_ERROR,
            ONESOIDC_DENIED,
            ONESOIDC_EXPIRED
        ),
        (0, 1, 3, 4),
        "the CLI's exit codes"
    );
    assert_eq!(ONESOIDC_CANCELLED, 130);
}

/// A dev IdP on its own runtime and a device registered with it.
struct Provider {
    idp: Option<DevIdp>,
    runtime: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
}

impl Provider {
    fn start(config: DevIdpConfig) -> Provider {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let idp = runtime.block_on(DevIdp::start(config)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        idp.provision_device(dir.path(), KeyType::EccP256).unwrap();
        Provider {
            idp: Some(idp),
            runtime,
            dir,
        }
    }

    fn quick(auto_approve: Option<AutoApprove>) -> Provider {
        Provider::start(DevIdpConfig {
            ciba_interval: Duration::from_millis(100),
            ciba_expires_in: Duration::from_secs(3),
            auto_approve,
            ..DevIdpConfig::default()
        })
    }

    fn client(&self) -> Client {
        let yml = CString::new(self.dir.path().join("device.yml").to_str().unwrap()).unwrap();
        let keys = CString::new(self.dir.path().to_str().unwrap()).unwrap();
        let mut client = null_mut();
        // SAFETY: NUL-terminated strings and writable storage.
        let status = unsafe { onesoidc_client_new(yml.as_ptr(), keys.as_ptr(), &mut client) };
        assert_eq!(status, ONESOIDC_OK, "{}", last_error());
        Client(client)
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        if let Some(idp) = self.idp.take() {
            self.runtime.block_on(idp.shutdown());
        }
    }
}

/// A client handle, freed when dropped.
struct Client(*mut onesoidc_client);

impl Drop for Client {
    fn drop(&mut self) {
        // SAFETY: a live client, freed once.
        unsafe { onesoidc_client_free(self.0) };
    }
}

fn ciba_login(client: &Client, username: &str) -> (c_int, Option<String>) {
    let username = CString::new(username).unwrap();
    let mut token = null_mut();
    // SAFETY: a live client, a NUL-terminated string, writable storage.
    let status = unsafe {
        crate::ciba::onesoidc_ciba_login(client.0, username.as_ptr(), null(), null(), &mut token)
    };
    (status, (!token.is_null()).then(|| take(token)))
}

#[test]
fn device_token_ciba_and_applications_through_the_c_api() {
    let provider = Provider::quick(Some(AutoApprove::approve_after(Duration::from_millis(50))));
    let client = provider.client();
    let mut token = null_mut();
    // SAFETY: a live client and writable storage.
    let status = unsafe { onesoidc_device_token(client.0, &mut token) };
    assert_eq!(status, ONESOIDC_OK, "{}", last_error());
    assert_eq!(take(token).split('.').count(), 3, "a JWT");

    let (status, token) = ciba_login(&client, "alice");
    assert_eq!(status, ONESOIDC_OK, "{}", last_error());
    assert!(token.is_some());

    let id = CString::new("vhh-server").unwrap();
    let mut url = null_mut();
    // SAFETY: a live client, a NUL-terminated string, writable storage.
    let status = unsafe { crate::apps::onesoidc_application_url(client.0, id.as_ptr(), &mut url) };
    assert_eq!(status, ONESOIDC_OK, "{}", last_error());
    assert_eq!(take(url), "https://vhh.example.com");
}

#[test]
fn denied_and_expired_logins_have_their_own_statuses() {
    let provider = Provider::quick(Some(AutoApprove::deny_after(Duration::from_millis(50))));
    let (status, token) = ciba_login(&provider.client(), "alice");
    assert_eq!((status, token), (ONESOIDC_DENIED, None));
    assert!(last_error().contains("access_denied"), "{}", last_error());

    let provider = Provider::quick(None);
    let (status, _) = ciba_login(&provider.client(), "alice");
    assert_eq!(status, ONESOIDC_EXPIRED, "{}", last_error());
}

#[test]
fn a_blocking_call_inside_an_async_runtime_is_refused() {
    let provider = Provider::quick(None);
    let client = provider.client();
    let status = provider.runtime.block_on(async {
        let mut token = null_mut();
        // SAFETY: a live client and writable storage.
        unsafe { onesoidc_device_token(client.0, &mut token) }
    });
    assert_eq!(status, ONESOIDC_INVALID_ARGUMENT);
    assert!(last_error().contains("async runtime"), "{}", last_error());
}

/// What the slow callback below has seen.
#[derive(Default)]
struct Seen {
    kinds: Vec<c_int>,
    /// A callback is running.
    inside: bool,
}

struct Context {
    seen: Mutex<Seen>,
    changed: Condvar,
}

/// Records the event, and for WAITING_FOR_AUTHORIZATION stays a while, so a
/// cancel from another thread has to wait for it.
unsafe extern "C" fn slow_callback(user_data: *mut c_void, event: *const onesoidc_event) {
    // SAFETY: user_data is the Context the test keeps alive until the
    // login is freed.
    let context = unsafe { &*(user_data as *const Context) };
    // SAFETY: the event lent for this call.
    let kind = unsafe { onesoidc_event_kind(event) };
    {
        let mut seen = context.seen.lock().unwrap();
        seen.kinds.push(kind);
        seen.inside = true;
        context.changed.notify_all();
    }
    if kind == ONESOIDC_EVENT_WAITING_FOR_AUTHORIZATION {
        std::thread::sleep(Duration::from_millis(300));
    }
    context.seen.lock().unwrap().inside = false;
}

#[test]
fn cancel_waits_for_a_running_callback_and_no_callback_follows() {
    let provider = Provider::quick(None);
    let client = provider.client();
    let context = Arc::new(Context {
        seen: Mutex::new(Seen::default()),
        changed: Condvar::new(),
    });
    let username = CString::new("alice").unwrap();
    let mut login: *mut onesoidc_login = null_mut();
    // SAFETY: a live client, NUL-terminated strings, a callback valid with
    // this user_data until the login is freed, writable storage.
    let status = unsafe {
        crate::ciba::onesoidc_ciba_login_start(
            client.0,
            username.as_ptr(),
            null(),
            null(),
            Some(slow_callback),
            Arc::as_ptr(&context) as *mut c_void,
            &mut login,
        )
    };
    assert_eq!(status, ONESOIDC_OK, "{}", last_error());
    {
        let seen = context.seen.lock().unwrap();
        let (seen, timeout) = context
            .changed
            .wait_timeout_while(seen, Duration::from_secs(10), |s| {
                !(s.inside && s.kinds.last() == Some(&ONESOIDC_EVENT_WAITING_FOR_AUTHORIZATION))
            })
            .unwrap();
        assert!(!timeout.timed_out(), "no WAITING event: {:?}", seen.kinds);
        assert_eq!(seen.kinds[0], ONESOIDC_EVENT_STARTED);
    }
    // SAFETY: a live login.
    unsafe { onesoidc_login_cancel(login) };
    let after_cancel = {
        let seen = context.seen.lock().unwrap();
        assert!(!seen.inside, "cancel returned while a callback ran");
        seen.kinds.len()
    };
    // SAFETY: a live login.
    let status = unsafe { onesoidc_login_wait(login, 5000) };
    assert_eq!(status, ONESOIDC_CANCELLED);
    // SAFETY: a live login, freed once.
    unsafe { onesoidc_login_free(login) };
    assert_eq!(context.seen.lock().unwrap().kinds.len(), after_cancel);
}

#[test]
fn the_qr_hint_copy_is_zeroed_after_use() {
    let mut request = onesoidc_core::CibaRequest::new().login_hint(
        onesoidc_core::LoginHint::LoginHintToken("scan-secret".into()),
    );
    crate::qr::zeroize_hint(&mut request);
    assert!(matches!(
        &request.hint,
        Some(onesoidc_core::LoginHint::LoginHintToken(hint)) if hint.is_empty()
    ));
}
