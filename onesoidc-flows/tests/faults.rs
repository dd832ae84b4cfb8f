//! The flows against the local provider behind a fault-injecting proxy,
//! through the real [`ReqwestClient`]: every fault ends in its own typed
//! [`Error`], never a panic, and never later than the configured timeout.
//!
//! Real sockets and a real clock: the margins on elapsed times are generous.

use std::time::{Duration, Instant, SystemTime};

use onesoidc_core::{
    CibaPollResponse, Error, ExposeSecret, KeyType, MAX_EXPIRES_IN, TransportErrorKind,
};
use onesoidc_devidp::faults::{Fault, FaultProxy, start_behind_proxy};
use onesoidc_devidp::{DevIdp, DevIdpConfig};
use onesoidc_flows::{CibaRequest, DeviceIdentity, OnesIdClient};
use onesoidc_http::ReqwestClient;
use serde_json::json;

/// The HTTP client's whole-request timeout in these tests.
const TIMEOUT: Duration = Duration::from_millis(800);
/// Slack for a loaded machine on top of [`TIMEOUT`].
const MARGIN: Duration = Duration::from_secs(3);
const TOKEN_PATH: &str = "/oidc/token";

struct World {
    idp: DevIdp,
    proxy: FaultProxy,
    client: OnesIdClient,
    _dir: tempfile::TempDir,
}

impl World {
    fn token_endpoint(&self) -> String {
        self.idp.token_endpoint()
    }
}

