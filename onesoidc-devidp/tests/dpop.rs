//! DPoP (RFC 9449) at the dev IdP: proofs at the token endpoint for every
//! grant, the tokens they bind (`cnf.jkt`, `token_type: DPoP`), every
//! refusal, server nonces (`dpop_nonce`), `require_dpop`, and bound tokens
//! at the provider's own bearer-token routes. Raw HTTP, proofs from
//! `onesoidc_core::DpopKey`.

mod common;

use std::time::SystemTime;

use common::*;
use onesoidc_core::{DEFAULT_DPOP_ALGORITHMS, DpopKey, KeyType, PemSigner};
use onesoidc_devidp::{AccessTokenFormat, Application, DevIdpConfig};
use serde_json::json;

const VHH: &str = "https://vhh.example.com";
const LAB: &str = "https://lab.example.com";

fn token_url(h: &Harness) -> url::Url {
    url::Url::parse(&h.idp.token_endpoint()).unwrap()
}

/// A fresh proof for the token endpoint, with `nonce` when given.
fn proof(h: &Harness, key: &DpopKey, nonce: Option<&str>) -> String {
    key.proof("POST", &token_url(h), None, nonce, SystemTime::now())
        .unwrap()
}

/// A token request with a fresh client assertion and these `DPoP` headers.
async fn token_with(
    h: &Harness,
    device: &TestDevice,
    proofs: &[&str],
    fields: &[(&str, &str)],
) -> Resp {
    let url = h.idp.token_endpoint();
    let assertion = device.assertion(&url);
    let mut all = fields.to_vec();
    all.push(("client_id", &device.client_id));
    all.push(("client_assertion_type", ASSERTION_TYPE));
    all.push(("client_assertion", &assertion));
    let mut request = h.http.post(&url).form(&all);
    for proof in proofs {
        request = request.header("DPoP", *proof);
    }
    into_resp(request.send().await.unwrap()).await
}

const CLIENT_CREDENTIALS: [(&str, &str); 1] = [("grant_type", "client_credentials")];

/// A token request with a fresh proof of `key` (and `nonce`).
async fn with_proof(
    h: &Harness,
    device: &TestDevice,
    key: &DpopKey,
    nonce: Option<&str>,
    fields: &[(&str, &str)],
) -> Resp {
    token_with(h, device, &[&proof(h, key, nonce)], fields).await
}

/// Asserts a token answer is bound to `key`: `token_type: DPoP`, and
/// `cnf.jkt` in the JWT access token.
#[track_caller]
fn assert_bound_jwt(resp: &Resp, key: &DpopKey) {
    let body = resp.assert_ok();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["cnf"]["jkt"], key.thumbprint(), "{claims}");
}

fn access_token(resp: &Resp) -> String {
    resp.body["access_token"].as_str().unwrap().to_string()
}

fn with_lab(require_dpop: bool, format: AccessTokenFormat) -> DevIdpConfig {
    let mut config = fast_config();
    config.applications.push(Application {
        client_identifier: "lab".into(),
        client_id: "lab".into(),
        name: "Lab".into(),
        url: LAB.into(),
        access_token_format: format,
        require_dpop,
    });
    config
}

#[tokio::test]
async fn discovery_advertises_the_proof_algorithms_the_provider_verifies() {
    let h = Harness::fast().await;
    let url = format!("{}/.well-known/openid-configuration", h.idp.issuer());
    let meta = h.get(&url, None).await.assert_ok().clone();
    assert_eq!(
        meta["dpop_signing_alg_values_supported"],
        json!(DEFAULT_DPOP_ALGORITHMS)
    );
    // Every key type a device can have signs an accepted proof.
    for key_type in ALL_KEY_TYPES {
        let key = DpopKey::from_pem_signer(PemSigner::generate(key_type).unwrap()).unwrap();
        let device = h.device(KeyType::EccP256);
        let resp = with_proof(&h, &device, &key, None, &CLIENT_CREDENTIALS).await;
        assert_bound_jwt(&resp, &key);
    }
}

