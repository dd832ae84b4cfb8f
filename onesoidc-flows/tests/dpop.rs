//! DPoP in the flows (RFC 9449) against a mocked provider: the exact
//! proofs sent, nonces, the token type checks, and `authorize`.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mockito::{Matcher, Request};
use onesoidc_core::{
    DeviceConfig, DpopKey, DpopProofExpectations, ExposeSecret, KeyType, PemSigner, PublicJwk,
    TokenSet, verify_dpop_proof,
};
use onesoidc_flows::{DeviceIdentity, IdentityPaths, OnesIdClient};
use onesoidc_http::ReqwestClient;
use serde_json::Value;

fn identity(host: &str, key_type: KeyType) -> DeviceIdentity {
    let yaml = format!(
        "id: dev-1\nclient_id: client-1\nhost: {host}\nkey_type: {key_type}\nkey_security: default\n"
    );
    let config = DeviceConfig::from_yaml_str(&yaml, "device.yml".as_ref()).unwrap();
    let signer = PemSigner::generate(key_type).unwrap();
    let jwk = signer.public_jwk();
    let mut identity = DeviceIdentity::from_parts(config, Arc::new(signer));
    identity.public_jwk = Some(jwk);
    identity
}

fn dpop_client(identity: DeviceIdentity) -> OnesIdClient {
    OnesIdClient::builder()
        .identity(identity)
        .http(ReqwestClient::new().unwrap())
        .dpop(true)
        .build()
        .unwrap()
}

async fn provider(dpop_algs: &[&str]) -> mockito::ServerGuard {
    let mut server = mockito::Server::new_async().await;
    let base = server.url();
    server
        .mock("GET", "/oidc/.well-known/openid-configuration")
        .with_body(
            serde_json::json!({
                "issuer": format!("{base}/oidc"),
                "token_endpoint": format!("{base}/oidc/token"),
                "jwks_uri": format!("{base}/oidc/jwks"),
                "dpop_signing_alg_values_supported": dpop_algs,
            })
            .to_string(),
        )
        .create_async()
        .await;
    server
}

/// A provider accepting ES256 proofs, its URL, and a P-256 device's
/// client with DPoP on.
async fn es256_provider_and_client() -> (mockito::ServerGuard, String, OnesIdClient) {
    let server = provider(&["ES256"]).await;
    let base = server.url();
    let client = dpop_client(identity(&base, KeyType::EccP256));
    (server, base, client)
}

/// The `DPoP` header of `request`, decoded: (proof, header, claims).
fn proof_of(request: &Request) -> Option<(String, Value, Value)> {
    let values = request.header("dpop");
    let [value] = values.as_slice() else {
        return None;
    };
    let proof = value.to_str().ok()?.to_string();
    let parts: Vec<&str> = proof.split('.').collect();
    let decode = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    let (header, claims) = (decode(parts[0]), decode(parts[1]));
    Some((proof, header, claims))
}

fn nonce_of(request: &Request) -> Option<String> {
    proof_of(request).and_then(|(_, _, claims)| claims["nonce"].as_str().map(str::to_string))
}

fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(request.body().unwrap())
        .into_owned()
        .collect()
}

const BOUND: &str = r#"{"access_token":"bound-at","token_type":"DPoP","expires_in":300}"#;

