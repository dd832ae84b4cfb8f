//! The device access token flow against a mocked provider.

use std::sync::Arc;

use mockito::Matcher;
use onesoidc_core::{ConfigError, DeviceConfig, Error, ExposeSecret, KeyType, PemSigner};
use onesoidc_flows::{DeviceIdentity, OnesIdClient};
use onesoidc_http::ReqwestClient;

fn client_for(host: &str, key_type: KeyType) -> OnesIdClient {
    let yaml = format!(
        "id: dev-1\nclient_id: client-1\nhost: {host}\nkey_type: {key_type}\nkey_security: default\n"
    );
    let config = DeviceConfig::from_yaml_str(&yaml, "device.yml".as_ref()).unwrap();
    let identity =
        DeviceIdentity::from_parts(config, Arc::new(PemSigner::generate(key_type).unwrap()));
    OnesIdClient::new(identity, ReqwestClient::new().unwrap()).unwrap()
}

fn discovery_doc(base: &str) -> String {
    serde_json::json!({
        "issuer": format!("{base}/oidc"),
        "token_endpoint": format!("{base}/oidc/token"),
        "jwks_uri": format!("{base}/oidc/jwks"),
    })
    .to_string()
}

#[tokio::test]
async fn discovers_then_gets_a_token_with_a_fresh_assertion_each_time() {
    let mut server = mockito::Server::new_async().await;
    let base = server.url();
    let discovery = server
        .mock("GET", "/oidc/.well-known/openid-configuration")
        .with_body(discovery_doc(&base))
        .expect(1)
        .create_async()
        .await;
    let token = server
        .mock("POST", "/oidc/token")
        .match_body(Matcher::AllOf(vec![
            Matcher::UrlEncoded("grant_type".into(), "client_credentials".into()),
            Matcher::UrlEncoded("client_id".into(), "client-1".into()),
            Matcher::UrlEncoded(
                "client_assertion_type".into(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ),
            Matcher::Regex("client_assertion=ey".into()),
        ]))
        .with_body(r#"{"access_token":"device-at","token_type":"Bearer","expires_in":300}"#)
        .expect(2)
        .create_async()
        .await;
    let client = client_for(&base, KeyType::EccP256);
    for _ in 0..2 {
        let tokens = client.device_token().await.unwrap();
        assert_eq!(tokens.access_token.expose_secret(), "device-at");
        assert!(tokens.expires_at.is_some());
    }
    discovery.assert_async().await;
    token.assert_async().await;
}

#[tokio::test]
async fn assertion_audience_is_the_token_endpoint() {
    let mut server = mockito::Server::new_async().await;
    let base = server.url();
    server
        .mock("GET", "/oidc/.well-known/openid-configuration")
        .with_status(404)
        .create_async()
        .await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    server
        .mock("POST", "/oidc/token")
        .with_body_from_request(move |req| {
            let body = req.body().unwrap().clone();
            let fields: Vec<(String, String)> =
                url::form_urlencoded::parse(&body).into_owned().collect();
            let assertion = fields
                .iter()
                .find(|(k, _)| k == "client_assertion")
                .unwrap()
                .1
                .clone();
            seen2.lock().unwrap().push(assertion);
            br#"{"access_token":"a","token_type":"Bearer"}"#.to_vec()
        })
        .expect(2)
        .create_async()
        .await;
    let client = client_for(&base, KeyType::Rsa2048);
    client.device_token().await.unwrap();
    client.device_token().await.unwrap();
    let seen = seen.lock().unwrap();
    let claims: Vec<serde_json::Value> = seen
        .iter()
        .map(|a| jsonwebtoken::dangerous::insecure_decode_claims(a).unwrap())
        .collect();
    assert_eq!(
        claims[0]["aud"],
        format!("{base}/oidc/token"),
        "404 discovery falls back to {{issuer}}/token"
    );
    assert_ne!(
        claims[0]["jti"], claims[1]["jti"],
        "a new assertion for every request"
    );
}

#[tokio::test]
async fn provider_errors_name_endpoint_status_and_code() {
    let mut server = mockito::Server::new_async().await;
    let base = server.url();
    server
        .mock("GET", "/oidc/.well-known/openid-configuration")
        .with_body(discovery_doc(&base))
        .create_async()
        .await;
    server
        .mock("POST", "/oidc/token")
        .with_status(401)
        .with_body(r#"{"error":"invalid_client","error_description":"unknown key"}"#)
        .create_async()
        .await;
    let err = client_for(&base, KeyType::EccP384)
        .device_token()
        .await
        .unwrap_err();
    assert_eq!(err.oauth_error(), Some("invalid_client"));
    assert_eq!(err.http_status(), Some(401));
    let message = err.to_string();
    assert!(
        message.contains(&format!("{base}/oidc/token")) && message.contains("unknown key"),
        "{message}"
    );
}

#[tokio::test]
async fn issuer_mismatch_stops_before_any_token_request() {
    let mut server = mockito::Server::new_async().await;
    let base = server.url();
    let doc =
        discovery_doc(&base).replace(&format!("{base}/oidc\""), "https://evil.example/oidc\"");
    server
        .mock("GET", "/oidc/.well-known/openid-configuration")
        .with_body(doc)
        .create_async()
        .await;
    let token = server
        .mock("POST", "/oidc/token")
        .expect(0)
        .create_async()
        .await;
    let err = client_for(&base, KeyType::EccP521)
        .device_token()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::IssuerMismatch { .. }), "{err}");
    token.assert_async().await;
}

#[tokio::test]
async fn unreachable_provider_is_a_transport_error_naming_the_endpoint() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = client_for(&format!("http://{addr}"), KeyType::EccP256)
        .device_token()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "http://{addr}/oidc/.well-known/openid-configuration"
        )),
        "{err}"
    );
}