#[tokio::test]
async fn client_credentials_with_a_proof_is_bound_and_without_is_bearer() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let key = DpopKey::generate().unwrap();

    let resp = with_proof(&h, &device, &key, None, &CLIENT_CREDENTIALS).await;
    assert_bound_jwt(&resp, &key);
    assert_eq!(resp.header("dpop-nonce"), None, "nonces are off by default");
    let introspection = h.introspect(&device, &access_token(&resp)).await;
    assert_eq!(introspection["cnf"]["jkt"], key.thumbprint());
    assert_eq!(introspection["token_type"], "DPoP");

    let resp = token_with(&h, &device, &[], &CLIENT_CREDENTIALS).await;
    assert_eq!(resp.assert_ok()["token_type"], "Bearer");
    let claims = claims_of(&access_token(&resp));
    assert!(claims.get("cnf").is_none(), "{claims}");
    let introspection = h.introspect(&device, &access_token(&resp)).await;
    assert!(introspection.get("cnf").is_none(), "{introspection}");
    assert_eq!(introspection["token_type"], "Bearer");

    assert_eq!(h.idp.stats().dpop_bound_tokens_issued, 1);
}

#[tokio::test]
async fn opaque_bound_tokens_carry_cnf_in_introspection() {
    let h = Harness::start(with_lab(false, AccessTokenFormat::Opaque)).await;
    let device = h.device(KeyType::EccP384);
    let key = DpopKey::generate().unwrap();
    let fields = [("grant_type", "client_credentials"), ("resource", LAB)];
    let resp = with_proof(&h, &device, &key, None, &fields).await;
    assert_eq!(resp.assert_ok()["token_type"], "DPoP");
    let token = access_token(&resp);
    assert!(token.starts_with("at_"), "opaque: {token}");
    let introspection = h.introspect(&device, &token).await;
    assert_eq!(introspection["active"], true);
    assert_eq!(introspection["cnf"]["jkt"], key.thumbprint());
    assert_eq!(introspection["token_type"], "DPoP");
}

/// A CIBA login for alice, approved; returns its auth_req_id once the
/// interval has passed (so the next poll is not `slow_down`).
async fn approved_ciba(h: &Harness, device: &TestDevice) -> String {
    let id = h
        .start_ciba(device, &h.request_claims(device, "alice"))
        .await;
    h.idp.approve_ciba(&id).unwrap();
    tokio::time::sleep(INTERVAL).await;
    id
}

fn ciba_fields(auth_req_id: &str) -> [(&str, &str); 2] {
    [("grant_type", CIBA_GRANT), ("auth_req_id", auth_req_id)]
}

fn refresh_fields(refresh_token: &str) -> [(&str, &str); 2] {
    [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ]
}

fn refresh_token(resp: &Resp) -> String {
    resp.body["refresh_token"].as_str().unwrap().to_string()
}

/// As node oidc-provider does for confidential clients: the refresh token
/// is not bound, each refresh binds its access token to the key of that
/// request's proof (or is bearer without one).
#[tokio::test]
async fn ciba_and_refresh_are_bound_to_the_key_of_each_request() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::Rsa2048);
    let key = DpopKey::generate().unwrap();

    let id = approved_ciba(&h, &device).await;
    let resp = with_proof(&h, &device, &key, None, &ciba_fields(&id)).await;
    assert_bound_jwt(&resp, &key);
    assert!(resp.body["id_token"].is_string());
    let rt = refresh_token(&resp);

    let resp = with_proof(&h, &device, &key, None, &refresh_fields(&rt)).await;
    assert_bound_jwt(&resp, &key);
    let rt = refresh_token(&resp);

    let other = DpopKey::generate().unwrap();
    let resp = with_proof(&h, &device, &other, None, &refresh_fields(&rt)).await;
    assert_bound_jwt(&resp, &other);
    let rt = refresh_token(&resp);

    let resp = token_with(&h, &device, &[], &refresh_fields(&rt)).await;
    assert_eq!(resp.assert_ok()["token_type"], "Bearer");
    assert_eq!(h.idp.stats().dpop_bound_tokens_issued, 3);
}

