//! Helpers shared by the interop tests.

use std::sync::Arc;
use std::time::Duration;

use onesoidc_flows::core::{
    AccessTokenClaims, AccessTokenError, BackchannelAuthResponse, DpopKey, DpopProofError,
    ExposeSecret,
};
use onesoidc_flows::{CibaRequest, Error, OnesIdClient, TokenSet};
use onesoidc_interop::{DeviceKey, Instance};
use onesoidc_resource::{Refusal, ResourceServer};

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
    let started = approved_login(client, Instance::Default, request).await;
    bounded("CIBA approve", client.ciba_wait(&started))
        .await
        .unwrap_or_else(|e| panic!("CIBA login failed: {e}"))
        .tokens
}

/// Sends `request` with `client` (a client of `instance`) and has the
/// phone at `instance` approve it; returns what to poll for.
pub async fn approved_login(
    client: &OnesIdClient,
    instance: Instance,
    request: &CibaRequest,
) -> BackchannelAuthResponse {
    let started = client
        .ciba_start(request)
        .await
        .unwrap_or_else(|e| panic!("backchannel request refused: {e}"));
    instance.phone().approves(&started.auth_req_id).await;
    started
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

/// The resource server issuing RFC 9068 JWT access tokens
/// (`interop/provider.mjs`).
pub const JWT_RESOURCE: &str = "https://api.interop.test/jwt";

/// Declares two `#[tokio::test]`s running `async fn scenario(Instance)`:
/// at the provider's default DPoP configuration and at the instance that
/// requires nonces.
macro_rules! at_both_instances {
    ($scenario:ident) => {
        mod $scenario {
            use onesoidc_interop::Instance;

            #[tokio::test]
            #[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
            async fn default_configuration() {
                super::$scenario(Instance::Default).await;
            }

            #[tokio::test]
            #[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
            async fn nonce_required() {
                super::$scenario(Instance::NonceRequired).await;
            }
        }
    };
}

/// An application at [`JWT_RESOURCE`] (public origin
/// `https://api.interop.test`) accepting `instance`'s JWT access tokens,
/// bound ones with their DPoP proofs, on `GET /jwt/orders`.
pub struct OrdersApi {
    server: ResourceServer,
}

impl OrdersApi {
    /// The URL a client calls (and its proofs' `htu`).
    pub const URL: &str = "https://api.interop.test/jwt/orders";

    pub async fn new(instance: Instance) -> Self {
        let server = ResourceServer::builder()
            .issuer(instance.issuer())
            .audience(JWT_RESOURCE)
            .public_url("https://api.interop.test")
            .http(onesoidc_interop::http())
            .build()
            .await
            .expect("discovery");
        OrdersApi { server }
    }

    /// [`URL`](Self::URL), parsed.
    pub fn url() -> url::Url {
        url::Url::parse(Self::URL).unwrap()
    }

    /// Checks a `GET /jwt/orders` request with `headers`.
    pub async fn get(&self, headers: &http::HeaderMap) -> Result<Arc<AccessTokenClaims>, Refusal> {
        let uri: http::Uri = "/jwt/orders".parse().unwrap();
        self.server
            .check_request(&http::Method::GET, headers, &uri)
            .await
    }

    /// Checks that the bound `token`, taken off the device, is refused
    /// both as `Authorization: Bearer` and with a proof from a thief's own
    /// key.
    pub async fn assert_refused_to_a_thief(&self, token: &str) {
        let bearer = self.get(&request_headers("Bearer", token, None)).await;
        let bearer_token = self.server.check_token(token).await;
        for refused in [bearer, bearer_token] {
            assert!(
                matches!(
                    refused,
                    Err(Refusal::InvalidToken(AccessTokenError::BoundToKey))
                ),
                "{refused:?}"
            );
        }
        let thief = DpopKey::generate().unwrap();
        let now = std::time::SystemTime::now();
        let proof = thief.proof("GET", &Self::url(), Some(token), None, now);
        let headers = request_headers("DPoP", token, Some(&proof.unwrap()));
        let refused = self.get(&headers).await;
        assert!(
            matches!(
                refused,
                Err(Refusal::InvalidDpopProof(
                    DpopProofError::KeyNotBound { .. }
                ))
            ),
            "{refused:?}"
        );
    }
}

/// `Authorization: <scheme> <token>` and, when given, `DPoP: <proof>`.
pub fn request_headers(scheme: &str, token: &str, proof: Option<&str>) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    let authorization = format!("{scheme} {token}").parse().unwrap();
    headers.insert(http::header::AUTHORIZATION, authorization);
    if let Some(proof) = proof {
        headers.insert("dpop", proof.parse().unwrap());
    }
    headers
}