#[test]
fn unmanaged_identity_is_refused_with_advice() {
    let yaml =
        "id: dev-1\nclient_id: null\nhost: null\nkey_type: ECC:p256\nkey_security: default\n";
    let config = DeviceConfig::from_yaml_str(yaml, "device.yml".as_ref()).unwrap();
    let identity = DeviceIdentity::from_parts(
        config,
        Arc::new(PemSigner::generate(KeyType::EccP256).unwrap()),
    );
    let err = OnesIdClient::new(identity, ReqwestClient::new().unwrap()).unwrap_err();
    assert!(matches!(
        err,
        Error::Config(ConfigError::NotRegistered { .. })
    ));
    assert!(err.to_string().contains("onesoidc register"));
}

#[tokio::test]
async fn refresh_keeps_or_rotates_the_refresh_token() {
    use onesoidc_core::{SecretString, TokenSet};
    let mut server = mockito::Server::new_async().await;
    let base = server.url();
    server
        .mock("GET", "/oidc/.well-known/openid-configuration")
        .with_status(404)
        .create_async()
        .await;
    server
        .mock("POST", "/oidc/token")
        .match_body(Matcher::AllOf(vec![
            Matcher::UrlEncoded("grant_type".into(), "refresh_token".into()),
            Matcher::UrlEncoded("refresh_token".into(), "rt-1".into()),
        ]))
        .with_body(r#"{"access_token":"at-2","token_type":"Bearer","expires_in":60}"#)
        .create_async()
        .await;
    server
        .mock("POST", "/oidc/token")
        .match_body(Matcher::UrlEncoded("refresh_token".into(), "rt-2".into()))
        .with_body(r#"{"access_token":"at-3","token_type":"Bearer","refresh_token":"rt-3"}"#)
        .create_async()
        .await;
    server
        .mock("POST", "/oidc/token")
        .match_body(Matcher::UrlEncoded("refresh_token".into(), "rt-old".into()))
        .with_status(400)
        .with_body(r#"{"error":"invalid_grant"}"#)
        .create_async()
        .await;
    let client = client_for(&base, KeyType::EccP256);
    let tokens = |rt: &str| TokenSet {
        access_token: SecretString::from("at-1"),
        token_type: "Bearer".into(),
        expires_at: None,
        refresh_token: Some(SecretString::from(rt)),
        id_token: None,
        scope: None,
        dpop_jkt: None,
    };
    let kept = client.refresh(&tokens("rt-1")).await.unwrap();
    assert_eq!(kept.access_token.expose_secret(), "at-2");
    assert_eq!(
        kept.refresh_token.unwrap().expose_secret(),
        "rt-1",
        "no new refresh token: the old one stays"
    );
    let rotated = client.refresh(&tokens("rt-2")).await.unwrap();
    assert_eq!(
        rotated.refresh_token.unwrap().expose_secret(),
        "rt-3",
        "a new refresh token replaces the old one"
    );
    let err = client.refresh(&tokens("rt-old")).await.unwrap_err();
    assert_eq!(err.oauth_error(), Some("invalid_grant"));
    let mut none = tokens("x");
    none.refresh_token = None;
    let missing = client.refresh(&none).await.unwrap_err();
    assert!(
        matches!(missing, Error::LoginRequired { .. }),
        "{missing:?}"
    );
    assert!(missing.to_string().contains("log the user in again"));
}

/// A signer that waits (as a TPM behind px-device-identity does) until
/// `expected` signatures are being made at once, or a second has passed;
/// it records the most it saw at once.
#[derive(Debug)]
struct WaitingSigner {
    key: Arc<dyn onesoidc_core::Signer>,
    expected: usize,
    inside: std::sync::Mutex<(usize, usize)>,
    changed: std::sync::Condvar,
}

impl onesoidc_core::Signer for WaitingSigner {
    fn algorithm(&self) -> onesoidc_core::JwsAlgorithm {
        self.key.algorithm()
    }

    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, onesoidc_core::SignError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        let mut state = self.inside.lock().unwrap();
        state.0 += 1;
        state.1 = state.1.max(state.0);
        self.changed.notify_all();
        while state.1 < self.expected {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            state = self.changed.wait_timeout(state, left).unwrap().0;
        }
        state.0 -= 1;
        drop(state);
        self.key.sign(input)
    }

    fn blocks(&self) -> bool {
        true
    }
}

/// A signer that blocks runs on tokio's blocking pool: on a current-thread
/// runtime, ten device-token calls sign at the same time instead of one
/// after the other on the only worker.
#[tokio::test(flavor = "current_thread")]
async fn a_blocking_signer_does_not_block_the_runtime() {
    let idp = onesoidc_devidp::DevIdp::start(Default::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp.provision_device(dir.path(), KeyType::EccP256).unwrap();
    let loaded = DeviceIdentity::load(&paths).unwrap();
    let signer = Arc::new(WaitingSigner {
        key: loaded.signer.clone(),
        expected: 10,
        inside: Default::default(),
        changed: Default::default(),
    });
    let identity = DeviceIdentity::from_parts(loaded.config.clone(), signer.clone());
    let client = OnesIdClient::new(identity, idp.in_process_client()).unwrap();
    client.provider_metadata().await.unwrap();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let client = client.clone();
        calls.spawn(async move { client.device_token().await });
    }
    while let Some(result) = calls.join_next().await {
        result.unwrap().unwrap();
    }
    assert_eq!(
        signer.inside.lock().unwrap().1,
        10,
        "all ten signed at once, off the runtime's only thread"
    );
}