#[tokio::test]
async fn bad_proofs_are_invalid_dpop_proof_naming_the_rule() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let key = DpopKey::generate().unwrap();
    let url = token_url(&h);
    let now = SystemTime::now();

    let cases = [
        ("htm", key.proof("GET", &url, None, None, now).unwrap()),
        (
            "htu",
            key.proof(
                "POST",
                &url::Url::parse("https://elsewhere.example/oidc/token").unwrap(),
                None,
                None,
                now,
            )
            .unwrap(),
        ),
        (
            "iat",
            key.proof(
                "POST",
                &url,
                None,
                None,
                now - std::time::Duration::from_secs(600),
            )
            .unwrap(),
        ),
        ("malformed", "not.a.proof".to_string()),
    ];
    for (rule, bad) in cases {
        let resp = token_with(&h, &device, &[&bad], &CLIENT_CREDENTIALS).await;
        resp.assert_error(400, "invalid_dpop_proof");
        let description = resp.body["error_description"].as_str().unwrap();
        assert!(description.contains(rule), "{rule}: {description}");
    }

    // A signature from another key than the header's `jwk`.
    let good = proof(&h, &key, None);
    let (signed, _) = good.rsplit_once('.').unwrap();
    let forged = format!(
        "{signed}.{}",
        proof(&h, &DpopKey::generate().unwrap(), None)
            .rsplit_once('.')
            .unwrap()
            .1
    );
    let resp = token_with(&h, &device, &[&forged], &CLIENT_CREDENTIALS).await;
    resp.assert_error(400, "invalid_dpop_proof");

    // The same proof twice: the second is a replay.
    let once = proof(&h, &key, None);
    token_with(&h, &device, &[&once], &CLIENT_CREDENTIALS)
        .await
        .assert_ok();
    let resp = token_with(&h, &device, &[&once], &CLIENT_CREDENTIALS).await;
    resp.assert_error(400, "invalid_dpop_proof");
    assert!(
        resp.body["error_description"]
            .as_str()
            .unwrap()
            .contains("replay")
    );

    // Two `DPoP` headers, each valid on its own.
    let (a, b) = (proof(&h, &key, None), proof(&h, &key, None));
    let resp = token_with(&h, &device, &[&a, &b], &CLIENT_CREDENTIALS).await;
    resp.assert_error(400, "invalid_dpop_proof");
    assert!(
        resp.body["error_description"]
            .as_str()
            .unwrap()
            .contains("more than one")
    );

    assert_eq!(h.idp.stats().dpop_bound_tokens_issued, 1);
    assert_eq!(h.idp.stats().rejected("invalid_dpop_proof"), 7);
}

#[tokio::test]
async fn an_application_that_requires_dpop_refuses_requests_without_a_proof() {
    let h = Harness::start(with_lab(true, AccessTokenFormat::Jwt)).await;
    let device = h.device(KeyType::EccP256);
    let key = DpopKey::generate().unwrap();
    let for_lab = [("grant_type", "client_credentials"), ("resource", LAB)];

    let resp = token_with(&h, &device, &[], &for_lab).await;
    resp.assert_error(400, "invalid_dpop_proof");
    let description = resp.body["error_description"].as_str().unwrap();
    assert!(
        description.contains("\"lab\"") && description.contains("requires DPoP"),
        "{description}"
    );
    assert_bound_jwt(&with_proof(&h, &device, &key, None, &for_lab).await, &key);
    // Other applications still take bearer requests.
    let for_vhh = [("grant_type", "client_credentials"), ("resource", VHH)];
    token_with(&h, &device, &[], &for_vhh).await.assert_ok();

    // A CIBA login for the application: its poll and its refreshes need a proof too.
    let claims = merge(h.request_claims(&device, "alice"), json!({"resource": LAB}));
    let id = h.start_ciba(&device, &claims).await;
    h.idp.approve_ciba(&id).unwrap();
    tokio::time::sleep(INTERVAL).await;
    token_with(&h, &device, &[], &ciba_fields(&id))
        .await
        .assert_error(400, "invalid_dpop_proof");
    let resp = with_proof(&h, &device, &key, None, &ciba_fields(&id)).await;
    assert_bound_jwt(&resp, &key);
    let rt = refresh_token(&resp);
    token_with(&h, &device, &[], &refresh_fields(&rt))
        .await
        .assert_error(400, "invalid_dpop_proof");
    let resp = with_proof(&h, &device, &key, None, &refresh_fields(&rt)).await;
    assert_bound_jwt(&resp, &key);
    assert_eq!(
        h.idp.stats().most_uses_of_a_refresh_token(),
        1,
        "the refused refresh spent nothing"
    );
}

