//! The `onesoidc` binary against the stock provider.
//!
//! The CLI does not print `auth_req_id`, so the phone answers by user and
//! client: bob on the P-256 and P-384 devices belongs to these tests alone.

use std::process::{Command, Output};

use onesoidc_interop::{
    CliIdentity, DeviceKey, ECC_P256, ECC_P384, ECC_P521, Instance, Phone, RSA_2048, cli_path,
    jwt_claims,
};

use crate::common::{JWT_RESOURCE, OrdersApi, request_headers};

/// Runs `onesoidc` with `key`'s identity and `args` (in a blocking thread),
/// with a cache directory of its own: a token one test revokes is never
/// another run's cached token.
async fn onesoidc(key: DeviceKey, args: &[&str]) -> Output {
    onesoidc_as(&CliIdentity::new(key), args).await
}

/// [`onesoidc`] with `identity` (which the caller keeps, e.g. to run
/// another command with the same `dpop.pem`).
async fn onesoidc_as(identity: &CliIdentity, args: &[&str]) -> Output {
    let cache = tempfile::tempdir().expect("cache directory");
    let mut all = identity.args();
    all.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || {
        let output = Command::new(cli_path())
            .args(&all)
            .env_remove("ONESOIDC_DEVICE_CONFIG")
            .env_remove("ONESOIDC_KEY_DIR")
            .env_remove("RUST_LOG")
            .env("ONESOIDC_CACHE_DIR", cache.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", cli_path().display()));
        drop(cache);
        output
    })
    .await
    .expect("onesoidc thread")
}

fn json_out(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "onesoidc failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn cli_device_token_json_introspect_revoke() {
    let out = json_out(&onesoidc(ECC_P521, &["device-token", "--json"]).await);
    let token = out["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    assert_eq!(out["token_type"], "Bearer", "{out}");

    let info = json_out(&onesoidc(ECC_P521, &["introspect", &token, "--json"]).await);
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["client_id"], ECC_P521.client_id(), "{info}");

    json_out(
        &onesoidc(
            ECC_P521,
            &["revoke", &token, "--hint", "access_token", "--json"],
        )
        .await,
    );
    // An inactive token: the response is printed as for an active one,
    // and the exit status is 5 (README's exit codes).
    let output = onesoidc(ECC_P521, &["introspect", &token, "--json"]).await;
    assert_eq!(
        output.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(info["active"], false, "{info}");
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn cli_device_token_rsa_prints_the_token() {
    let output = onesoidc(RSA_2048, &["device-token"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap();
    let info = RSA_2048
        .client()
        .introspect(&token.trim().into(), None)
        .await
        .expect("introspection");
    assert!(info.active, "{info:?}");
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn cli_ciba_approve_json() {
    let client_id = ECC_P256.client_id();
    let (output, ()) = tokio::join!(
        onesoidc(
            ECC_P256,
            &[
                "ciba",
                "--username",
                "bob",
                "--binding-message",
                "Kiosk-7",
                "--json"
            ]
        ),
        Phone::approve_when_asked("bob", &client_id),
    );
    let out = json_out(&output);
    assert!(out["access_token"].is_string(), "{out}");
    assert!(out["refresh_token"].is_string(), "{out}");
    assert_eq!(out["id_token_claims"]["sub"], "bob", "{out}");
    assert_eq!(out["id_token_claims"]["aud"], ECC_P256.client_id(), "{out}");

    let id_token = out["id_token"].as_str().expect("id_token");
    let claims = json_out(&onesoidc(ECC_P256, &["validate-id-token", id_token, "--json"]).await);
    assert_eq!(claims["sub"], "bob", "{claims}");
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn cli_ciba_deny_exits_3() {
    let client_id = ECC_P384.client_id();
    let (output, ()) = tokio::join!(
        onesoidc(ECC_P384, &["ciba", "--username", "bob", "--json"]),
        Phone::deny_when_asked("bob", &client_id),
    );
    assert_eq!(
        output.status.code(),
        Some(3),
        "denied: exit 3; stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("access_denied"), "{stderr}");
}

/// `device-token --dpop` and `dpop-proof` as a shell script uses them
/// (README's two-header curl call), at both instances: the token is bound
/// to the kept `dpop.pem` (RS256 is not in the provider's DPoP algorithms)
/// and the printed proof gets it accepted by the application.
async fn cli_dpop_token_and_a_proof_for_curl(instance: Instance) {
    let identity = CliIdentity::at(RSA_2048, instance);
    let args = [
        "device-token",
        "--dpop",
        "--json",
        "--resource",
        JWT_RESOURCE,
    ];
    let out = json_out(&onesoidc_as(&identity, &args).await);
    assert_eq!(out["token_type"], "DPoP", "{out}");
    let token = out["access_token"].as_str().expect("access_token");
    let claims = jwt_claims(token);
    assert_eq!(claims["cnf"]["jkt"], out["dpop_jkt"], "{claims} {out}");
    assert!(identity.paths().dpop_key().exists(), "dpop.pem is kept");

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let args = [
        "dpop-proof",
        "--method",
        "GET",
        "--url",
        OrdersApi::URL,
        "--token-file",
        token_file.to_str().unwrap(),
    ];
    let output = onesoidc_as(&identity, &args).await;
    assert!(
        output.status.success(),
        "dpop-proof failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let proof = String::from_utf8(output.stdout).unwrap();
    let api = OrdersApi::new(instance).await;
    let headers = request_headers("DPoP", token, Some(proof.trim()));
    let claims = api
        .get(&headers)
        .await
        .expect("accepted with the CLI's proof");
    assert_eq!(
        Some(claims.cnf_jkt.as_deref().unwrap()),
        out["dpop_jkt"].as_str()
    );
    api.assert_refused_to_a_thief(token).await;
}
at_both_instances!(cli_dpop_token_and_a_proof_for_curl);
