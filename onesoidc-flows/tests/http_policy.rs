//! The HTTP policy (PROTOCOL §11) holds whatever backend the client is
//! given: deliberately bad custom backends (one that follows redirects, one
//! that returns 2 MiB, one that sends anything anywhere, one that never
//! answers) are each refused by the flows.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use onesoidc_core::{DeviceConfig, Error, KeyType, PemSigner, TransportErrorKind};
use onesoidc_flows::http_client::{
    BoxFuture, HttpClient, HttpRequest, HttpResponse, ReqwestClient, ResponseUri, TransportError,
};
use onesoidc_flows::{DeviceIdentity, OnesIdClient};

fn identity(host: &str) -> DeviceIdentity {
    let yaml = format!(
        "id: dev-1\nclient_id: client-1\nhost: {host}\nkey_type: ECC:p256\nkey_security: default\n"
    );
    let config = DeviceConfig::from_yaml_str(&yaml, "device.yml".as_ref()).unwrap();
    DeviceIdentity::from_parts(
        config,
        Arc::new(PemSigner::generate(KeyType::EccP256).unwrap()),
    )
}

#[track_caller]
fn transport_kind(error: &Error) -> TransportErrorKind {
    match error {
        Error::Transport { source, .. } => source.kind,
        other => panic!("expected a transport error, got {other}"),
    }
}

/// Answers every request with what `answer` returns, counting the calls.
struct Scripted<F> {
    answer: F,
    calls: Arc<AtomicUsize>,
}

impl<F> HttpClient for Scripted<F>
where
    F: Fn(&HttpRequest) -> HttpResponse + Send + Sync,
{
    fn execute(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let response = (self.answer)(&request);
        Box::pin(async move { Ok(response) })
    }
}

fn scripted<F>(answer: F) -> (Scripted<F>, Arc<AtomicUsize>)
where
    F: Fn(&HttpRequest) -> HttpResponse + Send + Sync,
{
    let calls = Arc::new(AtomicUsize::new(0));
    (
        Scripted {
            answer,
            calls: calls.clone(),
        },
        calls,
    )
}

fn not_found() -> HttpResponse {
    http::Response::builder()
        .status(404)
        .body(Vec::new())
        .unwrap()
}

/// A backend that follows redirects itself, as a misconfigured client
/// would, and honestly reports where its answer came from.
struct Following(reqwest::Client);

impl HttpClient for Following {
    fn execute(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).unwrap();
            let response = self.0.execute(request).await.unwrap();
            let from: http::Uri = response.url().as_str().parse().unwrap();
            let status = response.status();
            let body = response.bytes().await.unwrap().to_vec();
            Ok(http::Response::builder()
                .status(status)
                .extension(ResponseUri(from))
                .body(body)
                .unwrap())
        })
    }
}

