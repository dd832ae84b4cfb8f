//! The console (`/`), the phone page (`GET {cb_url}`), their buttons
//! (`POST /console/...`) and their live stream, over real HTTP. The
//! browser test in onesoidc-cli clicks the same buttons in Chromium.

mod common;

use std::time::Duration;

use common::*;
use onesoidc_core::KeyType;
use serde_json::{Value, json};

/// Every wait in these tests ends after this long.
const DEADLINE: Duration = Duration::from_secs(10);

const TOKEN_HEADER: &str = "x-devidp-console-token";

/// `html` with character references (`&#60;`, `&lt;`, ...) decoded: the
/// text a browser shows.
fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(';').unwrap_or(0);
        let decoded = match &rest[1..end.max(1)] {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            entity => entity
                .strip_prefix('#')
                .and_then(|n| n.parse().ok())
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A page: status, headers and HTML.
struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    html: String,
}

impl Page {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The per-process token in the page's `<meta>`.
    fn token(&self) -> String {
        let start = self
            .html
            .find(r#"name="devidp-console-token" content=""#)
            .expect("the page embeds the console token")
            + r#"name="devidp-console-token" content=""#.len();
        let end = start + self.html[start..].find('"').unwrap();
        self.html[start..end].to_string()
    }
}

async fn page(h: &Harness, url: &str) -> Page {
    let response = h.http.get(url).send().await.unwrap();
    Page {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        html: response.text().await.unwrap(),
    }
}

/// A console POST with `token` (or none) and an optional JSON body.
async fn press(h: &Harness, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut request = h.http.post(format!("{}{path}", h.idp.host()));
    if let Some(token) = token {
        request = request.header(TOKEN_HEADER, token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn registration(h: &Harness, title: &str) -> String {
    let key = onesoidc_core::PemSigner::generate(KeyType::EccP256).unwrap();
    let body = json!({
        "publicKey": {"keys": [key.public_jwk()]},
        "title": title, "location": "Lab", "domain": "dev.local", "role": "SERVER",
    });
    let resp = h
        .post_json(
            &format!("{}/devices/registration", h.idp.host()),
            None,
            &body,
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    resp.body["verification_code"].as_str().unwrap().to_string()
}

async fn qr_session(h: &Harness, device_token: &str) -> (String, String) {
    let resp = h
        .post_json(
            &format!("{}/qr/sessions", h.idp.issuer()),
            Some(device_token),
            &json!({}),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    (
        resp.body["session_id"].as_str().unwrap().to_string(),
        resp.body["cb_url"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn the_console_shows_what_is_pending_escaped_and_never_a_secret() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let device_token = h.device_token(&device).await;
    let message = r#"<script>alert("x")</script> & <b>bold</b>"#;
    let claims = merge(
        h.request_claims(&device, "alice"),
        json!({"binding_message": message}),
    );
    h.start_ciba(&device, &claims).await;
    let code = registration(&h, "<img src=x onerror=alert(1)>").await;
    let (session_id, _) = qr_session(&h, &device_token).await;
    let (scanned, _) = qr_session(&h, &device_token).await;
    h.idp.simulate_qr_scan(&scanned, "bob").unwrap();
    let hint = h
        .get(
            &format!("{}/qr/sessions/{scanned}", h.idp.issuer()),
            Some(&device_token),
        )
        .await
        .body["login_hint_token"]
        .as_str()
        .unwrap()
        .to_string();
    let refused = h.token(&device, &[("grant_type", "password")]).await;
    refused.assert_error(400, "unsupported_grant_type");

    let console = page(&h, &h.idp.console_url()).await;
    assert_eq!(console.status, 200);
    assert_eq!(console.header("content-type"), "text/html; charset=utf-8");
    assert!(
        console
            .header("content-security-policy")
            .contains("script-src 'self'")
    );
    assert!(
        console
            .header("content-security-policy")
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(console.header("x-frame-options"), "DENY");
    let html = &console.html;

    // Pending work, with the buttons the browser test clicks.
    assert!(html.contains(&format!(r#"data-registration="{code}""#)));
    assert!(html.contains(&format!(r#"data-qr="{session_id}""#)));
    assert!(html.contains(">Scan as alice<") && html.contains(">Scan as bob<"));
    assert!(html.contains(r#"data-action="approve""#) && html.contains(r#"data-action="deny""#));
    // Users, applications, devices, token endpoint events.
    assert!(html.contains("vhh-server") && html.contains(&device.client_id));
    assert!(html.contains("client_credentials") && html.contains("access token (300 s)"));
    assert!(html.contains("unsupported_grant_type"));

    // Escaped: the markup is not markup, and shows as the text it was.
    assert!(!html.contains("<script>alert") && !html.contains("<b>bold"));
    assert!(!html.contains("<img src=x"));
    let text = text_of(html);
    assert!(text.contains(message), "{html}");
    assert!(text.contains("<img src=x onerror=alert(1)>"));

    // No token, assertion, login_hint_token or key material.
    assert!(!html.contains(&device_token));
    assert!(!html.contains(&hint));
    let jwk = device.key.public_jwk();
    assert!(!html.contains(jwk.x.as_deref().unwrap()));
    assert!(html.contains("EC P-256 · ES256"));
}

#[tokio::test]
async fn console_posts_need_the_page_token() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let id = h
        .start_ciba(&device, &h.request_claims(&device, "alice"))
        .await;
    let token = page(&h, &h.idp.console_url()).await.token();
    let approve = format!("/console/ciba/{id}/approve");

    let (status, body) = press(&h, &approve, None, None).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
    let (status, _) = press(&h, &approve, Some("not-the-token"), None).await;
    assert_eq!(status, 403);
    // A cross-site page cannot send it either (it cannot read it, and its
    // Origin gives it away).
    let resp = h
        .http
        .post(format!("{}{approve}", h.idp.host()))
        .header(TOKEN_HEADER, &token)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(h.idp.pending_ciba_requests().len(), 1, "still pending");

    let (status, body) = press(&h, &approve, Some(&token), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Approved alice's login.");
    h.poll_until_done(&device, &id).await.assert_ok();
    let (status, body) = press(&h, &approve, Some(&token), None).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("conflict")));
    let (status, _) = press(&h, "/console/ciba/nope/deny", Some(&token), None).await;
    assert_eq!(status, 404);

    // The token is per process: another provider's page has another.
    let other = Harness::fast().await;
    assert_ne!(page(&other, &other.idp.console_url()).await.token(), token);
}

#[tokio::test]
async fn the_console_answers_only_to_its_own_host_names() {
    let h = Harness::fast().await;
    let port = h.idp.local_addr().port();
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let resp = h
            .http
            .get(h.idp.console_url())
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{host}");
    }
    // A DNS-rebinding page would send its own name.
    let resp = h
        .http
        .get(h.idp.console_url())
        .header("host", format!("rebind.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn the_phone_page_scans_and_approves_like_the_control_api() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let device_token = h.device_token(&device).await;
    let (session_id, cb_url) = qr_session(&h, &device_token).await;

    let phone = page(&h, &cb_url).await;
    assert_eq!(phone.status, 200);
    assert!(phone.html.contains(r#"name="viewport""#));
    assert!(phone.html.contains(r#"data-step="pick""#));
    assert!(
        phone.html.contains(r#"data-user="alice""#) && phone.html.contains(r#"data-user="bob""#)
    );
    let token = phone.token();

    let scan = format!("/console/qr/{session_id}/scan");
    let (status, _) = press(&h, &scan, None, Some(json!({"username": "bob"}))).await;
    assert_eq!(status, 403);
    let (status, body) = press(
        &h,
        &scan,
        Some(&token),
        Some(json!({"username": "mallory"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unknown_user_id"))
    );
    let (status, body) = press(&h, &scan, Some(&token), Some(json!({"username": "bob"}))).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        page(&h, &cb_url)
            .await
            .html
            .contains(r#"data-step="waiting""#)
    );

    // The device continues with CIBA, as after a scan by the phone app.
    let status = h
        .get(
            &format!("{}/qr/sessions/{session_id}", h.idp.issuer()),
            Some(&device_token),
        )
        .await;
    assert_eq!(status.body["status"], "scanned");
    let hint = status.body["login_hint_token"].as_str().unwrap();
    let claims = merge(
        h.request_claims(&device, "x"),
        json!({"login_hint": null, "login_hint_token": hint, "qr_session_id": session_id,
               "binding_message": "Kiosk <7>"}),
    );
    let id = h.start_ciba(&device, &claims).await;
    let phone = page(&h, &cb_url).await;
    assert!(
        phone.html.contains(r#"data-step="approve""#),
        "{}",
        phone.html
    );
    assert!(!phone.html.contains("Kiosk <7>"));
    assert!(text_of(&phone.html).contains("Kiosk <7>"));
    assert!(!phone.html.contains(hint));

    let (status, _) = press(
        &h,
        &format!("/console/ciba/{id}/approve"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        page(&h, &cb_url)
            .await
            .html
            .contains(r#"data-step="approved""#)
    );
    let tokens = h.poll_until_done(&device, &id).await;
    assert_eq!(
        claims_of(tokens.assert_ok()["access_token"].as_str().unwrap())["sub"],
        "bob"
    );

    let unknown = page(&h, &format!("{}/qr/sessions/nope/scan", h.idp.issuer())).await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.html.contains(r#"data-step="unknown""#));
}

#[tokio::test]
async fn cancel_on_the_phone_page_cancels_the_session() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let device_token = h.device_token(&device).await;
    let (session_id, cb_url) = qr_session(&h, &device_token).await;
    let token = page(&h, &cb_url).await.token();
    let (status, _) = press(
        &h,
        &format!("/console/qr/{session_id}/cancel"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let status = h
        .get(
            &format!("{}/qr/sessions/{session_id}", h.idp.issuer()),
            Some(&device_token),
        )
        .await;
    assert_eq!(status.body["status"], "cancelled");
    assert!(
        page(&h, &cb_url)
            .await
            .html
            .contains(r#"data-step="cancelled""#)
    );
}

#[tokio::test]
async fn registrations_are_approved_and_rejected_from_the_console() {
    let h = Harness::fast().await;
    let token = page(&h, &h.idp.console_url()).await.token();
    let approved = registration(&h, "Kiosk 7").await;
    let rejected = registration(&h, "Kiosk 8").await;
    let (status, body) = press(
        &h,
        &format!("/console/registrations/{approved}/approve"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = press(
        &h,
        &format!("/console/registrations/{rejected}/reject"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let status_of = |code: String| {
        let h = &h;
        async move {
            h.get(
                &format!("{}/devices/registration/status/{code}", h.idp.host()),
                None,
            )
            .await
            .body
        }
    };
    let body = status_of(approved).await;
    assert_eq!(body["status"], "approved");
    assert_eq!(status_of(rejected).await["status"], "rejected");
    let html = page(&h, &h.idp.console_url()).await.html;
    assert!(html.contains(body["clientId"].as_str().unwrap()));
    assert!(html.contains("Kiosk 7"));
}

/// Reads the stream until a complete event containing `needle` arrives.
async fn event_with(response: &mut reqwest::Response, needle: &str) -> String {
    let mut buffer = String::new();
    tokio::time::timeout(DEADLINE, async {
        loop {
            let chunk = response
                .chunk()
                .await
                .unwrap()
                .expect("the stream stays open");
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if event.contains(needle) {
                    return event;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no event with {needle:?} within {DEADLINE:?}"))
}

#[tokio::test]
async fn the_live_stream_sends_what_changed_and_ends_when_the_server_stops() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let mut stream = h
        .http
        .get(format!("{}/console/events", h.idp.host()))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let first = event_with(&mut stream, "event: sections").await;
    for id in [
        "registrations",
        "ciba",
        "qr",
        "events",
        "devices",
        "directory",
    ] {
        assert!(first.contains(&format!("\"{id}\"")), "{id} in {first}");
    }

    let claims = merge(
        h.request_claims(&device, "bob"),
        json!({"binding_message": "live <now>"}),
    );
    h.start_ciba(&device, &claims).await;
    let update = event_with(&mut stream, "live &#60;now&#62;").await;
    assert!(
        !update.contains("\"directory\""),
        "only what changed: {update}"
    );

    tokio::time::timeout(Duration::from_secs(3), h.idp.clone().shutdown())
        .await
        .expect("shutdown does not wait for the open console stream");
    let rest = tokio::time::timeout(DEADLINE, async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "the stream ended with the server");
}
