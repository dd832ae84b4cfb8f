//! `onesoidc dev-idp`'s own options: the provider config file, lifetimes
//! and intervals (checked on the wire), the listen address, the console.

mod common;

use common::*;
use serde_json::{Value, json};

#[test]
fn help_lists_the_provider_options_and_the_config_keys() {
    let help = stdout(&onesoidc(&["dev-idp", "--help"]));
    for option in [
        "--provider-config <FILE>",
        "ONESOIDC_DEVIDP_CONFIG",
        "--listen <ADDR>",
        "--port <PORT>",
        "--public-host <URL>",
        "--access-token-ttl <DURATION>",
        "--refresh-token-ttl <DURATION>",
        "--ciba-interval <DURATION>",
        "--qr-interval <DURATION>",
        "--registration-interval <DURATION>",
        "--auto-approve-ms <MS>",
        "--dpop-nonce",
        "--require-dpop",
    ] {
        assert!(help.contains(option), "{option} in:\n{help}");
    }
    for key in [
        "users",
        "applications",
        "access_token_ttl_ms",
        "ciba_interval_ms",
        "qr_interval_ms",
        "registration_poll_interval_ms",
        "auto_approve",
        "devices",
        "dpop_nonce",
        "require_dpop",
    ] {
        assert!(
            help.contains(&format!("\n  {key} ")),
            "key {key} in:\n{help}"
        );
    }
    assert!(
        help.contains("console"),
        "the description names the console"
    );
}

