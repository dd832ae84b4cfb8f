//! QR login (PROTOCOL §8) and well-known applications (§9).

mod common;

use std::time::Duration;

use common::*;
use onesoidc_core::KeyType;
use onesoidc_devidp::{AutoApprove, ControlError, DEFAULT_VHH_CLIENT_ID, DevIdpConfig};
use serde_json::json;

fn sessions_url(h: &Harness) -> String {
    format!("{}/qr/sessions", h.idp.issuer())
}

#[tokio::test]
async fn qr_scan_then_ciba_with_login_hint_token() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let token = h.device_token(&device).await;

    let resp = h
        .post_json(&sessions_url(&h), Some(&token), &json!({}))
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let session_id = resp.body["session_id"].as_str().unwrap().to_string();
    assert_eq!(
        resp.body["cb_url"],
        format!("{}/{session_id}/scan", sessions_url(&h))
    );
    assert_eq!(resp.body["expires_in"], 300);
    assert_eq!(resp.body["interval"], 5);
    assert_eq!(h.idp.next_qr_session().await, session_id);

    let status_url = format!("{}/{session_id}", sessions_url(&h));
    let status = h.get(&status_url, Some(&token)).await;
    assert_eq!(status.assert_ok()["status"], "pending");
    assert!(status.body.get("login_hint_token").is_none());

    h.idp.simulate_qr_scan(&session_id, "bob").unwrap();
    assert!(matches!(
        h.idp.simulate_qr_scan(&session_id, "alice"),
        Err(ControlError::QrSessionNotPending {
            state: "scanned",
            ..
        })
    ));
    let status = h.get(&status_url, Some(&token)).await;
    let status = status.assert_ok();
    assert_eq!(status["status"], "scanned");
    let hint = status["login_hint_token"].as_str().unwrap().to_string();

    // CIBA with the login_hint_token: the request is about bob.
    let base = || {
        merge(
            h.request_claims(&device, "x"),
            json!({"login_hint": null, "login_hint_token": hint}),
        )
    };
    // Without or with the wrong qr_session_id: refused.
    h.backchannel(&device, &base())
        .await
        .assert_error(400, "invalid_request");
    h.backchannel(&device, &merge(base(), json!({"qr_session_id": "other"})))
        .await
        .assert_error(400, "invalid_request");
    // Another client cannot use it.
    let stranger = h.device(KeyType::EccP256);
    let claims = merge(
        h.request_claims(&stranger, "x"),
        json!({"login_hint": null, "login_hint_token": hint, "qr_session_id": session_id}),
    );
    h.backchannel(&stranger, &claims)
        .await
        .assert_error(400, "invalid_request");

    let id = h
        .start_ciba(
            &device,
            &merge(base(), json!({"qr_session_id": session_id})),
        )
        .await;
    let request = h.idp.next_ciba_request().await;
    assert_eq!(request.login_hint, "bob");
    assert_eq!(request.qr_session_id.as_deref(), Some(session_id.as_str()));
    h.idp.approve_ciba(&id).unwrap();
    let tokens = h.poll_until_done(&device, &id).await.assert_ok().clone();
    assert_eq!(
        claims_of(tokens["id_token"].as_str().unwrap())["sub"],
        "bob"
    );
    // The login_hint_token is single-use.
    h.backchannel(
        &device,
        &merge(base(), json!({"qr_session_id": session_id})),
    )
    .await
    .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn the_phone_scans_through_cb_url_with_its_own_token() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let token = h.device_token(&device).await;
    let created = h
        .post_json(&sessions_url(&h), Some(&token), &json!({}))
        .await;
    let cb_url = created.body["cb_url"].as_str().unwrap().to_string();
    let session_id = created.body["session_id"].as_str().unwrap().to_string();

    // No token, a device token, garbage: 401.
    h.post_empty(&cb_url)
        .await
        .assert_error(401, "invalid_token");
    let resp = h.post_json(&cb_url, Some(&token), &json!({})).await;
    resp.assert_error(401, "invalid_token");
    assert!(
        resp.header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    h.post_json(&cb_url, Some("garbage"), &json!({}))
        .await
        .assert_error(401, "invalid_token");

    // The phone's token is a user's (here: alice's, from CIBA on a phone device).
    let phone = h.device(KeyType::EccP256);
    let alice = h.user_tokens(&phone, "alice").await;
    let alice_token = alice["access_token"].as_str().unwrap();
    let resp = h.post_json(&cb_url, Some(alice_token), &json!({})).await;
    assert_eq!(resp.assert_ok()["status"], "scanned");
    h.post_json(&cb_url, Some(alice_token), &json!({}))
        .await
        .assert_error(400, "invalid_request");
    let status = h
        .get(&format!("{}/{session_id}", sessions_url(&h)), Some(&token))
        .await;
    assert_eq!(status.assert_ok()["status"], "scanned");
    let unknown = format!("{}/nope/scan", sessions_url(&h));
    h.post_json(&unknown, Some(alice_token), &json!({}))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn qr_routes_need_a_valid_device_token() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let url = sessions_url(&h);

    h.post_json(&url, None, &json!({}))
        .await
        .assert_error(401, "invalid_token");
    h.post_json(&url, Some("not-a-token"), &json!({}))
        .await
        .assert_error(401, "invalid_token");
    // A user's token is not a device token.
    let user = h.user_tokens(&device, "alice").await;
    h.post_json(
        &url,
        Some(user["access_token"].as_str().unwrap()),
        &json!({}),
    )
    .await
    .assert_error(401, "invalid_token");

    let token = h.device_token(&device).await;
    // Malformed JSON body.
    let resp = h
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // Empty body is fine.
    let resp = h.http.post(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 201);

    // Unknown session: 404; another device's session: 404.
    h.get(&format!("{url}/nope"), Some(&token))
        .await
        .assert_error(404, "not_found");
    let created = h.post_json(&url, Some(&token), &json!({})).await;
    let session_id = created.body["session_id"].as_str().unwrap();
    let other = h.device(KeyType::EccP256);
    let other_token = h.device_token(&other).await;
    h.get(&format!("{url}/{session_id}"), Some(&other_token))
        .await
        .assert_error(404, "not_found");
    h.get(&format!("{url}/{session_id}"), None)
        .await
        .assert_error(401, "invalid_token");

    // Cancel (dev IdP extension).
    let resp = h
        .http
        .delete(format!("{url}/{session_id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let status = h.get(&format!("{url}/{session_id}"), Some(&token)).await;
    assert_eq!(status.assert_ok()["status"], "cancelled");
}

#[tokio::test]
async fn expired_tokens_and_sessions() {
    let h = Harness::start(DevIdpConfig {
        access_token_ttl: Duration::from_millis(800),
        qr_expires_in: Duration::from_millis(150),
        ..fast_config()
    })
    .await;
    let device = h.device(KeyType::EccP256);
    let token = h.device_token(&device).await;
    let created = h
        .post_json(&sessions_url(&h), Some(&token), &json!({}))
        .await;
    assert_eq!(created.body["expires_in"], 1);
    let session_id = created.body["session_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = h
        .get(&format!("{}/{session_id}", sessions_url(&h)), Some(&token))
        .await;
    assert_eq!(status.assert_ok()["status"], "expired");
    assert!(matches!(
        h.idp.simulate_qr_scan(&session_id, "alice").unwrap_err(),
        ControlError::QrSessionNotPending {
            state: "expired",
            ..
        }
    ));
    tokio::time::sleep(Duration::from_millis(650)).await;
    h.post_json(&sessions_url(&h), Some(&token), &json!({}))
        .await
        .assert_error(401, "invalid_token");
}

#[tokio::test]
async fn auto_approve_scans_as_the_first_user() {
    let h = Harness::start(DevIdpConfig {
        auto_approve: Some(AutoApprove::approve_after(Duration::from_millis(20))),
        ..fast_config()
    })
    .await;
    let device = h.device(KeyType::EccP256);
    let token = h.device_token(&device).await;
    let created = h
        .post_json(&sessions_url(&h), Some(&token), &json!({}))
        .await;
    let session_id = created.body["session_id"].as_str().unwrap().to_string();
    let url = format!("{}/{session_id}", sessions_url(&h));
    let hint = tokio::time::timeout(DEADLINE, async {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let status = h.get(&url, Some(&token)).await;
            if status.body["status"] == "scanned" {
                break status.body["login_hint_token"]
                    .as_str()
                    .unwrap()
                    .to_string();
            }
        }
    })
    .await
    .expect("the session is scanned within the deadline");
    let claims = merge(
        h.request_claims(&device, "x"),
        json!({"login_hint": null, "login_hint_token": hint, "qr_session_id": session_id}),
    );
    let id = h.start_ciba(&device, &claims).await;
    let tokens = h.poll_until_done(&device, &id).await.assert_ok().clone();
    assert_eq!(
        claims_of(tokens["access_token"].as_str().unwrap())["sub"],
        "alice"
    );
}

#[tokio::test]
async fn well_known_applications_need_a_device_token() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let url = format!("{}/.well-known/applications", h.idp.issuer());
    h.get(&url, None).await.assert_error(401, "invalid_token");
    h.get(&url, Some("x.y.z"))
        .await
        .assert_error(401, "invalid_token");
    let token = h.device_token(&device).await;
    let resp = h.get(&url, Some(&token)).await;
    assert_eq!(
        resp.assert_ok(),
        &json!({"applications": [{
            "client_identifier": "vhh-server",
            "client_id": DEFAULT_VHH_CLIENT_ID,
            "name": "VHH Server",
            "url": "https://vhh.example.com",
        }]})
    );
}
