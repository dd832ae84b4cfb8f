//! Every number a provider sends (`expires_in`, `interval` of the CIBA, QR
//! and token responses) given as u64::MAX, 0, negative, fractional, huge,
//! a string or a wrong type: the flows end, with tokens or a typed error,
//! within the capped deadline (never a panic, never an endless wait).
//! A scripted provider on tokio's paused clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use onesoidc_core::{DeviceConfig, Error, KeyType, MAX_LOGIN_EXPIRES_IN, PemSigner};
use onesoidc_flows::http_client::{
    BoxFuture, HttpClient, HttpRequest, HttpResponse, TransportError,
};
use onesoidc_flows::{CibaRequest, DeviceIdentity, OnesIdClient};
use serde_json::{Value, json};

const VALUES: [&str; 10] = [
    "18446744073709551615",
    "0",
    "-1",
    "-1e300",
    "1.5",
    "1e300",
    "\"7\"",
    "\"soon\"",
    "null",
    "[5]",
];

/// Answers with `bodies[path]`, pending once on the token endpoint's CIBA grant.
struct Scripted {
    bodies: Mutex<Vec<(&'static str, Value)>>,
}

impl HttpClient for Scripted {
    fn execute(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        let path = request.uri().path().to_string();
        let ciba_poll = String::from_utf8_lossy(request.body()).contains("grant-type%3Aciba");
        let body = self
            .bodies
            .lock()
            .unwrap()
            .iter()
            .find(|(p, _)| path.starts_with(p))
            .map(|(_, b)| b.clone());
        Box::pin(async move {
            let (status, body) = match body {
                Some(body)
                    if !(ciba_poll && path == "/oidc/token" && body.get("pending").is_some()) =>
                {
                    (200, body)
                }
                Some(_) => (400, json!({"error": "authorization_pending"})),
                None => (404, json!({})),
            };
            Ok(http::Response::builder()
                .status(status)
                .body(body.to_string().into_bytes())
                .unwrap())
        })
    }
}

fn client(bodies: Vec<(&'static str, Value)>) -> OnesIdClient {
    let yaml =
        "id: d\nclient_id: c\nhost: https://idp.test\nkey_type: ECC:p256\nkey_security: default\n";
    let config = DeviceConfig::from_yaml_str(yaml, "device.yml".as_ref()).unwrap();
    let identity = DeviceIdentity::from_parts(
        config,
        Arc::new(PemSigner::generate(KeyType::EccP256).unwrap()),
    );
    OnesIdClient::new(
        identity,
        Scripted {
            bodies: Mutex::new(bodies),
        },
    )
    .unwrap()
}

fn with(mut object: Value, field: &str, raw: &str) -> Value {
    object[field] = serde_json::from_str(raw).unwrap();
    object
}

/// The login ends within the longest wait the caps allow.
async fn ends<T>(what: &str, flow: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(MAX_LOGIN_EXPIRES_IN + Duration::from_secs(120), flow)
        .await
        .unwrap_or_else(|_| panic!("{what} did not end"))
}

#[tokio::test(start_paused = true)]
async fn ciba_numbers() {
    let started = json!({"auth_req_id": "r1", "expires_in": 120, "interval": 1});
    let tokens =
        json!({"access_token": "at", "token_type": "Bearer", "expires_in": 300, "pending": true});
    for field in ["expires_in", "interval"] {
        for raw in VALUES {
            let c = client(vec![
                ("/oidc/backchannel", with(started.clone(), field, raw)),
                ("/oidc/token", tokens.clone()),
            ]);
            let what = format!("backchannel {field} = {raw}");
            // The token has no ID token: a finished login is an error too.
            let result = ends(&what, c.ciba(&CibaRequest::for_username("alice"))).await;
            let err = result.expect_err("no ID token, or a refused number");
            assert!(!err.to_string().is_empty(), "{what}");
        }
    }
    for raw in VALUES {
        let c = client(vec![
            ("/oidc/backchannel", started.clone()),
            ("/oidc/token", with(tokens.clone(), "expires_in", raw)),
        ]);
        let what = format!("token expires_in = {raw}");
        let _ = ends(&what, c.ciba(&CibaRequest::for_username("alice"))).await;
        let _ = ends(&what, c.device_token()).await;
    }
}

#[tokio::test(start_paused = true)]
async fn qr_numbers() {
    let device = json!({"access_token": "device", "token_type": "Bearer", "expires_in": 300});
    let session = json!({"session_id": "s1", "cb_url": "https://idp.test/oidc/qr/sessions/s1/scan", "expires_in": 300, "interval": 1});
    for field in ["expires_in", "interval"] {
        for raw in VALUES {
            let c = client(vec![
                ("/oidc/token", device.clone()),
                (
                    "/oidc/qr/sessions/s1",
                    json!({"session_id": "s1", "status": "pending"}),
                ),
                ("/oidc/qr/sessions", with(session.clone(), field, raw)),
            ]);
            let what = format!("QR session {field} = {raw}");
            let result = ends(&what, c.qr_login(&CibaRequest::new(), |_| {})).await;
            assert!(
                matches!(
                    result,
                    Err(Error::Expired { .. } | Error::InvalidResponse { .. })
                ),
                "{what}: nobody scans, so it expires (or the value is refused): {result:?}"
            );
        }
    }
}
