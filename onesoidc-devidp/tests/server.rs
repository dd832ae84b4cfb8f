//! Discovery, JWKS, the HTTP control surface, config files and the server's
//! life cycle.

mod common;

use std::time::Duration;

use common::*;
use onesoidc_core::{KeyType, PemSigner};
use onesoidc_devidp::{DevIdp, DevIdpConfig, DeviceSeed};
use serde_json::{Value, json};

#[tokio::test]
async fn discovery_document_and_jwks() {
    let h = Harness::fast().await;
    let issuer = h.idp.issuer();
    assert_eq!(issuer, format!("{}/oidc", h.idp.host()));
    assert!(h.idp.host().starts_with("http://127.0.0.1:"));
    let doc = h
        .get(&format!("{issuer}/.well-known/openid-configuration"), None)
        .await;
    let doc = doc.assert_ok();
    assert_eq!(doc["issuer"], issuer);
    assert_eq!(doc["token_endpoint"], format!("{issuer}/token"));
    assert_eq!(
        doc["backchannel_authentication_endpoint"],
        format!("{issuer}/backchannel")
    );
    assert_eq!(
        doc["introspection_endpoint"],
        format!("{issuer}/token/introspection")
    );
    assert_eq!(
        doc["revocation_endpoint"],
        format!("{issuer}/token/revocation")
    );
    assert_eq!(doc["jwks_uri"], format!("{issuer}/jwks"));
    assert_eq!(
        doc["grant_types_supported"],
        json!(["client_credentials", CIBA_GRANT, "refresh_token"])
    );
    assert_eq!(
        doc["backchannel_token_delivery_modes_supported"],
        json!(["poll"])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );
    let algs = json!(["RS256", "ES256", "ES384", "ES512"]);
    assert_eq!(
        doc["token_endpoint_auth_signing_alg_values_supported"],
        algs
    );
    assert_eq!(
        doc["backchannel_authentication_request_signing_alg_values_supported"],
        algs
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );

    let jwks = h.get(&h.idp.jwks_uri(), None).await;
    let keys = jwks.assert_ok()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    let key: onesoidc_core::PublicJwk = serde_json::from_value(keys[0].clone()).unwrap();
    assert_eq!(key.alg.as_deref(), Some("RS256"));
    assert_eq!(key.kid, Some(key.thumbprint().unwrap()));
    assert!(keys[0].get("d").is_none());
}

async fn control(h: &Harness, method: &str, path: &str, body: Option<Value>) -> Resp {
    let url = format!("{}/control{path}", h.idp.host());
    let resp = match (method, body) {
        ("GET", _) => h.get(&url, None).await,
        ("PUT", Some(body)) => h.put_json(&url, &body).await,
        ("POST", Some(body)) => h.post_json(&url, None, &body).await,
        ("POST", None) => h.post_empty_json(&url).await,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        resp.header("x-onesoidc-devidp"),
        Some("control surface, not part of OnesID")
    );
    resp
}