#[tokio::test]
async fn require_dpop_for_every_application() {
    let h = Harness::start(DevIdpConfig {
        require_dpop: true,
        ..fast_config()
    })
    .await;
    let device = h.device(KeyType::EccP256);
    let resp = token_with(&h, &device, &[], &CLIENT_CREDENTIALS).await;
    resp.assert_error(400, "invalid_dpop_proof");
    assert!(
        resp.body["error_description"]
            .as_str()
            .unwrap()
            .contains("require_dpop")
    );
    let key = DpopKey::generate().unwrap();
    assert_bound_jwt(
        &with_proof(&h, &device, &key, None, &CLIENT_CREDENTIALS).await,
        &key,
    );
}

fn nonce_config() -> DevIdpConfig {
    DevIdpConfig {
        dpop_nonce: true,
        ..fast_config()
    }
}

#[track_caller]
fn nonce_of(resp: &Resp) -> String {
    resp.header("dpop-nonce")
        .expect("a DPoP-Nonce header")
        .to_string()
}

#[tokio::test]
async fn nonces_are_required_reused_until_rotated_and_stale_ones_refused() {
    let h = Harness::start(nonce_config()).await;
    let device = h.device(KeyType::EccP256);
    let key = DpopKey::generate().unwrap();

    let resp = with_proof(&h, &device, &key, None, &CLIENT_CREDENTIALS).await;
    resp.assert_error(400, "use_dpop_nonce");
    let nonce = nonce_of(&resp);
    assert_eq!(h.idp.stats().dpop_nonce_challenges, 1);

    let resp = with_proof(&h, &device, &key, Some(&nonce), &CLIENT_CREDENTIALS).await;
    assert_bound_jwt(&resp, &key);
    assert_eq!(
        nonce_of(&resp),
        nonce,
        "every answer carries the current nonce"
    );
    let resp = with_proof(&h, &device, &key, Some(&nonce), &CLIENT_CREDENTIALS).await;
    assert_bound_jwt(&resp, &key);
    assert_eq!(nonce_of(&resp), nonce, "the same nonce until it rotates");

    // Rotated once: the previous nonce is still accepted, the answer names the new one.
    let rotated = h
        .post_empty_json(&format!("{}/control/dpop/nonce/rotate", h.idp.host()))
        .await
        .assert_ok()["nonce"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rotated, nonce);
    let resp = with_proof(&h, &device, &key, Some(&nonce), &CLIENT_CREDENTIALS).await;
    assert_bound_jwt(&resp, &key);
    assert_eq!(nonce_of(&resp), rotated);

    // Rotated twice: the first nonce is stale.
    let newest = h.idp.rotate_dpop_nonce();
    let resp = with_proof(&h, &device, &key, Some(&nonce), &CLIENT_CREDENTIALS).await;
    resp.assert_error(400, "use_dpop_nonce");
    assert_eq!(nonce_of(&resp), newest);
    let resp = with_proof(&h, &device, &key, Some("made-up"), &CLIENT_CREDENTIALS).await;
    resp.assert_error(400, "use_dpop_nonce");
    assert_bound_jwt(
        &with_proof(&h, &device, &key, Some(&newest), &CLIENT_CREDENTIALS).await,
        &key,
    );
    assert_eq!(h.idp.stats().dpop_nonce_challenges, 3);

    // Bearer requests are not challenged: nonces are for proofs.
    let resp = token_with(&h, &device, &[], &CLIENT_CREDENTIALS).await;
    assert_eq!(resp.assert_ok()["token_type"], "Bearer");
}

