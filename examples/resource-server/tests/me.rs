//! The example against the dev IdP: a token for it answers `/me`; a token
//! for another audience is refused; a DPoP-bound token needs a fresh proof
//! of its key.

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

/// A DPoP-bound token (RFC 9449) answers `/me` only with a proof of its key
/// for that very request: not as `Bearer`, not with a proof used before,
/// not with a proof from another key.
#[tokio::test]
async fn a_dpop_bound_token_needs_a_fresh_proof_of_its_key() {
    let idp = DevIdp::start(DevIdpConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp.provision_device(dir.path(), KeyType::EccP256).unwrap();
    let kiosk = OnesIdClient::builder()
        .identity_paths(paths)
        .dpop(true)
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let server = ResourceServer::builder()
        .issuer(idp.issuer())
        .audience("https://vhh.example.com")
        .public_url(&origin)
        .build()
        .await
        .unwrap();
    tokio::spawn(async move {
        axum::serve(listener, onesoidc_example_resource_server::router(&server)).await
    });
    let me = url::Url::parse(&format!("{origin}/me")).unwrap();

    let request = DeviceTokenRequest::default().resource("https://vhh.example.com");
    let tokens = kiosk.device_token_with(&request).await.unwrap();
    assert_eq!(tokens.token_type, "DPoP");
    let headers = kiosk.authorize(&tokens, "GET", &me).await.unwrap();
    let proof = headers.dpop().unwrap().to_string();
    let authorization = headers.authorization().expose_secret().to_string();
    let token = tokens.access_token.expose_secret();
    let send = |authorization: String, proof: Option<String>| {
        let mut request = reqwest::Client::new()
            .get(me.as_str())
            .header("authorization", authorization);
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        request.send()
    };

    let accepted = send(authorization.clone(), Some(proof.clone()))
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    let as_bearer = send(format!("Bearer {token}"), None).await.unwrap();
    assert_eq!(as_bearer.status(), 401);
    let replayed = send(authorization.clone(), Some(proof)).await.unwrap();
    assert_eq!(replayed.status(), 401);
    assert!(
        replayed.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("DPoP "),
        "{:?}",
        replayed.headers()
    );
    let stranger = onesoidc_flows::core::DpopKey::generate()
        .unwrap()
        .proof("GET", &me, Some(token), None, std::time::SystemTime::now())
        .unwrap();
    let other_key = send(authorization, Some(stranger)).await.unwrap();
    assert_eq!(other_key.status(), 401);
}