#[tokio::test]
async fn http_control_surface() {
    let h = Harness::fast().await;
    // Register a device over HTTP.
    let key = PemSigner::generate(KeyType::EccP256).unwrap();
    let resp = control(
        &h,
        "POST",
        "/devices",
        Some(json!({"public_jwk": key.public_jwk()})),
    )
    .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let device = TestDevice {
        key,
        client_id: resp.body["client_id"].as_str().unwrap().into(),
        device_id: resp.body["device_id"].as_str().unwrap().into(),
    };
    control(
        &h,
        "POST",
        "/devices",
        Some(json!({"public_jwk": {"kty": "EC"}})),
    )
    .await
    .assert_error(400, "invalid_request");
    control(
        &h,
        "POST",
        "/devices",
        Some(json!({"public_jwk": device.key.public_jwk(), "client_id": device.client_id})),
    )
    .await
    .assert_error(409, "conflict");

    // CIBA: list, approve, deny, errors.
    let id = h
        .start_ciba(&device, &h.request_claims(&device, "alice"))
        .await;
    let pending = control(&h, "GET", "/ciba", None).await;
    let requests = pending.assert_ok()["requests"].as_array().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["auth_req_id"], id);
    assert_eq!(requests[0]["login_hint"], "alice");
    let resp = control(&h, "POST", &format!("/ciba/{id}/approve"), None).await;
    assert_eq!(resp.assert_ok()["status"], "approved");
    control(&h, "POST", &format!("/ciba/{id}/deny"), None)
        .await
        .assert_error(409, "conflict");
    control(&h, "POST", "/ciba/nope/approve", None)
        .await
        .assert_error(404, "not_found");
    h.poll_until_done(&device, &id).await.assert_ok();

    // QR scan over HTTP.
    let token = h.device_token(&device).await;
    let created = h
        .post_json(
            &format!("{}/qr/sessions", h.idp.issuer()),
            Some(&token),
            &json!({}),
        )
        .await;
    let session_id = created.body["session_id"].as_str().unwrap().to_string();
    let listed = control(&h, "GET", "/qr", None).await;
    assert_eq!(listed.assert_ok()["sessions"][0]["session_id"], session_id);
    control(
        &h,
        "POST",
        &format!("/qr/{session_id}/scan"),
        Some(json!({"username": "mallory"})),
    )
    .await
    .assert_error(400, "unknown_user_id");
    control(
        &h,
        "POST",
        &format!("/qr/{session_id}/scan"),
        Some(json!({"user": "alice"})),
    )
    .await
    .assert_error(400, "invalid_request");
    let resp = control(
        &h,
        "POST",
        &format!("/qr/{session_id}/scan"),
        Some(json!({"username": "alice"})),
    )
    .await;
    assert_eq!(resp.assert_ok()["status"], "scanned");
    // Only a pending session can be cancelled on the phone.
    control(&h, "POST", &format!("/qr/{session_id}/cancel"), None)
        .await
        .assert_error(409, "conflict");
    let other = h
        .post_json(
            &format!("{}/qr/sessions", h.idp.issuer()),
            Some(&token),
            &json!({}),
        )
        .await;
    let other = other.body["session_id"].as_str().unwrap().to_string();
    let resp = control(&h, "POST", &format!("/qr/{other}/cancel"), None).await;
    assert_eq!(resp.assert_ok()["status"], "cancelled");
    control(&h, "POST", "/qr/nope/cancel", None)
        .await
        .assert_error(404, "not_found");
    control(
        &h,
        "POST",
        "/qr/nope/scan",
        Some(json!({"username": "alice"})),
    )
    .await
    .assert_error(404, "not_found");

    // Registrations over HTTP.
    let other = PemSigner::generate(KeyType::Rsa2048).unwrap();
    let reg = h
        .post_json(
            &format!("{}/devices/registration", h.idp.host()),
            None,
            &json!({"publicKey": {"keys": [other.public_jwk()]}, "title": "t"}),
        )
        .await;
    let code = reg.body["verification_code"].as_str().unwrap().to_string();
    let listed = control(&h, "GET", "/registrations", None).await;
    assert_eq!(
        listed.assert_ok()["registrations"][0]["verification_code"],
        code
    );
    assert_eq!(listed.body["registrations"][0]["details"]["title"], "t");
    let resp = control(&h, "POST", &format!("/registrations/{code}/approve"), None).await;
    assert_eq!(resp.assert_ok()["status"], "approved");
    assert!(resp.body["client_id"].is_string());
    control(&h, "POST", &format!("/registrations/{code}/reject"), None)
        .await
        .assert_error(409, "conflict");

    // Auto-approve policy.
    let resp = control(
        &h,
        "PUT",
        "/auto-approve",
        Some(json!({"after_ms": 1500, "decision": "approve"})),
    )
    .await;
    assert_eq!(
        resp.assert_ok(),
        &json!({"after_ms": 1500, "decision": "approve"})
    );
    assert_eq!(
        h.idp.auto_approve().unwrap().after,
        Duration::from_millis(1500)
    );
    control(
        &h,
        "PUT",
        "/auto-approve",
        Some(json!({"after_ms": 1, "decision": "maybe"})),
    )
    .await
    .assert_error(400, "invalid_request");
    let resp = control(&h, "PUT", "/auto-approve", Some(Value::Null)).await;
    assert_eq!(resp.assert_ok(), &Value::Null);
    assert_eq!(h.idp.auto_approve(), None);
    assert_eq!(
        control(&h, "GET", "/auto-approve", None).await.body,
        Value::Null
    );

    // Stats.
    let stats = control(&h, "GET", "/stats", None).await;
    let stats = stats.assert_ok();
    assert_eq!(stats["backchannel_requests"], 1);
    assert_eq!(stats["token_requests"]["client_credentials"], 1);
    assert!(stats["ciba_polls"][&id].as_u64().unwrap() >= 1);
    assert_eq!(
        stats["qr_sessions_created"], 2,
        "one scanned, one cancelled"
    );
}

#[tokio::test]
async fn seeded_devices_and_config_file() {
    let key = PemSigner::generate(KeyType::EccP384).unwrap();
    let path = std::env::temp_dir().join(format!("devidp-{}.json", uuid::Uuid::new_v4()));
    let file = json!({
        "users": ["carol"],
        "ciba_interval_ms": 100,
        "devices": [{"device_id": "dev-1", "client_id": "client-1", "public_jwk": key.public_jwk()}],
    });
    std::fs::write(&path, file.to_string()).unwrap();
    let config = DevIdpConfig::from_json_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(config.users, ["carol"]);
    assert_eq!(
        config.devices,
        [DeviceSeed {
            device_id: "dev-1".into(),
            client_id: "client-1".into(),
            public_jwk: key.public_jwk()
        }]
    );

    let h = Harness::start(config).await;
    let device = TestDevice {
        key,
        client_id: "client-1".into(),
        device_id: "dev-1".into(),
    };
    h.device_token(&device).await;
    h.backchannel(&device, &h.request_claims(&device, "alice"))
        .await
        .assert_error(400, "unknown_user_id");
    h.backchannel(&device, &h.request_claims(&device, "carol"))
        .await
        .assert_ok();
}