#[tokio::test]
async fn device_token_sends_one_exact_proof_from_the_device_key_and_keeps_the_binding() {
    let mut server = provider(&["ES256", "ES384"]).await;
    let base = server.url();
    let identity = identity(&base, KeyType::EccP256);
    let device_jkt = identity.public_jwk.as_ref().unwrap().thumbprint().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_by_mock = seen.clone();
    let token = server
        .mock("POST", "/oidc/token")
        .match_body(Matcher::UrlEncoded(
            "grant_type".into(),
            "client_credentials".into(),
        ))
        .match_request(move |request| {
            seen_by_mock.lock().unwrap().push(proof_of(request));
            true
        })
        .with_body(BOUND)
        .expect(2)
        .create_async()
        .await;
    let client = dpop_client(identity);
    let before = SystemTime::now();
    let tokens = client.device_token().await.unwrap();
    client.device_token().await.unwrap();
    token.assert_async().await;

    assert_eq!(tokens.token_type, "DPoP");
    assert_eq!(tokens.dpop_jkt.as_deref(), Some(device_jkt.as_str()));
    let seen = seen.lock().unwrap();
    let mut jtis = Vec::new();
    for proof in seen.iter() {
        let (proof, header, claims) = proof
            .clone()
            .expect("every token request has one DPoP header");
        let mut names: Vec<&String> = header.as_object().unwrap().keys().collect();
        names.sort();
        assert_eq!(names, ["alg", "jwk", "typ"]);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        let jwk: PublicJwk = serde_json::from_value(header["jwk"].clone()).unwrap();
        assert_eq!(jwk.thumbprint().unwrap(), device_jkt);
        assert!(header["jwk"].get("d").is_none());
        let mut names: Vec<&String> = claims.as_object().unwrap().keys().collect();
        names.sort();
        assert_eq!(names, ["htm", "htu", "iat", "jti"], "no ath, no nonce");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], format!("{base}/oidc/token"));
        let iat = claims["iat"].as_u64().unwrap();
        let before = before.duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!(iat >= before && iat <= before + 60, "iat {iat}");
        jtis.push(claims["jti"].as_str().unwrap().to_string());
        let url = url::Url::parse(&format!("{base}/oidc/token")).unwrap();
        let checked = verify_dpop_proof(
            &proof,
            &DpopProofExpectations::new("POST", &url),
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(checked.key_thumbprint, device_jkt);
    }
    assert_ne!(jtis[0], jtis[1], "a fresh jti per request");
}

#[tokio::test]
async fn a_device_key_the_provider_does_not_accept_gives_way_to_dpop_pem_beside_the_identity() {
    let mut server = provider(&["ES256"]).await;
    let base = server.url();
    let dir = tempfile::tempdir().unwrap();
    let paths = IdentityPaths::new(dir.path().join("device.yml"), dir.path().join("keys"));
    let identity = identity(&base, KeyType::Rsa2048);
    let device_jkt = identity.public_jwk.as_ref().unwrap().thumbprint().unwrap();
    let algs = Arc::new(Mutex::new(Vec::new()));
    let algs_seen = algs.clone();
    server
        .mock("POST", "/oidc/token")
        .match_request(move |request| {
            let (_, header, _) = proof_of(request).unwrap();
            algs_seen.lock().unwrap().push(header["alg"].clone());
            true
        })
        .with_body(BOUND)
        .create_async()
        .await;
    let build = || {
        OnesIdClient::builder()
            .identity(identity.clone())
            .identity_paths(paths.clone())
            .http(ReqwestClient::new().unwrap())
            .dpop(true)
            .build()
            .unwrap()
    };
    let first = build().device_token().await.unwrap();
    let second = build().device_token().await.unwrap();
    assert_ne!(first.dpop_jkt.as_deref(), Some(device_jkt.as_str()));
    assert_eq!(
        first.dpop_jkt, second.dpop_jkt,
        "the same dpop.pem, loaded again"
    );
    let pem = std::fs::read(paths.dpop_key()).unwrap();
    let key =
        DpopKey::from_pem_signer(PemSigner::from_pem(&pem, &paths.dpop_key()).unwrap()).unwrap();
    assert_eq!(first.dpop_jkt.as_deref(), Some(key.thumbprint()));
    assert_eq!(*algs.lock().unwrap(), ["ES256", "ES256"]);
}