/// The nonce check comes before the grant is looked at: a CIBA poll or a
/// refresh answered `use_dpop_nonce` is neither a poll nor a use.
#[tokio::test]
async fn a_nonce_challenge_spends_no_refresh_token_and_is_no_poll() {
    let h = Harness::start(nonce_config()).await;
    let device = h.device(KeyType::EccP256);
    let key = DpopKey::generate().unwrap();
    let nonce = h.idp.rotate_dpop_nonce();

    let id = approved_ciba(&h, &device).await;
    with_proof(&h, &device, &key, None, &ciba_fields(&id))
        .await
        .assert_error(400, "use_dpop_nonce");
    assert_eq!(h.idp.stats().ciba_polls(&id), 0);
    let resp = with_proof(&h, &device, &key, Some(&nonce), &ciba_fields(&id)).await;
    assert_bound_jwt(&resp, &key);
    assert_eq!(h.idp.stats().ciba_polls(&id), 1);

    let rt = refresh_token(&resp);
    with_proof(&h, &device, &key, None, &refresh_fields(&rt))
        .await
        .assert_error(400, "use_dpop_nonce");
    assert_eq!(h.idp.stats().most_uses_of_a_refresh_token(), 0, "not spent");
    let resp = with_proof(&h, &device, &key, Some(&nonce), &refresh_fields(&rt)).await;
    assert_bound_jwt(&resp, &key);
    let stats = h.idp.stats();
    assert_eq!(stats.most_uses_of_a_refresh_token(), 1);
    assert_eq!(stats.refresh_token_uses.get(&1), Some(&1));
    assert_eq!(stats.dpop_nonce_challenges, 2);
}

/// A GET or POST to one of the provider's own routes with
/// `Authorization: <scheme> <token>` and, when given, a `DPoP` proof.
async fn call_protected(
    h: &Harness,
    method: reqwest::Method,
    url: &str,
    authorization: &str,
    proof: Option<&str>,
) -> Resp {
    let mut request = h
        .http
        .request(method, url)
        .header("authorization", authorization);
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    into_resp(request.json(&json!({})).send().await.unwrap()).await
}

#[track_caller]
fn assert_dpop_challenge(resp: &Resp, error: &str) {
    resp.assert_error(401, error);
    let challenge = resp.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with(&format!("DPoP error=\"{error}\"")),
        "{challenge}"
    );
}

#[tokio::test]
async fn a_bound_token_at_the_providers_routes_needs_a_proof_of_its_key() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let key = DpopKey::generate().unwrap();
    let resp = with_proof(&h, &device, &key, None, &CLIENT_CREDENTIALS).await;
    let token = access_token(&resp);
    let apps = format!("{}/.well-known/applications", h.idp.issuer());
    let apps_url = url::Url::parse(&apps).unwrap();
    let dpop = format!("DPoP {token}");
    let get = reqwest::Method::GET;
    let proof_for = |key: &DpopKey, method: &str, url: &url::Url| {
        key.proof(method, url, Some(&token), None, SystemTime::now())
            .unwrap()
    };

    let good = proof_for(&key, "GET", &apps_url);
    let resp = call_protected(&h, get.clone(), &apps, &dpop, Some(&good)).await;
    assert_eq!(
        resp.assert_ok()["applications"][0]["client_identifier"],
        "vhh-server"
    );

    // Sent as Bearer, or as DPoP without a proof: refused with a DPoP challenge.
    let resp = call_protected(&h, get.clone(), &apps, &format!("Bearer {token}"), None).await;
    assert_dpop_challenge(&resp, "invalid_token");
    assert!(
        resp.body["error_description"]
            .as_str()
            .unwrap()
            .contains("not as Bearer")
    );
    assert_dpop_challenge(
        &call_protected(&h, get.clone(), &apps, &dpop, None).await,
        "invalid_token",
    );

    // The same proof again, a proof for another method, one without `ath`.
    let cases = [
        ("replay", good),
        ("htm", proof_for(&key, "POST", &apps_url)),
        (
            "ath",
            key.proof("GET", &apps_url, None, None, SystemTime::now())
                .unwrap(),
        ),
    ];
    for (rule, bad) in cases {
        let resp = call_protected(&h, get.clone(), &apps, &dpop, Some(&bad)).await;
        assert_dpop_challenge(&resp, "invalid_dpop_proof");
        let description = resp.body["error_description"].as_str().unwrap();
        assert!(description.contains(rule), "{rule}: {description}");
    }

    // A POST route: the proof names POST and the session URL.
    let sessions = format!("{}/qr/sessions", h.idp.issuer());
    let post_proof = proof_for(&key, "POST", &url::Url::parse(&sessions).unwrap());
    let resp = call_protected(
        &h,
        reqwest::Method::POST,
        &sessions,
        &dpop,
        Some(&post_proof),
    )
    .await;
    assert_eq!(resp.status, 201, "{}", resp.body);

    // An unbound token sent as DPoP is refused: it is a bearer token.
    let bearer = h.device_token(&device).await;
    let unbound = key
        .proof("GET", &apps_url, Some(&bearer), None, SystemTime::now())
        .unwrap();
    call_protected(&h, get, &apps, &format!("DPoP {bearer}"), Some(&unbound))
        .await
        .assert_error(401, "invalid_token");
}