/// A provider whose token endpoint redirects to a page that answers with
/// a token: following it would hand the client assertion to another URL.
async fn redirecting_provider() -> mockito::ServerGuard {
    let mut server = mockito::Server::new_async().await;
    server
        .mock("GET", "/oidc/.well-known/openid-configuration")
        .with_status(404)
        .create_async()
        .await;
    server
        .mock("POST", "/oidc/token")
        .with_status(307)
        .with_header("location", "/elsewhere?code=secret")
        .create_async()
        .await;
    server
        .mock("POST", "/elsewhere")
        .match_query(mockito::Matcher::Any)
        .with_body(r#"{"access_token":"stolen","token_type":"Bearer","expires_in":300}"#)
        .create_async()
        .await;
    server
}

#[tokio::test]
async fn a_backend_that_follows_redirects_is_refused() {
    let server = redirecting_provider().await;
    let following = reqwest::Client::builder().build().unwrap();
    let client = OnesIdClient::new(identity(&server.url()), Following(following)).unwrap();
    let err = client.device_token().await.unwrap_err();
    assert_eq!(transport_kind(&err), TransportErrorKind::Redirect, "{err}");
    assert!(err.to_string().contains("/elsewhere"), "{err}");
    assert!(!err.to_string().contains("secret"), "{err}");

    // The reqwest backend wrapping a user's client that follows redirects
    // refuses too, and so does the default one (which never follows).
    let configured = ReqwestClient::from_client(reqwest::Client::builder().build().unwrap());
    let client = OnesIdClient::new(identity(&server.url()), configured).unwrap();
    let err = client.device_token().await.unwrap_err();
    assert_eq!(transport_kind(&err), TransportErrorKind::Redirect, "{err}");
    let client = OnesIdClient::new(identity(&server.url()), ReqwestClient::new().unwrap()).unwrap();
    let err = client.device_token().await.unwrap_err();
    assert_eq!(transport_kind(&err), TransportErrorKind::Redirect, "{err}");
    assert!(err.to_string().contains("HTTP 307"), "{err}");
}

#[tokio::test]
async fn a_backend_that_returns_two_mebibytes_is_refused() {
    let (backend, calls) = scripted(|request| {
        if request.uri().path().ends_with("openid-configuration") {
            return not_found();
        }
        let mut body =
            br#"{"access_token":"x","token_type":"Bearer","expires_in":300,"pad":""#.to_vec();
        body.resize(2 * 1024 * 1024, b'a');
        body.extend_from_slice(b"\"}");
        http::Response::builder().status(200).body(body).unwrap()
    });
    let client = OnesIdClient::new(identity("https://idp.example.com"), backend).unwrap();
    let err = client.device_token().await.unwrap_err();
    assert_eq!(
        transport_kind(&err),
        TransportErrorKind::BodyTooLarge,
        "{err}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "discovery, then the token request"
    );
}

#[tokio::test]
async fn plain_http_to_a_remote_host_is_never_sent() {
    let answer = |request: &HttpRequest| {
        if request.uri().path().ends_with("openid-configuration") {
            return not_found();
        }
        http::Response::builder()
            .status(200)
            .body(br#"{"access_token":"x","token_type":"Bearer","expires_in":300}"#.to_vec())
            .unwrap()
    };
    let (backend, calls) = scripted(answer);
    let client = OnesIdClient::new(identity("http://idp.example.com"), backend).unwrap();
    let err = client.device_token().await.unwrap_err();
    assert_eq!(
        transport_kind(&err),
        TransportErrorKind::InsecureUrl,
        "{err}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "nothing reached the backend"
    );

    // With the explicit opt-in (closed test networks only) it is sent.
    let (backend, calls) = scripted(answer);
    let client = OnesIdClient::builder()
        .identity(identity("http://idp.example.com"))
        .http(backend)
        .allow_insecure_http(true)
        .build()
        .unwrap();
    client.device_token().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// Never answers.
struct Silent;

impl HttpClient for Silent {
    fn execute(&self, _: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test(start_paused = true)]
async fn a_backend_that_never_answers_times_out_after_thirty_seconds() {
    let client = OnesIdClient::new(identity("https://idp.example.com"), Silent).unwrap();
    let began = tokio::time::Instant::now();
    let err = client.device_token().await.unwrap_err();
    assert_eq!(transport_kind(&err), TransportErrorKind::Timeout, "{err}");
    assert_eq!(
        began.elapsed(),
        Duration::from_secs(30),
        "the default timeout"
    );
    assert!(
        err.to_string()
            .contains("/.well-known/openid-configuration"),
        "{err}"
    );
}

fn json(body: serde_json::Value) -> HttpResponse {
    http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(body.to_string().into_bytes())
        .unwrap()
}

/// A discovery document naming a plain-http endpoint on another host is
/// refused, naming the field; nothing is sent to it.
#[tokio::test]
async fn discovery_endpoints_must_be_https() {
    for field in [
        "token_endpoint",
        "backchannel_authentication_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "jwks_uri",
    ] {
        let (http, calls) = scripted(move |request| {
            let mut doc = serde_json::json!({
                "issuer": "https://idp.example.com/oidc",
                "token_endpoint": "https://idp.example.com/oidc/token",
                "backchannel_authentication_endpoint": "https://idp.example.com/oidc/backchannel",
                "introspection_endpoint": "https://idp.example.com/oidc/token/introspection",
                "revocation_endpoint": "https://idp.example.com/oidc/token/revocation",
                "jwks_uri": "https://idp.example.com/oidc/jwks",
            });
            assert!(
                request.uri().path().ends_with("openid-configuration"),
                "{field}: only discovery is asked: {}",
                request.uri()
            );
            doc[field] = "http://evil.example.net/steal".into();
            json(doc)
        });
        let client = OnesIdClient::new(identity("https://idp.example.com"), http).unwrap();
        let err = client.device_token().await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidResponse { .. }),
            "{field}: {err}"
        );
        assert!(err.to_string().contains(field), "{field}: {err}");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{field}");
    }
}

/// What `OnesIdClient::usable` refuses: inactive, expired, another
/// issuer's or another client's token; it accepts an active token of ours
/// whose answer omits the optional fields.
#[tokio::test]
async fn an_introspection_answer_is_usable_only_for_an_active_token_of_ours() {
    let (http, _) = scripted(|_| not_found());
    let client = OnesIdClient::new(identity("https://idp.example.com"), http).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let answer = |value: serde_json::Value| -> onesoidc_core::Introspection {
        let endpoint = "https://idp.example.com/oidc/token/introspection".into();
        onesoidc_core::parse_introspection_response(&endpoint, &json(value)).unwrap()
    };
    let cases = [
        (serde_json::json!({"active": false}), Some("not active")),
        (
            serde_json::json!({"active": true, "exp": now - 1}),
            Some("expired"),
        ),
        (
            serde_json::json!({"active": true, "iss": "https://other.example.com/oidc"}),
            Some("issued by"),
        ),
        (
            serde_json::json!({"active": true, "client_id": "someone-else"}),
            Some("issued to client"),
        ),
        (
            serde_json::json!({"active": true, "exp": now + 300, "iss": "https://idp.example.com/oidc", "client_id": "client-1"}),
            None,
        ),
        (serde_json::json!({"active": true}), None),
    ];
    for (value, refused) in cases {
        let result = client.usable(&answer(value.clone())).await;
        match refused {
            None => assert!(result.is_ok(), "{value}: {result:?}"),
            Some(reason) => {
                let err = result.unwrap_err();
                assert!(
                    matches!(err, Error::TokenNotUsable { .. }),
                    "{value}: {err}"
                );
                assert!(err.to_string().contains(reason), "{value}: {err}");
            }
        }
    }
}
