//! Helpers shared by the interop tests.

use std::time::Duration;

use onesoidc_flows::core::ExposeSecret;
use onesoidc_flows::{CibaRequest, Error, OnesIdClient, TokenSet};
use onesoidc_interop::{DeviceKey, Phone};

/// No single interop test may hang the run: CIBA waits are bounded by the
/// request's expiry, this bounds everything else.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `future` with [`TEST_TIMEOUT`].
pub async fn bounded<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TEST_TIMEOUT, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {TEST_TIMEOUT:?}"))
}

/// A CIBA request for `user` with a binding message the provider accepts.
pub fn login_request(user: &str) -> CibaRequest {
    CibaRequest::for_username(user).binding_message("Kiosk-7")
}

/// Sends `request` with `client`, has the phone approve it by `auth_req_id`
/// and returns the tokens (`ciba_wait` has validated the ID token).
pub async fn login(client: &OnesIdClient, request: &CibaRequest) -> TokenSet {
    let started = client
        .ciba_start(request)
        .await
        .unwrap_or_else(|e| panic!("backchannel request refused: {e}"));
    Phone::approve(&started.auth_req_id).await;
    bounded("CIBA approve", client.ciba_wait(&started))
        .await
        .unwrap_or_else(|e| panic!("CIBA login failed: {e}"))
        .tokens
}

/// Logs alice in on `key`'s device.
pub async fn login_alice(key: DeviceKey) -> (OnesIdClient, TokenSet) {
    let client = key.client();
    let tokens = login(&client, &login_request("alice")).await;
    (client, tokens)
}

/// The OAuth error code of `result`, or a panic saying what came instead.
pub fn oauth_error<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(e) => e
            .oauth_error()
            .map(str::to_string)
            .unwrap_or_else(|| panic!("expected an OAuth error, got: {e} ({e:?})")),
        Ok(v) => panic!("expected an OAuth error, got success: {v:?}"),
    }
}

/// The secret's text.
pub fn text(secret: &onesoidc_flows::core::SecretString) -> &str {
    secret.expose_secret()
}