/// A provider behind a proxy, and a device whose `host` is the proxy,
/// talking through a `ReqwestClient` with a short timeout. Discovery has
/// already run (so faults hit the endpoint under test), unless `discover`
/// is false.
async fn world_with(config: DevIdpConfig, discover: bool) -> World {
    let (idp, proxy) = start_behind_proxy(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp.provision_device(dir.path(), KeyType::EccP256).unwrap();
    let identity = DeviceIdentity::load(&paths).unwrap();
    assert_eq!(identity.config.host.as_deref(), Some(proxy.host().as_str()));
    let http = ReqwestClient::builder()
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    let client = OnesIdClient::new(identity, http).unwrap();
    if discover {
        client.provider_metadata().await.unwrap();
    }
    World {
        idp,
        proxy,
        client,
        _dir: dir,
    }
}

async fn world() -> World {
    world_with(DevIdpConfig::default(), true).await
}

/// Runs `f`, asserting it ends within the timeout plus the margin.
async fn timed<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    let began = Instant::now();
    let out = tokio::time::timeout(TIMEOUT + MARGIN, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: still running after {:?}", TIMEOUT + MARGIN));
    let took = began.elapsed();
    assert!(took < TIMEOUT + MARGIN, "{what}: took {took:?}");
    out
}

fn transport_kind(err: &Error) -> Option<TransportErrorKind> {
    match err {
        Error::Transport { source, .. } => Some(source.kind),
        _ => None,
    }
}

#[track_caller]
fn assert_transport(err: &Error, kind: TransportErrorKind, endpoint: &str) {
    match err {
        Error::Transport {
            endpoint: e,
            source,
        } => {
            assert_eq!(source.kind, kind, "{err}");
            assert_eq!(e, endpoint, "{err}");
        }
        other => panic!("expected a {kind:?} transport error, got {other:?}"),
    }
}

#[track_caller]
fn assert_invalid_response(err: &Error, endpoint: &str, needle: &str) {
    match err {
        Error::InvalidResponse {
            endpoint: e,
            status,
            reason,
            ..
        } => {
            assert_eq!(e, endpoint);
            assert_eq!(*status, 200);
            assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
        }
        other => panic!("expected InvalidResponse, got {other:?}"),
    }
}

#[tokio::test]
async fn provider_down_is_a_connect_error_then_it_recovers() {
    let w = world().await;
    w.proxy.set(Fault::Down).await;
    let err = timed("device_token", w.client.device_token())
        .await
        .unwrap_err();
    assert_transport(&err, TransportErrorKind::Connect, &w.token_endpoint());
    assert!(err.to_string().contains(&w.token_endpoint()), "{err}");
    assert_eq!(w.idp.stats().token_requests.client_credentials, 0);

    w.proxy.set(Fault::Forward).await;
    let tokens = timed("device_token", w.client.device_token())
        .await
        .unwrap();
    assert!(!tokens.access_token.expose_secret().is_empty());
    assert_eq!(w.idp.stats().token_requests.client_credentials, 1);
}

#[tokio::test]
async fn discovery_that_failed_is_retried_once_the_provider_is_back() {
    let w = world_with(DevIdpConfig::default(), false).await;
    w.proxy.set(Fault::bad_gateway()).await;
    let err = timed("device_token", w.client.device_token())
        .await
        .unwrap_err();
    match &err {
        Error::HttpStatus {
            endpoint, status, ..
        } => {
            assert_eq!(*status, 502);
            assert!(endpoint.ends_with("/.well-known/openid-configuration"));
        }
        other => panic!("{other:?}"),
    }
    w.proxy.set(Fault::Forward).await;
    timed("device_token", w.client.device_token())
        .await
        .unwrap();
}

#[tokio::test]
async fn server_errors_with_html_bodies_name_type_and_length_but_never_quote_the_body() {
    let w = world().await;
    let device = w.client.device_token().await.unwrap();
    let introspection = w.idp.introspection_endpoint();
    for code in [500, 502, 503] {
        w.proxy.set(Fault::html(code, "Server Error")).await;
        let errors = [
            (
                w.token_endpoint(),
                timed("device_token", w.client.device_token())
                    .await
                    .unwrap_err(),
            ),
            (
                w.token_endpoint(),
                timed("ciba_poll", w.client.ciba_poll(&"some-auth-req-id".into()))
                    .await
                    .unwrap_err(),
            ),
            (
                introspection.clone(),
                timed(
                    "introspect",
                    w.client.introspect(&device.access_token, None),
                )
                .await
                .unwrap_err(),
            ),
        ];
        for (endpoint, err) in errors {
            match &err {
                Error::HttpStatus {
                    endpoint: e,
                    status,
                    body,
                    content_type,
                    length,
                    ..
                } => {
                    assert_eq!(e, &endpoint);
                    assert_eq!(*status, code);
                    assert_eq!(body, &None, "never quoted: it may echo what was sent");
                    assert!(
                        content_type
                            .as_deref()
                            .is_some_and(|t| t.starts_with("text/html")),
                        "{content_type:?}"
                    );
                    assert!(*length > 200, "{length}");
                }
                other => panic!("HTTP {code}: {other:?}"),
            }
            let message = err.to_string();
            assert!(message.contains("try again later"), "{message}");
            assert!(
                message.contains("text/html") && message.contains("bytes"),
                "{message}"
            );
            assert!(!message.contains("<html>"), "{message}");
            assert!(!message.contains(device.access_token.expose_secret()));
        }
    }
}

#[tokio::test]
async fn a_slow_answer_within_the_timeout_is_fine() {
    let w = world().await;
    let delay = TIMEOUT / 4;
    w.proxy.set(Fault::Slow { delay }).await;
    let began = Instant::now();
    let tokens = timed("device_token", w.client.device_token())
        .await
        .unwrap();
    assert!(began.elapsed() >= delay);
    assert!(tokens.expires_at.is_some());
}

#[tokio::test]
async fn a_provider_that_never_answers_times_out_at_the_configured_timeout() {
    let w = world().await;
    w.proxy
        .set(Fault::Slow {
            delay: Duration::from_secs(60),
        })
        .await;
    let began = Instant::now();
    let err = timed("device_token", w.client.device_token())
        .await
        .unwrap_err();
    assert_transport(&err, TransportErrorKind::Timeout, &w.token_endpoint());
    assert!(began.elapsed() >= TIMEOUT, "not before the timeout");
    // The request never reached the provider: the proxy saw the client leave.
    assert_eq!(w.idp.stats().token_requests.client_credentials, 0);
}

#[tokio::test]
async fn a_body_that_stops_arriving_times_out_at_the_configured_timeout() {
    let w = world().await;
    w.proxy.set(Fault::StallBody).await;
    let began = Instant::now();
    let err = timed("device_token", w.client.device_token())
        .await
        .unwrap_err();
    assert_transport(&err, TransportErrorKind::Timeout, &w.token_endpoint());
    assert!(began.elapsed() >= TIMEOUT);
}

#[tokio::test]
async fn a_connection_closed_without_an_answer_is_a_transport_error() {
    let w = world().await;
    w.proxy.set(Fault::Hangup).await;
    let err = timed("device_token", w.client.device_token())
        .await
        .unwrap_err();
    assert_transport(&err, TransportErrorKind::Other, &w.token_endpoint());
}

#[tokio::test]
async fn a_truncated_body_is_a_transport_error_not_a_parse_error() {
    let w = world().await;
    w.proxy.set(Fault::Truncated).await;
    let err = timed("device_token", w.client.device_token())
        .await
        .unwrap_err();
    assert_transport(&err, TransportErrorKind::Other, &w.token_endpoint());
    let err = timed("ciba_poll", w.client.ciba_poll(&"id".into()))
        .await
        .unwrap_err();
    assert_transport(&err, TransportErrorKind::Other, &w.token_endpoint());
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_refused_with_or_without_a_length() {
    let w = world().await;
    let device = w.client.device_token().await.unwrap();
    for fault in [Fault::Oversized, Fault::OversizedChunked] {
        w.proxy.set(fault.clone()).await;
        let err = timed("device_token", w.client.device_token())
            .await
            .unwrap_err();
        assert_transport(&err, TransportErrorKind::BodyTooLarge, &w.token_endpoint());
        let err = timed(
            "introspect",
            w.client.introspect(&device.access_token, None),
        )
        .await
        .unwrap_err();
        assert_transport(
            &err,
            TransportErrorKind::BodyTooLarge,
            &w.idp.introspection_endpoint(),
        );
    }
}

#[tokio::test]
async fn invalid_json_and_wrong_shapes_are_invalid_response() {
    let w = world().await;
    let endpoint = w.token_endpoint();
    let cases: [(&[u8], &str); 6] = [
        (b"{\"access_token\": \"at\", ", "ends early"),
        (b"", "empty body"),
        (b"[]", "the body is JSON a list, expected an object"),
        (b"{\"token_type\": \"Bearer\"}", "`access_token` is missing"),
        (
            b"{\"access_token\": 42, \"token_type\": \"Bearer\"}",
            "`access_token` is a number, expected a string",
        ),
        (
            b"<html><body>Welcome to nginx!</body></html>",
            "syntax error at line 1, column 1",
        ),
    ];
    for (body, needle) in cases {
        w.proxy
            .set_for(
                TOKEN_PATH,
                Fault::Body {
                    status: 200,
                    content_type: "application/json".into(),
                    body: body.to_vec(),
                },
            )
            .await;
        let err = timed("device_token", w.client.device_token())
            .await
            .unwrap_err();
        assert_invalid_response(&err, &endpoint, needle);
        let err = timed("ciba_poll", w.client.ciba_poll(&"id".into()))
            .await
            .unwrap_err();
        assert_invalid_response(&err, &endpoint, needle);
    }
    // An introspection answer without `active` is not one.
    w.proxy.set(Fault::json(&json!({"sub": "someone"}))).await;
    let err = timed("introspect", w.client.introspect(&"token".into(), None))
        .await
        .unwrap_err();
    assert_invalid_response(&err, &w.idp.introspection_endpoint(), "active");
}

#[tokio::test]
async fn the_content_type_does_not_matter_the_body_does() {
    // Decision: the body is judged, not the label. A token response served
    // as text/html is still a token response; an HTML page labelled JSON is
    // still an InvalidResponse (previous test); an OAuth error served as
    // text/plain is still that OAuth error.
    let w = world().await;
    w.proxy
        .set_for(
            TOKEN_PATH,
            Fault::Body {
                status: 200,
                content_type: "text/html".into(),
                body: br#"{"access_token":"at-1","token_type":"Bearer","expires_in":60}"#.to_vec(),
            },
        )
        .await;
    let tokens = timed("device_token", w.client.device_token())
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "at-1");
    w.proxy
        .set_for(
            TOKEN_PATH,
            Fault::Body {
                status: 400,
                content_type: "text/plain".into(),
                body: br#"{"error":"invalid_client","error_description":"nope"}"#.to_vec(),
            },
        )
        .await;
    let err = timed("device_token", w.client.device_token())
        .await
        .unwrap_err();
    assert_eq!(err.oauth_error(), Some("invalid_client"), "{err}");
    assert_eq!(err.http_status(), Some(400));
}

#[tokio::test]
async fn expires_in_and_token_type_from_the_wire() {
    let w = world().await;
    let endpoint = w.token_endpoint();
    let answer = |extra: serde_json::Value| {
        let mut body = json!({"access_token": "at", "token_type": "Bearer"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Fault::json(&body)
    };

    // Missing: no expiry known.
    w.proxy.set_for(TOKEN_PATH, answer(json!({}))).await;
    let tokens = w.client.device_token().await.unwrap();
    assert_eq!(tokens.expires_at, None);
    assert!(!tokens.is_expired(SystemTime::now()));

    // Zero: expired on arrival.
    w.proxy
        .set_for(TOKEN_PATH, answer(json!({"expires_in": 0})))
        .await;
    let before = SystemTime::now();
    let tokens = w.client.device_token().await.unwrap();
    let at = tokens.expires_at.unwrap();
    assert!(at >= before && at <= SystemTime::now());
    assert!(tokens.is_expired(SystemTime::now()));

    // Negative: not a lifetime.
    for negative in [json!(-1), json!(-0.5), json!("-30")] {
        w.proxy
            .set_for(TOKEN_PATH, answer(json!({"expires_in": negative})))
            .await;
        let err = w.client.device_token().await.unwrap_err();
        assert_invalid_response(&err, &endpoint, "expires_in");
    }

    // Huge: capped at MAX_EXPIRES_IN, no overflow.
    for huge in [json!(1e300), json!(u64::MAX), json!("99999999999999999999")] {
        w.proxy
            .set_for(TOKEN_PATH, answer(json!({"expires_in": huge})))
            .await;
        let before = SystemTime::now();
        let tokens = w.client.device_token().await.unwrap();
        let at = tokens.expires_at.unwrap();
        assert!(at >= before + MAX_EXPIRES_IN, "{huge}");
        assert!(at <= SystemTime::now() + MAX_EXPIRES_IN, "{huge}");
    }

    // Not a number at all.
    w.proxy
        .set_for(TOKEN_PATH, answer(json!({"expires_in": "soon"})))
        .await;
    let err = w.client.device_token().await.unwrap_err();
    assert_invalid_response(&err, &endpoint, "expires_in");

    // token_type: Bearer in any case is fine; anything else is refused.
    w.proxy
        .set_for(
            TOKEN_PATH,
            Fault::json(&json!({"access_token": "at", "token_type": "bearer", "expires_in": 60})),
        )
        .await;
    assert_eq!(w.client.device_token().await.unwrap().token_type, "Bearer");
    for token_type in ["DPoP", "MAC", "N_A", ""] {
        w.proxy
            .set_for(
                TOKEN_PATH,
                Fault::json(&json!({"access_token": "at", "token_type": token_type})),
            )
            .await;
        let err = w.client.device_token().await.unwrap_err();
        assert_invalid_response(&err, &endpoint, "token_type");
    }
}

#[tokio::test]
async fn ciba_under_faults_ends_in_a_typed_error() {
    let w = world_with(
        DevIdpConfig {
            ciba_interval: Duration::from_secs(1),
            ..DevIdpConfig::default()
        },
        true,
    )
    .await;
    let request = CibaRequest::for_username("alice");
    let started = w.client.ciba_start(&request).await.unwrap();
    let id = started.auth_req_id.clone();
    let endpoint = w.token_endpoint();

    w.proxy.set(Fault::Down).await;
    let err = timed("ciba_poll", w.client.ciba_poll(&id))
        .await
        .unwrap_err();
    assert_transport(&err, TransportErrorKind::Connect, &endpoint);
    w.proxy.set(Fault::bad_gateway()).await;
    let err = timed("ciba_poll", w.client.ciba_poll(&id))
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), Some(502), "{err}");
    w.proxy
        .set(Fault::Slow {
            delay: Duration::from_secs(60),
        })
        .await;
    let err = timed("ciba_poll", w.client.ciba_poll(&id))
        .await
        .unwrap_err();
    assert_eq!(transport_kind(&err), Some(TransportErrorKind::Timeout));

    // The request is still pending at the provider: polls went nowhere.
    w.proxy.set(Fault::Forward).await;
    assert!(matches!(
        w.client.ciba_poll(&id).await.unwrap(),
        CibaPollResponse::Pending { .. } | CibaPollResponse::SlowDown { .. }
    ));

    // A fault during the poll loop ends it with that error, once.
    w.proxy.set(Fault::html(500, "Internal Server Error")).await;
    let polls = w.proxy.requests_to(TOKEN_PATH);
    let err = tokio::time::timeout(started.interval + MARGIN, w.client.ciba_wait(&started))
        .await
        .expect("ciba_wait must end")
        .unwrap_err();
    assert_eq!(err.http_status(), Some(500), "{err}");
    assert_eq!(w.proxy.requests_to(TOKEN_PATH), polls + 1, "one poll");
}

#[tokio::test]
async fn a_token_after_a_fault_is_still_valid_at_the_provider() {
    // The proxy forwards the real exchange: the token the device gets once
    // the faults stop is one the provider itself vouches for.
    let w = world().await;
    for fault in [Fault::Down, Fault::Truncated, Fault::bad_gateway()] {
        w.proxy.set(fault).await;
        assert!(w.client.device_token().await.is_err());
    }
    w.proxy.set(Fault::Forward).await;
    let tokens = w.client.device_token().await.unwrap();
    let info = w
        .client
        .introspect(&tokens.access_token, None)
        .await
        .unwrap();
    assert!(info.active);
    assert_eq!(
        info.client_id.as_deref(),
        Some(w.client.client_auth().client_id.as_str())
    );
}