/// `POST /control/keys/rotate`: the provider signs with a new key, and
/// publishes it first with the one it replaced (only that one) behind it.
#[tokio::test]
async fn the_signing_key_rotates_and_the_previous_one_stays_published() {
    let h = Harness::fast().await;
    let kids = |jwks: &Value| -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    };
    let first = kids(h.get(&h.idp.jwks_uri(), None).await.assert_ok());
    assert_eq!(first.len(), 1);
    let rotated = control(&h, "POST", "/keys/rotate", None).await;
    let rotated = rotated.assert_ok().clone();
    assert_eq!(rotated["previous_kid"], first[0].as_str());
    let second = kids(h.get(&h.idp.jwks_uri(), None).await.assert_ok());
    assert_eq!(
        second,
        [rotated["kid"].as_str().unwrap(), first[0].as_str()]
    );
    let third = h.idp.rotate_signing_key().await.unwrap();
    let published = kids(h.get(&h.idp.jwks_uri(), None).await.assert_ok());
    assert_eq!(published, [third.as_str(), second[0].as_str()]);
}

/// One exact HTTP/1.1 request, as a cross-site page or a DNS-rebinding page
/// would make it; the status and body of the answer.
async fn raw_request(idp: &DevIdp, request: String) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(idp.local_addr())
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    (status, answer)
}

/// The `/control/` routes get the console's protections: a `no-cors`
/// `text/plain` POST (what any web page can send without a preflight) is
/// refused with 415 and changes nothing, and so is every request naming
/// another `Host` (DNS rebinding), with 403.
#[tokio::test]
async fn control_routes_refuse_other_sites_and_rebound_hosts() {
    let h = Harness::fast().await;
    let own = h.idp.local_addr().to_string();
    let jwk = PemSigner::generate(KeyType::EccP256).unwrap().public_jwk();
    let body = json!({"public_jwk": jwk, "client_id": "planted"}).to_string();
    let post = |host: &str, content_type: &str| {
        format!(
            "POST /control/devices HTTP/1.1\r\nHost: {host}\r\nOrigin: http://evil.example\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };

    let (status, answer) = raw_request(&h.idp, post(&own, "text/plain;charset=UTF-8")).await;
    assert_eq!(status, 415, "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
    let (status, _) = raw_request(&h.idp, post(&own, "application/x-www-form-urlencoded")).await;
    assert_eq!(status, 415);
    let (status, answer) =
        raw_request(&h.idp, post("rebound.evil.example:80", "application/json")).await;
    assert_eq!(status, 403, "{answer}");
    let read =
        "GET /control/ciba HTTP/1.1\r\nHost: rebound.evil.example\r\nConnection: close\r\n\r\n"
            .to_string();
    let (status, answer) = raw_request(&h.idp, read).await;
    assert_eq!(status, 403, "{answer}");
    assert!(!answer.contains("requests"), "{answer}");
    // An empty-bodied POST is refused too without the JSON content type.
    let approve = format!(
        "POST /control/ciba/any/approve HTTP/1.1\r\nHost: {own}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw_request(&h.idp, approve).await.0, 415);

    // The same request with the provider's Host and JSON works: 201, not
    // 409 `conflict`, so none of the refused ones registered `planted`.
    let (status, answer) = raw_request(&h.idp, post(&own, "application/json")).await;
    assert_eq!(status, 201, "{answer}");
}

#[tokio::test]
async fn unusable_config_does_not_start() {
    let config = DevIdpConfig {
        users: vec!["alice".into(), "alice".into()],
        ..DevIdpConfig::default()
    };
    let err = DevIdp::start(config).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(matches!(
        DevIdpConfig::from_json_file("/nonexistent/devidp.json").unwrap_err(),
        onesoidc_devidp::ConfigError::Read { .. }
    ));
}

#[tokio::test]
async fn shutdown_and_drop_stop_the_server() {
    let idp = DevIdp::start(DevIdpConfig::default()).await.unwrap();
    let url = format!("{}/.well-known/openid-configuration", idp.issuer());
    let http = reqwest::Client::new();
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    let clone = idp.clone();
    idp.shutdown().await;
    assert!(reqwest::Client::new().get(&url).send().await.is_err());
    drop(clone);

    let idp = DevIdp::start(DevIdpConfig::default()).await.unwrap();
    let addr = idp.local_addr();
    drop(idp);
    // The server task notices the last handle is gone; wait until the port refuses.
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        refused,
        "the server still accepts connections after the last handle was dropped"
    );
}

#[tokio::test]
async fn next_methods_wait_for_new_items() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let idp = h.idp.clone();
    let waiter = tokio::spawn(async move { idp.next_ciba_request().await });
    let id = h
        .start_ciba(&device, &h.request_claims(&device, "bob"))
        .await;
    assert_eq!(waiter.await.unwrap().auth_req_id, id);
    // Nothing new: next_ciba_request keeps waiting.
    let nothing = tokio::time::timeout(Duration::from_millis(50), h.idp.next_ciba_request()).await;
    assert!(nothing.is_err());
}
