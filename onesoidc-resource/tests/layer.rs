//! The layer in a real axum server on loopback, driven by reqwest, with
//! tokens from the dev IdP: the exact status and `WWW-Authenticate` of
//! every answer (RFC 6750 §3), and opaque tokens introspected once however
//! many requests carry them at the same time.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use onesoidc_core::{DeviceTokenRequest, ExposeSecret, KeyType};
use onesoidc_devidp::{AccessTokenFormat, Application, AutoApprove, DevIdp, DevIdpConfig};
use onesoidc_flows::{CibaRequest, OnesIdClient};
use onesoidc_resource::{Authenticated, ResourceServer, require_scope};

/// This application (JWT access tokens).
const APP: &str = "https://vhh.example.com";
/// Another application, whose tokens the dev IdP issues opaque.
const LAB: &str = "https://lab.example.com";

struct Setup {
    idp: DevIdp,
    kiosk: OnesIdClient,
    /// The application's own registered identity (introspects).
    app_identity: OnesIdClient,
    _dirs: Vec<tempfile::TempDir>,
}

async fn setup() -> Setup {
    let mut config = DevIdpConfig {
        ciba_interval: Duration::from_millis(10),
        auto_approve: Some(AutoApprove::approve_after(Duration::ZERO)),
        ..DevIdpConfig::default()
    };
    config.applications.push(Application {
        client_identifier: "lab".into(),
        client_id: "lab".into(),
        name: "Lab".into(),
        url: LAB.into(),
        access_token_format: AccessTokenFormat::Opaque,
        require_dpop: false,
    });
    let idp = DevIdp::start(config).await.unwrap();
    let (kiosk_dir, app_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let kiosk_paths = idp
        .provision_device(kiosk_dir.path(), KeyType::EccP256)
        .unwrap();
    let app_paths = idp
        .provision_device(app_dir.path(), KeyType::Rsa2048)
        .unwrap();
    Setup {
        kiosk: OnesIdClient::from_paths(&kiosk_paths).unwrap(),
        app_identity: OnesIdClient::from_paths(&app_paths).unwrap(),
        idp,
        _dirs: vec![kiosk_dir, app_dir],
    }
}

/// Serves `/me` (any token) and `/admin` (scope `admin`) for `audience`
/// on a loopback port; returns its base URL.
async fn serve(server: ResourceServer) -> String {
    let app = Router::new()
        .route(
            "/me",
            get(|who: Authenticated| async move {
                Json(serde_json::json!({"sub": who.sub, "scope": who.scope.to_string()}))
            }),
        )
        .route(
            "/admin",
            get(|| async { "admin" }).route_layer(require_scope("admin")),
        )
        .layer(server.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn device_token(kiosk: &OnesIdClient, resource: &str, scope: &str) -> String {
    let request = DeviceTokenRequest::default()
        .resource(resource)
        .scope(scope);
    let tokens = kiosk.device_token_with(&request).await.unwrap();
    tokens.access_token.expose_secret().to_string()
}

/// Status and `WWW-Authenticate` of `GET url` with `authorization`.
async fn answer(url: &str, authorization: &[&str]) -> (u16, Option<String>, String) {
    let mut request = reqwest::Client::new().get(url);
    for value in authorization {
        request = request.header("authorization", *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (status, challenge, response.text().await.unwrap())
}

const INVALID_TOKEN: &str = r#"Bearer error="invalid_token""#;
const INVALID_REQUEST: &str = r#"Bearer error="invalid_request""#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_has_its_status_and_challenge() {
    let s = setup().await;
    let server = ResourceServer::builder()
        .issuer(s.idp.issuer())
        .audience(APP)
        .build()
        .await
        .unwrap();
    let base = serve(server).await;
    let me = format!("{base}/me");
    let admin = format!("{base}/admin");

    let good = device_token(&s.kiosk, APP, "read").await;
    let bearer = format!("Bearer {good}");
    let (status, challenge, body) = answer(&me, &[&bearer]).await;
    assert_eq!((status, challenge), (200, None), "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["sub"], s.kiosk.client_auth().client_id.to_string());
    assert_eq!(body["scope"], "read");

    // No token at all, or another scheme: 401 and no error code (RFC 6750 §3.1).
    assert_eq!(
        answer(&me, &[]).await,
        (401, Some("Bearer".into()), String::new())
    );
    assert_eq!(
        answer(&me, &["Basic YWxpY2U6c2VjcmV0"]).await,
        (401, Some("Bearer".into()), String::new())
    );

    // The device's own token (audience: the device, not this application).
    let own = s.kiosk.device_token().await.unwrap();
    let own = format!("Bearer {}", own.access_token.expose_secret());
    assert_eq!(
        answer(&me, &[&own]).await,
        (401, Some(INVALID_TOKEN.into()), String::new())
    );

    // One changed byte in the signature.
    let mut changed = good.clone().into_bytes();
    let last = changed.len() - 2;
    changed[last] = if changed[last] == b'A' { b'B' } else { b'A' };
    let changed = format!("Bearer {}", String::from_utf8(changed).unwrap());
    assert_eq!(
        answer(&me, &[&changed]).await.1.as_deref(),
        Some(INVALID_TOKEN)
    );

    // An ID token (typ JWT) passed as an access token.
    let login = s
        .kiosk
        .ciba(&CibaRequest::for_username("alice").resource(APP))
        .await
        .unwrap();
    let id_token = login
        .tokens
        .id_token
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_string();
    let (status, challenge, _) = answer(&me, &[&format!("Bearer {id_token}")]).await;
    assert_eq!((status, challenge.as_deref()), (401, Some(INVALID_TOKEN)));
    // alice's access token for the application is accepted.
    let alice = format!("Bearer {}", login.tokens.access_token.expose_secret());
    let (status, _, body) = answer(&me, &[&alice]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""sub":"alice""#), "{body}");

    // An opaque token, and no introspection configured.
    assert_eq!(
        answer(&me, &["Bearer at_0123456789"]).await.1.as_deref(),
        Some(INVALID_TOKEN)
    );

    // Malformed requests: 400 invalid_request.
    let query = format!("{me}?access_token={good}");
    assert_eq!(
        answer(&query, &[]).await,
        (400, Some(INVALID_REQUEST.into()), String::new())
    );
    assert_eq!(answer(&me, &[&bearer, &bearer]).await.0, 400);
    assert_eq!(
        answer(&me, &["Bearer two words"]).await.1.as_deref(),
        Some(INVALID_REQUEST)
    );
    assert_eq!(answer(&me, &["Bearer"]).await.0, 400);

    // A valid token without the scope the route needs: 403.
    assert_eq!(
        answer(&admin, &[&bearer]).await,
        (
            403,
            Some(r#"Bearer error="insufficient_scope", scope="admin""#.into()),
            String::new()
        )
    );
    let admin_token = device_token(&s.kiosk, APP, "read admin").await;
    assert_eq!(
        answer(&admin, &[&format!("Bearer {admin_token}")]).await.0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_with_one_opaque_token_cost_one_introspection() {
    let s = setup().await;
    let server = ResourceServer::builder()
        .audience(LAB)
        .introspection(s.app_identity.clone())
        .build()
        .await
        .unwrap();
    let base = serve(server).await;
    let me = format!("{base}/me");
    let opaque = device_token(&s.kiosk, LAB, "read").await;
    assert!(!onesoidc_core::is_jwt(&opaque), "{opaque}");
    let before = s.idp.stats().introspection_requests;

    let http = reqwest::Client::new();
    let bearer = Arc::new(format!("Bearer {opaque}"));
    let mut all = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (http, me, bearer) = (http.clone(), me.clone(), bearer.clone());
        all.spawn(async move {
            let response = http
                .get(&me)
                .header("authorization", bearer.as_str())
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        });
    }
    while let Some(status) = all.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    assert_eq!(s.idp.stats().introspection_requests - before, 1);

    // A token the provider says is inactive is asked about every time.
    let unknown = "Bearer at_unknown0123456789";
    for _ in 0..3 {
        assert_eq!(
            answer(&me, &[unknown]).await.1.as_deref(),
            Some(INVALID_TOKEN)
        );
    }
    assert_eq!(
        s.idp.stats().introspection_requests - before,
        4,
        "inactive answers are not cached"
    );
}

/// A token from the dev IdP's token endpoint (client credentials for
/// `resource`), bound to `key` by a DPoP proof (RFC 9449 §5).
async fn bound_device_token(s: &Setup, key: &onesoidc_core::DpopKey, resource: &str) -> String {
    let endpoint = onesoidc_core::Endpoint::from(s.idp.token_endpoint().as_str());
    let form = s
        .kiosk
        .client_auth()
        .authenticated_form(
            &endpoint,
            &[
                ("grant_type", "client_credentials"),
                ("resource", resource),
                ("scope", "read"),
            ],
            std::time::SystemTime::now(),
        )
        .unwrap();
    let url = url::Url::parse(endpoint.as_str()).unwrap();
    let proof = key
        .proof("POST", &url, None, None, std::time::SystemTime::now())
        .unwrap();
    let mut request = reqwest::Client::new()
        .post(endpoint.as_str())
        .header("DPoP", proof)
        .body(form.body().clone());
    for (name, value) in form.headers() {
        request = request.header(name, value);
    }
    let answer: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
    assert_eq!(answer["token_type"], "DPoP", "{answer}");
    answer["access_token"].as_str().unwrap().to_string()
}

/// The dev IdP's DPoP-bound tokens, a JWT for this application and an
/// opaque one for the lab (its introspection answer says `cnf.jkt`): each
/// is accepted with a proof of the device's key, and refused with a proof
/// from a freshly generated key (a stolen token) and as `Bearer`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_idps_bound_tokens_need_their_keys_proof() {
    let s = setup().await;
    let jwt_server = ResourceServer::builder()
        .issuer(s.idp.issuer())
        .audience(APP)
        .build()
        .await
        .unwrap();
    let lab_server = ResourceServer::builder()
        .audience(LAB)
        .introspection(s.app_identity.clone())
        .build()
        .await
        .unwrap();
    let device_key = onesoidc_core::DpopKey::generate().unwrap();
    let thief = onesoidc_core::DpopKey::generate().unwrap();
    for (kind, server, resource) in [("JWT", jwt_server, APP), ("opaque", lab_server, LAB)] {
        let token = bound_device_token(&s, &device_key, resource).await;
        assert_eq!(onesoidc_core::is_jwt(&token), kind == "JWT", "{kind}");
        let base = serve(server).await;
        let me = format!("{base}/me");
        // Without `public_url`, the layer takes `https://` and the Host header.
        let htu = url::Url::parse(&me.replacen("http://", "https://", 1)).unwrap();
        let now = std::time::SystemTime::now();
        let send = |key: &onesoidc_core::DpopKey| {
            let proof = key.proof("GET", &htu, Some(&token), None, now).unwrap();
            reqwest::Client::new()
                .get(&me)
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", proof)
                .send()
        };
        let stolen = send(&thief).await.unwrap();
        assert_eq!(stolen.status(), 401, "{kind}");
        assert_eq!(
            stolen.headers()["www-authenticate"],
            r#"DPoP error="invalid_dpop_proof", algs="ES256 ES384 ES512 PS256 PS384 PS512 RS256""#,
            "{kind}"
        );
        let as_bearer = answer(&me, &[&format!("Bearer {token}")]).await;
        assert_eq!(
            (as_bearer.0, as_bearer.1.as_deref()),
            (401, Some(INVALID_TOKEN)),
            "{kind}"
        );
        let accepted = send(&device_key).await.unwrap();
        assert_eq!(accepted.status(), 200, "{kind}");
        let body: serde_json::Value = accepted.json().await.unwrap();
        assert_eq!(
            body["sub"],
            s.kiosk.client_auth().client_id.to_string(),
            "{kind}"
        );
    }
}
