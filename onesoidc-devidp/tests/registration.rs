//! Device registration (PROTOCOL §10) at the host root.

mod common;

use std::time::Duration;

use common::*;
use onesoidc_core::{KeyType, PemSigner};
use onesoidc_devidp::{AutoApprove, ControlError, DevIdpConfig};
use serde_json::{Value, json};

fn registration_body(jwk: Value) -> Value {
    json!({
        "publicKey": {"keys": [jwk]},
        "title": "ServerName", "location": "Bangkok", "domain": "onesid1.com", "role": "server",
        "operatingSystem": "Linux", "operatingSystemRelease": "6.1", "systemArchitecture": "x86_64",
        "systemMemory": 8_000_000_000u64,
    })
}

async fn register(h: &Harness, jwk: Value) -> Resp {
    let url = format!("{}/devices/registration", h.idp.host());
    h.post_json(&url, None, &registration_body(jwk)).await
}

async fn status(h: &Harness, code: &str) -> Resp {
    let url = format!("{}/devices/registration/status/{code}", h.idp.host());
    h.get(&url, None).await
}

#[tokio::test]
async fn approved_registration_can_authenticate() {
    let h = Harness::fast().await;
    // px-device-identity writes ES521 for P-521 keys.
    let key = PemSigner::generate(KeyType::EccP521).unwrap();
    let mut jwk = serde_json::to_value(key.public_jwk()).unwrap();
    jwk["alg"] = json!("ES521");
    let resp = register(&h, jwk).await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let code = resp.body["verification_code"].as_str().unwrap().to_string();
    assert_eq!(h.idp.next_registration().await, code);
    assert_eq!(
        status(&h, &code).await.assert_ok(),
        &json!({"status": "pending"})
    );

    h.idp.approve_registration(&code).unwrap();
    assert!(matches!(
        h.idp.reject_registration(&code),
        Err(ControlError::RegistrationNotPending {
            state: "approved",
            ..
        })
    ));
    let approved = status(&h, &code).await;
    let body = approved.assert_ok();
    assert_eq!(body["status"], "approved");
    let device = TestDevice {
        key,
        client_id: body["clientId"].as_str().unwrap().to_string(),
        device_id: body["deviceId"].as_str().unwrap().to_string(),
    };
    assert_ne!(device.client_id, device.device_id);
    h.device_token(&device).await;
    assert_eq!(h.idp.stats().registration_requests, 1);
}

#[tokio::test]
async fn rejected_pending_and_unknown() {
    let h = Harness::fast().await;
    let key = PemSigner::generate(KeyType::Rsa2048).unwrap();
    let jwk = serde_json::to_value(key.public_jwk()).unwrap();
    let code = register(&h, jwk.clone()).await.body["verification_code"]
        .as_str()
        .unwrap()
        .to_string();
    h.idp.reject_registration(&code).unwrap();
    assert_eq!(
        status(&h, &code).await.assert_ok(),
        &json!({"status": "rejected"})
    );

    let pending = register(&h, jwk).await.body["verification_code"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(status(&h, &pending).await.assert_ok()["status"], "pending");

    status(&h, "NOPE1234").await.assert_error(404, "not_found");
    assert!(matches!(
        h.idp.approve_registration("NOPE1234"),
        Err(ControlError::UnknownRegistration(_))
    ));
}

#[tokio::test]
async fn bad_registration_requests_are_400() {
    let h = Harness::fast().await;
    let url = format!("{}/devices/registration", h.idp.host());
    let key = PemSigner::generate(KeyType::EccP256).unwrap();
    let good = serde_json::to_value(key.public_jwk()).unwrap();

    let cases = [
        json!({"title": "no key"}),
        json!({"publicKey": {"keys": []}}),
        json!({"publicKey": "text"}),
        registration_body(json!("not a jwk")),
        registration_body(merge(good.clone(), json!({"alg": null}))),
        registration_body(merge(good.clone(), json!({"alg": "ES384"}))),
        registration_body(merge(good.clone(), json!({"d": "c2VjcmV0"}))),
        registration_body(merge(good.clone(), json!({"crv": "P-192"}))),
        registration_body(merge(good.clone(), json!({"x": "AAAA"}))),
        registration_body(json!({"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"})),
    ];
    for body in cases {
        h.post_json(&url, None, &body)
            .await
            .assert_error(400, "invalid_request");
    }
    let resp = h
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn auto_approve_and_expiry() {
    let h = Harness::start(DevIdpConfig {
        auto_approve: Some(AutoApprove::approve_after(Duration::from_millis(20))),
        registration_expires_in: Duration::from_millis(400),
        ..fast_config()
    })
    .await;
    let key = PemSigner::generate(KeyType::EccP384).unwrap();
    let jwk = serde_json::to_value(key.public_jwk()).unwrap();
    let code = register(&h, jwk.clone()).await.body["verification_code"]
        .as_str()
        .unwrap()
        .to_string();
    let body = tokio::time::timeout(DEADLINE, async {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let resp = status(&h, &code).await;
            if resp.body["status"] != "pending" {
                break resp.body;
            }
        }
    })
    .await
    .expect("the registration is answered within the deadline");
    assert_eq!(body["status"], "approved");

    // Without the policy, a request nobody answers ends in `error`.
    h.idp.set_auto_approve(None);
    let code = register(&h, jwk).await.body["verification_code"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(status(&h, &code).await.assert_ok()["status"], "error");
    assert!(matches!(
        h.idp.approve_registration(&code).unwrap_err(),
        ControlError::RegistrationNotPending {
            state: "expired",
            ..
        }
    ));
}