#[test]
fn the_global_config_option_is_not_the_provider_config() {
    let out = onesoidc(&["dev-idp", "--port", "0", "--config", "devidp.json"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--provider-config"), "{stderr}");
}

#[test]
fn a_zero_lifetime_names_its_flag() {
    let out = onesoidc(&["dev-idp", "--port", "0", "--access-token-ttl", "0s"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--access-token-ttl"), "{stderr}");
}

#[test]
fn the_banner_starts_with_the_console_and_shows_the_provider_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("devidp.json");
    std::fs::write(
        &file,
        r#"{"users": ["carol", "dave"], "ciba_interval_ms": 4000}"#,
    )
    .unwrap();
    let server = DevIdpProcess::start(&[
        "--provider-config",
        file.to_str().unwrap(),
        "--ciba-interval",
        "1500ms",
    ]);
    assert_eq!(
        server.banner[0],
        format!("onesoidc dev-idp: console at {}/", server.host),
        "the console URL comes first"
    );
    let banner = server.banner.join("\n");
    assert!(banner.contains("users         carol, dave"), "{banner}");
}

/// `--require-dpop` refuses a token request without a proof,
/// `--dpop-nonce` challenges a proof without the server's nonce, and a
/// proof with it gets a DPoP-bound token.
#[tokio::test]
async fn dpop_flags_reach_the_wire() {
    use onesoidc_core::{DpopKey, ExposeSecret, KeyType, PemSigner, client_assertion};
    let server = DevIdpProcess::start(&["--dpop-nonce", "--require-dpop"]);
    let banner = server.banner.join("\n");
    assert!(
        banner.contains("DPoP          required, server nonces"),
        "{banner}"
    );
    let host = server.host.clone();
    let http = reqwest::Client::new();
    let key = PemSigner::generate(KeyType::EccP256).unwrap();
    let device: Value = http
        .post(format!("{host}/control/devices"))
        .json(&json!({"public_jwk": key.public_jwk()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = device["client_id"].as_str().unwrap();
    let token_endpoint = format!("{host}/oidc/token");
    let dpop = DpopKey::generate().unwrap();
    let request = |nonce: Option<&str>, with_proof: bool| {
        let now = std::time::SystemTime::now();
        let assertion = client_assertion(
            &key,
            &client_id.into(),
            &token_endpoint.as_str().into(),
            now,
        )
        .unwrap();
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", client_id)
            .append_pair(
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            )
            .append_pair("client_assertion", assertion.expose_secret())
            .finish();
        let mut request = http
            .post(&token_endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form);
        if with_proof {
            let url = url::Url::parse(&token_endpoint).unwrap();
            let proof = dpop.proof("POST", &url, None, nonce, now).unwrap();
            request = request.header("DPoP", proof);
        }
        request.send()
    };

    let answer = request(None, false).await.unwrap();
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");

    let answer = request(None, true).await.unwrap();
    assert_eq!(answer.status(), 400);
    let nonce = answer.headers()["dpop-nonce"].to_str().unwrap().to_string();
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "use_dpop_nonce", "{body}");

    let answer = request(Some(&nonce), true).await.unwrap();
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
}

/// A registered device in `dir`, through `onesoidc register` (auto-approved).
fn register(host: &str, dir: &str) {
    stdout(&onesoidc(&[
        "register",
        "-a",
        host,
        "-dn",
        "dev.local",
        "-t",
        "Kiosk",
        "-l",
        "Lab",
        "-r",
        "SERVER",
        "--config-dir",
        dir,
        "--key-dir",
        dir,
        "--poll-interval",
        "1",
    ]));
}

#[tokio::test]
async fn lifetime_and_interval_flags_reach_the_wire() {
    let server = DevIdpProcess::start(&[
        "--access-token-ttl",
        "15s",
        "--registration-interval",
        "2s",
        "--qr-interval",
        "3s",
        "--ciba-interval",
        "1500ms",
        "--auto-approve-ms",
        "50",
    ]);
    let host = server.host.clone();
    let banner = server.banner.join("\n");
    assert!(
        banner.contains("CIBA 1s 500ms, QR 3s, registration 2s"),
        "{banner}"
    );
    let http = reqwest::Client::new();

    // Registration: `interval` in the 201 answer.
    let key = onesoidc_core::PemSigner::generate(onesoidc_core::KeyType::EccP256).unwrap();
    let answer: Value = http
        .post(format!("{host}/devices/registration"))
        .json(
            &json!({"publicKey": {"keys": [key.public_jwk()]}, "title": "t", "location": "l",
                      "domain": "d", "role": "SERVER"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["interval"], 2, "{answer}");

    // Access tokens: `expires_in`.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let h = host.clone();
    let d2 = d.clone();
    tokio::task::spawn_blocking(move || register(&h, &d2))
        .await
        .unwrap();
    let config = format!("{d}/device.yml");
    let token_json = stdout(&onesoidc(&[
        "device-token",
        "--json",
        "--config",
        &config,
        "--key-dir",
        &d,
    ]));
    let token: Value = serde_json::from_str(&token_json).unwrap();
    let expires_in = token["expires_in"].as_u64().unwrap();
    assert!(
        (13..=15).contains(&expires_in),
        "expires_in {expires_in}, not 15 s"
    );

    // QR sessions: `interval` in the 201 answer.
    let answer: Value = http
        .post(format!("{host}/oidc/qr/sessions"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["interval"], 3, "{answer}");

    // The console shows the settings in force.
    let console = http.get(format!("{host}/")).send().await.unwrap();
    assert_eq!(console.status(), 200);
    let html = console.text().await.unwrap();
    assert!(html.contains("1500 ms") && html.contains("15 s"), "{html}");
}

/// `onesoidc apps ok-app` works though another entry of the list has a URL
/// that is not http(s); `onesoidc apps typo-app` fails naming the entry;
/// `onesoidc apps` lists the good ones.
#[test]
fn one_bad_application_entry_fails_only_its_own_look_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let idp_config = dir.path().join("devidp.json");
    std::fs::write(
        &idp_config,
        json!({"applications": [
            {"client_identifier": "ok-app", "client_id": "c1", "name": "OK", "url": "https://ok.example.com"},
            {"client_identifier": "typo-app", "client_id": "c2", "name": "Typo", "url": "htps//typo.example.com"},
        ]})
        .to_string(),
    )
    .unwrap();
    let server = DevIdpProcess::start(&[
        "--provider-config",
        idp_config.to_str().unwrap(),
        "--auto-approve-ms",
        "50",
    ]);
    register(&server.host, d);
    let device = format!("{d}/device.yml");
    let with = |args: &[&'static str]| -> Vec<String> {
        let identity = ["--config", device.as_str(), "--key-dir", d];
        args.iter()
            .chain(&identity)
            .map(|a| a.to_string())
            .collect()
    };
    let run = |args: &[&'static str]| {
        let all = with(args);
        onesoidc(&all.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let url = stdout(&run(&["apps", "ok-app"]));
    assert_eq!(url.trim(), "https://ok.example.com");

    let bad = run(&["apps", "typo-app"]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("\"typo-app\""), "{stderr}");

    let listed = stdout(&run(&["apps"]));
    assert!(listed.contains("ok-app"), "{listed}");
    assert!(!listed.contains("typo-app"), "{listed}");
}
