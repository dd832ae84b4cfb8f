//! `device_refresh` and `user_refresh` against an in-memory provider.

use std::collections::HashMap;

use onesoidc_core::{DeviceConfig, KeyType, PemSigner};
use onesoidc_flows::DeviceIdentity;
use onesoidc_flows::OnesIdClient;
use onesoidc_flows::http_client::{
    BoxFuture, HttpClient, HttpRequest, HttpResponse, TransportError,
};
use onesoidc_tokens::{TokenState, device_refresh, user_refresh};

use super::*;

/// Answers discovery and the token endpoint like OnesID: client credentials,
/// and a refresh token grant that rotates `rt-1` into `rt-2`, then does not
/// rotate, then rejects `rt-2` as revoked.
#[derive(Default)]
struct FakeIdp {
    token_requests: Mutex<Vec<HashMap<String, String>>>,
}

impl FakeIdp {
    fn form(body: &[u8]) -> HashMap<String, String> {
        String::from_utf8_lossy(body)
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn answer(&self, request: &HttpRequest) -> HttpResponse {
        let json = |status: u16, body: serde_json::Value| {
            http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(body.to_string().into_bytes())
                .unwrap()
        };
        if request
            .uri()
            .path()
            .ends_with("/.well-known/openid-configuration")
        {
            return json(
                200,
                serde_json::json!({
                    "issuer": "https://idp.test/oidc",
                    "token_endpoint": ENDPOINT,
                    "jwks_uri": "https://idp.test/oidc/jwks",
                }),
            );
        }
        let form = Self::form(request.body());
        let mut requests = self.token_requests.lock().unwrap();
        requests.push(form.clone());
        let refreshes_with_rt2 = requests
            .iter()
            .filter(|f| f.get("refresh_token").map(String::as_str) == Some("rt-2"))
            .count();
        match (
            form["grant_type"].as_str(),
            form.get("refresh_token").map(String::as_str),
        ) {
            ("client_credentials", _) => json(
                200,
                serde_json::json!({"access_token": "device-at", "token_type": "Bearer", "expires_in": 300}),
            ),
            ("refresh_token", Some("rt-1")) => json(
                200,
                serde_json::json!({"access_token": "user-at-2", "token_type": "Bearer", "expires_in": 300, "refresh_token": "rt-2"}),
            ),
            ("refresh_token", Some("rt-2")) if refreshes_with_rt2 == 1 => json(
                200,
                serde_json::json!({"access_token": "user-at-3", "token_type": "Bearer", "expires_in": 300}),
            ),
            _ => json(
                400,
                serde_json::json!({"error": "invalid_grant", "error_description": "refresh token revoked"}),
            ),
        }
    }
}

struct Shared(Arc<FakeIdp>);

impl HttpClient for Shared {
    fn execute(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        let response = self.0.answer(&request);
        Box::pin(async move { Ok(response) })
    }
}

fn client(idp: &Arc<FakeIdp>) -> OnesIdClient {
    let yaml = "id: dev-1\nclient_id: client-1\nhost: https://idp.test\nkey_type: ECC:p256\nkey_security: default\n";
    let config = DeviceConfig::from_yaml_str(yaml, "device.yml".as_ref()).unwrap();
    let identity = DeviceIdentity::from_parts(
        config,
        Arc::new(PemSigner::generate(KeyType::EccP256).unwrap()),
    );
    OnesIdClient::new(identity, Shared(idp.clone())).unwrap()
}

#[tokio::test]
async fn device_refresh_uses_client_credentials() {
    let idp = Arc::new(FakeIdp::default());
    let manager = TokenManager::new("device", device_refresh(client(&idp)));
    assert_eq!(secret(&manager.access_token().await), "device-at");
    assert_eq!(secret(&manager.access_token().await), "device-at");
    let requests = idp.token_requests.lock().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["grant_type"], "client_credentials");
    assert_eq!(requests[0]["client_id"], "client-1");
}

#[tokio::test]
async fn user_refresh_keeps_rotation_and_stops_on_invalid_grant() {
    let idp = Arc::new(FakeIdp::default());
    let manager = TokenManager::builder("ciba_user", user_refresh(client(&idp)))
        .initial_tokens(TokenSet {
            access_token: "user-at-1".to_string().into(),
            token_type: "Bearer".into(),
            expires_at: Some(SystemTime::now() + HOUR),
            refresh_token: Some("rt-1".to_string().into()),
            id_token: None,
            scope: None,
            dpop_jkt: None,
        })
        .build();
    let mut events = manager.events();

    // Rotation: rt-1 is replaced by rt-2.
    let tokens = manager.force_refresh().await.unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "user-at-2");
    assert_eq!(
        tokens.refresh_token.as_ref().unwrap().expose_secret(),
        "rt-2"
    );
    // No new refresh token in the answer: rt-2 is kept.
    let tokens = manager.force_refresh().await.unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "user-at-3");
    assert_eq!(
        tokens.refresh_token.as_ref().unwrap().expose_secret(),
        "rt-2"
    );
    // Revoked: a new login is needed.
    let error = manager.force_refresh().await.unwrap_err();
    assert!(error.is_reauth_required(), "{error}");
    assert!(matches!(
        events.next().await,
        Some(TokenEvent::Refreshed { .. })
    ));
    assert!(matches!(
        events.next().await,
        Some(TokenEvent::Refreshed { .. })
    ));
    assert!(matches!(
        events.next().await,
        Some(TokenEvent::RefreshFailed {
            reauth_required: true,
            ..
        })
    ));
    assert!(matches!(manager.state(), TokenState::ReauthRequired { .. }));
    // The access token from the last good refresh is still valid.
    assert_eq!(secret(&manager.access_token().await), "user-at-3");
    let sent: Vec<String> = idp
        .token_requests
        .lock()
        .unwrap()
        .iter()
        .map(|f| f["refresh_token"].clone())
        .collect();
    assert_eq!(sent, ["rt-1", "rt-2", "rt-2"]);
}

#[tokio::test]
async fn a_user_manager_without_tokens_asks_for_a_login() {
    let idp = Arc::new(FakeIdp::default());
    let manager = TokenManager::new("ciba_user", user_refresh(client(&idp)));
    let error = manager.access_token().await.unwrap_err();
    assert!(error.is_reauth_required(), "{error}");
    assert!(
        matches!(
            error.cause().map(|e| &**e),
            Some(Error::LoginRequired { .. })
        ),
        "{error:?}"
    );
    assert!(
        idp.token_requests.lock().unwrap().is_empty(),
        "nothing sent"
    );
    assert!(
        manager
            .access_token()
            .await
            .unwrap_err()
            .is_reauth_required()
    );
}
