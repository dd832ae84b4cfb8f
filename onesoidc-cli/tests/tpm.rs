//! The real `onesoidc` binary built with `--features tpm`, end to end on a
//! TPM (a private swtpm) against the dev IdP: `register --security tpm`
//! makes the key inside the TPM, then `device-token` and `ciba` sign with
//! it, and `--version` says tpm is compiled in. The dev IdP approves the
//! registration and the login through its control surface.
#![cfg(feature = "tpm")]

mod common;
// The swtpm harness of onesoidc-tpm's tests (a private swtpm per test,
// skipped with a notice outside CI when swtpm is missing).
#[path = "../../onesoidc-tpm/tests/support/mod.rs"]
mod support;

use std::process::Output;
use std::time::Duration;

use common::{command, onesoidc, stdout};
use onesoidc_devidp::{DevIdp, DevIdpConfig};
use support::Swtpm;

/// Runs `onesoidc ARGS` on the blocking pool, with the TPM's TCTI in the
/// environment (how `device-token` and `ciba` find the TPM).
async fn onesoidc_on(tpm: &Swtpm, args: &[&str]) -> Output {
    let mut command = command(args);
    command.env("TPM2TOOLS_TCTI", tpm.tcti_string());
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// `onesoidc register --security tpm EXTRA` into `dir` against `idp`,
/// which approves the registration through its control surface.
async fn register(idp: &DevIdp, tpm: &Swtpm, dir: &str, extra: &[&str]) -> Output {
    let approver = {
        let idp = idp.clone();
        tokio::spawn(async move {
            let code = idp.next_registration().await;
            idp.approve_registration(&code).unwrap();
        })
    };
    let host = idp.host();
    let mut args = vec![
        "register",
        "-a",
        &host,
        "--domain",
        "tpm.local",
        "-t",
        "TPM device",
        "-l",
        "Lab",
        "-r",
        "SERVER",
        "--security",
        "tpm",
        "--config-dir",
        dir,
        "--key-dir",
        dir,
        "--poll-interval",
        "1",
    ];
    args.extend(extra);
    let registered = onesoidc_on(tpm, &args).await;
    approver.await.unwrap();
    registered
}

#[test]
fn version_says_tpm_is_compiled_in() {
    let version = stdout(&onesoidc(&["--version"]));
    assert!(
        version.contains("tpm") && !version.contains("without tpm"),
        "{version}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_security_tpm_then_device_token_and_ciba_sign_in_the_tpm() {
    let Some(tpm) = Swtpm::start() else { return };
    let idp = DevIdp::start(DevIdpConfig {
        ciba_interval: Duration::from_secs(1),
        ..DevIdpConfig::default()
    })
    .await
    .unwrap();
    for key_type in ["ECC:p256", "RSA:2048"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let config = format!("{d}/device.yml");

        let tcti = tpm.tcti_string();
        let registered = register(
            &idp,
            &tpm,
            d,
            &["--key-type", key_type, "--tcti", &tcti, "--json"],
        )
        .await;
        let registered = stdout(&registered);
        let last: serde_json::Value =
            serde_json::from_str(registered.lines().last().unwrap()).unwrap();
        assert_eq!(last["key_type"], key_type, "{registered}");
        let yaml = std::fs::read_to_string(&config).unwrap();
        assert!(yaml.contains("key_security: tpm"), "{yaml}");
        let private = std::fs::read_to_string(dir.path().join("private.pem")).unwrap();
        assert!(
            private.starts_with("-----BEGIN TSS2 PRIVATE KEY-----"),
            "{key_type}: the private key stays in the TPM"
        );

        let token = stdout(
            &onesoidc_on(&tpm, &["device-token", "--config", &config, "--key-dir", d]).await,
        );
        assert_eq!(
            token.trim().split('.').count(),
            3,
            "{key_type}: a JWT: {token}"
        );

        let approver = {
            let idp = idp.clone();
            tokio::spawn(async move {
                let request = idp.next_ciba_request().await;
                idp.approve_ciba(&request.auth_req_id).unwrap();
            })
        };
        let login = onesoidc_on(
            &tpm,
            &[
                "ciba",
                "--username",
                "alice",
                "--json",
                "--config",
                &config,
                "--key-dir",
                d,
            ],
        )
        .await;
        approver.await.unwrap();
        let login = stdout(&login);
        let login: serde_json::Value = serde_json::from_str(login.lines().last().unwrap()).unwrap();
        assert_eq!(login["id_token_claims"]["sub"], "alice", "{key_type}");
    }
}

#[tokio::test]
async fn device_token_without_the_tpm_names_the_tcti() {
    let Some(mut tpm) = Swtpm::start() else {
        return;
    };
    let idp = DevIdp::start(DevIdpConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // No --tcti: register finds the TPM through TPM2TOOLS_TCTI.
    let registered = register(&idp, &tpm, d, &[]).await;
    stdout(&registered);
    tpm.kill();
    let config = format!("{d}/device.yml");
    let out = onesoidc_on(&tpm, &["device-token", "--config", &config, "--key-dir", d]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&tpm.tcti_string()), "{stderr}");
}