#[tokio::test]
async fn use_dpop_nonce_is_retried_once_then_the_latest_nonce_is_sent() {
    let (mut server, _, client) = es256_provider_and_client().await;
    let challenge = server
        .mock("POST", "/oidc/token")
        .match_request(|request| nonce_of(request).is_none())
        .with_status(400)
        .with_header("DPoP-Nonce", "n-1")
        .with_body(r#"{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof"}"#)
        .expect(1)
        .create_async()
        .await;
    let first = server
        .mock("POST", "/oidc/token")
        .match_request(|request| nonce_of(request).as_deref() == Some("n-1"))
        .with_header("DPoP-Nonce", "n-2")
        .with_body(BOUND)
        .expect(1)
        .create_async()
        .await;
    let rotated = server
        .mock("POST", "/oidc/token")
        .match_request(|request| nonce_of(request).as_deref() == Some("n-2"))
        .with_body(BOUND)
        .expect(2)
        .create_async()
        .await;
    for _ in 0..3 {
        assert_eq!(client.device_token().await.unwrap().token_type, "DPoP");
    }
    challenge.assert_async().await;
    first.assert_async().await;
    rotated.assert_async().await;
}

#[tokio::test]
async fn a_second_use_dpop_nonce_in_a_row_is_not_retried_again() {
    let (mut server, _, client) = es256_provider_and_client().await;
    let always = server
        .mock("POST", "/oidc/token")
        .with_status(400)
        .with_header("DPoP-Nonce", "n-x")
        .with_body(r#"{"error":"use_dpop_nonce"}"#)
        .expect(2)
        .create_async()
        .await;
    let error = client.device_token().await.unwrap_err();
    assert_eq!(error.oauth_error(), Some("use_dpop_nonce"));
    always.assert_async().await;
}

fn user_tokens(refresh_token: &str) -> TokenSet {
    TokenSet {
        access_token: "old-at".to_string().into(),
        token_type: "DPoP".into(),
        expires_at: None,
        refresh_token: Some(refresh_token.to_string().into()),
        id_token: None,
        scope: None,
        dpop_jkt: None,
    }
}

#[tokio::test]
async fn a_refresh_challenged_for_a_nonce_is_retried_with_the_same_refresh_token() {
    let (mut server, _, client) = es256_provider_and_client().await;
    let refresh_tokens = Arc::new(Mutex::new(Vec::new()));
    let seen = refresh_tokens.clone();
    let refresh_token_sent = move |request: &Request| {
        let fields = form(request);
        let rt = fields
            .iter()
            .find(|(k, _)| k == "refresh_token")
            .map(|(_, v)| v.clone());
        seen.lock().unwrap().push(rt);
        true
    };
    let seen_again = refresh_token_sent.clone();
    server
        .mock("POST", "/oidc/token")
        .match_request(move |request| nonce_of(request).is_none() && refresh_token_sent(request))
        .with_status(400)
        .with_header("DPoP-Nonce", "n-1")
        .with_body(r#"{"error":"use_dpop_nonce"}"#)
        .expect(1)
        .create_async()
        .await;
    server
        .mock("POST", "/oidc/token")
        .match_request(move |request| {
            nonce_of(request).as_deref() == Some("n-1") && seen_again(request)
        })
        .with_body(r#"{"access_token":"new-at","token_type":"DPoP","refresh_token":"rt-2"}"#)
        .expect(1)
        .create_async()
        .await;
    let refreshed = client.refresh(&user_tokens("rt-1")).await.unwrap();
    assert_eq!(refreshed.access_token.expose_secret(), "new-at");
    assert_eq!(
        refreshed.dpop_jkt.as_deref(),
        Some(client.dpop_key().await.unwrap().unwrap().thumbprint())
    );
    assert_eq!(
        *refresh_tokens.lock().unwrap(),
        [Some("rt-1".to_string()), Some("rt-1".to_string())]
    );
}

#[tokio::test]
async fn a_refresh_refused_otherwise_is_not_retried() {
    let (mut server, base, client) = es256_provider_and_client().await;
    let refused = server
        .mock("POST", "/oidc/token")
        .with_status(400)
        .with_header("DPoP-Nonce", "n-1")
        .with_body(r#"{"error":"invalid_grant"}"#)
        .expect(1)
        .create_async()
        .await;
    let error = client.refresh(&user_tokens("rt-1")).await.unwrap_err();
    assert_eq!(error.oauth_error(), Some("invalid_grant"));
    refused.assert_async().await;
    let token_url = url::Url::parse(&format!("{base}/oidc/token")).unwrap();
    assert_eq!(
        client.dpop_nonces().get(&token_url).as_deref(),
        Some("n-1"),
        "the nonce is kept from any answer"
    );
}

#[tokio::test]
async fn the_ciba_poll_sends_a_proof_and_its_tokens_are_bound() {
    let (mut server, _, client) = es256_provider_and_client().await;
    server
        .mock("POST", "/oidc/token")
        .match_body(Matcher::UrlEncoded(
            "grant_type".into(),
            onesoidc_core::CIBA_GRANT_TYPE.into(),
        ))
        .match_request(|request| {
            proof_of(request).is_some_and(|(_, _, claims)| claims["htm"] == "POST")
        })
        .with_body(BOUND)
        .expect(1)
        .create_async()
        .await;
    let answer = client.ciba_poll(&"req-1".into()).await.unwrap();
    let onesoidc_core::CibaPollResponse::Tokens(tokens) = answer else {
        panic!("expected tokens, got {answer:?}");
    };
    assert_eq!(
        tokens.dpop_jkt.as_deref(),
        Some(client.dpop_key().await.unwrap().unwrap().thumbprint())
    );
}

#[tokio::test]
async fn a_token_type_that_does_not_match_the_request_is_an_error_naming_both() {
    let mut server = provider(&["ES256"]).await;
    let base = server.url();
    server
        .mock("POST", "/oidc/token")
        .match_request(|request| proof_of(request).is_some())
        .with_body(r#"{"access_token":"at","token_type":"Bearer"}"#)
        .create_async()
        .await;
    server
        .mock("POST", "/oidc/token")
        .match_request(|request| proof_of(request).is_none())
        .with_body(r#"{"access_token":"at","token_type":"DPoP"}"#)
        .create_async()
        .await;
    let bound = dpop_client(identity(&base, KeyType::EccP256));
    let error = bound.device_token().await.unwrap_err().to_string();
    assert!(
        error.contains("`token_type` is `Bearer` but the request carried a DPoP proof"),
        "{error}"
    );
    assert!(error.contains("/oidc/token"), "{error}");
    let bearer = OnesIdClient::new(
        identity(&base, KeyType::EccP256),
        ReqwestClient::new().unwrap(),
    )
    .unwrap();
    let error = bearer.device_token().await.unwrap_err().to_string();
    assert!(
        error.contains("`token_type` is `DPoP` but the request carried no DPoP proof"),
        "{error}"
    );
    assert!(!error.contains("\"at\""), "{error}");
}

#[tokio::test]
async fn without_dpop_nothing_changes() {
    let mut server = provider(&["ES256"]).await;
    let base = server.url();
    let token = server
        .mock("POST", "/oidc/token")
        .match_request(|request| request.header("dpop").is_empty())
        .with_body(r#"{"access_token":"at","token_type":"Bearer"}"#)
        .expect(1)
        .create_async()
        .await;
    let client = OnesIdClient::new(
        identity(&base, KeyType::EccP256),
        ReqwestClient::new().unwrap(),
    )
    .unwrap();
    let tokens = client.device_token().await.unwrap();
    assert_eq!(
        (tokens.token_type.as_str(), tokens.dpop_jkt),
        ("Bearer", None)
    );
    assert!(client.dpop_key().await.unwrap().is_none());
    token.assert_async().await;
}

#[tokio::test]
async fn authorize_gives_dpop_headers_with_ath_for_a_bound_token_and_bearer_otherwise() {
    let (mut server, base, client) = es256_provider_and_client().await;
    server
        .mock("POST", "/oidc/token")
        .with_body(BOUND)
        .create_async()
        .await;
    let tokens = client.device_token().await.unwrap();
    let app = url::Url::parse("https://app.example/api/me?page=1").unwrap();
    let headers = client.authorize(&tokens, "GET", &app).await.unwrap();
    assert_eq!(headers.authorization().expose_secret(), "DPoP bound-at");
    let expect = DpopProofExpectations::new("GET", &app)
        .access_token("bound-at", tokens.dpop_jkt.as_deref().unwrap());
    verify_dpop_proof(headers.dpop().unwrap(), &expect, SystemTime::now()).unwrap();

    let bearer = TokenSet {
        dpop_jkt: None,
        token_type: "Bearer".into(),
        ..tokens.clone()
    };
    let headers = client.authorize(&bearer, "GET", &app).await.unwrap();
    assert_eq!(headers.authorization().expose_secret(), "Bearer bound-at");
    assert!(headers.dpop().is_none());

    let other = OnesIdClient::builder()
        .identity(identity(&base, KeyType::EccP256))
        .http(ReqwestClient::new().unwrap())
        .dpop_key(DpopKey::generate().unwrap())
        .build()
        .unwrap();
    let error = other
        .authorize(&tokens, "GET", &app)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(tokens.dpop_jkt.as_deref().unwrap()),
        "{error}"
    );
}

#[tokio::test]
async fn send_authorized_meets_an_applications_nonce_challenge_once() {
    let (mut server, base, client) = es256_provider_and_client().await;
    server
        .mock("POST", "/oidc/token")
        .with_body(BOUND)
        .create_async()
        .await;
    let challenge = server
        .mock("GET", "/api/me")
        .match_request(|request| nonce_of(request).is_none())
        .with_status(401)
        .with_header(
            "WWW-Authenticate",
            r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#,
        )
        .with_header("DPoP-Nonce", "app-n-1")
        .expect(1)
        .create_async()
        .await;
    let api_url = format!("{base}/api/me");
    let expected_url = url::Url::parse(&api_url).unwrap();
    let answered = server
        .mock("GET", "/api/me")
        .match_request(move |request| {
            let authorization = request.header("authorization");
            let Some((proof, _, claims)) = proof_of(request) else {
                return false;
            };
            let jkt = claims_jkt(&proof);
            let expect = DpopProofExpectations::new("GET", &expected_url)
                .access_token("bound-at", &jkt)
                .nonce("app-n-1");
            authorization.len() == 1
                && authorization[0] == "DPoP bound-at"
                && claims["nonce"] == "app-n-1"
                && verify_dpop_proof(&proof, &expect, SystemTime::now()).is_ok()
        })
        .with_body("me")
        .expect(1)
        .create_async()
        .await;
    let tokens = client.device_token().await.unwrap();
    let http = reqwest::Client::new();
    let answer = client
        .send_authorized(&tokens, http.get(&api_url))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    challenge.assert_async().await;
    answered.assert_async().await;

    // A bearer token goes as Bearer, with no proof and no retry.
    let bearer_mock = server
        .mock("GET", "/api/bearer")
        .match_header("authorization", "Bearer plain-at")
        .match_request(|request| request.header("dpop").is_empty())
        .expect(1)
        .create_async()
        .await;
    let bearer = TokenSet {
        access_token: "plain-at".to_string().into(),
        token_type: "Bearer".into(),
        dpop_jkt: None,
        ..tokens
    };
    client
        .send_authorized(&bearer, http.get(format!("{base}/api/bearer")))
        .await
        .unwrap();
    bearer_mock.assert_async().await;
}

/// The thumbprint of the key in a proof's header.
fn claims_jkt(proof: &str) -> String {
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(proof.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    serde_json::from_value::<PublicJwk>(header["jwk"].clone())
        .unwrap()
        .thumbprint()
        .unwrap()
}