/// The stolen-token case: a bound token taken off a device is useless with
/// a proof from the thief's own key, at the provider's routes and to an
/// application that checks the proof against introspection's `cnf.jkt`.
#[tokio::test]
async fn a_stolen_bound_token_with_a_proof_from_another_key_is_refused() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let key = DpopKey::generate().unwrap();
    let resp = with_proof(&h, &device, &key, None, &CLIENT_CREDENTIALS).await;
    let token = access_token(&resp);
    let thief = DpopKey::generate().unwrap();
    let apps = format!("{}/.well-known/applications", h.idp.issuer());
    let apps_url = url::Url::parse(&apps).unwrap();
    let stolen_proof = thief
        .proof("GET", &apps_url, Some(&token), None, SystemTime::now())
        .unwrap();

    let resp = call_protected(
        &h,
        reqwest::Method::GET,
        &apps,
        &format!("DPoP {token}"),
        Some(&stolen_proof),
    )
    .await;
    assert_dpop_challenge(&resp, "invalid_dpop_proof");
    assert!(
        resp.body["error_description"]
            .as_str()
            .unwrap()
            .contains("bound to")
    );

    // An application's check: introspect, then verify the proof against `cnf.jkt`.
    let introspection = h.introspect(&device, &token).await;
    let jkt = introspection["cnf"]["jkt"].as_str().unwrap();
    let app_url = url::Url::parse("https://vhh.example.com/orders").unwrap();
    let expect = |proof: &str| {
        onesoidc_core::verify_dpop_proof(
            proof,
            &onesoidc_core::DpopProofExpectations::new("GET", &app_url).access_token(&token, jkt),
            SystemTime::now(),
        )
    };
    let thiefs = thief
        .proof("GET", &app_url, Some(&token), None, SystemTime::now())
        .unwrap();
    assert!(matches!(
        expect(&thiefs),
        Err(onesoidc_core::DpopProofError::KeyNotBound { .. })
    ));
    let owners = key
        .proof("GET", &app_url, Some(&token), None, SystemTime::now())
        .unwrap();
    assert_eq!(expect(&owners).unwrap().key_thumbprint, key.thumbprint());
}

/// The console's token log tells a bound token from a bearer one, by the
/// start of its key's thumbprint (public; never the token).
#[tokio::test]
async fn the_console_marks_bound_tokens_with_their_key() {
    let h = Harness::fast().await;
    let device = h.device(KeyType::EccP256);
    let key = DpopKey::generate().unwrap();
    let resp = with_proof(&h, &device, &key, None, &CLIENT_CREDENTIALS).await;
    let token = access_token(&resp);
    token_with(&h, &device, &[], &CLIENT_CREDENTIALS)
        .await
        .assert_ok();

    let html = h
        .http
        .get(h.idp.console_url())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let jkt_start: String = key.thumbprint().chars().take(8).collect();
    assert!(
        html.contains(&format!(
            "DPoP-bound access token (300 s, jkt {jkt_start}…)"
        )),
        "{html}"
    );
    assert!(html.contains("access token (300 s)"), "the bearer one too");
    assert!(!html.contains(&token));
}
