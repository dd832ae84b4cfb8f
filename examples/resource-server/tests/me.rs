//! The example against the dev IdP: a token for it answers `/me`; a token
//! for another audience is refused.

use onesoidc_devidp::{DevIdp, DevIdpConfig};
use onesoidc_flows::OnesIdClient;
use onesoidc_flows::core::{DeviceTokenRequest, ExposeSecret, KeyType};
use onesoidc_resource::ResourceServer;

#[tokio::test]
async fn me_answers_the_subject_and_scopes() {
    let idp = DevIdp::start(DevIdpConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kiosk =
        OnesIdClient::from_paths(&idp.provision_device(dir.path(), KeyType::EccP256).unwrap())
            .unwrap();
    let server = ResourceServer::builder()
        .issuer(idp.issuer())
        .audience("https://vhh.example.com")
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let me = format!("http://{}/me", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, onesoidc_example_resource_server::router(&server)).await
    });

    let request = DeviceTokenRequest::default()
        .resource("https://vhh.example.com")
        .scope("read");
    let token = kiosk
        .device_token_with(&request)
        .await
        .unwrap()
        .access_token;
    let response = reqwest::Client::new()
        .get(&me)
        .bearer_auth(token.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["sub"], kiosk.client_auth().client_id.to_string());
    assert_eq!(body["scopes"], serde_json::json!(["read"]));

    let own = kiosk.device_token().await.unwrap().access_token;
    let response = reqwest::Client::new()
        .get(&me)
        .bearer_auth(own.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
}
