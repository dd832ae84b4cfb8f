//! The reqwest backend against a local mock server.
#![cfg(feature = "reqwest")]

use std::time::Duration;

use onesoidc_http::{HttpClient, ReqwestClient, TransportErrorKind};

fn get(url: &str) -> http::Request<Vec<u8>> {
    http::Request::get(url).body(Vec::new()).unwrap()
}

#[tokio::test]
async fn returns_status_headers_and_body() {
    let mut server = mockito::Server::new_async().await;
    let mock = server
        .mock("POST", "/oidc/token")
        .match_header("content-type", "application/x-www-form-urlencoded")
        .match_body("a=1")
        .with_status(400)
        .with_header("content-type", "application/json")
        .with_body(r#"{"error":"invalid_grant"}"#)
        .create_async()
        .await;
    let client = ReqwestClient::new().unwrap();
    let request = http::Request::post(format!("{}/oidc/token", server.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(b"a=1".to_vec())
        .unwrap();
    let response = client.execute(request).await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.body(), br#"{"error":"invalid_grant"}"#);
    mock.assert_async().await;
}

#[tokio::test]
async fn redirects_are_returned_not_followed() {
    let mut server = mockito::Server::new_async().await;
    let target = server
        .mock("GET", "/elsewhere")
        .with_status(200)
        .expect(0)
        .create_async()
        .await;
    server
        .mock("GET", "/oidc/token")
        .with_status(302)
        .with_header("location", &format!("{}/elsewhere", server.url()))
        .create_async()
        .await;
    let client = ReqwestClient::new().unwrap();
    let response = client
        .execute(get(&format!("{}/oidc/token", server.url())))
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    target.assert_async().await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let mut server = mockito::Server::new_async().await;
    server
        .mock("GET", "/big")
        .with_body(vec![b'x'; 2 * 1024 * 1024])
        .create_async()
        .await;
    server
        .mock("GET", "/ok")
        .with_body(vec![b'x'; 1024 * 1024])
        .create_async()
        .await;
    server
        .mock("GET", "/chunked")
        .with_chunked_body(|w| {
            for _ in 0..20 {
                w.write_all(&[b'y'; 100 * 1024])?;
            }
            Ok(())
        })
        .create_async()
        .await;
    let client = ReqwestClient::new().unwrap();
    let err = client
        .execute(get(&format!("{}/big", server.url())))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::BodyTooLarge);
    let err = client
        .execute(get(&format!("{}/chunked", server.url())))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        TransportErrorKind::BodyTooLarge,
        "a body without Content-Length is capped too"
    );
    let ok = client
        .execute(get(&format!("{}/ok", server.url())))
        .await
        .unwrap();
    assert_eq!(ok.body().len(), 1024 * 1024, "exactly 1 MiB is allowed");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (_socket, _) = listener.accept().await.unwrap();
        // Hold the connection open without answering until the test ends.
        let _ = stopped.await;
    });
    let client = ReqwestClient::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = client
        .execute(get(&format!("http://{addr}/oidc/token")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Timeout, "{err}");
    let _ = stop.send(());
    server.await.unwrap();
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = ReqwestClient::new().unwrap();
    let err = client
        .execute(get(&format!("http://{addr}/x")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::Connect, "{err}");
}

#[tokio::test]
async fn plain_http_off_loopback_is_refused_before_connecting() {
    let client = ReqwestClient::new().unwrap();
    let err = client
        .execute(get("http://idp.example.com/oidc/token"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, TransportErrorKind::InsecureUrl);
    assert!(
        err.to_string()
            .contains("http://idp.example.com/oidc/token")
    );
}
